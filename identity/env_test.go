package identity

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/seal"
)

const (
	testTenant = "6f1e9a2c-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
	testDomain = "contoso.keyhold.internal"
	testPass   = "Correct-Horse-42"
)

// env is a Service on a SQLite store behind a TLS test server that serves
// the identity endpoints at / and the directory API, authenticated, at /v1.0/.
type env struct {
	t     testing.TB
	store keyhold.Store
	key   *seal.Key
	clock *unitenv.Clock
	svc   *Service
	srv   *httptest.Server

	rand io.Reader

	mu       sync.Mutex
	lastInfo httpapi.Info // what the last Graph request annotated
}

func newEnv(t testing.TB) *env {
	return newEnvRand(t, nil)
}

// newEnvRand is newEnv with the service's ids and secrets drawn from rnd, so
// that fuzz seeds can name a real client and its secret.
func newEnvRand(t testing.TB, rnd io.Reader) *env {
	t.Helper()
	ctx := context.Background()
	st := unitenv.SQLite(t, "keyhold.db")
	if err := st.CreateTenant(ctx, &keyhold.Tenant{ID: testTenant, DisplayName: "Contoso", DefaultDomain: testDomain, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	key, err := seal.NewKey(seal.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, key: key, clock: unitenv.NewClock(time.Now()), rand: rnd}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	e.svc = e.newService()
	return e
}

// newService starts a Service on the env's store, as a restart would.
func (e *env) newService() *Service {
	e.t.Helper()
	svc, err := New(context.Background(), e.store, e.key, Config{
		PublicURL: e.srv.URL + "/",
		Now:       e.clock.Now,
		Logger:    slog.New(slog.DiscardHandler),
		Rand:      e.rand,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	svc.argon = argonParams{memory: 1024, time: 1, threads: 1} // fast for tests; the format is the same
	return svc
}

func (e *env) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1.0/") {
		e.svc.Handler().ServeHTTP(w, r)
		return
	}
	ctx, info := httpapi.WithInfo(r.Context())
	defer func() {
		e.mu.Lock()
		e.lastInfo = *info
		e.mu.Unlock()
	}()
	c, err := e.svc.Authenticate(ctx, r, AudienceGraph)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	e.svc.GraphHandler().ServeHTTP(w, r.WithContext(keyhold.WithCaller(ctx, c)))
}

func (e *env) info() httpapi.Info {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastInfo
}

func (e *env) user(upn string, roles ...string) *keyhold.Principal {
	e.t.Helper()
	p, err := e.svc.CreateUser(context.Background(), testTenant, upn, strings.Split(upn, "@")[0], keyhold.NewSecret([]byte(testPass)), roles)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) sp(name string) (*keyhold.Principal, string) {
	e.t.Helper()
	p, sec, err := e.svc.CreateServicePrincipal(context.Background(), testTenant, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return p, string(sec.Reveal())
}

// token issues a token for p without a credential.
func (e *env) token(p *keyhold.Principal, aud string) string {
	e.t.Helper()
	tok, _, err := e.svc.IssueToken(context.Background(), p, aud)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// post sends a form to the token endpoint of tenant and returns the status
// and decoded JSON body.
func (e *env) post(tenant string, form url.Values) (int, map[string]any, http.Header) {
	e.t.Helper()
	resp, err := e.srv.Client().PostForm(e.srv.URL+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decodeBody(e.t, resp.Body), resp.Header
}

// do sends a Graph request with token tok and returns the status and body.
func (e *env) do(method, path, tok string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, decodeBody(e.t, resp.Body)
}

func decodeBody(t testing.TB, r io.Reader) map[string]any {
	t.Helper()
	b, _ := io.ReadAll(r)
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body is not a JSON object: %v: %s", err, b)
	}
	return m
}

// graphCode returns the error code of a Graph error body.
func graphCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// signWith signs claims with an arbitrary key, header and algorithm, to
// forge tokens.
func signWith(t testing.TB, k *rsa.PrivateKey, header map[string]any, c any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(c)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(p)
	if k == nil {
		return input + "."
	}
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// payload decodes the claims of a JWT without verifying it.
func payload(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
