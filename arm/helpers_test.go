package arm

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/rbac"
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

type env struct {
	t      *testing.T
	store  keyhold.Store
	srv    *Server
	clock  *unitenv.Clock
	h      http.Handler
	infos  []*httpapi.Info
	infoMu sync.Mutex
}

func newEnv(t *testing.T) *env { t.Helper(); return newEnvDelay(t, 30*time.Second) }

// newEnvDelay is newEnv with the given provider and feature registration
// delay.
func newEnvDelay(t *testing.T, delay time.Duration) *env {
	t.Helper()
	store := unitenv.SQLite(t, "k.db")
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	seed := unitenv.Seeder{TB: t, Store: store, Now: now}
	seed.Tenant(tenantA, "Contoso", "contoso.keyhold")
	seed.Tenant(tenantB, "Fabrikam", "fabrikam.keyhold")
	seed.Principals(
		unitenv.User(ownerID, tenantA, "Owner", "owner@contoso.keyhold"),
		unitenv.User(readerID, tenantA, "Reader", "reader@contoso.keyhold"),
		&keyhold.Principal{ID: appID, TenantID: tenantA, Type: keyhold.PrincipalServicePrincipal, DisplayName: "app", AppID: "11111111-2222-3333-4444-555555555555"},
		unitenv.User(nobodyID, tenantA, "Nobody", "nobody@contoso.keyhold"),
		&keyhold.Principal{ID: groupID, TenantID: tenantA, Type: keyhold.PrincipalGroup, DisplayName: "Vault admins"},
		unitenv.User(strangerID, tenantB, "Stranger", "owner@fabrikam.keyhold"),
	)
	seed.Must(store.AddGroupMember(context.Background(), groupID, nobodyID))
	seed.Subscription(subA, tenantA, "Contoso production")
	seed.Subscription(subB, tenantB, "Fabrikam")
	seed.Assign("0a000000-0000-0000-0000-000000000001", tenantA, "/subscriptions/"+subA, rbac.RoleOwner, ownerID)
	seed.Assign("0b000000-0000-0000-0000-000000000001", tenantB, "/subscriptions/"+subB, rbac.RoleOwner, strangerID)

	e := &env{t: t, store: store, clock: unitenv.NewClock(now)}
	e.srv = New(Config{Store: store, Now: e.clock.Now, RegistrationDelay: delay})
	e.srv.Register(widgets{})
	e.srv.Register(parts{})
	e.h = e.middleware(e.srv.Handler(), unitenv.Header("X-Test-Principal"))
	return e
}

// middleware stands in for the server's authentication: it turns the
// principal id that principalOf reads from the request into a Caller, and
// keeps the audit annotation for the test to inspect.
func (e *env) middleware(next http.Handler, principalOf func(*http.Request) string) http.Handler {
	return unitenv.Auth{Store: e.store, PrincipalOf: principalOf, OnInfo: func(info *httpapi.Info) {
		e.infoMu.Lock()
		e.infos = append(e.infos, info)
		e.infoMu.Unlock()
	}}.Handler(next)
}

func (e *env) lastInfo() httpapi.Info {
	e.infoMu.Lock()
	defer e.infoMu.Unlock()
	return *e.infos[len(e.infos)-1]
}

type response struct{ unitenv.Response }

func (r response) json(t *testing.T) map[string]any { t.Helper(); return r.JSON(t) }

func (r response) code(t *testing.T) string { t.Helper(); c, _ := r.AzureError(t); return c }

func (r response) message(t *testing.T) string { t.Helper(); _, m := r.AzureError(t); return m }

// do sends a request as principal; path may carry its own query, else
// api-version=api is added.
func (e *env) do(principal, method, path string, body any) response {
	e.t.Helper()
	if !strings.Contains(path, "?") {
		path += "?api-version=" + api
	}
	req := httptest.NewRequest(method, path, unitenv.Body(e.t, body))
	if principal != "" {
		req.Header.Set("X-Test-Principal", principal)
	}
	return response{unitenv.Serve(e.h, req)}
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
