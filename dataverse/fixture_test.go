package dataverse_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/dataverse"
	"github.com/keyhold/keyhold/dataverse/dataversetest"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/kms/kmstest"
)

// The environments the tests use.
const (
	envA = "00000000-0000-0000-0000-00000000000a"
	envB = "00000000-0000-0000-0000-00000000000b"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is the data API over dataversetest's environments: a real SQLite
// store and a real keyring whose root keys are wrapped by an in-memory vault
// counted in kms.Metrics, with an Open that stands in for
// (*environment.Service).Open: it knows the environments the test made,
// refuses locked ones as the service does, and seals under each
// environment's active generation.
type fixture struct {
	t      testing.TB
	envs   *dataversetest.Envs
	dbPath string
	store  keyhold.Store
	vault  *kmstest.Memory
	calls  *kms.Metrics
	ring   *envelope.Keyring
	svc    *dataverse.Service
	h      http.Handler
	caller *keyhold.Caller
}

type fixtureOption func(*dataverse.Config)

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	envs := dataversetest.New(t)
	f := &fixture{t: t, envs: envs, dbPath: envs.Path, store: envs.Store, vault: envs.Vault, calls: envs.Calls, ring: envs.Ring,
		caller: &keyhold.Caller{Principal: &keyhold.Principal{ID: "user-1", TenantID: "t1"}, TenantID: "t1"}}
	cfg := dataverse.Config{Store: envs.Store, Open: envs.Open, Now: func() time.Time { return t0 }}
	for _, o := range opts {
		o(&cfg)
	}
	f.svc = dataverse.New(cfg)
	f.h = f.svc.Handler()
	return f
}

// addEnv makes an environment of the caller's tenant whose generation 1 is
// wrapped by a key of kind (keyhold.WrapPlatform or keyhold.WrapCustomer) in
// the memory vault. The keyring stays cold: the first request unwraps.
func (f *fixture) addEnv(id, kind string) { f.t.Helper(); f.envs.Add(f.t, id, "t1", kind) }

func (f *fixture) lock(id, reason string) { f.envs.Lock(id, reason) }

func (f *fixture) unlock(id string) { f.envs.Unlock(id) }

// do sends a request to the handler as the fixture's caller. hdr is pairs
// of header names and values.
func (f *fixture) do(method, path string, body io.Reader, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	r := httptest.NewRequest(method, path, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	r = r.WithContext(keyhold.WithCaller(r.Context(), f.caller))
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func (f *fixture) doJSON(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return f.do(method, path, rd, append([]string{"Content-Type", "application/json"}, hdr...)...)
}

// must sends a request and fails the test unless it gets status want.
func (f *fixture) must(want int, method, path, body string, hdr ...string) map[string]any {
	f.t.Helper()
	w := f.doJSON(method, path, body, hdr...)
	if w.Code != want {
		f.t.Fatalf("%s %s: status %d, want %d: %s", method, path, w.Code, want, w.Body.String())
	}
	var out map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			f.t.Fatalf("%s %s: body is not JSON: %v", method, path, err)
		}
	}
	return out
}

func api(env string) string { return "/environments/" + env + "/api/data/v9.2/" }

// errorOf decodes a Dataverse error body.
func errorOf(t testing.TB, w *httptest.ResponseRecorder) (code, msg string) {
	t.Helper()
	var body struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, w.Body.String())
	}
	return body.Error.Code, body.Error.Message
}

// accountsTable creates the table most tests use.
func (f *fixture) accountsTable(env string) {
	f.t.Helper()
	f.must(201, "POST", api(env)+"tables", `{"name":"Accounts","displayName":"Accounts","columns":[
		{"name":"name","type":"String","required":true},
		{"name":"revenue","type":"decimal"},
		{"name":"employees","type":"Integer"},
		{"name":"active","type":"Boolean"},
		{"name":"founded","type":"DateTime"},
		{"name":"logo","type":"File"}]}`)
}
