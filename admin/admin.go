// Package admin serves Keyhold's web pages under /admin/: the admin center
// of platform administrators (environments, enterprise policies, adding and
// removing environments, re-enabling a locked one) and the key vault pages of
// key vault administrators.
//
// Pages hold no authority of their own. A person signs in with a password,
// which is checked by the identity service's token endpoint; the tokens it
// issues stay in a server-side session and every page calls the public APIs
// in-process with them, so role-based access is decided exactly where the
// APIs decide it. The browser holds only a random session id in an HttpOnly,
// Secure, SameSite=Strict cookie, and every form carries the session's CSRF
// token.
package admin

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/seal"
)

// Prefix is where the pages live.
const Prefix = "/admin"

// CookieName is the session cookie. The __Host- prefix makes browsers insist
// on Secure, Path=/ and no Domain, so no other host can plant it.
const CookieName = "__Host-keyhold_session"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Authenticator turns a bearer token into the caller it names; the identity
// service's AuthenticateToken is one.
type Authenticator func(ctx context.Context, token string, audiences ...string) (*keyhold.Caller, error)

// Config configures the pages.
type Config struct {
	// PublicURL is the server's public URL with a trailing slash.
	PublicURL string
	// API is the server's whole handler chain; pages call it in-process as
	// the signed-in user, so authentication, RBAC and audit apply as they do
	// to any client.
	API http.Handler
	// Authenticate reads the signed-in user's roles from their token.
	Authenticate Authenticator
	// SessionLifetime bounds a session; zero means eight hours. A session
	// also ends when its tokens expire.
	SessionLifetime time.Duration
	Logger          *slog.Logger
	Now             func() time.Time
	// Rand is the source of session ids and CSRF tokens; nil means crypto/rand.
	Rand io.Reader
	// Sessions keeps the sessions where every server process sharing the
	// store sees them, sealed with SessionKey (see sessions.go). With both
	// nil, sessions stay in this process's memory, which suits unit tests
	// and a single process only.
	Sessions   keyhold.AdminSessionStore
	SessionKey *seal.Key
}

// Admin serves the pages. It is safe for concurrent use.
type Admin struct {
	cfg      Config
	tmpl     map[string]*template.Template
	mux      *http.ServeMux
	sessions keyhold.AdminSessionStore
	key      *seal.Key
}

// session is one signed-in person, as one request read it from the store.
// Tokens never leave the server.
type session struct {
	id        string // the cookie's value; never stored
	hash      string // hashID(id), the stored name
	version   int64  // the stored version this copy was read at
	createdAt time.Time
	csrf      string
	upn       string
	name      string
	objectID  string
	roles     []string
	tenantID  string
	tokens    map[string]client.Token
	expiresAt time.Time
	flash     string
}

// audiences are the surfaces pages call.
var audiences = []string{client.AudienceARM, client.AudienceBAP, client.AudienceVault}

// New returns the pages for cfg. It fails when the configuration lacks the
// API handler, the authenticator or the public URL, has only one of the
// session store and its key, or a template does not parse.
func New(cfg Config) (*Admin, error) {
	if cfg.API == nil || cfg.Authenticate == nil || cfg.PublicURL == "" {
		return nil, errors.New("admin: the API handler, the authenticator and the public URL are required")
	}
	if (cfg.Sessions == nil) != (cfg.SessionKey == nil) {
		return nil, errors.New("admin: the session store and the session key go together")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.SessionLifetime <= 0 {
		cfg.SessionLifetime = 8 * time.Hour
	}
	a := &Admin{cfg: cfg, sessions: cfg.Sessions, key: cfg.SessionKey, tmpl: map[string]*template.Template{}}
	if a.sessions == nil {
		key, err := memKey()
		if err != nil {
			return nil, err
		}
		a.sessions, a.key = newMemSessions(), key
	}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, p := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", p)
		if err != nil {
			return nil, fmt.Errorf("admin: template %s: %w", name, err)
		}
		a.tmpl[name] = t
	}
	a.routes()
	return a, nil
}

// Handler returns the pages' handler, for paths under Prefix.
func (a *Admin) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "same-origin")
		a.mux.ServeHTTP(w, r)
	})
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"lower":       strings.ToLower,
	"list":        func(s ...string) []string { return s },
	"trimPrefix":  func(prefix, s string) string { return strings.TrimSpace(strings.TrimPrefix(s, prefix)) },
	"pathEscape":  url.PathEscape,
	"queryEscape": url.QueryEscape,
	"stateClass": func(s string) string {
		switch strings.ToLower(s) {
		case "enabled", "encrypted", "succeeded", "healthy", "registered", "ready":
			return "ok"
		case "disabled", "failed", "unhealthy", "locked":
			return "bad"
		case "encrypting", "running", "notstarted", "registering", "pending", "degraded":
			return "busy"
		}
		return "neutral"
	},
}

func (a *Admin) randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(a.cfg.Rand, b); err != nil {
		return "", fmt.Errorf("admin: no randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// sessionFrom returns the request's live session, or nil, also when the
// store cannot be read (logged): for pages that show the header either way.
func (a *Admin) sessionFrom(r *http.Request) *session {
	s, err := a.session(r)
	if err != nil {
		a.cfg.Logger.Error("admin: reading a session failed", "err", err.Error())
		return nil
	}
	return s
}

func (a *Admin) setCookie(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// has reports whether the session's user holds one of roles.
func (s *session) has(roles ...string) bool {
	for _, have := range s.roles {
		for _, want := range roles {
			if have == want {
				return true
			}
		}
	}
	return false
}

// UPN returns the signed-in user's name, for the header.
func (s *session) UPN() string { return s.upn }

// PlatformAdmin reports whether the user may use the admin center: the
// roles the platform admin API itself accepts.
func (s *session) PlatformAdmin() bool {
	return s.has(keyhold.RoleGlobalAdministrator, keyhold.RolePowerPlatformAdministrator, keyhold.RoleDynamics365Administrator)
}

// Token implements client.TokenSource from the session's tokens.
func (s *session) Token(_ context.Context, audience string) (string, error) {
	t, ok := s.tokens[audience]
	if !ok {
		return "", errors.New("admin: the session holds no token for " + audience)
	}
	return t.AccessToken, nil
}

// inProcess is an http.RoundTripper that serves requests with the server's
// own handler, so pages reach the APIs without a network hop or a second
// TLS trust decision.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.RequestURI = r.URL.RequestURI()
	// The API sees the call as the person's own: from their address (a
	// vault's IP rules and the audit log judge them, not this server) and
	// over TLS to the public host, as they reached the pages, so that the
	// URLs it writes back (key ids) are the public ones.
	r.RemoteAddr = "127.0.0.1:0"
	if addr, ok := req.Context().Value(personKey{}).(string); ok && addr != "" {
		r.RemoteAddr = addr
	}
	if r.Host == "" {
		r.Host = r.URL.Host
	}
	if r.URL.Scheme == "https" {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: r.URL.Hostname()}
	}
	if r.Body == nil {
		r.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	resp := rec.Result()
	resp.Request = req
	if resp.Body == nil {
		resp.Body = io.NopCloser(bytes.NewReader(nil))
	}
	return resp, nil
}

// personKey carries the address of the person a page serves into the API
// calls it makes for them.
type personKey struct{}

// withPerson marks r's context with the person's address, for inProcess.
func withPerson(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), personKey{}, r.RemoteAddr))
}

// client returns an API client acting as s (nil: unauthenticated).
func (a *Admin) client(s *session) *client.Client {
	cfg := client.Config{Server: a.cfg.PublicURL, HTTPClient: &http.Client{Transport: inProcess{a.cfg.API}, Timeout: time.Minute},
		UserAgent: "keyhold-admin", PollInterval: 200 * time.Millisecond}
	if s != nil {
		cfg.Tokens = s
	}
	c, err := client.New(cfg)
	if err != nil {
		// The URL was checked by New; a failure here is a programming error.
		panic(err)
	}
	return c
}

// checkCSRF reports whether a form post carries the session's token.
func checkCSRF(r *http.Request, s *session) bool {
	got := r.PostFormValue("csrf")
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}
