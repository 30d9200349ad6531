package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// staticTokens hands out "tok-<audience>".
type staticTokens struct{}

func (staticTokens) Token(_ context.Context, aud string) (string, error) { return "tok-" + aud, nil }

// newServer starts a TLS server with h and returns a client that trusts it
// through a CA file, as the CLI does.
func newServer(t *testing.T, h http.Handler) (*httptest.Server, *Client) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Server: srv.URL, CAFile: ca, Tokens: staticTokens{}, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return srv, c
}

func TestTLSVerification(t *testing.T) {
	srv, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"value":[]}`)
	}))
	if _, err := c.ListSubscriptions(context.Background()); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	// Without the CA file the system roots do not know the test CA.
	plain, err := New(Config{Server: srv.URL, Tokens: staticTokens{}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = plain.ListSubscriptions(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA file: got %v, want a certificate error", err)
	}
}

func TestNewRejects(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no server", Config{}, "no server URL"},
		{"relative", Config{Server: "127.0.0.1:8443"}, "must look like"},
		{"ftp", Config{Server: "ftp://h/"}, "must look like"},
		{"query", Config{Server: "https://h/?a=b"}, "must look like"},
		{"missing CA", Config{Server: "https://h/", CAFile: filepath.Join(t.TempDir(), "none.pem")}, "reading CA file"},
		{"bad CA", Config{Server: "https://h/", CAFile: bad}, "holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		wantString string
		wantID     string
	}{
		{"azure", 404, map[string]string{"x-ms-request-id": "req-1"},
			`{"error":{"code":"ResourceGroupNotFound","message":"Resource group 'rg' could not be found."}}`,
			"Resource group 'rg' could not be found. (ResourceGroupNotFound)", "req-1"},
		{"oauth", 400, map[string]string{"request-id": "req-2"},
			`{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}`,
			"AADSTS7000215: Invalid client secret provided. (invalid_client)", "req-2"},
		{"code in header only", 409, map[string]string{"x-ms-error-code": "Conflict", "x-ms-request-id": "req-3"},
			``, "the server answered GET /subscriptions with 409 Conflict (Conflict)", "req-3"},
		{"html", 502, nil, `<html>bad gateway</html>`,
			"the server answered GET /subscriptions with 502 Bad Gateway (HTTP 502)", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clientID string
			_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				clientID = r.Header.Get("x-ms-client-request-id")
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			_, err := c.ListSubscriptions(context.Background())
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			if got := e.Error(); got != tt.wantString {
				t.Errorf("Error() = %q, want %q", got, tt.wantString)
			}
			wantID := tt.wantID
			if wantID == "" {
				wantID = clientID // the id the client sent stands in
			}
			if e.RequestID != wantID || wantID == "" {
				t.Errorf("RequestID = %q, want %q", e.RequestID, wantID)
			}
			if e.StatusCode != tt.status {
				t.Errorf("StatusCode = %d, want %d", e.StatusCode, tt.status)
			}
		})
	}
}

func TestBearerPerAudience(t *testing.T) {
	var got []string
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization"))
		fmt.Fprint(w, `{"value":[]}`)
	}))
	ctx := context.Background()
	c.ListSubscriptions(ctx)
	c.ListUsers(ctx)
	c.ListAudit(ctx, AuditQuery{})
	want := []string{
		"/subscriptions Bearer tok-" + AudienceARM,
		"/v1.0/users Bearer tok-" + AudienceGraph,
		"/keyhold/v1/audit Bearer tok-" + AudienceARM,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPaging(t *testing.T) {
	var srvURL string
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page") {
		case "":
			fmt.Fprintf(w, `{"value":[{"name":"a"}],"nextLink":"%s/subscriptions/s/resourcegroups?api-version=2021-04-01&page=2"}`, srvURL)
		case "2":
			fmt.Fprintf(w, `{"value":[{"name":"b"}],"@odata.nextLink":"%s/subscriptions/s/resourcegroups?page=3"}`, srvURL)
		case "3":
			fmt.Fprint(w, `{"value":[{"name":"c"}]}`)
		}
	}))
	srvURL = strings.TrimSuffix(c.Server(), "/")
	gs, err := c.ListResourceGroups(context.Background(), "s")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, g.Name)
	}
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("got %v, want a,b,c", got)
	}
}

func TestNextLinkToAnotherHostIsRefused(t *testing.T) {
	var other atomic.Int32
	evil := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { other.Add(1) }))
	defer evil.Close()
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"value":[],"nextLink":"%s/steal"}`, evil.URL)
	}))
	_, err := c.ListResourceGroups(context.Background(), "s")
	if err == nil || !strings.Contains(err.Error(), "refusing to follow") {
		t.Fatalf("got %v, want a refusal", err)
	}
	if other.Load() != 0 {
		t.Fatal("the client called the other host")
	}
}

func TestRequestToken(t *testing.T) {
	tests := []struct {
		name      string
		cred      Credential
		wantForm  map[string]string
		expiresIn string
	}{
		{"client credentials", Credential{ClientID: "app", ClientSecret: keyhold.NewSecret([]byte("s3cret"))},
			map[string]string{"grant_type": "client_credentials", "client_id": "app", "client_secret": "s3cret", "scope": AudienceARM + "/.default"}, `3600`},
		{"password", Credential{Username: "a@b", Password: keyhold.NewSecret([]byte("pw"))},
			map[string]string{"grant_type": "password", "client_id": DefaultPublicClientID, "username": "a@b", "password": "pw", "scope": AudienceARM + "/.default"}, `"3600"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var path string
			var form map[string]string
			_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				path = r.URL.Path
				r.ParseForm()
				form = map[string]string{}
				for k := range r.PostForm {
					form[k] = r.PostForm.Get(k)
				}
				if r.Header.Get("Authorization") != "" {
					t.Error("the token request carried a bearer token")
				}
				fmt.Fprintf(w, `{"token_type":"Bearer","access_token":"at","expires_in":%s}`, tt.expiresIn)
			}))
			before := time.Now()
			tok, err := c.RequestToken(context.Background(), "tid-1", tt.cred, AudienceARM+"/")
			if err != nil {
				t.Fatal(err)
			}
			if path != "/tid-1/oauth2/v2.0/token" {
				t.Errorf("path = %q", path)
			}
			if fmt.Sprint(form) != fmt.Sprint(tt.wantForm) {
				t.Errorf("form = %v, want %v", form, tt.wantForm)
			}
			if tok.AccessToken != "at" || tok.ExpiresOn.Before(before.Add(59*time.Minute)) || tok.ExpiresOn.After(time.Now().Add(time.Hour)) {
				t.Errorf("token = %+v", tok)
			}
		})
	}
}

func TestServicePrincipalNeedsTenant(t *testing.T) {
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the request was sent")
	}))
	cred := Credential{ClientID: "app", ClientSecret: keyhold.NewSecret([]byte("s"))}
	for _, tenant := range []string{"", "organizations", "Common"} {
		if _, err := c.RequestToken(context.Background(), tenant, cred, AudienceARM); err == nil || !strings.Contains(err.Error(), "give the tenant id") {
			t.Errorf("tenant %q: got %v", tenant, err)
		}
	}
}

func TestCredentialSourceCaches(t *testing.T) {
	var n atomic.Int32
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		r.ParseForm()
		fmt.Fprintf(w, `{"access_token":"at-%d-%s","expires_in":3600}`, n.Load(), r.PostForm.Get("scope"))
	}))
	now := time.Now()
	src := NewCredentialSource(c, "t", Credential{ClientID: "app", ClientSecret: keyhold.NewSecret([]byte("s"))}, func() time.Time { return now })
	ctx := context.Background()
	a1, _ := src.Token(ctx, AudienceARM)
	a2, _ := src.Token(ctx, AudienceARM)
	g1, _ := src.Token(ctx, AudienceGraph)
	if a1 != a2 || a1 == g1 || n.Load() != 2 {
		t.Fatalf("tokens %q %q %q after %d requests; want the ARM token reused and 2 requests", a1, a2, g1, n.Load())
	}
	now = now.Add(59*time.Minute + 30*time.Second) // within a minute of expiry
	a3, _ := src.Token(ctx, AudienceARM)
	if a3 == a1 || n.Load() != 3 {
		t.Fatalf("got %q after %d requests; want a fresh token", a3, n.Load())
	}
}

func TestDeleteResourceGroupWaits(t *testing.T) {
	var polls atomic.Int32
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodDelete:
			w.Header().Set("Location", "/operationresults/op1?api-version=2021-04-01")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusAccepted)
		case r.URL.Path == "/operationresults/op1":
			if polls.Add(1) < 3 {
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusAccepted)
				return
			}
			w.WriteHeader(http.StatusOK)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	}))
	ticks := 0
	if err := c.DeleteResourceGroup(context.Background(), "s", "rg", func() { ticks++ }); err != nil {
		t.Fatal(err)
	}
	if polls.Load() != 3 || ticks == 0 {
		t.Fatalf("polls = %d, ticks = %d; want 3 polls and some ticks", polls.Load(), ticks)
	}
}

func TestDeleteResourceGroupAsyncFailure(t *testing.T) {
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.Header().Set("Azure-AsyncOperation", "/ops/1")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusAccepted)
			return
		}
		fmt.Fprint(w, `{"status":"Failed","error":{"code":"ResourceGroupDeletionBlocked","message":"a lock prevents it"}}`)
	}))
	err := c.DeleteResourceGroup(context.Background(), "s", "rg", nil)
	if err == nil || err.Error() != "a lock prevents it (ResourceGroupDeletionBlocked)" {
		t.Fatalf("got %v", err)
	}
}

func TestRegisterProviderWait(t *testing.T) {
	var gets atomic.Int32
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		state := "Registering"
		if r.Method == http.MethodGet && gets.Add(1) >= 2 {
			state = "Registered"
		}
		if r.Method == http.MethodPost && r.URL.Path != "/subscriptions/s/providers/Microsoft.PowerPlatform/register" {
			t.Errorf("POST %s", r.URL.Path)
		}
		json.NewEncoder(w).Encode(Provider{Namespace: "Microsoft.PowerPlatform", RegistrationState: state})
	}))
	p, err := c.RegisterProvider(context.Background(), "s", "Microsoft.PowerPlatform", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.RegistrationState != "Registered" || gets.Load() != 2 {
		t.Fatalf("state %s after %d polls", p.RegistrationState, gets.Load())
	}
}

func TestPathsAreEscaped(t *testing.T) {
	var got string
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.EscapedPath() + "?" + r.URL.RawQuery
		fmt.Fprint(w, `{}`)
	}))
	ctx := context.Background()
	c.GetResourceGroup(ctx, "s", "rg/../x")
	if want := "/subscriptions/s/resourcegroups/rg%2F..%2Fx?api-version=2021-04-01"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	c.RegisterFeature(ctx, "s", "Microsoft.PowerPlatform", "enterprisePoliciesPreview")
	if want := "/subscriptions/s/providers/Microsoft.Features/providers/Microsoft.PowerPlatform/features/enterprisePoliciesPreview/register?api-version=2014-08-01-preview"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	c.AddDirectoryRoleMember(ctx, "62e90394-69f5-4237-9190-012177145e10", "u1")
	if want := "/v1.0/directoryRoles/roleTemplateId=62e90394-69f5-4237-9190-012177145e10/members/$ref?"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestVerifyAudit(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		body    string
		want    *AuditVerification
		wantErr string
	}{
		{"intact", 200, `{"verified":true,"records":3,"lastHash":"abc"}`, &AuditVerification{Verified: true, Records: 3, LastHash: "abc"}, ""},
		{"broken", 409, `{"error":{"code":"AuditChainBroken","message":"audit: record 2 was altered"}}`, nil, "audit: record 2 was altered (AuditChainBroken)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/keyhold/v1/audit/verify" {
					t.Errorf("path %s", r.URL.Path)
				}
				w.WriteHeader(tt.status)
				fmt.Fprint(w, tt.body)
			}))
			got, err := c.VerifyAudit(context.Background())
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr || StatusCode(err) != 409 {
					t.Fatalf("got %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || *got != *tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestListAuditStopsAtTop(t *testing.T) {
	var queries []string
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		top, _ := strconv.Atoi(r.URL.Query().Get("top"))
		var recs []keyhold.AuditRecord
		for i := 1; i <= top; i++ {
			recs = append(recs, keyhold.AuditRecord{Seq: int64(after + i)})
		}
		// An endless log: there is always a next page.
		json.NewEncoder(w).Encode(map[string]any{"value": recs, "nextLink": fmt.Sprintf("/keyhold/v1/audit?after=%d&top=%d", after+top, top)})
	}))
	recs, err := c.ListAudit(context.Background(), AuditQuery{Top: 1500, Principal: "p1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1500 || recs[1499].Seq != 1500 || len(queries) != 2 {
		t.Fatalf("got %d records in %d pages (%v)", len(recs), len(queries), queries)
	}
	if queries[0] != "principal=p1&top=1000" {
		t.Errorf("first query %q", queries[0])
	}
}

func TestGraphRequestIDFromBody(t *testing.T) {
	_, c := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(403)
		fmt.Fprint(w, `{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"request-id":"graph-req-9"}}}`)
	}))
	_, err := c.CreateServicePrincipal(context.Background(), "x")
	var e *Error
	if !errors.As(err, &e) || e.RequestID != "graph-req-9" || e.Error() != "Insufficient privileges to complete the operation. (Authorization_RequestDenied)" {
		t.Fatalf("got %#v", err)
	}
}
