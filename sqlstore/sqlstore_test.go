package sqlstore

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/keyhold/keyhold"
)

func TestRebindDollar(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT 1", "SELECT 1"},
		{"a = ? AND b = ?", "a = $1 AND b = $2"},
		{"x = '?' AND y = ?", "x = '?' AND y = $1"},
		{`"we?rd" = ? OR z = 'it''s ?' OR w = ?`, `"we?rd" = $1 OR z = 'it''s ?' OR w = $2`},
		{strings.Repeat("?,", 11) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12"},
	}
	for _, tt := range tests {
		if got := RebindDollar(tt.in); got != tt.want {
			t.Errorf("RebindDollar(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestScopeUnder(t *testing.T) {
	tests := []struct {
		prefix   string
		wantCond bool
		wantArgs []any
	}{
		{"", false, nil},
		{"/", false, nil},
		{"/Subscriptions/A/", true, []any{"/subscriptions/a", "/subscriptions/a0", "/subscriptions/a", "/subscriptions/a/"}},
		{"/subscriptions/a", true, []any{"/subscriptions/a", "/subscriptions/a0", "/subscriptions/a", "/subscriptions/a/"}},
	}
	for _, tt := range tests {
		cond, args := scopeUnder("c", tt.prefix)
		if (cond != "") != tt.wantCond || len(args) != len(tt.wantArgs) {
			t.Errorf("scopeUnder(%q) = %q %v, want condition %v with %v", tt.prefix, cond, args, tt.wantCond, tt.wantArgs)
			continue
		}
		for i := range args {
			if args[i] != tt.wantArgs[i] {
				t.Errorf("scopeUnder(%q) arg %d = %v, want %v", tt.prefix, i, args[i], tt.wantArgs[i])
			}
		}
	}
	// The range holds exactly the keys below the prefix, by byte order.
	p, lo, hi := "/subscriptions/a", "/subscriptions/a/", "/subscriptions/a0"
	for key, want := range map[string]bool{
		"/subscriptions/a/resourcegroups/rg": true,
		"/subscriptions/a/":                  true,
		"/subscriptions/ab":                  false,
		"/subscriptions/a.b":                 false,
		"/subscriptions/a-b":                 false,
		"/subscriptions/a0":                  false,
		"/subscriptions/b":                   false,
	} {
		if got := key == p || (key >= lo && key < hi); got != want {
			t.Errorf("%q under %q: got %v, want %v", key, p, got, want)
		}
	}
}

func TestTimeEncoding(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
		code string
	}{
		{time.Time{}, "0001-01-01T00:00:00.000000000Z", ""},
		{time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", 3600)), "2025-01-02T02:04:05.000000006Z", ""},
		{time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "", keyhold.EInvalid},
		{time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC), "", keyhold.EInvalid},
	}
	for _, tt := range tests {
		got, err := encTime(tt.in)
		if keyhold.ErrorCode(err) != tt.code || got != tt.want {
			t.Errorf("encTime(%v) = %q, %v; want %q, code %q", tt.in, got, err, tt.want, tt.code)
			continue
		}
		if err != nil {
			continue
		}
		var back time.Time
		if err := (dbTime{&back}).Scan(got); err != nil || !back.Equal(tt.in) || back.IsZero() != tt.in.IsZero() {
			t.Errorf("round trip of %v: got %v, %v", tt.in, back, err)
		}
	}
	// Fixed width keeps text order equal to time order.
	a, _ := encTime(time.Date(2025, 1, 1, 0, 0, 9, 0, time.UTC))
	b, _ := encTime(time.Date(2025, 1, 1, 0, 0, 10, 1, time.UTC))
	if !(a < b) {
		t.Errorf("%q sorts after %q", a, b)
	}
}

func TestLoadMigrations(t *testing.T) {
	good := fstest.MapFS{
		"0002_more.sql": {Data: []byte("B")},
		"0001_init.sql": {Data: []byte("A")},
		"README.md":     {Data: []byte("ignored")},
		"0010_ten.sql":  {Data: []byte("C")},
	}
	ms, err := LoadMigrations(good)
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, m := range ms {
		got = append(got, m.Version)
	}
	if want := []int{1, 2, 10}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("versions %v, want %v", got, want)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"unnumbered": {"init.sql": {}},
		"zero":       {"0000_x.sql": {}},
		"duplicate":  {"0001_a.sql": {}, "01_b.sql": {}},
	} {
		if _, err := LoadMigrations(fsys); err == nil {
			t.Errorf("LoadMigrations(%s): got nil error", name)
		}
	}
}

func TestWrapHidesDriverText(t *testing.T) {
	s := New(nil, Dialect{IsUniqueViolation: func(err error) bool { return strings.Contains(err.Error(), "UNIQUE") }})
	tests := []struct {
		err  error
		code string
	}{
		{errors.New("UNIQUE constraint failed: tenants.id"), keyhold.EConflict},
		{errors.New(`syntax error near "SELECT"`), keyhold.EInternal},
	}
	for _, tt := range tests {
		err := s.wrap(tt.err)
		if keyhold.ErrorCode(err) != tt.code {
			t.Errorf("wrap(%v): code %q, want %q", tt.err, keyhold.ErrorCode(err), tt.code)
		}
		if msg := keyhold.ErrorMessage(err); strings.Contains(msg, "tenants.id") || strings.Contains(msg, "SELECT") {
			t.Errorf("wrap(%v): message %q leaks driver text", tt.err, msg)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("wrap(%v) lost the cause for the log", tt.err)
		}
	}
	passthrough := keyhold.Errorf(keyhold.ENotFound, "x")
	if got := s.wrap(passthrough); got != passthrough {
		t.Errorf("wrap changed a *keyhold.Error: %v", got)
	}
}
