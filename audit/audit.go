// Package audit records every state-changing request in the store's
// append-only, hash-chained audit log, and serves the log and its
// verification at /keyhold/v1/audit.
//
// A record says who did what, where, when, and how it ended: time, tenant,
// principal, action, scope, status, request id and client address. It never
// holds a request body, a query string or a header value, because those can
// carry secrets.
package audit

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// ActionSignIn is the action of a token request.
const ActionSignIn = "sign-in"

// Results of a recorded request.
const (
	ResultSucceeded = "Succeeded"
	ResultFailed    = "Failed"
)

// ReadAction is the permission a caller other than a Global Administrator
// needs at a scope to read the records below it, as Azure's activity log
// names it.
const ReadAction = "Microsoft.Insights/eventtypes/values/read"

// appendTimeout bounds the write of one record after the response went out,
// so that a stuck store cannot pile up goroutines.
const appendTimeout = 10 * time.Second

// Checker is the authorization check the reading endpoints use; rbac's
// Authorizer satisfies it.
type Checker interface {
	Check(ctx context.Context, c *keyhold.Caller, action, scope string) (bool, error)
}

// Log writes and reads the audit log.
type Log struct {
	store   keyhold.Store
	logger  *slog.Logger
	now     func() time.Time
	authz   Checker
	onFail  func()
	baseURL string
	failed  atomic.Int64
}

// Option configures a Log.
type Option func(*Log)

// WithNow sets the clock that stamps records.
func WithNow(now func() time.Time) Option { return func(l *Log) { l.now = now } }

// WithAuthorizer sets the check for readers who are not Global
// Administrators; without one, only Global Administrators may read.
func WithAuthorizer(c Checker) Option { return func(l *Log) { l.authz = c } }

// WithFailureHook sets a function called each time a record cannot be
// appended, such as a metric's Inc.
func WithFailureHook(fn func()) Option { return func(l *Log) { l.onFail = fn } }

// WithBaseURL sets the public URL (with a trailing slash) that nextLinks are
// built on; without it they are built from the request's Host.
func WithBaseURL(u string) Option { return func(l *Log) { l.baseURL = u } }

// New returns a Log that appends to and reads from store.
func New(store keyhold.Store, logger *slog.Logger, opts ...Option) *Log {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Log{store: store, logger: logger, now: time.Now}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Failures returns how many records this Log could not append.
func (l *Log) Failures() int64 { return l.failed.Load() }

type callerSlotKey struct{}

// callerSlot lets an authentication layer inside the middleware hand the
// caller back out: the caller lives in a context the middleware never sees.
type callerSlot struct {
	c atomic.Pointer[keyhold.Caller]
}

// SetCaller tells the audit middleware who the caller of the request is. An
// authentication middleware placed inside Middleware calls it once it has
// authenticated the request; without it, Middleware only sees a caller that
// was in the context before it.
func SetCaller(ctx context.Context, c *keyhold.Caller) {
	if s, ok := ctx.Value(callerSlotKey{}).(*callerSlot); ok {
		s.c.Store(c)
	}
}

// stateChanging reports whether a request with method changes state and so
// is recorded.
func stateChanging(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// tokenPath matches the token endpoint: /{tenant}/oauth2/v2.0/token, and the
// v1 shape some clients still use.
var tokenPath = regexp.MustCompile(`^/([^/]+)/oauth2/(?:v2\.0/)?token/?$`)

// maxTokenForm bounds how much of a token request is read to find the client
// id or user name; a real form is a few hundred bytes.
const maxTokenForm = 64 << 10

// Middleware records each state-changing request after next has answered it,
// including ones refused with 401 or 403. A failure to append is logged
// (without the record's secrets, as it has none) and counted; it cannot
// change the response, which has gone out.
func (l *Log) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !stateChanging(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		info := httpapi.InfoFrom(ctx)
		if info == nil {
			ctx, info = httpapi.WithInfo(ctx)
		}
		slot := &callerSlot{}
		ctx = context.WithValue(ctx, callerSlotKey{}, slot)
		r = r.WithContext(ctx)

		var signIn *signInInfo
		if m := tokenPath.FindStringSubmatch(r.URL.Path); m != nil && r.Method == http.MethodPost {
			signIn = readSignIn(r, m[1])
		}

		sw := &statusWriter{ResponseWriter: w}
		start := l.now()
		// A handler that panics still leaves a record: the recovery layer
		// outside answers 500, so that is what the record says.
		panicked := true
		defer func() {
			status := sw.Status()
			if panicked {
				status = http.StatusInternalServerError
			}
			l.record(ctx, r, info, slot, signIn, start, status)
		}()
		next.ServeHTTP(sw, r)
		panicked = false
	})
}

func (l *Log) record(ctx context.Context, r *http.Request, info *httpapi.Info, slot *callerSlot, signIn *signInInfo, start time.Time, status int) {
	if info.ReadOnly && status < 400 {
		return // a key operation that changed nothing; refusals are still kept
	}
	rec := &keyhold.AuditRecord{
		Time:      start.UTC(),
		Method:    r.Method,
		Status:    status,
		RequestID: httpapi.RequestID(ctx),
		ClientIP:  clientIP(r.RemoteAddr),
		Detail:    info.Detail,
	}
	rec.Result = ResultSucceeded
	if rec.Status >= 400 {
		rec.Result = ResultFailed
	}
	c := slot.c.Load()
	if c == nil {
		c = keyhold.CallerFrom(ctx)
	}
	if c != nil {
		rec.TenantID = c.TenantID
		if c.Principal != nil {
			rec.PrincipalID = c.Principal.ID
			rec.PrincipalName = principalName(c.Principal)
			if rec.TenantID == "" {
				rec.TenantID = c.Principal.TenantID
			}
		}
	}
	switch {
	case signIn != nil:
		rec.Action = ActionSignIn
		rec.Scope = "/" + signIn.tenant
		rec.PrincipalName = signIn.name
		if rec.Detail == "" && signIn.grantType != "" {
			rec.Detail = "grant_type " + signIn.grantType
		}
		l.resolveSignIn(ctx, rec, signIn)
	default:
		rec.Action, rec.Scope = info.Action, info.Scope
		if rec.Action == "" {
			rec.Action = r.Method + " " + r.URL.Path
		}
		if rec.Scope == "" {
			rec.Scope = r.URL.Path
		}
	}
	l.append(context.WithoutCancel(ctx), rec)
}

func (l *Log) append(ctx context.Context, rec *keyhold.AuditRecord) {
	ctx, cancel := context.WithTimeout(ctx, appendTimeout)
	defer cancel()
	if err := l.store.AppendAudit(ctx, rec); err != nil {
		l.failed.Add(1)
		if l.onFail != nil {
			l.onFail()
		}
		// The record itself is safe to log (it never holds a secret), and
		// the log line is then the only trace of the request.
		l.logger.Error("audit: cannot append a record", "err", err.Error(), "action", rec.Action,
			"scope", rec.Scope, "principalId", rec.PrincipalID, "status", rec.Status, "requestId", rec.RequestID)
	}
}

func principalName(p *keyhold.Principal) string {
	if p.UserPrincipalName != "" {
		return p.UserPrincipalName
	}
	return p.DisplayName
}

// signInInfo is what a token request may tell the audit log: who tried, and
// how. The secret, the assertion and every other field are left behind.
type signInInfo struct {
	tenant    string
	name      string // the username, or the client id
	username  bool
	grantType string
}

var knownGrantTypes = map[string]bool{
	"client_credentials": true, "password": true, "refresh_token": true, "authorization_code": true,
	"urn:ietf:params:oauth:grant-type:jwt-bearer": true, "urn:ietf:params:oauth:grant-type:device_code": true,
}

// readSignIn reads the form of a token request and puts the body back for
// the token handler. A form larger than maxTokenForm is left unread here; the
// handler refuses it on its own.
func readSignIn(r *http.Request, tenant string) *signInInfo {
	s := &signInInfo{tenant: tenant}
	if r.Body == nil || !strings.HasPrefix(strings.ToLower(r.Header.Get("Content-Type")), "application/x-www-form-urlencoded") {
		return s
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, maxTokenForm+1))
	r.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
	if err != nil || len(b) > maxTokenForm {
		return s
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return s
	}
	if gt := form.Get("grant_type"); knownGrantTypes[gt] {
		s.grantType = gt
	} else if gt != "" {
		s.grantType = "other"
	}
	// A user name is who signs in with a password; the client id then only
	// names the app they used.
	if u := form.Get("username"); u != "" && s.grantType == "password" {
		s.name, s.username = truncate(u, 256), true
	} else {
		s.name = truncate(form.Get("client_id"), 256)
	}
	return s
}

// resolveSignIn fills in the principal id and tenant of a sign-in when the
// name is a known user or application. An unknown name stays a name only.
func (l *Log) resolveSignIn(ctx context.Context, rec *keyhold.AuditRecord, s *signInInfo) {
	if guidRE.MatchString(s.tenant) {
		rec.TenantID = strings.ToLower(s.tenant)
	}
	if s.name == "" || rec.PrincipalID != "" {
		return
	}
	f := keyhold.PrincipalFilter{TenantID: rec.TenantID}
	if s.username {
		f.UserPrincipalName = s.name
	} else {
		f.AppID = s.name
	}
	ps, err := l.store.FindPrincipals(ctx, f)
	if err != nil || len(ps) != 1 {
		return
	}
	rec.PrincipalID = ps[0].ID
	if rec.TenantID == "" {
		rec.TenantID = ps[0].TenantID
	}
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func clientIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// statusWriter remembers the status the handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Status returns the status written, 200 if the handler wrote nothing.
func (w *statusWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
