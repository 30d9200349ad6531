package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

const ownerRoleID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"

// TestKeyVaultAdministrator walks the key vault administrator through the
// pages: create a vault (a bad name is refused next to its field), create a
// key, grant the enterprise policy's identity the Power Platform CMK preset,
// and grant the platform administrator Reader on the policy. The policy
// itself comes from a deployment through the API, as the seed does it.
func TestKeyVaultAdministrator(t *testing.T) {
	chromiumPath(t) // skip before starting a server
	e := testenv.Start(t, testenv.WithConfig(func(c *server.Config) {
		c.HealthInterval, c.HealthUnhealthyInterval = 200*time.Millisecond, 200*time.Millisecond
	}))
	ctx := context.Background()
	base, err := client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sp := base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID,
		client.Credential{ClientID: e.Boot.ClientID, ClientSecret: keyhold.NewSecret([]byte(e.Boot.ClientSecret))}, nil))
	sub := e.Boot.SubscriptionID
	const kvPassword = "Kv-admin-password-42!"
	kvID, kvUPN := e.CreateUser("kvadmin", kvPassword)
	ppID, _ := e.CreateUser("ppadmin", "Pp-admin-password-42!", keyhold.RolePowerPlatformAdministrator)
	if _, err := sp.CreateRoleAssignment(ctx, "/subscriptions/"+sub, "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleDefinitions/"+ownerRoleID, kvID, "User"); err != nil {
		t.Fatal(err)
	}
	if _, err := sp.RegisterProvider(ctx, sub, "Microsoft.PowerPlatform", true, nil); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, e.Server.URL())
	b.signIn(kvUPN, kvPassword)
	if got := b.text("main h1"); got != "Welcome" {
		t.Fatalf("key vault administrator lands on %q, want Welcome (no admin center)", got)
	}
	b.run("key vaults", chromedp.Click(`a[href="/admin/vaults"]`, chromedp.ByQuery), chromedp.WaitVisible("#create-vault-button", chromedp.ByQuery))
	b.shot("01-vaults")
	b.run("bad vault name", chromedp.SendKeys("#group", "rg-cmk", chromedp.ByQuery), chromedp.SendKeys("#name", "1-bad name", chromedp.ByQuery),
		chromedp.Click("#create-vault-button", chromedp.ByQuery), chromedp.WaitVisible("#name-error", chromedp.ByQuery))
	if got := b.text("#name-error"); !strings.Contains(got, "3 to 24") {
		t.Fatalf("vault name error = %q", got)
	}
	b.shot("02-vault-name-error")
	b.run("create vault", chromedp.SetValue("#name", "kv-pages", chromedp.ByQuery),
		chromedp.Click("#create-vault-button", chromedp.ByQuery), chromedp.WaitVisible("#create-key", chromedp.ByQuery))
	b.shot("03-vault")
	b.run("bad expiry", chromedp.SendKeys("#key", "cmk", chromedp.ByQuery), chromedp.SendKeys("#expires", "tomorrow", chromedp.ByQuery),
		chromedp.Click("#create-key", chromedp.ByQuery), chromedp.WaitVisible("#expires-error", chromedp.ByQuery))
	b.shot("04-key-expiry-error")
	b.run("create key", chromedp.Evaluate(`document.querySelector("#expires").value = ""`, nil), chromedp.Evaluate(`document.querySelector("#size").value = "3072"`, nil),
		chromedp.Click("#create-key", chromedp.ByQuery), chromedp.WaitVisible(`button[aria-label="Disable key cmk"]`, chromedp.ByQuery))
	b.shot("05-key")

	v, err := sp.GetVault(ctx, sub, "rg-cmk", "kv-pages")
	if err != nil {
		t.Fatal(err)
	}
	if v.Properties.EnablePurgeProtection == nil || !*v.Properties.EnablePurgeProtection {
		t.Fatal("the vault was created without purge protection")
	}
	k, err := sp.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID, client.Credential{Username: kvUPN, Password: keyhold.NewSecret([]byte(kvPassword))}, nil)).GetKey(ctx, "kv-pages", "cmk", "")
	if err != nil {
		t.Fatal(err)
	}
	if k.Key.Kty != "RSA" || len(k.Key.N) < 3072/6 {
		t.Fatalf("key = %s with a %d-character modulus, want RSA 3072", k.Key.Kty, len(k.Key.N))
	}

	// The policy, deployed through the API as the seed's template does.
	policyID := client.PolicyID(sub, "rg-cmk", "ep-pages")
	p, err := sp.PutPolicy(ctx, policyID, client.EnterprisePolicy{Location: "unitedstates", Kind: "Encryption",
		Identity: &client.EnterprisePolicyIdentity{Type: "SystemAssigned"},
		Properties: client.EnterprisePolicyProperties{Encryption: &client.PolicyEncryption{State: "Enabled",
			KeyVault: &client.PolicyKeyVault{ID: v.ID, Key: client.PolicyKey{Name: "cmk"}}}}})
	if err != nil {
		t.Fatal(err)
	}

	// Access policy with the Power Platform CMK preset.
	b.run("access policy", chromedp.Reload(), chromedp.WaitVisible("#add-access", chromedp.ByQuery),
		chromedp.SendKeys("#object", p.PrincipalID(), chromedp.ByQuery), chromedp.Click("#preset-cmk", chromedp.ByQuery),
		chromedp.Click("#add-access", chromedp.ByQuery), chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.shot("06-access-policy")
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := sp.GetPolicy(ctx, policyID)
		if err == nil && got.Properties.HealthStatus == "Healthy" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy did not become Healthy after the CMK preset was granted: %+v %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Reader on the policy for the platform administrator; a bad id first.
	b.run("policy access", chromedp.Click(`a[href="/admin/kv/policies"]`, chromedp.ByQuery), chromedp.WaitVisible("#grant-reader", chromedp.ByQuery),
		chromedp.SendKeys("#object", "not-a-guid", chromedp.ByQuery), chromedp.Click("#grant-reader", chromedp.ByQuery),
		chromedp.WaitVisible("#object-error", chromedp.ByQuery))
	b.shot("07-reader-error")
	b.run("grant reader", chromedp.SetValue("#object", ppID, chromedp.ByQuery), chromedp.Click("#grant-reader", chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.shot("08-reader-granted")
	ras, err := sp.ListRoleAssignments(ctx, policyID, ppID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ra := range ras {
		found = found || strings.HasSuffix(ra.Properties.RoleDefinitionID, readerRoleID)
	}
	if !found {
		t.Fatalf("no Reader assignment for the platform administrator on the policy: %+v", ras)
	}
}
