package arm

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const (
	raAPI      = "?api-version=2022-04-01"
	readerRole = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	kvcRole    = "f25e0fa2-a7c8-4377-a976-54943a77a395"
)

func raPath(scope, name string) string {
	return scope + "/providers/Microsoft.Authorization/roleAssignments/" + name + raAPI
}

func raBody(role, principal string) map[string]any {
	return map[string]any{"properties": map[string]any{"roleDefinitionId": role, "principalId": principal, "principalType": "User"}}
}

func TestRoleAssignments(t *testing.T) {
	e := newEnv(t)
	e.mustStatus(e.do(ownerID, http.MethodPut, groupPath, map[string]any{"location": "westeurope"}), 201)
	const ra1 = "5e000000-0000-0000-0000-000000000001"
	fullRole := subPath + "/providers/Microsoft.Authorization/roleDefinitions/" + readerRole

	r := e.mustStatus(e.do(ownerID, http.MethodPut, raPath(groupPath, ra1), raBody(fullRole, readerID)), 201)
	got := r.json(t)
	props := got["properties"].(map[string]any)
	if got["id"] != groupPath+"/providers/Microsoft.Authorization/roleAssignments/"+ra1 || got["name"] != ra1 ||
		got["type"] != "Microsoft.Authorization/roleAssignments" || props["roleDefinitionId"] != fullRole ||
		props["principalId"] != readerID || props["principalType"] != "User" || props["scope"] != groupPath {
		t.Errorf("created: %s", r.Body)
	}
	if info := e.lastInfo(); info.Action != "Microsoft.Authorization/roleAssignments/write" || info.Scope != groupPath {
		t.Errorf("audit annotation = %+v", info)
	}
	// The same PUT again is idempotent; the same grant under another name is a conflict.
	e.mustStatus(e.do(ownerID, http.MethodPut, raPath(groupPath, ra1), raBody(fullRole, readerID)), 201)

	tests := []struct {
		name, principal, path string
		body                  any
		status                int
		code                  string
	}{
		{"duplicate grant", ownerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000002"), raBody(readerRole, readerID), 409, "RoleAssignmentExists"},
		{"changed grant", ownerID, raPath(groupPath, ra1), raBody(kvcRole, readerID), 409, "RoleAssignmentUpdateNotPermitted"},
		{"unknown principal", ownerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000003"), raBody(readerRole, "99999999-0000-0000-0000-000000000000"), 400, "PrincipalNotFound"},
		{"principal of another tenant", ownerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000003"), raBody(readerRole, strangerID), 400, "PrincipalNotFound"},
		{"name not a GUID", ownerID, raPath(groupPath, "my-assignment"), raBody(readerRole, readerID), 400, "InvalidRoleAssignmentId"},
		{"unknown role", ownerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000003"), raBody("12345678-0000-0000-0000-000000000000", readerID), 400, "RoleDefinitionDoesNotExist"},
		{"role id of another kind", ownerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000003"), raBody("/subscriptions/x/providers/Microsoft.Foo/bar/"+readerRole, readerID), 400, "RoleDefinitionDoesNotExist"},
		{"no properties", ownerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000003"), map[string]any{}, 400, "InvalidRequestContent"},
		{"conditions", ownerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000003"), map[string]any{"properties": map[string]any{"roleDefinitionId": readerRole, "principalId": appID, "condition": "x"}}, 400, "InvalidRoleAssignmentCondition"},
		{"missing group", ownerID, raPath(subPath+"/resourceGroups/none", "5e000000-0000-0000-0000-000000000003"), raBody(readerRole, readerID), 404, "ResourceGroupNotFound"},
		{"reader cannot assign", readerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000003"), raBody(readerRole, appID), 403, "AuthorizationFailed"},
		{"another tenant's scope", strangerID, raPath(groupPath, "5e000000-0000-0000-0000-000000000003"), raBody(readerRole, strangerID), 404, "SubscriptionNotFound"},
		{"bad api-version", ownerID, strings.Replace(raPath(groupPath, ra1), "2022-04-01", "2021-04-01", 1), raBody(readerRole, readerID), 400, "InvalidApiVersionParameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.principal, http.MethodPut, tt.path, tt.body)
			if r.Status != tt.status || r.code(t) != tt.code {
				t.Fatalf("got %d %s, want %d %s: %s", r.Status, r.code(t), tt.status, tt.code, r.Body)
			}
		})
	}

	// The reader reads the group but may not change it.
	e.mustStatus(e.do(readerID, http.MethodGet, groupPath, nil), 200)
	r = e.do(readerID, http.MethodPatch, groupPath, map[string]any{"tags": map[string]string{}})
	want := "The client 'reader@contoso.keyhold' with object id '" + readerID + "' does not have authorization to perform action 'Microsoft.Resources/subscriptions/resourceGroups/write' over scope '" + groupPath + "' or the scope is invalid. If access was recently granted, please refresh your credentials."
	if r.Status != 403 || r.code(t) != "AuthorizationFailed" || r.message(t) != want {
		t.Errorf("reader PATCH: %d %s", r.Status, r.Body)
	}
	e.mustStatus(e.do(readerID, http.MethodGet, subPath, nil), 200)
	if r = e.mustStatus(e.do(readerID, http.MethodGet, subPath+"/resourcegroups", nil), 200); len(r.json(t)["value"].([]any)) != 1 {
		t.Errorf("the reader lists %s", r.Body)
	}

	// A group grant reaches its members.
	const ra2 = "5e000000-0000-0000-0000-000000000004"
	r = e.mustStatus(e.do(ownerID, http.MethodPut, raPath(groupPath, ra2), raBody(kvcRole, groupID)), 201)
	if got := r.json(t)["properties"].(map[string]any)["principalType"]; got != "Group" {
		t.Errorf("principalType = %v, want the principal's real type Group", got)
	}
	e.mustStatus(e.do(nobodyID, http.MethodGet, groupPath, nil), 200)

	list := func(scope, filter string) []string {
		t.Helper()
		path := scope + "/providers/Microsoft.Authorization/roleAssignments" + raAPI
		if filter != "" {
			path += "&$filter=" + url.QueryEscape(filter)
		}
		r := e.mustStatus(e.do(ownerID, http.MethodGet, path, nil), 200)
		var names []string
		for _, v := range r.json(t)["value"].([]any) {
			names = append(names, v.(map[string]any)["name"].(string))
		}
		return names
	}
	const ownerRA = "0a000000-0000-0000-0000-000000000001"
	cases := []struct {
		scope, filter string
		want          []string
	}{
		{groupPath, "atScope()", []string{ownerRA, ra1, ra2}},
		{subPath, "atScope()", []string{ownerRA}},
		{subPath, "", []string{ownerRA, ra1, ra2}},
		{subPath, "principalId eq '" + readerID + "'", []string{ra1}},
		{subPath, "assignedTo('" + nobodyID + "')", []string{ra2}},
		{groupPath, "atScope() and assignedTo('" + ownerID + "')", []string{ownerRA}},
	}
	for _, c := range cases {
		got := list(c.scope, c.filter)
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("list at %q with %q = %v, want %v", c.scope, c.filter, got, c.want)
		}
	}
	// A subscription owner may not read at the tenant root.
	e.mustStatus(e.do(ownerID, http.MethodGet, "/providers/Microsoft.Authorization/roleAssignments"+raAPI, nil), 403)
	if r = e.do(ownerID, http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleAssignments"+raAPI+"&$filter="+url.QueryEscape("foo eq 'x'"), nil); r.Status != 400 {
		t.Errorf("unknown filter: %d", r.Status)
	}
	// The reader may read assignments (*/read) but not delete them.
	e.mustStatus(e.do(readerID, http.MethodGet, raPath(groupPath, ra1), nil), 200)
	e.mustStatus(e.do(readerID, http.MethodDelete, raPath(groupPath, ra1), nil), 403)
	// GET at the wrong scope is not found; by full id it is.
	e.mustStatus(e.do(ownerID, http.MethodGet, raPath(subPath, ra1), nil), 404)
	r = e.mustStatus(e.do(ownerID, http.MethodDelete, raPath(groupPath, ra1), nil), 200)
	if r.json(t)["name"] != ra1 {
		t.Errorf("delete answered %s", r.Body)
	}
	e.mustStatus(e.do(ownerID, http.MethodDelete, raPath(groupPath, ra1), nil), 204)
	e.mustStatus(e.do(readerID, http.MethodGet, groupPath, nil), 403)
}

func TestRoleDefinitions(t *testing.T) {
	e := newEnv(t)
	r := e.mustStatus(e.do(readerID, http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleDefinitions"+raAPI+"&$filter="+url.QueryEscape("roleName eq 'Key Vault Crypto Service Encryption User'"), nil), 200)
	v := r.json(t)["value"].([]any)
	if len(v) != 1 {
		t.Fatalf("found %d roles: %s", len(v), r.Body)
	}
	d := v[0].(map[string]any)
	props := d["properties"].(map[string]any)
	if d["id"] != subPath+"/providers/Microsoft.Authorization/roleDefinitions/e147488a-f6f5-4113-8e2d-b22465e65bf6" ||
		d["name"] != "e147488a-f6f5-4113-8e2d-b22465e65bf6" || props["type"] != "BuiltInRole" ||
		!strings.Contains(string(r.Body), `"Microsoft.KeyVault/vaults/keys/wrap/action"`) {
		t.Errorf("definition: %s", r.Body)
	}
	r = e.mustStatus(e.do(readerID, http.MethodGet, "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"+raAPI, nil), 200)
	if m := r.json(t); m["id"] != "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635" || m["properties"].(map[string]any)["roleName"] != "Owner" {
		t.Errorf("tenant-level definition: %s", r.Body)
	}
	r = e.mustStatus(e.do(readerID, http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleDefinitions"+raAPI+"&$filter="+url.QueryEscape("type eq 'BuiltInRole'"), nil), 200)
	if n := len(r.json(t)["value"].([]any)); n < 10 {
		t.Errorf("only %d built-in roles", n)
	}
	r = e.do(readerID, http.MethodGet, subPath+"/providers/Microsoft.Authorization/roleDefinitions/12345678-0000-0000-0000-000000000000"+raAPI, nil)
	if r.Status != 404 || r.code(t) != "RoleDefinitionDoesNotExist" {
		t.Errorf("unknown definition: %d %s", r.Status, r.Body)
	}
	if r = e.do(ownerID, http.MethodPut, subPath+"/providers/Microsoft.Authorization/roleDefinitions/12345678-0000-0000-0000-000000000000"+raAPI, map[string]any{}); r.Status != 400 {
		t.Errorf("custom role: %d %s", r.Status, r.Body)
	}
}
