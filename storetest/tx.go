package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func testInTxCommit(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	err := s.InTx(ctx, func(tx keyhold.Store) error {
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t1"}); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if _, err := tx.GetTenant(ctx, "t1"); err != nil {
			return err
		}
		return tx.PutSetting(ctx, "k", []byte("v"))
	})
	must(t, err)
	_, err = s.GetTenant(ctx, "t1")
	must(t, err)
	_, err = s.GetSetting(ctx, "k")
	must(t, err)
}

func testInTxRollbackOnError(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	errStop := errors.New("stop")
	err := s.InTx(ctx, func(tx keyhold.Store) error {
		must(t, tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t1"}))
		must(t, tx.CreatePrincipal(ctx, &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser}))
		must(t, tx.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: "s1", Name: "rg"}))
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("InTx: got %v, want fn's own error", err)
	}
	_, err = s.GetTenant(ctx, "t1")
	wantCode(t, "tenant after rollback", err, keyhold.ENotFound)
	_, err = s.GetPrincipal(ctx, "u1")
	wantCode(t, "principal after rollback", err, keyhold.ENotFound)
	_, err = s.GetResourceGroup(ctx, "s1", "rg")
	wantCode(t, "resource group after rollback", err, keyhold.ENotFound)
	// The store still works after a rollback.
	must(t, s.CreateTenant(ctx, &keyhold.Tenant{ID: "t1"}))
}

func testInTxRollbackOnPanic(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	func() {
		defer func() {
			if got := recover(); got != "boom" {
				t.Errorf("recovered %v, want the panic to go on as \"boom\"", got)
			}
		}()
		_ = s.InTx(ctx, func(tx keyhold.Store) error {
			must(t, tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t1"}))
			panic("boom")
		})
		t.Error("InTx returned; want the panic to go on")
	}()
	_, err := s.GetTenant(ctx, "t1")
	wantCode(t, "tenant after panic", err, keyhold.ENotFound)
	// The connection went back to the pool clean.
	for range 3 {
		must(t, s.PutSetting(ctx, "after-panic", []byte("ok")))
	}
}

func testInTxNested(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	errStop := errors.New("stop")
	err := s.InTx(ctx, func(tx keyhold.Store) error {
		if err := tx.InTx(ctx, func(inner keyhold.Store) error {
			return inner.CreateTenant(ctx, &keyhold.Tenant{ID: "t1"})
		}); err != nil {
			return err
		}
		// The inner call shares the outer transaction: it sees the write...
		if _, err := tx.GetTenant(ctx, "t1"); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("InTx: got %v, want fn's own error", err)
	}
	// ...and the outer rollback undoes it.
	_, err = s.GetTenant(ctx, "t1")
	wantCode(t, "tenant after outer rollback", err, keyhold.ENotFound)

	must(t, s.InTx(ctx, func(tx keyhold.Store) error {
		return tx.InTx(ctx, func(inner keyhold.Store) error {
			return inner.CreateTenant(ctx, &keyhold.Tenant{ID: "t2"})
		})
	}))
	_, err = s.GetTenant(ctx, "t2")
	must(t, err)
}

// testInTxContinuesAfterConflict checks that an expected error inside a
// transaction (a conflict, a not-found) leaves the transaction usable, as
// "create, or else read the existing one" needs. PostgreSQL aborts a
// transaction on any failed statement, so a store that lets one fail there
// breaks this.
func testInTxContinuesAfterConflict(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	must(t, s.CreateTenant(ctx, &keyhold.Tenant{ID: "t1"}))
	must(t, s.CreatePrincipal(ctx, &keyhold.Principal{ID: "u1", TenantID: "t1", Type: keyhold.PrincipalUser,
		UserPrincipalName: "ann@contoso.example", AppID: ""}))
	must(t, s.CreateSetting(ctx, "once", []byte("1")))
	must(t, s.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: "ra", Scope: "/", RoleDefinitionID: "r", PrincipalID: "u1"}))
	err := s.InTx(ctx, func(tx keyhold.Store) error {
		wantCode(t, "CreateTenant in tx", tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t1"}), keyhold.EConflict)
		wantCode(t, "CreatePrincipal in tx", tx.CreatePrincipal(ctx, &keyhold.Principal{ID: "u2", TenantID: "t1",
			Type: keyhold.PrincipalUser, UserPrincipalName: "ANN@contoso.example"}), keyhold.EConflict)
		wantCode(t, "CreateSetting in tx", tx.CreateSetting(ctx, "once", []byte("2")), keyhold.EConflict)
		wantCode(t, "CreateRoleAssignment in tx", tx.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{
			Name: "RA", Scope: "/", RoleDefinitionID: "r", PrincipalID: "u1"}), keyhold.EConflict)
		wantCode(t, "AddCredential in tx", tx.AddCredential(ctx, &keyhold.Credential{ID: "c", PrincipalID: "nobody", Hash: "h"}), keyhold.ENotFound)
		wantCode(t, "DeleteResource in tx", tx.DeleteResource(ctx, "/nope"), keyhold.ENotFound)
		_, err := tx.GetTenant(ctx, "nope")
		wantCode(t, "GetTenant in tx", err, keyhold.ENotFound)
		return tx.CreateTenant(ctx, &keyhold.Tenant{ID: "t2"})
	})
	must(t, err)
	_, err = s.GetTenant(ctx, "t2")
	must(t, err)
}

func testInTxAudit(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	first := &keyhold.AuditRecord{Time: t0, Action: "first"}
	must(t, s.AppendAudit(ctx, first))
	errStop := errors.New("stop")
	err := s.InTx(ctx, func(tx keyhold.Store) error {
		if err := tx.AppendAudit(ctx, &keyhold.AuditRecord{Time: t0, Action: "rolled back"}); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("InTx: got %v, want fn's own error", err)
	}
	// The rolled-back append must not have advanced the head.
	second := &keyhold.AuditRecord{Time: t0.Add(time.Second), Action: "second"}
	must(t, s.AppendAudit(ctx, second))
	if second.Seq != 2 || second.PrevHash != first.Hash {
		t.Errorf("after a rolled-back append: Seq %d PrevHash %.8s, want 2 and %.8s", second.Seq, second.PrevHash, first.Hash)
	}
	must(t, s.InTx(ctx, func(tx keyhold.Store) error {
		return tx.AppendAudit(ctx, &keyhold.AuditRecord{Time: t0, Action: "committed"})
	}))
	got, err := s.ListAudit(ctx, keyhold.AuditFilter{})
	must(t, err)
	if _, err := keyhold.VerifyAuditChain(nil, got); err != nil || len(got) != 3 {
		t.Errorf("chain of %d records: %v; want 3 and whole", len(got), err)
	}
}

// testTimesRoundTrip checks that times come back equal to the nanosecond,
// whatever their zone, including the zero time.
func testTimesRoundTrip(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	times := []time.Time{
		{},
		t0,
		time.Date(1970, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(2262, 4, 11, 23, 47, 16, 854775807, time.UTC), // past int64 nanoseconds
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("E", 14*3600)).Add(-15 * time.Hour),
		time.Now(), // carries a monotonic reading
	}
	for i, tm := range times {
		id := string(rune('a' + i))
		must(t, s.CreateTenant(ctx, &keyhold.Tenant{ID: id, CreatedAt: tm}))
		got, err := s.GetTenant(ctx, id)
		must(t, err)
		if !got.CreatedAt.Equal(tm) {
			t.Errorf("time %d: got %v, want %v", i, got.CreatedAt, tm)
		}
		if tm.IsZero() != got.CreatedAt.IsZero() {
			t.Errorf("time %d: IsZero got %v, want %v", i, got.CreatedAt.IsZero(), tm.IsZero())
		}
	}
}
