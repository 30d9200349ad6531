package environment

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/policy"
)

// call sends a request to the BAP handler as caller and returns the status
// and decoded body.
func (f *fixture) call(t *testing.T, caller *keyhold.Caller, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if caller != nil {
		r = r.WithContext(keyhold.WithCaller(r.Context(), caller))
	}
	w := httptest.NewRecorder()
	f.svc.Handler().ServeHTTP(w, r)
	var out map[string]any
	if w.Body.Len() > 0 {
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s %s: body %q is not JSON: %v", method, path, w.Body.String(), err)
		}
	}
	return w.Code, out
}

func get(m map[string]any, path string) any { return unitenv.Field(m, path) }

const envs = "/providers/Microsoft.BusinessAppPlatform/environments"

func TestBAPCreateGetListDelete(t *testing.T) {
	f := newFixture(t)
	code, body := f.call(t, f.admin, "POST", envs+"?api-version=2020-10-01",
		`{"location":"europe","properties":{"displayName":"Contoso Sales","environmentSku":"Production","governanceConfiguration":{"protectionLevel":"Standard"}}}`)
	if code != http.StatusCreated {
		t.Fatalf("create = %d %v", code, body)
	}
	id, _ := body["name"].(string)
	want := map[string]any{
		"id":                           envs + "/" + id,
		"type":                         EnvironmentType,
		"location":                     "europe",
		"properties.displayName":       "Contoso Sales",
		"properties.environmentSku":    "Production",
		"properties.azureRegion":       "westeurope",
		"properties.states.runtime.id": "Enabled",
		"properties.protectionStatus.keyManagedBy":           "Microsoft",
		"properties.governanceConfiguration.protectionLevel": "Standard",
		"properties.encryption.status":                       "NotApplicable",
		"properties.tenantId":                                tenantA,
	}
	for _, path := range []string{envs + "/" + id + "?api-version=2016-11-01", "/providers/microsoft.businessappplatform/scopes/admin/environments/" + id + "/?&api-version=2016-11-01"} {
		code, got := f.call(t, f.admin, "GET", path, "")
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %v", path, code, got)
		}
		for k, v := range want {
			if g := get(got, k); g != v {
				t.Errorf("GET %s: %s = %v, want %v", path, k, g, v)
			}
		}
		if get(got, "properties.enterprisePolicies.customerManagedKeys") != nil {
			t.Errorf("an unlinked environment shows a customer-managed key policy")
		}
	}
	code, list := f.call(t, f.admin, "GET", envs+"?api-version=2023-06-01", "")
	if vs, _ := list["value"].([]any); code != http.StatusOK || len(vs) != 1 {
		t.Fatalf("list = %d %v", code, list)
	}
	if code, b := f.call(t, f.admin, "DELETE", envs+"/"+id+"?api-version=2021-04-01", ""); code != http.StatusNoContent {
		t.Fatalf("delete = %d %v", code, b)
	}
	if code, _ := f.call(t, f.admin, "GET", envs+"/"+id+"?api-version=2021-04-01", ""); code != http.StatusNotFound {
		t.Fatalf("GET after delete = %d", code)
	}
}

func TestBAPVisibility(t *testing.T) {
	f := newFixture(t)
	e := f.create(t, keyhold.EnvSandbox)
	user := f.principal(t, tenantA, "user")
	other := f.principal(t, tenantB, "ga", keyhold.RoleGlobalAdministrator)
	for _, c := range []*keyhold.Caller{user, other} {
		for _, method := range []string{"GET", "DELETE"} {
			code, body := f.call(t, c, method, envs+"/"+e.ID+"?api-version=2019-10-01", "")
			if code != http.StatusNotFound || get(body, "error.code") != "EnvironmentNotFound" {
				t.Fatalf("%s by %s = %d %v, want 404 EnvironmentNotFound", method, c.Principal.DisplayName, code, body)
			}
			msg, _ := get(body, "error.message").(string)
			if !strings.Contains(msg, "The environment '"+e.ID+"' could not be found in the tenant") {
				t.Fatalf("message %q", msg)
			}
		}
		code, list := f.call(t, c, "GET", envs+"?api-version=2019-10-01", "")
		if vs, _ := list["value"].([]any); code != http.StatusOK || len(vs) != 0 {
			t.Fatalf("list by %s = %d %v, want an empty list", c.Principal.DisplayName, code, list)
		}
	}
	code, body := f.call(t, user, "POST", envs+"?api-version=2019-10-01", `{"location":"europe","properties":{"displayName":"x","environmentSku":"Sandbox"}}`)
	if code != http.StatusForbidden {
		t.Fatalf("create by a non-admin = %d %v", code, body)
	}
}

func TestBAPBadRequests(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, method, path, body string
		code                     int
		errCode                  string
	}{
		{"no api-version", "GET", envs, "", 400, "MissingApiVersionParameter"},
		{"unknown api-version", "GET", envs + "?api-version=1999-01-01", "", 400, "InvalidApiVersionParameter"},
		{"bad json", "POST", envs + "?api-version=2020-10-01", `{"location":`, 400, "InvalidRequestContent"},
		{"bad region", "POST", envs + "?api-version=2020-10-01", `{"location":"mars","properties":{"displayName":"x","environmentSku":"Sandbox"}}`, 400, DetailInvalidEnvironment},
		{"bad sku", "POST", envs + "?api-version=2020-10-01", `{"location":"europe","properties":{"displayName":"x","environmentSku":"Gold"}}`, 400, DetailInvalidEnvironment},
		{"wrong method", "PATCH", envs + "/" + newGUID() + "?api-version=2020-10-01", "", 400, "MethodNotAllowed"},
		{"unknown path", "GET", "/providers/Microsoft.BusinessAppPlatform/nothing?api-version=2020-10-01", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.call(t, f.admin, tt.method, tt.path, tt.body)
			if code != tt.code {
				t.Fatalf("status = %d %v, want %d", code, body, tt.code)
			}
			if tt.errCode != "" && get(body, "error.code") != tt.errCode {
				t.Fatalf("error = %v, want %s", body, tt.errCode)
			}
		})
	}
	r := httptest.NewRequest("GET", envs+"?api-version=2020-10-01", nil)
	w := httptest.NewRecorder()
	f.svc.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("no caller = %d", w.Code)
	}
}

func TestBAPLockedViewAndReenable(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.putPolicy(t, policy.HealthHealthy, nil)
	l := f.link(t, f.create(t, keyhold.EnvProduction))
	f.setHealth(t, policy.HealthUnhealthy, "access to key k1 was removed", true)
	if err := f.svc.PolicyHealthChanged(ctx, testPolicyID); err != nil {
		t.Fatal(err)
	}
	code, body := f.call(t, f.admin, "GET", envs+"/"+l.env.ID+"?api-version=2016-11-01", "")
	if code != 200 {
		t.Fatalf("GET = %d %v", code, body)
	}
	for k, v := range map[string]any{
		"properties.states.runtime.id":                                 "Disabled",
		"properties.states.runtime.reason":                             "Environment disabled: the enterprise policy cmk-policy is unhealthy: access to key k1 was removed",
		"properties.protectionStatus.keyManagedBy":                     "Customer",
		"properties.enterprisePolicies.customerManagedKeys.id":         testPolicyID,
		"properties.enterprisePolicies.customerManagedKeys.linkStatus": "Linked",
		"properties.enterprisePolicies.customerManagedKeys.policyId":   "00000000-0000-4000-8000-0000000000aa",
		"properties.encryption.status":                                 "Encrypted",
	} {
		if g := get(body, k); g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	f.grantReader(t, f.admin)
	code, body = f.call(t, f.admin, "POST", envs+"/"+l.env.ID+"/enable?api-version=2021-04-01", "")
	if code != http.StatusConflict || get(body, "error.code") != detailPolicyUnhealthy {
		t.Fatalf("enable while unhealthy = %d %v", code, body)
	}
	f.setHealth(t, policy.HealthHealthy, "", false)
	code, body = f.call(t, f.admin, "POST", "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/"+l.env.ID+"/enterprisePolicies/Encryption/reenable?api-version=2021-04-01", "")
	if code != http.StatusOK || get(body, "properties.states.runtime.id") != "Enabled" {
		t.Fatalf("re-enable = %d %v", code, body)
	}
	code, body = f.call(t, f.admin, "GET", envs+"/"+l.env.ID+"/operations?api-version=2021-04-01", "")
	vs, _ := body["value"].([]any)
	if code != 200 || len(vs) != 3 {
		t.Fatalf("history = %d %v, want 3 entries", code, body)
	}
	if got := get(vs[0].(map[string]any), "typeDisplayName"); got != OpTypeReenable {
		t.Fatalf("newest history entry = %v, want %s", got, OpTypeReenable)
	}
}

func TestBAPRolesAndSettings(t *testing.T) {
	f := newFixture(t)
	e := f.create(t, keyhold.EnvSandbox)
	user := f.principal(t, tenantA, "user")
	base := envs + "/" + e.ID + "/roleAssignments"
	code, body := f.call(t, f.admin, "PUT", base+"/"+user.Principal.ID+"?api-version=2021-04-01", `{"properties":{"role":"Environment User"}}`)
	if code != 200 || get(body, "properties.role") != RoleEnvironmentUser {
		t.Fatalf("grant = %d %v", code, body)
	}
	if _, err := f.svc.Open(context.Background(), user, e.ID, true); err != nil {
		t.Fatalf("Open by the new user: %v", err)
	}
	code, body = f.call(t, f.admin, "GET", base+"?api-version=2021-04-01", "")
	if vs, _ := body["value"].([]any); code != 200 || len(vs) != 1 {
		t.Fatalf("list = %d %v", code, body)
	}
	if code, body = f.call(t, f.admin, "DELETE", base+"/"+user.Principal.ID+"?api-version=2021-04-01", ""); code != http.StatusNoContent {
		t.Fatalf("revoke = %d %v", code, body)
	}
	code, body = f.call(t, f.admin, "PUT", "/providers/Microsoft.BusinessAppPlatform/environmentSettings?api-version=2021-04-01", `{"autoReenable":true}`)
	if code != 200 || body["autoReenable"] != true || body["retention"] != false {
		t.Fatalf("settings = %d %v", code, body)
	}
	if code, _ = f.call(t, user, "GET", "/providers/Microsoft.BusinessAppPlatform/environmentSettings?api-version=2021-04-01", ""); code != http.StatusForbidden {
		t.Fatalf("settings by a non-admin = %d", code)
	}
}
