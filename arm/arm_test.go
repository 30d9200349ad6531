package arm

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

const (
	subPath   = "/subscriptions/" + subA
	groupPath = subPath + "/resourceGroups/rg1"
	widget    = groupPath + "/providers/Keyhold.Test/widgets/w1"
	wapi      = "?api-version=2024-01-01"
)

func TestAuthenticationAndAPIVersion(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, principal, path string
		status                int
		code, message         string
	}{
		{"no caller", "", subPath, 401, "AuthenticationFailed", ""},
		{"no api-version", ownerID, subPath + "?x=1", 400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests."},
		{"unknown api-version", ownerID, subPath + "?api-version=2099-01-01", 400, "InvalidApiVersionParameter", ""},
		{"unknown path", ownerID, "/nothing/here", 404, "NotFound", ""},
		{"bad subscription id", ownerID, "/subscriptions/nope/resourceGroups", 400, "InvalidSubscriptionId", "The provided subscription identifier 'nope' is malformed or invalid."},
		{"another tenant's subscription", ownerID, "/subscriptions/" + subB + "/resourceGroups", 404, "SubscriptionNotFound", "The subscription '" + subB + "' could not be found."},
		{"missing subscription", ownerID, "/subscriptions/00000000-0000-0000-0000-0000000000ff", 404, "SubscriptionNotFound", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.principal, http.MethodGet, tt.path, nil)
			if r.Status != tt.status || r.code(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s: %s", r.Status, r.code(t), tt.status, tt.code, r.Body)
			}
			if tt.message != "" && r.message(t) != tt.message {
				t.Errorf("message = %q, want %q", r.message(t), tt.message)
			}
			if got := r.Header.Get("x-ms-error-code"); got != tt.code {
				t.Errorf("x-ms-error-code = %q, want %q", got, tt.code)
			}
		})
	}
	r := e.do(ownerID, http.MethodGet, subPath+"?api-version=2099-01-01", nil)
	if !strings.Contains(r.message(t), "2022-12-01") {
		t.Errorf("the unknown api-version message does not list the supported versions: %s", r.message(t))
	}
}

func TestSubscriptions(t *testing.T) {
	e := newEnv(t)
	r := e.do(ownerID, http.MethodGet, "/subscriptions?api-version=2022-12-01", nil)
	if r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	value := r.json(t)["value"].([]any)
	if len(value) != 1 {
		t.Fatalf("got %d subscriptions, want only the caller's tenant's one: %s", len(value), r.Body)
	}
	got := value[0].(map[string]any)
	want := map[string]any{"id": subPath, "subscriptionId": subA, "tenantId": tenantA, "displayName": "Contoso production", "state": "Enabled"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["subscriptionPolicies"].(map[string]any); !ok {
		t.Errorf("subscriptionPolicies missing: %s", r.Body)
	}
	r = e.mustStatus(e.do(strangerID, http.MethodGet, "/tenants?api-version=2022-12-01", nil), 200)
	if v := r.json(t)["value"].([]any); len(v) != 1 || v[0].(map[string]any)["tenantId"] != tenantB {
		t.Errorf("tenants: %s", r.Body)
	}
	r = e.do(strangerID, http.MethodGet, subPath, nil)
	if r.Status != 404 || r.code(t) != "SubscriptionNotFound" {
		t.Errorf("another tenant's GET: %d %s", r.Status, r.Body)
	}
	r = e.do(ownerID, http.MethodGet, subPath+"/locations?api-version=2022-12-01", nil)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"name":"westeurope"`) {
		t.Errorf("locations: %d %s", r.Status, r.Body)
	}
}

func TestResourceGroupLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.do(ownerID, http.MethodPut, groupPath, map[string]any{"tags": map[string]string{"a": "b"}})
	if r.Status != 400 || r.code(t) != "LocationRequired" || r.message(t) != "The location property is required for this definition." {
		t.Fatalf("PUT without location: %d %s", r.Status, r.Body)
	}
	r = e.do(ownerID, http.MethodPut, groupPath, "{not json")
	if r.Status != 400 || r.code(t) != "InvalidRequestContent" {
		t.Fatalf("PUT with bad JSON: %d %s", r.Status, r.Body)
	}
	r = e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "West Europe", "tags": map[string]string{"env": "prod"}})
	if r.Status != 201 {
		t.Fatalf("create: %d %s", r.Status, r.Body)
	}
	if info := e.lastInfo(); info.Action != "Microsoft.Resources/subscriptions/resourceGroups/write" || info.Scope != groupPath {
		t.Errorf("audit annotation = %+v", info)
	}
	g := r.json(t)
	if g["id"] != groupPath || g["name"] != "rg1" || g["location"] != "westeurope" || g["type"] != "Microsoft.Resources/resourceGroups" {
		t.Errorf("created group = %s", r.Body)
	}
	if r = e.do(ownerID, http.MethodPut, strings.Replace(groupPath, "resourceGroups", "RESOURCEGROUPS", 1), map[string]any{"location": "westeurope"}); r.Status != 200 {
		t.Fatalf("update: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "eastus"}); r.Status != 409 || r.code(t) != "InvalidResourceGroupLocation" {
		t.Fatalf("move: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodPatch, groupPath, map[string]any{"tags": map[string]string{"team": "kv"}}); r.Status != 200 || r.json(t)["tags"].(map[string]any)["team"] != "kv" {
		t.Fatalf("patch: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodGet, subPath+"/resourcegroups/RG1", nil); r.Status != 200 || r.json(t)["name"] != "rg1" {
		t.Fatalf("get: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodHead, groupPath, nil); r.Status != 204 {
		t.Errorf("HEAD existing: %d", r.Status)
	}
	if r = e.do(ownerID, http.MethodHead, subPath+"/resourceGroups/none", nil); r.Status != 404 {
		t.Errorf("HEAD missing: %d", r.Status)
	}
	r = e.do(ownerID, http.MethodGet, subPath+"/resourceGroups/none", nil)
	if r.Status != 404 || r.code(t) != "ResourceGroupNotFound" || r.message(t) != "Resource group 'none' could not be found." {
		t.Errorf("GET missing: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodPut, subPath+"/resourceGroups/bad.", map[string]any{"location": "eastus"}); r.Status != 400 || r.code(t) != "InvalidResourceGroupName" {
		t.Errorf("bad name: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "eastus", "tags": map[string]string{"a/b": "x"}}); r.Status != 400 {
		t.Errorf("bad tag name: %d %s", r.Status, r.Body)
	}

	// Paging with $top and nextLink.
	for _, n := range []string{"rg2", "rg3"} {
		if r = e.do(ownerID, http.MethodPut, subPath+"/resourceGroups/"+n, map[string]any{"location": "eastus"}); r.Status != 201 {
			t.Fatalf("create %s: %d %s", n, r.Status, r.Body)
		}
	}
	var names []string
	next := subPath + "/resourcegroups?api-version=" + api + "&$top=2"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatal("paging does not end")
		}
		r = e.do(ownerID, http.MethodGet, next, nil)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
		body := r.json(t)
		for _, v := range body["value"].([]any) {
			names = append(names, v.(map[string]any)["name"].(string))
		}
		next, _ = body["nextLink"].(string)
		if next != "" {
			u, err := url.Parse(next)
			if err != nil {
				t.Fatal(err)
			}
			next = u.RequestURI()
		}
	}
	if got := strings.Join(names, ","); got != "rg1,rg2,rg3" {
		t.Errorf("listed %s, want rg1,rg2,rg3", got)
	}
	r = e.do(ownerID, http.MethodGet, subPath+"/resourcegroups?api-version="+api+"&$filter="+url.QueryEscape("tagName eq 'team' and tagValue eq 'kv'"), nil)
	if v := r.json(t)["value"].([]any); len(v) != 1 {
		t.Errorf("tag filter found %d groups, want 1: %s", len(v), r.Body)
	}
	// A caller without roles sees none and may not write.
	if r = e.do(nobodyID, http.MethodGet, subPath+"/resourcegroups", nil); r.Status != 200 || len(r.json(t)["value"].([]any)) != 0 {
		t.Errorf("list as nobody: %d %s", r.Status, r.Body)
	}
	r = e.do(nobodyID, http.MethodPut, subPath+"/resourceGroups/rg9", map[string]any{"location": "eastus"})
	if r.Status != 403 || r.code(t) != "AuthorizationFailed" || !strings.Contains(r.message(t), "'nobody@contoso.keyhold'") {
		t.Errorf("PUT as nobody: %d %s", r.Status, r.Body)
	}
}

func TestResourceGroupDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.registerTestProvider(t)
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	e.mustStatus(e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope", "properties": map[string]any{"size": 3}}), 201)
	e.mustStatus(e.do(ownerID, http.MethodPut, widget+"/parts/p1"+wapi, map[string]any{"properties": map[string]any{}}), 201)
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath+"/providers/Microsoft.Authorization/roleAssignments/5e000000-0000-0000-0000-000000000001?api-version=2022-04-01",
		map[string]any{"properties": map[string]any{"roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "principalId": readerID}}), 201)

	r := e.do(ownerID, http.MethodDelete, groupPath, nil)
	if r.Status != 202 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.Path, subPath+"/operationresults/") {
		t.Fatalf("Location = %q", r.Header.Get("Location"))
	}
	if r = e.do(ownerID, http.MethodGet, loc.RequestURI(), nil); r.Status != 200 {
		t.Errorf("poll: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodGet, groupPath, nil); r.Status != 404 {
		t.Errorf("GET after delete: %d", r.Status)
	}
	if rs, _ := e.store.ListResources(ctx, keyhold.ResourceFilter{SubscriptionID: subA}); len(rs) != 0 {
		t.Errorf("%d resources survive their group", len(rs))
	}
	if as, _ := e.store.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{PrincipalID: readerID}); len(as) != 0 {
		t.Errorf("%d role assignments survive their scope", len(as))
	}
	if r = e.do(ownerID, http.MethodDelete, groupPath, nil); r.Status != 404 || r.code(t) != "ResourceGroupNotFound" {
		t.Errorf("delete again: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodGet, subPath+"/operationresults/garbage", nil); r.Status != 404 {
		t.Errorf("unknown operation: %d", r.Status)
	}
}

func TestResourceGroupDeleteRefusedByType(t *testing.T) {
	e := newEnv(t)
	e.registerTestProvider(t)
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	e.mustStatus(e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope", "tags": map[string]string{"locked": "true"}, "properties": map[string]any{"size": 1}}), 201)
	r := e.do(ownerID, http.MethodDelete, groupPath, nil)
	if r.Status != 409 || r.code(t) != "ScopeLocked" {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	// The transaction rolled back: group and widget are still there.
	e.mustStatus(e.do(ownerID, http.MethodGet, groupPath, nil), 200)
	e.mustStatus(e.do(ownerID, http.MethodGet, widget+wapi, nil), 200)
}

func (e *env) mustStatus(r response, want int) response {
	e.t.Helper()
	if r.Status != want {
		e.t.Fatalf("status %d, want %d: %s", r.Status, want, r.Body)
	}
	return r
}

// registerTestProvider registers Keyhold.Test and lets the delay pass.
func (e *env) registerTestProvider(t *testing.T) {
	t.Helper()
	e.mustStatus(e.do(ownerID, http.MethodPost, subPath+"/providers/Keyhold.Test/register", nil), 200)
	e.clock.Add(time.Minute)
}

func TestProviderRegistration(t *testing.T) {
	e := newEnv(t)
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	state := func(ns string) string {
		t.Helper()
		r := e.mustStatus(e.do(ownerID, http.MethodGet, subPath+"/providers/"+ns+"?api-version=2019-05-01", nil), 200)
		return r.json(t)["registrationState"].(string)
	}
	for ns, want := range map[string]string{"Microsoft.KeyVault": "Registered", "microsoft.resources": "Registered", "Microsoft.PowerPlatform": "NotRegistered", "Keyhold.Test": "NotRegistered"} {
		if got := state(ns); got != want {
			t.Errorf("%s is %s, want %s", ns, got, want)
		}
	}
	r := e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope", "properties": map[string]any{"size": 1}})
	want := "The subscription is not registered to use namespace 'Keyhold.Test'. See https://aka.ms/rps-not-found for how to register subscriptions."
	if r.Status != 409 || r.code(t) != "MissingSubscriptionRegistration" || r.message(t) != want {
		t.Fatalf("PUT before registering: %d %s", r.Status, r.Body)
	}
	if r = e.do(readerID, http.MethodPost, subPath+"/providers/Keyhold.Test/register", nil); r.Status != 403 {
		t.Errorf("register without a role: %d %s", r.Status, r.Body)
	}
	r = e.mustStatus(e.do(ownerID, http.MethodPost, subPath+"/providers/keyhold.test/register", nil), 200)
	if got := r.json(t)["registrationState"]; got != "Registering" {
		t.Errorf("register answered %v, want Registering", got)
	}
	if info := e.lastInfo(); info.Action != "Keyhold.Test/register/action" || info.Scope != subPath {
		t.Errorf("audit annotation = %+v", info)
	}
	if got := state("Keyhold.Test"); got != "Registering" {
		t.Errorf("right after register: %s", got)
	}
	if r = e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope", "properties": map[string]any{"size": 1}}); r.Status != 409 {
		t.Errorf("PUT while registering: %d", r.Status)
	}
	e.clock.Add(31 * time.Second)
	if got := state("Keyhold.Test"); got != "Registered" {
		t.Errorf("after the delay: %s", got)
	}
	// Settled state is persisted, so it survives a new server on the same store.
	reg, err := e.store.GetProviderRegistration(context.Background(), subA, "Keyhold.Test")
	if err != nil || reg.State != "Registered" {
		t.Errorf("stored registration = %+v, %v", reg, err)
	}
	e.mustStatus(e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope", "properties": map[string]any{"size": 1}}), 201)

	r = e.mustStatus(e.do(ownerID, http.MethodGet, subPath+"/providers/Keyhold.Test", nil), 200)
	rt := r.json(t)["resourceTypes"].([]any)
	if len(rt) != 2 || rt[0].(map[string]any)["resourceType"] != "widgets" || !strings.Contains(string(r.Body), `"2024-01-01"`) || !strings.Contains(string(r.Body), `"West Europe"`) {
		t.Errorf("provider metadata: %s", r.Body)
	}
	if r = e.do(ownerID, http.MethodGet, subPath+"/providers/Microsoft.Nope", nil); r.Status != 404 || r.code(t) != "InvalidResourceNamespace" {
		t.Errorf("unknown namespace: %d %s", r.Status, r.Body)
	}
	if r = e.mustStatus(e.do(ownerID, http.MethodGet, subPath+"/providers", nil), 200); !strings.Contains(string(r.Body), `"namespace":"Microsoft.PowerPlatform","registrationState":"NotRegistered"`) {
		t.Errorf("provider list: %s", r.Body)
	}
	r = e.mustStatus(e.do(ownerID, http.MethodGet, "/providers/Microsoft.Authorization", nil), 200)
	if m := r.json(t); m["namespace"] != "Microsoft.Authorization" || m["registrationState"] != nil {
		t.Errorf("tenant provider: %s", r.Body)
	}
	// Unregistering is refused while resources of the namespace exist.
	if r = e.do(ownerID, http.MethodPost, subPath+"/providers/Keyhold.Test/unregister", nil); r.Status != 409 {
		t.Errorf("unregister with resources: %d %s", r.Status, r.Body)
	}
}

func TestFeatures(t *testing.T) {
	e := newEnv(t)
	base := subPath + "/providers/Microsoft.Features/providers/Microsoft.PowerPlatform/features/enterprisePoliciesPreview"
	r := e.mustStatus(e.do(ownerID, http.MethodGet, base+"?api-version=2021-07-01", nil), 200)
	if got := r.json(t)["properties"].(map[string]any)["state"]; got != "NotRegistered" {
		t.Errorf("before: %v", got)
	}
	if r = e.do(ownerID, http.MethodPost, base+"/register?api-version=2021-04-01", nil); r.Status != 400 || r.code(t) != "InvalidApiVersionParameter" {
		t.Errorf("wrong api-version: %d %s", r.Status, r.Body)
	}
	if r = e.do(readerID, http.MethodPost, base+"/register?api-version=2021-07-01", nil); r.Status != 403 {
		t.Errorf("register without a role: %d", r.Status)
	}
	r = e.mustStatus(e.do(ownerID, http.MethodPost, base+"/register?api-version=2014-08-01-preview", nil), 200)
	got := r.json(t)
	if got["id"] != base || got["type"] != "Microsoft.Features/providers/features" || got["name"] != "Microsoft.PowerPlatform/enterprisePoliciesPreview" ||
		got["properties"].(map[string]any)["state"] != "Registering" {
		t.Errorf("register answered %s", r.Body)
	}
	if info := e.lastInfo(); info.Action != "Microsoft.Features/providers/features/register/action" {
		t.Errorf("audit annotation = %+v", info)
	}
	e.clock.Add(time.Minute)
	r = e.mustStatus(e.do(ownerID, http.MethodGet, subPath+"/providers/Microsoft.Features/providers/Microsoft.PowerPlatform/features?api-version=2021-07-01", nil), 200)
	if !strings.Contains(string(r.Body), `"state":"Registered"`) {
		t.Errorf("list after the delay: %s", r.Body)
	}
	r = e.mustStatus(e.do(ownerID, http.MethodGet, subPath+"/providers/Microsoft.Features/features?api-version=2021-07-01", nil), 200)
	if n := len(r.json(t)["value"].([]any)); n != 1 {
		t.Errorf("list of all features has %d entries", n)
	}
	// Unknown features are accepted, as Azure has thousands.
	e.mustStatus(e.do(ownerID, http.MethodPost, subPath+"/providers/Microsoft.Features/providers/Microsoft.KeyVault/features/anyThing/register?api-version=2021-07-01", nil), 200)
	r = e.mustStatus(e.do(ownerID, http.MethodPost, base+"/unregister?api-version=2021-07-01", nil), 200)
	if got := r.json(t)["properties"].(map[string]any)["state"]; got != "Unregistering" {
		t.Errorf("unregister answered %v", got)
	}
}

func TestGenericResources(t *testing.T) {
	e := newEnv(t)
	e.registerTestProvider(t)
	r := e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope", "properties": map[string]any{"size": 1}})
	if r.Status != 404 || r.code(t) != "ResourceGroupNotFound" {
		t.Fatalf("PUT into a missing group: %d %s", r.Status, r.Body)
	}
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	if r = e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope"}); r.Status != 400 || r.code(t) != "MissingSize" {
		t.Fatalf("the type's validation: %d %s", r.Status, r.Body)
	}
	r = e.mustStatus(e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "West Europe", "tags": map[string]string{"k": "v"}, "properties": map[string]any{"size": 2}}), 201)
	w := r.json(t)
	if w["id"] != widget || w["name"] != "w1" || w["type"] != "Keyhold.Test/widgets" || w["location"] != "westeurope" {
		t.Errorf("created: %s", r.Body)
	}
	sd := w["systemData"].(map[string]any)
	if sd["createdBy"] != "owner@contoso.keyhold" || sd["createdByType"] != "User" || sd["createdAt"] == nil {
		t.Errorf("systemData = %v", sd)
	}
	etag1 := w["etag"].(string)
	if etag1 == "" || r.Header.Get("ETag") != etag1 {
		t.Errorf("etag %q, header %q", etag1, r.Header.Get("ETag"))
	}
	if info := e.lastInfo(); info.Action != "Keyhold.Test/widgets/write" || info.Scope != widget {
		t.Errorf("audit annotation = %+v", info)
	}
	e.clock.Add(time.Hour)
	r = e.mustStatus(e.do(appID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope", "properties": map[string]any{"size": 3}}), 403)
	e.mustStatus(e.do(ownerID, http.MethodPut, widget+wapi, map[string]any{"location": "westeurope", "properties": map[string]any{"size": 3}}), 200)
	r = e.mustStatus(e.do(ownerID, http.MethodGet, strings.ToUpper(widget[:20])+widget[20:]+wapi, nil), 200)
	w = r.json(t)
	if w["properties"].(map[string]any)["size"] != float64(3) || w["etag"] == etag1 {
		t.Errorf("after update: %s", r.Body)
	}
	if sd := w["systemData"].(map[string]any); sd["createdAt"] == sd["lastModifiedAt"] {
		t.Errorf("createdAt moved with the update: %v", sd)
	}
	// Conditional requests.
	req := e.do(ownerID, http.MethodPatch, widget+wapi, map[string]any{"tags": map[string]string{"x": "y"}})
	if req.Status != 200 || req.json(t)["tags"].(map[string]any)["x"] != "y" {
		t.Errorf("patch: %d %s", req.Status, req.Body)
	}
	// Child resources need their parent.
	r = e.do(ownerID, http.MethodPut, groupPath+"/providers/Keyhold.Test/widgets/nope/parts/p1"+wapi, map[string]any{})
	if r.Status != 404 || r.code(t) != "ParentResourceNotFound" {
		t.Errorf("orphan child: %d %s", r.Status, r.Body)
	}
	e.mustStatus(e.do(ownerID, http.MethodPut, widget+"/parts/p1"+wapi, map[string]any{}), 201)
	r = e.mustStatus(e.do(ownerID, http.MethodGet, widget+"/parts"+wapi, nil), 200)
	if v := r.json(t)["value"].([]any); len(v) != 1 || v[0].(map[string]any)["type"] != "Keyhold.Test/widgets/parts" {
		t.Errorf("child list: %s", r.Body)
	}
	// Lists.
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath+"/providers/Keyhold.Test/widgets/w2"+wapi, map[string]any{"location": "eastus", "properties": map[string]any{"size": 1}}), 201)
	for _, path := range []string{groupPath + "/providers/Keyhold.Test/widgets" + wapi, subPath + "/providers/Keyhold.Test/widgets" + wapi} {
		r = e.mustStatus(e.do(ownerID, http.MethodGet, path, nil), 200)
		if v := r.json(t)["value"].([]any); len(v) != 2 {
			t.Errorf("%s lists %d widgets, want 2: %s", path, len(v), r.Body)
		}
	}
	r = e.mustStatus(e.do(ownerID, http.MethodGet, subPath+"/resources?api-version="+api+"&$filter="+url.QueryEscape("resourceType eq 'keyhold.test/widgets'"), nil), 200)
	if v := r.json(t)["value"].([]any); len(v) != 2 {
		t.Errorf("/resources filtered lists %d, want 2: %s", len(v), r.Body)
	}
	r = e.mustStatus(e.do(ownerID, http.MethodGet, groupPath+"/resources", nil), 200)
	if v := r.json(t)["value"].([]any); len(v) != 3 {
		t.Errorf("group /resources lists %d, want 3: %s", len(v), r.Body)
	}
	if r = e.do(ownerID, http.MethodGet, groupPath+"/resources?api-version="+api+"&$filter=bogus", nil); r.Status != 400 {
		t.Errorf("bad filter: %d", r.Status)
	}
	// Custom routes.
	r = e.mustStatus(e.do(ownerID, http.MethodPost, widget+"/polish"+wapi, nil), 200)
	if r.json(t)["polished"] != "w1" {
		t.Errorf("polish: %s", r.Body)
	}
	if info := e.lastInfo(); info.Action != "Keyhold.Test/widgets/polish/action" || info.Scope != widget {
		t.Errorf("audit annotation = %+v", info)
	}
	e.mustStatus(e.do(nobodyID, http.MethodPost, widget+"/polish"+wapi, nil), 403)
	if r = e.mustStatus(e.do(ownerID, http.MethodPost, "/providers/Keyhold.Test/widgetQuery"+wapi, nil), 200); !strings.Contains(string(r.Body), `"names":["w1","w2"]`) {
		t.Errorf("owner's query: %s", r.Body)
	}
	if r = e.mustStatus(e.do(nobodyID, http.MethodPost, "/providers/Keyhold.Test/widgetQuery"+wapi, nil), 200); !strings.Contains(string(r.Body), `"names":null`) {
		t.Errorf("nobody's query: %s", r.Body)
	}
	e.mustStatus(e.do(ownerID, http.MethodHead, widget+wapi, nil), 204)
	e.mustStatus(e.do(ownerID, http.MethodHead, groupPath+"/providers/Keyhold.Test/widgets/none"+wapi, nil), 404)
	e.mustStatus(e.do(ownerID, http.MethodGet, subPath+"/providers/Keyhold.Test/retiredWidgets"+wapi, nil), 200)
	if r = e.do(ownerID, http.MethodGet, subPath+"/providers/Keyhold.Test/retiredWidgets"+"?api-version=2021-04-01", nil); r.Status != 400 {
		t.Errorf("route api-version: %d", r.Status)
	}
	// Errors.
	tests := []struct {
		name, method, path string
		status             int
		code, message      string
	}{
		{"missing resource", http.MethodGet, groupPath + "/providers/Keyhold.Test/widgets/none" + wapi, 404, "ResourceNotFound",
			"The Resource 'Keyhold.Test/widgets/none' under resource group 'rg1' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"},
		{"unknown type", http.MethodGet, groupPath + "/providers/Keyhold.Test/gadgets/g" + wapi, 400, "InvalidResourceType", ""},
		{"unknown namespace", http.MethodGet, groupPath + "/providers/Nobody.Home/gadgets/g" + wapi, 400, "InvalidResourceNamespace", ""},
		{"wrong api-version", http.MethodGet, widget + "?api-version=2021-04-01", 400, "NoRegisteredProviderFound", ""},
		{"bad name", http.MethodPut, groupPath + "/providers/Keyhold.Test/widgets/a*b" + wapi, 400, "InvalidResourceId", ""},
		{"missing group", http.MethodGet, subPath + "/resourceGroups/none/providers/Keyhold.Test/widgets" + wapi, 404, "ResourceGroupNotFound", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(ownerID, tt.method, tt.path, map[string]any{})
			if r.Status != tt.status || r.code(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s: %s", r.Status, r.code(t), tt.status, tt.code, r.Body)
			}
			if tt.message != "" && r.message(t) != tt.message {
				t.Errorf("message = %q\nwant      %q", r.message(t), tt.message)
			}
		})
	}
	// Delete takes children with it; a second delete is a no-op.
	e.mustStatus(e.do(ownerID, http.MethodDelete, widget+wapi, nil), 200)
	e.mustStatus(e.do(ownerID, http.MethodGet, widget+"/parts/p1"+wapi, nil), 404)
	e.mustStatus(e.do(ownerID, http.MethodDelete, widget+wapi, nil), 204)
}

func TestConditionalRequests(t *testing.T) {
	e := newEnv(t)
	e.registerTestProvider(t)
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	body := map[string]any{"location": "westeurope", "properties": map[string]any{"size": 1}}
	etag := e.mustStatus(e.do(ownerID, http.MethodPut, widget+wapi, body), 201).Header.Get("ETag")
	send := func(h, v string) int {
		req, _ := http.NewRequest(http.MethodPut, widget+wapi, strings.NewReader(`{"location":"westeurope","properties":{"size":1}}`))
		req.Header.Set("X-Test-Principal", ownerID)
		req.Header.Set(h, v)
		rec := &recorder{header: http.Header{}}
		e.h.ServeHTTP(rec, req)
		return rec.status
	}
	if got := send("If-Match", `"stale"`); got != 412 {
		t.Errorf("If-Match stale: %d", got)
	}
	if got := send("If-None-Match", "*"); got != 412 {
		t.Errorf("If-None-Match * on an existing resource: %d", got)
	}
	if got := send("If-Match", etag); got != 200 {
		t.Errorf("If-Match current: %d", got)
	}
}

type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(s int) { r.status = s }
