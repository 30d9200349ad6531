package resourcegraph

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/rbac"
)

const (
	tenantA  = "aaaaaaaa-0000-4000-8000-000000000000"
	tenantB  = "bbbbbbbb-0000-4000-8000-000000000000"
	subA     = "00000000-0000-4000-8000-00000000000a"
	subB     = "00000000-0000-4000-8000-00000000000b"
	ownerA   = "aaaaaaaa-0000-4000-8000-000000000001"
	ownerB   = "bbbbbbbb-0000-4000-8000-000000000001"
	vaultA   = "/subscriptions/" + subA + "/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/kv-a"
	widgetA  = "/subscriptions/" + subA + "/resourceGroups/rg-a/providers/Keyhold.Test/widgets/w1"
	vaultB   = "/subscriptions/" + subB + "/resourceGroups/rg-b/providers/Microsoft.KeyVault/vaults/kv-b"
	queryURL = "/providers/Microsoft.ResourceGraph/resources?api-version="
)

// rendered is a resource type whose Render adds a property that the store
// does not keep, as the vault's vaultUri.
type rendered struct{ arm.ResourceType }

func (rendered) Type() string { return "Keyhold.Test/widgets" }
func (rendered) Render(r *keyhold.Resource) any {
	out := arm.DefaultRender(r).(map[string]any)
	out["properties"] = map[string]any{"computed": "yes"}
	return out
}

// newHandler returns the resource manager with Resource Graph registered
// over a store with two tenants, each owning one subscription, group and
// vault; tenant A also has a widget. The X-Principal header names the caller.
func newHandler(t *testing.T) http.Handler {
	t.Helper()
	ctx := context.Background()
	store := unitenv.SQLite(t, "k.db")
	seed := unitenv.Seeder{TB: t, Store: store, Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	must := seed.Must
	for _, x := range []struct{ tenant, sub, principal, group, vault string }{{tenantA, subA, ownerA, "rg-a", vaultA}, {tenantB, subB, ownerB, "rg-b", vaultB}} {
		seed.Tenant(x.tenant, x.tenant, x.tenant[:4]+".keyhold")
		seed.Principals(unitenv.User(x.principal, x.tenant, "owner", "owner@"+x.tenant[:4]))
		seed.Subscription(x.sub, x.tenant, "sub "+x.tenant[:4])
		seed.Assign(x.principal[:8]+"-1111-4111-8111-111111111111", x.tenant, "/subscriptions/"+x.sub, rbac.RoleOwner, x.principal)
		seed.ResourceGroups(x.sub, "westus", x.group)
		must(store.PutResource(ctx, &keyhold.Resource{ID: x.vault, SubscriptionID: x.sub, ResourceGroup: x.group, Type: "Microsoft.KeyVault/vaults",
			Name: x.vault[strings.LastIndex(x.vault, "/")+1:], Location: "westus", Properties: json.RawMessage(`{"enableSoftDelete":true}`)}))
	}
	// Stored as resources, but not rows: a deployment record (with a
	// location, so that only its type keeps it out) and a soft-deleted vault.
	must(store.PutResource(ctx, &keyhold.Resource{ID: "/subscriptions/" + subA + "/resourceGroups/rg-a/providers/Microsoft.Resources/deployments/d1",
		SubscriptionID: subA, ResourceGroup: "rg-a", Type: "Microsoft.Resources/deployments", Name: "d1", Location: "westus",
		Properties: json.RawMessage(`{"parameters":{"secret":{"value":"do-not-show"}}}`)}))
	must(store.PutResource(ctx, &keyhold.Resource{ID: "/subscriptions/" + subA + "/providers/Microsoft.KeyVault/locations/westus/deletedVaults/kv-old",
		SubscriptionID: subA, Type: "Microsoft.KeyVault/locations/deletedVaults", Name: "kv-old", Location: "westus"}))
	must(store.PutResource(ctx, &keyhold.Resource{ID: widgetA, SubscriptionID: subA, ResourceGroup: "rg-a", Type: "Keyhold.Test/widgets",
		Name: "w1", Location: "westus", Properties: json.RawMessage(`{"stored":"yes"}`)}))

	srv := arm.New(arm.Config{Store: store})
	srv.Register(New(Config{Store: store, Types: []arm.ResourceType{rendered{}}}).ResourceType())
	return unitenv.Auth{Store: store, PrincipalOf: unitenv.Header("X-Principal")}.Handler(srv.Handler())
}

func do(t *testing.T, h http.Handler, principal, method, path, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("X-Principal", principal)
	req.Header.Set("Content-Type", "application/json")
	w := unitenv.Serve(h, req)
	var out map[string]any
	if err := json.Unmarshal(w.Body, &out); err != nil && len(w.Body) > 0 {
		t.Fatalf("%s %s: body %q: %v", method, path, w.Body, err)
	}
	return w.Status, out
}

func errorCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func TestQueryRequests(t *testing.T) {
	h := newHandler(t)
	tests := []struct {
		name, principal, version, body string
		status                         int
		code                           string // error code, or "" for success
		data                           string // JSON of data on success
	}{
		{"tenant A sees its vault", ownerA, "2022-10-01", `{"query":"resources | where type =~ 'microsoft.keyvault/vaults' | project id"}`, 200, "", `[{"id":"` + vaultA + `"}]`},
		{"tenant B sees its vault", ownerB, "2024-04-01", `{"query":"resources | project id"}`, 200, "", `[{"id":"` + vaultB + `"}]`},
		{"another tenant's subscription is empty", ownerB, "2021-03-01", `{"subscriptions":["` + subA + `"],"query":"resources | project id"}`, 200, "", `[]`},
		{"the tenant root group is the tenant", ownerA, "2021-03-01", `{"managementGroups":["` + tenantA + `"],"query":"resources | count"}`, 200, "", `[{"Count":2}]`},
		{"deployments and deleted vaults are not rows", ownerA, "2021-03-01", `{"query":"resources | where name in ('d1', 'kv-old') or properties contains 'do-not-show' | count"}`, 200, "", `[{"Count":0}]`},
		{"render shapes rows", ownerA, "2021-03-01", `{"query":"resources | where name == 'w1' | project properties"}`, 200, "", `[{"properties":{"computed":"yes"}}]`},
		{"containers", ownerA, "2021-03-01", `{"query":"resourcecontainers | project id, type | order by id asc"}`, 200, "",
			`[{"id":"/subscriptions/` + subA + `","type":"microsoft.resources/subscriptions"},{"id":"/subscriptions/` + subA + `/resourceGroups/rg-a","type":"microsoft.resources/subscriptions/resourcegroups"}]`},
		{"2019-04-01 answers a table", ownerA, "2019-04-01", `{"query":"resources | where name == 'kv-a' | project name"}`, 200, "", `{"columns":[{"name":"name","type":"string"}],"rows":[["kv-a"]]}`},
		{"empty table keeps column types", ownerA, "2021-03-01", `{"query":"resources | where name == 'none' | project name, properties","options":{"resultFormat":"table"}}`, 200, "",
			`{"columns":[{"name":"name","type":"string"},{"name":"properties","type":"object"}],"rows":[]}`},
		{"$skip", ownerA, "2021-03-01", `{"query":"resources | order by name asc | project name","options":{"$skip":1}}`, 200, "", `[{"name":"w1"}]`},
		{"no query", ownerA, "2021-03-01", `{}`, 400, "BadRequest", ""},
		{"blank query", ownerA, "2021-03-01", `{"query":"  "}`, 400, "BadRequest", ""},
		{"not JSON", ownerA, "2021-03-01", `{"query":`, 400, "InvalidRequestContent", ""},
		{"query not a string", ownerA, "2021-03-01", `{"query":5}`, 400, "InvalidRequestContent", ""},
		{"bad result format", ownerA, "2021-03-01", `{"query":"resources","options":{"resultFormat":"csv"}}`, 400, "BadRequest", ""},
		{"$top 0", ownerA, "2021-03-01", `{"query":"resources","options":{"$top":0}}`, 400, "BadRequest", ""},
		{"$top too large", ownerA, "2021-03-01", `{"query":"resources","options":{"$top":1001}}`, 400, "BadRequest", ""},
		{"negative $skip", ownerA, "2021-03-01", `{"query":"resources","options":{"$skip":-1}}`, 400, "BadRequest", ""},
		{"garbage skip token", ownerA, "2021-03-01", `{"query":"resources","options":{"$skipToken":"!!"}}`, 400, "BadRequest", ""},
		{"skip token of another query", ownerA, "2021-03-01", `{"query":"resources","options":{"$skipToken":"` + encodeSkipToken(1, "resources | count") + `"}}`, 400, "BadRequest", ""},
		{"facets", ownerA, "2021-03-01", `{"query":"resources","facets":[{"expression":"location"}]}`, 400, "BadRequest", ""},
		{"unknown management group", ownerA, "2021-03-01", `{"managementGroups":["mg1"],"query":"resources"}`, 400, "BadRequest", ""},
		{"subscription not a GUID", ownerA, "2021-03-01", `{"subscriptions":["sub1"],"query":"resources"}`, 400, "BadRequest", ""},
		{"parser failure", ownerA, "2021-03-01", `{"query":"resources | where"}`, 400, "BadRequest", ""},
		{"unsupported api-version", ownerA, "2018-09-01-preview", `{"query":"resources"}`, 400, "InvalidApiVersionParameter", ""},
		{"no caller", "", "2021-03-01", `{"query":"resources"}`, 401, "AuthenticationFailed", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, h, tt.principal, http.MethodPost, queryURL+tt.version, tt.body)
			if status != tt.status || errorCode(body) != tt.code {
				t.Fatalf("status %d code %q, want %d %q; body %v", status, errorCode(body), tt.status, tt.code, body)
			}
			if tt.data != "" {
				got, _ := json.Marshal(body["data"])
				if string(got) != tt.data {
					t.Errorf("data = %s, want %s", got, tt.data)
				}
				if body["resultTruncated"] != "false" || body["facets"] == nil {
					t.Errorf("body = %v", body)
				}
			}
		})
	}
}

func TestPagingTotals(t *testing.T) {
	h := newHandler(t)
	status, body := do(t, h, ownerA, http.MethodPost, queryURL+"2021-03-01", `{"query":"resources | order by name asc | project name","options":{"$top":1}}`)
	if status != 200 || body["totalRecords"] != float64(2) || body["count"] != float64(1) || body["$skipToken"] == nil {
		t.Fatalf("first page: %d %v", status, body)
	}
	tok, _ := json.Marshal(body["$skipToken"])
	status, body = do(t, h, ownerA, http.MethodPost, queryURL+"2021-03-01", `{"query":"resources | order by name asc | project name","options":{"$top":1,"$skipToken":`+string(tok)+`}}`)
	if got, _ := json.Marshal(body["data"]); status != 200 || string(got) != `[{"name":"w1"}]` || body["$skipToken"] != nil {
		t.Errorf("second page: %d %v", status, body)
	}
}

func TestNotAResource(t *testing.T) {
	h := newHandler(t)
	id := "/subscriptions/" + subA + "/resourceGroups/rg-a/providers/Microsoft.ResourceGraph/resources/x?api-version=2021-03-01"
	if status, body := do(t, h, ownerA, http.MethodPut, id, `{"location":"westus"}`); status != 400 || errorCode(body) != "InvalidResourceType" {
		t.Errorf("PUT: %d %v", status, body)
	}
	status, body := do(t, h, ownerA, http.MethodGet, "/providers/Microsoft.ResourceGraph/operations?api-version=2024-04-01", "")
	if list, _ := body["value"].([]any); status != 200 || len(list) != 2 {
		t.Errorf("operations: %d %v", status, body)
	}
}
