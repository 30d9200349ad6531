package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
)

// invalidTemplate is ARM's 400 for a template that cannot be deployed.
func invalidTemplate(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate", "Deployment template validation failed: '"+format+"'", args...)
}

// placeholder finds text such as {EnterprisePolicyName} or {location where
// EnterprisePolicy needs to be created}: the seed's template before its
// values are filled in.
var placeholder = regexp.MustCompile(`\{[A-Za-z][A-Za-z0-9 _-]{0,80}\}`)

// decodeJSONText parses JSON text for what (the template or its parameters),
// and on a syntax error says where, and says to fill in placeholders when
// the text has them.
func decodeJSONText(text []byte, what string, v any) error {
	dec := json.NewDecoder(bytes.NewReader(text))
	err := dec.Decode(v)
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			off := dec.InputOffset()
			line, col := httpapi.LineCol(text, off)
			return invalidTemplateJSON(what, text, line, col, "there is more text after the end of the JSON value")
		}
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := httpapi.LineCol(text, max(se.Offset-1, 0))
		return invalidTemplateJSON(what, text, line, col, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		line, col := httpapi.LineCol(text, te.Offset)
		field := te.Field
		if field == "" {
			field = "the top level"
		}
		return invalidTemplateJSON(what, text, line, col, fmt.Sprintf("'%s' must be of type %s, not %s", field, te.Type.Kind(), te.Value))
	case errors.Is(err, io.EOF):
		return keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate", "The %s is empty.", what)
	}
	line, col := httpapi.LineCol(text, int64(len(text)))
	return invalidTemplateJSON(what, text, line, col, "the JSON text ends too early")
}

func invalidTemplateJSON(what string, text []byte, line, col int, why string) error {
	if m := placeholder.Find(text); m != nil {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate",
			"The %s is not valid JSON at line %d, column %d: replace the placeholders such as %s with real values (strings in double quotes).",
			what, line, col, m)
	}
	return keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate", "The %s is not valid JSON at line %d, column %d: %s.", what, line, col, why)
}

// rawTemplate is a deployment template as written.
type rawTemplate struct {
	Schema         string                     `json:"$schema"`
	ContentVersion string                     `json:"contentVersion"`
	Parameters     map[string]paramDef        `json:"parameters"`
	Variables      map[string]any             `json:"variables"`
	Resources      json.RawMessage            `json:"resources"`
	Outputs        map[string]json.RawMessage `json:"outputs"`
	Functions      json.RawMessage            `json:"functions"`
}

// paramDef is one parameter declaration.
type paramDef struct {
	Type          string   `json:"type"`
	DefaultValue  any      `json:"defaultValue"`
	AllowedValues []any    `json:"allowedValues"`
	MinLength     *float64 `json:"minLength"`
	MaxLength     *float64 `json:"maxLength"`
	MinValue      *float64 `json:"minValue"`
	MaxValue      *float64 `json:"maxValue"`
	Metadata      any      `json:"metadata"`
	hasDefault    bool
}

func (p *paramDef) UnmarshalJSON(b []byte) error {
	type plain paramDef
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	_, p.hasDefault = raw["defaultValue"]
	return nil
}

// outputDef is one output declaration.
type outputDef struct {
	Type      string `json:"type"`
	Value     any    `json:"value"`
	Condition any    `json:"condition"`
}

// paramTypes are the parameter types ARM knows, lower case, with the
// spelling its responses use.
var paramTypes = map[string]string{
	"string": "String", "securestring": "SecureString", "int": "Int", "bool": "Bool",
	"object": "Object", "secureobject": "SecureObject", "array": "Array",
}

// isSecure reports whether a parameter of type t must never be shown.
func isSecure(t string) bool {
	t = strings.ToLower(t)
	return t == "securestring" || t == "secureobject"
}

// resource keywords that are not part of the resource's body.
var resourceKeywords = map[string]bool{
	"type": true, "apiversion": true, "name": true, "dependson": true, "condition": true,
	"comments": true, "copy": true, "scope": true, "metadata": true,
}

// templateResource is one resource of a template, with what validation
// could evaluate.
type templateResource struct {
	Index      int
	Type       string // full type, as the resource manager spells it in ids
	Name       string // the name as written after evaluation, e.g. "vault/add"
	APIVersion string
	ID         string
	Condition  any            // raw condition, nil if none
	Body       map[string]any // raw body fields: location, kind, properties, ...
	DependsOn  []int          // indexes of resources this one waits for
}

// compiled is a validated template: its resources in deployment order and
// the values expressions see.
type compiled struct {
	env       *env
	resources []*templateResource // in template order
	order     []int               // indexes of resources in deployment order
	outputs   map[string]outputDef
	params    map[string]any    // final parameter values
	paramType map[string]string // declared type per parameter, ARM spelling
}

// site is where a deployment runs.
type site struct {
	subscriptionID string
	tenantID       string
	subName        string
	group          *keyhold.ResourceGroup
	deployment     string
}

// parseTemplateText reads a template given as JSON text.
func parseTemplateText(text []byte) (*rawTemplate, error) {
	var t rawTemplate
	if err := decodeJSONText(text, "template", &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// compile validates a template with its parameters at a site: JSON shape,
// parameter types and allowed values, variables, expressions, resource
// types, names and ids, dependsOn and cycles. Expressions that call
// reference() are checked for syntax only; they are evaluated when the
// resource is deployed.
func compile(t *rawTemplate, given map[string]any, s site) (*compiled, error) {
	c := &compiled{outputs: map[string]outputDef{}, params: map[string]any{}, paramType: map[string]string{}}
	e := &env{
		params: c.params, varsRaw: t.Variables, vars: map[string]any{}, varsBusy: map[string]bool{},
		subscriptionID: s.subscriptionID, tenantID: s.tenantID, subName: s.subName, group: s.group, deployment: s.deployment,
	}
	if e.varsRaw == nil {
		e.varsRaw = map[string]any{}
	}
	c.env = e
	if len(t.Functions) > 0 && !bytes.Equal(bytes.TrimSpace(t.Functions), []byte("[]")) {
		return nil, invalidTemplate("User-defined functions are not supported.")
	}
	if err := c.bindParameters(t.Parameters, given); err != nil {
		return nil, err
	}
	for name, v := range t.Variables {
		if name == "copy" {
			return nil, invalidTemplate("Variable copy loops are not supported.")
		}
		if err := checkSyntax(v); err != nil {
			return nil, invalidTemplate("The variable '%s' is not valid: %s", name, err.Error())
		}
		if _, err := e.variable(name); err != nil && !errors.Is(err, errNeedsDeployment) {
			return nil, invalidTemplate("The variable '%s' is not valid: %s", name, err.Error())
		}
	}
	if err := c.bindResources(t.Resources); err != nil {
		return nil, err
	}
	for name, raw := range t.Outputs {
		var o outputDef
		if err := json.Unmarshal(raw, &o); err != nil {
			return nil, invalidTemplate("The output '%s' is not valid: it must be an object with type and value.", name)
		}
		if _, ok := paramTypes[strings.ToLower(o.Type)]; !ok {
			return nil, invalidTemplate("The output '%s' has the type '%s'; use one of string, int, bool, object, array.", name, o.Type)
		}
		if err := checkSyntax(o.Value); err != nil {
			return nil, invalidTemplate("The output '%s' is not valid: %s", name, err.Error())
		}
		c.outputs[name] = o
	}
	return c, nil
}

// bindParameters checks the given values against the declarations and
// fills in defaults.
func (c *compiled) bindParameters(defs map[string]paramDef, given map[string]any) error {
	for name := range given {
		found := false
		for d := range defs {
			if strings.EqualFold(d, name) {
				found = true
			}
		}
		if !found {
			return invalidTemplate("The template parameter '%s' is not declared in the template; it declares '%s'.", name, strings.Join(sortedKeys(defs), ", "))
		}
	}
	names := sortedKeys(defs)
	for _, name := range names {
		d := defs[name]
		tn, ok := paramTypes[strings.ToLower(d.Type)]
		if !ok {
			return invalidTemplate("The template parameter '%s' has the type '%s'; use one of string, securestring, int, bool, object, secureObject, array.", name, d.Type)
		}
		c.paramType[name] = tn
		v, ok := lookup(given, name)
		if !ok {
			if !d.hasDefault {
				return invalidTemplate("The value for the template parameter '%s' is not provided. Please see https://aka.ms/arm-create-parameter-file for usage details.", name)
			}
			if err := checkSyntax(d.DefaultValue); err != nil {
				return invalidTemplate("The default value of the template parameter '%s' is not valid: %s", name, err.Error())
			}
			dv, err := c.env.evalValue(d.DefaultValue)
			if err != nil {
				return invalidTemplate("The default value of the template parameter '%s' is not valid: %s", name, err.Error())
			}
			v = dv
		}
		v, err := checkParam(name, d, v)
		if err != nil {
			return err
		}
		c.params[name] = v
	}
	return nil
}

// checkParam checks one value against its declaration. Messages never
// repeat a secure value.
func checkParam(name string, d paramDef, v any) (any, error) {
	secure := isSecure(d.Type)
	shown := func(v any) string {
		if secure {
			return "(secure value)"
		}
		b, _ := json.Marshal(v)
		return string(b)
	}
	typ := strings.ToLower(d.Type)
	ok := false
	switch typ {
	case "string", "securestring":
		_, ok = v.(string)
	case "int":
		f, isNum := v.(float64)
		ok = isNum && f == math.Trunc(f)
	case "bool":
		_, ok = v.(bool)
	case "object", "secureobject":
		_, ok = v.(map[string]any)
	case "array":
		_, ok = v.([]any)
	}
	if !ok {
		return nil, invalidTemplate("The provided value %s for the template parameter '%s' is not valid. Expected a value of type '%s', but received a value of type '%s'.",
			shown(v), name, paramTypes[typ], typeName(v))
	}
	if len(d.AllowedValues) > 0 {
		vb, _ := json.Marshal(v)
		allowed := false
		var list []string
		for _, a := range d.AllowedValues {
			ab, _ := json.Marshal(a)
			list = append(list, string(ab))
			if s, isStr := v.(string); isStr {
				if as, aStr := a.(string); aStr && strings.EqualFold(s, as) {
					allowed = true
				}
			}
			if string(ab) == string(vb) {
				allowed = true
			}
		}
		if !allowed {
			return nil, invalidTemplate("The provided value %s for the template parameter '%s' is not valid. The value must be one of %s.", shown(v), name, strings.Join(list, ", "))
		}
	}
	length := -1
	switch x := v.(type) {
	case string:
		length = len([]rune(x))
	case []any:
		length = len(x)
	}
	if length >= 0 {
		if d.MinLength != nil && float64(length) < *d.MinLength {
			return nil, invalidTemplate("The provided value for the template parameter '%s' is too short: the minimum length is %v.", name, *d.MinLength)
		}
		if d.MaxLength != nil && float64(length) > *d.MaxLength {
			return nil, invalidTemplate("The provided value for the template parameter '%s' is too long: the maximum length is %v.", name, *d.MaxLength)
		}
	}
	if f, isNum := v.(float64); isNum {
		if d.MinValue != nil && f < *d.MinValue || d.MaxValue != nil && f > *d.MaxValue {
			return nil, invalidTemplate("The provided value %s for the template parameter '%s' is outside the allowed range.", shown(v), name)
		}
	}
	return v, nil
}

// bindResources evaluates each resource's type, name, api-version and
// scope, computes its id, and orders the resources by dependsOn.
func (c *compiled) bindResources(raw json.RawMessage) error {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return invalidTemplate("The template has no 'resources' array.")
	}
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil {
		return invalidTemplate("The template's 'resources' must be an array of objects; symbolic-name resources (languageVersion 2.0) are not supported.")
	}
	e := c.env
	for i, r := range list {
		where := fmt.Sprintf("resources[%d]", i)
		if r == nil {
			return invalidTemplate("The template resource at %s is null.", where)
		}
		if _, ok := lookup(r, "copy"); ok {
			return invalidTemplate("The template resource at %s uses 'copy'; copy loops are not supported.", where)
		}
		if err := checkSyntax(r); err != nil {
			return invalidTemplate("The template resource at %s is not valid: %s", where, err.Error())
		}
		str := func(key string, required bool) (string, error) {
			v, ok := lookup(r, key)
			if !ok || v == nil {
				if required {
					return "", invalidTemplate("The template resource at %s must have '%s'.", where, key)
				}
				return "", nil
			}
			if usesReference(v) {
				return "", invalidTemplate("The template resource at %s: '%s' cannot use reference(); it must be known before the deployment starts.", where, key)
			}
			ev, err := e.evalValue(v)
			if err != nil {
				return "", invalidTemplate("The template resource at %s is not valid: %s", where, err.Error())
			}
			s, ok := ev.(string)
			if !ok || s == "" && required {
				return "", invalidTemplate("The template resource at %s: '%s' must be a non-empty string.", where, key)
			}
			return s, nil
		}
		typ, err := str("type", true)
		if err != nil {
			return err
		}
		name, err := str("name", true)
		if err != nil {
			return err
		}
		apiVersion, err := str("apiVersion", true)
		if err != nil {
			return err
		}
		scope, err := str("scope", false)
		if err != nil {
			return err
		}
		id, err := c.resourceIDOf(typ, name, scope)
		if err != nil {
			return invalidTemplate("The template resource '%s' at %s is not valid: %s", name, where, err.Error())
		}
		tr := &templateResource{Index: i, Type: id.Type(), Name: name, APIVersion: apiVersion, ID: id.String(), Body: map[string]any{}}
		if cond, ok := lookup(r, "condition"); ok {
			tr.Condition = cond
		}
		for k, v := range r {
			if !resourceKeywords[strings.ToLower(k)] {
				tr.Body[k] = v
			}
		}
		c.resources = append(c.resources, tr)
	}
	for i, r := range list {
		deps, ok := lookup(r, "dependsOn")
		if !ok || deps == nil {
			continue
		}
		arr, ok := deps.([]any)
		if !ok {
			return invalidTemplate("The template resource '%s': 'dependsOn' must be an array.", c.resources[i].Name)
		}
		for _, d := range arr {
			ev, err := e.evalValue(d)
			if err != nil {
				return invalidTemplate("The template resource '%s' has a dependsOn entry that is not valid: %s", c.resources[i].Name, err.Error())
			}
			ref, ok := ev.(string)
			if !ok {
				return invalidTemplate("The template resource '%s' has a dependsOn entry that is not a string.", c.resources[i].Name)
			}
			j := c.find(ref)
			if j < 0 {
				return invalidTemplate("The resource '%s' is not defined in the template, but the template resource '%s' depends on it.", ref, c.resources[i].Name)
			}
			if j == i {
				return invalidTemplate("The template resource '%s' depends on itself.", c.resources[i].Name)
			}
			c.resources[i].DependsOn = append(c.resources[i].DependsOn, j)
		}
	}
	// reference() of a template resource waits for it, as in ARM.
	for i, r := range c.resources {
		for _, target := range referenceTargets(r.Body, e) {
			if j := c.find(target); j >= 0 && j != i && !slices.Contains(r.DependsOn, j) {
				r.DependsOn = append(r.DependsOn, j)
			}
		}
	}
	order, err := topoOrder(c.resources)
	if err != nil {
		return err
	}
	c.order = order
	return nil
}

// resourceIDOf computes a template resource's id from its type and name:
// nested types take one name per level ("vault/add" for
// Microsoft.KeyVault/vaults/accessPolicies), extension types are written
// "Ns/type/providers/Ns2/type2" with names "name/Ns2/name2", and a scope
// property places an extension resource on another resource.
func (c *compiled) resourceIDOf(typ, name, scope string) (armid.ID, error) {
	base := "/subscriptions/" + c.env.subscriptionID
	if c.env.group != nil {
		base += "/resourceGroups/" + c.env.group.Name
	}
	if scope != "" {
		sid, err := armid.Parse(scope)
		if err != nil {
			return armid.ID{}, fmt.Errorf("the scope '%s' is not a resource id", scope)
		}
		base = strings.TrimSuffix(sid.String(), "/")
	}
	typeParts := strings.Split(typ, "/providers/")
	names := strings.Split(name, "/")
	var b strings.Builder
	b.WriteString(base)
	for k, tp := range typeParts {
		segs := strings.Split(strings.Trim(tp, "/"), "/")
		if k > 0 {
			// Extension syntax: the name carries the namespace, as in
			// "kv1/Microsoft.Authorization/{guid}".
			if len(names) == 0 || !strings.Contains(names[0], ".") {
				return armid.ID{}, fmt.Errorf("the name '%s' must name the extension's namespace, as in 'parent/Microsoft.Authorization/name'", name)
			}
			segs = append([]string{names[0]}, segs...)
			names = names[1:]
		}
		if len(segs) < 2 || segs[0] == "" {
			return armid.ID{}, fmt.Errorf("'%s' is not a resource type; it looks like Namespace/type", typ)
		}
		need := len(segs) - 1
		if len(names) < need {
			return armid.ID{}, fmt.Errorf("the type '%s' needs %d name segment(s) in the name '%s'", typ, need+k, name)
		}
		b.WriteString("/providers/" + segs[0])
		for i, s := range segs[1:] {
			if names[i] == "" {
				return armid.ID{}, fmt.Errorf("the name '%s' has an empty segment", name)
			}
			b.WriteString("/" + s + "/" + names[i])
		}
		names = names[need:]
	}
	if len(names) != 0 {
		return armid.ID{}, fmt.Errorf("the name '%s' has more segments than the type '%s' has levels", name, typ)
	}
	id, err := armid.Parse(b.String())
	if err != nil {
		return armid.ID{}, fmt.Errorf("the resource id '%s' is not valid: %s", b.String(), keyhold.ErrorMessage(err))
	}
	return id, nil
}

// find returns the index of the template resource that ref names: its id,
// its name, or "type/name"; -1 if none.
func (c *compiled) find(ref string) int {
	for i, r := range c.resources {
		if strings.EqualFold(ref, r.ID) || strings.EqualFold(ref, r.Name) || strings.EqualFold(ref, r.Type+"/"+r.Name) {
			return i
		}
	}
	// A resourceId() built for a resource group other than the template's
	// own still names the resource by its tail.
	for i, r := range c.resources {
		if id, err := armid.Parse(ref); err == nil && id.IsResource() && strings.EqualFold(id.Type(), r.Type) &&
			strings.EqualFold(strings.Join(id.Names(), "/"), strings.Join(mustParse(r.ID).Names(), "/")) {
			return i
		}
	}
	return -1
}

// referenceTargets returns the first arguments of the reference() calls in
// v that can be evaluated before the deployment.
func referenceTargets(v any, e *env) []string {
	var out []string
	var walk func(n node)
	walk = func(n node) {
		switch n := n.(type) {
		case call:
			if n.name == "reference" && len(n.args) > 0 {
				if t, err := e.eval(n.args[0]); err == nil {
					if s, ok := t.(string); ok {
						out = append(out, s)
					}
				}
			}
			for _, a := range n.args {
				walk(a)
			}
		case member:
			walk(n.x)
		case index:
			walk(n.x)
			walk(n.i)
		}
	}
	var visit func(v any)
	visit = func(v any) {
		switch v := v.(type) {
		case string:
			if isExpression(v) {
				if n, err := parseExpression(v); err == nil {
					walk(n)
				}
			}
		case []any:
			for _, x := range v {
				visit(x)
			}
		case map[string]any:
			for k, x := range v {
				visit(k)
				visit(x)
			}
		}
	}
	visit(v)
	return out
}

func mustParse(id string) armid.ID {
	p, err := armid.Parse(id)
	if err != nil {
		return armid.Root
	}
	return p
}

// topoOrder orders resources so that each comes after what it depends on,
// keeping template order otherwise. A cycle is an error that names it.
func topoOrder(rs []*templateResource) ([]int, error) {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(rs))
	var order []int
	var stack []int
	var visit func(i int) error
	visit = func(i int) error {
		switch color[i] {
		case black:
			return nil
		case grey:
			var names []string
			start := 0
			for k, j := range stack {
				if j == i {
					start = k
				}
			}
			for _, j := range stack[start:] {
				names = append(names, rs[j].Name)
			}
			names = append(names, rs[i].Name)
			return invalidTemplate("Circular dependency detected on resource: %s.", strings.Join(names, " -> "))
		}
		color[i] = grey
		stack = append(stack, i)
		for _, j := range rs[i].DependsOn {
			if err := visit(j); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		color[i] = black
		order = append(order, i)
		return nil
	}
	for i := range rs {
		if err := visit(i); err != nil {
			return nil, err
		}
	}
	return order, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
