package keyhold

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"
)

// AuditGenesisHash is the PrevHash of the first audit record.
const AuditGenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// ComputeHash returns the chain hash of r: SHA-256 over every field but Hash,
// each length-prefixed so that no two records can encode alike. PrevHash is
// covered, which links the chain.
func (r *AuditRecord) ComputeHash() string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field("keyhold-audit-v1")
	field(fmt.Sprint(r.Seq))
	field(r.Time.UTC().Format(time.RFC3339Nano))
	field(r.TenantID)
	field(r.PrincipalID)
	field(r.PrincipalName)
	field(r.Action)
	field(r.Method)
	field(r.Scope)
	field(fmt.Sprint(r.Status))
	field(r.Result)
	field(r.Detail)
	field(r.RequestID)
	field(r.ClientIP)
	field(r.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

// VerifyAuditChain checks that records, in ascending Seq order and starting at
// the first record of the log or after prev (nil at the start), form an
// unbroken chain. It returns the last record checked, so that a long log can be
// verified in pages, and an EConflict error naming the first bad record.
func VerifyAuditChain(prev *AuditRecord, records []*AuditRecord) (*AuditRecord, error) {
	for _, r := range records {
		wantPrev, wantSeq := AuditGenesisHash, int64(1)
		if prev != nil {
			wantPrev, wantSeq = prev.Hash, prev.Seq+1
		}
		switch {
		case r.Seq != wantSeq:
			return prev, Errorf(EConflict, "audit: record %d follows record %d: a record is missing", r.Seq, wantSeq-1)
		case r.PrevHash != wantPrev:
			return prev, Errorf(EConflict, "audit: record %d does not link to the record before it", r.Seq)
		case r.ComputeHash() != r.Hash:
			return prev, Errorf(EConflict, "audit: record %d was altered", r.Seq)
		}
		prev = r
	}
	return prev, nil
}
