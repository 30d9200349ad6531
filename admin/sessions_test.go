package admin_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/admin"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/seal"
	"github.com/keyhold/keyhold/server"
)

// sessBackends are the stores servers share: SQLite in the data
// directory, and a fresh PostgreSQL schema (skipped without
// KEYHOLD_TEST_DATABASE_URL, required under CI).
var sessBackends = []struct {
	name string
	opts func(t *testing.T) []testenv.Option
}{
	{"SQLite", func(*testing.T) []testenv.Option { return nil }},
	{"PostgreSQL", func(t *testing.T) []testenv.Option {
		dsn, _, _ := testenv.PostgresSchema(t)
		return []testenv.Option{testenv.WithConfig(func(c *server.Config) { c.DatabaseURL = dsn })}
	}},
}

// sessDo sends one request to e's own listener with the session cookie (none
// when cookie is ""), without following redirects. A cookie jar would not
// do: it hands a cookie of 127.0.0.1 to every port.
func sessDo(t *testing.T, e *testenv.Env, cookie, method, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Transport: e.HTTP.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return doWithCookie(t, c, method, "https://"+e.Server.Addr().String()+path, cookie, form)
}

// sessSignIn signs the Global Administrator in through e and returns the
// session cookie's value.
func sessSignIn(t *testing.T, e *testenv.Env) string {
	t.Helper()
	resp, body := sessDo(t, e, "", "POST", "/admin/signin", url.Values{"username": {e.Boot.AdminUsername}, "password": {e.Boot.AdminPassword}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", resp.StatusCode, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == admin.CookieName && c.Value != "" {
			return c.Value
		}
	}
	t.Fatal("sign-in set no session cookie")
	return ""
}

// sessSignedIn reports whether cookie is a live session on e, and returns the
// page, whose CSRF field the caller may need.
func sessSignedIn(t *testing.T, e *testenv.Env, cookie string) (bool, string) {
	t.Helper()
	resp, body := sessDo(t, e, cookie, "GET", "/admin/environments", nil)
	switch {
	case resp.StatusCode == http.StatusOK && strings.Contains(body, e.Boot.AdminUsername):
		return true, body
	case resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), "/admin/signin"):
		return false, body
	}
	t.Fatalf("GET /admin/environments = %d %s", resp.StatusCode, body)
	return false, ""
}

func sessCSRF(t *testing.T, page string) string {
	t.Helper()
	const field = `name="csrf" value="`
	i := strings.Index(page, field)
	if i < 0 {
		t.Fatalf("the page has no CSRF field: %s", page)
	}
	v := page[i+len(field):]
	return v[:strings.IndexByte(v, '"')]
}

func sessHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestSessionsAcrossServers runs two servers over one database, as behind
// a load balancer: a person signed in through A is signed in on B with the
// same CSRF token, a page message left by a post to A shows once on B, and
// signing out on B ends the session on A.
func TestSessionsAcrossServers(t *testing.T) {
	for _, be := range sessBackends {
		t.Run(be.name, func(t *testing.T) {
			// One data directory too: it holds the master key both need
			// (and the CA and bootstrap file); the sessions are in the
			// database. B has A's public URL, as servers behind one load
			// balancer have, so that each accepts the other's tokens; the
			// test reaches each at its own address.
			dir := t.TempDir()
			opts := append(be.opts(t), testenv.WithDir(dir))
			a := testenv.Start(t, opts...)
			b := testenv.Start(t, append(slices.Clone(opts), testenv.WithConfig(func(c *server.Config) { c.PublicURL = a.Server.URL() }))...)
			if a.Server.Addr().String() == b.Server.Addr().String() {
				t.Fatal("the two servers share an address")
			}

			cookie := sessSignIn(t, a)
			okA, pageA := sessSignedIn(t, a, cookie)
			okB, pageB := sessSignedIn(t, b, cookie)
			if !okA || !okB {
				t.Fatalf("signed in through A: on A %v, on B %v", okA, okB)
			}
			csrf := sessCSRF(t, pageA)
			if got := sessCSRF(t, pageB); got != csrf {
				t.Fatal("B shows another CSRF token for the same session")
			}

			// A refused re-enable leaves a message on the session in A;
			// B shows it, and then nobody shows it again.
			resp, body := sessDo(t, a, cookie, "POST", "/admin/environments/no-such-environment/reenable",
				url.Values{"csrf": {csrf}, "confirm": {"yes"}})
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("re-enable on A = %d %s", resp.StatusCode, body)
			}
			if _, page := sessSignedIn(t, b, cookie); !strings.Contains(page, `class="flash"`) || !strings.Contains(page, "Refused:") {
				t.Errorf("B does not show the message A left: %s", page)
			}
			if _, page := sessSignedIn(t, a, cookie); strings.Contains(page, `class="flash"`) {
				t.Errorf("A shows the message B already showed: %s", page)
			}

			// A form from A's page posts to B.
			if resp, body := sessDo(t, b, cookie, "POST", "/admin/signout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-out on B = %d %s", resp.StatusCode, body)
			}
			for name, e := range map[string]*testenv.Env{"A": a, "B": b} {
				if ok, _ := sessSignedIn(t, e, cookie); ok {
					t.Errorf("after sign-out on B, the session is live on %s", name)
				}
			}
			if resp, body := sessDo(t, a, cookie, "POST", "/admin/signout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("a post on A after sign-out on B = %d %s, want 401", resp.StatusCode, body)
			}
		})
	}
}

// TestSessionsSealedAtRest reads the sessions table as a database reader
// would: no column holds a session cookie, an access token, a CSRF token or
// the user's name, and a row's sealed contents copied onto another row do
// not open there.
func TestSessionsSealedAtRest(t *testing.T) {
	for _, be := range sessBackends {
		t.Run(be.name, func(t *testing.T) {
			e := testenv.Start(t, be.opts(t)...)
			ctx := context.Background()
			cookies := []string{sessSignIn(t, e), sessSignIn(t, e)}
			var secrets []string
			for _, c := range cookies {
				ok, page := sessSignedIn(t, e, c)
				if !ok {
					t.Fatal("not signed in")
				}
				secrets = append(secrets, c, sessCSRF(t, page))
			}
			// The sessions' access tokens are the server's JWTs: each
			// starts with the header every token of the server has.
			for _, aud := range []string{identity.AudienceManagement, identity.AudienceVault} {
				tok := e.Token(e.Admin(), aud)
				secrets = append(secrets, tok[:strings.IndexByte(tok, '.')+1])
			}
			secrets = append(secrets, e.Boot.AdminUsername)

			db := e.Server.Store().(interface{ DB() *sql.DB }).DB()
			rows, err := db.QueryContext(ctx, `SELECT * FROM admin_sessions`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			cols, err := rows.Columns()
			if err != nil {
				t.Fatal(err)
			}
			hashes := map[string]bool{}
			n := 0
			for rows.Next() {
				n++
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				for i, v := range vals {
					var text string
					switch v := v.(type) {
					case []byte:
						text = string(v)
					default:
						text = fmt.Sprint(v)
					}
					for _, s := range secrets {
						if strings.Contains(text, s) {
							t.Errorf("column %s holds a secret (%d bytes of it)", cols[i], len(s))
						}
					}
					if cols[i] == "id_hash" {
						hashes[text] = true
					}
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n != len(cookies) {
				t.Fatalf("%d rows, want %d", n, len(cookies))
			}
			for _, c := range cookies {
				if !hashes[sessHash(c)] {
					t.Error("no row is named by the SHA-256 of a session cookie")
				}
			}

			// Swapping contents: the first session's row gets the second's.
			store := e.Server.Store()
			first, err := store.GetAdminSession(ctx, sessHash(cookies[0]))
			if err != nil {
				t.Fatal(err)
			}
			second, err := store.GetAdminSession(ctx, sessHash(cookies[1]))
			if err != nil {
				t.Fatal(err)
			}
			first.Sealed = second.Sealed
			if err := store.UpdateAdminSession(ctx, first); err != nil {
				t.Fatal(err)
			}
			if ok, _ := sessSignedIn(t, e, cookies[0]); ok {
				t.Error("a row holding another session's sealed contents still signs in")
			}
			if ok, _ := sessSignedIn(t, e, cookies[1]); !ok {
				t.Error("the session whose contents were copied stopped working")
			}
		})
	}
}

// TestSessionsExpire shows that an expired session is refused and deleted
// when presented, and that signing in sweeps the expired sessions nobody
// presents again.
func TestSessionsExpire(t *testing.T) {
	for _, be := range sessBackends {
		t.Run(be.name, func(t *testing.T) {
			clock := &testenv.Clock{}
			e := testenv.Start(t, append(be.opts(t), testenv.WithClock(clock))...)
			ctx, store := context.Background(), e.Server.Store()
			gone := func(cookie string) bool {
				_, err := store.GetAdminSession(ctx, sessHash(cookie))
				if err != nil && keyhold.ErrorCode(err) != keyhold.ENotFound {
					t.Fatal(err)
				}
				return err != nil
			}

			// Sessions begin nine hours ago, so that now is past their
			// lifetime (eight hours) and their tokens'. (Moving the clock
			// forward instead would leave it ahead of the token lifetimes
			// the pages compute from real time.)
			clock.Shift(-9 * time.Hour)
			presented, forgotten := sessSignIn(t, e), sessSignIn(t, e)
			if ok, _ := sessSignedIn(t, e, presented); !ok {
				t.Fatal("not signed in nine hours ago")
			}
			clock.Reset()
			if ok, _ := sessSignedIn(t, e, presented); ok {
				t.Fatal("an expired session is still signed in")
			}
			if !gone(presented) {
				t.Error("the expired session presented is still stored")
			}
			if gone(forgotten) {
				t.Fatal("the session nobody presented went before a sign-in swept")
			}
			fresh := sessSignIn(t, e)
			if !gone(forgotten) {
				t.Error("signing in did not sweep the expired session")
			}
			if ok, _ := sessSignedIn(t, e, fresh); !ok {
				t.Error("the new session is not signed in")
			}
		})
	}
}

// TestSessionsInMemory runs the pages without a session store, as unit
// tests of other packages may: sessions then live in the one process, and
// sign-in, messages and sign-out work as with a store. A store without its
// key, or a key without its store, is refused.
func TestSessionsInMemory(t *testing.T) {
	e := testenv.Start(t)
	base := admin.Config{PublicURL: e.Server.URL(), API: e.Server.Handler(), Authenticate: e.Server.Identity().AuthenticateToken}
	key, err := seal.NewKey(seal.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	halves := []struct {
		name     string
		sessions keyhold.AdminSessionStore
		key      *seal.Key
	}{
		{"store without key", e.Server.Store(), nil},
		{"key without store", nil, key},
	}
	for _, h := range halves {
		cfg := base
		cfg.Sessions, cfg.SessionKey = h.sessions, h.key
		if _, err := admin.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", h.name)
		}
	}
	a, err := admin.New(base)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	send := func(cookie, method, path string, form url.Values) (*http.Response, string) {
		t.Helper()
		return doWithCookie(t, c, method, srv.URL+path, cookie, form)
	}
	resp, _ := send("", "POST", "/admin/signin", url.Values{"username": {e.Boot.AdminUsername}, "password": {e.Boot.AdminPassword}})
	var cookie string
	for _, ck := range resp.Cookies() {
		if ck.Name == admin.CookieName {
			cookie = ck.Value
		}
	}
	if resp.StatusCode != http.StatusSeeOther || cookie == "" {
		t.Fatalf("sign-in = %d with cookie %t", resp.StatusCode, cookie != "")
	}
	if _, err := e.Server.Store().GetAdminSession(context.Background(), sessHash(cookie)); keyhold.ErrorCode(err) != keyhold.ENotFound {
		t.Errorf("the in-memory session reached the server's store: %v", err)
	}
	_, page := send(cookie, "GET", "/admin/environments", nil)
	if !strings.Contains(page, e.Boot.AdminUsername) {
		t.Fatalf("not signed in: %s", page)
	}
	csrf := sessCSRF(t, page)
	send(cookie, "POST", "/admin/environments/no-such-environment/reenable", url.Values{"csrf": {csrf}, "confirm": {"yes"}})
	if _, page := send(cookie, "GET", "/admin/environments", nil); !strings.Contains(page, "Refused:") {
		t.Errorf("the message is not shown: %s", page)
	}
	if _, page := send(cookie, "GET", "/admin/environments", nil); strings.Contains(page, `class="flash"`) {
		t.Error("the message is shown twice")
	}
	send(cookie, "POST", "/admin/signout", url.Values{"csrf": {csrf}})
	if resp, _ := send(cookie, "GET", "/admin/environments", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("after sign-out = %d, want a redirect to sign in", resp.StatusCode)
	}
}
