package keyvault

import (
	"context"
	"net/http"
	"reflect"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/duties"
)

// TestAccessPolicySeparationOfDuties checks every write of access policies
// (vault PUT, PATCH, accessPolicies/add and replace) against separation of
// duties: key management permissions for a Power Platform Administrator are
// refused with 409 SeparationOfDutiesViolation and change nothing; the CMK
// preset is not management and goes through.
func TestAccessPolicySeparationOfDuties(t *testing.T) {
	e := newMgmtEnv(t)
	e.kv.cfg.Duties = duties.New(duties.Config{Store: e.store, Enforce: true})
	ctx := context.Background()
	ppa, err := e.store.GetPrincipal(ctx, mgmtReader)
	if err != nil {
		t.Fatal(err)
	}
	ppa.DirectoryRoles = []string{keyhold.RolePowerPlatformAdministrator}
	if err := e.store.UpdatePrincipal(ctx, ppa); err != nil {
		t.Fatal(err)
	}
	path := mgmtVaultPath(mgmtSub, mgmtGroup, "kv-duties")
	withPolicies := func(ps ...any) map[string]any {
		return vaultJSON(func(p map[string]any) { p["accessPolicies"] = ps })
	}
	body := func(ps ...any) map[string]any {
		return map[string]any{"properties": map[string]any{"accessPolicies": ps}}
	}
	refused := "principal reader@contoso.keyhold is a Power Platform Administrator; with separation of duties on, it may not also hold key management permissions "
	tests := []struct {
		name, method, path string
		body               any
		status             int
		message            string
		want               map[string][]string // the stored policies afterwards
	}{
		{"new vault granting create", http.MethodPut, path, withPolicies(policy(mgmtReader, "get", "create")), 409,
			refused + "(create) in an access policy of " + path, nil},
		{"new vault with the CMK preset", http.MethodPut, path, withPolicies(policy(mgmtReader, "get", "wrapKey", "unwrapKey")), 201, "",
			map[string][]string{mgmtReader: {"get", "unwrapKey", "wrapKey"}}},
		{"add delete", http.MethodPut, path + "/accessPolicies/add", body(policy(mgmtReader, "delete")), 409, refused + "(delete)",
			map[string][]string{mgmtReader: {"get", "unwrapKey", "wrapKey"}}},
		{"replace with all", http.MethodPut, path + "/accessPolicies/replace", body(policy(mgmtReader, "all")), 409, refused + "(backup, create",
			map[string][]string{mgmtReader: {"get", "unwrapKey", "wrapKey"}}},
		{"patch with rotate", http.MethodPatch, path, map[string]any{"properties": map[string]any{"accessPolicies": []any{policy(mgmtReader, "get", "rotate")}}}, 409, refused + "(rotate)",
			map[string][]string{mgmtReader: {"get", "unwrapKey", "wrapKey"}}},
		{"add all for an application", http.MethodPut, path + "/accessPolicies/add", body(policy(mgmtApp, "all")), 200, "",
			map[string][]string{mgmtReader: {"get", "unwrapKey", "wrapKey"}, mgmtApp: {"all"}}},
		{"add sign and list for the platform admin", http.MethodPut, path + "/accessPolicies/add", body(policy(mgmtReader, "sign", "list")), 200, "",
			map[string][]string{mgmtReader: {"get", "list", "sign", "unwrapKey", "wrapKey"}, mgmtApp: {"all"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(mgmtOwner, tt.method, tt.path, tt.body)
			code, msg := r.errCode(t)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			if tt.status == 409 && (code != keyhold.DetailSeparationOfDuties || len(msg) < len(tt.message) || msg[:len(tt.message)] != tt.message) {
				t.Errorf("got %s %q, want %s starting %q", code, msg, keyhold.DetailSeparationOfDuties, tt.message)
			}
			res, err := e.store.GetResource(ctx, path)
			if tt.want == nil {
				if !keyhold.IsNotFound(err) {
					t.Errorf("the refused vault exists (%v)", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParseProperties(res)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, ap := range p.AccessPolicies {
				got[ap.ObjectID] = ap.Permissions.Keys
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("stored policies %v, want %v", got, tt.want)
			}
		})
	}
}
