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
// seed's whole story by clicking: register the Microsoft.PowerPlatform
// provider and the enterprisePoliciesPreview feature on the providers page
// (the Registering badge follows itself to Registered without a reload;
// Unregister asks first), create a vault (a bad name is refused next to its
// field) and a key, create the enterprise policy through the template
// deployment (a bad name is refused next to its field; a key version that
// does not exist fails the deployment, whose error comes back next to the
// version), watch the deployment succeed, grant the policy's identity the
// Power Platform CMK preset on the vault page, and grant the platform
// administrator Reader on the policy.
func TestKeyVaultAdministrator(t *testing.T) {
	chromiumPath(t) // skip before starting a server
	e := testenv.Start(t, testenv.WithConfig(func(c *server.Config) {
		c.HealthInterval, c.HealthUnhealthyInterval = 200*time.Millisecond, 200*time.Millisecond
		// Long enough for the page to show Registering and follow it.
		c.RegistrationDelay = 3 * time.Second
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

	b := newBrowser(t, e.Server.URL())
	b.signIn(kvUPN, kvPassword)
	if got := b.text("main h1"); got != "Welcome" {
		t.Fatalf("key vault administrator lands on %q, want Welcome (no admin center)", got)
	}

	// Subscription > Resource providers: register Microsoft.PowerPlatform,
	// then the preview feature. The badge follows the registration in
	// place: a marker set on the page survives until Registered.
	const ppBadge = `[data-state-of="Microsoft.PowerPlatform"]`
	const featureBadge = `[data-state-of="Microsoft.PowerPlatform/enterprisePoliciesPreview"]`
	b.run("providers", chromedp.Click(`a[href="/admin/kv/providers"]`, chromedp.ByQuery), chromedp.WaitVisible(ppBadge, chromedp.ByQuery))
	if got := b.text(ppBadge); got != "NotRegistered" {
		t.Fatalf("Microsoft.PowerPlatform reads %q before registering, want NotRegistered", got)
	}
	b.shot("01-providers")
	b.run("register provider", chromedp.Click(`button[aria-label^="Register Microsoft.PowerPlatform in"]`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	if got := b.text(ppBadge); got != "Registering" {
		t.Fatalf("Microsoft.PowerPlatform reads %q right after Register, want Registering", got)
	}
	b.shot("02-provider-registering")
	var marked bool
	b.run("mark the page", chromedp.Evaluate(`window.keyholdNoReload = true`, &marked))
	b.waitText(ppBadge, "Registered")
	var noReload, unregisterShown bool
	b.run("no reload", chromedp.Evaluate(`window.keyholdNoReload === true`, &noReload),
		chromedp.Evaluate(`(function(){var u=document.querySelector('button[aria-label^="Unregister Microsoft.PowerPlatform in"]');return !!u && !u.hidden && getComputedStyle(u).display !== "none"})()`, &unregisterShown))
	if !noReload {
		t.Fatal("the page reloaded to show Registered; the badge should follow the registration in place")
	}
	if !unregisterShown {
		t.Fatal("Unregister is not shown once the provider is Registered")
	}
	if p, err := sp.GetProvider(ctx, sub, "Microsoft.PowerPlatform"); err != nil || p.RegistrationState != keyhold.StateRegistered {
		t.Fatalf("provider = %+v, %v; want Registered", p, err)
	}
	b.run("register feature", chromedp.Click(`button[aria-label^="Register Microsoft.PowerPlatform/enterprisePoliciesPreview in"]`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.waitText(featureBadge, "Registered")
	b.shot("03-registered")
	if f, err := sp.GetFeature(ctx, sub, "Microsoft.PowerPlatform", "enterprisePoliciesPreview"); err != nil || f.Properties.State != keyhold.StateRegistered {
		t.Fatalf("feature = %+v, %v; want Registered", f, err)
	}
	// Unregister asks first; Cancel leaves the provider registered.
	b.run("unregister", chromedp.Click(`button[aria-label^="Unregister Microsoft.PowerPlatform in"]`, chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	b.shot("04-confirm-unregister")
	b.run("cancel unregister", chromedp.Click(`#confirm ~ a.button`, chromedp.ByQuery), chromedp.WaitVisible(ppBadge, chromedp.ByQuery))
	if got := b.text(ppBadge); got != "Registered" {
		t.Fatalf("after Cancel the provider reads %q, want Registered", got)
	}

	// Key vault and key.
	b.run("key vaults", chromedp.Click(`a[href="/admin/vaults"]`, chromedp.ByQuery), chromedp.WaitVisible("#create-vault-button", chromedp.ByQuery))
	b.shot("05-vaults")
	b.run("bad vault name", chromedp.SendKeys("#group", "rg-cmk", chromedp.ByQuery), chromedp.SendKeys("#name", "1-bad name", chromedp.ByQuery),
		chromedp.Click("#create-vault-button", chromedp.ByQuery), chromedp.WaitVisible("#name-error", chromedp.ByQuery))
	if got := b.text("#name-error"); !strings.Contains(got, "3 to 24") {
		t.Fatalf("vault name error = %q", got)
	}
	b.shot("06-vault-name-error")
	b.run("create vault", chromedp.SetValue("#name", "kv-pages", chromedp.ByQuery),
		chromedp.Click("#create-vault-button", chromedp.ByQuery), chromedp.WaitVisible("#create-key", chromedp.ByQuery))
	b.shot("07-vault")
	b.run("bad expiry", chromedp.SendKeys("#key", "cmk", chromedp.ByQuery), chromedp.SendKeys("#expires", "tomorrow", chromedp.ByQuery),
		chromedp.Click("#create-key", chromedp.ByQuery), chromedp.WaitVisible("#expires-error", chromedp.ByQuery))
	b.shot("08-key-expiry-error")
	b.run("create key", chromedp.Evaluate(`document.querySelector("#expires").value = ""`, nil), chromedp.Evaluate(`document.querySelector("#size").value = "3072"`, nil),
		chromedp.Click("#create-key", chromedp.ByQuery), chromedp.WaitVisible(`button[aria-label="Disable key cmk"]`, chromedp.ByQuery))
	b.shot("09-key")

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

	// A second vault, so that the form's key list has something to follow.
	kv := sp.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID, client.Credential{Username: kvUPN, Password: keyhold.NewSecret([]byte(kvPassword))}, nil))
	second, err := kv.CreateVault(ctx, sub, "rg-cmk", "kv-second", client.Vault{Location: "westus", Properties: client.VaultProperties{
		TenantID: e.Boot.TenantID, SKU: client.VaultSKU{Family: "A", Name: "standard"}, EnablePurgeProtection: new(true),
		AccessPolicies: []client.VaultAccessPolicy{{TenantID: e.Boot.TenantID, ObjectID: kvID, Permissions: client.VaultPermissions{Keys: []string{"all"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.CreateKey(ctx, "kv-second", "other", client.KeyCreate{Kty: "RSA", KeySize: 2048}); err != nil {
		t.Fatal(err)
	}

	// Policy access > Create policy: the documentation's template,
	// deployed. A bad name is refused before anything is deployed.
	b.run("create policy form", chromedp.Click(`a[href="/admin/kv/policies"]`, chromedp.ByQuery), chromedp.WaitVisible("#create-policy-link", chromedp.ByQuery),
		chromedp.Click("#create-policy-link", chromedp.ByQuery), chromedp.WaitVisible("#create-policy", chromedp.ByQuery))
	var region, key string
	var showKeysHidden bool
	b.run("form defaults", chromedp.Value("#region", &region, chromedp.ByQuery), chromedp.Value("#key", &key, chromedp.ByQuery),
		chromedp.Evaluate(`getComputedStyle(document.querySelector("#show-keys")).display === "none"`, &showKeysHidden))
	if region != "unitedstates" || key != "cmk" {
		t.Fatalf("the form starts with region %q and key %q, want unitedstates and cmk", region, key)
	}
	if !showKeysHidden {
		t.Fatal(`"Show this vault's keys" is shown although the script follows the vault`)
	}
	b.shot("10-policy-form")
	// Choosing another vault refills the keys without a round trip.
	chooseVault := func(id string) chromedp.Action {
		return chromedp.Evaluate(`(function(){var s=document.querySelector("#vault");s.value=`+jsString(id)+`;s.dispatchEvent(new Event("change"));return true})()`, new(bool))
	}
	b.run("choose the second vault", chooseVault(second.ID))
	b.waitText("#key", "other")
	b.run("choose the first vault again", chooseVault(v.ID))
	b.waitText("#key", "cmk")
	b.run("bad policy name", chromedp.SendKeys("#group", "rg-cmk", chromedp.ByQuery), chromedp.SendKeys("#name", "ep pages!", chromedp.ByQuery),
		chromedp.Click("#create-policy", chromedp.ByQuery), chromedp.WaitVisible("#name-error", chromedp.ByQuery))
	var invalid string
	b.run("name marked invalid", chromedp.AttributeValue("#name", "aria-invalid", &invalid, nil, chromedp.ByQuery))
	if got := b.text("#name-error"); !strings.Contains(got, "A policy name") || invalid != "true" {
		t.Fatalf("policy name error = %q, aria-invalid %q", got, invalid)
	}
	b.shot("11-policy-name-error")

	// A key version that does not exist: the deployment runs and fails,
	// and the error comes back next to the version.
	b.run("deploy with a missing version", chromedp.SetValue("#name", "ep-pages", chromedp.ByQuery),
		chromedp.SendKeys("#version", "0123456789abcdef0123456789abcdef", chromedp.ByQuery),
		chromedp.Click("#create-policy", chromedp.ByQuery), chromedp.WaitVisible("#deployment-state", chromedp.ByQuery))
	b.waitText("#deployment-state", "Failed")
	b.run("failure shown", chromedp.WaitVisible("#deployment-failure", chromedp.ByQuery))
	if got := b.text("#deployment-failure"); !strings.Contains(got, "KeyNotFound") {
		t.Fatalf("deployment failure = %q, want KeyNotFound", got)
	}
	b.shot("12-deployment-failed")
	b.run("correct the policy", chromedp.Click("#correct-policy", chromedp.ByQuery), chromedp.WaitVisible("#version-error", chromedp.ByQuery))
	if got := b.text("#version-error"); !strings.Contains(got, "KeyNotFound") {
		t.Fatalf("version error = %q", got)
	}
	b.shot("13-version-error")
	b.run("deploy", chromedp.Evaluate(`document.querySelector("#version").value = ""`, nil),
		chromedp.Click("#create-policy", chromedp.ByQuery), chromedp.WaitVisible("#deployment-state", chromedp.ByQuery))
	b.waitText("#deployment-state", "Succeeded")
	b.run("policy created", chromedp.WaitVisible("#policy-identity", chromedp.ByQuery))
	policyID := client.PolicyID(sub, "rg-cmk", "ep-pages")
	p, err := sp.GetPolicy(ctx, policyID)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.text("#policy-identity"); got != p.PrincipalID() || got == "" {
		t.Fatalf("the deployment page shows identity %q, the policy's is %q", got, p.PrincipalID())
	}
	if p.Location != "unitedstates" || p.Properties.Encryption == nil || p.Properties.Encryption.KeyVault == nil ||
		!strings.EqualFold(p.Properties.Encryption.KeyVault.ID, v.ID) || p.Properties.Encryption.KeyVault.Key.Name != "cmk" || p.Properties.Encryption.KeyVault.Key.Version != "" {
		t.Fatalf("policy = %+v", p)
	}
	b.shot("14-deployment-succeeded")
	var deploymentURL string
	b.run("deployment url", chromedp.Location(&deploymentURL))

	// Grant key access on the vault page, with the Power Platform CMK
	// preset, for the identity the deployment page named.
	b.run("open the vault's access policies", chromedp.Click("#grant-key-access", chromedp.ByQuery), chromedp.WaitVisible("#add-access", chromedp.ByQuery))
	var object string
	b.run("object field", chromedp.Value("#object", &object, chromedp.ByQuery))
	if object == "" {
		// The vault page fills the field from ?object= once it reads it.
		b.run("fill the identity", chromedp.SendKeys("#object", p.PrincipalID(), chromedp.ByQuery))
	} else if object != p.PrincipalID() {
		t.Fatalf("the access-policy form is filled with %q, want the policy identity %q", object, p.PrincipalID())
	}
	b.run("access policy", chromedp.Click("#preset-cmk", chromedp.ByQuery),
		chromedp.Click("#add-access", chromedp.ByQuery), chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.shot("15-access-policy")
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

	// Reader on the policy for the platform administrator, from the
	// deployment page's link; a bad id first.
	b.run("reader link", chromedp.Navigate(deploymentURL), chromedp.WaitVisible("#grant-reader-link", chromedp.ByQuery),
		chromedp.Click("#grant-reader-link", chromedp.ByQuery), chromedp.WaitVisible("#grant-reader", chromedp.ByQuery),
		chromedp.SendKeys("#object", "not-a-guid", chromedp.ByQuery), chromedp.Click("#grant-reader", chromedp.ByQuery),
		chromedp.WaitVisible("#object-error", chromedp.ByQuery))
	b.shot("16-reader-error")
	b.run("grant reader", chromedp.SetValue("#object", ppID, chromedp.ByQuery), chromedp.Click("#grant-reader", chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery))
	b.shot("17-reader-granted")
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
