package arm

import (
	"regexp"
	"strings"

	"github.com/keyhold/keyhold"
)

// clause is one term of an OData $filter as ARM uses them: "field eq 'v'",
// or a function call such as "atScope()" or "assignedTo('id')".
type clause struct {
	Field string // lower case
	Func  bool
	Value string
}

var (
	eqClause = regexp.MustCompile(`^(?i)([A-Za-z][A-Za-z0-9_/]*)\s+eq\s+'((?:[^']|'')*)'$`)
	fnClause = regexp.MustCompile(`^(?i)([A-Za-z][A-Za-z0-9_]*)\(\s*(?:'((?:[^']|'')*)')?\s*\)$`)
	andSplit = regexp.MustCompile(`(?i)\s+and\s+`)
)

// parseFilter parses a $filter made of clauses joined by "and". It returns
// an EInvalid error naming the part it cannot read.
func parseFilter(f string) ([]clause, error) {
	f = strings.TrimSpace(f)
	if f == "" {
		return nil, nil
	}
	var out []clause
	for _, part := range andSplit.Split(f, -1) {
		part = strings.TrimSpace(part)
		if m := eqClause.FindStringSubmatch(part); m != nil {
			out = append(out, clause{Field: strings.ToLower(m[1]), Value: strings.ReplaceAll(m[2], "''", "'")})
			continue
		}
		if m := fnClause.FindStringSubmatch(part); m != nil {
			out = append(out, clause{Field: strings.ToLower(m[1]), Func: true, Value: strings.ReplaceAll(m[2], "''", "'")})
			continue
		}
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidFilterInQueryString",
			"The $filter '%s' is invalid: the term '%s' could not be parsed.", f, part)
	}
	return out, nil
}

// unsupportedFilter is the error for a well-formed term a list does not
// know.
func unsupportedFilter(c clause) error {
	name := c.Field
	if c.Func {
		name += "()"
	}
	return keyhold.Errorc(keyhold.EInvalid, "InvalidFilterInQueryString",
		"The $filter term '%s' is not supported here.", name)
}
