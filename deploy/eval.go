package deploy

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold"
)

// errNeedsDeployment is returned by reference() while a template is only
// validated: what it refers to exists once resources are deployed.
var errNeedsDeployment = errors.New("deploy: reference() is evaluated during the deployment")

// env is what expressions see: parameter values, variables, where the
// deployment runs, and how reference() reads a resource.
type env struct {
	params   map[string]any
	varsRaw  map[string]any
	vars     map[string]any
	varsBusy map[string]bool

	subscriptionID string
	tenantID       string
	subName        string
	group          *keyhold.ResourceGroup
	deployment     string

	// reference returns the resource that reference() names (a template
	// resource's name or a resource id), its properties unless full. Nil
	// means references cannot be resolved yet.
	reference func(target, apiVersion string, full bool) (any, error)
	depth     int
}

// evalError is a failed evaluation; msg is a sentence for the caller.
type evalError struct{ msg string }

func (e *evalError) Error() string { return e.msg }

func evalErrorf(format string, args ...any) error {
	return &evalError{msg: fmt.Sprintf(format, args...)}
}

// evalString evaluates a template string: an expression, an escaped
// literal, or plain text.
func (e *env) evalString(s string) (any, error) {
	if !isExpression(s) {
		return unescape(s), nil
	}
	n, err := parseExpression(s)
	if err != nil {
		return nil, err
	}
	v, err := e.eval(n)
	if err != nil {
		if errors.Is(err, errNeedsDeployment) {
			return nil, err
		}
		var ee *evalError
		if errors.As(err, &ee) {
			return nil, evalErrorf("the template language expression '%s' is not valid: %s", s, ee.msg)
		}
		return nil, err
	}
	return v, nil
}

// evalValue evaluates every expression in a JSON value: strings, array
// items, object values and object keys.
func (e *env) evalValue(v any) (any, error) {
	e.depth++
	defer func() { e.depth-- }()
	if e.depth > 256 {
		return nil, evalErrorf("the template is nested more than 256 levels deep")
	}
	switch v := v.(type) {
	case string:
		return e.evalString(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			y, err := e.evalValue(x)
			if err != nil {
				return nil, err
			}
			out[i] = y
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			key := k
			if isExpression(k) {
				kv, err := e.evalString(k)
				if err != nil {
					return nil, err
				}
				ks, ok := kv.(string)
				if !ok {
					return nil, evalErrorf("the property name '%s' must evaluate to a string", k)
				}
				key = ks
			} else {
				key = unescape(k)
			}
			y, err := e.evalValue(x)
			if err != nil {
				return nil, err
			}
			out[key] = y
		}
		return out, nil
	}
	return v, nil
}

// checkSyntax parses every expression in v, so that a template with a
// broken expression fails validation even where it is evaluated later.
func checkSyntax(v any) error {
	switch v := v.(type) {
	case string:
		if isExpression(v) {
			_, err := parseExpression(v)
			return err
		}
	case []any:
		for _, x := range v {
			if err := checkSyntax(x); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, x := range v {
			if err := checkSyntax(k); err != nil {
				return err
			}
			if err := checkSyntax(x); err != nil {
				return err
			}
		}
	}
	return nil
}

// usesReference reports whether any expression in v calls reference().
func usesReference(v any) bool {
	switch v := v.(type) {
	case string:
		if isExpression(v) {
			n, err := parseExpression(v)
			return err == nil && calls(n, "reference")
		}
	case []any:
		for _, x := range v {
			if usesReference(x) {
				return true
			}
		}
	case map[string]any:
		for k, x := range v {
			if usesReference(k) || usesReference(x) {
				return true
			}
		}
	}
	return false
}

func (e *env) eval(n node) (any, error) {
	switch n := n.(type) {
	case strLit:
		return n.v, nil
	case numLit:
		return n.v, nil
	case member:
		x, err := e.eval(n.x)
		if err != nil {
			return nil, err
		}
		return memberOf(x, n.name)
	case index:
		x, err := e.eval(n.x)
		if err != nil {
			return nil, err
		}
		i, err := e.eval(n.i)
		if err != nil {
			return nil, err
		}
		return indexOf(x, i)
	case call:
		args := make([]any, len(n.args))
		for i, a := range n.args {
			v, err := e.eval(a)
			if err != nil {
				return nil, err
			}
			args[i] = v
		}
		return e.call(n.name, args)
	}
	return nil, evalErrorf("unknown expression")
}

// lookup finds key in m as ARM does: exactly, else ignoring case.
func lookup(m map[string]any, key string) (any, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

func memberOf(x any, name string) (any, error) {
	m, ok := x.(map[string]any)
	if !ok {
		return nil, evalErrorf("the property '%s' cannot be read from a value of type %s", name, typeName(x))
	}
	v, ok := lookup(m, name)
	if !ok {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, evalErrorf("the object has no property '%s'; its properties are '%s'", name, strings.Join(keys, ", "))
	}
	return v, nil
}

func indexOf(x, i any) (any, error) {
	switch x := x.(type) {
	case []any:
		n, ok := i.(float64)
		if !ok || n != math.Trunc(n) {
			return nil, evalErrorf("an array index must be an integer, not %s", typeName(i))
		}
		if n < 0 || int(n) >= len(x) {
			return nil, evalErrorf("the index %d is outside the array of length %d", int(n), len(x))
		}
		return x[int(n)], nil
	case map[string]any:
		s, ok := i.(string)
		if !ok {
			return nil, evalErrorf("an object is indexed by a string, not %s", typeName(i))
		}
		return memberOf(x, s)
	}
	return nil, evalErrorf("a value of type %s cannot be indexed", typeName(x))
}

// typeName names a value's type as ARM's messages do.
func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "Null"
	case string:
		return "String"
	case float64:
		return "Integer"
	case bool:
		return "Boolean"
	case []any:
		return "Array"
	case map[string]any:
		return "Object"
	}
	return fmt.Sprintf("%T", v)
}

func argCount(name string, args []any, lo, hi int) error {
	if len(args) < lo || hi >= 0 && len(args) > hi {
		switch {
		case lo == hi:
			return evalErrorf("the function '%s' takes %d argument(s), not %d", name, lo, len(args))
		case hi < 0:
			return evalErrorf("the function '%s' takes at least %d argument(s), not %d", name, lo, len(args))
		}
		return evalErrorf("the function '%s' takes %d to %d arguments, not %d", name, lo, hi, len(args))
	}
	return nil
}

func stringArg(name string, args []any, i int) (string, error) {
	s, ok := args[i].(string)
	if !ok {
		return "", evalErrorf("argument %d of '%s' must be a String, not %s", i+1, name, typeName(args[i]))
	}
	return s, nil
}

func stringArgs(name string, args []any) ([]string, error) {
	out := make([]string, len(args))
	for i := range args {
		s, err := stringArg(name, args, i)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// toText converts a scalar to the text concat and format give it.
func toText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		if v {
			return "True", true
		}
		return "False", true
	}
	return "", false
}

// call evaluates the function name with evaluated args.
func (e *env) call(name string, args []any) (any, error) {
	switch name {
	case "parameters":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		p, err := stringArg(name, args, 0)
		if err != nil {
			return nil, err
		}
		v, ok := lookup(e.params, p)
		if !ok {
			return nil, evalErrorf("the template parameter '%s' is not found", p)
		}
		return v, nil
	case "variables":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		v, err := stringArg(name, args, 0)
		if err != nil {
			return nil, err
		}
		return e.variable(v)
	case "resourcegroup":
		if err := argCount(name, args, 0, 0); err != nil {
			return nil, err
		}
		if e.group == nil {
			return nil, evalErrorf("resourceGroup() is only available in a resource group deployment")
		}
		tags := map[string]any{}
		for k, v := range e.group.Tags {
			tags[k] = v
		}
		return map[string]any{
			"id":         "/subscriptions/" + e.subscriptionID + "/resourceGroups/" + e.group.Name,
			"name":       e.group.Name,
			"type":       "Microsoft.Resources/resourceGroups",
			"location":   e.group.Location,
			"tags":       tags,
			"properties": map[string]any{"provisioningState": "Succeeded"},
		}, nil
	case "subscription":
		if err := argCount(name, args, 0, 0); err != nil {
			return nil, err
		}
		return map[string]any{
			"id":             "/subscriptions/" + e.subscriptionID,
			"subscriptionId": e.subscriptionID,
			"tenantId":       e.tenantID,
			"displayName":    e.subName,
		}, nil
	case "tenant":
		if err := argCount(name, args, 0, 0); err != nil {
			return nil, err
		}
		return map[string]any{"tenantId": e.tenantID, "id": "/tenants/" + e.tenantID}, nil
	case "deployment":
		if err := argCount(name, args, 0, 0); err != nil {
			return nil, err
		}
		return map[string]any{"name": e.deployment}, nil
	case "resourceid":
		return e.resourceID(args)
	case "subscriptionresourceid":
		if err := argCount(name, args, 2, -1); err != nil {
			return nil, err
		}
		ss, err := stringArgs(name, args)
		if err != nil {
			return nil, err
		}
		sub := e.subscriptionID
		if !strings.Contains(ss[0], "/") {
			sub, ss = ss[0], ss[1:]
		}
		return buildID("/subscriptions/"+sub, ss)
	case "extensionresourceid":
		if err := argCount(name, args, 3, -1); err != nil {
			return nil, err
		}
		ss, err := stringArgs(name, args)
		if err != nil {
			return nil, err
		}
		return buildID(strings.TrimSuffix(ss[0], "/"), ss[1:])
	case "tenantresourceid":
		if err := argCount(name, args, 2, -1); err != nil {
			return nil, err
		}
		ss, err := stringArgs(name, args)
		if err != nil {
			return nil, err
		}
		return buildID("", ss)
	case "reference":
		if err := argCount(name, args, 1, 3); err != nil {
			return nil, err
		}
		target, err := stringArg(name, args, 0)
		if err != nil {
			return nil, err
		}
		full, apiVersion := false, ""
		if len(args) >= 2 {
			if apiVersion, err = stringArg(name, args, 1); err != nil {
				return nil, err
			}
		}
		if len(args) == 3 {
			f, err := stringArg(name, args, 2)
			if err != nil {
				return nil, err
			}
			if !strings.EqualFold(f, "Full") {
				return nil, evalErrorf("the third argument of 'reference' must be 'Full', not '%s'", f)
			}
			full = true
		}
		if e.reference == nil {
			return nil, errNeedsDeployment
		}
		return e.reference(target, apiVersion, full)
	case "concat":
		if len(args) == 0 {
			return "", nil
		}
		if _, ok := args[0].([]any); ok {
			var out []any
			for i, a := range args {
				arr, ok := a.([]any)
				if !ok {
					return nil, evalErrorf("argument %d of 'concat' must be an Array like the first, not %s", i+1, typeName(a))
				}
				out = append(out, arr...)
			}
			if out == nil {
				out = []any{}
			}
			return out, nil
		}
		var b strings.Builder
		for i, a := range args {
			s, ok := toText(a)
			if !ok {
				return nil, evalErrorf("argument %d of 'concat' must be a String, Integer or Boolean, not %s", i+1, typeName(a))
			}
			b.WriteString(s)
		}
		return b.String(), nil
	case "format":
		if err := argCount(name, args, 1, -1); err != nil {
			return nil, err
		}
		f, err := stringArg(name, args, 0)
		if err != nil {
			return nil, err
		}
		return format(f, args[1:])
	case "tolower", "toupper":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		s, err := stringArg(name, args, 0)
		if err != nil {
			return nil, err
		}
		if name == "tolower" {
			return strings.ToLower(s), nil
		}
		return strings.ToUpper(s), nil
	case "guid":
		if err := argCount(name, args, 1, -1); err != nil {
			return nil, err
		}
		ss, err := stringArgs(name, args)
		if err != nil {
			return nil, err
		}
		return nameGUID(strings.Join(ss, "-")), nil
	case "uniquestring":
		if err := argCount(name, args, 1, -1); err != nil {
			return nil, err
		}
		ss, err := stringArgs(name, args)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(strings.Join(ss, "-")))
		return strings.ToLower(base32.StdEncoding.EncodeToString(sum[:]))[:13], nil
	case "string":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		if s, ok := args[0].(string); ok {
			return s, nil
		}
		if s, ok := toText(args[0]); ok {
			return s, nil
		}
		b, _ := json.Marshal(args[0])
		return string(b), nil
	case "int":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case float64:
			return math.Trunc(v), nil
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return nil, evalErrorf("'%s' cannot be converted to an Integer", v)
			}
			return float64(n), nil
		}
		return nil, evalErrorf("a %s cannot be converted to an Integer", typeName(args[0]))
	case "bool":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case bool:
			return v, nil
		case float64:
			return v != 0, nil
		case string:
			b, err := strconv.ParseBool(strings.ToLower(v))
			if err != nil {
				return nil, evalErrorf("'%s' cannot be converted to a Boolean", v)
			}
			return b, nil
		}
		return nil, evalErrorf("a %s cannot be converted to a Boolean", typeName(args[0]))
	case "true", "false":
		if err := argCount(name, args, 0, 0); err != nil {
			return nil, err
		}
		return name == "true", nil
	case "null":
		if err := argCount(name, args, 0, 0); err != nil {
			return nil, err
		}
		return nil, nil
	case "if":
		if err := argCount(name, args, 3, 3); err != nil {
			return nil, err
		}
		c, ok := args[0].(bool)
		if !ok {
			return nil, evalErrorf("the condition of 'if' must be a Boolean, not %s", typeName(args[0]))
		}
		if c {
			return args[1], nil
		}
		return args[2], nil
	case "equals":
		if err := argCount(name, args, 2, 2); err != nil {
			return nil, err
		}
		a, _ := json.Marshal(args[0])
		b, _ := json.Marshal(args[1])
		return string(a) == string(b), nil
	case "not":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		b, ok := args[0].(bool)
		if !ok {
			return nil, evalErrorf("the argument of 'not' must be a Boolean, not %s", typeName(args[0]))
		}
		return !b, nil
	case "and", "or":
		if err := argCount(name, args, 2, -1); err != nil {
			return nil, err
		}
		acc := name == "and"
		for i, a := range args {
			b, ok := a.(bool)
			if !ok {
				return nil, evalErrorf("argument %d of '%s' must be a Boolean, not %s", i+1, name, typeName(a))
			}
			if name == "and" {
				acc = acc && b
			} else {
				acc = acc || b
			}
		}
		return acc, nil
	case "empty":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case nil:
			return true, nil
		case string:
			return v == "", nil
		case []any:
			return len(v) == 0, nil
		case map[string]any:
			return len(v) == 0, nil
		}
		return nil, evalErrorf("'empty' takes a String, Array or Object, not %s", typeName(args[0]))
	case "length":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case string:
			return float64(len([]rune(v))), nil
		case []any:
			return float64(len(v)), nil
		case map[string]any:
			return float64(len(v)), nil
		}
		return nil, evalErrorf("'length' takes a String, Array or Object, not %s", typeName(args[0]))
	case "createarray":
		out := append([]any{}, args...)
		return out, nil
	case "createobject":
		if len(args)%2 != 0 {
			return nil, evalErrorf("'createObject' takes pairs of keys and values")
		}
		out := map[string]any{}
		for i := 0; i < len(args); i += 2 {
			k, err := stringArg(name, args, i)
			if err != nil {
				return nil, err
			}
			out[k] = args[i+1]
		}
		return out, nil
	case "json":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		s, err := stringArg(name, args, 0)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, evalErrorf("the argument of 'json' is not valid JSON")
		}
		return v, nil
	case "coalesce":
		for _, a := range args {
			if a != nil {
				return a, nil
			}
		}
		return nil, nil
	case "replace":
		if err := argCount(name, args, 3, 3); err != nil {
			return nil, err
		}
		ss, err := stringArgs(name, args)
		if err != nil {
			return nil, err
		}
		if ss[1] == "" {
			return ss[0], nil
		}
		return strings.ReplaceAll(ss[0], ss[1], ss[2]), nil
	case "split":
		if err := argCount(name, args, 2, 2); err != nil {
			return nil, err
		}
		ss, err := stringArgs(name, args)
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(ss[0], ss[1]) {
			out = append(out, p)
		}
		return out, nil
	case "last", "first":
		if err := argCount(name, args, 1, 1); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case string:
			r := []rune(v)
			if len(r) == 0 {
				return "", nil
			}
			if name == "first" {
				return string(r[0]), nil
			}
			return string(r[len(r)-1]), nil
		case []any:
			if len(v) == 0 {
				return nil, nil
			}
			if name == "first" {
				return v[0], nil
			}
			return v[len(v)-1], nil
		}
		return nil, evalErrorf("'%s' takes a String or Array, not %s", name, typeName(args[0]))
	case "contains":
		if err := argCount(name, args, 2, 2); err != nil {
			return nil, err
		}
		switch v := args[0].(type) {
		case string:
			s, ok := toText(args[1])
			return ok && strings.Contains(strings.ToLower(v), strings.ToLower(s)), nil
		case []any:
			b, _ := json.Marshal(args[1])
			for _, x := range v {
				xb, _ := json.Marshal(x)
				if string(xb) == string(b) {
					return true, nil
				}
			}
			return false, nil
		case map[string]any:
			s, ok := args[1].(string)
			if !ok {
				return false, nil
			}
			_, found := lookup(v, s)
			return found, nil
		}
		return nil, evalErrorf("'contains' takes a String, Array or Object, not %s", typeName(args[0]))
	}
	return nil, evalErrorf("the template function '%s' is not valid or not supported; see the list of supported functions in deploy's documentation", name)
}

// variable evaluates a variable once, guarding against variables that
// refer to themselves.
func (e *env) variable(name string) (any, error) {
	for k := range e.vars {
		if strings.EqualFold(k, name) {
			return e.vars[k], nil
		}
	}
	var key string
	var raw any
	found := false
	for k, v := range e.varsRaw {
		if strings.EqualFold(k, name) {
			key, raw, found = k, v, true
			break
		}
	}
	if !found {
		return nil, evalErrorf("the template variable '%s' is not found", name)
	}
	if e.varsBusy[key] {
		return nil, evalErrorf("the template variable '%s' refers to itself", key)
	}
	e.varsBusy[key] = true
	defer delete(e.varsBusy, key)
	v, err := e.evalValue(raw)
	if err != nil {
		return nil, err
	}
	if e.reference != nil || !usesReference(raw) {
		e.vars[key] = v
	}
	return v, nil
}

// resourceID implements resourceId([subscriptionId], [resourceGroupName],
// resourceType, resourceName1, [resourceName2], ...).
func (e *env) resourceID(args []any) (any, error) {
	if err := argCount("resourceId", args, 2, -1); err != nil {
		return nil, err
	}
	ss, err := stringArgs("resourceId", args)
	if err != nil {
		return nil, err
	}
	t := -1
	for i := 0; i < len(ss) && i < 3; i++ {
		if strings.Contains(ss[i], "/") {
			t = i
			break
		}
	}
	if t < 0 {
		return nil, evalErrorf("resourceId needs a resource type such as 'Microsoft.KeyVault/vaults' among its first three arguments")
	}
	sub, rg := e.subscriptionID, ""
	if e.group != nil {
		rg = e.group.Name
	}
	switch t {
	case 1:
		rg = ss[0]
	case 2:
		sub, rg = ss[0], ss[1]
	}
	prefix := "/subscriptions/" + sub
	if rg != "" {
		prefix += "/resourceGroups/" + rg
	}
	return buildID(prefix, ss[t:])
}

// buildID appends /providers/{namespace}/{type}/{name}... to prefix, from a
// type and as many names as it has segments.
func buildID(prefix string, typeAndNames []string) (string, error) {
	typ, names := typeAndNames[0], typeAndNames[1:]
	segs := strings.Split(strings.Trim(typ, "/"), "/")
	if len(segs) < 2 {
		return "", evalErrorf("'%s' is not a resource type; it looks like Namespace/type", typ)
	}
	// Names may be given joined ("vault/key") or one per argument.
	var flat []string
	for _, n := range names {
		flat = append(flat, strings.Split(n, "/")...)
	}
	if len(flat) != len(segs)-1 {
		return "", evalErrorf("the resource type '%s' needs %d resource name(s), but %d were given", typ, len(segs)-1, len(flat))
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString("/providers/")
	b.WriteString(segs[0])
	for i, s := range segs[1:] {
		b.WriteString("/" + s + "/" + flat[i])
	}
	return b.String(), nil
}

// format implements .NET composite formatting as ARM's format() does:
// {0}, {1:spec}, and {{ }} for literal braces.
func format(f string, args []any) (string, error) {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		c := f[i]
		switch {
		case c == '{' && i+1 < len(f) && f[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(f) && f[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(f[i:], '}')
			if end < 0 {
				return "", evalErrorf("the format string '%s' has an unclosed '{'", f)
			}
			spec := f[i+1 : i+end]
			num, _, _ := strings.Cut(spec, ":")
			n, err := strconv.Atoi(strings.TrimSpace(num))
			if err != nil || n < 0 || n >= len(args) {
				return "", evalErrorf("the format item '{%s}' does not name one of the %d argument(s)", spec, len(args))
			}
			s, ok := toText(args[n])
			if !ok {
				bs, _ := json.Marshal(args[n])
				s = string(bs)
			}
			b.WriteString(s)
			i += end
		case c == '}':
			return "", evalErrorf("the format string '%s' has an unmatched '}'", f)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// guidNamespace is the namespace of the name-based GUIDs that guid()
// returns, so that the same arguments always give the same GUID.
var guidNamespace = [16]byte{0x11, 0xfb, 0x06, 0xfb, 0x71, 0x2d, 0x4d, 0xdd, 0x98, 0xc7, 0xe7, 0x1b, 0xbd, 0x58, 0x88, 0x30}

// nameGUID returns the version 5 (SHA-1, name-based) UUID of name.
func nameGUID(name string) string {
	h := sha1.New()
	h.Write(guidNamespace[:])
	h.Write([]byte(name))
	sum := h.Sum(nil)
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
