package resourcegraph

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Pos is where a token starts in the query text: Line counts from 1, Column
// (characters, not bytes) from 0, as Kusto's characterPositionInLine does.
type Pos struct {
	Line   int
	Column int
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokString
	tokNumber
	tokPunct // | , ( ) [ ] . = and the comparison operators
)

type token struct {
	kind tokKind
	text string // identifiers, punctuation and numbers as written; strings unquoted
	raw  string // the token as written, for error messages
	pos  Pos
}

// ParseError is a query that does not parse or names something unknown.
// Code is the detail code ARM's Resource Graph gives it: ParserFailure for
// syntax, SemanticError for unknown columns, tables and functions.
type ParseError struct {
	Code    string
	Message string
	Pos     Pos
	Token   string
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("resourcegraph: %s (line %d, column %d)", e.Message, e.Pos.Line, e.Pos.Column+1)
}

// maxQueryBytes bounds the query text; Resource Graph refuses long queries too.
const maxQueryBytes = 16 << 10

// lex splits q into tokens. Comments (// to the end of the line) are skipped.
func lex(q string) ([]token, error) {
	var toks []token
	line, lineStart := 1, 0
	pos := func(i int) Pos { return Pos{Line: line, Column: utf8.RuneCountInString(q[lineStart:i])} }
	fail := func(i int, tok, format string, args ...any) error {
		return &ParseError{Code: "ParserFailure", Message: fmt.Sprintf(format, args...), Pos: pos(i), Token: tok}
	}
	i := 0
	for i < len(q) {
		c := q[i]
		switch {
		case c == '\n':
			i++
			line, lineStart = line+1, i
			continue
		case c == ' ' || c == '\t' || c == '\r':
			i++
			continue
		case c == '/' && i+1 < len(q) && q[i+1] == '/':
			for i < len(q) && q[i] != '\n' {
				i++
			}
			continue
		case isIdentStart(c):
			start := i
			for i < len(q) && isIdentPart(q[i]) {
				i++
			}
			word := q[start:i]
			switch {
			// Operators spelled with a dash: project-away.
			case word == "project" && strings.HasPrefix(q[i:], "-away"):
				i += len("-away")
				word = q[start:i]
			// in~ is the case-insensitive in.
			case word == "in" && i < len(q) && q[i] == '~':
				i++
				word = q[start:i]
			}
			toks = append(toks, token{kind: tokIdent, text: word, raw: word, pos: pos(start)})
			continue
		case c == '@' && i+1 < len(q) && (q[i+1] == '\'' || q[i+1] == '"'):
			// A verbatim string: no escapes, the quote doubled stands for itself.
			start := i
			quote := q[i+1]
			i += 2
			var b strings.Builder
			for {
				if i >= len(q) || q[i] == '\n' {
					return nil, fail(start, q[start:i], "the string that starts here is not closed")
				}
				if q[i] == quote {
					if i+1 < len(q) && q[i+1] == quote {
						b.WriteByte(quote)
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(q[i])
				i++
			}
			toks = append(toks, token{kind: tokString, text: b.String(), raw: q[start:i], pos: pos(start)})
			continue
		case c == '\'' || c == '"':
			start := i
			i++
			var b strings.Builder
			for {
				if i >= len(q) || q[i] == '\n' {
					return nil, fail(start, q[start:i], "the string that starts here is not closed")
				}
				if q[i] == c {
					i++
					break
				}
				if q[i] == '\\' {
					if i+1 >= len(q) {
						return nil, fail(start, q[start:], "the string that starts here is not closed")
					}
					switch e := q[i+1]; e {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case '\\', '\'', '"':
						b.WriteByte(e)
					default:
						return nil, fail(i, q[i:i+2], "unknown escape sequence %q in a string", q[i:i+2])
					}
					i += 2
					continue
				}
				b.WriteByte(q[i])
				i++
			}
			toks = append(toks, token{kind: tokString, text: b.String(), raw: q[start:i], pos: pos(start)})
			continue
		case c >= '0' && c <= '9':
			start := i
			for i < len(q) && q[i] >= '0' && q[i] <= '9' {
				i++
			}
			if i+1 < len(q) && q[i] == '.' && q[i+1] >= '0' && q[i+1] <= '9' {
				i++
				for i < len(q) && q[i] >= '0' && q[i] <= '9' {
					i++
				}
			}
			if i < len(q) && isIdentStart(q[i]) {
				for i < len(q) && isIdentPart(q[i]) {
					i++
				}
				return nil, fail(start, q[start:i], "%q is neither a number nor a name", q[start:i])
			}
			toks = append(toks, token{kind: tokNumber, text: q[start:i], raw: q[start:i], pos: pos(start)})
			continue
		}
		// Punctuation and operators, longest first.
		start := i
		var op string
		switch {
		case c == '!' && i+1 < len(q) && isIdentStart(q[i+1]):
			// Negated word operators: !contains, !has, !in, !in~, ...
			i++
			for i < len(q) && isIdentPart(q[i]) {
				i++
			}
			if q[start+1:i] == "in" && i < len(q) && q[i] == '~' {
				i++
			}
			toks = append(toks, token{kind: tokIdent, text: q[start:i], raw: q[start:i], pos: pos(start)})
			continue
		case strings.HasPrefix(q[i:], "=="), strings.HasPrefix(q[i:], "!="), strings.HasPrefix(q[i:], "=~"),
			strings.HasPrefix(q[i:], "!~"), strings.HasPrefix(q[i:], "<="), strings.HasPrefix(q[i:], ">="):
			op = q[i : i+2]
		case strings.ContainsRune("|,()[].=<>", rune(c)):
			op = q[i : i+1]
		default:
			r, size := utf8.DecodeRuneInString(q[i:])
			if r == utf8.RuneError && size <= 1 {
				return nil, fail(i, fmt.Sprintf("\\x%02x", c), "the query is not valid UTF-8")
			}
			return nil, fail(i, string(r), "unexpected character %q", r)
		}
		i += len(op)
		toks = append(toks, token{kind: tokPunct, text: op, raw: op, pos: pos(start)})
	}
	toks = append(toks, token{kind: tokEOF, raw: "<end of query>", pos: pos(len(q))})
	return toks, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
