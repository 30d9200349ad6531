package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// environment returns an environment with every field set.
func environment(id, tenant string) *keyhold.Environment {
	return &keyhold.Environment{
		ID: id, TenantID: tenant, DisplayName: "Env " + id, Region: "europe", Type: keyhold.EnvProduction,
		Managed: true, RuntimeState: keyhold.RuntimeEnabled, LockReason: "", KeyManagedBy: keyhold.KeyManagedByMicrosoft,
		EncryptionStatus: keyhold.EncryptionPlatform, CreatedBy: "ann", CreatedAt: t0, UpdatedAt: t0,
	}
}

// mustEnv creates an environment and fails t if it cannot.
func mustEnv(t *testing.T, s keyhold.Store, id string) *keyhold.Environment {
	t.Helper()
	e := environment(id, "t1")
	must(t, s.CreateEnvironment(context.Background(), e))
	return e
}

func testEnvironments(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	a := environment("env-a", "t1")
	a.PolicyID = "/subscriptions/S1/resourceGroups/RG/providers/Microsoft.PowerPlatform/enterprisePolicies/Pol"
	a.PolicySystemID = "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/0000"
	a.LinkStatus, a.KeyManagedBy, a.EncryptionStatus = "Linked", keyhold.KeyManagedByCustomer, keyhold.EncryptionEncrypted
	a.NoRevertUntil = t0.Add(30 * 24 * time.Hour)
	must(t, s.CreateEnvironment(ctx, a))
	if a.Version != 1 {
		t.Errorf("CreateEnvironment: Version %d, want 1", a.Version)
	}
	b := environment("env-b", "t2")
	b.Managed = false
	must(t, s.CreateEnvironment(ctx, b))
	c := environment("env-c", "t1")
	c.PolicyID = "/SUBSCRIPTIONS/s1/resourcegroups/rg/providers/microsoft.powerplatform/enterprisepolicies/POL"
	must(t, s.CreateEnvironment(ctx, c))

	got, err := s.GetEnvironment(ctx, "env-a")
	must(t, err)
	same(t, "GetEnvironment", got, a)
	_, err = s.GetEnvironment(ctx, "ENV-A")
	wantCode(t, "GetEnvironment(other case)", err, keyhold.ENotFound)
	wantCode(t, "CreateEnvironment(taken)", s.CreateEnvironment(ctx, environment("env-a", "t9")), keyhold.EConflict)
	wantCode(t, "CreateEnvironment(no id)", s.CreateEnvironment(ctx, environment("", "t1")), keyhold.EInvalid)
	wantCode(t, "CreateEnvironment(no tenant)", s.CreateEnvironment(ctx, environment("env-x", "")), keyhold.EInvalid)

	ids := func(list []*keyhold.Environment) []string {
		out := []string{}
		for _, e := range list {
			out = append(out, e.ID)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		list func() ([]*keyhold.Environment, error)
		want []string
	}{
		{"tenant t1", func() ([]*keyhold.Environment, error) { return s.ListEnvironments(ctx, "t1") }, []string{"env-a", "env-c"}},
		{"every tenant", func() ([]*keyhold.Environment, error) { return s.ListEnvironments(ctx, "") }, []string{"env-a", "env-b", "env-c"}},
		{"no such tenant", func() ([]*keyhold.Environment, error) { return s.ListEnvironments(ctx, "t9") }, []string{}},
		{"policy, other case", func() ([]*keyhold.Environment, error) { return s.ListEnvironmentsByPolicy(ctx, a.PolicyID) }, []string{"env-a", "env-c"}},
		{"no such policy", func() ([]*keyhold.Environment, error) { return s.ListEnvironmentsByPolicy(ctx, "/nope") }, []string{}},
	} {
		list, err := tt.list()
		must(t, err)
		same(t, "list "+tt.name, ids(list), tt.want)
	}
	_, err = s.ListEnvironmentsByPolicy(ctx, "")
	wantCode(t, "ListEnvironmentsByPolicy(\"\")", err, keyhold.EInvalid)

	// Compare-and-swap on Version.
	upd := *got
	upd.PolicyID, upd.PolicySystemID, upd.LinkStatus = "", "", ""
	upd.RuntimeState, upd.LockReason, upd.LockedAt = keyhold.RuntimeDisabled, "key access lost", t0.Add(time.Hour)
	upd.DisplayName, upd.Type, upd.UpdatedAt = "Renamed", keyhold.EnvSandbox, t0.Add(time.Hour)
	upd.CreatedBy, upd.TenantID, upd.CreatedAt = "mallory", "t9", t0.Add(time.Hour) // immutable: ignored
	must(t, s.UpdateEnvironment(ctx, &upd))
	if upd.Version != 2 {
		t.Errorf("UpdateEnvironment: Version %d, want 2", upd.Version)
	}
	got, err = s.GetEnvironment(ctx, "env-a")
	must(t, err)
	want := upd
	want.CreatedBy, want.TenantID, want.CreatedAt = a.CreatedBy, a.TenantID, a.CreatedAt
	same(t, "after UpdateEnvironment", got, &want)
	stale := *a // still at version 1
	stale.DisplayName = "Lost update"
	wantCode(t, "UpdateEnvironment(stale version)", s.UpdateEnvironment(ctx, &stale), keyhold.EConflict)
	if stale.Version != 1 {
		t.Errorf("failed UpdateEnvironment changed Version to %d", stale.Version)
	}
	missing := environment("env-nope", "t1")
	wantCode(t, "UpdateEnvironment(missing)", s.UpdateEnvironment(ctx, missing), keyhold.ENotFound)
	list, err := s.ListEnvironmentsByPolicy(ctx, a.PolicyID)
	must(t, err)
	same(t, "policy after unlink", ids(list), []string{"env-c"})
	wantCode(t, "DeleteEnvironment(missing)", s.DeleteEnvironment(ctx, "env-nope"), keyhold.ENotFound)
}

// testUpdateEnvironmentConcurrent has 8 writers race to update one
// environment from the same version: exactly one wins.
func testUpdateEnvironmentConcurrent(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	e := mustEnv(t, s, "env-a")
	var wg sync.WaitGroup
	codes := make([]string, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := *e
			c.DisplayName = fmt.Sprint("writer ", i)
			codes[i] = keyhold.ErrorCode(s.UpdateEnvironment(ctx, &c))
		}()
	}
	wg.Wait()
	wins := 0
	for i, code := range codes {
		switch code {
		case "":
			wins++
		case keyhold.EConflict:
		default:
			t.Errorf("writer %d: code %q, want success or conflict", i, code)
		}
	}
	if wins != 1 {
		t.Errorf("%d writers won, want 1", wins)
	}
	got, err := s.GetEnvironment(ctx, "env-a")
	must(t, err)
	if got.Version != 2 {
		t.Errorf("Version %d, want 2", got.Version)
	}
}

func generation(env string, n int64, state string) *keyhold.RootKeyGeneration {
	return &keyhold.RootKeyGeneration{
		EnvironmentID: env, Generation: n, Wrapped: []byte{0x00, byte(n), 0xff, '\''}, State: state,
		WrappedBy: keyhold.WrapRef{Kind: keyhold.WrapPlatform, VaultID: "/v/system", KeyName: "platform",
			KeyVersion: version(int(n)), Algorithm: "RSA-OAEP-256"},
		CreatedAt: t0.Add(time.Duration(n) * time.Minute), UpdatedAt: t0.Add(time.Duration(n) * time.Minute),
	}
}

func testGenerations(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustEnv(t, s, "env-a")
	mustEnv(t, s, "env-b")
	g2 := generation("env-a", 2, keyhold.GenerationActive)
	g2.WrappedBy = keyhold.WrapRef{Kind: keyhold.WrapCustomer, PolicyID: "/p", VaultID: "/v/cust", KeyName: "cmk",
		KeyVersion: version(7), Algorithm: "RSA-OAEP-256"}
	g1 := generation("env-a", 1, keyhold.GenerationRetiring)
	must(t, s.CreateGeneration(ctx, g2))
	must(t, s.CreateGeneration(ctx, g1))
	must(t, s.CreateGeneration(ctx, generation("env-b", 1, keyhold.GenerationActive)))

	list, err := s.ListGenerations(ctx, "env-a")
	must(t, err)
	same(t, "ListGenerations", list, []*keyhold.RootKeyGeneration{g1, g2})
	list, err = s.ListGenerations(ctx, "env-nope")
	must(t, err)
	same(t, "ListGenerations(unknown)", list, []*keyhold.RootKeyGeneration{})

	for _, tt := range []struct {
		name string
		g    *keyhold.RootKeyGeneration
		code string
	}{
		{"taken", generation("env-a", 2, keyhold.GenerationActive), keyhold.EConflict},
		{"no environment", generation("env-nope", 1, keyhold.GenerationActive), keyhold.ENotFound},
		{"generation 0", generation("env-a", 0, keyhold.GenerationActive), keyhold.EInvalid},
		{"no state", generation("env-a", 3, ""), keyhold.EInvalid},
	} {
		wantCode(t, "CreateGeneration("+tt.name+")", s.CreateGeneration(ctx, tt.g), tt.code)
	}

	// Destroying a generation erases its wrapped key.
	d := *g1
	d.Wrapped, d.State, d.UpdatedAt = nil, keyhold.GenerationDestroyed, t0.Add(time.Hour)
	must(t, s.UpdateGeneration(ctx, &d))
	list, err = s.ListGenerations(ctx, "env-a")
	must(t, err)
	same(t, "after UpdateGeneration", list, []*keyhold.RootKeyGeneration{&d, g2})
	wantCode(t, "UpdateGeneration(missing)", s.UpdateGeneration(ctx, generation("env-a", 9, keyhold.GenerationActive)), keyhold.ENotFound)
}

func operation(id, env string, created time.Time) *keyhold.Operation {
	return &keyhold.Operation{
		ID: id, TenantID: "t1", EnvironmentID: env, Type: "Update Customer Managed Key", Action: "link",
		State: keyhold.OpNotStarted, Stages: json.RawMessage(`[{"name":"Validate"}]`),
		Params: json.RawMessage(`{"policyId":"/p"}`), RequestedBy: "ann", CreatedAt: created, UpdatedAt: created,
	}
}

func testOperations(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustEnv(t, s, "env-a")
	mustEnv(t, s, "env-b")
	op1 := operation("op-1", "env-a", t0)
	op2 := operation("op-2", "env-a", t0.Add(time.Minute))
	op2.State, op2.Stages, op2.Params = "", nil, nil
	must(t, s.CreateOperation(ctx, op1))
	must(t, s.CreateOperation(ctx, op2))
	if op2.State != keyhold.OpNotStarted {
		t.Errorf("CreateOperation without a state: State %q, want NotStarted", op2.State)
	}
	must(t, s.CreateOperation(ctx, operation("op-3", "env-b", t0)))

	got, err := s.GetOperation(ctx, "op-1")
	must(t, err)
	same(t, "GetOperation", got, op1)
	list, err := s.ListOperations(ctx, "env-a")
	must(t, err)
	same(t, "ListOperations (newest first)", list, []*keyhold.Operation{op2, op1})

	for _, tt := range []struct {
		name string
		op   *keyhold.Operation
		code string
	}{
		{"taken", operation("op-1", "env-b", t0), keyhold.EConflict},
		{"no id", operation("", "env-a", t0), keyhold.EInvalid},
		{"no environment", operation("op-9", "env-nope", t0), keyhold.ENotFound},
		{"bad params", func() *keyhold.Operation {
			op := operation("op-9", "env-a", t0)
			op.Params = json.RawMessage(`{"x":`)
			return op
		}(), keyhold.EInvalid},
	} {
		wantCode(t, "CreateOperation("+tt.name+")", s.CreateOperation(ctx, tt.op), tt.code)
	}

	upd := *got
	upd.State, upd.Cursor, upd.Done, upd.Total, upd.Error = keyhold.OpFailed, "account/0042", 42, 100, "vault unreachable"
	upd.Stages, upd.UpdatedAt = json.RawMessage(`[{"name":"Validate","state":"Succeeded"}]`), t0.Add(time.Hour)
	upd.LeaseOwner, upd.LeaseUntil = "worker-1", t0.Add(2*time.Hour)
	must(t, s.UpdateOperation(ctx, &upd))
	got, err = s.GetOperation(ctx, "op-1")
	must(t, err)
	same(t, "after UpdateOperation", got, &upd)
	wantCode(t, "UpdateOperation(missing)", s.UpdateOperation(ctx, operation("op-9", "env-a", t0)), keyhold.ENotFound)
	bad := upd
	bad.State = ""
	wantCode(t, "UpdateOperation(no state)", s.UpdateOperation(ctx, &bad), keyhold.EInvalid)
	_, err = s.GetOperation(ctx, "op-9")
	wantCode(t, "GetOperation(missing)", err, keyhold.ENotFound)
}

func testLeaseOperation(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustEnv(t, s, "env-a")
	now := t0.Add(time.Hour)
	done := operation("op-done", "env-a", t0)
	done.State = keyhold.OpSucceeded
	must(t, s.CreateOperation(ctx, done))
	running := operation("op-running", "env-a", t0.Add(time.Second))
	running.State, running.LeaseOwner, running.LeaseUntil = keyhold.OpRunning, "crashed", now.Add(-time.Minute)
	must(t, s.CreateOperation(ctx, running))
	held := operation("op-held", "env-a", t0)
	held.State, held.LeaseOwner, held.LeaseUntil = keyhold.OpRunning, "alive", now.Add(time.Minute)
	must(t, s.CreateOperation(ctx, held))
	fresh := operation("op-fresh", "env-a", t0.Add(2*time.Second))
	must(t, s.CreateOperation(ctx, fresh))

	// Never leased first, then the lease that ran out; never the one held
	// or the finished one.
	for _, want := range []string{"op-fresh", "op-running"} {
		op, err := s.LeaseOperation(ctx, "w1", now, now.Add(time.Minute))
		must(t, err)
		if op.ID != want || op.LeaseOwner != "w1" || !op.LeaseUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("LeaseOperation: got %s owner %q until %v, want %s owner w1 until %v",
				op.ID, op.LeaseOwner, op.LeaseUntil, want, now.Add(time.Minute))
		}
		stored, err := s.GetOperation(ctx, want)
		must(t, err)
		if stored.LeaseOwner != "w1" {
			t.Errorf("stored lease owner of %s: %q, want w1", want, stored.LeaseOwner)
		}
	}
	_, err := s.LeaseOperation(ctx, "w2", now, now.Add(time.Minute))
	wantCode(t, "LeaseOperation(all held)", err, keyhold.ENotFound)
	// Later, every lease has run out; all three ran out at the same time,
	// so the oldest operation goes first.
	later := now.Add(time.Hour)
	var got []string
	for range 3 {
		op, err := s.LeaseOperation(ctx, "w2", later, later.Add(time.Minute))
		must(t, err)
		got = append(got, op.ID)
	}
	same(t, "leases after expiry", got, []string{"op-held", "op-running", "op-fresh"})

	_, err = s.LeaseOperation(ctx, "", now, now.Add(time.Minute))
	wantCode(t, "LeaseOperation(no owner)", err, keyhold.EInvalid)
	_, err = s.LeaseOperation(ctx, "w1", now, now)
	wantCode(t, "LeaseOperation(empty lease)", err, keyhold.EInvalid)
}

// testLeaseOperationConcurrent has 4 workers lease 40 operations at once:
// each operation goes to exactly one of them.
func testLeaseOperationConcurrent(t *testing.T, s keyhold.Store) {
	mustEnv(t, s, "env-a")
	leaseConcurrently(t, []keyhold.Store{s, s, s, s})
}

// LeaseAcrossStores is testLeaseOperationConcurrent with two workers on each
// of stores, which the driver opens separately on one empty database, as
// separate processes would: each operation still goes to exactly one
// worker.
func LeaseAcrossStores(t *testing.T, stores ...keyhold.Store) {
	t.Helper()
	mustEnv(t, stores[0], "env-a")
	var workers []keyhold.Store
	for _, s := range stores {
		workers = append(workers, s, s)
	}
	leaseConcurrently(t, workers)
}

// leaseConcurrently creates 40 operations of env-a through the first store
// and has one worker per store in workers lease them until none is left.
func leaseConcurrently(t *testing.T, workers []keyhold.Store) {
	t.Helper()
	ctx := context.Background()
	const n = 40
	for i := range n {
		must(t, workers[0].CreateOperation(ctx, operation(fmt.Sprintf("op-%02d", i), "env-a", t0.Add(time.Duration(i)*time.Second))))
	}
	now := t0.Add(time.Hour)
	var (
		mu     sync.Mutex
		leased = map[string][]string{}
		wg     sync.WaitGroup
		errs   = make(chan error, len(workers))
	)
	for w, s := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprint("worker-", w)
			for {
				op, err := s.LeaseOperation(ctx, owner, now, now.Add(time.Hour))
				if keyhold.ErrorCode(err) == keyhold.ENotFound {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				if op.LeaseOwner != owner {
					errs <- fmt.Errorf("%s got %s with owner %q", owner, op.ID, op.LeaseOwner)
				}
				mu.Lock()
				leased[op.ID] = append(leased[op.ID], owner)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("LeaseOperation: %v", err)
	}
	var ids []string
	for id, owners := range leased {
		ids = append(ids, id)
		if len(owners) != 1 {
			t.Errorf("%s was leased to %v, want one worker", id, owners)
		}
	}
	sort.Strings(ids)
	if len(ids) != n {
		t.Errorf("%d operations leased, want %d", len(ids), n)
	}
	for _, id := range ids {
		op, err := workers[0].GetOperation(ctx, id)
		must(t, err)
		if op.LeaseOwner != leased[id][0] {
			t.Errorf("%s: stored owner %q, leased to %q", id, op.LeaseOwner, leased[id][0])
		}
	}
}

// testDeleteEnvironmentCascade deletes an environment with one of
// everything below it: all of it goes, the neighbour stays, and the id can
// be used again from scratch.
func testDeleteEnvironmentCascade(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	populate := func(env string) *keyhold.File {
		mustEnv(t, s, env)
		must(t, s.CreateGeneration(ctx, generation(env, 1, keyhold.GenerationActive)))
		must(t, s.CreateOperation(ctx, operation(env+"-op", env, t0)))
		for _, table := range []string{"account", "contact"} {
			must(t, s.CreateTable(ctx, &keyhold.Table{EnvironmentID: env, Name: table, CreatedAt: t0}))
			for i := range 3 {
				must(t, s.PutRow(ctx, sealedRow(env, table, fmt.Sprint("r", i), 1, "x"), -1))
			}
		}
		return commitFile(t, s, keyhold.FileRef{EnvironmentID: env, Table: "account", RowID: "r0", Column: "doc"},
			env+"-up", 3, 1)
	}
	fa := populate("env-a")
	fb := populate("env-b")
	pending := &keyhold.File{FileRef: fa.FileRef, UploadID: "env-a-pending", SegmentSize: 4, CreatedAt: t0}
	must(t, s.BeginFileUpload(ctx, pending))
	must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "env-a-pending", Index: 0, Generation: 1, Sealed: []byte("p")}))

	must(t, s.DeleteEnvironment(ctx, "env-a"))
	_, err := s.GetEnvironment(ctx, "env-a")
	wantCode(t, "GetEnvironment after delete", err, keyhold.ENotFound)
	gens, err := s.ListGenerations(ctx, "env-a")
	must(t, err)
	ops, err := s.ListOperations(ctx, "env-a")
	must(t, err)
	tables, err := s.ListTables(ctx, "env-a")
	must(t, err)
	if len(gens)+len(ops)+len(tables) != 0 {
		t.Errorf("left behind: %d generations, %d operations, %d tables", len(gens), len(ops), len(tables))
	}
	_, err = s.GetOperation(ctx, "env-a-op")
	wantCode(t, "GetOperation after delete", err, keyhold.ENotFound)
	_, err = s.GetRow(ctx, "env-a", "account", "r0")
	wantCode(t, "GetRow after delete", err, keyhold.ENotFound)
	_, err = s.GetFile(ctx, fa.FileRef)
	wantCode(t, "GetFile after delete", err, keyhold.ENotFound)
	for _, up := range []string{"env-a-up", "env-a-pending"} {
		_, err = s.GetFileSegment(ctx, up, 0)
		wantCode(t, "GetFileSegment("+up+") after delete", err, keyhold.ENotFound)
	}
	total, _, err := s.CountRows(ctx, "env-a", 1)
	must(t, err)
	segs, _, err := s.CountFileSegments(ctx, "env-a", 1)
	must(t, err)
	if total != 0 || segs != 0 {
		t.Errorf("after delete: %d rows, %d file segments, want none", total, segs)
	}

	// The neighbour is whole.
	total, _, err = s.CountRows(ctx, "env-b", 1)
	must(t, err)
	if total != 6 {
		t.Errorf("env-b has %d rows, want 6", total)
	}
	got, err := s.GetFile(ctx, fb.FileRef)
	must(t, err)
	same(t, "env-b file", got, fb)
	gens, err = s.ListGenerations(ctx, "env-b")
	must(t, err)
	if len(gens) != 1 {
		t.Errorf("env-b has %d generations, want 1", len(gens))
	}

	// Nothing is left to collide with when the id comes back.
	mustEnv(t, s, "env-a")
	must(t, s.CreateTable(ctx, &keyhold.Table{EnvironmentID: "env-a", Name: "account", CreatedAt: t0}))
	must(t, s.PutRow(ctx, sealedRow("env-a", "account", "r0", 1, "y"), -1))
	must(t, s.CreateGeneration(ctx, generation("env-a", 1, keyhold.GenerationActive)))
}
