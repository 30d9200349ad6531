package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/policy"
)

const policyAdminID = "51111111-1111-4111-8111-111111111111" // adminUPN in this harness

// cliLinks links the policies whose ids it holds to an environment.
type cliLinks struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (l *cliLinks) LinkedEnvironments(_ context.Context, id string) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ids[strings.ToLower(id)] {
		return []string{"env-sales"}, nil
	}
	return nil, nil
}

// newPolicyHarness runs the CLI against the real resource manager with the
// policy type, over a store with a vault and key, and two policies named
// ep-contoso (in two groups) and one ep-linked that an environment uses.
func newPolicyHarness(t *testing.T) (*harness, func(group, name string) string) {
	t.Helper()
	ctx := context.Background()
	vaultID := "/subscriptions/" + fakeSub + "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/kv-cli"
	vaultProps, _ := json.Marshal(keyvault.Properties{TenantID: fakeTenant, SKU: keyvault.SKU{Family: "A", Name: "standard"}})
	st := seededStore(t, policyAdminID, "54444444-4444-4444-8444-444444444444", func(ctx context.Context, st keyhold.Store, now time.Time) []error {
		errs := []error{
			st.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: fakeSub, Namespace: policy.Namespace, State: keyhold.StateRegistered, UpdatedAt: now}),
			st.PutResource(ctx, &keyhold.Resource{ID: vaultID, SubscriptionID: fakeSub, ResourceGroup: "rg-kv", Type: keyvault.ResourceType, Name: "kv-cli", Location: "westus", Properties: vaultProps}),
			st.CreateKeyVersion(ctx, &keyhold.KeyVersion{VaultName: "kv-cli", Name: "cmk", Version: "0123456789abcdef0123456789abcdef", Kty: "RSA", KeySize: 2048,
				KeyOps: []string{"wrapKey", "unwrapKey"}, PublicJWK: json.RawMessage(`{}`), Enabled: true, CreatedAt: now, UpdatedAt: now}),
		}
		for _, g := range []string{"rg-a", "rg-b", "rg-kv"} {
			errs = append(errs, st.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: fakeSub, Name: g, Location: "westus"}))
		}
		return errs
	})
	_, ids := sealedIdentities(t, st)
	policyID := func(group, name string) string { return client.PolicyID(fakeSub, group, name) }
	links := &cliLinks{ids: map[string]bool{strings.ToLower(policyID("rg-a", "ep-linked")): true}}
	svc := policy.New(policy.Config{Store: st, Identity: ids, Links: links})
	a := arm.New(arm.Config{Store: st})
	a.Register(svc.ResourceType())

	// The policies, through the resource type as a deployment would make them.
	h := armAsAdmin(st, policyAdminID, a.Handler())
	for _, p := range []struct{ group, name, location string }{{"rg-a", "ep-contoso", "europe"}, {"rg-b", "ep-contoso", "unitedstates"}, {"rg-a", "ep-linked", "europe"}} {
		body := `{"location":"` + p.location + `","kind":"Encryption","identity":{"type":"SystemAssigned"},
			"properties":{"encryption":{"state":"Enabled","keyVault":{"id":"` + vaultID + `","key":{"name":"cmk"}}}}}`
		req := httptest.NewRequest("PUT", policyID(p.group, p.name)+"?api-version=2020-10-30", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+fakeToken(client.AudienceARM, 0))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 201 {
			t.Fatalf("creating %s: %d %s", p.name, w.Code, w.Body)
		}
	}
	if err := svc.SetHealth(ctx, policyID("rg-b", "ep-contoso"), policy.HealthUnhealthy, policy.HealthDetail{Reason: "identity lacks unwrapKey on vault kv-cli", Definite: true}); err != nil {
		t.Fatal(err)
	}
	lb := httptest.NewRequest("PUT", policyID("rg-b", "ep-lockbox")+"?api-version=2020-10-30", strings.NewReader(`{"location":"europe","kind":"Lockbox"}`))
	lb.Header.Set("Authorization", "Bearer "+fakeToken(client.AudienceARM, 0))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, lb)
	if w.Code != 201 {
		t.Fatalf("creating the lockbox policy: %d %s", w.Code, w.Body)
	}

	mux := http.NewServeMux()
	adminTokens(mux)
	mux.Handle("/", h)
	return serveHarness(t, mux), policyID
}

func TestPolicyCommands(t *testing.T) {
	h, policyID := newPolicyHarness(t)
	h.login()

	out := h.ok("policy", "list")
	for _, want := range []string{"NAME", "HEALTH", "ep-contoso", "rg-a", "rg-b", "Unhealthy", "Undetermined", "kv-cli/cmk", "ep-lockbox", "Lockbox"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy list lacks %q:\n%s", want, out)
		}
	}
	var ps []client.EnterprisePolicy
	if err := json.Unmarshal([]byte(h.ok("policy", "list", "--resource-group", "rg-b", "--kind", "encryption", "-o", "json")), &ps); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Name != "ep-contoso" || ps[0].ResourceGroup() != "rg-b" || ps[0].PrincipalID() == "" {
		t.Errorf("list --resource-group rg-b --kind encryption = %+v", ps)
	}
	if out := h.ok("policy", "list", "--kind", "Identity", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("list --kind Identity = %s, want []", out)
	}

	out = h.ok("policy", "show", "--name", "ep-contoso", "--resource-group", "rg-b")
	for _, want := range []string{"SYSTEM ID", "/regions/unitedstates/providers/Microsoft.PowerPlatform/enterprisePolicies/", "Unhealthy",
		"identity lacks unwrapKey on vault kv-cli", "PRINCIPAL ID", "(newest)", "SystemAssigned"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy show lacks %q:\n%s", want, out)
		}
	}
	var p client.EnterprisePolicy
	if err := json.Unmarshal([]byte(h.ok("policy", "show", policyID("rg-a", "ep-contoso"), "-o", "json")), &p); err != nil {
		t.Fatal(err)
	}
	if p.ID != policyID("rg-a", "ep-contoso") || p.Location != "europe" || p.PrincipalID() == "" || p.Properties.HealthStatus != "Undetermined" {
		t.Errorf("show by id = %+v", p)
	}
	if out := h.ok("policy", "show", "--name", "ep-linked"); !strings.Contains(out, policyID("rg-a", "ep-linked")) {
		t.Errorf("show --name ep-linked:\n%s", out)
	}

	tests := []refusal{
		{"ambiguous name", []string{"policy", "show", "--name", "ep-contoso"}, 2, "rg-a, rg-b; name one with --resource-group"},
		{"missing by name", []string{"policy", "show", "--name", "ep-none"}, 1, "there is no enterprise policy ep-none"},
		{"missing in group", []string{"policy", "show", "--name", "ep-none", "--resource-group", "rg-a"}, 1, "there is no enterprise policy ep-none in resource group rg-a"},
		{"missing by id", []string{"policy", "show", policyID("rg-a", "ep-none")}, 1, "there is no enterprise policy " + policyID("rg-a", "ep-none")},
		{"not an id", []string{"policy", "show", "ep-contoso"}, 2, "use --name for a name"},
		{"id and name", []string{"policy", "show", policyID("rg-a", "ep-contoso"), "--name", "ep-contoso"}, 2, "not both"},
		{"id and group", []string{"policy", "show", policyID("rg-a", "ep-contoso"), "--resource-group", "rg-a"}, 2, "--resource-group goes with --name"},
		{"nothing", []string{"policy", "show"}, 2, "needs the policy's resource id or --name"},
		{"list with an argument", []string{"policy", "list", "x"}, 2, "unexpected argument"},
		{"delete without --yes", []string{"policy", "delete", "--name", "ep-linked"}, 2, "--yes"},
		{"delete a linked policy", []string{"policy", "delete", "--name", "ep-linked", "--yes"}, 1, "env-sales"},
	}
	h.refuses(t, tests)

	out = h.ok("policy", "delete", "--name", "ep-contoso", "--resource-group", "rg-a", "--yes")
	if !strings.Contains(out, "Deleted enterprise policy ep-contoso") {
		t.Errorf("delete said %q", out)
	}
	// With one ep-contoso left, the name alone is enough.
	h.ok("policy", "delete", "--name", "ep-contoso", "--yes")
	if code, _, errOut := h.run("policy", "show", "--name", "ep-contoso"); code != 1 || !strings.Contains(errOut, "there is no enterprise policy") {
		t.Errorf("show after delete: %d %s", code, errOut)
	}
	if out := h.ok("policy", "list"); strings.Contains(out, "ep-contoso") || !strings.Contains(out, "ep-linked") {
		t.Errorf("list after delete:\n%s", out)
	}
}

func TestPolicyVerbs(t *testing.T) {
	var got []string
	for _, c := range policyCommand().subs {
		got = append(got, c.name)
		if c.run == nil || c.summary == "" || len(c.examples) == 0 {
			t.Errorf("policy %s lacks run, summary or examples", c.name)
		}
	}
	if want := "create,show,list,delete,validate"; strings.Join(got, ",") != want {
		t.Errorf("policy verbs = %v, want %s", got, want)
	}
}
