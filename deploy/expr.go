package deploy

import (
	"fmt"
	"strconv"
	"strings"
)

// Template expressions are strings in square brackets, such as
// "[concat(parameters('prefix'), '-kv')]". This file parses them into a small
// tree; eval.go evaluates the tree.

// maxExprDepth bounds nesting so that a hostile template cannot exhaust the
// stack of the parser or the evaluator.
const maxExprDepth = 64

// maxExprLen bounds the length of one expression.
const maxExprLen = 64 << 10

// node is a parsed expression.
type node interface{ node() }

type (
	// strLit is a string literal: 'text', with '' for a quote.
	strLit struct{ v string }
	// numLit is an integer literal.
	numLit struct{ v float64 }
	// call is a function call: name(args...).
	call struct {
		name string // lower case
		args []node
	}
	// member is x.name.
	member struct {
		x    node
		name string
	}
	// index is x[i].
	index struct {
		x, i node
	}
)

func (strLit) node() {}
func (numLit) node() {}
func (call) node()   {}
func (member) node() {}
func (index) node()  {}

// isExpression reports whether s is a template expression, as ARM decides:
// it starts with "[" and ends with "]", and does not start with "[[", which
// escapes a literal bracket.
func isExpression(s string) bool {
	return len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' && !strings.HasPrefix(s, "[[")
}

// unescape returns the literal value of a string that is not an expression:
// "[[x]" stands for "[x]".
func unescape(s string) string {
	if strings.HasPrefix(s, "[[") && strings.HasSuffix(s, "]") {
		return s[1:]
	}
	return s
}

// exprError is a syntax error in an expression, with the position (1-based,
// in characters of the whole string) where it was found.
type exprError struct {
	expr string
	pos  int
	msg  string
}

func (e *exprError) Error() string {
	return fmt.Sprintf("the template language expression '%s' is not valid: %s at position %d", e.expr, e.msg, e.pos)
}

// parseExpression parses an expression string, brackets included.
func parseExpression(s string) (node, error) {
	if !isExpression(s) {
		return nil, &exprError{expr: s, pos: 1, msg: "an expression must be enclosed in '[' and ']'"}
	}
	if len(s) > maxExprLen {
		return nil, &exprError{expr: s[:64] + "...", pos: 1, msg: fmt.Sprintf("the expression is longer than %d characters", maxExprLen)}
	}
	p := &parser{src: s, pos: 1, end: len(s) - 1}
	p.skipSpace()
	if p.pos >= p.end {
		return nil, p.errorf("the expression is empty")
	}
	n, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < p.end {
		return nil, p.errorf("unexpected '%c'", p.src[p.pos])
	}
	return n, nil
}

type parser struct {
	src      string
	pos, end int
}

func (p *parser) errorf(format string, args ...any) error {
	return &exprError{expr: p.src, pos: p.pos + 1, msg: fmt.Sprintf(format, args...)}
}

func (p *parser) skipSpace() {
	for p.pos < p.end && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n' || p.src[p.pos] == '\r') {
		p.pos++
	}
}

// expr parses a primary followed by member and index accessors.
func (p *parser) expr(depth int) (node, error) {
	if depth > maxExprDepth {
		return nil, p.errorf("the expression is nested more than %d levels deep", maxExprDepth)
	}
	n, err := p.primary(depth)
	if err != nil {
		return nil, err
	}
	for {
		p.skipSpace()
		if p.pos >= p.end {
			return n, nil
		}
		switch p.src[p.pos] {
		case '.':
			p.pos++
			p.skipSpace()
			name := p.ident()
			if name == "" {
				return nil, p.errorf("a property name must follow '.'")
			}
			n = member{x: n, name: name}
		case '[':
			p.pos++
			p.skipSpace()
			i, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			p.skipSpace()
			if p.pos >= p.end || p.src[p.pos] != ']' {
				return nil, p.errorf("expected ']'")
			}
			p.pos++
			n = index{x: n, i: i}
		default:
			return n, nil
		}
	}
}

func (p *parser) primary(depth int) (node, error) {
	p.skipSpace()
	if p.pos >= p.end {
		return nil, p.errorf("the expression ends too early")
	}
	c := p.src[p.pos]
	switch {
	case c == '\'':
		return p.str()
	case c == '-' || c >= '0' && c <= '9':
		return p.num()
	case isIdentStart(c):
		name := p.ident()
		p.skipSpace()
		if p.pos >= p.end || p.src[p.pos] != '(' {
			return nil, p.errorf("'%s' must be followed by '(': only function calls, strings and numbers are expressions", name)
		}
		p.pos++
		f := call{name: strings.ToLower(name)}
		p.skipSpace()
		if p.pos < p.end && p.src[p.pos] == ')' {
			p.pos++
			return f, nil
		}
		for {
			a, err := p.expr(depth + 1)
			if err != nil {
				return nil, err
			}
			f.args = append(f.args, a)
			p.skipSpace()
			if p.pos >= p.end {
				return nil, p.errorf("expected ')' to close %s(", name)
			}
			switch p.src[p.pos] {
			case ',':
				p.pos++
			case ')':
				p.pos++
				return f, nil
			default:
				return nil, p.errorf("expected ',' or ')' in the arguments of %s", name)
			}
		}
	}
	return nil, p.errorf("unexpected '%c'", c)
}

func isIdentStart(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }

func (p *parser) ident() string {
	start := p.pos
	for p.pos < p.end {
		c := p.src[p.pos]
		if !isIdentStart(c) && !(c >= '0' && c <= '9') && c != '$' {
			break
		}
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) str() (node, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < p.end {
		c := p.src[p.pos]
		if c == '\'' {
			if p.pos+1 < p.end && p.src[p.pos+1] == '\'' {
				b.WriteByte('\'')
				p.pos += 2
				continue
			}
			p.pos++
			return strLit{v: b.String()}, nil
		}
		b.WriteByte(c)
		p.pos++
	}
	return nil, p.errorf("the string literal is not closed with a quote")
}

func (p *parser) num() (node, error) {
	start := p.pos
	if p.src[p.pos] == '-' {
		p.pos++
	}
	for p.pos < p.end && p.src[p.pos] >= '0' && p.src[p.pos] <= '9' {
		p.pos++
	}
	v, err := strconv.ParseInt(p.src[start:p.pos], 10, 64)
	if err != nil {
		p.pos = start
		return nil, p.errorf("'%s' is not an integer", p.src[start:min(start+20, p.end)])
	}
	return numLit{v: float64(v)}, nil
}

// calls reports whether n calls the function name anywhere.
func calls(n node, name string) bool {
	switch n := n.(type) {
	case call:
		if n.name == name {
			return true
		}
		for _, a := range n.args {
			if calls(a, name) {
				return true
			}
		}
	case member:
		return calls(n.x, name)
	case index:
		return calls(n.x, name) || calls(n.i, name)
	}
	return false
}
