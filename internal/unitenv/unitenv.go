// Package unitenv holds what the packages' own unit tests share: a settable
// clock, a SQLite store in the test's directory, fixtures of tenants,
// principals, subscriptions and role assignments, a stand-in for the
// server's authentication, and the helpers that build in-process requests
// and read their answers.
//
// It imports only leaf packages (the root package, sqlite, rbac, events,
// httpapi), so that the package-internal tests of arm, keyvault and policy
// can use it; internal/testenv starts a whole server, which imports those
// packages, and would be an import cycle there.
package unitenv

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/sqlite"
)

// Clock is a settable time source, safe for the service under test and the
// test to use at once.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock that reads t until it is moved.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// SQLite opens a SQLite store named name in the test's temporary directory
// and closes it when the test ends; it fails the test if the store does not
// open.
func SQLite(tb testing.TB, name string) keyhold.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), name))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

// Seeder creates the rows a test starts from, all at one time, and fails the
// test at the first that the store refuses.
type Seeder struct {
	TB    testing.TB
	Store keyhold.Store
	Now   time.Time
}

// Must fails the test if err is not nil.
func (s Seeder) Must(err error) {
	s.TB.Helper()
	if err != nil {
		s.TB.Fatal(err)
	}
}

// Tenant creates a tenant.
func (s Seeder) Tenant(id, displayName, domain string) {
	s.TB.Helper()
	s.Must(s.Store.CreateTenant(context.Background(), &keyhold.Tenant{ID: id, DisplayName: displayName, DefaultDomain: domain, CreatedAt: s.Now}))
}

// Principals creates each principal, created at the seeder's time.
func (s Seeder) Principals(ps ...*keyhold.Principal) {
	s.TB.Helper()
	for _, p := range ps {
		p.CreatedAt = s.Now
		s.Must(s.Store.CreatePrincipal(context.Background(), p))
	}
}

// User is a user principal of tenant, for Principals.
func User(id, tenant, displayName, upn string) *keyhold.Principal {
	return &keyhold.Principal{ID: id, TenantID: tenant, Type: keyhold.PrincipalUser, DisplayName: displayName, UserPrincipalName: upn}
}

// Subscription creates an enabled subscription of tenant.
func (s Seeder) Subscription(id, tenant, displayName string) {
	s.TB.Helper()
	s.Must(s.Store.CreateSubscription(context.Background(), &keyhold.Subscription{ID: id, TenantID: tenant, DisplayName: displayName, State: "Enabled", CreatedAt: s.Now}))
}

// ResourceGroups creates the named resource groups in sub at location.
func (s Seeder) ResourceGroups(sub, location string, names ...string) {
	s.TB.Helper()
	for _, g := range names {
		s.Must(s.Store.PutResourceGroup(context.Background(), &keyhold.ResourceGroup{SubscriptionID: sub, Name: g, Location: location, ProvisioningState: "Succeeded"}))
	}
}

// Register registers the resource provider namespace in sub.
func (s Seeder) Register(sub, namespace string) {
	s.TB.Helper()
	s.Must(s.Store.PutProviderRegistration(context.Background(), &keyhold.ProviderRegistration{SubscriptionID: sub, Namespace: namespace, State: keyhold.StateRegistered, UpdatedAt: s.Now}))
}

// Assign gives the user principal the built-in role (by name) at scope, in
// an assignment called name; it fails the test for an unknown role.
func (s Seeder) Assign(name, tenant, scope, role, principal string) {
	s.TB.Helper()
	def, ok := rbac.RoleByName(role)
	if !ok {
		s.TB.Fatalf("no role %s", role)
	}
	s.Must(s.Store.CreateRoleAssignment(context.Background(), &keyhold.RoleAssignment{Name: name, TenantID: tenant, Scope: scope,
		RoleDefinitionID: def.ID, PrincipalID: principal, PrincipalType: keyhold.PrincipalUser, CreatedAt: s.Now, UpdatedAt: s.Now}))
}

// Auth stands in for the server's authentication in front of an in-process
// handler.
type Auth struct {
	Store keyhold.Store
	// PrincipalOf reads the caller's object id from a request; "" is an
	// anonymous request.
	PrincipalOf func(*http.Request) string
	// Audience is the audience the caller's token would have had.
	Audience string
	// OnInfo, if set, is handed each request's audit annotation.
	OnInfo func(*httpapi.Info)
}

// Handler returns next behind the stand-in: a request naming a principal of
// the store reaches next with that principal's Caller (with its group
// memberships) in its context, an anonymous one reaches it without, and one
// naming an unknown principal is answered 401. Every request's context
// carries an audit annotation, as the server's does.
func (a Auth) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, info := httpapi.WithInfo(r.Context())
		if a.OnInfo != nil {
			a.OnInfo(info)
		}
		if id := a.PrincipalOf(r); id != "" {
			p, err := a.Store.GetPrincipal(ctx, id)
			if err != nil {
				http.Error(w, "unknown test principal", http.StatusUnauthorized)
				return
			}
			groups, _ := a.Store.ListMemberships(ctx, id)
			ctx = keyhold.WithCaller(ctx, &keyhold.Caller{Principal: p, TenantID: p.TenantID, GroupIDs: groups, Audience: a.Audience})
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Header returns a PrincipalOf that reads the named header.
func Header(name string) func(*http.Request) string {
	return func(r *http.Request) string { return r.Header.Get(name) }
}

// Bearer is a PrincipalOf that reads "Bearer <object id>".
func Bearer(r *http.Request) string {
	id, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return id
}

// Body returns body as a request body: nil for nil, a string or []byte as
// it is, anything else as its JSON; it fails the test if that does not
// encode.
func Body(tb testing.TB, body any) io.Reader {
	tb.Helper()
	switch b := body.(type) {
	case nil:
		return nil
	case string:
		return strings.NewReader(b)
	case []byte:
		return bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		return bytes.NewReader(raw)
	}
}

// Response is what an in-process handler answered.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Serve sends req to h and returns the answer.
func Serve(h http.Handler, req *http.Request) Response {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return Response{Status: w.Code, Header: w.Header(), Body: w.Body.Bytes()}
}

// JSON decodes the body as a JSON object, failing the test if it is not one.
func (r Response) JSON(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		tb.Fatalf("response %d %q is not a JSON object: %v", r.Status, r.Body, err)
	}
	return m
}

// AzureError returns error.code and error.message of an Azure error body,
// failing the test if the body is not a JSON object.
func (r Response) AzureError(tb testing.TB) (code, message string) {
	tb.Helper()
	e, _ := r.JSON(tb)["error"].(map[string]any)
	code, _ = e["code"].(string)
	message, _ = e["message"].(string)
	return code, message
}

// Drain returns the events sub has received and not yet handed out.
func Drain(sub *events.Subscription) []events.Event {
	var out []events.Event
	for {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				return out
			}
			out = append(out, ev)
		default:
			return out
		}
	}
}

// Field reads a nested field of a decoded JSON object by a dotted path
// ("properties.encryption.state"); it is nil where the path leaves the
// objects.
func Field(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}
