package audit

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// memStore is an in-memory audit log and principal directory. Other Store
// methods panic through the nil embedded interface.
type memStore struct {
	keyhold.Store
	mu         sync.Mutex
	recs       []*keyhold.AuditRecord
	principals []*keyhold.Principal
	failAppend error
	lists      int
}

func (s *memStore) AppendAudit(_ context.Context, r *keyhold.AuditRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failAppend != nil {
		return s.failAppend
	}
	r.Seq = int64(len(s.recs)) + 1
	r.PrevHash = keyhold.AuditGenesisHash
	if len(s.recs) > 0 {
		r.PrevHash = s.recs[len(s.recs)-1].Hash
	}
	r.Hash = r.ComputeHash()
	c := *r
	s.recs = append(s.recs, &c)
	return nil
}

func (s *memStore) ListAudit(_ context.Context, f keyhold.AuditFilter) ([]*keyhold.AuditRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists++
	var out []*keyhold.AuditRecord
	recs := slices.Clone(s.recs)
	if f.Newest {
		slices.Reverse(recs)
	}
	for _, r := range recs {
		switch {
		case f.TenantID != "" && r.TenantID != f.TenantID,
			f.PrincipalID != "" && r.PrincipalID != f.PrincipalID,
			f.ScopePrefix != "" && !(strings.EqualFold(r.Scope, f.ScopePrefix) || strings.HasPrefix(strings.ToLower(r.Scope), strings.ToLower(f.ScopePrefix)+"/")),
			!f.Since.IsZero() && r.Time.Before(f.Since),
			!f.Until.IsZero() && r.Time.After(f.Until),
			r.Seq <= f.AfterSeq,
			f.BeforeSeq > 0 && r.Seq >= f.BeforeSeq:
			continue
		}
		c := *r
		out = append(out, &c)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

func (s *memStore) FindPrincipals(_ context.Context, f keyhold.PrincipalFilter) ([]*keyhold.Principal, error) {
	var out []*keyhold.Principal
	for _, p := range s.principals {
		if (f.TenantID == "" || p.TenantID == f.TenantID) &&
			(f.UserPrincipalName == "" || strings.EqualFold(p.UserPrincipalName, f.UserPrincipalName)) &&
			(f.AppID == "" || p.AppID == f.AppID) {
			out = append(out, p)
		}
	}
	return out, nil
}

const (
	tenant = "11111111-1111-1111-1111-111111111111"
	sub    = "/subscriptions/22222222-2222-2222-2222-222222222222"
)

var (
	admin  = &keyhold.Principal{ID: "aaaaaaaa-0000-0000-0000-000000000001", TenantID: tenant, Type: keyhold.PrincipalUser, UserPrincipalName: "admin@contoso.keyhold", DisplayName: "Admin", DirectoryRoles: []string{keyhold.RoleGlobalAdministrator}}
	reader = &keyhold.Principal{ID: "aaaaaaaa-0000-0000-0000-000000000002", TenantID: tenant, Type: keyhold.PrincipalUser, UserPrincipalName: "reader@contoso.keyhold", DisplayName: "Reader"}
	app    = &keyhold.Principal{ID: "aaaaaaaa-0000-0000-0000-000000000003", TenantID: tenant, Type: keyhold.PrincipalServicePrincipal, AppID: "bbbbbbbb-0000-0000-0000-000000000003", DisplayName: "keyhold-bootstrap"}
)

func callerOf(p *keyhold.Principal) *keyhold.Caller {
	return &keyhold.Caller{Principal: p, TenantID: p.TenantID}
}

// authn mimics the server's authentication layer: it finds the caller from a
// header and reports it to the audit middleware, or answers 401.
func authn(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p *keyhold.Principal
		switch r.Header.Get("X-Test-Principal") {
		case "admin":
			p = admin
		case "reader":
			p = reader
		}
		if p == nil {
			httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EUnauthenticated, "AuthenticationFailed", "no token"))
			return
		}
		c := callerOf(p)
		SetCaller(r.Context(), c)
		next.ServeHTTP(w, r.WithContext(keyhold.WithCaller(r.Context(), c)))
	})
}

func TestMiddlewareRecords(t *testing.T) {
	store := &memStore{principals: []*keyhold.Principal{admin, reader, app}}
	now := time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	log := New(store, nil, WithNow(func() time.Time { return now }))

	surface := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/rg1"):
			httpapi.Annotate(r.Context(), "Microsoft.Resources/subscriptions/resourceGroups/write", sub+"/resourceGroups/rg1")
			w.WriteHeader(http.StatusCreated)
		case strings.HasSuffix(r.URL.Path, "/forbidden"):
			httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed", "no"))
		case strings.HasSuffix(r.URL.Path, "/unwrapkey"):
			httpapi.Annotate(r.Context(), "Microsoft.KeyVault/vaults/keys/unwrap/action", "/vaults/kv/keys/k")
			httpapi.MarkReadOnly(r.Context())
			if r.URL.Query().Get("deny") != "" {
				httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EForbidden, "Forbidden", "no"))
				return
			}
			io.WriteString(w, "ok")
		default:
			io.WriteString(w, "ok")
		}
	})
	token := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The token handler must still see the whole form.
		if err := r.ParseForm(); err != nil || r.PostForm.Get("client_secret") != "s3cret-value" {
			http.Error(w, "form lost", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	mux := http.NewServeMux()
	mux.Handle("/"+tenant+"/oauth2/v2.0/token", token)
	mux.Handle("/common/oauth2/v2.0/token", token)
	mux.Handle("/", authn(surface))
	h := log.Middleware(mux)

	form := func(v url.Values) io.Reader { return strings.NewReader(v.Encode()) }
	tests := []struct {
		name    string
		method  string
		target  string
		who     string
		body    io.Reader
		form    bool
		want    *keyhold.AuditRecord // nil: nothing recorded
		wantHTT int
	}{
		{name: "GET is not recorded", method: "GET", target: sub + "/resourceGroups/rg2", who: "admin", wantHTT: 200},
		{name: "annotated PUT", method: "PUT", target: sub + "/resourceGroups/rg1?api-version=2021-04-01&sig=secret", who: "admin", wantHTT: 201,
			want: &keyhold.AuditRecord{TenantID: tenant, PrincipalID: admin.ID, PrincipalName: "admin@contoso.keyhold", Action: "Microsoft.Resources/subscriptions/resourceGroups/write", Method: "PUT", Scope: sub + "/resourceGroups/rg1", Status: 201, Result: "Succeeded", ClientIP: "192.0.2.1"}},
		{name: "unannotated DELETE falls back to method and path", method: "DELETE", target: "/keyhold/v1/things/x?password=p", who: "reader", wantHTT: 200,
			want: &keyhold.AuditRecord{TenantID: tenant, PrincipalID: reader.ID, PrincipalName: "reader@contoso.keyhold", Action: "DELETE /keyhold/v1/things/x", Method: "DELETE", Scope: "/keyhold/v1/things/x", Status: 200, Result: "Succeeded", ClientIP: "192.0.2.1"}},
		{name: "403 is recorded", method: "POST", target: sub + "/forbidden", who: "reader", wantHTT: 403,
			want: &keyhold.AuditRecord{TenantID: tenant, PrincipalID: reader.ID, PrincipalName: "reader@contoso.keyhold", Action: "POST " + sub + "/forbidden", Method: "POST", Scope: sub + "/forbidden", Status: 403, Result: "Failed", ClientIP: "192.0.2.1"}},
		{name: "read-only POST that succeeds is not recorded", method: "POST", target: "/vaults/kv/keys/k/unwrapkey", who: "admin", wantHTT: 200},
		{name: "read-only POST that is refused is recorded", method: "POST", target: "/vaults/kv/keys/k/unwrapkey?deny=1", who: "reader", wantHTT: 403,
			want: &keyhold.AuditRecord{TenantID: tenant, PrincipalID: reader.ID, PrincipalName: "reader@contoso.keyhold", Action: "Microsoft.KeyVault/vaults/keys/unwrap/action", Method: "POST", Scope: "/vaults/kv/keys/k", Status: 403, Result: "Failed", ClientIP: "192.0.2.1"}},
		{name: "401 is recorded", method: "PATCH", target: sub, who: "", wantHTT: 401,
			want: &keyhold.AuditRecord{Action: "PATCH " + sub, Method: "PATCH", Scope: sub, Status: 401, Result: "Failed", ClientIP: "192.0.2.1"}},
		{name: "client credentials sign-in", method: "POST", target: "/" + tenant + "/oauth2/v2.0/token", form: true,
			body:    form(url.Values{"grant_type": {"client_credentials"}, "client_id": {app.AppID}, "client_secret": {"s3cret-value"}, "scope": {"https://management.keyhold.internal/.default"}}),
			wantHTT: 200,
			want:    &keyhold.AuditRecord{TenantID: tenant, PrincipalID: app.ID, PrincipalName: app.AppID, Action: "sign-in", Method: "POST", Scope: "/" + tenant, Status: 200, Result: "Succeeded", Detail: "grant_type client_credentials", ClientIP: "192.0.2.1"}},
		{name: "password sign-in names the user", method: "POST", target: "/common/oauth2/v2.0/token", form: true,
			body:    form(url.Values{"grant_type": {"password"}, "client_id": {"some-app"}, "username": {"Admin@contoso.keyhold"}, "password": {"hunter2hunter2"}, "client_secret": {"s3cret-value"}}),
			wantHTT: 200,
			want:    &keyhold.AuditRecord{TenantID: tenant, PrincipalID: admin.ID, PrincipalName: "Admin@contoso.keyhold", Action: "sign-in", Method: "POST", Scope: "/common", Status: 200, Result: "Succeeded", Detail: "grant_type password", ClientIP: "192.0.2.1"}},
		{name: "failed sign-in of an unknown app", method: "POST", target: "/common/oauth2/v2.0/token", form: true,
			body:    form(url.Values{"grant_type": {"client_credentials"}, "client_id": {"nobody"}, "client_secret": {"wrong"}}),
			wantHTT: 400,
			want:    &keyhold.AuditRecord{PrincipalName: "nobody", Action: "sign-in", Method: "POST", Scope: "/common", Status: 400, Result: "Failed", Detail: "grant_type client_credentials", ClientIP: "192.0.2.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(store.recs)
			req := httptest.NewRequest(tt.method, tt.target, tt.body)
			ctx := httpapi.WithRequestID(req.Context(), "req-"+tt.name)
			req = req.WithContext(ctx)
			if tt.form {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			if tt.who != "" {
				req.Header.Set("X-Test-Principal", tt.who)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantHTT {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.wantHTT, rec.Body)
			}
			if tt.want == nil {
				if len(store.recs) != before {
					t.Fatalf("recorded %d records, want none", len(store.recs)-before)
				}
				return
			}
			if len(store.recs) != before+1 {
				t.Fatalf("recorded %d records, want 1", len(store.recs)-before)
			}
			got := *store.recs[before]
			want := *tt.want
			want.Seq, want.Time, want.RequestID, want.PrevHash, want.Hash = got.Seq, now, "req-"+tt.name, got.PrevHash, got.Hash
			if got != want {
				t.Errorf("record =\n%+v\nwant\n%+v", got, want)
			}
			b, _ := json.Marshal(got)
			for _, secret := range []string{"s3cret-value", "hunter2hunter2", "sig=secret", "password=p", "wrong"} {
				if strings.Contains(string(b), secret) {
					t.Errorf("record holds %q: %s", secret, b)
				}
			}
		})
	}
	if _, err := keyhold.VerifyAuditChain(nil, store.recs); err != nil {
		t.Errorf("chain: %v", err)
	}
}

func TestMiddlewareRecordsPanics(t *testing.T) {
	store := &memStore{}
	h := New(store, nil).Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the recovery layer")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/x", nil))
	}()
	if len(store.recs) != 1 || store.recs[0].Status != 500 || store.recs[0].Result != ResultFailed {
		t.Fatalf("records = %+v, want one 500 Failed", store.recs)
	}
}

func TestMiddlewareAppendFailure(t *testing.T) {
	store := &memStore{failAppend: errors.New("disk full")}
	var buf strings.Builder
	var mu sync.Mutex
	hooked := 0
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
	l := New(store, logger, WithFailureHook(func() { hooked++ }))
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("PUT", "/x?client_secret=zzz", nil))
	if rec.Code != http.StatusAccepted {
		t.Errorf("status = %d, want the handler's 202", rec.Code)
	}
	if l.Failures() != 1 || hooked != 1 {
		t.Errorf("Failures = %d, hook called %d times, want 1 and 1", l.Failures(), hooked)
	}
	if !strings.Contains(buf.String(), "disk full") || strings.Contains(buf.String(), "zzz") {
		t.Errorf("log = %s, want the cause and no query", buf.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// fakeAuthz allows ReadAction at the scopes it lists and below them.
type fakeAuthz map[string]bool

func (a fakeAuthz) Check(_ context.Context, c *keyhold.Caller, action, scope string) (bool, error) {
	if action != ReadAction {
		return false, nil
	}
	for s := range a {
		if scope == s || strings.HasPrefix(scope, s+"/") {
			return true, nil
		}
	}
	return false, nil
}

func seed(t *testing.T, store *memStore, n int) {
	t.Helper()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		r := &keyhold.AuditRecord{Time: base.Add(time.Duration(i) * time.Hour), TenantID: tenant, PrincipalID: admin.ID, Action: "a", Method: "PUT", Scope: sub + "/resourceGroups/rg" + string(rune('a'+i%3)), Status: 200, Result: "Succeeded"}
		if i%2 == 1 {
			r.PrincipalID = reader.ID
		}
		if i == n-1 {
			r.TenantID = "other-tenant"
		}
		if err := store.AppendAudit(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func get(t *testing.T, h http.Handler, c *keyhold.Caller, target string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	if c != nil {
		req = req.WithContext(keyhold.WithCaller(req.Context(), c))
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	return rec, body
}

func TestHandlerList(t *testing.T) {
	store := &memStore{}
	seed(t, store, 10) // 9 in tenant, the last in another tenant
	h := New(store, nil, WithAuthorizer(fakeAuthz{sub + "/resourceGroups/rga": true}), WithBaseURL("https://keyhold.test/")).Handler()

	tests := []struct {
		name       string
		caller     *keyhold.Caller
		query      string
		wantStatus int
		wantCode   string
		wantSeqs   []float64
		wantNext   bool
	}{
		{"admin sees tenant", callerOf(admin), "", 200, "", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}, false},
		{"admin pages", callerOf(admin), "?top=4", 200, "", []float64{1, 2, 3, 4}, true},
		{"admin after", callerOf(admin), "?after=7", 200, "", []float64{8, 9}, false},
		{"admin by principal", callerOf(admin), "?principalId=" + reader.ID, 200, "", []float64{2, 4, 6, 8}, false},
		{"admin by principal (client spelling)", callerOf(admin), "?principal=" + reader.ID, 200, "", []float64{2, 4, 6, 8}, false},
		{"admin by time", callerOf(admin), "?since=2030-01-01T02:00:00Z&until=2030-01-01T04:00:00Z", 200, "", []float64{3, 4, 5}, false},
		{"reader at granted scope", callerOf(reader), "?scope=" + url.QueryEscape(sub+"/resourceGroups/rga"), 200, "", []float64{1, 4, 7}, false},
		{"reader without scope", callerOf(reader), "", 403, "AuthorizationFailed", nil, false},
		{"reader at other scope", callerOf(reader), "?scope=" + url.QueryEscape(sub), 403, "AuthorizationFailed", nil, false},
		{"no caller", nil, "", 401, "AuthenticationFailed", nil, false},
		{"bad since", callerOf(admin), "?since=yesterday", 400, "InvalidParameter", nil, false},
		{"bad top", callerOf(admin), "?top=0", 400, "InvalidParameter", nil, false},
		{"huge top", callerOf(admin), "?top=100000", 400, "InvalidParameter", nil, false},
		{"bad after", callerOf(admin), "?after=-1", 400, "InvalidParameter", nil, false},
		{"relative scope", callerOf(admin), "?scope=subscriptions", 400, "InvalidParameter", nil, false},
		{"admin newest first", callerOf(admin), "?order=newest&top=4", 200, "", []float64{9, 8, 7, 6}, true},
		{"admin newest before", callerOf(admin), "?order=newest&before=4", 200, "", []float64{3, 2, 1}, false},
		{"bad order", callerOf(admin), "?order=random", 400, "InvalidParameter", nil, false},
		{"bad before", callerOf(admin), "?order=newest&before=x", 400, "InvalidParameter", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, body := get(t, h, tt.caller, ListPath+tt.query)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantCode != "" {
				if got := body["error"].(map[string]any)["code"]; got != tt.wantCode {
					t.Errorf("code = %v, want %s", got, tt.wantCode)
				}
				return
			}
			var seqs []float64
			for _, v := range body["value"].([]any) {
				seqs = append(seqs, v.(map[string]any)["seq"].(float64))
			}
			if !equal(seqs, tt.wantSeqs) {
				t.Errorf("seqs = %v, want %v", seqs, tt.wantSeqs)
			}
			next, _ := body["nextLink"].(string)
			if (next != "") != tt.wantNext {
				t.Errorf("nextLink = %q, want one: %v", next, tt.wantNext)
			}
			if next != "" && !strings.HasPrefix(next, "https://keyhold.test/keyhold/v1/audit?") {
				t.Errorf("nextLink = %q, want one on the base URL", next)
			}
		})
	}

	// Following nextLinks yields every record once.
	var all []float64
	link := ListPath + "?top=2"
	for i := 0; link != "" && i < 10; i++ {
		_, body := get(t, h, callerOf(admin), strings.TrimPrefix(link, "https://keyhold.test"))
		for _, v := range body["value"].([]any) {
			all = append(all, v.(map[string]any)["seq"].(float64))
		}
		link, _ = body["nextLink"].(string)
	}
	if want := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}; !equal(all, want) {
		t.Errorf("paged seqs = %v, want %v", all, want)
	}
	// Newest first, the nextLinks go back in time.
	all = nil
	link = ListPath + "?order=newest&top=4"
	for i := 0; link != "" && i < 10; i++ {
		_, body := get(t, h, callerOf(admin), strings.TrimPrefix(link, "https://keyhold.test"))
		for _, v := range body["value"].([]any) {
			all = append(all, v.(map[string]any)["seq"].(float64))
		}
		link, _ = body["nextLink"].(string)
	}
	if want := []float64{9, 8, 7, 6, 5, 4, 3, 2, 1}; !equal(all, want) {
		t.Errorf("paged seqs newest first = %v, want %v", all, want)
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestVerify(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		tamper  func(s *memStore)
		wantErr string
	}{
		{"empty log", 0, nil, ""},
		{"intact, several pages", 2*verifyPage + 7, nil, ""},
		{"altered record", 2*verifyPage + 7, func(s *memStore) { s.recs[verifyPage+3].Status = 200 + 1 }, "record 504 was altered"},
		{"removed record", 20, func(s *memStore) { s.recs = append(s.recs[:4], s.recs[5:]...) }, "record 6 follows record 4"},
		{"relinked record", 20, func(s *memStore) {
			s.recs[9].Action = "hidden"
			s.recs[9].Hash = s.recs[9].ComputeHash()
		}, "record 11 does not link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := &memStore{}
			seed(t, store, tt.n)
			if tt.tamper != nil {
				tt.tamper(store)
			}
			h := New(store, nil).Handler()
			rec, body := get(t, h, callerOf(admin), VerifyPath)
			if tt.wantErr == "" {
				if rec.Code != 200 || body["verified"] != true || body["records"] != float64(tt.n) {
					t.Fatalf("verify = %d %v, want 200 verified with %d records", rec.Code, body, tt.n)
				}
				want := keyhold.AuditGenesisHash
				if tt.n > 0 {
					want = store.recs[tt.n-1].Hash
				}
				if body["lastHash"] != want {
					t.Errorf("lastHash = %v, want %s", body["lastHash"], want)
				}
				if tt.n > verifyPage && store.lists < 3 {
					t.Errorf("verify read the log in %d calls, want pages", store.lists)
				}
				return
			}
			if rec.Code != http.StatusConflict {
				t.Fatalf("status = %d, want 409: %s", rec.Code, rec.Body)
			}
			e := body["error"].(map[string]any)
			if e["code"] != "AuditChainBroken" || !strings.Contains(e["message"].(string), tt.wantErr) {
				t.Errorf("error = %v, want AuditChainBroken naming %q", e, tt.wantErr)
			}
		})
	}
}

func TestVerifyNeedsAdmin(t *testing.T) {
	store := &memStore{}
	rec, _ := get(t, New(store, nil).Handler(), callerOf(reader), VerifyPath)
	if rec.Code != http.StatusForbidden {
		t.Errorf("status = %d, want 403", rec.Code)
	}
	rec, _ = get(t, New(store, nil, WithAuthorizer(fakeAuthz{sub: true})).Handler(), callerOf(reader), VerifyPath)
	if rec.Code != http.StatusForbidden {
		t.Errorf("status with a grant below the root = %d, want 403", rec.Code)
	}
}

func TestHandlerMethodsAndPaths(t *testing.T) {
	h := New(&memStore{}, nil).Handler()
	for _, tt := range []struct {
		method, target string
		want           int
	}{
		{"POST", ListPath, 405},
		{"DELETE", VerifyPath, 405},
		{"GET", "/keyhold/v1/audit/nope", 404},
	} {
		req := httptest.NewRequest(tt.method, tt.target, nil)
		req = req.WithContext(keyhold.WithCaller(req.Context(), callerOf(admin)))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.want || !strings.Contains(rec.Body.String(), `"error"`) {
			t.Errorf("%s %s = %d %s, want %d in Azure shape", tt.method, tt.target, rec.Code, rec.Body, tt.want)
		}
	}
}
