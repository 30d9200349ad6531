package rbac

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

const (
	tenant  = "11111111-1111-1111-1111-111111111111"
	other   = "22222222-2222-2222-2222-222222222222"
	sub     = "/subscriptions/00000000-0000-0000-0000-0000000000aa"
	group   = sub + "/resourceGroups/rg"
	vault   = group + "/providers/Microsoft.KeyVault/vaults/kv"
	userID  = "aaaaaaaa-0000-0000-0000-000000000001"
	groupID = "aaaaaaaa-0000-0000-0000-0000000000f1"
)

// fakeStore keeps role assignments in memory; the other Store methods are
// not used by the Authorizer and panic through the nil embedded interface.
type fakeStore struct {
	keyhold.Store
	assignments []*keyhold.RoleAssignment
	err         error
}

func (f *fakeStore) ListRoleAssignments(_ context.Context, fl keyhold.RoleAssignmentFilter) ([]*keyhold.RoleAssignment, error) {
	if f.err != nil {
		return nil, f.err
	}
	var out []*keyhold.RoleAssignment
	for _, a := range f.assignments {
		if (fl.TenantID == "" || a.TenantID == fl.TenantID) && (fl.PrincipalID == "" || a.PrincipalID == fl.PrincipalID) {
			out = append(out, a)
		}
	}
	return out, nil
}

func assign(tenantID, principal, role, scope string) *keyhold.RoleAssignment {
	r, ok := RoleByName(role)
	if !ok {
		panic("no role " + role)
	}
	return &keyhold.RoleAssignment{Name: principal + role + scope, TenantID: tenantID, PrincipalID: principal, RoleDefinitionID: r.ID, Scope: scope}
}

func caller(groups ...string) *keyhold.Caller {
	return &keyhold.Caller{
		Principal: &keyhold.Principal{ID: userID, TenantID: tenant, Type: keyhold.PrincipalUser, UserPrincipalName: "kv-admin@contoso.keyhold"},
		TenantID:  tenant,
		GroupIDs:  groups,
	}
}

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, action string
		want            bool
	}{
		{"*", "Microsoft.KeyVault/vaults/write", true},
		{"*/read", "Microsoft.KeyVault/vaults/read", true},
		{"*/read", "Microsoft.KeyVault/vaults/write", false},
		{"*/READ", "microsoft.keyvault/vaults/read", true},
		{"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keys/wrap/action", true},
		{"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/secrets/getSecret/action", false},
		{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/read", true},
		{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/read", false},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/read", false},
		{"Microsoft.KeyVault/vaults/read", "Microsoft.KeyVault/vaults/read/extra", false},
		{"a*b*c", "aXXbYYbZc", true},
		{"a*b*c", "aXXbYYbZ", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.action); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.action, got, tt.want)
		}
	}
}

func TestBuiltInRoles(t *testing.T) {
	want := map[string]string{
		"Owner":                     "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
		"Contributor":               "b24988ac-6180-42a0-ab88-20f7382dd24c",
		"Reader":                    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
		"User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
		"Key Vault Administrator":   "00482a5a-887f-4fb3-b363-3b7fe8e74483",
		"Key Vault Crypto Officer":  "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
		"Key Vault Crypto User":     "12338af0-0e69-4776-bea7-57ae8d297424",
		"Key Vault Crypto Service Encryption User": "e147488a-f6f5-4113-8e2d-b22465e65bf6",
		"Key Vault Reader":                         "21090545-7ca7-4776-b22c-e363652d74d2",
		"Key Vault Crypto Service Release User":    "08bbd89e-9f13-488c-ac41-acfcb10c90ab",
	}
	for name, id := range want {
		r, ok := RoleByName(strings.ToLower(name))
		if !ok || r.ID != id || r.Name != name || r.Type != BuiltInRole {
			t.Errorf("RoleByName(%q) = %+v, %v; want id %s", name, r, ok, id)
		}
		r, ok = RoleByID(strings.ToUpper(id))
		if !ok || r.Name != name {
			t.Errorf("RoleByID(%q) = %q, %v; want %q", id, r.Name, ok, name)
		}
	}
	// The copy handed out must not alias the table.
	r := BuiltInRoles()[0]
	r.Permissions[0].Actions[0] = "nothing"
	if o, _ := RoleByName("Owner"); o.Permissions[0].Actions[0] != "*" {
		t.Errorf("BuiltInRoles returned an alias of the table")
	}
}

func TestRoleAllows(t *testing.T) {
	tests := []struct {
		role, action string
		data, want   bool
	}{
		{"Owner", "Microsoft.Authorization/roleAssignments/write", false, true},
		{"Contributor", "Microsoft.Resources/subscriptions/resourceGroups/write", false, true},
		{"Contributor", "Microsoft.Authorization/roleAssignments/write", false, false},
		{"Contributor", "Microsoft.Authorization/roleAssignments/delete", false, false},
		{"Contributor", "Microsoft.Authorization/elevateAccess/action", false, false},
		{"Contributor", "Microsoft.Authorization/roleAssignments/read", false, true},
		{"Reader", "Microsoft.KeyVault/vaults/read", false, true},
		{"Reader", "Microsoft.KeyVault/vaults/write", false, false},
		{"Reader", "Microsoft.KeyVault/vaults/keys/read", true, false},
		{"User Access Administrator", "Microsoft.Authorization/roleAssignments/write", false, true},
		{"User Access Administrator", "Microsoft.KeyVault/vaults/write", false, false},
		{"Key Vault Crypto Service Encryption User", "Microsoft.KeyVault/vaults/keys/wrap/action", true, true},
		{"Key Vault Crypto Service Encryption User", "Microsoft.KeyVault/vaults/keys/unwrap/action", true, true},
		{"Key Vault Crypto Service Encryption User", "Microsoft.KeyVault/vaults/keys/decrypt/action", true, false},
		{"Key Vault Crypto Officer", "Microsoft.KeyVault/vaults/keys/create/action", true, true},
		{"Key Vault Crypto Officer", "Microsoft.KeyVault/vaults/secrets/getSecret/action", true, false},
		{"Key Vault Administrator", "Microsoft.KeyVault/vaults/secrets/getSecret/action", true, true},
		{"Key Vault Administrator", "Microsoft.KeyVault/vaults/write", false, false},
		{"Key Vault Reader", "Microsoft.KeyVault/vaults/keys/read", true, true},
		{"Key Vault Reader", "Microsoft.KeyVault/vaults/keys/wrap/action", true, false},
		{"Key Vault Crypto Service Release User", "Microsoft.KeyVault/vaults/keys/release/action", true, true},
		{"Key Vault Contributor", "Microsoft.KeyVault/vaults/write", false, true},
		{"Key Vault Contributor", "Microsoft.KeyVault/locations/deletedVaults/purge/action", false, false},
	}
	for _, tt := range tests {
		r, _ := RoleByName(tt.role)
		got := r.Allows(tt.action)
		if tt.data {
			got = r.AllowsData(tt.action)
		}
		if got != tt.want {
			t.Errorf("%s allows %s (data %v) = %v, want %v", tt.role, tt.action, tt.data, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	store := &fakeStore{assignments: []*keyhold.RoleAssignment{
		assign(tenant, userID, "Reader", group),
		assign(tenant, groupID, "Contributor", vault),
		assign(other, userID, "Owner", "/"), // another tenant: never counts
		assign(tenant, "someone-else", "Owner", "/"),
		{Name: "x", TenantID: tenant, PrincipalID: userID, RoleDefinitionID: "00000000-0000-0000-0000-000000000000", Scope: "/"},
	}}
	a := New(store)
	tests := []struct {
		name          string
		c             *keyhold.Caller
		action, scope string
		want          bool
	}{
		{"read at the group", caller(), "Microsoft.Resources/subscriptions/resourceGroups/read", group, true},
		{"read below the group", caller(), "Microsoft.KeyVault/vaults/read", vault, true},
		{"case-insensitive scope", caller(), "Microsoft.KeyVault/vaults/read", strings.ToUpper(vault[:15]) + vault[15:], true},
		{"read above the group", caller(), "Microsoft.Resources/subscriptions/read", sub, false},
		{"sibling group with a common prefix", caller(), "Microsoft.Resources/subscriptions/resourceGroups/read", group + "2", false},
		{"write under Reader", caller(), "Microsoft.KeyVault/vaults/write", vault, false},
		{"write through the group", caller(groupID), "Microsoft.KeyVault/vaults/write", vault, true},
		{"group grant does not climb", caller(groupID), "Microsoft.KeyVault/vaults/write", group + "/providers/Microsoft.KeyVault/vaults/kv2", false},
		{"contributor cannot assign roles", caller(groupID), "Microsoft.Authorization/roleAssignments/write", vault, false},
		{"another tenant's owner grant", caller(), "Microsoft.Authorization/roleAssignments/write", sub, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Check(context.Background(), tt.c, tt.action, tt.scope)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckData(t *testing.T) {
	a := New(&fakeStore{assignments: []*keyhold.RoleAssignment{
		assign(tenant, userID, "Key Vault Crypto Service Encryption User", vault+"/keys/k1"),
	}})
	for _, tt := range []struct {
		action, scope string
		want          bool
	}{
		{"Microsoft.KeyVault/vaults/keys/wrap/action", vault + "/keys/k1", true},
		{"Microsoft.KeyVault/vaults/keys/wrap/action", vault + "/keys/k2", false},
		{"Microsoft.KeyVault/vaults/keys/wrap/action", vault, false},
		{"Microsoft.KeyVault/vaults/keys/sign/action", vault + "/keys/k1", false},
	} {
		got, err := a.CheckData(context.Background(), caller(), tt.action, tt.scope)
		if err != nil || got != tt.want {
			t.Errorf("CheckData(%s, %s) = %v, %v; want %v", tt.action, tt.scope, got, err, tt.want)
		}
	}
}

func TestAuthorize(t *testing.T) {
	a := New(&fakeStore{assignments: []*keyhold.RoleAssignment{assign(tenant, userID, "Reader", group)}})
	ctx := context.Background()
	if err := a.Authorize(ctx, caller(), "Microsoft.Resources/subscriptions/resourceGroups/read", group); err != nil {
		t.Fatalf("Authorize read: %v", err)
	}
	err := a.Authorize(ctx, caller(), "Microsoft.Resources/subscriptions/resourceGroups/write", group)
	if got := keyhold.ErrorCode(err); got != keyhold.EForbidden {
		t.Fatalf("code = %q, want forbidden", got)
	}
	if got := keyhold.ErrorDetail(err); got != "AuthorizationFailed" {
		t.Errorf("detail = %q, want AuthorizationFailed", got)
	}
	want := "The client 'kv-admin@contoso.keyhold' with object id '" + userID + "' does not have authorization to perform action 'Microsoft.Resources/subscriptions/resourceGroups/write' over scope '" + group + "' or the scope is invalid. If access was recently granted, please refresh your credentials."
	if got := keyhold.ErrorMessage(err); got != want {
		t.Errorf("message =\n%s\nwant\n%s", got, want)
	}

	sp := &keyhold.Caller{TenantID: tenant, Principal: &keyhold.Principal{ID: "sp-oid", AppID: "app-123", Type: keyhold.PrincipalServicePrincipal}}
	if err := a.Authorize(ctx, sp, "x/read", group); !strings.Contains(keyhold.ErrorMessage(err), "The client 'app-123' with object id 'sp-oid'") {
		t.Errorf("service principal message = %q", keyhold.ErrorMessage(err))
	}
	if err := a.Authorize(ctx, nil, "x/read", group); keyhold.ErrorCode(err) != keyhold.EUnauthenticated {
		t.Errorf("nil caller: %v, want unauthenticated", err)
	}
	if err := a.Authorize(ctx, caller(), "x/read", "not-a-scope"); keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("bad scope: %v, want invalid", err)
	}
	boom := errors.New("disk on fire")
	if err := New(&fakeStore{err: boom}).Authorize(ctx, caller(), "x/read", group); !errors.Is(err, boom) {
		t.Errorf("store failure: %v, want %v", err, boom)
	}
}
