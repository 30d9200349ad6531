package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/keyvault"
)

const (
	vaultAdminID = "11111111-1111-4111-8111-111111111111" // adminUPN
	kvAdminID    = "22222222-2222-4222-8222-222222222222"
	kvAdminUPN   = "kvadmin@contoso.keyhold.local"
	identityID   = "33333333-3333-4333-8333-333333333333" // a managed identity
)

// newVaultHarness runs the CLI against the real resource manager with the
// vault type, behind a token endpoint and a user lookup like the fake's.
func newVaultHarness(t *testing.T) *harness {
	t.Helper()
	st := seededStore(t, vaultAdminID, "44444444-4444-4444-8444-444444444444", func(ctx context.Context, st keyhold.Store, now time.Time) []error {
		return []error{
			st.CreatePrincipal(ctx, &keyhold.Principal{ID: kvAdminID, TenantID: fakeTenant, Type: keyhold.PrincipalUser, DisplayName: "Key Vault Admin", UserPrincipalName: kvAdminUPN, CreatedAt: now}),
			st.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: fakeSub, Namespace: "Microsoft.KeyVault", State: keyhold.StateRegistered, UpdatedAt: now}),
			st.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: fakeSub, Name: "rg-contoso", Location: "westus"}),
		}
	})
	kv := keyvault.New(keyvault.Config{Store: st, PublicURL: "https://keyhold.test/"})
	a := arm.New(arm.Config{Store: st})
	a.Register(kv.ResourceType())

	mux := http.NewServeMux()
	adminTokens(mux)
	mux.HandleFunc("GET /v1.0/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); audienceOf(tok) != client.AudienceGraph {
			azErr(w, 401, "InvalidAuthenticationToken", "wrong token")
			return
		}
		ps, err := st.FindPrincipals(r.Context(), keyhold.PrincipalFilter{TenantID: fakeTenant, UserPrincipalName: r.PathValue("id")})
		if err != nil || len(ps) != 1 {
			azErr(w, 404, "Request_ResourceNotFound", "no such user")
			return
		}
		reply(w, 200, client.User{ID: ps[0].ID, DisplayName: ps[0].DisplayName, UserPrincipalName: ps[0].UserPrincipalName})
	})
	mux.Handle("/", armAsAdmin(st, vaultAdminID, a.Handler()))
	return serveHarness(t, mux)
}

func TestVaultCommands(t *testing.T) {
	h := newVaultHarness(t)
	h.login()

	out := h.ok("vault", "create", "--name", "kv-cli", "--resource-group", "rg-contoso", "--location", "westus", "--retention-days", "30", "--tag", "env=test")
	if !strings.Contains(out, "kv-cli") || !strings.Contains(out, "rg-contoso") || !strings.Contains(out, "30 days") || !strings.Contains(out, "https://keyhold.test/vaults/kv-cli/") {
		t.Errorf("create table:\n%s", out)
	}
	var v client.Vault
	out = h.ok("vault", "create", "kv-net", "--resource-group", "rg-contoso", "--location", "westus", "--sku", "premium", "--enable-rbac",
		"--public-network-access", "Disabled", "--bypass", "AzureServices", "--default-action", "Deny", "--ip-rule", "203.0.113.0/24,198.51.100.7", "-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("create -o json: %v\n%s", err, out)
	}
	p := v.Properties
	if p.SKU.Name != "premium" || p.EnablePurgeProtection == nil || !*p.EnablePurgeProtection || p.EnableRbacAuthorization == nil || !*p.EnableRbacAuthorization ||
		p.PublicNetworkAccess != "Disabled" || p.NetworkACLs == nil || p.NetworkACLs.DefaultAction != "Deny" || len(p.NetworkACLs.IPRules) != 2 || p.TenantID != fakeTenant {
		t.Errorf("created %+v", v)
	}

	tests := []refusal{
		{"bad name", []string{"vault", "create", "--name", "kv--bad", "--resource-group", "rg-contoso", "--location", "westus"}, 1, "VaultNameNotValid"},
		{"name taken", []string{"vault", "create", "--name", "kv-cli", "--resource-group", "rg-other", "--location", "westus"}, 1, ""},
		{"retention out of range", []string{"vault", "create", "--name", "kv-x", "--resource-group", "rg-contoso", "--location", "westus", "--retention-days", "5"}, 2, "between 7 and 90"},
		{"no group", []string{"vault", "create", "--name", "kv-x", "--location", "westus"}, 2, "--resource-group"},
		{"bad firewall", []string{"vault", "create", "--name", "kv-x", "--resource-group", "rg-contoso", "--location", "westus", "--ip-rule", "nowhere"}, 1, "'nowhere'"},
		{"show missing", []string{"vault", "show", "--name", "kv-none"}, 1, "there is no vault kv-none"},
		{"policy without target", []string{"vault", "set-policy", "--name", "kv-cli", "--preset", "cmk"}, 2, "--object-id or --upn"},
		{"policy without permissions", []string{"vault", "set-policy", "--name", "kv-cli", "--object-id", identityID}, 2, "--key-permissions or --preset"},
		{"unknown preset", []string{"vault", "set-policy", "--name", "kv-cli", "--object-id", identityID, "--preset", "admin"}, 2, "--preset must be cmk"},
		{"unknown permission", []string{"vault", "set-policy", "--name", "kv-cli", "--object-id", identityID, "--key-permissions", "get,fly"}, 1, "'fly'"},
		{"unknown user", []string{"vault", "set-policy", "--name", "kv-cli", "--upn", "nobody@contoso.keyhold.local", "--preset", "cmk"}, 1, "there is no user"},
		{"delete without --yes", []string{"vault", "delete", "--name", "kv-cli"}, 2, "--yes"},
		{"recover a live vault", []string{"vault", "recover", "--name", "kv-cli"}, 1, "no deleted vault kv-cli"},
	}
	h.refuses(t, tests)

	h.ok("vault", "set-policy", "--name", "kv-cli", "--upn", kvAdminUPN, "--preset", "cmk")
	h.ok("vault", "set-policy", "--name", "kv-cli", "--resource-group", "rg-contoso", "--object-id", identityID, "--key-permissions", "get", "--key-permissions", "list")
	out = h.ok("vault", "show", "--name", "kv-cli", "-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ap := range v.Properties.AccessPolicies {
		got[ap.ObjectID] = strings.Join(ap.Permissions.Keys, ",")
	}
	// The creator got every key permission, as az keyvault create gives.
	if len(got) != 3 || got[spID] != "all" || got[kvAdminID] != "get,unwrapKey,wrapKey" || got[identityID] != "get,list" {
		t.Errorf("policies %v", got)
	}
	out = h.ok("vault", "show", "kv-cli")
	if !strings.Contains(out, "OBJECT ID") || !strings.Contains(out, "get,unwrapKey,wrapKey") {
		t.Errorf("show table:\n%s", out)
	}
	h.ok("vault", "delete-policy", "--name", "kv-cli", "--object-id", identityID)
	if code, _, errOut := h.run("vault", "delete-policy", "--name", "kv-cli", "--object-id", identityID); code != 1 || !strings.Contains(errOut, "no access policy") {
		t.Errorf("delete-policy twice: %d %s", code, errOut)
	}
	out = h.ok("vault", "show", "--name", "kv-cli", "-o", "json")
	if strings.Contains(out, identityID) || !strings.Contains(out, kvAdminID) {
		t.Errorf("after delete-policy: %s", out)
	}

	out = h.ok("vault", "list")
	if !strings.Contains(out, "kv-cli") || !strings.Contains(out, "kv-net") || !strings.Contains(out, "RBAC") {
		t.Errorf("list:\n%s", out)
	}
	h.ok("vault", "delete", "--name", "kv-cli", "--yes")
	var deleted []client.DeletedVault
	if err := json.Unmarshal([]byte(h.ok("vault", "list", "--deleted", "-o", "json")), &deleted); err != nil || len(deleted) != 1 || deleted[0].Name != "kv-cli" {
		t.Fatalf("list --deleted: %+v %v", deleted, err)
	}
	code, _, errOut := h.run("vault", "purge", "--name", "kv-cli", "--yes")
	if code != 1 || !strings.Contains(errOut, "Operation 'DeletedVaultPurge' is not allowed.") {
		t.Errorf("purge under purge protection: %d %s", code, errOut)
	}
	code, _, errOut = h.run("vault", "create", "--name", "kv-cli", "--resource-group", "rg-contoso", "--location", "westus")
	if code != 1 || !strings.Contains(errOut, "already exists in deleted state") {
		t.Errorf("create over a deleted vault: %d %s", code, errOut)
	}
	out = h.ok("vault", "recover", "--name", "kv-cli", "-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Properties.AccessPolicies) != 2 || v.Tags["env"] != "test" {
		t.Errorf("recovered %s (%v)", out, err)
	}
	if code, _, errOut := h.run("vault", "purge", "--name", "kv-none", "--yes"); code != 1 || !strings.Contains(errOut, "no deleted vault kv-none") {
		t.Errorf("purge of nothing: %d %s", code, errOut)
	}

	help := h.ok("vault", "create", "--help")
	if !strings.Contains(help, "cannot be turned off") || !strings.Contains(help, "--retention-days") {
		t.Errorf("create help:\n%s", help)
	}
}

// writeCA makes the harness trust f's certificate instead of its own fake's.
func writeCA(t *testing.T, h *harness, f *fake) {
	t.Helper()
	ca := filepath.Join(h.dir, "vault-ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env["KEYHOLD_CA_CERT"] = ca
}
