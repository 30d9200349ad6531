package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/seal"
)

const (
	pTenant = "5c2d3e4f-0000-4000-8000-00000000000a"
	pSub    = "6c2d3e4f-0000-4000-8000-00000000000a"
	pOwner  = "7c2d3e4f-0000-4000-8000-000000000001"
	pVault  = "kv-policies"
)

var pVaultID = "/subscriptions/" + pSub + "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/" + pVault

// ownerTokens hands out the owner's id as the token; the server maps it back.
var ownerTokens = principalTokens(pOwner)

// linkedEnvs is a LinkChecker that links every policy named "ep-linked".
type linkedEnvs struct{}

func (linkedEnvs) LinkedEnvironments(_ context.Context, id string) ([]string, error) {
	if strings.HasSuffix(strings.ToLower(id), "/ep-linked") {
		return []string{"env-sales"}, nil
	}
	return nil, nil
}

// policyServer runs the resource manager with the policy type over TLS, on
// a SQLite store with one tenant, subscription, two groups, a vault with a
// key, and an owner.
func policyServer(t *testing.T) *client.Client {
	t.Helper()
	vaultProps, _ := json.Marshal(keyvault.Properties{TenantID: pTenant, SKU: keyvault.SKU{Family: "A", Name: "standard"}})
	return armServer(t, armFixture{tenant: pTenant, sub: pSub, owner: pOwner, assignment: "8c2d3e4f-0000-4000-8000-000000000001",
		namespace: policy.Namespace, groups: []string{"rg-a", "rg-b", "rg-kv"}}, func(ctx context.Context, st keyhold.Store, now time.Time) []error {
		return []error{
			st.PutResource(ctx, &keyhold.Resource{ID: pVaultID, SubscriptionID: pSub, ResourceGroup: "rg-kv", Type: keyvault.ResourceType, Name: pVault, Location: "westeurope", Properties: vaultProps}),
			st.CreateKeyVersion(ctx, &keyhold.KeyVersion{VaultName: pVault, Name: "cmk", Version: "0123456789abcdef0123456789abcdef", Kty: "RSA", KeySize: 2048,
				KeyOps: []string{"wrapKey", "unwrapKey"}, PublicJWK: json.RawMessage(`{}`), Enabled: true, CreatedAt: now, UpdatedAt: now}),
		}
	}, func(ctx context.Context, st keyhold.Store, a *arm.Server) {
		key, err := seal.NewKey(seal.GenerateMasterKey())
		if err != nil {
			t.Fatal(err)
		}
		ids, err := identity.New(ctx, st, key, identity.Config{PublicURL: "https://keyhold.test/"})
		if err != nil {
			t.Fatal(err)
		}
		a.Register(policy.New(policy.Config{Store: st, Identity: ids, Links: linkedEnvs{}}).ResourceType())
	})
}

func cmkPolicy() client.EnterprisePolicy {
	return client.EnterprisePolicy{
		Location: "europe", Kind: "Encryption",
		Identity: &client.EnterprisePolicyIdentity{Type: "SystemAssigned"},
		Properties: client.EnterprisePolicyProperties{Encryption: &client.PolicyEncryption{
			State: "Enabled", KeyVault: &client.PolicyKeyVault{ID: pVaultID, Key: client.PolicyKey{Name: "cmk"}},
		}},
	}
}

func TestPolicyLifecycle(t *testing.T) {
	c := policyServer(t)
	ctx := context.Background()
	id := client.PolicyID(pSub, "rg-a", "ep-contoso")
	p, err := c.PutPolicy(ctx, id, cmkPolicy())
	if err != nil {
		t.Fatalf("PutPolicy: %v", err)
	}
	if p.ID != id || p.PrincipalID() == "" || p.Identity.SystemAssignedIdentityPrincipalID != p.PrincipalID() || p.Identity.TenantID != pTenant ||
		p.Properties.HealthStatus != "Undetermined" || !strings.HasPrefix(p.Properties.SystemID, "/regions/europe/") || p.ResourceGroup() != "rg-a" {
		t.Errorf("created %+v", p)
	}
	got, err := c.GetPolicy(ctx, id)
	if err != nil || got.PrincipalID() != p.PrincipalID() || got.Properties.Encryption.KeyVault.Key.Name != "cmk" {
		t.Fatalf("GetPolicy = %+v, %v", got, err)
	}
	if _, err := c.PutPolicy(ctx, client.PolicyID(pSub, "rg-b", "ep-contoso"), cmkPolicy()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutPolicy(ctx, client.PolicyID(pSub, "rg-b", "ep-other"), cmkPolicy()); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		group string
		want  []string
	}{
		{"subscription", "", []string{"rg-a/ep-contoso", "rg-b/ep-contoso", "rg-b/ep-other"}},
		{"group", "rg-b", []string{"rg-b/ep-contoso", "rg-b/ep-other"}},
		{"empty group", "rg-kv", nil},
	}
	for _, tt := range tests {
		t.Run("list "+tt.name, func(t *testing.T) {
			ps, err := c.ListPolicies(ctx, pSub, tt.group)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.ResourceGroup()+"/"+p.Name)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("ListPolicies(%q) = %v, want %v", tt.group, got, tt.want)
			}
		})
	}

	if f, err := c.FindPolicy(ctx, pSub, "EP-OTHER"); err != nil || f.ResourceGroup() != "rg-b" {
		t.Errorf("FindPolicy(EP-OTHER) = %+v, %v", f, err)
	}
	if _, err := c.FindPolicy(ctx, pSub, "ep-contoso"); !errors.Is(err, client.ErrAmbiguousPolicy) || !strings.Contains(err.Error(), "rg-a, rg-b") {
		t.Errorf("FindPolicy(ep-contoso) = %v, want ambiguous naming both groups", err)
	}
	if _, err := c.FindPolicy(ctx, pSub, "ep-none"); !client.IsNotFound(err) {
		t.Errorf("FindPolicy(ep-none) = %v, want 404", err)
	}

	bad := cmkPolicy()
	bad.Location = "westus"
	if _, err := c.PutPolicy(ctx, client.PolicyID(pSub, "rg-a", "ep-bad"), bad); client.StatusCode(err) != 400 || !strings.Contains(err.Error(), "unitedstates") {
		t.Errorf("PutPolicy in westus = %v", err)
	}

	linked := client.PolicyID(pSub, "rg-a", "ep-linked")
	if _, err := c.PutPolicy(ctx, linked, cmkPolicy()); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePolicy(ctx, linked); client.StatusCode(err) != 409 || !strings.Contains(err.Error(), "env-sales") {
		t.Errorf("DeletePolicy(linked) = %v, want 409 naming env-sales", err)
	}
	if err := c.DeletePolicy(ctx, id); err != nil {
		t.Fatalf("DeletePolicy: %v", err)
	}
	if _, err := c.GetPolicy(ctx, id); !client.IsNotFound(err) {
		t.Errorf("GetPolicy after delete = %v", err)
	}
	if err := c.DeletePolicy(ctx, id); err != nil {
		t.Errorf("DeletePolicy twice = %v", err)
	}
}

func TestPolicyIDs(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/ep", true},
		{"/SUBSCRIPTIONS/s/resourcegroups/rg/providers/microsoft.powerplatform/ENTERPRISEPOLICIES/ep/", true},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", false},
		{"/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies", false},
		{"ep-contoso", false},
	}
	for _, tt := range tests {
		if got := client.IsPolicyID(tt.id); got != tt.want {
			t.Errorf("IsPolicyID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
	c, err := client.New(client.Config{Server: "https://127.0.0.1:1/", Tokens: ownerTokens})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.GetPolicy(ctx, "ep-contoso"); err == nil || !strings.Contains(err.Error(), "not an enterprise policy id") {
		t.Errorf("GetPolicy(name) = %v", err)
	}
	if err := c.DeletePolicy(ctx, pVaultID); err == nil {
		t.Error("DeletePolicy of a vault id was sent")
	}
}
