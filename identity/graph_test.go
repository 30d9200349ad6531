package identity

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/keyhold/keyhold"
)

const gaTemplate = "62e90394-69f5-4237-9190-012177145e10"

func TestGraphUsers(t *testing.T) {
	e := newEnv(t)
	ga := e.user("admin@"+testDomain, keyhold.RoleGlobalAdministrator)
	plain := e.user("pat@" + testDomain)
	gaTok, plainTok := e.token(ga, AudienceGraph), e.token(plain, AudienceGraph)

	newUser := map[string]any{
		"accountEnabled": true, "displayName": "Quinn", "mailNickname": "quinn",
		"userPrincipalName": "quinn@" + testDomain,
		"passwordProfile":   map[string]any{"forceChangePasswordNextSignIn": false, "password": "Quinn-Pass-123"},
	}
	// A non-administrator may read but not write.
	st, body := e.do("POST", "/v1.0/users", plainTok, newUser)
	if st != 403 || graphCode(body) != "Authorization_RequestDenied" {
		t.Fatalf("non-GA create: %d %v", st, body)
	}
	if msg := body["error"].(map[string]any)["message"]; msg != "Insufficient privileges to complete the operation." {
		t.Errorf("message = %v", msg)
	}
	if got, want := e.info().Action, "microsoft.directory/users/create"; got != want {
		t.Errorf("refused write annotated %q, want %q", got, want)
	}
	if st, body := e.do("GET", "/v1.0/users", plainTok, nil); st != 200 || len(body["value"].([]any)) != 2 {
		t.Errorf("non-GA list: %d %v", st, body)
	}

	st, body = e.do("POST", "/v1.0/users", gaTok, newUser)
	if st != 201 {
		t.Fatalf("GA create: %d %v", st, body)
	}
	id := body["id"].(string)
	if body["userPrincipalName"] != "quinn@"+testDomain || body["accountEnabled"] != true || body["passwordProfile"] != nil {
		t.Errorf("created user = %v", body)
	}
	if info := e.info(); info.Action != "microsoft.directory/users/create" || info.Scope != "/v1.0/users/"+id {
		t.Errorf("annotation = %+v", info)
	}
	// The new user can sign in.
	if st, b, _ := e.post(testTenant, pwForm("quinn@"+testDomain, "Quinn-Pass-123")); st != 200 {
		t.Errorf("new user sign-in: %d %v", st, b)
	}
	if st, body := e.do("POST", "/v1.0/users", gaTok, newUser); st != 400 || graphCode(body) != "Request_BadRequest" {
		t.Errorf("duplicate UPN: %d %v", st, body)
	}

	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"get by id", "GET", "/v1.0/users/" + id, nil, 200, ""},
		{"get by upn", "GET", "/v1.0/users/QUINN@" + testDomain, nil, 200, ""},
		{"filter by upn", "GET", "/v1.0/users?$filter=" + url.QueryEscape("userPrincipalName eq 'quinn@"+testDomain+"'"), nil, 200, ""},
		{"bad filter", "GET", "/v1.0/users?$filter=" + url.QueryEscape("startswith(displayName,'Q')"), nil, 400, "Request_BadRequest"},
		{"missing user", "GET", "/v1.0/users/00000000-0000-4000-8000-000000000000", nil, 404, "Request_ResourceNotFound"},
		{"create without password", "POST", "/v1.0/users", map[string]any{"displayName": "x", "userPrincipalName": "x@" + testDomain}, 400, "Request_BadRequest"},
		{"create with short password", "POST", "/v1.0/users", map[string]any{"displayName": "x", "userPrincipalName": "x@" + testDomain, "passwordProfile": map[string]any{"password": "short"}}, 400, "Request_BadRequest"},
		{"create in another domain", "POST", "/v1.0/users", map[string]any{"displayName": "x", "userPrincipalName": "x@fabrikam.example", "passwordProfile": map[string]any{"password": "Long-enough-1"}}, 400, "Request_BadRequest"},
		{"unknown property", "PATCH", "/v1.0/users/" + id, map[string]any{"displayNam": "typo"}, 400, "Request_BadRequest"},
		{"wrong type", "PATCH", "/v1.0/users/" + id, map[string]any{"accountEnabled": "yes"}, 400, "Request_BadRequest"},
		{"rename", "PATCH", "/v1.0/users/" + id, map[string]any{"displayName": "Quinn Q"}, 204, ""},
		{"reset password", "PATCH", "/v1.0/users/" + id, map[string]any{"passwordProfile": map[string]any{"password": "Quinn-Pass-456"}}, 204, ""},
		{"disable", "PATCH", "/v1.0/users/" + id, map[string]any{"accountEnabled": false}, 204, ""},
		{"me", "GET", "/v1.0/me", nil, 200, ""},
		{"unsupported path", "GET", "/v1.0/applications", nil, 400, "Request_BadRequest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, body := e.do(tt.method, tt.path, gaTok, tt.body)
			if st != tt.wantStatus || graphCode(body) != tt.wantCode {
				t.Errorf("%d %q, want %d %q (%v)", st, graphCode(body), tt.wantStatus, tt.wantCode, body)
			}
		})
	}
	_, body = e.do("GET", "/v1.0/users/"+id, gaTok, nil)
	if body["displayName"] != "Quinn Q" || body["accountEnabled"] != false {
		t.Errorf("after PATCH: %v", body)
	}
	if st, b, _ := e.post(testTenant, pwForm("quinn@"+testDomain, "Quinn-Pass-456")); st != 400 || b["error_codes"].([]any)[0] != float64(50057) {
		t.Errorf("disabled user with the new password: %d %v", st, b)
	}
	if st, body := e.do("DELETE", "/v1.0/users/"+id, plainTok, nil); st != 403 {
		t.Errorf("non-GA delete: %d %v", st, body)
	}
	if st, body := e.do("DELETE", "/v1.0/users/"+id, gaTok, nil); st != 204 {
		t.Errorf("GA delete: %d %v", st, body)
	}
	if st, _ := e.do("GET", "/v1.0/users/"+id, gaTok, nil); st != 404 {
		t.Errorf("deleted user still there: %d", st)
	}
	// The last Global Administrator cannot remove themself.
	if st, body := e.do("DELETE", "/v1.0/users/"+ga.ID, gaTok, nil); st != 400 {
		t.Errorf("deleting the last GA: %d %v", st, body)
	}
	// No caller, no service.
	if st, _ := e.do("GET", "/v1.0/users", "", nil); st != 401 {
		t.Errorf("anonymous: %d", st)
	}
}

func TestGraphTenantIsolation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	other := "9a9a9a9a-1111-4222-8333-444444444444"
	if err := e.store.CreateTenant(ctx, &keyhold.Tenant{ID: other, DefaultDomain: "fabrikam.keyhold.internal"}); err != nil {
		t.Fatal(err)
	}
	foreign, err := e.svc.CreateUser(ctx, other, "eve@fabrikam.keyhold.internal", "Eve", keyhold.NewSecret([]byte(testPass)), []string{keyhold.RoleGlobalAdministrator})
	if err != nil {
		t.Fatal(err)
	}
	ga := e.user("admin@"+testDomain, keyhold.RoleGlobalAdministrator)
	tok := e.token(ga, AudienceGraph)
	for _, p := range []string{"/v1.0/users/" + foreign.ID, "/v1.0/directoryObjects/" + foreign.ID, "/v1.0/users/eve@fabrikam.keyhold.internal"} {
		if st, body := e.do("GET", p, tok, nil); st != 404 {
			t.Errorf("GET %s across tenants: %d %v", p, st, body)
		}
	}
	if st, _ := e.do("DELETE", "/v1.0/users/"+foreign.ID, tok, nil); st != 404 {
		t.Errorf("DELETE across tenants: %d", st)
	}
	_, body := e.do("GET", "/v1.0/users", tok, nil)
	if n := len(body["value"].([]any)); n != 1 {
		t.Errorf("list shows %d users, want 1", n)
	}
}

func TestGraphServicePrincipals(t *testing.T) {
	e := newEnv(t)
	ga := e.user("admin@"+testDomain, keyhold.RoleGlobalAdministrator)
	tok := e.token(ga, AudienceGraph)
	st, sp := e.do("POST", "/v1.0/servicePrincipals", tok, map[string]any{"displayName": "pipeline"})
	if st != 201 {
		t.Fatalf("create: %d %v", st, sp)
	}
	id, appID := sp["id"].(string), sp["appId"].(string)
	st, pw := e.do("POST", "/v1.0/servicePrincipals/"+id+"/addPassword", tok, map[string]any{"passwordCredential": map[string]any{"displayName": "ci"}})
	if st != 200 {
		t.Fatalf("addPassword: %d %v", st, pw)
	}
	secret, _ := pw["secretText"].(string)
	if len(secret) != secretLen || pw["hint"] != secret[:3] || pw["keyId"] == "" || pw["endDateTime"] == nil {
		t.Errorf("addPassword = %v", pw)
	}
	if info := e.info(); info.Action != "microsoft.directory/servicePrincipals/credentials/update" {
		t.Errorf("annotation = %+v", info)
	}
	// The secret works and is never shown again.
	if st, b, _ := e.post(testTenant, ccForm(appID, secret, AudienceGraph+"/.default")); st != 200 {
		t.Errorf("new secret: %d %v", st, b)
	}
	_, got := e.do("GET", "/v1.0/servicePrincipals/"+id, tok, nil)
	creds, _ := got["passwordCredentials"].([]any)
	if len(creds) != 1 || creds[0].(map[string]any)["secretText"] != nil || creds[0].(map[string]any)["hint"] != secret[:3] {
		t.Errorf("GET shows credentials %v", got["passwordCredentials"])
	}
	_, list := e.do("GET", "/v1.0/servicePrincipals?$filter="+url.QueryEscape("appId eq '"+appID+"'"), tok, nil)
	if v := list["value"].([]any); len(v) != 1 || v[0].(map[string]any)["id"] != id {
		t.Errorf("filter by appId: %v", list)
	}
	st, _ = e.do("POST", "/v1.0/servicePrincipals/"+id+"/removePassword", tok, map[string]any{"keyId": pw["keyId"]})
	if st != 204 {
		t.Errorf("removePassword: %d", st)
	}
	if st, _, _ := e.post(testTenant, ccForm(appID, secret, AudienceGraph+"/.default")); st != 401 {
		t.Errorf("removed secret still works: %d", st)
	}
	// Managed identities are listed but not deleted here.
	mi, err := e.svc.CreateManagedIdentity(context.Background(), nil, testTenant, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/p", "p")
	if err != nil {
		t.Fatal(err)
	}
	_, got = e.do("GET", "/v1.0/servicePrincipals/"+mi.ID, tok, nil)
	if got["servicePrincipalType"] != "ManagedIdentity" {
		t.Errorf("managed identity = %v", got)
	}
	if st, _ := e.do("DELETE", "/v1.0/servicePrincipals/"+mi.ID, tok, nil); st != 400 {
		t.Errorf("delete managed identity: %d", st)
	}
	if st, _ := e.do("DELETE", "/v1.0/servicePrincipals/"+id, tok, nil); st != 204 {
		t.Errorf("delete: %d", st)
	}
}

func TestGraphGroupsAndRoles(t *testing.T) {
	e := newEnv(t)
	ga := e.user("admin@"+testDomain, keyhold.RoleGlobalAdministrator)
	u := e.user("uma@" + testDomain)
	tok := e.token(ga, AudienceGraph)
	ref := map[string]any{"@odata.id": "https://graph.keyhold.internal/v1.0/directoryObjects/" + u.ID}

	st, g := e.do("POST", "/v1.0/groups", tok, map[string]any{"displayName": "vault admins", "mailEnabled": false, "mailNickname": "va", "securityEnabled": true})
	if st != 201 {
		t.Fatalf("create group: %d %v", st, g)
	}
	gid := g["id"].(string)
	steps := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
	}{
		{"add member", "POST", "/v1.0/groups/" + gid + "/members/$ref", ref, 204},
		{"add again", "POST", "/v1.0/groups/" + gid + "/members/$ref", ref, 400},
		{"add nonsense", "POST", "/v1.0/groups/" + gid + "/members/$ref", map[string]any{"@odata.id": "nope"}, 400},
		{"list members", "GET", "/v1.0/groups/" + gid + "/members", nil, 200},
		{"member of", "GET", "/v1.0/users/" + u.ID + "/memberOf", nil, 200},
		{"list roles", "GET", "/v1.0/directoryRoles", nil, 200},
		{"make GA", "POST", "/v1.0/directoryRoles/roleTemplateId=" + gaTemplate + "/members/$ref", ref, 204},
		{"make GA again", "POST", "/v1.0/directoryRoles/roleTemplateId=" + gaTemplate + "/members/$ref", ref, 400},
		{"unknown role", "POST", "/v1.0/directoryRoles/roleTemplateId=00000000-0000-4000-8000-000000000000/members/$ref", ref, 404},
		{"role members", "GET", "/v1.0/directoryRoles/" + gaTemplate + "/members", nil, 200},
		{"remove GA", "DELETE", "/v1.0/directoryRoles/" + gaTemplate + "/members/" + u.ID + "/$ref", nil, 204},
		{"remove GA again", "DELETE", "/v1.0/directoryRoles/" + gaTemplate + "/members/" + u.ID + "/$ref", nil, 404},
		{"demote last GA", "DELETE", "/v1.0/directoryRoles/" + gaTemplate + "/members/" + ga.ID + "/$ref", nil, 400},
		{"remove member", "DELETE", "/v1.0/groups/" + gid + "/members/" + u.ID + "/$ref", nil, 204},
		{"remove member again", "DELETE", "/v1.0/groups/" + gid + "/members/" + u.ID + "/$ref", nil, 404},
		{"delete group", "DELETE", "/v1.0/groups/" + gid, nil, 204},
		{"get deleted group", "GET", "/v1.0/groups/" + gid, nil, 404},
	}
	for _, s := range steps {
		st, body := e.do(s.method, s.path, tok, s.body)
		if st != s.wantStatus {
			t.Errorf("%s: %d, want %d (%v)", s.name, st, s.wantStatus, body)
		}
		switch s.name {
		case "list members", "member of":
			if v := body["value"].([]any); len(v) != 1 {
				t.Errorf("%s: %v", s.name, body)
			}
		case "role members":
			if v := body["value"].([]any); len(v) != 2 {
				t.Errorf("%s: %v, want the two GAs", s.name, body)
			}
		case "list roles":
			if v := body["value"].([]any); len(v) != len(keyhold.DirectoryRoles) {
				t.Errorf("%s: %v", s.name, body)
			}
		case "make GA":
			if info := e.info(); info.Action != "microsoft.directory/directoryRoles/members/update" || info.Scope != "/v1.0/directoryRoles/"+gaTemplate {
				t.Errorf("annotation = %+v", info)
			}
			// The new GA can now write.
			if st, _ := e.do("POST", "/v1.0/groups", e.token(u, AudienceGraph), map[string]any{"displayName": "by uma"}); st != 201 {
				t.Errorf("new GA cannot write: %d", st)
			}
		}
	}
	// Directory role changes reach the next token's caller.
	if st, _ := e.do("POST", "/v1.0/groups", e.token(u, AudienceGraph), map[string]any{"displayName": "by uma again"}); st != http.StatusForbidden {
		t.Errorf("demoted user can still write: %d", st)
	}
}
