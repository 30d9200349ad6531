package admin_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/testenv"
)

// TestKeyVaultKeysPages walks the key vault administrator through the key
// pages in a real browser: import a key from a file (after a refused
// paste), the key page with its versions, an expiry edit, a new version,
// disabling a version with confirmation, the vault's IP rules, removing an
// access policy with confirmation, and deleting the vault with
// confirmation and recovering it.
func TestKeyVaultKeysPages(t *testing.T) {
	chromiumPath(t) // skip before starting a server
	e := testenv.Start(t)
	ctx := context.Background()
	base, err := client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP, PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sp := base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID,
		client.Credential{ClientID: e.Boot.ClientID, ClientSecret: keyhold.NewSecret([]byte(e.Boot.ClientSecret))}, nil))
	sub := e.Boot.SubscriptionID
	kvID, kvUPN := e.CreateUser("kvadmin", kvAdminPassword)
	otherID, _ := e.CreateUser("other", "Other-password-42!")
	if _, err := sp.CreateRoleAssignment(ctx, "/subscriptions/"+sub, "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleDefinitions/"+ownerRoleID, kvID, "User"); err != nil {
		t.Fatal(err)
	}
	kv := base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID, client.Credential{Username: kvUPN, Password: keyhold.NewSecret([]byte(kvAdminPassword))}, nil))

	priv, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "byok.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))

	b := newBrowser(t, e.Server.URL())
	b.signIn(kvUPN, kvAdminPassword)
	b.run("key vaults", chromedp.Navigate(b.base+"/admin/vaults"), chromedp.WaitVisible("#create-vault-button", chromedp.ByQuery),
		chromedp.SendKeys("#group", "rg-keys", chromedp.ByQuery), chromedp.SendKeys("#name", "kv-keys", chromedp.ByQuery),
		chromedp.Click("#create-vault-button", chromedp.ByQuery), chromedp.WaitVisible("#import-key", chromedp.ByQuery))
	b.shot("01-vault")
	vaultURL := b.base + "/admin/vaults/" + sub + "/rg-keys/kv-keys"

	// Import: a public key is refused next to the key field, which comes
	// back empty; the private key from a file is imported.
	b.run("import a public key", chromedp.SendKeys("#import-name", "byok", chromedp.ByQuery), chromedp.SetValue("#material", pubPEM, chromedp.ByQuery),
		chromedp.Click("#import-key", chromedp.ByQuery), chromedp.WaitVisible("#material-error", chromedp.ByQuery))
	if got := b.text("#material-error"); !strings.Contains(got, "public key") {
		t.Fatalf("import error = %q", got)
	}
	var material string
	b.run("material field", chromedp.Value("#material", &material, chromedp.ByQuery))
	if material != "" {
		t.Fatal("the refused form shows the key field filled in again")
	}
	b.shot("02-import-error")
	b.run("import from a file", chromedp.SetUploadFiles("#keyfile", []string{keyFile}, chromedp.ByQuery),
		chromedp.SendKeys("#import-expires", time.Now().AddDate(2, 0, 0).Format("2006-01-02"), chromedp.ByQuery),
		chromedp.Click("#import-key", chromedp.ByQuery), chromedp.WaitVisible("#new-version", chromedp.ByQuery))
	if got := b.text("main h1"); got != "byok" {
		t.Fatalf("after import the page is %q, want the key page of byok", got)
	}
	if got := b.text(".flash"); !strings.Contains(got, "RSA 3072") {
		t.Fatalf("flash after import = %q", got)
	}
	b.shot("03-key-imported")

	// The key page: one version, current, with the kid to copy.
	var first string
	b.run("first version", chromedp.Evaluate(`document.querySelector('tr[id^="version-"]').id.slice(8)`, &first))
	var kid string
	b.run("kid", chromedp.Value("#kid", &kid, chromedp.ByQuery))
	if !strings.HasPrefix(kid, "https://") || !strings.HasSuffix(kid, "/vaults/kv-keys/keys/byok") {
		t.Fatalf("kid = %q", kid)
	}

	// Expiry: a bad date is refused next to the version's field, then set.
	exp := "#expires-" + first
	b.run("bad expiry", chromedp.SetValue(exp, "tomorrow", chromedp.ByQuery),
		chromedp.Click(`button[aria-label="Set expiry of version `+first+`"]`, chromedp.ByQuery), chromedp.WaitVisible(exp+"-error", chromedp.ByQuery))
	b.shot("04-expiry-error")
	newExpiry := time.Now().AddDate(3, 0, 0).Format("2006-01-02")
	b.run("set expiry", chromedp.SetValue(exp, newExpiry, chromedp.ByQuery),
		chromedp.Click(`button[aria-label="Set expiry of version `+first+`"]`, chromedp.ByQuery), chromedp.WaitVisible(".flash", chromedp.ByQuery))
	if got := b.text(".flash"); !strings.Contains(got, newExpiry) {
		t.Fatalf("flash after expiry = %q", got)
	}
	b.shot("05-expiry-set")
	kb, err := kv.GetKey(ctx, "kv-keys", "byok", first)
	if err != nil {
		t.Fatal(err)
	}
	if kb.Attributes.Expires == nil || time.Unix(*kb.Attributes.Expires, 0).UTC().Format("2006-01-02") != newExpiry {
		t.Fatalf("expiry = %v, want %s", kb.Attributes.Expires, newExpiry)
	}

	// New version: the imported one stays, a new current one joins it.
	b.run("new version", chromedp.Click("#new-version", chromedp.ByQuery))
	b.waitText("#versions-count", "2")
	b.shot("06-new-version")

	// Disable the imported version: confirmation first.
	b.run("disable version", chromedp.Click(`button[aria-label="Disable version `+first+`"]`, chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	if kb, err := kv.GetKey(ctx, "kv-keys", "byok", first); err != nil || !*kb.Attributes.Enabled {
		t.Fatalf("the version was disabled before the administrator confirmed (%v)", err)
	}
	b.shot("07-confirm-disable-version")
	b.run("confirm disable version", chromedp.Click("#confirm", chromedp.ByQuery), chromedp.WaitVisible("#new-version", chromedp.ByQuery))
	b.waitText("#version-"+first+" .badge.bad", "Disabled")
	b.shot("08-version-disabled")
	if kb, err := kv.GetKey(ctx, "kv-keys", "byok", first); err != nil || *kb.Attributes.Enabled {
		t.Fatalf("the version is still enabled after the confirmed disable (%v)", err)
	}

	// The vault page links the key; networking: a bad rule, then the
	// server's own address and a range, confirmed.
	b.run("vault page", chromedp.Click(`main p a[href$="/kv-keys"]`, chromedp.ByQuery), chromedp.WaitVisible(`a[href$="/keys/byok"]`, chromedp.ByQuery))
	b.run("bad IP rule", chromedp.Click("#vnet-selected", chromedp.ByQuery), chromedp.SetValue("#iprules", "127.0.0.1\n203.0.113.300", chromedp.ByQuery),
		chromedp.Click("#save-network", chromedp.ByQuery), chromedp.WaitVisible("#iprules-error", chromedp.ByQuery))
	if got := b.text("#iprules-error"); !strings.Contains(got, "203.0.113.300") {
		t.Fatalf("IP rule error = %q", got)
	}
	b.shot("09-ip-rule-error")
	b.run("IP rules", chromedp.SetValue("#iprules", "127.0.0.1\n203.0.113.0/24", chromedp.ByQuery),
		chromedp.Click("#save-network", chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	if v, _ := kv.GetVault(ctx, sub, "rg-keys", "kv-keys"); v.Properties.NetworkACLs != nil && v.Properties.NetworkACLs.DefaultAction == "Deny" {
		t.Fatal("the firewall closed before the administrator confirmed")
	}
	b.shot("10-confirm-ip-rules")
	b.run("confirm IP rules", chromedp.Click("#confirm", chromedp.ByQuery), chromedp.WaitVisible("#network-summary", chromedp.ByQuery))
	if got := b.text("#network-summary"); got != "Enabled from selected IP addresses" {
		t.Fatalf("network summary = %q", got)
	}
	b.shot("11-ip-rules")
	v, err := kv.GetVault(ctx, sub, "rg-keys", "kv-keys")
	if err != nil {
		t.Fatal(err)
	}
	if acl := v.Properties.NetworkACLs; acl == nil || acl.DefaultAction != "Deny" || len(acl.IPRules) != 2 {
		t.Fatalf("firewall = %+v, want Deny with two rules", v.Properties.NetworkACLs)
	}

	// Access policies: grant another principal the CMK preset, then remove
	// it with confirmation.
	b.run("add access", chromedp.SendKeys("#object", otherID, chromedp.ByQuery), chromedp.Click("#preset-cmk", chromedp.ByQuery),
		chromedp.Click("#add-access", chromedp.ByQuery), chromedp.WaitVisible(`button[aria-label="Remove access policy of `+otherID+`"]`, chromedp.ByQuery))
	b.run("remove access", chromedp.Click(`button[aria-label="Remove access policy of `+otherID+`"]`, chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	b.shot("12-confirm-remove-access")
	b.run("confirm remove access", chromedp.Click("#confirm", chromedp.ByQuery), chromedp.WaitVisible("#network-summary", chromedp.ByQuery))
	var left bool
	b.run("access rows", chromedp.Evaluate(`!!document.querySelector('button[aria-label="Remove access policy of `+otherID+`"]')`, &left))
	if left {
		t.Fatal("the removed access policy is still listed")
	}
	b.shot("13-access-removed")

	// Delete the vault with confirmation; it is listed as deleted and
	// recovers with its key.
	b.run("delete vault", chromedp.Click("#delete-vault", chromedp.ByQuery), chromedp.WaitVisible("#confirm", chromedp.ByQuery))
	if got := b.text("#confirm-text"); !strings.Contains(got, "recoverable") || !strings.Contains(got, "Purge protection is on") {
		t.Fatalf("delete confirmation says %q", got)
	}
	b.shot("14-confirm-delete-vault")
	b.run("confirm delete", chromedp.Click("#confirm", chromedp.ByQuery), chromedp.WaitVisible(`button[aria-label="Recover vault kv-keys"]`, chromedp.ByQuery))
	if _, err := kv.GetVault(ctx, sub, "rg-keys", "kv-keys"); !client.IsNotFound(err) {
		t.Fatalf("the vault is still there after the confirmed delete: %v", err)
	}
	b.shot("15-deleted-vaults")
	b.run("recover", chromedp.Click(`button[aria-label="Recover vault kv-keys"]`, chromedp.ByQuery), chromedp.WaitVisible(`a[href$="/keys/byok"]`, chromedp.ByQuery))
	if got := b.text(".flash"); !strings.Contains(got, "recovered") {
		t.Fatalf("flash after recover = %q", got)
	}
	var loc string
	b.run("location", chromedp.Location(&loc))
	if loc != vaultURL {
		t.Fatalf("after recovery the browser is at %s, want %s", loc, vaultURL)
	}
	b.shot("16-recovered")
}
