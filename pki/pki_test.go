package pki

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/seal"
)

// memStore keeps settings in memory; InTx applies fn's writes only when fn
// succeeds. Methods other than settings panic through the nil embedded Store.
type memStore struct {
	keyhold.Store
	mu   *sync.Mutex
	m    map[string][]byte
	puts int
}

func newMemStore() *memStore { return &memStore{mu: &sync.Mutex{}, m: map[string][]byte{}} }

func (s *memStore) GetSetting(_ context.Context, name string) ([]byte, error) {
	v, ok := s.m[name]
	if !ok {
		return nil, keyhold.Errorf(keyhold.ENotFound, "setting %q not found", name)
	}
	return slices.Clone(v), nil
}

func (s *memStore) PutSetting(_ context.Context, name string, v []byte) error {
	s.m[name] = slices.Clone(v)
	s.puts++
	return nil
}

func (s *memStore) CreateSetting(_ context.Context, name string, v []byte) error {
	if _, ok := s.m[name]; ok {
		return keyhold.Errorf(keyhold.EConflict, "setting %q exists", name)
	}
	s.m[name] = slices.Clone(v)
	return nil
}

func (s *memStore) InTx(_ context.Context, fn func(tx keyhold.Store) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &memStore{mu: s.mu, m: maps.Clone(s.m)}
	if err := fn(tx); err != nil {
		return err
	}
	s.m = tx.m
	s.puts += tx.puts
	return nil
}

func testKey(t *testing.T, b byte) *seal.Key {
	t.Helper()
	k, err := seal.NewKey(keyhold.NewSecret(bytes.Repeat([]byte{b}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestEnsureFirstStartAndRestart(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	dir := t.TempDir()
	cfg := Config{Store: store, Key: testKey(t, 1), Hostnames: []string{"keyhold.example", "10.1.2.3"}, DataDir: dir}

	first, err := Ensure(ctx, cfg)
	if err != nil {
		t.Fatalf("Ensure: %v", err)
	}
	if !first.Issued {
		t.Error("Issued = false on first start")
	}
	if got, want := first.CAFile, filepath.Join(dir, CAFileName); got != want {
		t.Errorf("CAFile = %q, want %q", got, want)
	}
	onDisk, err := os.ReadFile(first.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, first.CAPEM) {
		t.Error("ca.pem differs from CAPEM")
	}
	if !first.CA.IsCA || first.CA.NotAfter.Sub(time.Now()) < 9*365*24*time.Hour {
		t.Errorf("CA: IsCA=%v NotAfter=%v, want a CA for ten years", first.CA.IsCA, first.CA.NotAfter)
	}

	leaf := first.Server.Leaf
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(onDisk) {
		t.Fatal("ca.pem holds no certificate")
	}
	for _, host := range []string{"localhost", "127.0.0.1", "::1", "keyhold.example", "10.1.2.3"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("server certificate does not verify for %s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool}); err == nil {
		t.Error("server certificate verifies for a name it should not carry")
	}
	if d := leaf.NotAfter.Sub(time.Now()); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("server certificate lives %v, want a year", d)
	}

	// Private keys are stored sealed: not parseable as they are, and bound to their label.
	for _, name := range []string{SettingCAKey, SettingServerKey} {
		v := store.m[name]
		if _, err := x509.ParsePKCS8PrivateKey(v); err == nil {
			t.Errorf("%s is stored in the clear", name)
		}
		if _, err := cfg.Key.Open(name, v); err != nil {
			t.Errorf("%s does not open under its label: %v", name, err)
		}
	}

	second, err := Ensure(ctx, cfg)
	if err != nil {
		t.Fatalf("second Ensure: %v", err)
	}
	if second.Issued {
		t.Error("second start reissued an unchanged certificate")
	}
	if !second.CA.Equal(first.CA) || !second.Server.Leaf.Equal(first.Server.Leaf) {
		t.Error("second start changed the CA or server certificate")
	}
}

func TestEnsureReissue(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		hostnames []string
		now       time.Time
		wantNew   bool
	}{
		{"same names, fresh", []string{"a.example"}, start.Add(24 * time.Hour), false},
		{"same names in another order and case", []string{"A.example", "localhost"}, start, false},
		{"new name", []string{"a.example", "b.example"}, start, true},
		{"name removed", nil, start, true},
		{"expiry near", []string{"a.example"}, start.Add(340 * 24 * time.Hour), true},
		{"vault domain wildcard added", []string{"a.example", "*.vault.example.test"}, start, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newMemStore()
			key := testKey(t, 1)
			first, err := Ensure(ctx, Config{Store: store, Key: key, Hostnames: []string{"a.example"}, Now: func() time.Time { return start }})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Ensure(ctx, Config{Store: store, Key: key, Hostnames: tt.hostnames, Now: func() time.Time { return tt.now }})
			if err != nil {
				t.Fatal(err)
			}
			if got.Issued != tt.wantNew {
				t.Errorf("Issued = %v, want %v", got.Issued, tt.wantNew)
			}
			if !got.CA.Equal(first.CA) {
				t.Error("the CA changed")
			}
			if reissued := !got.Server.Leaf.Equal(first.Server.Leaf); reissued != tt.wantNew {
				t.Errorf("certificate changed = %v, want %v", reissued, tt.wantNew)
			}
		})
	}
}

func TestEnsureWrongMasterKey(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	if _, err := Ensure(ctx, Config{Store: store, Key: testKey(t, 1)}); err != nil {
		t.Fatal(err)
	}
	_, err := Ensure(ctx, Config{Store: store, Key: testKey(t, 2)})
	if err == nil {
		t.Fatal("Ensure with another master key succeeded")
	}
	if !strings.Contains(err.Error(), SettingCAKey) || !strings.Contains(err.Error(), "master key") {
		t.Errorf("error %q does not say which key failed and why", err)
	}
}

func TestEnsureConcurrentFirstStart(t *testing.T) {
	ctx := context.Background()
	store := newMemStore()
	key := testKey(t, 1)
	var wg sync.WaitGroup
	cas := make([]*x509.Certificate, 4)
	for i := range cas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine is a process with its own view; InTx serialises writes.
			c, err := Ensure(ctx, Config{Store: &lockedStore{s: store}, Key: key})
			if err != nil {
				t.Error(err)
				return
			}
			cas[i] = c.CA
		}()
	}
	wg.Wait()
	for i := 1; i < len(cas); i++ {
		if cas[i] == nil || !cas[i].Equal(cas[0]) {
			t.Fatalf("start %d got another CA than start 0", i)
		}
	}
}

// lockedStore serialises every call, as a database would.
type lockedStore struct{ s *memStore }

func (l *lockedStore) GetSetting(ctx context.Context, n string) ([]byte, error) {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.GetSetting(ctx, n)
}
func (l *lockedStore) PutSetting(ctx context.Context, n string, v []byte) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.PutSetting(ctx, n, v)
}
func (l *lockedStore) CreateSetting(ctx context.Context, n string, v []byte) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return l.s.CreateSetting(ctx, n, v)
}
func (l *lockedStore) InTx(ctx context.Context, fn func(tx keyhold.Store) error) error {
	return l.s.InTx(ctx, fn)
}

func TestWantedSANs(t *testing.T) {
	dns, ips := WantedSANs([]string{"Host.Example.", "[::1]", "192.168.0.1", "", "localhost", "::ffff:10.0.0.1"})
	if got, want := dns, []string{"host.example", "localhost"}; !slices.Equal(got, want) {
		t.Errorf("dns = %v, want %v", got, want)
	}
	if got, want := ipStrings(ips), []string{"::1", "10.0.0.1", "127.0.0.1", "192.168.0.1"}; !slices.Equal(got, want) {
		t.Errorf("ips = %v, want %v", got, want)
	}
}

// TestWildcardSAN checks that the SAN *.<vault domain> of host-style vault
// URLs verifies for one vault name below the domain and nothing else, and
// does not become the certificate's name.
func TestWildcardSAN(t *testing.T) {
	certs, err := Ensure(context.Background(), Config{Store: newMemStore(), Key: testKey(t, 1),
		Hostnames: []string{"keyhold.example", "*.Vault.Example.Test."}})
	if err != nil {
		t.Fatal(err)
	}
	leaf := certs.Server.Leaf
	if got, want := leaf.Subject.CommonName, "keyhold.example"; got != want {
		t.Errorf("CommonName = %q, want %q", got, want)
	}
	pool := x509.NewCertPool()
	pool.AddCert(certs.CA)
	tests := []struct {
		host string
		ok   bool
	}{
		{"kv-contoso.vault.example.test", true},
		{"KV1.VAULT.EXAMPLE.TEST", true},
		{"keyhold.example", true},
		{"vault.example.test", false},
		{"a.b.vault.example.test", false},
		{"kv1.vault.example.org", false},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: tt.host})
			if (err == nil) != tt.ok {
				t.Errorf("Verify(%s) = %v, want ok %v", tt.host, err, tt.ok)
			}
		})
	}
}

func TestTLSHandshake(t *testing.T) {
	ctx := context.Background()
	certs, err := Ensure(ctx, Config{Store: newMemStore(), Key: testKey(t, 1), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	srv.TLS = TLSConfig(certs.Server)
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certs.CAPEM)
	tests := []struct {
		name    string
		url     string
		maxVer  uint16
		wantErr bool
	}{
		{"trusted CA, localhost", "https://localhost:" + port, 0, false},
		{"trusted CA, 127.0.0.1", "https://127.0.0.1:" + port, 0, false},
		{"TLS 1.2", "https://127.0.0.1:" + port, tls.VersionTLS12, false},
		{"TLS 1.1 refused", "https://127.0.0.1:" + port, tls.VersionTLS11, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tt.maxVer}}}
			resp, err := c.Get(tt.url)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	if got := TLSConfig(certs.Server).MinVersion; got != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", got)
	}
}

func TestLoadFiles(t *testing.T) {
	dir := t.TempDir()
	certs, err := Ensure(context.Background(), Config{Store: newMemStore(), Key: testKey(t, 1)})
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(certs.Server.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs.Server.Leaf.Raw}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	got, err := LoadFiles(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	if !bytes.Equal(got.Certificate[0], certs.Server.Leaf.Raw) {
		t.Error("LoadFiles returned another certificate")
	}
	if _, err := LoadFiles(certFile, certFile); err == nil {
		t.Error("LoadFiles with a certificate as key succeeded")
	}
	if _, err := LoadFiles(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Errorf("LoadFiles of missing files: err = %v, want one naming --tls-cert", err)
	}
}
