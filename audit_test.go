package keyhold_test

import (
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func chain(n int) []*keyhold.AuditRecord {
	var out []*keyhold.AuditRecord
	prev := keyhold.AuditGenesisHash
	for i := 1; i <= n; i++ {
		r := &keyhold.AuditRecord{
			Seq: int64(i), Time: time.Unix(int64(1700000000+i), 5).UTC(), TenantID: "t", PrincipalID: "p",
			Action: "Microsoft.Resources/subscriptions/resourceGroups/write", Method: "PUT",
			Scope: "/subscriptions/s/resourceGroups/rg", Status: 201, Result: "Succeeded", RequestID: "r",
			PrevHash: prev,
		}
		r.Hash = r.ComputeHash()
		prev = r.Hash
		out = append(out, r)
	}
	return out
}

func TestVerifyAuditChain(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func([]*keyhold.AuditRecord) []*keyhold.AuditRecord
		wantErr string
	}{
		{"intact", func(r []*keyhold.AuditRecord) []*keyhold.AuditRecord { return r }, ""},
		{"removed", func(r []*keyhold.AuditRecord) []*keyhold.AuditRecord { return append(r[:2:2], r[3:]...) }, "audit: record 4 follows record 2: a record is missing"},
		{"altered", func(r []*keyhold.AuditRecord) []*keyhold.AuditRecord { r[2].Status = 200; return r }, "audit: record 3 was altered"},
		{"rehashed", func(r []*keyhold.AuditRecord) []*keyhold.AuditRecord {
			r[2].Scope = "/"
			r[2].Hash = r[2].ComputeHash()
			return r
		}, "audit: record 4 does not link to the record before it"},
		{"truncated head", func(r []*keyhold.AuditRecord) []*keyhold.AuditRecord { return r[1:] }, "audit: record 2 follows record 0: a record is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keyhold.VerifyAuditChain(nil, tt.mutate(chain(5)))
			got := ""
			if err != nil {
				got = err.Error()
				if keyhold.ErrorCode(err) != keyhold.EConflict {
					t.Errorf("code = %q, want conflict", keyhold.ErrorCode(err))
				}
			}
			if got != tt.wantErr {
				t.Errorf("err = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestVerifyAuditChainInPages(t *testing.T) {
	recs := chain(10)
	last, err := keyhold.VerifyAuditChain(nil, recs[:4])
	if err != nil {
		t.Fatal(err)
	}
	last, err = keyhold.VerifyAuditChain(last, recs[4:])
	if err != nil || last.Seq != 10 {
		t.Fatalf("second page: last=%v err=%v", last, err)
	}
}

func TestComputeHashCoversEveryField(t *testing.T) {
	base := chain(1)[0]
	h := base.ComputeHash()
	muts := []func(r *keyhold.AuditRecord){
		func(r *keyhold.AuditRecord) { r.Seq++ },
		func(r *keyhold.AuditRecord) { r.Time = r.Time.Add(time.Nanosecond) },
		func(r *keyhold.AuditRecord) { r.TenantID += "x" },
		func(r *keyhold.AuditRecord) { r.PrincipalID += "x" },
		func(r *keyhold.AuditRecord) { r.PrincipalName += "x" },
		func(r *keyhold.AuditRecord) { r.Action += "x" },
		func(r *keyhold.AuditRecord) { r.Method += "x" },
		func(r *keyhold.AuditRecord) { r.Scope += "x" },
		func(r *keyhold.AuditRecord) { r.Status++ },
		func(r *keyhold.AuditRecord) { r.Result += "x" },
		func(r *keyhold.AuditRecord) { r.Detail += "x" },
		func(r *keyhold.AuditRecord) { r.RequestID += "x" },
		func(r *keyhold.AuditRecord) { r.ClientIP += "x" },
		func(r *keyhold.AuditRecord) { r.PrevHash += "x" },
		// Moving bytes between adjacent fields must change the hash too.
		func(r *keyhold.AuditRecord) { r.TenantID, r.PrincipalID = r.TenantID+r.PrincipalID, "" },
	}
	for i, m := range muts {
		c := *base
		m(&c)
		if c.ComputeHash() == h {
			t.Errorf("mutation %d did not change the hash", i)
		}
	}
}
