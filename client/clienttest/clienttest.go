// Package clienttest sets up, through the client, what tests of the client
// and of the command line need on a real server.
package clienttest

import (
	"context"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
)

// ReaderRole is the built-in Reader role definition's GUID.
const ReaderRole = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

// SetupCMK sets up a customer's key as the seed's key vault administrator
// does, through owner (an Owner of sub, signed in as the principal me):
// provider Microsoft.PowerPlatform registered, group (made in westus if it
// is missing), vault with purge protection that gives me every key
// permission, an RSA 2048 key cmk, an Encryption policy name in
// unitedstates whose identity holds get, wrapKey and unwrapKey on it, and
// Reader on the policy for each of readers. It waits up to 30 seconds for
// the policy to be Healthy and returns it; any failure fails tb.
func SetupCMK(tb testing.TB, owner *client.Client, sub, tenant, me, group, vault, name string, readers ...string) *client.EnterprisePolicy {
	tb.Helper()
	ctx := context.Background()
	if _, err := owner.RegisterProvider(ctx, sub, "Microsoft.PowerPlatform", true, nil); err != nil {
		tb.Fatal(err)
	}
	if _, err := owner.GetResourceGroup(ctx, sub, group); client.IsNotFound(err) {
		if _, err := owner.CreateResourceGroup(ctx, sub, group, "westus", nil); err != nil {
			tb.Fatal(err)
		}
	}
	v, err := owner.CreateVault(ctx, sub, group, vault, client.Vault{Location: "westus", Properties: client.VaultProperties{
		TenantID: tenant, SKU: client.VaultSKU{Family: "A", Name: "standard"}, EnablePurgeProtection: new(true),
		AccessPolicies: []client.VaultAccessPolicy{{TenantID: tenant, ObjectID: me, Permissions: client.VaultPermissions{Keys: []string{"all"}}}},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := owner.CreateKey(ctx, vault, "cmk", client.KeyCreate{Kty: "RSA", KeySize: 2048}); err != nil {
		tb.Fatal(err)
	}
	id := client.PolicyID(sub, group, name)
	p, err := owner.PutPolicy(ctx, id, client.EnterprisePolicy{Location: "unitedstates", Kind: "Encryption",
		Identity: &client.EnterprisePolicyIdentity{Type: "SystemAssigned"},
		Properties: client.EnterprisePolicyProperties{Encryption: &client.PolicyEncryption{State: "Enabled",
			KeyVault: &client.PolicyKeyVault{ID: v.ID, Key: client.PolicyKey{Name: "cmk"}}}}})
	if err != nil {
		tb.Fatalf("create policy: %v", err)
	}
	if err := owner.UpdateAccessPolicies(ctx, sub, group, vault, client.AccessPolicyAdd, []client.VaultAccessPolicy{{TenantID: tenant,
		ObjectID: p.PrincipalID(), Permissions: client.VaultPermissions{Keys: []string{"get", "wrapKey", "unwrapKey"}}}}); err != nil {
		tb.Fatal(err)
	}
	for _, r := range readers {
		if _, err := owner.CreateRoleAssignment(ctx, id, "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleDefinitions/"+ReaderRole, r, ""); err != nil {
			tb.Fatal(err)
		}
	}
	// The policy's health is checked in the background, after its identity
	// got access.
	deadline := time.Now().Add(30 * time.Second)
	for {
		p, err = owner.GetPolicy(ctx, id)
		if err == nil && p.Properties.HealthStatus == "Healthy" {
			return p
		}
		if time.Now().After(deadline) {
			tb.Fatalf("policy %s not Healthy: %+v, %v", name, p, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
