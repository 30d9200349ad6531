package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/keyhold/keyhold"
)

// AppendAudit assigns r the next Seq, links it to the last record, sets
// r.Hash = r.ComputeHash() and stores it. The chain head lives in the one-row
// audit_head table, read and advanced in the same transaction as the insert:
// PostgreSQL locks the row (Dialect.LockAuditHead), SQLite's immediate
// transactions let one writer in at a time, so appenders in any number of
// processes build one unbroken chain. r is changed only if the append
// succeeds. It returns EInvalid if r.Time cannot be stored.
func (s *Store) AppendAudit(ctx context.Context, r *keyhold.AuditRecord) error {
	at, err := encTime(r.Time)
	if err != nil {
		return err
	}
	rec := *r
	err = s.inTx(ctx, func(tx *Store) error {
		var seq int64
		var prev string
		err := tx.queryRow(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`+tx.d.LockAuditHead).Scan(&seq, &prev)
		if errors.Is(err, sql.ErrNoRows) {
			return keyhold.Internal("sqlstore", errors.New("audit_head row is missing"))
		}
		if err != nil {
			return tx.wrap(err)
		}
		rec.Seq, rec.PrevHash = seq+1, prev
		rec.Hash = rec.ComputeHash()
		if _, err := tx.exec(ctx, `INSERT INTO audit_log (seq, time, tenant_id, principal_id, principal_name, action,
			method, scope, scope_key, status, result, detail, request_id, client_ip, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			rec.Seq, at, rec.TenantID, rec.PrincipalID, rec.PrincipalName, rec.Action, rec.Method, rec.Scope,
			scopeKey(rec.Scope), rec.Status, rec.Result, rec.Detail, rec.RequestID, rec.ClientIP,
			rec.PrevHash, rec.Hash); err != nil {
			return err
		}
		_, err = tx.exec(ctx, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, rec.Seq, rec.Hash)
		return err
	})
	if err != nil {
		return err
	}
	*r = rec
	return nil
}

// ListAudit returns the records that match f in ascending Seq order. Since is
// inclusive and Until exclusive, so that consecutive windows neither overlap
// nor leave gaps; ScopePrefix matches at segment boundaries,
// case-insensitively. It returns EInvalid for a negative Limit or a time out
// of range.
func (s *Store) ListAudit(ctx context.Context, f keyhold.AuditFilter) ([]*keyhold.AuditRecord, error) {
	if f.Limit < 0 {
		return nil, invalid("audit limit must not be negative")
	}
	var w where
	if f.TenantID != "" {
		w.add("tenant_id = ?", f.TenantID)
	}
	if f.PrincipalID != "" {
		w.add("principal_id = ?", f.PrincipalID)
	}
	if f.ScopePrefix != "" {
		if cond, args := scopeUnder("scope_key", f.ScopePrefix); cond != "" {
			w.add(cond, args...)
		}
	}
	if !f.Since.IsZero() {
		t, err := encTime(f.Since)
		if err != nil {
			return nil, err
		}
		w.add("time >= ?", t)
	}
	if !f.Until.IsZero() {
		t, err := encTime(f.Until)
		if err != nil {
			return nil, err
		}
		w.add("time < ?", t)
	}
	if f.AfterSeq > 0 {
		w.add("seq > ?", f.AfterSeq)
	}
	if f.BeforeSeq > 0 {
		w.add("seq < ?", f.BeforeSeq)
	}
	order := ` ORDER BY seq`
	if f.Newest {
		order = ` ORDER BY seq DESC`
	}
	q := `SELECT seq, time, tenant_id, principal_id, principal_name, action, method, scope, status, result, detail,
		request_id, client_ip, prev_hash, hash FROM audit_log` + w.String() + order
	args := w.args
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.AuditRecord, error) {
		a := &keyhold.AuditRecord{}
		err := r.Scan(&a.Seq, dbTime{&a.Time}, &a.TenantID, &a.PrincipalID, &a.PrincipalName, &a.Action, &a.Method,
			&a.Scope, &a.Status, &a.Result, &a.Detail, &a.RequestID, &a.ClientIP, &a.PrevHash, &a.Hash)
		return a, err
	}, q, args...)
}
