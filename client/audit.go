package client

import (
	"context"
	"net/http"
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
	// Newest lists the latest records first.
	Newest bool
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
	if q.Newest {
		v.Set("order", "newest")
	}
	p := "keyhold/v1/audit"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return p
}

// maxAuditPage is the largest page the audit list serves.
const maxAuditPage = 1000

// ListAudit returns the audit records of the caller's tenant that q
// selects, in ascending order (descending with q.Newest), following nextLink until q.Top records (or
// all) have come.
func (c *Client) ListAudit(ctx context.Context, q AuditQuery) ([]*keyhold.AuditRecord, error) {
	page := q
	if page.Top > maxAuditPage {
		page.Top = maxAuditPage
	}
	var all []*keyhold.AuditRecord
	for next := page.path(); next != ""; {
		var p struct {
			Value    []*keyhold.AuditRecord `json:"value"`
			NextLink string                 `json:"nextLink"`
		}
		if _, err := c.Do(ctx, http.MethodGet, AudienceARM, next, nil, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Value...)
		if q.Top > 0 && len(all) >= q.Top {
			return all[:q.Top], nil
		}
		next = p.NextLink
	}
	return all, nil
}

// AuditVerification is the answer of the audit log's verification.
type AuditVerification struct {
	Verified bool   `json:"verified"`
	Records  int64  `json:"records"`
	LastHash string `json:"lastHash"`
}

// VerifyAudit asks the server to check the hash chain of the whole audit
// log, which spans every tenant. A broken chain is an *Error with status 409
// (code AuditChainBroken) naming the first bad record. Keep Records and
// LastHash elsewhere to notice later that the end of the log was cut off.
func (c *Client) VerifyAudit(ctx context.Context) (*AuditVerification, error) {
	var out AuditVerification
	if _, err := c.Do(ctx, http.MethodGet, AudienceARM, "keyhold/v1/audit/verify", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
