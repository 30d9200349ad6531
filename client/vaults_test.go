package client_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/keyvault"
)

const (
	vTenant = "1c2d3e4f-0000-4000-8000-00000000000a"
	vSub    = "2c2d3e4f-0000-4000-8000-00000000000a"
	vOwner  = "3c2d3e4f-0000-4000-8000-000000000001"
	vOID    = "3c2d3e4f-0000-4000-8000-0000000000a1"
)

// vaultServer runs the resource manager with the vault type over TLS, on a
// SQLite store with one tenant, subscription, group and owner.
func vaultServer(t *testing.T) *client.Client {
	t.Helper()
	return armServer(t, armFixture{tenant: vTenant, sub: vSub, owner: vOwner, assignment: "4c2d3e4f-0000-4000-8000-000000000001",
		namespace: "Microsoft.KeyVault", groups: []string{"rg"}}, nil, func(_ context.Context, st keyhold.Store, a *arm.Server) {
		a.Register(keyvault.New(keyvault.Config{Store: st, PublicURL: "https://keyhold.test/"}).ResourceType())
	})
}

func TestVaultLifecycle(t *testing.T) {
	c := vaultServer(t)
	ctx := context.Background()
	v, err := c.CreateVault(ctx, vSub, "rg", "kv-client", client.Vault{Location: "westeurope", Properties: client.VaultProperties{
		TenantID: vTenant, SKU: client.VaultSKU{Family: "A", Name: "premium"}, EnablePurgeProtection: ptr(true), SoftDeleteRetentionInDays: ptr(7),
	}})
	if err != nil {
		t.Fatalf("CreateVault: %v", err)
	}
	if v.Properties.VaultURI != "https://keyhold.test/vaults/kv-client/" || !*v.Properties.EnablePurgeProtection || *v.Properties.SoftDeleteRetentionInDays != 7 {
		t.Errorf("created %+v", v)
	}
	_, err = c.CreateVault(ctx, vSub, "rg", "kv-bad", client.Vault{Location: "westeurope", Properties: client.VaultProperties{TenantID: vTenant, SKU: client.VaultSKU{Name: "standard"}, EnableSoftDelete: ptr(false)}})
	if client.StatusCode(err) != 400 {
		t.Errorf("soft delete off: %v", err)
	}

	ap := client.VaultAccessPolicy{TenantID: vTenant, ObjectID: vOID, Permissions: client.VaultPermissions{Keys: []string{"get", "wrapKey", "unwrapKey"}}}
	if err := c.UpdateAccessPolicies(ctx, vSub, "rg", "kv-client", client.AccessPolicyAdd, []client.VaultAccessPolicy{ap}); err != nil {
		t.Fatalf("UpdateAccessPolicies: %v", err)
	}
	if err := c.UpdateAccessPolicies(ctx, vSub, "rg", "kv-client", "merge", nil); err == nil {
		t.Error("an unknown update kind was sent")
	}
	got, err := c.FindVault(ctx, vSub, "KV-CLIENT")
	if err != nil {
		t.Fatalf("FindVault: %v", err)
	}
	if len(got.Properties.AccessPolicies) != 1 || !slices.Equal(got.Properties.AccessPolicies[0].Permissions.Keys, []string{"get", "unwrapKey", "wrapKey"}) {
		t.Errorf("policies %+v", got.Properties.AccessPolicies)
	}
	if _, err := c.FindVault(ctx, vSub, "kv-none"); !client.IsNotFound(err) {
		t.Errorf("FindVault of a missing vault: %v", err)
	}
	na, err := c.CheckVaultName(ctx, vSub, "kv-client")
	if err != nil || na.NameAvailable || na.Reason != "AlreadyExists" {
		t.Errorf("CheckVaultName: %+v %v", na, err)
	}

	if err := c.DeleteVault(ctx, vSub, "rg", "kv-client"); err != nil {
		t.Fatalf("DeleteVault: %v", err)
	}
	ds, err := c.ListDeletedVaults(ctx, vSub)
	if err != nil || len(ds) != 1 || ds[0].ResourceGroup() != "rg" || !ds[0].Properties.PurgeProtectionEnabled ||
		!ds[0].Properties.ScheduledPurgeDate.Equal(ds[0].Properties.DeletionDate.Add(7*24*time.Hour)) {
		t.Fatalf("ListDeletedVaults: %+v %v", ds, err)
	}
	if err := c.PurgeVault(ctx, vSub, "westeurope", "kv-client", nil); client.StatusCode(err) != 409 {
		t.Errorf("purge under purge protection: %v", err)
	}
	r, err := c.RecoverVault(ctx, vSub, vTenant, "kv-client")
	if err != nil {
		t.Fatalf("RecoverVault: %v", err)
	}
	if len(r.Properties.AccessPolicies) != 1 || r.Properties.SKU.Name != "premium" {
		t.Errorf("recovered %+v", r)
	}
	vs, err := c.ListVaults(ctx, vSub, "rg")
	if err != nil || len(vs) != 1 {
		t.Errorf("ListVaults: %+v %v", vs, err)
	}

	// Without purge protection, purge works.
	if _, err := c.CreateVault(ctx, vSub, "rg", "kv-temp", client.Vault{Location: "westeurope", Properties: client.VaultProperties{TenantID: vTenant, SKU: client.VaultSKU{Name: "standard"}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteVault(ctx, vSub, "rg", "kv-temp"); err != nil {
		t.Fatal(err)
	}
	if err := c.PurgeVault(ctx, vSub, "westeurope", "kv-temp", nil); err != nil {
		t.Fatalf("PurgeVault: %v", err)
	}
	if _, err := c.GetDeletedVault(ctx, vSub, "westeurope", "kv-temp"); !client.IsNotFound(err) {
		t.Errorf("GetDeletedVault after purge: %v", err)
	}
	if _, err := c.RecoverVault(ctx, vSub, vTenant, "kv-temp"); !client.IsNotFound(err) {
		t.Errorf("RecoverVault of a purged vault: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
