package e2e

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

const cryptoServiceEncryptionUser = "e147488a-f6f5-4113-8e2d-b22465e65bf6"

// TestVaultAccessChangesOnTheNextRequest shows, with the real armkeyvault and
// azkeys clients, that adding and removing an access policy changes
// data-plane access on the very next request, and that in RBAC mode the Key
// Vault Crypto Service Encryption User role allows get, wrapKey and unwrapKey
// and refuses sign.
func TestVaultAccessChangesOnTheNextRequest(t *testing.T) {
	e := start(t, "")
	ctx := context.Background()
	sub, tenant := e.Boot.SubscriptionID, e.Boot.TenantID
	owner := e.ServicePrincipal()
	opts := e.ARMOptions()
	e.createGroup(t, "rg-kv")
	vaults, _ := armkeyvault.NewVaultsClient(sub, owner, opts)
	ownerOID := e.Server.Bootstrap().ServicePrincipalID
	createVault := func(name string, rbac bool) *armkeyvault.Vault { return e.createVault(t, "rg-kv", name, rbac) }
	appOID, app := e.CreateServicePrincipal("payments-app")
	digest := sha256.Sum256([]byte("hello"))
	wrapParams := azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: make([]byte, 32)}

	// Access-policy mode.
	createVault("kv-policies", false)
	if _, err := e.vaultClient("kv-policies", owner).CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatal(err)
	}
	appKeys := e.vaultClient("kv-policies", app)
	_, err := appKeys.WrapKey(ctx, "k", "", wrapParams, nil)
	wantStatus(t, err, http.StatusForbidden)
	entry := armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: to.Ptr(appOID),
			Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{
				to.Ptr(armkeyvault.KeyPermissionsGet), to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}}}},
	}}
	if _, err := vaults.UpdateAccessPolicy(ctx, "rg-kv", "kv-policies", armkeyvault.AccessPolicyUpdateKindAdd, entry, nil); err != nil {
		t.Fatal(err)
	}
	wrapped, err := appKeys.WrapKey(ctx, "k", "", wrapParams, nil)
	if err != nil {
		t.Fatalf("wrap right after the access policy was added: %v", err)
	}
	if _, err := appKeys.UnwrapKey(ctx, "k", "", azkeys.KeyOperationParameters{Algorithm: wrapParams.Algorithm, Value: wrapped.Result}, nil); err != nil {
		t.Fatalf("unwrap: %v", err)
	}
	if _, err := vaults.UpdateAccessPolicy(ctx, "rg-kv", "kv-policies", armkeyvault.AccessPolicyUpdateKindRemove, entry, nil); err != nil {
		t.Fatal(err)
	}
	_, err = appKeys.UnwrapKey(ctx, "k", "", azkeys.KeyOperationParameters{Algorithm: wrapParams.Algorithm, Value: wrapped.Result}, nil)
	wantStatus(t, err, http.StatusForbidden)

	// RBAC mode: Owner holds no data actions, so the owner needs a data role
	// (Crypto Officer) to create the key.
	rbacVault := createVault("kv-rbac", true)
	assign := func(principal, role string) { t.Helper(); e.assignRole(t, *rbacVault.ID, role, principal) }
	assign(ownerOID, "14b46e9e-c2b7-41b4-b07b-48a6ebf60603") // Key Vault Crypto Officer
	if _, err := e.vaultClient("kv-rbac", owner).CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		t.Fatalf("create key as Crypto Officer: %v", err)
	}
	rbacKeys := e.vaultClient("kv-rbac", app)
	_, err = rbacKeys.GetKey(ctx, "k", "", nil)
	wantStatus(t, err, http.StatusForbidden)
	assign(appOID, cryptoServiceEncryptionUser)
	if _, err := rbacKeys.GetKey(ctx, "k", "", nil); err != nil {
		t.Fatalf("get as Crypto Service Encryption User: %v", err)
	}
	wrapped, err = rbacKeys.WrapKey(ctx, "k", "", wrapParams, nil)
	if err != nil {
		t.Fatalf("wrap as Crypto Service Encryption User: %v", err)
	}
	if _, err := rbacKeys.UnwrapKey(ctx, "k", "", azkeys.KeyOperationParameters{Algorithm: wrapParams.Algorithm, Value: wrapped.Result}, nil); err != nil {
		t.Fatalf("unwrap as Crypto Service Encryption User: %v", err)
	}
	_, err = rbacKeys.Sign(ctx, "k", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest[:]}, nil)
	wantStatus(t, err, http.StatusForbidden)
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != status {
		t.Fatalf("err = %v, want status %d", err, status)
	}
}
