package environment_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/environment"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

// revocationRig is a real server with an environment linked to an
// Encryption policy whose identity holds get, wrapKey and unwrapKey on a
// built-in vault's RSA key, set up as the seed's administrators do it with
// the real Azure SDK clients.
type revocationRig struct {
	e        *testenv.Env
	vaults   *armkeyvault.VaultsClient
	access   armkeyvault.VaultAccessPolicyParameters
	policyID string
	envID    string
	admin    *keyhold.Caller // the Global Administrator, for Service.Open
	bap      *client.Client  // signed in as the Global Administrator
}

const (
	rigGroup = "rg-lock"
	rigVault = "kv-lock"
)

// rigTokens issues tokens for p straight from the server's identity service.
type rigTokens struct {
	e *testenv.Env
	p *keyhold.Principal
}

func (t rigTokens) Token(_ context.Context, aud string) (string, error) {
	return t.e.IssueToken(t.p, aud), nil
}

func newRevocationRig(tb testing.TB) *revocationRig {
	tb.Helper()
	ctx := context.Background()
	e := testenv.Start(tb, testenv.WithConfig(func(c *server.Config) {
		// Revocation arrives as an event at once; the short interval only
		// brings a restored policy back to Healthy between iterations.
		c.HealthUnhealthyInterval = 100 * time.Millisecond
	}))
	sub, tenant := e.Boot.SubscriptionID, e.Boot.TenantID
	owner, opts := e.ServicePrincipal(), e.ARMOptions()

	groups, _ := armresources.NewResourceGroupsClient(sub, owner, opts)
	if _, err := groups.CreateOrUpdate(ctx, rigGroup, armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
		tb.Fatal(err)
	}
	providers, _ := armresources.NewProvidersClient(sub, owner, opts)
	if _, err := providers.Register(ctx, "Microsoft.PowerPlatform", nil); err != nil {
		tb.Fatal(err)
	}
	testenv.WaitFor(tb, 10*time.Second, "provider registered", func() bool {
		p, err := providers.Get(ctx, "Microsoft.PowerPlatform", nil)
		return err == nil && *p.RegistrationState == "Registered"
	})

	vaults, _ := armkeyvault.NewVaultsClient(sub, owner, opts)
	vp, err := vaults.BeginCreateOrUpdate(ctx, rigGroup, rigVault, armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("westus"),
		Properties: &armkeyvault.VaultProperties{
			TenantID: to.Ptr(tenant), SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableSoftDelete: to.Ptr(true), EnablePurgeProtection: to.Ptr(true),
			AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: to.Ptr(e.Server.Bootstrap().ServicePrincipalID),
				Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{to.Ptr(armkeyvault.KeyPermissionsAll)}}}},
		},
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	vault, err := vp.PollUntilDone(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	keys, err := azkeys.NewClient(strings.Replace(e.Boot.VaultURLTemplate, "{name}", rigVault, 1), owner,
		&azkeys.ClientOptions{ClientOptions: e.ClientOptions(), DisableChallengeResourceVerification: true})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := keys.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048))}, nil); err != nil {
		tb.Fatal(err)
	}

	generic, _ := armresources.NewClient(sub, owner, opts)
	policyID := "/subscriptions/" + sub + "/resourceGroups/" + rigGroup + "/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-lock"
	pp, err := generic.BeginCreateOrUpdateByID(ctx, policyID, "2020-10-30", armresources.GenericResource{
		Location: to.Ptr("unitedstates"), Kind: to.Ptr("Encryption"),
		Identity: &armresources.Identity{Type: to.Ptr(armresources.ResourceIdentityTypeSystemAssigned)},
		Properties: map[string]any{"encryption": map[string]any{"state": "Enabled",
			"keyVault": map[string]any{"id": *vault.ID, "key": map[string]any{"name": "cmk"}}}},
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	pol, err := pp.PollUntilDone(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	systemID := pol.Properties.(map[string]any)["systemId"].(string)

	r := &revocationRig{e: e, vaults: vaults, policyID: policyID}
	r.access = armkeyvault.VaultAccessPolicyParameters{Properties: &armkeyvault.VaultAccessPolicyProperties{
		AccessPolicies: []*armkeyvault.AccessPolicyEntry{{TenantID: to.Ptr(tenant), ObjectID: pol.Identity.PrincipalID,
			Permissions: &armkeyvault.Permissions{Keys: []*armkeyvault.KeyPermissions{
				to.Ptr(armkeyvault.KeyPermissionsGet), to.Ptr(armkeyvault.KeyPermissionsWrapKey), to.Ptr(armkeyvault.KeyPermissionsUnwrapKey)}}}},
	}}
	r.restore(tb)

	// The Global Administrator is Owner of the subscription, so Reader on
	// the policy, and a platform administrator.
	adminP, err := e.Server.Store().GetPrincipal(ctx, e.Server.Bootstrap().AdminID)
	if err != nil {
		tb.Fatal(err)
	}
	r.admin = &keyhold.Caller{Principal: adminP, TenantID: tenant}
	if r.bap, err = client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP, Tokens: rigTokens{e, adminP}}); err != nil {
		tb.Fatal(err)
	}
	env, err := r.bap.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Lock", Region: "unitedstates", Type: client.EnvironmentSandbox, Managed: true})
	if err != nil {
		tb.Fatal(err)
	}
	r.envID = env.Name
	r.link(tb, systemID)
	return r
}

// link adds the environment to the policy through the BAP route, as
// Microsoft's scripts call it, and follows operation-location to the end.
func (r *revocationRig) link(tb testing.TB, systemID string) {
	tb.Helper()
	tok := r.e.IssueToken(r.admin.Principal, client.AudienceBAP)
	resp, b := r.e.Do("POST", "/"+client.BAPPrefix+"environments/"+r.envID+"/enterprisePolicies/Encryption/link?api-version="+environment.LifecycleAPIVersion,
		tok, map[string]string{"SystemId": systemID}, nil)
	if resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("link: %d %s", resp.StatusCode, b)
	}
	loc := resp.Header.Get("operation-location")
	var op environment.OperationView
	testenv.WaitFor(tb, 30*time.Second, "link operation", func() bool {
		r.e.Do("GET", loc, tok, nil, &op)
		return op.State.ID == keyhold.OpSucceeded || op.State.ID == keyhold.OpFailed
	})
	if op.State.ID != keyhold.OpSucceeded {
		tb.Fatalf("link operation %s: %+v", op.State.ID, op.Error)
	}
}

func (r *revocationRig) setAccess(tb testing.TB, kind armkeyvault.AccessPolicyUpdateKind) {
	tb.Helper()
	if _, err := r.vaults.UpdateAccessPolicy(context.Background(), rigGroup, rigVault, kind, r.access, nil); err != nil {
		tb.Fatal(err)
	}
}

// revoke removes the policy identity's access policy from the vault.
func (r *revocationRig) revoke(tb testing.TB) {
	r.setAccess(tb, armkeyvault.AccessPolicyUpdateKindRemove)
}

// restore gives the identity its access back and waits for the policy to be
// Healthy again.
func (r *revocationRig) restore(tb testing.TB) {
	tb.Helper()
	r.setAccess(tb, armkeyvault.AccessPolicyUpdateKindAdd)
	testenv.WaitFor(tb, 30*time.Second, "policy Healthy", func() bool {
		p, err := r.e.Server.Policies().Get(context.Background(), r.policyID)
		return err == nil && p.Properties.HealthStatus == "Healthy"
	})
}

// open is the data path's gate for the Global Administrator.
func (r *revocationRig) open() error {
	_, err := r.e.Server.Environments().Open(context.Background(), r.admin, r.envID, false)
	return err
}

func isLocked(err error) bool {
	var ke *keyhold.Error
	return errors.As(err, &ke) && ke.Detail == environment.DetailEnvironmentLocked
}

// TestRevocationLocksAndReenableUnlocks removes the policy identity's
// access with the real armkeyvault client: the data API and the data path
// refuse with EnvironmentLocked and the environment shows why; re-enabling
// is refused until access is back, then every row reads as before.
func TestRevocationLocksAndReenableUnlocks(t *testing.T) {
	ctx := context.Background()
	r := newRevocationRig(t)
	c := r.bap
	if _, err := c.CreateTable(ctx, r.envID, client.DataTable{Name: "account", Columns: []client.DataColumn{{Name: "name", Type: "String"}}}); err != nil {
		t.Fatal(err)
	}
	row, err := c.CreateRow(ctx, r.envID, "account", client.DataRow{"name": "Contoso confidential"})
	if err != nil {
		t.Fatal(err)
	}
	rowID := row["accountid"].(string)
	if err := r.open(); err != nil {
		t.Fatalf("Open before revocation: %v", err)
	}

	r.revoke(t)
	testenv.WaitFor(t, 10*time.Second, "Open refused", func() bool { return isLocked(r.open()) })
	_, err = c.GetRow(ctx, r.envID, "account", rowID)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != environment.DetailEnvironmentLocked || !strings.Contains(ce.Message, "ep-lock") {
		t.Errorf("data request after revocation: %v, want EnvironmentLocked naming the policy", err)
	}
	testenv.WaitFor(t, 10*time.Second, "environment Disabled", func() bool {
		env, err := c.GetEnvironment(ctx, r.envID)
		return err == nil && env.Locked()
	})
	env, _ := c.GetEnvironment(ctx, r.envID)
	if reason := env.Properties.States.Runtime.Reason; !strings.HasPrefix(reason, "Environment disabled") {
		t.Errorf("locked environment's reason = %q", reason)
	}

	// Access still removed: re-enabling is refused, saying why.
	_, err = c.ReenableEnvironment(ctx, r.envID)
	if !errors.As(err, &ce) || ce.StatusCode != http.StatusConflict {
		t.Errorf("re-enable before access is restored: %v, want 409", err)
	}

	r.restore(t)
	if !isLocked(r.open()) {
		t.Errorf("restored access re-enabled the environment without an administrator (auto re-enable is off)")
	}
	if env, err = c.ReenableEnvironment(ctx, r.envID); err != nil || env.Locked() {
		t.Fatalf("re-enable: %+v, %v", env, err)
	}
	if err := r.open(); err != nil {
		t.Errorf("Open after re-enable: %v", err)
	}
	got, err := c.GetRow(ctx, r.envID, "account", rowID)
	if err != nil || got["name"] != "Contoso confidential" {
		t.Errorf("row after re-enable = %v, %v", got, err)
	}
	hist, err := c.EnvironmentHistory(ctx, r.envID)
	if err != nil || len(hist) < 3 || !strings.HasPrefix(hist[0].TypeDisplayName, "Re-enable") || !strings.HasPrefix(hist[1].TypeDisplayName, "Disable") {
		t.Errorf("history = %+v, %v", hist, err)
	}
}

// BenchmarkRevocationToLock measures, through a real server, the time from
// removing the policy identity's access policy (the real armkeyvault call)
// to the data path refusing the environment with EnvironmentLocked; the
// issue's target is under a second. Access is restored and the environment
// re-enabled between iterations, off the clock.
func BenchmarkRevocationToLock(b *testing.B) {
	r := newRevocationRig(b)
	ctx := context.Background()
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := r.open(); err != nil {
			b.Fatalf("Open before revocation: %v", err)
		}
		b.StartTimer()
		start := time.Now()
		r.revoke(b)
		for !isLocked(r.open()) {
			if time.Since(start) > 30*time.Second {
				b.Fatal("the environment was not locked 30 s after revocation")
			}
			time.Sleep(100 * time.Microsecond)
		}
		total += time.Since(start)
		b.StopTimer()
		r.restore(b)
		if _, err := r.bap.ReenableEnvironment(ctx, r.envID); err != nil {
			b.Fatalf("re-enable: %v", err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/revocation")
}
