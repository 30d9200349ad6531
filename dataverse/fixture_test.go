package dataverse_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/dataverse"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/kms/kmstest"
	"github.com/keyhold/keyhold/sqlite"
)

// The environments the tests use.
const (
	envA = "00000000-0000-0000-0000-00000000000a"
	envB = "00000000-0000-0000-0000-00000000000b"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fixture is the data API over a real SQLite store and a real keyring whose
// root keys are wrapped by an in-memory vault counted in kms.Metrics. Its
// Open stands in for (*environment.Service).Open: it knows the environments
// the test made, refuses locked ones as the service does, and seals under
// each environment's active generation.
type fixture struct {
	t      testing.TB
	dbPath string
	store  keyhold.Store
	vault  *kmstest.Memory
	calls  *kms.Metrics
	ring   *envelope.Keyring
	svc    *dataverse.Service
	h      http.Handler
	caller *keyhold.Caller

	mu     sync.Mutex
	active map[string]int64
	locked map[string]string
}

type fixtureOption func(*dataverse.Config)

func newFixture(t testing.TB, opts ...fixtureOption) *fixture {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyhold.db")
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{t: t, dbPath: path, store: store, vault: kmstest.NewMemory(), calls: kms.NewMetrics(),
		active: map[string]int64{}, locked: map[string]string{},
		caller: &keyhold.Caller{Principal: &keyhold.Principal{ID: "user-1", TenantID: "t1"}, TenantID: "t1"}}
	f.ring = envelope.NewKeyring(store, kms.GenerationUnwrapper{Wrapper: kms.Counted(f.vault, f.calls)})
	cfg := dataverse.Config{Store: store, Open: f.open, Now: func() time.Time { return t0 }}
	for _, o := range opts {
		o(&cfg)
	}
	f.svc = dataverse.New(cfg)
	f.h = f.svc.Handler()
	return f
}

// addEnv makes an environment whose generation 1 is wrapped by a key of
// kind (keyhold.WrapPlatform or keyhold.WrapCustomer) in the memory vault.
// The keyring stays cold: the first request unwraps.
func (f *fixture) addEnv(id, kind string) {
	f.t.Helper()
	ctx := context.Background()
	e := &keyhold.Environment{ID: id, TenantID: "t1", DisplayName: "env " + id, Region: "europe", Type: keyhold.EnvProduction,
		RuntimeState: keyhold.RuntimeEnabled, KeyManagedBy: keyhold.KeyManagedByMicrosoft, EncryptionStatus: keyhold.EncryptionPlatform,
		CreatedAt: t0, UpdatedAt: t0}
	if err := f.store.CreateEnvironment(ctx, e); err != nil {
		f.t.Fatal(err)
	}
	ref := f.vault.AddKey(keyhold.WrapRef{Kind: kind, PolicyID: "/policies/p1", VaultID: "/vaults/" + kind, KeyName: "k-" + id, Algorithm: kms.DefaultAlgorithm})
	root, err := envelope.NewRootKey(nil)
	if err != nil {
		f.t.Fatal(err)
	}
	defer root.Wipe()
	wrapped, used, err := f.vault.Wrap(ctx, ref, root)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.store.CreateGeneration(ctx, &keyhold.RootKeyGeneration{EnvironmentID: id, Generation: 1, Wrapped: wrapped,
		WrappedBy: used, State: keyhold.GenerationActive, CreatedAt: t0, UpdatedAt: t0}); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.active[id] = 1
	f.mu.Unlock()
}

func (f *fixture) lock(id, reason string) {
	f.mu.Lock()
	f.locked[id] = reason
	f.mu.Unlock()
	f.ring.Wipe(id)
}

func (f *fixture) unlock(id string) {
	f.mu.Lock()
	delete(f.locked, id)
	f.mu.Unlock()
}

type ringSealer struct {
	ring *envelope.Keyring
	gen  int64
}

func (s ringSealer) Seal(ctx context.Context, b envelope.Binding, pt []byte) ([]byte, int64, error) {
	sealed, err := s.ring.Seal(ctx, s.gen, b, pt)
	return sealed, s.gen, err
}

func (s ringSealer) Open(ctx context.Context, b envelope.Binding, sealed []byte) ([]byte, error) {
	return s.ring.Open(ctx, b, sealed)
}

func (f *fixture) open(ctx context.Context, c *keyhold.Caller, id string, write bool) (dataverse.Handle, error) {
	if c == nil || c.Principal == nil {
		return dataverse.Handle{}, keyhold.Errorf(keyhold.EUnauthenticated, "no caller")
	}
	f.mu.Lock()
	gen, ok := f.active[id]
	reason := f.locked[id]
	f.mu.Unlock()
	if !ok {
		return dataverse.Handle{}, keyhold.Errorc(keyhold.ENotFound, "EnvironmentNotFound", "environment %s could not be found in the tenant", id)
	}
	if reason != "" {
		return dataverse.Handle{}, keyhold.Errorc(keyhold.EForbidden, "EnvironmentLocked",
			"environment %s is locked (Environment disabled): %s", id, reason)
	}
	return dataverse.Handle{ID: id, Sealer: ringSealer{f.ring, gen}}, nil
}

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
