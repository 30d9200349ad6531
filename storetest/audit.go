package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func testAuditChain(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var want []*keyhold.AuditRecord
	for i := range 5 {
		r := &keyhold.AuditRecord{Time: t0.Add(time.Duration(i) * time.Millisecond), TenantID: "t1", PrincipalID: "u1",
			PrincipalName: "ann@contoso.example", Action: "Microsoft.KeyVault/vaults/write", Method: "PUT",
			Scope: "/subscriptions/s1/resourceGroups/rg", Status: 201, Result: "Succeeded", Detail: "d",
			RequestID: fmt.Sprintf("req-%d", i), ClientIP: "127.0.0.1"}
		must(t, s.AppendAudit(ctx, r))
		wantPrev := keyhold.AuditGenesisHash
		if i > 0 {
			wantPrev = want[i-1].Hash
		}
		if r.Seq != int64(i+1) || r.PrevHash != wantPrev || r.Hash != r.ComputeHash() {
			t.Fatalf("record %d: got Seq %d PrevHash %.8s Hash %.8s; want Seq %d PrevHash %.8s Hash %.8s",
				i, r.Seq, r.PrevHash, r.Hash, i+1, wantPrev, r.ComputeHash())
		}
		want = append(want, r)
	}
	got, err := s.ListAudit(ctx, keyhold.AuditFilter{})
	must(t, err)
	same(t, "ListAudit", got, want)
	if _, err := keyhold.VerifyAuditChain(nil, got); err != nil {
		t.Errorf("VerifyAuditChain: %v", err)
	}
	// Verifying in pages works from the stored records too.
	page1, err := s.ListAudit(ctx, keyhold.AuditFilter{Limit: 2})
	must(t, err)
	last, err := keyhold.VerifyAuditChain(nil, page1)
	must(t, err)
	page2, err := s.ListAudit(ctx, keyhold.AuditFilter{AfterSeq: last.Seq})
	must(t, err)
	if _, err := keyhold.VerifyAuditChain(last, page2); err != nil {
		t.Errorf("VerifyAuditChain(page 2): %v", err)
	}
	if len(page1)+len(page2) != 5 {
		t.Errorf("pages hold %d+%d records, want 5", len(page1), len(page2))
	}
	// Newest first, in pages: the latest two, then the rest before them.
	latest, err := s.ListAudit(ctx, keyhold.AuditFilter{Newest: true, Limit: 2})
	must(t, err)
	same(t, "ListAudit(newest, 2)", latest, []*keyhold.AuditRecord{want[4], want[3]})
	older, err := s.ListAudit(ctx, keyhold.AuditFilter{Newest: true, BeforeSeq: latest[1].Seq})
	must(t, err)
	same(t, "ListAudit(newest, before)", older, []*keyhold.AuditRecord{want[2], want[1], want[0]})

	wantCode(t, "AppendAudit(time out of range)",
		s.AppendAudit(ctx, &keyhold.AuditRecord{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}), keyhold.EInvalid)
	_, err = s.ListAudit(ctx, keyhold.AuditFilter{Limit: -1})
	wantCode(t, "ListAudit(negative limit)", err, keyhold.EInvalid)
}

func testAuditFilters(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	recs := []struct {
		tenant, principal, scope string
		at                       time.Duration
	}{
		{"t1", "u1", "/subscriptions/A/resourceGroups/rg", 0},                       // 1
		{"t1", "u2", "/subscriptions/a", time.Second},                               // 2
		{"t2", "u1", "/subscriptions/ab", 2 * time.Second},                          // 3
		{"t1", "u1", "/providers/Microsoft.BusinessAppPlatform/x", 3 * time.Second}, // 4
		{"t1", "u1", "/subscriptions/a/resourceGroups/rg2", 4 * time.Second},        // 5
	}
	for _, r := range recs {
		must(t, s.AppendAudit(ctx, &keyhold.AuditRecord{Time: t0.Add(r.at), TenantID: r.tenant,
			PrincipalID: r.principal, Scope: r.scope, Action: "x", Result: "Succeeded"}))
	}
	seqs := func(list []*keyhold.AuditRecord) []int64 {
		out := []int64{}
		for _, r := range list {
			out = append(out, r.Seq)
		}
		return out
	}
	tests := []struct {
		name string
		f    keyhold.AuditFilter
		want []int64
	}{
		{"all", keyhold.AuditFilter{}, []int64{1, 2, 3, 4, 5}},
		{"tenant", keyhold.AuditFilter{TenantID: "t1"}, []int64{1, 2, 4, 5}},
		{"principal", keyhold.AuditFilter{PrincipalID: "u1"}, []int64{1, 3, 4, 5}},
		{"scope prefix at segment boundary", keyhold.AuditFilter{ScopePrefix: "/subscriptions/a"}, []int64{1, 2, 5}},
		{"scope prefix any case", keyhold.AuditFilter{ScopePrefix: "/SUBSCRIPTIONS/A/resourcegroups/RG"}, []int64{1}},
		{"scope prefix root", keyhold.AuditFilter{ScopePrefix: "/"}, []int64{1, 2, 3, 4, 5}},
		{"since is inclusive", keyhold.AuditFilter{Since: t0.Add(time.Second)}, []int64{2, 3, 4, 5}},
		{"until is exclusive", keyhold.AuditFilter{Until: t0.Add(2 * time.Second)}, []int64{1, 2}},
		{"since in another zone", keyhold.AuditFilter{Since: t0.Add(3 * time.Second).In(time.FixedZone("X", -7*3600))}, []int64{4, 5}},
		{"since and until", keyhold.AuditFilter{Since: t0.Add(time.Second), Until: t0.Add(3 * time.Second)}, []int64{2, 3}},
		{"sub-second window", keyhold.AuditFilter{Since: t0.Add(time.Nanosecond), Until: t0.Add(time.Second + time.Nanosecond)}, []int64{2}},
		{"after seq", keyhold.AuditFilter{AfterSeq: 3}, []int64{4, 5}},
		{"limit", keyhold.AuditFilter{Limit: 2}, []int64{1, 2}},
		{"after seq and limit", keyhold.AuditFilter{AfterSeq: 1, Limit: 2, TenantID: "t1"}, []int64{2, 4}},
		{"nothing", keyhold.AuditFilter{TenantID: "t9"}, []int64{}},
	}
	for _, tt := range tests {
		got, err := s.ListAudit(ctx, tt.f)
		must(t, err)
		same(t, "ListAudit("+tt.name+")", seqs(got), tt.want)
	}
}

// testAuditConcurrent appends from 8 goroutines at once; the chain must come
// out whole, with every record once.
func testAuditConcurrent(t *testing.T, s keyhold.Store) {
	const workers, each = 8, 20
	writers := make([]keyhold.Store, workers)
	for w := range writers {
		writers[w] = s
	}
	appendAtOnce(t, writers, each, func(w, i int) *keyhold.AuditRecord {
		return &keyhold.AuditRecord{Time: time.Now(), TenantID: "t1", Action: "concurrent", RequestID: fmt.Sprintf("w%d-%d", w, i)}
	})
	got := wholeChain(t, s, workers*each)
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.RequestID] {
			t.Errorf("request %s logged twice", r.RequestID)
		}
		seen[r.RequestID] = true
	}
}

// appendAtOnce appends each records through every store of writers, one
// goroutine per entry, all at once; record makes writer w's i-th record. It
// fails the test at the first refusal.
func appendAtOnce(t *testing.T, writers []keyhold.Store, each int, record func(w, i int) *keyhold.AuditRecord) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, len(writers)*each)
	for w, s := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.AppendAudit(ctx, record(w, i)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AppendAudit: %v", err)
	}
}

// wholeChain reads s's audit records, fails the test unless there are want
// of them, reports a broken chain, and returns them.
func wholeChain(t *testing.T, s keyhold.Store, want int) []*keyhold.AuditRecord {
	t.Helper()
	got, err := s.ListAudit(context.Background(), keyhold.AuditFilter{})
	must(t, err)
	if len(got) != want {
		t.Fatalf("got %d records, want %d", len(got), want)
	}
	if _, err := keyhold.VerifyAuditChain(nil, got); err != nil {
		t.Errorf("VerifyAuditChain: %v", err)
	}
	return got
}

func testSettings(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	_, err := s.GetSetting(ctx, "signing-key")
	wantCode(t, "GetSetting(unset)", err, keyhold.ENotFound)

	blob := []byte{0, 1, 2, 0xff, 0xfe, 'x', 0}
	must(t, s.CreateSetting(ctx, "signing-key", blob))
	got, err := s.GetSetting(ctx, "signing-key")
	must(t, err)
	same(t, "GetSetting", got, blob)
	wantCode(t, "CreateSetting(set)", s.CreateSetting(ctx, "signing-key", []byte("other")), keyhold.EConflict)
	got, err = s.GetSetting(ctx, "signing-key")
	must(t, err)
	same(t, "GetSetting after refused create", got, blob)

	must(t, s.PutSetting(ctx, "signing-key", []byte("v2")))
	got, err = s.GetSetting(ctx, "signing-key")
	must(t, err)
	same(t, "GetSetting after put", got, []byte("v2"))
	must(t, s.PutSetting(ctx, "fresh", []byte("v")))
	got, err = s.GetSetting(ctx, "fresh")
	must(t, err)
	same(t, "GetSetting(put new)", got, []byte("v"))

	must(t, s.PutSetting(ctx, "empty", nil))
	got, err = s.GetSetting(ctx, "empty")
	must(t, err)
	same(t, "GetSetting(empty)", len(got), 0)

	wantCode(t, "PutSetting(no name)", s.PutSetting(ctx, "", []byte("v")), keyhold.EInvalid)
	wantCode(t, "CreateSetting(no name)", s.CreateSetting(ctx, "", []byte("v")), keyhold.EInvalid)
	// Names are exact: settings are not ARM names.
	_, err = s.GetSetting(ctx, "SIGNING-KEY")
	wantCode(t, "GetSetting(other case)", err, keyhold.ENotFound)
}

// testSettingsConcurrentCreate races first starts: one value wins, every
// loser is told EConflict.
func testSettingsConcurrentCreate(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	const n = 8
	results := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = s.CreateSetting(ctx, "ca-key", []byte{byte(i)})
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range results {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("creates %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		default:
			wantCode(t, fmt.Sprintf("CreateSetting #%d", i), err, keyhold.EConflict)
		}
	}
	if winner < 0 {
		t.Fatal("no CreateSetting succeeded")
	}
	got, err := s.GetSetting(ctx, "ca-key")
	must(t, err)
	same(t, "the winner's value", got, []byte{byte(winner)})
}
