package arm

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
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/sqlite"
)

const (
	tenantA = "aaaaaaaa-0000-0000-0000-000000000000"
	tenantB = "bbbbbbbb-0000-0000-0000-000000000000"
	subA    = "00000000-0000-0000-0000-00000000000a"
	subB    = "00000000-0000-0000-0000-00000000000b"

	ownerID    = "aaaaaaaa-0000-0000-0000-000000000001"
	readerID   = "aaaaaaaa-0000-0000-0000-000000000002"
	appID      = "aaaaaaaa-0000-0000-0000-000000000003" // a service principal
	nobodyID   = "aaaaaaaa-0000-0000-0000-000000000004" // no roles at all
	groupID    = "aaaaaaaa-0000-0000-0000-0000000000f1"
	strangerID = "bbbbbbbb-0000-0000-0000-000000000001" // tenant B's owner

	api = "2021-04-01"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t      *testing.T
	store  keyhold.Store
	srv    *Server
	clock  *clock
	h      http.Handler
	infos  []*httpapi.Info
	infoMu sync.Mutex
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvDelay(t, 30*time.Second) }

// newEnvDelay is newEnv with the given provider and feature registration
// delay.
func newEnvDelay(t *testing.T, delay time.Duration) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(store.CreateTenant(ctx, &keyhold.Tenant{ID: tenantA, DisplayName: "Contoso", DefaultDomain: "contoso.keyhold", CreatedAt: now}))
	must(store.CreateTenant(ctx, &keyhold.Tenant{ID: tenantB, DisplayName: "Fabrikam", DefaultDomain: "fabrikam.keyhold", CreatedAt: now}))
	for _, p := range []*keyhold.Principal{
		{ID: ownerID, TenantID: tenantA, Type: keyhold.PrincipalUser, DisplayName: "Owner", UserPrincipalName: "owner@contoso.keyhold"},
		{ID: readerID, TenantID: tenantA, Type: keyhold.PrincipalUser, DisplayName: "Reader", UserPrincipalName: "reader@contoso.keyhold"},
		{ID: appID, TenantID: tenantA, Type: keyhold.PrincipalServicePrincipal, DisplayName: "app", AppID: "11111111-2222-3333-4444-555555555555"},
		{ID: nobodyID, TenantID: tenantA, Type: keyhold.PrincipalUser, DisplayName: "Nobody", UserPrincipalName: "nobody@contoso.keyhold"},
		{ID: groupID, TenantID: tenantA, Type: keyhold.PrincipalGroup, DisplayName: "Vault admins"},
		{ID: strangerID, TenantID: tenantB, Type: keyhold.PrincipalUser, DisplayName: "Stranger", UserPrincipalName: "owner@fabrikam.keyhold"},
	} {
		p.CreatedAt = now
		must(store.CreatePrincipal(ctx, p))
	}
	must(store.AddGroupMember(ctx, groupID, nobodyID))
	must(store.CreateSubscription(ctx, &keyhold.Subscription{ID: subA, TenantID: tenantA, DisplayName: "Contoso production", State: "Enabled", CreatedAt: now}))
	must(store.CreateSubscription(ctx, &keyhold.Subscription{ID: subB, TenantID: tenantB, DisplayName: "Fabrikam", State: "Enabled", CreatedAt: now}))
	owner, _ := rbac.RoleByName(rbac.RoleOwner)
	must(store.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: "0a000000-0000-0000-0000-000000000001", TenantID: tenantA, Scope: "/subscriptions/" + subA,
		RoleDefinitionID: owner.ID, PrincipalID: ownerID, PrincipalType: keyhold.PrincipalUser, CreatedAt: now, UpdatedAt: now}))
	must(store.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: "0b000000-0000-0000-0000-000000000001", TenantID: tenantB, Scope: "/subscriptions/" + subB,
		RoleDefinitionID: owner.ID, PrincipalID: strangerID, PrincipalType: keyhold.PrincipalUser, CreatedAt: now, UpdatedAt: now}))

	e := &env{t: t, store: store, clock: &clock{t: now}}
	e.srv = New(Config{Store: store, Now: e.clock.Now, RegistrationDelay: delay})
	e.srv.Register(widgets{})
	e.srv.Register(parts{})
	e.h = e.middleware(e.srv.Handler(), func(r *http.Request) string { return r.Header.Get("X-Test-Principal") })
	return e
}

// middleware stands in for the server's authentication: it turns the
// principal id that principalOf reads from the request into a Caller, and
// keeps the audit annotation for the test to inspect.
func (e *env) middleware(next http.Handler, principalOf func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, info := httpapi.WithInfo(r.Context())
		e.infoMu.Lock()
		e.infos = append(e.infos, info)
		e.infoMu.Unlock()
		if id := principalOf(r); id != "" {
			p, err := e.store.GetPrincipal(ctx, id)
			if err != nil {
				http.Error(w, "unknown test principal", http.StatusUnauthorized)
				return
			}
			groups, _ := e.store.ListMemberships(ctx, id)
			ctx = keyhold.WithCaller(ctx, &keyhold.Caller{Principal: p, TenantID: p.TenantID, GroupIDs: groups})
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (e *env) lastInfo() httpapi.Info {
	e.infoMu.Lock()
	defer e.infoMu.Unlock()
	return *e.infos[len(e.infos)-1]
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response body %q: %v", r.Body, err)
	}
	return m
}

func (r response) code(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r response) message(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	c, _ := e["message"].(string)
	return c
}

// do sends a request as principal; path may carry its own query, else
// api-version=api is added.
func (e *env) do(principal, method, path string, body any) response {
	e.t.Helper()
	if !strings.Contains(path, "?") {
		path += "?api-version=" + api
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if principal != "" {
		req.Header.Set("X-Test-Principal", principal)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return response{Status: rec.Code, Header: rec.Header(), Body: rec.Body.Bytes()}
}

// widgets is a tiny resource type for the tests: Keyhold.Test/widgets, with
// a required properties.size, a POST polish action and a subscription-level
// list of "retired" widgets.
type widgets struct{}

func (widgets) Type() string          { return "Keyhold.Test/widgets" }
func (widgets) APIVersions() []string { return []string{"2024-01-01"} }

func (widgets) Put(_ context.Context, req *PutRequest) (*keyhold.Resource, int, error) {
	var props struct {
		Size *int `json:"size"`
	}
	if len(req.Resource.Properties) > 0 {
		if err := json.Unmarshal(req.Resource.Properties, &props); err != nil {
			return nil, 0, keyhold.Errorc(keyhold.EInvalid, "InvalidRequestContent", "properties must be an object")
		}
	}
	if props.Size == nil {
		return nil, 0, keyhold.Errorc(keyhold.EInvalid, "MissingSize", "properties.size is required")
	}
	if req.Resource.Location == "" {
		return nil, 0, keyhold.Errorc(keyhold.EInvalid, "LocationRequired", "The location property is required for this definition.")
	}
	return req.Resource, 0, nil
}

func (widgets) Patch(_ context.Context, req *PutRequest) (*keyhold.Resource, error) {
	out := *req.Existing
	if req.Resource.Tags != nil {
		out.Tags = req.Resource.Tags
	}
	return &out, nil
}

func (widgets) Delete(ctx context.Context, r *keyhold.Resource) error {
	if r.Tags["locked"] == "true" {
		return keyhold.Errorc(keyhold.EConflict, "ScopeLocked", "The widget '%s' is locked.", r.Name)
	}
	if TxFrom(ctx) == nil {
		return keyhold.Internal("widgets", io.ErrUnexpectedEOF)
	}
	return nil
}

func (widgets) Render(r *keyhold.Resource) any { return DefaultRender(r) }

func (widgets) Locations() []string { return []string{"West Europe", "East US"} }

func (widgets) Routes() []Route {
	return []Route{
		{
			Method:  http.MethodPost,
			Pattern: "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Keyhold.Test/widgets/{name}/polish",
			Action:  "Keyhold.Test/widgets/polish/action",
			Handle: func(ctx context.Context, req *RouteRequest) (any, int, error) {
				r, err := req.Store.GetResource(ctx, req.Scope.String())
				if err != nil {
					return nil, 0, err
				}
				return map[string]any{"polished": r.Name, "scope": req.Scope.String()}, http.StatusOK, nil
			},
		},
		{
			// A tenant-wide query that filters by what the caller may read.
			Method:  http.MethodPost,
			Pattern: "/providers/Keyhold.Test/widgetQuery",
			Handle: func(ctx context.Context, req *RouteRequest) (any, int, error) {
				all, err := req.Store.ListResources(ctx, keyhold.ResourceFilter{Type: "Keyhold.Test/widgets"})
				if err != nil {
					return nil, 0, err
				}
				var names []string
				for _, r := range all {
					id, _ := armid.Parse(r.ID)
					if ok, err := req.Allowed("Keyhold.Test/widgets/read", id); err != nil {
						return nil, 0, err
					} else if ok {
						names = append(names, r.Name)
					}
				}
				return map[string]any{"names": names}, 0, nil
			},
		},
		{
			Method:  http.MethodGet,
			Pattern: "/subscriptions/{subscriptionId}/providers/Keyhold.Test/retiredWidgets",
			Action:  "Keyhold.Test/retiredWidgets/read",
			Handle: func(ctx context.Context, req *RouteRequest) (any, int, error) {
				return map[string]any{"value": []any{}, "subscription": req.Subscription.ID}, 0, nil
			},
		},
	}
}

// parts is a child type of widgets.
type parts struct{ widgets }

func (parts) Type() string { return "Keyhold.Test/widgets/parts" }
func (parts) Put(_ context.Context, req *PutRequest) (*keyhold.Resource, int, error) {
	return req.Resource, 0, nil
}
func (parts) Routes() []Route { return nil }
