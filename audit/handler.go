package audit

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// Paths served by Handler.
const (
	ListPath   = "/keyhold/v1/audit"
	VerifyPath = "/keyhold/v1/audit/verify"
)

// Page sizes of the list and of verification.
const (
	DefaultTop = 100
	MaxTop     = 1000
	verifyPage = 500
)

// Handler serves GET /keyhold/v1/audit and GET /keyhold/v1/audit/verify. It
// expects an authenticated *keyhold.Caller in the request context.
//
// The list takes the filters principalId (or principal), scope (the scope and
// everything below it), since and until (RFC 3339), after (a sequence number)
// and top, or order=newest with before (a sequence number) for the latest
// records first, and answers {"value":[records],"nextLink":"..."}. A Global
// Administrator sees every record of their tenant; anyone else must name a
// scope and hold Microsoft.Insights/eventtypes/values/read at it, and sees
// the records of their tenant below it. Bad filters are 400, a missing caller
// 401, a refused one 403.
//
// Verify checks the whole chain, a page at a time, and answers
// {"verified":true,"records":N,"lastHash":"..."} or 409 naming the first bad
// record. The chain spans every tenant, so only a Global Administrator or a
// caller allowed to read the log at "/" may verify it.
func (l *Log) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimSuffix(r.URL.Path, "/")
		var serve func(http.ResponseWriter, *http.Request) error
		switch path {
		case ListPath:
			serve = l.serveList
		case VerifyPath:
			serve = l.serveVerify
		default:
			httpapi.WriteError(w, r, keyhold.Errorc(keyhold.ENotFound, "NotFound", "audit: no such endpoint: %s", r.URL.Path))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET")
			w.Header().Set("x-ms-error-code", "MethodNotAllowed")
			httpapi.WriteJSON(w, http.StatusMethodNotAllowed, httpapi.AzureError{Error: httpapi.AzureErrorBody{
				Code: "MethodNotAllowed", Message: "audit: the audit log is read-only; use GET"}})
			return
		}
		if err := serve(w, r); err != nil {
			httpapi.WriteError(w, r, err)
		}
	})
}

// ListResponse is the body of GET /keyhold/v1/audit.
type ListResponse struct {
	Value    []*keyhold.AuditRecord `json:"value"`
	NextLink string                 `json:"nextLink,omitempty"`
}

// VerifyResponse is the body of a successful GET /keyhold/v1/audit/verify.
type VerifyResponse struct {
	Verified bool   `json:"verified"`
	Records  int64  `json:"records"`
	LastHash string `json:"lastHash"`
}

func (l *Log) serveList(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		return err
	}
	f.TenantID = c.TenantID
	httpapi.Annotate(ctx, "Microsoft.Insights/eventtypes/values/read", orRoot(f.ScopePrefix))
	if err := l.authorizeRead(ctx, c, f.ScopePrefix); err != nil {
		return err
	}
	top := f.Limit
	f.Limit = top + 1 // one more tells whether there is a next page
	recs, err := l.store.ListAudit(ctx, f)
	if err != nil {
		return err
	}
	resp := ListResponse{Value: recs}
	if resp.Value == nil {
		resp.Value = []*keyhold.AuditRecord{}
	}
	if len(recs) > top {
		resp.Value = recs[:top]
		resp.NextLink = l.nextLink(r, f.Newest, recs[top-1].Seq)
	}
	httpapi.WriteJSON(w, http.StatusOK, resp)
	return nil
}

func (l *Log) serveVerify(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	c, err := caller(ctx)
	if err != nil {
		return err
	}
	httpapi.Annotate(ctx, "Microsoft.Insights/eventtypes/values/read", "/")
	if err := l.authorizeRead(ctx, c, ""); err != nil {
		return err
	}
	res, err := l.Verify(ctx)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}

// Verify checks the hash chain of the whole log, reading it in pages so that
// memory stays bounded whatever its length. It returns an EConflict error
// (detail "AuditChainBroken") naming the first missing, unlinked or altered
// record, and the store's error if the log cannot be read. Removing the last
// records of the log leaves a shorter chain that verifies; compare Records
// and LastHash with a copy kept elsewhere to catch that.
func (l *Log) Verify(ctx context.Context) (*VerifyResponse, error) {
	var prev *keyhold.AuditRecord
	var n int64
	for {
		f := keyhold.AuditFilter{Limit: verifyPage}
		if prev != nil {
			f.AfterSeq = prev.Seq
		}
		page, err := l.store.ListAudit(ctx, f)
		if err != nil {
			return nil, err
		}
		last, err := keyhold.VerifyAuditChain(prev, page)
		if err != nil {
			return nil, &keyhold.Error{Code: keyhold.EConflict, Detail: "AuditChainBroken", Message: keyhold.ErrorMessage(err)}
		}
		if len(page) == 0 {
			break
		}
		n += int64(len(page))
		prev = last
		if len(page) < verifyPage {
			break
		}
	}
	res := &VerifyResponse{Verified: true, Records: n, LastHash: keyhold.AuditGenesisHash}
	if prev != nil {
		res.LastHash = prev.Hash
	}
	return res, nil
}

func caller(ctx context.Context) (*keyhold.Caller, error) {
	c := keyhold.CallerFrom(ctx)
	if c == nil || c.Principal == nil {
		return nil, keyhold.Errorc(keyhold.EUnauthenticated, "AuthenticationFailed", "audit: the request is not authenticated")
	}
	return c, nil
}

// authorizeRead lets a Global Administrator read anything in their tenant,
// and anyone else only at a scope where they hold ReadAction. An empty scope
// means the whole log.
func (l *Log) authorizeRead(ctx context.Context, c *keyhold.Caller, scope string) error {
	if c.Principal.HasDirectoryRole(keyhold.RoleGlobalAdministrator) {
		return nil
	}
	if scope == "" && l.authz == nil {
		return keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed",
			"audit: only a Global Administrator may read the whole audit log; pass a scope you may read")
	}
	if l.authz == nil {
		return keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed",
			"audit: the client with object id '%s' does not have authorization to perform action '%s' over scope '%s'", c.Principal.ID, ReadAction, scope)
	}
	ok, err := l.authz.Check(ctx, c, ReadAction, orRoot(scope))
	if err != nil {
		return err
	}
	if !ok {
		if scope == "" {
			return keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed",
				"audit: only a Global Administrator may read the whole audit log; pass a scope you may read")
		}
		return keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed",
			"audit: the client with object id '%s' does not have authorization to perform action '%s' over scope '%s'", c.Principal.ID, ReadAction, scope)
	}
	return nil
}

func orRoot(scope string) string {
	if scope == "" {
		return "/"
	}
	return scope
}

// parseFilter reads the list's query. The tenant is set by the caller.
func parseFilter(q url.Values) (keyhold.AuditFilter, error) {
	var f keyhold.AuditFilter
	bad := func(name, why string) error {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidParameter", "audit: the query parameter '%s' %s", name, why)
	}
	f.PrincipalID = q.Get("principalId")
	if f.PrincipalID == "" {
		f.PrincipalID = q.Get("principal")
	}
	if s := q.Get("scope"); s != "" {
		if !strings.HasPrefix(s, "/") {
			return f, bad("scope", "must start with '/', as a resource id does")
		}
		if s != "/" {
			f.ScopePrefix = strings.TrimSuffix(s, "/")
		}
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return f, bad(p.name, "must be a time in RFC 3339 form, such as 2026-01-02T15:04:05Z")
			}
			*p.dst = t
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, bad("until", "must not be before 'since'")
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"after", &f.AfterSeq}, {"before", &f.BeforeSeq}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				return f, bad(p.name, "must be a sequence number (an integer of 0 or more)")
			}
			*p.dst = n
		}
	}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		f.Newest = true
	default:
		return f, bad("order", "must be oldest (the default) or newest")
	}
	f.Limit = DefaultTop
	top := q.Get("top")
	if top == "" {
		top = q.Get("$top")
	}
	if top != "" {
		n, err := strconv.Atoi(top)
		if err != nil || n < 1 || n > MaxTop {
			return f, bad("top", "must be an integer from 1 to "+strconv.Itoa(MaxTop))
		}
		f.Limit = n
	}
	return f, nil
}

// nextLink is the request's URL with after (before, newest first) set past
// the last record shown.
func (l *Log) nextLink(r *http.Request, newest bool, lastSeq int64) string {
	q := r.URL.Query()
	if newest {
		q.Set("before", strconv.FormatInt(lastSeq, 10))
	} else {
		q.Set("after", strconv.FormatInt(lastSeq, 10))
	}
	base := l.baseURL
	if base == "" {
		scheme := "https"
		if r.TLS == nil {
			scheme = "http"
		}
		base = scheme + "://" + r.Host + "/"
	}
	return strings.TrimSuffix(base, "/") + ListPath + "?" + q.Encode()
}
