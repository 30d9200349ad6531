package resourcegraph

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Tables Keyhold's Resource Graph knows, with their columns in the order
// Resource Graph gives them.
const (
	TableResources          = "resources"
	TableResourceContainers = "resourcecontainers"
)

var tableColumns = map[string][]string{
	TableResources: {"id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId",
		"managedBy", "sku", "plan", "properties", "tags", "identity", "zones", "extendedLocation"},
	TableResourceContainers: {"id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId",
		"managedBy", "sku", "plan", "properties", "tags", "identity", "zones", "extendedLocation"},
}

// Query is a parsed Resource Graph query: a table and the operators piped
// after it.
type Query struct {
	Table   string // TableResources or TableResourceContainers
	stages  []stage
	columns []string // the columns of the result, in order
}

// Columns returns the names of the result's columns, in order.
func (q *Query) Columns() []string { return slices.Clone(q.columns) }

type stage interface{ isStage() }

type whereStage struct{ pred Expr }

type namedExpr struct {
	name string
	x    Expr
}

type projectStage struct{ items []namedExpr }

type projectAwayStage struct{ names []string }

type extendStage struct{ items []namedExpr }

type sortKey struct {
	x    Expr
	desc bool
}

type orderStage struct{ keys []sortKey }

type limitStage struct{ n int }

type countStage struct{}

type aggregate struct {
	name string
	fn   string // count, countif, dcount
	arg  Expr   // nil for count()
}

type summarizeStage struct {
	aggs []aggregate
	by   []namedExpr
}

type distinctStage struct{ items []namedExpr }

func (whereStage) isStage()       {}
func (projectStage) isStage()     {}
func (projectAwayStage) isStage() {}
func (extendStage) isStage()      {}
func (orderStage) isStage()       {}
func (limitStage) isStage()       {}
func (countStage) isStage()       {}
func (summarizeStage) isStage()   {}
func (distinctStage) isStage()    {}

// Expr is a scalar expression of the query.
type Expr interface{ pos() Pos }

type literal struct {
	p Pos
	v any // string, int64, float64, bool or nil
}

type columnRef struct {
	p    Pos
	name string
}

// member is x.name or x['name'].
type member struct {
	p    Pos
	x    Expr
	name string
}

// index is x[i] with a computed or numeric index.
type index struct {
	p Pos
	x Expr
	i Expr
}

type binary struct {
	p    Pos
	op   string // and, or, ==, !=, =~, !~, <, <=, >, >=, contains, !contains, ...
	l, r Expr
}

type inList struct {
	p    Pos
	x    Expr
	list []Expr
	neg  bool
	fold bool // in~
}

type call struct {
	p    Pos
	name string
	args []Expr
}

func (e *literal) pos() Pos   { return e.p }
func (e *columnRef) pos() Pos { return e.p }
func (e *member) pos() Pos    { return e.p }
func (e *index) pos() Pos     { return e.p }
func (e *binary) pos() Pos    { return e.p }
func (e *inList) pos() Pos    { return e.p }
func (e *call) pos() Pos      { return e.p }

// stringOps are the binary string operators; each has a negated form with
// a leading "!".
var stringOps = []string{
	"contains", "contains_cs", "has", "has_cs", "startswith", "startswith_cs", "endswith", "endswith_cs",
}

// scalarFuncs are the functions a query may call, with their argument
// counts (max -1: any number from min up).
var scalarFuncs = map[string][2]int{
	"tostring": {1, 1}, "tolower": {1, 1}, "toupper": {1, 1}, "strlen": {1, 1},
	"isempty": {1, 1}, "isnotempty": {1, 1}, "isnull": {1, 1}, "isnotnull": {1, 1},
	"not": {1, 1}, "strcat": {1, -1}, "iff": {3, 3}, "iif": {3, 3}, "coalesce": {1, -1},
	"toint": {1, 1}, "tolong": {1, 1}, "tobool": {1, 1}, "array_length": {1, 1},
}

var aggregateFuncs = map[string][2]int{"count": {0, 0}, "countif": {1, 1}, "dcount": {1, 1}}

var operatorWords = []string{"where", "filter", "project", "project-away", "extend", "order", "sort", "limit", "take",
	"count", "summarize", "top", "distinct"}

// maxDepth bounds expression nesting, so that a hostile query cannot
// exhaust the stack.
const maxDepth = 64

// Parse parses a query in the subset of Kusto that Keyhold's Resource Graph
// understands. It returns a *ParseError for text that does not parse
// (ParserFailure) or that names an unknown table, column or function
// (SemanticError).
func Parse(q string) (*Query, error) {
	if len(q) > maxQueryBytes {
		return nil, &ParseError{Code: "ParserFailure", Message: fmt.Sprintf("the query is longer than %d bytes", maxQueryBytes), Pos: Pos{Line: 1}}
	}
	if strings.TrimSpace(q) == "" {
		return nil, &ParseError{Code: "ParserFailure", Message: "the query is empty; start it with a table such as resources", Pos: Pos{Line: 1}, Token: "<end of query>"}
	}
	toks, err := lex(q)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	return p.query()
}

type parser struct {
	toks    []token
	i       int
	depth   int
	columns []string // the schema at the current stage
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tokPunct && t.text == s
}

func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.kind == tokIdent && t.text == s
}

func (p *parser) fail(t token, format string, args ...any) error {
	return &ParseError{Code: "ParserFailure", Message: fmt.Sprintf(format, args...), Pos: t.pos, Token: t.raw}
}

func (p *parser) semantic(t token, format string, args ...any) error {
	return &ParseError{Code: "SemanticError", Message: fmt.Sprintf(format, args...), Pos: t.pos, Token: t.raw}
}

func (p *parser) expectPunct(s, what string) error {
	if !p.isPunct(s) {
		t := p.peek()
		return p.fail(t, "expected '%s' %s, found %s", s, what, describe(t))
	}
	p.next()
	return nil
}

func describe(t token) string {
	if t.kind == tokEOF {
		return "the end of the query"
	}
	return "'" + t.raw + "'"
}

func (p *parser) query() (*Query, error) {
	q := &Query{}
	t := p.peek()
	switch {
	case t.kind == tokIdent && slices.Contains(operatorWords, t.text):
		// Resource Graph reads a query that starts with an operator as one
		// on the resources table.
		q.Table = TableResources
	case t.kind == tokIdent:
		name := strings.ToLower(t.text)
		if _, ok := tableColumns[name]; !ok {
			return nil, p.semantic(t, "unknown table '%s'; the tables are resources and resourcecontainers", t.text)
		}
		q.Table = name
		p.next()
		if p.peek().kind != tokEOF && !p.isPunct("|") {
			return nil, p.fail(p.peek(), "expected '|' after the table name, found %s", describe(p.peek()))
		}
	default:
		return nil, p.fail(t, "expected a table name such as resources, found %s", describe(t))
	}
	p.columns = slices.Clone(tableColumns[q.Table])
	first := q.Table == TableResources && t.kind == tokIdent && slices.Contains(operatorWords, t.text)
	for {
		if !first {
			if p.peek().kind == tokEOF {
				break
			}
			if err := p.expectPunct("|", "between operators"); err != nil {
				return nil, err
			}
		}
		first = false
		s, err := p.stage()
		if err != nil {
			return nil, err
		}
		q.stages = append(q.stages, s)
	}
	q.columns = p.columns
	return q, nil
}

func (p *parser) stage() (stage, error) {
	t := p.next()
	if t.kind != tokIdent {
		return nil, p.fail(t, "expected an operator such as where or project after '|', found %s", describe(t))
	}
	switch t.text {
	case "where", "filter":
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		return whereStage{pred: e}, nil
	case "project":
		items, err := p.namedList("project", true)
		if err != nil {
			return nil, err
		}
		p.columns = nil
		for _, it := range items {
			p.columns = append(p.columns, it.name)
		}
		return projectStage{items: items}, nil
	case "project-away":
		var names []string
		for {
			c := p.next()
			if c.kind != tokIdent {
				return nil, p.fail(c, "expected a column name after project-away, found %s", describe(c))
			}
			if !slices.Contains(p.columns, c.text) {
				return nil, p.unknownColumn(c)
			}
			names = append(names, c.text)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
		p.columns = slices.DeleteFunc(p.columns, func(c string) bool { return slices.Contains(names, c) })
		return projectAwayStage{names: names}, nil
	case "extend":
		items, err := p.namedList("extend", true)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if !slices.Contains(p.columns, it.name) {
				p.columns = append(p.columns, it.name)
			}
		}
		return extendStage{items: items}, nil
	case "order", "sort":
		if !p.isWord("by") {
			return nil, p.fail(p.peek(), "expected 'by' after %s, found %s", t.text, describe(p.peek()))
		}
		p.next()
		var keys []sortKey
		for {
			k, err := p.sortKey()
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
		return orderStage{keys: keys}, nil
	case "limit", "take":
		n, err := p.count(t.text)
		if err != nil {
			return nil, err
		}
		return limitStage{n: n}, nil
	case "top":
		n, err := p.count("top")
		if err != nil {
			return nil, err
		}
		if !p.isWord("by") {
			return nil, p.fail(p.peek(), "expected 'by' after top %d, found %s", n, describe(p.peek()))
		}
		p.next()
		k, err := p.sortKey()
		if err != nil {
			return nil, err
		}
		return topStage(n, k), nil
	case "count":
		p.columns = []string{"Count"}
		return countStage{}, nil
	case "summarize":
		return p.summarize()
	case "distinct":
		items, err := p.namedList("distinct", false)
		if err != nil {
			return nil, err
		}
		p.columns = nil
		for _, it := range items {
			p.columns = append(p.columns, it.name)
		}
		return distinctStage{items: items}, nil
	}
	return nil, p.fail(t, "unknown operator '%s'; this Resource Graph knows %s", t.raw, strings.Join(operatorWords, ", "))
}

// topStage is top N by key: an order followed by a limit, in one stage.
func topStage(n int, k sortKey) stage {
	return topSt{order: orderStage{keys: []sortKey{k}}, limit: limitStage{n: n}}
}

type topSt struct {
	order orderStage
	limit limitStage
}

func (topSt) isStage() {}

func (p *parser) count(op string) (int, error) {
	t := p.next()
	if t.kind != tokNumber || strings.Contains(t.text, ".") {
		return 0, p.fail(t, "expected a whole number after %s, found %s", op, describe(t))
	}
	n, err := strconv.Atoi(t.text)
	if err != nil || n > 1_000_000 {
		return 0, p.fail(t, "the number after %s is too large", op)
	}
	return n, nil
}

func (p *parser) sortKey() (sortKey, error) {
	e, err := p.expr()
	if err != nil {
		return sortKey{}, err
	}
	// Kusto sorts descending unless told otherwise.
	k := sortKey{x: e, desc: true}
	switch {
	case p.isWord("asc"):
		p.next()
		k.desc = false
	case p.isWord("desc"):
		p.next()
	}
	return k, nil
}

// namedList parses "[name =] expr, ..." for project, extend and distinct.
func (p *parser) namedList(op string, allowAssign bool) ([]namedExpr, error) {
	var items []namedExpr
	seen := map[string]bool{}
	unnamed := 0
	for {
		start := p.peek()
		var it namedExpr
		if allowAssign && start.kind == tokIdent && p.toks[p.i+1].kind == tokPunct && p.toks[p.i+1].text == "=" {
			p.next()
			p.next()
			it.name = start.text
		}
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		it.x = e
		if it.name == "" {
			it.name = derivedName(e)
			if it.name == "" {
				unnamed++
				it.name = "Column" + strconv.Itoa(unnamed)
			}
		}
		if seen[it.name] {
			return nil, p.semantic(start, "%s names the column '%s' twice; give one of them another name with name = ...", op, it.name)
		}
		seen[it.name] = true
		items = append(items, it)
		if !p.isPunct(",") {
			break
		}
		p.next()
	}
	return items, nil
}

// derivedName is the column name Kusto gives an unnamed expression: a
// column's own name, a path joined with underscores, or "" for anything
// else.
func derivedName(e Expr) string {
	switch x := e.(type) {
	case *columnRef:
		return x.name
	case *member:
		if base := derivedName(x.x); base != "" {
			return base + "_" + x.name
		}
	case *index:
		base := derivedName(x.x)
		if l, ok := x.i.(*literal); ok && base != "" {
			return base + "_" + fmt.Sprint(l.v)
		}
	case *call:
		switch x.name {
		case "tostring", "tolower", "toupper", "toint", "tolong", "tobool":
			return derivedName(x.args[0])
		}
	}
	return ""
}

func (p *parser) summarize() (stage, error) {
	var s summarizeStage
	seen := map[string]bool{}
	if !p.isWord("by") {
		for {
			start := p.peek()
			var a aggregate
			if start.kind == tokIdent && p.toks[p.i+1].kind == tokPunct && p.toks[p.i+1].text == "=" {
				p.next()
				p.next()
				a.name = start.text
			}
			ft := p.next()
			ar, ok := aggregateFuncs[ft.text]
			if ft.kind != tokIdent || !ok {
				return nil, p.fail(ft, "expected an aggregation such as count() in summarize, found %s", describe(ft))
			}
			a.fn = ft.text
			if err := p.expectPunct("(", "after "+ft.text); err != nil {
				return nil, err
			}
			if ar[0] == 1 {
				e, err := p.expr()
				if err != nil {
					return nil, err
				}
				a.arg = e
			}
			if err := p.expectPunct(")", "to close "+ft.text+"("); err != nil {
				return nil, err
			}
			if a.name == "" {
				a.name = a.fn + "_"
				if a.fn == "dcount" {
					if n := derivedName(a.arg); n != "" {
						a.name = "dcount_" + n
					}
				}
			}
			if seen[a.name] {
				return nil, p.semantic(start, "summarize names the column '%s' twice; give one of them another name with name = ...", a.name)
			}
			seen[a.name] = true
			s.aggs = append(s.aggs, a)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
	}
	if p.isWord("by") {
		p.next()
		items, err := p.namedList("summarize", true)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if seen[it.name] {
				return nil, p.semantic(p.peek(), "summarize names the column '%s' twice", it.name)
			}
			seen[it.name] = true
		}
		s.by = items
	}
	if len(s.aggs) == 0 && len(s.by) == 0 {
		return nil, p.fail(p.peek(), "expected an aggregation such as count() or 'by' after summarize, found %s", describe(p.peek()))
	}
	p.columns = nil
	for _, b := range s.by {
		p.columns = append(p.columns, b.name)
	}
	for _, a := range s.aggs {
		p.columns = append(p.columns, a.name)
	}
	return s, nil
}

func (p *parser) unknownColumn(t token) error {
	for _, c := range p.columns {
		if strings.EqualFold(c, t.text) {
			return p.semantic(t, "unknown column '%s'; did you mean '%s'? Column names are case-sensitive", t.text, c)
		}
	}
	return p.semantic(t, "unknown column '%s'; the columns here are %s", t.text, strings.Join(p.columns, ", "))
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > maxDepth {
		return p.fail(p.peek(), "the expression is nested more than %d levels deep", maxDepth)
	}
	return nil
}

func (p *parser) expr() (Expr, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	return p.or()
}

func (p *parser) or() (Expr, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		t := p.next()
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &binary{p: t.pos, op: "or", l: l, r: r}
	}
	return l, nil
}

func (p *parser) and() (Expr, error) {
	l, err := p.comparison()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		t := p.next()
		r, err := p.comparison()
		if err != nil {
			return nil, err
		}
		l = &binary{p: t.pos, op: "and", l: l, r: r}
	}
	return l, nil
}

func isComparison(t token) bool {
	if t.kind == tokPunct {
		switch t.text {
		case "==", "!=", "=~", "!~", "<", "<=", ">", ">=":
			return true
		}
		return false
	}
	if t.kind != tokIdent {
		return false
	}
	w := strings.TrimPrefix(t.text, "!")
	return slices.Contains(stringOps, w) || w == "in" || w == "in~"
}

func (p *parser) comparison() (Expr, error) {
	l, err := p.postfix()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	if t.kind == tokPunct && t.text == "=" {
		return nil, p.fail(t, "'=' is not a comparison; use == (or =~ to ignore case)")
	}
	if !isComparison(t) {
		return l, nil
	}
	p.next()
	if w := strings.TrimPrefix(t.text, "!"); t.kind == tokIdent && (w == "in" || w == "in~") {
		if err := p.expectPunct("(", "after "+t.text); err != nil {
			return nil, err
		}
		in := &inList{p: t.pos, x: l, neg: strings.HasPrefix(t.text, "!"), fold: w == "in~"}
		if !p.isPunct(")") {
			for {
				e, err := p.expr()
				if err != nil {
					return nil, err
				}
				in.list = append(in.list, e)
				if !p.isPunct(",") {
					break
				}
				p.next()
			}
		}
		if err := p.expectPunct(")", "to close the list of "+t.text); err != nil {
			return nil, err
		}
		return in, nil
	}
	r, err := p.postfix()
	if err != nil {
		return nil, err
	}
	if isComparison(p.peek()) {
		return nil, p.fail(p.peek(), "comparisons do not chain; join them with and / or")
	}
	return &binary{p: t.pos, op: t.text, l: l, r: r}, nil
}

func (p *parser) postfix() (Expr, error) {
	x, err := p.primary()
	if err != nil {
		return nil, err
	}
	for {
		switch {
		case p.isPunct("."):
			dot := p.next()
			n := p.next()
			if n.kind != tokIdent {
				return nil, p.fail(n, "expected a property name after '.', found %s", describe(n))
			}
			x = &member{p: dot.pos, x: x, name: n.text}
		case p.isPunct("["):
			br := p.next()
			i, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectPunct("]", "to close '['"); err != nil {
				return nil, err
			}
			if l, ok := i.(*literal); ok {
				if s, ok := l.v.(string); ok {
					x = &member{p: br.pos, x: x, name: s}
					continue
				}
			}
			x = &index{p: br.pos, x: x, i: i}
		default:
			return x, nil
		}
	}
}

func (p *parser) primary() (Expr, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return &literal{p: t.pos, v: t.text}, nil
	case tokNumber:
		if strings.Contains(t.text, ".") {
			f, err := strconv.ParseFloat(t.text, 64)
			if err != nil {
				return nil, p.fail(t, "'%s' is not a number", t.raw)
			}
			return &literal{p: t.pos, v: f}, nil
		}
		n, err := strconv.ParseInt(t.text, 10, 64)
		if err != nil {
			return nil, p.fail(t, "the number '%s' is too large", t.raw)
		}
		return &literal{p: t.pos, v: n}, nil
	case tokPunct:
		if t.text == "(" {
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			if err := p.expectPunct(")", "to close '('"); err != nil {
				return nil, err
			}
			return e, nil
		}
	case tokIdent:
		if p.isPunct("(") {
			return p.call(t)
		}
		switch t.text {
		case "true":
			return &literal{p: t.pos, v: true}, nil
		case "false":
			return &literal{p: t.pos, v: false}, nil
		}
		if strings.HasPrefix(t.text, "!") || isComparison(t) || t.text == "and" || t.text == "or" {
			return nil, p.fail(t, "expected a value, found the operator '%s'", t.raw)
		}
		if !slices.Contains(p.columns, t.text) {
			return nil, p.unknownColumn(t)
		}
		return &columnRef{p: t.pos, name: t.text}, nil
	}
	return nil, p.fail(t, "expected a value (a column, a string or a number), found %s", describe(t))
}

func (p *parser) call(t token) (Expr, error) {
	ar, ok := scalarFuncs[t.text]
	if !ok {
		if _, agg := aggregateFuncs[t.text]; agg {
			return nil, p.semantic(t, "%s() is an aggregation; use it in summarize", t.text)
		}
		return nil, p.semantic(t, "unknown function '%s'", t.text)
	}
	p.next() // (
	c := &call{p: t.pos, name: t.text}
	if !p.isPunct(")") {
		for {
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, e)
			if !p.isPunct(",") {
				break
			}
			p.next()
		}
	}
	if err := p.expectPunct(")", "to close "+t.text+"("); err != nil {
		return nil, err
	}
	if len(c.args) < ar[0] || ar[1] >= 0 && len(c.args) > ar[1] {
		want := strconv.Itoa(ar[0])
		switch {
		case ar[1] < 0:
			want = "at least " + want
		case ar[1] != ar[0]:
			want = fmt.Sprintf("%d to %d", ar[0], ar[1])
		}
		return nil, p.semantic(t, "%s() takes %s argument(s), not %d", t.text, want, len(c.args))
	}
	return c, nil
}
