package main

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/keyhold/keyhold/client"
)

// table is what a command shows in table output.
type table struct {
	header []string
	rows   [][]string
}

// print writes v as indented JSON with -o json, else the table mk builds.
func (a *app) print(v any, mk func() table) error {
	if a.g.output == "json" {
		return writeJSON(a.stdout, v)
	}
	return writeTable(a.stdout, mk())
}

// say prints a message for people; JSON output stays machine-readable, so
// it gets none.
func (a *app) say(format string, args ...any) {
	if a.g.output != "json" {
		fmt.Fprintf(a.stdout, format+"\n", args...)
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// writeTable writes t as aligned columns. Cells are sanitized so that text
// from the server can neither break the columns nor drive the terminal.
func writeTable(w io.Writer, t table) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, oneCell(c))
		}
		fmt.Fprint(tw, "\n")
	}
	line(t.header)
	for _, r := range t.rows {
		line(r)
	}
	return tw.Flush()
}

func oneCell(s string) string {
	s = strings.Join(strings.Fields(sanitize(s)), " ")
	if s == "" {
		return "-"
	}
	return s
}

// sanitize replaces control characters (escape sequences, tabs, newlines)
// with spaces.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// errorMessage is what "keyhold: ..." shows for err. Server errors print as
// "<message> (<code>)" after any context the CLI added; the client's own
// errors lose their package prefix.
func errorMessage(err error) string {
	msg := err.Error()
	var ce *client.Error
	if !errors.As(err, &ce) {
		// The server's words are left alone; only the client's own lose it.
		msg = strings.ReplaceAll(msg, "client: ", "")
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		msg += " (give the CA that signed the server's certificate with --ca-cert or KEYHOLD_CA_CERT)"
	}
	return msg
}

// requestIDOf returns the request id of a server error, or "".
func requestIDOf(err error) string {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.RequestID
	}
	return ""
}

// progress shows a spinner with a message on stderr while a long wait goes
// on, if stderr is a terminal; otherwise it shows nothing.
type progress struct {
	a     *app
	msg   string
	start time.Time
	n     int
}

func (a *app) progress(msg string) *progress {
	return &progress{a: a, msg: msg, start: a.now()}
}

// tick advances the spinner; pass it to the client's waits.
func (p *progress) tick() {
	if !p.a.stderrTerminal {
		return
	}
	frames := `|/-\`
	fmt.Fprintf(p.a.stderr, "\r%c %s (%ds)", frames[p.n%len(frames)], p.msg, int(p.a.now().Sub(p.start).Seconds()))
	p.n++
}

// done clears the spinner's line.
func (p *progress) done() {
	if p.a.stderrTerminal && p.n > 0 {
		fmt.Fprint(p.a.stderr, "\r\033[K")
	}
}

func yesNo(b *bool) string {
	switch {
	case b == nil:
		return ""
	case *b:
		return "true"
	default:
		return "false"
	}
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
