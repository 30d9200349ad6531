package keyvault

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"

	"github.com/keyhold/keyhold/internal/unitenv"
)

// vaultsClient returns the real armkeyvault client for principal, talking
// TLS to srv; its token is the principal's object id, which the harness's
// authentication turns back into the principal.
func vaultsClient(t *testing.T, srv *httptest.Server, principal, sub string) *armkeyvault.VaultsClient {
	t.Helper()
	c, err := armkeyvault.NewVaultsClient(sub, unitenv.Credential{TB: t, Token: principal, Audience: mgmtAudARM}, unitenv.ARMOptions(srv, mgmtAudARM))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sdkStatus returns the status and error code of an SDK error.
func sdkStatus(t *testing.T, err error) (int, string, string) {
	t.Helper()
	re := unitenv.ResponseError(t, err)
	return re.StatusCode, re.ErrorCode, err.Error()
}

func newVault(purgeProtection *bool, softDelete *bool, policies ...*armkeyvault.AccessPolicyEntry) armkeyvault.VaultCreateOrUpdateParameters {
	return armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("westeurope"),
		Tags:     map[string]*string{"purpose": to.Ptr("cmk")},
		Properties: &armkeyvault.VaultProperties{
			TenantID:              to.Ptr(mgmtTenant),
			SKU:                   &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			AccessPolicies:        policies,
			EnableSoftDelete:      softDelete,
			EnablePurgeProtection: purgeProtection,
		},
	}
}

func keyPerms(oid string, perms ...armkeyvault.KeyPermissions) *armkeyvault.AccessPolicyEntry {
	e := &armkeyvault.AccessPolicyEntry{TenantID: to.Ptr(mgmtTenant), ObjectID: to.Ptr(oid), Permissions: &armkeyvault.Permissions{}}
	for _, p := range perms {
		e.Permissions.Keys = append(e.Permissions.Keys, to.Ptr(p))
	}
	return e
}

// policyKeys returns each policy's object id and key permissions.
func policyKeys(ps []*armkeyvault.AccessPolicyEntry) map[string][]string {
	out := map[string][]string{}
	for _, p := range ps {
		var keys []string
		for _, k := range p.Permissions.Keys {
			keys = append(keys, string(*k))
		}
		out[*p.ObjectID] = keys
	}
	return out
}

func TestArmKeyVaultClient(t *testing.T) {
	e := newMgmtEnv(t)
	srv := httptest.NewTLSServer(e.h)
	t.Cleanup(srv.Close)
	ctx := context.Background()
	vaults := vaultsClient(t, srv, mgmtOwner, mgmtSub)

	// Create with purge protection.
	poller, err := vaults.BeginCreateOrUpdate(ctx, mgmtGroup, "kv-cmk", newVault(to.Ptr(true), nil, keyPerms(oidA, armkeyvault.KeyPermissionsGet)), nil)
	if err != nil {
		t.Fatalf("BeginCreateOrUpdate: %v", err)
	}
	created, err := poller.PollUntilDone(ctx, nil)
	if err != nil {
		t.Fatalf("PollUntilDone: %v", err)
	}
	p := created.Properties
	if *created.ID != mgmtVaultPath(mgmtSub, mgmtGroup, "kv-cmk") || *created.Name != "kv-cmk" || *created.Type != ResourceType || *created.Location != "westeurope" ||
		*p.VaultURI != mgmtBaseURL+"vaults/kv-cmk/" || !*p.EnableSoftDelete || *p.SoftDeleteRetentionInDays != 90 || !*p.EnablePurgeProtection ||
		*p.EnableRbacAuthorization || *p.ProvisioningState != armkeyvault.VaultProvisioningStateSucceeded || *p.SKU.Name != armkeyvault.SKUNameStandard ||
		*created.Tags["purpose"] != "cmk" || created.SystemData == nil || *created.SystemData.CreatedBy != "owner@contoso.keyhold" {
		t.Errorf("created %+v, properties %+v", created.Vault, p)
	}

	// Soft delete off and purge protection off are refused.
	for name, params := range map[string]armkeyvault.VaultCreateOrUpdateParameters{
		"soft delete off":      newVault(nil, to.Ptr(false)),
		"purge protection off": newVault(to.Ptr(false), nil),
	} {
		_, err := vaults.BeginCreateOrUpdate(ctx, mgmtGroup, "kv-refused", params, nil)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if status, code, _ := sdkStatus(t, err); status != 400 || code != "BadRequest" {
			t.Errorf("%s: %d %s", name, status, code)
		}
	}
	if _, err := vaults.Get(ctx, mgmtGroup, "kv-refused", nil); err == nil {
		t.Error("a refused vault exists")
	}

	// Retention cannot change; purge protection cannot be switched off.
	for name, patch := range map[string]armkeyvault.VaultPatchProperties{
		"retention":        {SoftDeleteRetentionInDays: to.Ptr[int32](30)},
		"purge protection": {EnablePurgeProtection: to.Ptr(false)},
	} {
		_, err := vaults.Update(ctx, mgmtGroup, "kv-cmk", armkeyvault.VaultPatchParameters{Properties: &patch}, nil)
		if err == nil {
			t.Errorf("changing %s was accepted", name)
		} else if status, code, msg := sdkStatus(t, err); status != 400 || code != "BadRequest" {
			t.Errorf("changing %s: %d %s %s", name, status, code, msg)
		}
	}
	updated, err := vaults.Update(ctx, mgmtGroup, "kv-cmk", armkeyvault.VaultPatchParameters{Tags: map[string]*string{"purpose": to.Ptr("cmk"), "owner": to.Ptr("kv-admin")}}, nil)
	if err != nil || len(updated.Tags) != 2 || !*updated.Properties.EnablePurgeProtection {
		t.Errorf("Update tags: %+v, %v", updated, err)
	}

	// Access policies through UpdateAccessPolicy.
	steps := []struct {
		kind armkeyvault.AccessPolicyUpdateKind
		ap   *armkeyvault.AccessPolicyEntry
		want map[string][]string
	}{
		{armkeyvault.AccessPolicyUpdateKindAdd, keyPerms(oidA, armkeyvault.KeyPermissionsWrapKey, armkeyvault.KeyPermissionsUnwrapKey),
			map[string][]string{oidA: {"get", "unwrapKey", "wrapKey"}}},
		{armkeyvault.AccessPolicyUpdateKindAdd, keyPerms(oidB, armkeyvault.KeyPermissionsList),
			map[string][]string{oidA: {"get", "unwrapKey", "wrapKey"}, oidB: {"list"}}},
		{armkeyvault.AccessPolicyUpdateKindRemove, keyPerms(oidA, armkeyvault.KeyPermissionsWrapKey),
			map[string][]string{oidA: {"get", "unwrapKey"}, oidB: {"list"}}},
		{armkeyvault.AccessPolicyUpdateKindReplace, keyPerms(oidB, armkeyvault.KeyPermissionsGet, armkeyvault.KeyPermissionsWrapKey, armkeyvault.KeyPermissionsUnwrapKey),
			map[string][]string{oidB: {"get", "unwrapKey", "wrapKey"}}},
	}
	for _, st := range steps {
		resp, err := vaults.UpdateAccessPolicy(ctx, mgmtGroup, "kv-cmk", st.kind, armkeyvault.VaultAccessPolicyParameters{
			Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{st.ap}}}, nil)
		if err != nil {
			t.Fatalf("UpdateAccessPolicy %s: %v", st.kind, err)
		}
		if *resp.Type != "Microsoft.KeyVault/vaults/accessPolicies" || len(resp.Properties.AccessPolicies) != 1 || *resp.Properties.AccessPolicies[0].ObjectID != *st.ap.ObjectID {
			t.Errorf("UpdateAccessPolicy %s answered %+v", st.kind, resp.VaultAccessPolicyParameters)
		}
		got, err := vaults.Get(ctx, mgmtGroup, "kv-cmk", nil)
		if err != nil {
			t.Fatal(err)
		}
		if g := policyKeys(got.Properties.AccessPolicies); !mapsEqual(g, st.want) {
			t.Errorf("after %s: %v, want %v", st.kind, g, st.want)
		}
	}
	_, err = vaults.UpdateAccessPolicy(ctx, mgmtGroup, "kv-cmk", armkeyvault.AccessPolicyUpdateKindAdd, armkeyvault.VaultAccessPolicyParameters{
		Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{keyPerms(oidA, "launch")}}}, nil)
	if err == nil {
		t.Error("an unknown permission was accepted")
	} else if status, _, msg := sdkStatus(t, err); status != 400 || !strings.Contains(msg, "'launch'") {
		t.Errorf("unknown permission: %d %s", status, msg)
	}

	// Lists: by group, by subscription, and through /resources.
	if _, err := vaults.BeginCreateOrUpdate(ctx, mgmtGroup2, "kv-second", newVault(nil, nil), nil); err != nil {
		t.Fatal(err)
	}
	var byGroup, bySub, all []string
	for pager := vaults.NewListByResourceGroupPager(mgmtGroup, nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListByResourceGroup: %v", err)
		}
		for _, v := range page.Value {
			byGroup = append(byGroup, *v.Name)
		}
	}
	for pager := vaults.NewListBySubscriptionPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListBySubscription: %v", err)
		}
		for _, v := range page.Value {
			bySub = append(bySub, *v.Name)
			if v.Properties == nil || v.Properties.VaultURI == nil {
				t.Errorf("listed vault without properties: %+v", v)
			}
		}
	}
	for pager := vaults.NewListPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, v := range page.Value {
			all = append(all, *v.Name)
		}
	}
	slices.Sort(bySub)
	slices.Sort(all)
	if !slices.Equal(byGroup, []string{"kv-cmk"}) || !slices.Equal(bySub, []string{"kv-cmk", "kv-second"}) || !slices.Equal(all, []string{"kv-cmk", "kv-second"}) {
		t.Errorf("lists: by group %v, by subscription %v, resources %v", byGroup, bySub, all)
	}

	// checkNameAvailability.
	for _, tt := range []struct {
		name      string
		available bool
		reason    armkeyvault.Reason
	}{{"kv-cmk", false, armkeyvault.ReasonAlreadyExists}, {"kv-fresh", true, ""}, {"-bad", false, armkeyvault.ReasonAccountNameInvalid}} {
		res, err := vaults.CheckNameAvailability(ctx, armkeyvault.VaultCheckNameAvailabilityParameters{Name: to.Ptr(tt.name), Type: to.Ptr("Microsoft.KeyVault/vaults")}, nil)
		if err != nil {
			t.Fatalf("CheckNameAvailability(%s): %v", tt.name, err)
		}
		if *res.NameAvailable != tt.available || (res.Reason != nil) == tt.available || res.Reason != nil && *res.Reason != tt.reason {
			t.Errorf("CheckNameAvailability(%s) = %+v", tt.name, res.CheckNameAvailabilityResult)
		}
	}

	// Delete, list deleted, get deleted, recover, delete again, purge refused.
	if _, err := vaults.Delete(ctx, mgmtGroup, "kv-cmk", nil); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	var deleted []*armkeyvault.DeletedVault
	for pager := vaults.NewListDeletedPager(nil); pager.More(); {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListDeleted: %v", err)
		}
		deleted = append(deleted, page.Value...)
	}
	if len(deleted) != 1 || *deleted[0].Name != "kv-cmk" || *deleted[0].Properties.VaultID != mgmtVaultPath(mgmtSub, mgmtGroup, "kv-cmk") {
		t.Fatalf("deleted vaults %+v", deleted)
	}
	dv, err := vaults.GetDeleted(ctx, "kv-cmk", "westeurope", nil)
	if err != nil {
		t.Fatalf("GetDeleted: %v", err)
	}
	dp := dv.Properties
	if !*dp.PurgeProtectionEnabled || *dp.Location != "westeurope" || !dp.ScheduledPurgeDate.Equal(dp.DeletionDate.Add(90*24*time.Hour)) || *dp.Tags["owner"] != "kv-admin" {
		t.Errorf("GetDeleted %+v", dp)
	}
	if _, err := vaults.BeginCreateOrUpdate(ctx, mgmtGroup, "kv-cmk", newVault(to.Ptr(true), nil), nil); err == nil {
		t.Error("a vault was created over its deleted namesake")
	} else if status, code, _ := sdkStatus(t, err); status != 409 || code != "ConflictError" {
		t.Errorf("create over deleted namesake: %d %s", status, code)
	}
	rec := newVault(nil, nil)
	rec.Properties.CreateMode = to.Ptr(armkeyvault.CreateModeRecover)
	rp, err := vaults.BeginCreateOrUpdate(ctx, mgmtGroup, "kv-cmk", rec, nil)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	recovered, err := rp.PollUntilDone(ctx, nil)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	if !*recovered.Properties.EnablePurgeProtection || !mapsEqual(policyKeys(recovered.Properties.AccessPolicies), map[string][]string{oidB: {"get", "unwrapKey", "wrapKey"}}) ||
		*recovered.Tags["owner"] != "kv-admin" {
		t.Errorf("recovered %+v", recovered.Properties)
	}
	if _, err := vaults.GetDeleted(ctx, "kv-cmk", "westeurope", nil); err == nil {
		t.Error("the recovered vault is still listed as deleted")
	}
	if _, err := vaults.Delete(ctx, mgmtGroup, "kv-cmk", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := vaults.BeginPurgeDeleted(ctx, "kv-cmk", "westeurope", nil); err == nil {
		t.Error("purge under purge protection was accepted")
	} else if status, _, msg := sdkStatus(t, err); status != 409 || !strings.Contains(msg, "Operation 'DeletedVaultPurge' is not allowed.") {
		t.Errorf("purge under purge protection: %d %s", status, msg)
	}

	// A vault without purge protection can be purged.
	if _, err := vaults.Delete(ctx, mgmtGroup2, "kv-second", nil); err != nil {
		t.Fatal(err)
	}
	pp, err := vaults.BeginPurgeDeleted(ctx, "kv-second", "westeurope", nil)
	if err != nil {
		t.Fatalf("BeginPurgeDeleted: %v", err)
	}
	if _, err := pp.PollUntilDone(ctx, nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, err := vaults.GetDeleted(ctx, "kv-second", "westeurope", nil); err == nil {
		t.Error("the purged vault is still there")
	} else if status, _, _ := sdkStatus(t, err); status != 404 {
		t.Errorf("GetDeleted after purge: %d", status)
	}

	// A Reader gets 403 on PUT.
	readerVaults := vaultsClient(t, srv, mgmtReader, mgmtSub)
	if _, err := readerVaults.BeginCreateOrUpdate(ctx, mgmtGroup, "kv-reader", newVault(nil, nil), nil); err == nil {
		t.Error("a Reader created a vault")
	} else if status, code, _ := sdkStatus(t, err); status != 403 || code != "AuthorizationFailed" {
		t.Errorf("Reader PUT: %d %s", status, code)
	}
	if _, err := readerVaults.UpdateAccessPolicy(ctx, mgmtGroup, "kv-cmk", armkeyvault.AccessPolicyUpdateKindAdd, armkeyvault.VaultAccessPolicyParameters{
		Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{keyPerms(mgmtReader, armkeyvault.KeyPermissionsGet)}}}, nil); err == nil {
		t.Error("a Reader changed access policies")
	} else if status, _, _ := sdkStatus(t, err); status != 403 {
		t.Errorf("Reader UpdateAccessPolicy: %d", status)
	}
	if _, err := readerVaults.GetDeleted(ctx, "kv-cmk", "westeurope", nil); err != nil {
		t.Errorf("a Reader cannot read deleted vaults: %v", err)
	}
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}
