package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/pki"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/server"
	"github.com/keyhold/keyhold/sqlite"
)

// crashRows is how many rows the crash test re-encrypts; the issue asks for
// 100,000. KEYHOLD_CRASH_ROWS lowers it for a quick local run.
func crashRows() int {
	if n, err := strconv.Atoi(os.Getenv("KEYHOLD_CRASH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 100000
}

// crashServer runs the keyhold binary as a subprocess on one data directory
// and port, so that it can be killed with SIGKILL and started again.
type crashServer struct {
	t         *testing.T
	bin, dir  string
	addr, log string
	// args and env are extra flags and variables (PostgreSQL's URL and a
	// shared master key).
	args, env []string
	cmd       *exec.Cmd
	probe     *http.Client
}

func (s *crashServer) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, append([]string{"serve", "--listen", s.addr, "--data-dir", s.dir}, s.args...)...)
	// The server's own settings only: none of the caller's KEYHOLD_*.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYHOLD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, s.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(60 * time.Second)
	for {
		if s.probe == nil {
			// Every server writes the CA certificate; only the one that
			// bootstrapped the tenant writes bootstrap.json.
			if hc, err := client.NewHTTPClient(filepath.Join(s.dir, pki.CAFileName)); err == nil {
				s.probe = hc
			}
		}
		if s.probe != nil {
			if resp, err := s.probe.Get("https://" + s.addr + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the server did not become healthy; log:\n%s", s.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL, as a crash would.
func (s *crashServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *crashServer) tail() string {
	b, _ := os.ReadFile(s.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// cliClient signs in with the CLI's login (as the bootstrap administrator,
// or its service principal) in its own profile, and returns the client the
// CLI would use.
func cliClient(t *testing.T, dir, name, bootstrapFile string, asSP bool) *client.Client {
	t.Helper()
	h := &keyHarness{t: t, dir: dir, env: map[string]string{"KEYHOLD_CONFIG": filepath.Join(dir, name+".json"), "HOME": dir}}
	args := []string{"login", "--bootstrap", bootstrapFile}
	if asSP {
		args = append(args, "--as-service-principal")
	}
	h.ok(args...)
	var out, errOut bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut,
		getenv: func(k string) string { return h.env[k] }, now: time.Now, pollInterval: 100 * time.Millisecond}
	c, _, err := a.connect()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seedRows writes rows lo..hi-1 of the account table as the data API
// would (the columns as a JSON object, sealed under the environment's
// active generation), in transactions of 5,000 rows, through a server
// started in this process with cfg (the data directory, or PostgreSQL).
func seedRows(t *testing.T, cfg server.Config, tenant, adminID, envID string, lo, hi int) {
	t.Helper()
	ctx := context.Background()
	cfg.Listen = "127.0.0.1:0"
	s, err := server.Start(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := s.Store().GetPrincipal(ctx, adminID)
	if err != nil {
		t.Fatal(err)
	}
	env, err := s.Environments().Open(ctx, &keyhold.Caller{Principal: p, TenantID: tenant}, envID, true)
	if err != nil {
		t.Fatal(err)
	}
	const perTx = 5000
	for from := lo; from < hi; from += perTx {
		err := s.Store().InTx(ctx, func(tx keyhold.Store) error {
			for i := from; i < min(from+perTx, hi); i++ {
				id := crashRowID(i)
				content, _ := json.Marshal(map[string]any{"name": fmt.Sprintf("Contoso %d", i), "n": i})
				sealed, gen, err := env.Seal(ctx, envelope.RowBinding(envID, "account", id), content)
				if err != nil {
					return err
				}
				now := time.Now().UTC()
				if err := tx.PutRow(ctx, &keyhold.SealedRow{EnvironmentID: envID, Table: "account", ID: id, Generation: gen, Sealed: sealed,
					CreatedAt: now, UpdatedAt: now}, -1); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// crashRowID is row i's id: a GUID, as the data API wants.
func crashRowID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// buildKeyhold builds the keyhold binary into dir.
func buildKeyhold(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "keyhold")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestLinkSurvivesKills is the crash test: a real server process
// with an environment of crashRows rows of known content starts a link to
// a customer's key, is killed with SIGKILL at least five times at random
// points of the re-encryption and started again on the same data
// directory and port; the operation then ends Succeeded, every row reads
// back equal through the data API, the platform generation is destroyed
// and no row is left below the active generation.
func TestLinkSurvivesKills(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, writes 100,000 rows and kills the server five times")
	}
	tmp := t.TempDir()
	srv := &crashServer{t: t, bin: buildKeyhold(t, tmp), dir: filepath.Join(tmp, "data"), addr: freeAddr(t), log: filepath.Join(tmp, "server.log")}
	srv.start()
	t.Cleanup(srv.kill)
	linkKillWalk(t, crashWalk{
		tmp: tmp, rows: crashRows(), kills: 5, victim: srv,
		// SQLite commits one API write at a time: the bulk of the rows goes
		// straight into the store while the binary is down.
		seed: func(seed func(server.Config)) {
			srv.kill()
			seed(server.Config{DataDir: srv.dir, Getenv: func(string) string { return "" }})
			srv.start()
		},
		open: func() (keyhold.Store, error) {
			return sqlite.Open(context.Background(), filepath.Join(srv.dir, server.DefaultDBFile))
		},
	})
}

// TestLinkSurvivesKillsPostgres is the crash test on PostgreSQL with two
// server processes behind one public URL, as behind a load balancer: the
// one the clients use is killed three times during the re-encryption and
// started again, while the other keeps running. Neither may take over the
// operation before the killed one's lease ends (PostgreSQL is shared, so no
// process may assume a lease it finds is its own); the job then resumes
// from its cursor in whichever server leases it, and no row is lost.
// KEYHOLD_CRASH_ROWS sets the rows (default 20,000: each kill that lands
// while the job runs waits out a 30 s lease).
func TestLinkSurvivesKillsPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary, runs two servers on PostgreSQL and kills one three times")
	}
	dsn, _, _ := testenv.PostgresSchema(t)
	rows := 20000
	if n, err := strconv.Atoi(os.Getenv("KEYHOLD_CRASH_ROWS")); err == nil && n > 0 {
		rows = n
	}
	tmp := t.TempDir()
	bin := buildKeyhold(t, tmp)
	// One master key and one public URL for both, as a fleet would have.
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	a, b := freeAddr(t), freeAddr(t)
	env := []string{"KEYHOLD_MASTER_KEY=" + key}
	args := []string{"--database-url", dsn, "--public-url", "https://" + a + "/"}
	victim := &crashServer{t: t, bin: bin, dir: filepath.Join(tmp, "a"), addr: a, log: filepath.Join(tmp, "a.log"), args: args, env: env}
	victim.start()
	t.Cleanup(victim.kill)
	other := &crashServer{t: t, bin: bin, dir: filepath.Join(tmp, "b"), addr: b, log: filepath.Join(tmp, "b.log"), args: args, env: env}
	other.start()
	t.Cleanup(other.kill)
	linkKillWalk(t, crashWalk{
		tmp: tmp, rows: rows, kills: 3, victim: victim,
		seed: func(seed func(server.Config)) {
			seed(server.Config{DataDir: filepath.Join(tmp, "seed"), DatabaseURL: dsn,
				Getenv: func(k string) string {
					if k == "KEYHOLD_MASTER_KEY" {
						return key
					}
					return ""
				}})
		},
		open: func() (keyhold.Store, error) { return postgres.Open(context.Background(), dsn) },
		stop: other.kill,
	})
	t.Logf("the other server's log (last lines):\n%s", other.tail())
}

// crashWalk is one run of linkKillWalk.
type crashWalk struct {
	tmp   string
	rows  int
	kills int
	// victim is the server the clients use and the test kills.
	victim *crashServer
	// seed writes rows through an in-process server started with the
	// config it is handed (the walk fills in the rest).
	seed func(func(server.Config))
	// open opens the store, once every server is stopped.
	open func() (keyhold.Store, error)
	// stop stops any other server before the store is read.
	stop func()
}

// linkKillWalk sets up a customer's key and an environment of w.rows rows
// of known content, links it, kills w.victim w.kills times at random points
// and starts it again, then checks the operation Succeeded, every row reads
// back equal and the store holds no row below the active generation.
func linkKillWalk(t *testing.T, w crashWalk) {
	ctx := context.Background()
	srv, tmp := w.victim, w.tmp
	bf := filepath.Join(srv.dir, server.BootstrapFile)
	owner := cliClient(t, tmp, "owner", bf, true)
	admin := cliClient(t, tmp, "admin", bf, false)
	b, err := readBootstrap(bf)
	if err != nil {
		t.Fatal(err)
	}
	spID, err := owner.SignedInObjectID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	adminID, err := admin.SignedInObjectID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cmk := setupCMK(t, owner, b.SubscriptionID, b.TenantID, spID, "rg-crash", "kv-crash", "ep-crash", adminID)

	env, err := admin.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Crash", Region: "unitedstates", Type: client.EnvironmentSandbox, Managed: true})
	if err != nil {
		t.Fatal(err)
	}
	envID := env.Name
	if _, err := admin.CreateTable(ctx, envID, client.DataTable{Name: "account", Columns: []client.DataColumn{
		{Name: "name", Type: "String"}, {Name: "n", Type: "Integer"}}}); err != nil {
		t.Fatal(err)
	}

	// Rows of known content: the first ones through the data API, in
	// parallel; the rest straight into the store, sealed by the
	// environment's own keyring in an in-process server.
	n := w.rows
	viaAPI := min(n, 1000)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= viaAPI {
					return
				}
				_, err := admin.CreateRow(ctx, envID, "account", client.DataRow{"accountid": crashRowID(i), "name": fmt.Sprintf("Contoso %d", i), "n": i})
				if err != nil {
					select {
					case errs <- fmt.Errorf("row %d: %w", i, err):
					default:
					}
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	t.Logf("%d rows written through the data API in %v", viaAPI, time.Since(start).Round(time.Millisecond))
	if n > viaAPI {
		start = time.Now()
		w.seed(func(cfg server.Config) { seedRows(t, cfg, b.TenantID, adminID, envID, viaAPI, n) })
		t.Logf("%d rows written through the store in %v", n-viaAPI, time.Since(start).Round(time.Millisecond))
	}

	op, err := admin.LinkPolicy(ctx, envID, cmk.policy.Properties.SystemID)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	midRun := 0
	for kill := 1; kill <= w.kills; kill++ {
		var cur *client.LifecycleOperation
		if kill == 1 {
			// The first kill lands as soon as rows move, so that a fast
			// machine or a small KEYHOLD_CRASH_ROWS still kills mid-run.
			for cur == nil || (cur.Progress.Done == 0 && !cur.Ended()) {
				time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
				if cur, err = admin.GetOperation(ctx, op.ID); err != nil {
					t.Fatalf("before kill %d: %v", kill, err)
				}
			}
		} else {
			time.Sleep(time.Duration(100+rng.IntN(1401)) * time.Millisecond)
			if cur, err = admin.GetOperation(ctx, op.ID); err != nil {
				t.Fatalf("before kill %d: %v", kill, err)
			}
		}
		if !cur.Ended() {
			midRun++
		}
		srv.kill()
		t.Logf("kill %d: operation %s, %d/%d records", kill, cur.State.ID, cur.Progress.Done, cur.Progress.Total)
		srv.start()
	}
	if midRun == 0 {
		t.Fatal("every kill came after the re-encryption had ended; nothing was tested")
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	final, err := admin.WaitOperation(wctx, op, nil)
	if err != nil || final.State.ID != client.OperationSucceeded {
		t.Fatalf("after the kills: %+v, %v\nserver log:\n%s", final, err, srv.tail())
	}
	t.Logf("%d of %d kills landed mid-run; the operation Succeeded", midRun, w.kills)

	got, err := admin.ListRows(ctx, envID, "account", 0, 5000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("read %d rows back, want %d", len(got), n)
	}
	seen := make([]bool, n)
	for _, r := range got {
		id, _ := r["accountid"].(string)
		num, _ := r["n"].(float64)
		i := int(num)
		if i < 0 || i >= n || seen[i] || id != crashRowID(i) || r["name"] != fmt.Sprintf("Contoso %d", i) {
			t.Fatalf("row %v is not one written (or read twice)", r)
		}
		seen[i] = true
	}
	if e, err := admin.GetEnvironment(ctx, envID); err != nil || e.Properties.Encryption.Status != "Encrypted" || e.Properties.ProtectionStatus.KeyManagedBy != "Customer" {
		t.Fatalf("environment after the link: %+v, %v", e, err)
	}

	// The store itself, with the server stopped: one live generation, the
	// platform's destroyed, no row below the active one.
	srv.kill()
	if w.stop != nil {
		w.stop()
	}
	st, err := w.open()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gens, err := st.ListGenerations(ctx, envID)
	if err != nil {
		t.Fatal(err)
	}
	var active int64
	for _, g := range gens {
		switch g.State {
		case keyhold.GenerationActive:
			active = g.Generation
		case keyhold.GenerationDestroyed:
			if len(g.Wrapped) != 0 {
				t.Errorf("destroyed generation %d still has its wrapped key", g.Generation)
			}
		default:
			t.Errorf("generation %d is %s, want active or destroyed", g.Generation, g.State)
		}
	}
	if active < 2 || len(gens) < 2 {
		t.Fatalf("generations %+v, want the platform's destroyed and a newer one active", gens)
	}
	total, below, err := st.CountRows(ctx, envID, active)
	if err != nil || total != int64(n) || below != 0 {
		t.Fatalf("CountRows = %d total, %d below generation %d, %v; want %d, 0", total, below, active, err, n)
	}
}
