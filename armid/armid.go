// Package armid parses Azure Resource Manager resource ids and scopes:
// the tenant root "/", subscriptions, resource groups, resources with child
// types, and extension resources such as role assignments that hang below
// any other scope.
//
// Keywords (subscriptions, resourceGroups, providers) compare
// case-insensitively, as ARM compares them; values keep their case, and
// String gives the canonical spelling.
package armid

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keyhold/keyhold"
)

// Types of the scopes that are not provider resources.
const (
	TypeTenant        = "Microsoft.Resources/tenants"
	TypeSubscription  = "Microsoft.Resources/subscriptions"
	TypeResourceGroup = "Microsoft.Resources/resourceGroups"
)

// Limits ARM enforces on names.
const (
	maxGroupName    = 90
	maxResourceName = 260
	maxIDLength     = 4096
)

// block is one provider section of an id: /providers/{Namespace} followed by
// type/name pairs. Nested extension resources give several blocks.
type block struct {
	namespace string
	types     []string
	names     []string
}

// ID is a parsed resource id or scope. The zero ID is the tenant root "/".
// An ID is a value: its methods never change it.
type ID struct {
	subscription  string
	resourceGroup string
	blocks        []block
}

// Root is the tenant root scope "/".
var Root = ID{}

// Parse parses a resource id or scope. It returns a keyhold.EInvalid error
// with detail "InvalidResourceId" (or "InvalidSubscriptionId" for a
// subscription id that is not a GUID) when id is empty, does not start with
// "/", has empty segments, an odd type/name pairing, or a name with
// characters ARM rejects.
func Parse(id string) (ID, error) {
	if id == "/" {
		return Root, nil
	}
	if id == "" || id[0] != '/' {
		return ID{}, invalid(id, "it must start with '/'")
	}
	if len(id) > maxIDLength {
		return ID{}, invalid(id[:64]+"...", "it is longer than %d characters", maxIDLength)
	}
	if !utf8.ValidString(id) {
		return ID{}, invalid(strings.ToValidUTF8(id, "?"), "it is not valid UTF-8")
	}
	segs := strings.Split(id[1:], "/")
	for i, s := range segs {
		if s == "" {
			return ID{}, invalid(id, "segment %d is empty", i+1)
		}
	}
	var out ID
	i := 0
	if strings.EqualFold(segs[0], "subscriptions") {
		if len(segs) < 2 {
			return ID{}, invalid(id, "the subscription id is missing")
		}
		if !IsGUID(segs[1]) {
			return ID{}, keyhold.Errorc(keyhold.EInvalid, "InvalidSubscriptionId",
				"The provided subscription identifier '%s' is malformed or invalid.", segs[1])
		}
		out.subscription = strings.ToLower(segs[1])
		i = 2
		if i < len(segs) && strings.EqualFold(segs[i], "resourceGroups") {
			if i+1 >= len(segs) {
				return ID{}, invalid(id, "the resource group name is missing")
			}
			if err := ValidateResourceGroupName(segs[i+1]); err != nil {
				return ID{}, err
			}
			out.resourceGroup = segs[i+1]
			i += 2
		}
	}
	for i < len(segs) {
		if !strings.EqualFold(segs[i], "providers") {
			return ID{}, invalid(id, "'%s' is not a known segment; expected 'providers'", segs[i])
		}
		if i+1 >= len(segs) {
			return ID{}, invalid(id, "the resource provider namespace is missing")
		}
		ns := segs[i+1]
		if !validNamespace(ns) {
			return ID{}, invalid(id, "'%s' is not a valid resource provider namespace", ns)
		}
		b := block{namespace: ns}
		i += 2
		// A "providers" segment right after a namespace is a type, not the start
		// of another block: Microsoft.Features/providers/{ns}/features/{name}.
		for i < len(segs) && (len(b.types) == 0 || !strings.EqualFold(segs[i], "providers")) {
			if i+1 >= len(segs) {
				return ID{}, invalid(id, "the resource type '%s' has no name", segs[i])
			}
			if !validType(segs[i]) {
				return ID{}, invalid(id, "'%s' is not a valid resource type", segs[i])
			}
			if err := ValidateName(segs[i+1]); err != nil {
				return ID{}, invalid(id, "%s", strings.TrimPrefix(keyhold.ErrorMessage(err), "armid: "))
			}
			b.types = append(b.types, segs[i])
			b.names = append(b.names, segs[i+1])
			i += 2
		}
		if len(b.types) == 0 {
			return ID{}, invalid(id, "the namespace '%s' is not followed by a resource type and name", ns)
		}
		out.blocks = append(out.blocks, b)
	}
	return out, nil
}

// MustParse is Parse for ids known to be valid, such as constants in tests.
// It panics on an invalid id.
func MustParse(id string) ID {
	v, err := Parse(id)
	if err != nil {
		panic(err)
	}
	return v
}

func invalid(id, format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, "InvalidResourceId",
		"The resource id '%s' is invalid: %s. Expected '/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/{resourceProviderNamespace}/{resourceType}/{resourceName}' or a scope.",
		id, fmt.Sprintf(format, args...))
}

// NewSubscription returns the scope of a subscription. It returns the same
// errors as Parse.
func NewSubscription(subscriptionID string) (ID, error) {
	return Parse("/subscriptions/" + subscriptionID)
}

// NewResourceGroup returns the id of a resource group. It returns the same
// errors as Parse.
func NewResourceGroup(subscriptionID, name string) (ID, error) {
	return Parse("/subscriptions/" + subscriptionID + "/resourceGroups/" + name)
}

// Child returns the id of a resource below id: a child resource when id is a
// resource of namespace, else a new provider block (an extension resource,
// or a top-level resource under a group or subscription). typ is either
// "Namespace/type[/childType...]" with names for every type, or "type" for a
// child of id. It returns the same errors as Parse.
func (id ID) Child(namespace, typ string, names ...string) (ID, error) {
	types := strings.Split(typ, "/")
	if len(types) != len(names) {
		return ID{}, invalid(id.String()+"/"+typ, "%d resource types but %d names", len(types), len(names))
	}
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(id.String(), "/"))
	if namespace != "" {
		b.WriteString("/providers/" + namespace)
	}
	for i := range types {
		b.WriteString("/" + types[i] + "/" + names[i])
	}
	return Parse(b.String())
}

// String returns the canonical form of id: "/", "/subscriptions/{s}",
// "/subscriptions/{s}/resourceGroups/{rg}", then "/providers/{ns}/{type}/{name}..."
// for each provider block. The subscription id is lower case.
func (id ID) String() string {
	if id.subscription == "" && len(id.blocks) == 0 {
		return "/"
	}
	var b strings.Builder
	if id.subscription != "" {
		b.WriteString("/subscriptions/")
		b.WriteString(id.subscription)
		if id.resourceGroup != "" {
			b.WriteString("/resourceGroups/")
			b.WriteString(id.resourceGroup)
		}
	}
	for _, bl := range id.blocks {
		b.WriteString("/providers/")
		b.WriteString(bl.namespace)
		for i := range bl.types {
			b.WriteString("/")
			b.WriteString(bl.types[i])
			b.WriteString("/")
			b.WriteString(bl.names[i])
		}
	}
	return b.String()
}

// Equal reports whether id and o name the same scope, comparing as ARM does
// (case-insensitively).
func (id ID) Equal(o ID) bool { return strings.EqualFold(id.String(), o.String()) }

// SubscriptionID returns the subscription of id, or "" at the tenant root
// and for tenant-level provider resources.
func (id ID) SubscriptionID() string { return id.subscription }

// ResourceGroup returns the resource group name of id, or "".
func (id ID) ResourceGroup() string { return id.resourceGroup }

// IsRoot reports whether id is the tenant root "/".
func (id ID) IsRoot() bool { return id.subscription == "" && len(id.blocks) == 0 }

// IsSubscription reports whether id is a subscription scope.
func (id ID) IsSubscription() bool {
	return id.subscription != "" && id.resourceGroup == "" && len(id.blocks) == 0
}

// IsResourceGroup reports whether id is a resource group.
func (id ID) IsResourceGroup() bool { return id.resourceGroup != "" && len(id.blocks) == 0 }

// IsResource reports whether id is a provider resource (of any level,
// including extension resources).
func (id ID) IsResource() bool { return len(id.blocks) > 0 }

// IsExtension reports whether id is an extension resource of another
// resource, such as a role assignment on a vault.
func (id ID) IsExtension() bool { return len(id.blocks) > 1 }

// Namespace returns the resource provider namespace of a resource id, such
// as "Microsoft.KeyVault", or "Microsoft.Resources" for other scopes.
func (id ID) Namespace() string {
	if len(id.blocks) == 0 {
		return "Microsoft.Resources"
	}
	return id.blocks[len(id.blocks)-1].namespace
}

// Type returns the resource type of id: "Namespace/type[/childType...]" for
// resources, TypeResourceGroup, TypeSubscription or TypeTenant otherwise.
func (id ID) Type() string {
	switch {
	case len(id.blocks) > 0:
		b := id.blocks[len(id.blocks)-1]
		return b.namespace + "/" + strings.Join(b.types, "/")
	case id.resourceGroup != "":
		return TypeResourceGroup
	case id.subscription != "":
		return TypeSubscription
	default:
		return TypeTenant
	}
}

// Name returns the last name of id: the resource, group or subscription
// name, or "" at the root.
func (id ID) Name() string {
	switch {
	case len(id.blocks) > 0:
		b := id.blocks[len(id.blocks)-1]
		return b.names[len(b.names)-1]
	case id.resourceGroup != "":
		return id.resourceGroup
	default:
		return id.subscription
	}
}

// Names returns the names of the last provider block of a resource id: the
// top-level resource's name followed by its child names. It is nil for other
// scopes.
func (id ID) Names() []string {
	if len(id.blocks) == 0 {
		return nil
	}
	return append([]string(nil), id.blocks[len(id.blocks)-1].names...)
}

// Scope returns the scope that the last provider block of a resource id hangs
// below: the resource group or subscription of a resource, or the resource
// that an extension resource extends. For other scopes it returns the parent.
func (id ID) Scope() ID {
	if len(id.blocks) == 0 {
		return id.Parent()
	}
	out := id
	out.blocks = clone(id.blocks[:len(id.blocks)-1])
	return out
}

// Parent returns the scope directly above id: a child resource's parent
// resource, a top-level resource's scope (group, subscription, the resource
// it extends, or the root), a group's subscription, and the root for a
// subscription. The parent of the root is the root.
func (id ID) Parent() ID {
	switch {
	case len(id.blocks) > 0:
		b := id.blocks[len(id.blocks)-1]
		if len(b.types) == 1 {
			return id.Scope()
		}
		out := id
		out.blocks = clone(id.blocks)
		last := &out.blocks[len(out.blocks)-1]
		last.types = append([]string(nil), b.types[:len(b.types)-1]...)
		last.names = append([]string(nil), b.names[:len(b.names)-1]...)
		return out
	case id.resourceGroup != "":
		return ID{subscription: id.subscription}
	default:
		return Root
	}
}

// Ancestors returns the scopes above id, nearest first and ending with the
// root: for a resource, its parents, its group, its subscription and "/".
// The root has no ancestors. RBAC inheritance walks this list.
func (id ID) Ancestors() []ID {
	var out []ID
	for cur := id; !cur.IsRoot(); {
		cur = cur.Parent()
		out = append(out, cur)
	}
	return out
}

// IsUnder reports whether id is scope or lies below it, comparing whole
// segments case-insensitively: /subscriptions/s/resourceGroups/rg1 is not
// under /subscriptions/s/resourceGroups/rg.
func (id ID) IsUnder(scope ID) bool {
	if scope.IsRoot() {
		return true
	}
	s, p := strings.ToLower(id.String()), strings.ToLower(scope.String())
	return s == p || strings.HasPrefix(s, p+"/")
}

func clone(bs []block) []block {
	out := make([]block, len(bs))
	for i, b := range bs {
		out[i] = block{namespace: b.namespace, types: append([]string(nil), b.types...), names: append([]string(nil), b.names...)}
	}
	return out
}

// IsGUID reports whether s is a GUID in the 8-4-4-4-12 hex form.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// ValidateResourceGroupName checks a resource group name against ARM's
// rule: 1 to 90 letters, digits, underscores, hyphens, periods and
// parentheses, not ending in a period. It returns a keyhold.EInvalid error
// with detail "InvalidResourceGroupName".
func ValidateResourceGroupName(name string) error {
	ok := name != "" && utf8.RuneCountInString(name) <= maxGroupName && !strings.HasSuffix(name, ".")
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_-.()", r)) {
			ok = false
			break
		}
	}
	if !ok {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidResourceGroupName",
			"Resource group name '%s' is invalid. It must be 1 to %d characters of letters, digits, underscores, hyphens, periods and parentheses, and must not end in a period.",
			name, maxGroupName)
	}
	return nil
}

// ValidateName checks a resource name against the characters ARM refuses in
// any resource name: control characters and < > * % & : \ ? / # |, a
// trailing period or space, or more than 260 characters. Resource types
// enforce stricter rules of their own. It returns a keyhold.EInvalid error
// with detail "InvalidResourceName".
func ValidateName(name string) error {
	bad := name == "" || utf8.RuneCountInString(name) > maxResourceName ||
		strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") ||
		strings.ContainsAny(name, `<>*%&:\?/#|`)
	for _, r := range name {
		if unicode.IsControl(r) {
			bad = true
		}
	}
	if bad {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidResourceName",
			"the resource name '%s' is invalid: it must be 1 to %d characters, without control characters or any of <>*%%&:\\?/#|, and must not end in a period or space",
			strings.Map(printable, name), maxResourceName)
	}
	return nil
}

func printable(r rune) rune {
	if unicode.IsControl(r) {
		return '?'
	}
	return r
}

// validNamespace accepts Company.Service style namespaces: dot-separated
// words of letters and digits, starting with a letter.
func validNamespace(ns string) bool {
	parts := strings.Split(ns, ".")
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if p == "" || !isLetter(p[0]) {
			return false
		}
		for i := 0; i < len(p); i++ {
			if !isLetter(p[i]) && !isDigit(p[i]) {
				return false
			}
		}
	}
	return true
}

// validType accepts resource type segments: a letter, then letters, digits,
// hyphens or underscores.
func validType(t string) bool {
	if t == "" || !isLetter(t[0]) || len(t) > 128 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !isLetter(c) && !isDigit(c) && c != '-' && c != '_' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

// ValidateNamespace checks a resource provider namespace such as
// "Microsoft.KeyVault": dot-separated words of ASCII letters and digits,
// each starting with a letter. It returns a keyhold.EInvalid error with
// detail "InvalidResourceNamespace".
func ValidateNamespace(ns string) error {
	if !validNamespace(ns) {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidResourceNamespace", "The resource namespace '%s' is invalid.", strings.Map(printable, ns))
	}
	return nil
}
