package admin_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/server"
)

const readerRoleID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

// chromiumPath finds the browser, skipping the test when it is absent
// unless CI or KEYHOLD_REQUIRE_BROWSER says browser tests are required.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" || os.Getenv("KEYHOLD_REQUIRE_BROWSER") == "1" {
		t.Fatal("chromium is not on PATH and browser tests are required (CI=true or KEYHOLD_REQUIRE_BROWSER=1)")
	}
	t.Skip("chromium is not on PATH; install it to run the browser tests")
	return ""
}

// browser is one headless chromium, with a directory for screenshots.
type browser struct {
	t         *testing.T
	ctx       context.Context
	base      string
	artifacts string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path := chromiumPath(t)
	dir := os.Getenv("KEYHOLD_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		// Only the test's own 127.0.0.1 server, whose CA the browser does not know.
		chromedp.IgnoreCertErrors,
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: strings.TrimSuffix(base, "/"), artifacts: dir}
}

func (b *browser) run(step string, actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var loc string
		chromedp.Run(b.ctx, chromedp.Location(&loc))
		var body string
		chromedp.Run(b.ctx, chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &body))
		b.t.Logf("at %s: %s", loc, body)
		b.shot("failed-" + step)
		b.t.Fatalf("%s: %v", step, err)
	}
}

// shot saves a screenshot of the whole page as a test artifact.
func (b *browser) shot(name string) {
	b.t.Helper()
	var png []byte
	if err := chromedp.Run(b.ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	p := filepath.Join(b.artifacts, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}

// text returns the text of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.run("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
	return strings.TrimSpace(s)
}

// waitText waits until the element sel reads want. It evaluates in a loop
// rather than with chromedp.Poll because the page reloads itself when an
// operation ends, which destroys a running evaluation's context.
func (b *browser) waitText(sel, want string) {
	b.t.Helper()
	expr := `(function(){var e=document.querySelector(` + jsString(sel) + `);return e ? e.textContent.trim() : ""})()`
	deadline := time.Now().Add(90 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		err := chromedp.Run(ctx, chromedp.Evaluate(expr, &got))
		cancel()
		if err == nil && got == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	b.shot("failed-wait")
	b.t.Fatalf("%s reads %q, want %q", sel, got, want)
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func (b *browser) signIn(upn, password string) {
	b.t.Helper()
	b.run("sign in as "+upn,
		chromedp.Navigate(b.base+"/admin/signin"),
		chromedp.WaitVisible("#username", chromedp.ByQuery),
		chromedp.SendKeys("#username", upn, chromedp.ByQuery),
		chromedp.SendKeys("#password", password, chromedp.ByQuery),
		chromedp.Click(`button[type=submit]`, chromedp.ByQuery),
		chromedp.WaitVisible(".signout", chromedp.ByQuery),
	)
}

func (b *browser) signOut() {
	b.t.Helper()
	b.run("sign out", chromedp.Click(".signout button", chromedp.ByQuery), chromedp.WaitVisible("#username", chromedp.ByQuery))
}

// cmkSetup is what the key vault administrator makes through the APIs.
type cmkSetup struct {
	sub, group, vault, policyID string
	access                      []client.VaultAccessPolicy
}

func setupCMK(t *testing.T, e *testenv.Env, kv *client.Client, vault, policy string) *cmkSetup {
	t.Helper()
	ctx := context.Background()
	s := &cmkSetup{sub: e.Boot.SubscriptionID, group: "rg-cmk", vault: vault}
	if _, err := kv.CreateResourceGroup(ctx, s.sub, s.group, "westus", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.RegisterProvider(ctx, s.sub, "Microsoft.PowerPlatform", true, nil); err != nil {
		t.Fatal(err)
	}
	v, err := kv.CreateVault(ctx, s.sub, s.group, s.vault, client.Vault{Location: "westus", Properties: client.VaultProperties{
		TenantID: e.Boot.TenantID, SKU: client.VaultSKU{Family: "A", Name: "standard"}, EnablePurgeProtection: new(true),
		AccessPolicies: []client.VaultAccessPolicy{{TenantID: e.Boot.TenantID, ObjectID: e.Server.Bootstrap().ServicePrincipalID,
			Permissions: client.VaultPermissions{Keys: []string{"all"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.CreateKey(ctx, s.vault, "cmk", client.KeyCreate{Kty: "RSA", KeySize: 2048}); err != nil {
		t.Fatal(err)
	}
	s.policyID = client.PolicyID(s.sub, s.group, policy)
	p, err := kv.PutPolicy(ctx, s.policyID, client.EnterprisePolicy{Location: "unitedstates", Kind: "Encryption",
		Identity: &client.EnterprisePolicyIdentity{Type: "SystemAssigned"},
		Properties: client.EnterprisePolicyProperties{Encryption: &client.PolicyEncryption{State: "Enabled",
			KeyVault: &client.PolicyKeyVault{ID: v.ID, Key: client.PolicyKey{Name: "cmk"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	s.access = []client.VaultAccessPolicy{{TenantID: e.Boot.TenantID, ObjectID: p.PrincipalID(),
		Permissions: client.VaultPermissions{Keys: []string{"get", "wrapKey", "unwrapKey"}}}}
	s.setAccess(t, kv, client.AccessPolicyAdd, "Healthy")
	return s
}

func (s *cmkSetup) setAccess(t *testing.T, kv *client.Client, kind, health string) {
	t.Helper()
	ctx := context.Background()
	if err := kv.UpdateAccessPolicies(ctx, s.sub, s.group, s.vault, kind, s.access); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		p, err := kv.GetPolicy(ctx, s.policyID)
		if err == nil && p.Properties.HealthStatus == health {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy health never reached %s (last: %v %v)", health, p, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPlatformAdministrator walks the seed's platform administrator through
// the admin center in a real browser: add an environment to a policy and
// watch it reach Encrypted, see it disabled when key access is revoked,
// re-enable it once access is back, and remove it; a user without the role
// is refused.
func TestPlatformAdministrator(t *testing.T) {
	chromiumPath(t) // skip before starting a server
	e := testenv.Start(t, testenv.WithConfig(func(c *server.Config) {
		c.HealthInterval, c.HealthUnhealthyInterval = 200*time.Millisecond, 200*time.Millisecond
	}))
	ctx := context.Background()
	base, err := client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	kv := base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID,
		client.Credential{ClientID: e.Boot.ClientID, ClientSecret: keyhold.NewSecret([]byte(e.Boot.ClientSecret))}, nil))
	cmk := setupCMK(t, e, kv, "kv-web", "ep-web")
	second := setupCMK(t, e, kv, "kv-second", "ep-second")

	const ppPassword, userPassword = "Pp-admin-password-42!", "Plain-user-password-42!"
	ppID, ppUPN := e.CreateUser("ppadmin", ppPassword, keyhold.RolePowerPlatformAdministrator)
	_, userUPN := e.CreateUser("someone", userPassword)
	for _, c := range []*cmkSetup{cmk, second} {
		if _, err := kv.CreateRoleAssignment(ctx, c.policyID, "/subscriptions/"+c.sub+"/providers/Microsoft.Authorization/roleDefinitions/"+readerRoleID, ppID, "User"); err != nil {
			t.Fatal(err)
		}
	}
	pp := base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID, client.Credential{Username: ppUPN, Password: keyhold.NewSecret([]byte(ppPassword))}, nil))
	env, err := pp.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Contoso Sandbox", Region: "unitedstates", Type: client.EnvironmentSandbox, Managed: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pp.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Fabrikam Europe", Region: "europe", Type: client.EnvironmentProduction}); err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, e.Server.URL())

	// A user without an administrator role is refused the admin center.
	b.signIn(userUPN, userPassword)
	b.run("open environments as a plain user", chromedp.Navigate(b.base+"/admin/environments"), chromedp.WaitVisible("main h1", chromedp.ByQuery))
	if got, want := b.text("main h1"), "You don't have access"; got != want {
		t.Fatalf("plain user sees %q, want %q", got, want)
	}
	b.shot("01-refused")
	b.signOut()

	// A wrong password is answered next to the form, not with an error page.
	b.run("wrong password", chromedp.SendKeys("#username", ppUPN, chromedp.ByQuery), chromedp.SendKeys("#password", "wrong", chromedp.ByQuery),
		chromedp.Click(`button[type=submit]`, chromedp.ByQuery), chromedp.WaitVisible("#signin-error", chromedp.ByQuery))
	if got := b.text("#signin-error"); !strings.Contains(got, "incorrect") {
		t.Fatalf("wrong password: %q", got)
	}
	b.shot("02-signin-error")

	b.signIn(ppUPN, ppPassword)
	if got := b.text("main h1"); got != "Environments" {
		t.Fatalf("platform administrator lands on %q, want Environments", got)
	}
	b.waitText("tbody tr:first-child td:first-child", "Contoso Sandbox")
	b.shot("03-environments")

	// Policies > Enterprise policies > the policy > Edit policy > Add environments.
	b.run("open policies", chromedp.Click(`a[href="/admin/policies"]`, chromedp.ByQuery), chromedp.WaitVisible(`[role=tablist]`, chromedp.ByQuery))
	b.shot("04-policies-all")
	b.run("open policy", chromedp.Click(`a[href*="ep-web"]`, chromedp.ByQuery), chromedp.WaitVisible("#policy-health", chromedp.ByQuery))
	if got := b.text("#policy-health"); got != "Healthy" {
		t.Fatalf("policy health = %q, want Healthy", got)
	}
	b.shot("05-policy")
	b.run("add environments", chromedp.Click("#edit-policy", chromedp.ByQuery), chromedp.WaitVisible("#continue", chromedp.ByQuery))
	var disabled bool
	b.run("ineligible environment", chromedp.Evaluate(`!!document.querySelector('.ineligible input[disabled]')`, &disabled))
	if !disabled {
		t.Fatal("the environment in another region is not shown greyed out")
	}
	b.shot("06-add-environments")
	// Continue with nothing selected: the message is next to the list.
	b.run("continue with nothing", chromedp.Click("#continue", chromedp.ByQuery), chromedp.WaitVisible("#add-error", chromedp.ByQuery))
	b.run("choose and continue", chromedp.Click("#env-"+env.Name, chromedp.ByID), chromedp.Click("#continue", chromedp.ByQuery),
		chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	b.shot("07-confirm-add")
	b.run("confirm", chromedp.Click("#confirm", chromedp.ByQuery), chromedp.WaitVisible("#env-status", chromedp.ByQuery))
	// The page updates itself as encryption runs.
	b.waitText(`[data-field="encryption"]`, "Encrypted")
	b.waitText(`[data-field="keyManagedBy"]`, "Customer")
	b.shot("08-encrypted")

	// The key vault administrator revokes the policy's access: the
	// environment is disabled, and the page says so.
	cmk.setAccess(t, kv, client.AccessPolicyRemove, "Unhealthy")
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := pp.GetEnvironment(ctx, env.Name)
		if err == nil && got.Locked() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the environment was not locked after access was revoked")
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.run("reload locked", chromedp.Reload(), chromedp.WaitVisible("#disabled-card", chromedp.ByQuery))
	if got := b.text("#disabled-title"); got != "Environment disabled" {
		t.Fatalf("card title = %q", got)
	}
	b.shot("09-disabled")

	// Access is back: Re-enable environment > Confirm.
	cmk.setAccess(t, kv, client.AccessPolicyAdd, "Healthy")
	b.run("re-enable", chromedp.Click("#disabled-card button", chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	b.shot("10-confirm-reenable")
	b.run("confirm re-enable", chromedp.Click("#confirm", chromedp.ByQuery), chromedp.WaitVisible("#env-status", chromedp.ByQuery))
	b.run("reload enabled", chromedp.Reload(), chromedp.WaitVisible("#env-status", chromedp.ByQuery))
	b.waitText(`[data-field="state"]`, "Enabled")
	b.shot("11-reenabled")

	// Change key in one step: to the second policy's key, with no outage.
	b.run("change key", chromedp.Evaluate(`document.querySelector("#policy").value = document.querySelector("#policy option").value`, nil),
		chromedp.Click("#change-key", chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	b.shot("11b-confirm-change-key")
	b.run("confirm change key", chromedp.Click("#confirm", chromedp.ByQuery), chromedp.WaitVisible("#env-status", chromedp.ByQuery))
	deadline = time.Now().Add(time.Minute)
	for {
		got, err := pp.GetEnvironment(ctx, env.Name)
		if err == nil && strings.EqualFold(got.Policy(), second.policyID) && got.Properties.Encryption.Status == "Encrypted" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the environment did not move to the second policy: %+v %v", got, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.run("reload changed", chromedp.Reload(), chromedp.WaitVisible(`a[href*="ep-second"]`, chromedp.ByQuery))
	b.shot("11c-key-changed")

	// Environments with policies, then Remove environment > Confirm.
	b.run("environments with policies", chromedp.Navigate(b.base+"/admin/policies?tab=environments"), chromedp.WaitVisible("tbody a", chromedp.ByQuery))
	if got := b.text("tbody td:first-child"); got != "Contoso Sandbox" {
		t.Fatalf("environments with policies: %q", got)
	}
	b.shot("12-policies-environments")
	b.run("open policy again", chromedp.Click(`tbody td:nth-child(3) a`, chromedp.ByQuery), chromedp.WaitVisible("#policy-health", chromedp.ByQuery),
		chromedp.Click(`button[aria-label="Remove environment Contoso Sandbox"]`, chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	b.shot("13-confirm-remove")
	b.run("confirm remove", chromedp.Click("#confirm", chromedp.ByQuery), chromedp.WaitVisible("#env-status", chromedp.ByQuery))
	b.waitText(`[data-field="keyManagedBy"]`, "Microsoft")
	b.run("history", chromedp.Reload(), chromedp.WaitVisible("#history-title", chromedp.ByQuery))
	b.shot("14-removed-history")

	// The audit log, filtered to a policy the administrator may read, shows
	// who made it.
	b.run("audit", chromedp.Navigate(b.base+"/admin/audit?scope="+url.QueryEscape(cmk.policyID)), chromedp.WaitVisible("#filter", chromedp.ByQuery))
	var audit string
	b.run("audit rows", chromedp.Text("tbody", &audit, chromedp.ByQuery))
	if !strings.Contains(audit, "Succeeded") {
		t.Fatalf("the audit page shows no request on the policy: %q", audit)
	}
	b.shot("15-audit")
}
