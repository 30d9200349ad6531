package policy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// healthE2E is a real server over TLS with the real Azure SDK clients, a
// vault with an RSA key and an Encryption policy pointing at it. Its health
// probes are an hour apart, so that every change of health seen within a
// test came from an event.
type healthE2E struct {
	*testenv.Env
	generic   *armresources.Client
	vaults    *armkeyvault.VaultsClient
	keys      *azkeys.Client
	kvc       *client.Client
	policyID  string
	principal string
	tenant    string
}

const (
	heGroup = "rg-cmk"
	heVault = "kv-contoso-cmk"
)

func newHealthE2E(tb testing.TB) *healthE2E {
	tb.Helper()
	ctx := context.Background()
	e := &healthE2E{Env: testenv.Start(tb, testenv.WithConfig(func(c *server.Config) {
		c.HealthInterval, c.HealthUnhealthyInterval = time.Hour, time.Hour
	}))}
	srv := e.Server
	cred, opts := e.ServicePrincipal(), e.ARMOptions()
	sub := e.Boot.SubscriptionID
	e.tenant = e.Boot.TenantID

	groups, err := armresources.NewResourceGroupsClient(sub, cred, opts)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := groups.CreateOrUpdate(ctx, heGroup, armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		tb.Fatalf("create group: %v", err)
	}
	if e.generic, err = armresources.NewClient(sub, cred, opts); err != nil {
		tb.Fatal(err)
	}
	if e.vaults, err = armkeyvault.NewVaultsClient(sub, cred, opts); err != nil {
		tb.Fatal(err)
	}

	// The vault as the seed asks for it: soft delete and purge protection,
	// with the deploying principal allowed to manage keys.
	tenant := e.Boot.TenantID
	vp, err := e.vaults.BeginCreateOrUpdate(ctx, heGroup, heVault, armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("westus"),
		Properties: &armkeyvault.VaultProperties{
			TenantID: &tenant, SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableSoftDelete: to.Ptr(true), EnablePurgeProtection: to.Ptr(true),
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: &tenant, ObjectID: to.Ptr(srv.Bootstrap().ServicePrincipalID),
				Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}}}},
		},
	}, nil)
	if err != nil {
		tb.Fatalf("create vault: %v", err)
	}
	vault, err := vp.PollUntilDone(ctx, &azruntimePoll)
	if err != nil {
		tb.Fatalf("create vault: %v", err)
	}

	// The key, through the real azkeys client; its challenge names the
	// vault audience, whose host is not the vault URL's.
	e.keys, err = azkeys.NewClient(strings.TrimSuffix(*vault.Properties.VaultURI, "/"), cred,
		&azkeys.ClientOptions{ClientOptions: e.ClientOptions(), DisableChallengeResourceVerification: true})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.keys.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil); err != nil {
		tb.Fatalf("create key: %v", err)
	}

	// The seed's policy, through the generic client as the deployment's
	// script reads it back.
	e.policyID = "/subscriptions/" + sub + "/resourceGroups/" + heGroup + "/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso"
	pp, err := e.generic.BeginCreateOrUpdateByID(ctx, e.policyID, "2020-10-30", armresources.GenericResource{
		Location: to.Ptr("unitedstates"), Kind: to.Ptr("Encryption"),
		Identity: &armresources.Identity{Type: to.Ptr(armresources.ResourceIdentityTypeSystemAssigned)},
		Properties: map[string]any{"lockbox": nil, "networkInjection": nil, "encryption": map[string]any{
			"state": "Enabled", "keyVault": map[string]any{"id": *vault.ID, "key": map[string]any{"name": "cmk"}}}},
	}, nil)
	if err != nil {
		tb.Fatalf("create policy: %v", err)
	}
	created, err := pp.PollUntilDone(ctx, &azruntimePoll)
	if err != nil {
		tb.Fatalf("create policy: %v", err)
	}
	e.principal = *created.Identity.PrincipalID

	// Keyhold's own client, for the validation endpoint.
	kc, err := client.New(client.Config{Server: srv.URL(), CAFile: e.Boot.CACertFile})
	if err != nil {
		tb.Fatal(err)
	}
	e.kvc = kc.WithTokens(client.NewCredentialSource(kc, tenant,
		client.Credential{ClientID: e.Boot.ClientID, ClientSecret: keyhold.NewSecret([]byte(e.Boot.ClientSecret))}, time.Now))
	return e
}

// grant and revoke change the identity's access policy through armkeyvault.
func (e *healthE2E) setAccess(tb testing.TB, kind armkeyvault.AccessPolicyUpdateKind) {
	tb.Helper()
	_, err := e.vaults.UpdateAccessPolicy(context.Background(), heGroup, heVault, kind, armkeyvault.VaultAccessPolicyParameters{
		Properties: &armkeyvault.VaultAccessPolicyProperties{AccessPolicies: []*armkeyvault.AccessPolicyEntry{{
			TenantID: to.Ptr(e.tenant), ObjectID: to.Ptr(e.principal),
			Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{
				to.Ptr(armkeyvault.KeyPermissionsGet), to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}},
		}}},
	}, nil)
	if err != nil {
		tb.Fatalf("access policy %s: %v", kind, err)
	}
}

// health reads the policy's healthStatus and healthDetail through the
// generic get-by-id.
func (e *healthE2E) health(tb testing.TB) (string, map[string]any) {
	tb.Helper()
	got, err := e.generic.GetByID(context.Background(), e.policyID, "2020-10-30", nil)
	if err != nil {
		tb.Fatalf("GetByID: %v", err)
	}
	props, _ := got.Properties.(map[string]any)
	status, _ := props["healthStatus"].(string)
	detail, _ := props["healthDetail"].(map[string]any)
	return status, detail
}

// waitHealth polls the policy every 20 ms until its health is want, and
// returns the reason. The 10 s limit is generous on purpose: the test proves
// that the change happens (probes are an hour apart, so only an event can
// make it), the benchmark measures how fast.
func (e *healthE2E) waitHealth(tb testing.TB, want string) string {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		status, detail := e.health(tb)
		if status == want {
			reason, _ := detail["reason"].(string)
			return reason
		}
		if time.Now().After(deadline) {
			tb.Fatalf("health is %s (%v), want %s", status, detail, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthFollowsKeyAccessWithRealClients(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	e := newHealthE2E(t)
	ctx := context.Background()

	// Without any access the identity cannot use the key.
	reason := e.waitHealth(t, "Unhealthy")
	if want := "identity " + e.principal + " lacks get, wrapKey and unwrapKey on vault " + heVault; !strings.Contains(reason, want) {
		t.Errorf("reason %q, want %q", reason, want)
	}

	e.setAccess(t, armkeyvault.AccessPolicyUpdateKindAdd)
	e.waitHealth(t, "Healthy")
	v, err := e.kvc.ValidatePolicy(ctx, e.policyID)
	if err != nil {
		t.Fatalf("ValidatePolicy: %v", err)
	}
	if !v.Passed || v.HealthStatus != "Healthy" || len(v.Checks) < 10 {
		t.Errorf("validation of a healthy policy = %+v", v)
	}

	steps := []struct {
		name        string
		revoke      func(t *testing.T)
		reason      string
		restore     func(t *testing.T)
		failedCheck string
	}{
		{"access policy removed", func(t *testing.T) { e.setAccess(t, armkeyvault.AccessPolicyUpdateKindRemove) },
			"identity " + e.principal + " lacks get, wrapKey and unwrapKey on vault " + heVault,
			func(t *testing.T) { e.setAccess(t, armkeyvault.AccessPolicyUpdateKindAdd) }, "KeyPermissions"},
		{"key disabled", func(t *testing.T) { e.setKeyEnabled(t, false) }, "is disabled",
			func(t *testing.T) { e.setKeyEnabled(t, true) }, "KeyEnabled"},
		{"key deleted", func(t *testing.T) {
			if _, err := e.keys.DeleteKey(ctx, "cmk", nil); err != nil {
				t.Fatalf("DeleteKey: %v", err)
			}
		}, "key cmk in vault " + heVault + " is deleted", func(t *testing.T) {
			if _, err := e.keys.RecoverDeletedKey(ctx, "cmk", nil); err != nil {
				t.Fatalf("RecoverDeletedKey: %v", err)
			}
		}, "KeyExists"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.revoke(t)
			reason := e.waitHealth(t, "Unhealthy")
			if !strings.Contains(reason, st.reason) {
				t.Errorf("reason %q, want it to contain %q", reason, st.reason)
			}
			if _, detail := e.health(t); detail["definite"] != true {
				t.Errorf("healthDetail %v, want a definite failure", detail)
			}
			v, err := e.kvc.ValidatePolicy(ctx, e.policyID)
			if err != nil {
				t.Fatalf("ValidatePolicy: %v", err)
			}
			var failed []string
			for _, c := range v.Failed() {
				failed = append(failed, c.Name)
				if c.Fix == "" {
					t.Errorf("check %s failed without a fix", c.Name)
				}
			}
			if v.Passed || len(failed) == 0 || failed[0] != st.failedCheck {
				t.Errorf("validation failed %v, want %s first", failed, st.failedCheck)
			}
			st.restore(t)
			e.waitHealth(t, "Healthy")
		})
	}
	if n := e.Server.Health().Checks(); n > 40 {
		t.Errorf("%d checks for a handful of changes: the monitor checks far more than the events ask for", n)
	}
}

func (e *healthE2E) setKeyEnabled(tb testing.TB, enabled bool) {
	tb.Helper()
	if _, err := e.keys.UpdateKey(context.Background(), "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(enabled)}}, nil); err != nil {
		tb.Fatalf("UpdateKey enabled=%v: %v", enabled, err)
	}
}

// BenchmarkRevocationToUnhealthy measures how long a policy takes to turn
// Unhealthy after its identity's access policy is removed through
// armkeyvault, as a client polling the policy every 20 ms sees it: from the
// start of the revoking call to the first GET that shows Unhealthy. Probes
// are an hour apart, so the figure is the event path's.
func BenchmarkRevocationToUnhealthy(b *testing.B) {
	e := newHealthE2E(b)
	e.setAccess(b, armkeyvault.AccessPolicyUpdateKindAdd)
	e.waitHealth(b, "Healthy")
	var total time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		e.setAccess(b, armkeyvault.AccessPolicyUpdateKindRemove)
		e.waitHealth(b, "Unhealthy")
		total += time.Since(start)
		b.StopTimer()
		e.setAccess(b, armkeyvault.AccessPolicyUpdateKindAdd)
		e.waitHealth(b, "Healthy")
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/revocation")
}
