package policy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/rbac"
)

func TestValidateHandler(t *testing.T) {
	e := newHMEnv(t, MonitorConfig{})
	good, _ := e.addPolicy("ep-good", KindEncryption, "kv-a")
	bad, badMI := e.addPolicy("ep-bad", KindEncryption, "kv-a")
	e.checker.deny(badMI, "unwrapKey")
	reader := &keyhold.Caller{TenantID: hmTenant, Principal: &keyhold.Principal{ID: "aaaaaaaa-0000-4000-8000-000000000001", TenantID: hmTenant, Type: keyhold.PrincipalUser}}
	stranger := &keyhold.Caller{TenantID: hmTenant, Principal: &keyhold.Principal{ID: "bbbbbbbb-0000-4000-8000-000000000002", TenantID: hmTenant, Type: keyhold.PrincipalUser}}
	role, _ := rbac.RoleByName(rbac.RoleReader)
	for i, scope := range []string{good, bad, "/subscriptions/" + hmSub + "/resourceGroups/rg-empty"} {
		if err := e.store.CreateRoleAssignment(e.ctx, &keyhold.RoleAssignment{Name: "0000000" + string(rune('1'+i)) + "-0000-4000-8000-000000000000",
			TenantID: hmTenant, Scope: scope, RoleDefinitionID: role.ID, PrincipalID: reader.Principal.ID, PrincipalType: keyhold.PrincipalUser,
			CreatedAt: hmStart, UpdatedAt: hmStart}); err != nil {
			t.Fatal(err)
		}
	}
	h := e.m.ValidateHandler(rbac.New(e.store))
	q := func(id string) string { return ValidatePath + "?id=" + url.QueryEscape(id) }
	tests := []struct {
		name, method, target string
		c                    *keyhold.Caller
		status               int
		code                 string // error code, for errors
		health               string // for 200
		failed               string // the failed checks, for 200
	}{
		{"healthy policy", "GET", q(good), reader, 200, "", HealthHealthy, ""},
		{"id in another case", "GET", q(strings.ToUpper(good)), reader, 200, "", HealthHealthy, ""},
		{"unhealthy policy", "GET", q(bad), reader, 200, "", HealthUnhealthy, keyvault.CheckPermissions},
		{"no read access", "GET", q(good), stranger, 403, "AuthorizationFailed", "", ""},
		{"no such policy", "GET", q("/subscriptions/" + hmSub + "/resourceGroups/rg-empty/providers/Microsoft.PowerPlatform/enterprisePolicies/nope"), reader, 404, "ResourceNotFound", "", ""},
		{"no id", "GET", ValidatePath, reader, 400, "InvalidRequest", "", ""},
		{"two ids", "GET", q(good) + "&id=" + url.QueryEscape(bad), reader, 400, "InvalidRequest", "", ""},
		{"not an id", "GET", q("ep-good"), reader, 400, "InvalidResourceId", "", ""},
		{"a vault id", "GET", q(hmVaultID("kv-a")), reader, 400, "InvalidResourceId", "", ""},
		{"POST", "POST", q(good), reader, 405, "MethodNotAllowed", "", ""},
		{"other path", "GET", "/keyhold/v1/policies/other", reader, 404, "NotFound", "", ""},
		{"no caller", "GET", q(good), nil, 401, "AuthenticationFailed", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "https://keyhold.test"+tt.target, nil)
			if tt.c != nil {
				r = r.WithContext(keyhold.WithCaller(r.Context(), tt.c))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.status != 200 {
				var body struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != tt.code || body.Error.Message == "" {
					t.Errorf("error body %s, want code %s and a message", w.Body, tt.code)
				}
				return
			}
			var v Validation
			if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
				t.Fatal(err)
			}
			var failed []string
			for _, c := range v.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			if v.HealthStatus != tt.health || strings.Join(failed, ",") != tt.failed || v.Passed != (tt.failed == "") {
				t.Errorf("got %s, failed %v, passed %v; want %s, failed %s", v.HealthStatus, failed, v.Passed, tt.health, tt.failed)
			}
			if !strings.EqualFold(v.PolicyID, tt.target[len(ValidatePath)+4:]) && !strings.EqualFold(url.QueryEscape(v.PolicyID), tt.target[len(ValidatePath)+4:]) {
				t.Errorf("policyId = %s", v.PolicyID)
			}
			if tt.health == HealthUnhealthy && !strings.Contains(v.Reason, "lacks unwrapKey on vault kv-a") {
				t.Errorf("reason = %q", v.Reason)
			}
			if len(v.Checks) < 4 || v.Checks[0].Name != CheckPolicyKind {
				t.Errorf("checks = %+v, want the policy's checks, then the key's", v.Checks)
			}
		})
	}
	if len(e.rec.recorded()) != 0 {
		t.Errorf("validation recorded health")
	}
}

func TestValidateHandlerIsNotServedToOtherTenants(t *testing.T) {
	e := newHMEnv(t, MonitorConfig{})
	good, _ := e.addPolicy("ep-good", KindEncryption, "kv-a")
	role, _ := rbac.RoleByName(rbac.RoleOwner)
	other := "99999999-9999-4999-8999-999999999999"
	// An Owner at the root of another tenant gains nothing in this one.
	if err := e.store.CreateRoleAssignment(e.ctx, &keyhold.RoleAssignment{Name: "0000000a-0000-4000-8000-000000000000", TenantID: other, Scope: "/",
		RoleDefinitionID: role.ID, PrincipalID: "cccccccc-0000-4000-8000-000000000003", PrincipalType: keyhold.PrincipalUser, CreatedAt: hmStart, UpdatedAt: hmStart}); err != nil {
		t.Fatal(err)
	}
	c := &keyhold.Caller{TenantID: other, Principal: &keyhold.Principal{ID: "cccccccc-0000-4000-8000-000000000003", TenantID: other, Type: keyhold.PrincipalUser}}
	r := httptest.NewRequest("GET", "https://keyhold.test"+ValidatePath+"?id="+url.QueryEscape(good), nil)
	r = r.WithContext(keyhold.WithCaller(r.Context(), c))
	w := httptest.NewRecorder()
	e.m.ValidateHandler(rbac.New(e.store)).ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("status %d, want 403: %s", w.Code, w.Body)
	}
}
