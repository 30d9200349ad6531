package duties_test

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/rbac"
)

func TestHandler(t *testing.T) {
	f := newFixture(t)
	f.assign(ppaID, rbac.RoleKeyVaultAdministrator, vaultID) // an existing violation
	f.assign(appID, rbac.RoleReader, policyID)
	f.assign(plainID, rbac.RoleKeyVaultAdministrator, vaultID)
	c := duties.New(duties.Config{Store: f.store})
	h := c.Handler()
	for _, tc := range []struct {
		name, method, path, caller, body string
		wantStatus                       int
		wantCode                         string
		wantEnabled                      bool
	}{
		{"a platform admin reads", "GET", duties.Path, ppaID, "", 200, "", false},
		{"a key vault admin reads", "GET", duties.Path, plainID, "", 200, "", false},
		{"a Reader of the policy may not read", "GET", duties.Path, appID, "", 403, "AuthorizationFailed", false},
		{"no caller", "GET", duties.Path, "", "", 401, "AuthenticationFailed", false},
		{"a platform admin may not change it", "PUT", duties.Path, ppaID, `{"enabled":true}`, 403, "AuthorizationFailed", false},
		{"a body without enabled", "PUT", duties.Path, gaID, `{"on":true}`, 400, "InvalidRequestContent", false},
		{"a body that is not JSON", "PUT", duties.Path, gaID, `on`, 400, "InvalidRequestContent", false},
		{"the Global Administrator turns it on", "PUT", duties.Path, gaID, `{"enabled":true}`, 200, "", true},
		{"and reads it back", "GET", duties.Path + "/", ppaID, "", 200, "", true},
		{"POST", "POST", duties.Path, gaID, `{}`, 405, "MethodNotAllowed", false},
		{"a path below", "GET", duties.Path + "/x", gaID, "", 404, "NotFound", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, strings.NewReader(tc.body))
			ctx, info := httpapi.WithInfo(r.Context())
			if tc.caller != "" {
				p := f.principal(tc.caller)
				ctx = keyhold.WithCaller(ctx, &keyhold.Caller{Principal: p, TenantID: p.TenantID})
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r.WithContext(ctx))
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantCode != "" {
				var e httpapi.AzureError
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code != tc.wantCode {
					t.Errorf("body %s, want code %s", w.Body, tc.wantCode)
				}
				return
			}
			var st duties.Status
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
				t.Fatal(err)
			}
			if st.Enabled != tc.wantEnabled || st.TenantSetting != tc.wantEnabled {
				t.Errorf("enabled = %v/%v, want %v", st.Enabled, st.TenantSetting, tc.wantEnabled)
			}
			if len(st.Violations) != 1 || st.Violations[0].PrincipalID != ppaID {
				t.Errorf("violations = %+v, want the platform admin's", st.Violations)
			}
			if tc.method == "PUT" && (info.Action != "Keyhold/separationOfDuties/write" || info.Detail != "separation of duties on") {
				t.Errorf("audit info = %+v", info)
			}
		})
	}
	ts, err := c.Setting(f.ctx, nil, tenant)
	if err != nil || !ts.Enabled || ts.ChangedBy != gaID || ts.ChangedAt.IsZero() {
		t.Errorf("stored setting = %+v, %v", ts, err)
	}
}
