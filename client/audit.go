package client

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/keyhold/keyhold"
)

// AuditQuery selects audit records; zero fields match everything.
type AuditQuery struct {
	Principal string // principal object id
	Scope     string // the scope and everything below it
	Since     time.Time
	Until     time.Time
	Top       int // at most this many records; 0 means all
}

// path returns the audit list path for q.
func (q AuditQuery) path() string {
	v := url.Values{}
	if q.Principal != "" {
		v.Set("principal", q.Principal)
	}
	if q.Scope != "" {
		v.Set("scope", q.Scope)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Top > 0 {
		v.Set("top", strconv.Itoa(q.Top))
	}
	p := "keyhold/v1/audit"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return p
}

// ListAudit returns the audit records q selects, in ascending order,
// following nextLink.
func (c *Client) ListAudit(ctx context.Context, q AuditQuery) ([]*keyhold.AuditRecord, error) {
	recs, err := List[*keyhold.AuditRecord](ctx, c, AudienceARM, q.path())
	if q.Top > 0 && len(recs) > q.Top {
		recs = recs[:q.Top]
	}
	return recs, err
}

// VerifyAudit reads the whole audit log and checks its hash chain on the
// client, so that a tampered server cannot vouch for itself. It returns the
// number of records checked, and an error naming the first bad record.
func (c *Client) VerifyAudit(ctx context.Context) (int, error) {
	recs, err := c.ListAudit(ctx, AuditQuery{})
	if err != nil {
		return 0, err
	}
	_, err = keyhold.VerifyAuditChain(nil, recs)
	return len(recs), err
}
