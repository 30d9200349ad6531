package server

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/unitenv"
)

// pgURL returns a URL of a fresh schema on the test PostgreSQL, dropped at
// cleanup (unitenv.PostgresSchema).
func pgURL(t *testing.T) string {
	t.Helper()
	u, _, _ := unitenv.PostgresSchema(t)
	return u
}

// TestTwoServersOnePostgres starts two servers on one database at once: they
// must agree on one CA and one bootstrapped tenant, and only the one that
// bootstrapped writes bootstrap.json.
func TestTwoServersOnePostgres(t *testing.T) {
	dbURL := pgURL(t)
	key := "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
	env := func(k string) string {
		if k == "KEYHOLD_MASTER_KEY" {
			return key
		}
		return ""
	}
	dirs := []string{t.TempDir(), t.TempDir()}
	servers := make([]*Server, len(dirs))
	errs := make([]error, len(dirs))
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dirs[i], DatabaseURL: dbURL,
				Getenv: env, ShutdownTimeout: 5 * time.Second}, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
		defer servers[i].Close()
	}
	if a, b := servers[0].Bootstrap(), servers[1].Bootstrap(); a.TenantID != b.TenantID || a.SubscriptionID != b.SubscriptionID {
		t.Errorf("the servers bootstrapped different tenants: %+v and %+v", a, b)
	}
	tenants, err := servers[0].Store().ListTenants(context.Background())
	if err != nil || len(tenants) != 1 {
		t.Errorf("tenants = %d (%v), want 1", len(tenants), err)
	}
	files := 0
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, BootstrapFile)); err == nil {
			files++
		}
	}
	if files != 1 {
		t.Errorf("%d bootstrap.json files, want 1", files)
	}
	ca0, _ := os.ReadFile(servers[0].CAFile())
	ca1, _ := os.ReadFile(servers[1].CAFile())
	if len(ca0) == 0 || string(ca0) != string(ca1) {
		t.Error("the servers have different CAs")
	}
	// Each answers over TLS with a certificate the shared CA signs.
	for i, s := range servers {
		if r := do(t, client(t, s.CAFile()), "GET", s.URL()+"healthz", "", nil); r.status != 200 {
			t.Errorf("server %d healthz = %d", i, r.status)
		}
	}
}
