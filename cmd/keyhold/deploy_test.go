package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/deploy"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/policy"
)

const deployVaultID = "/subscriptions/" + fakeSub + "/resourceGroups/rg-contoso/providers/Microsoft.KeyVault/vaults/kv-contoso"

// newDeployHarness runs the CLI against the real resource manager with
// vaults, enterprise policies and deployments, behind a token endpoint like
// the fake's. The vault kv-contoso and its key cmk exist.
func newDeployHarness(t *testing.T) (*harness, keyhold.Store) {
	t.Helper()
	ctx := context.Background()
	st := seededStore(t, vaultAdminID, "44444444-4444-4444-8444-444444444444", func(ctx context.Context, st keyhold.Store, now time.Time) []error {
		return []error{
			st.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: fakeSub, Namespace: "Microsoft.PowerPlatform", State: keyhold.StateRegistered, UpdatedAt: now}),
			st.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: fakeSub, Name: "rg-contoso", Location: "westus"}),
		}
	})
	key, ids := sealedIdentities(t, st)
	kv := keyvault.New(keyvault.Config{Store: st, Seal: key, PublicURL: "https://keyhold.test/"})
	a := arm.New(arm.Config{Store: st})
	a.Register(kv.ResourceType())
	a.Register(policy.New(policy.Config{Store: st, Identity: ids, Vault: kv}).ResourceType())
	deployments := deploy.New(deploy.Config{Store: st, ARM: a.Handler(), Seal: key})
	a.Register(deployments.ResourceType())
	t.Cleanup(deployments.Close) // before the store closes

	mux := http.NewServeMux()
	adminTokens(mux)
	mux.Handle("/", armAsAdmin(st, vaultAdminID, a.Handler()))
	h := serveHarness(t, mux)
	h.login()
	h.env["KEYHOLD_SUBSCRIPTION"] = fakeSub

	h.ok("vault", "create", "--name", "kv-contoso", "--resource-group", "rg-contoso", "--location", "westus")
	now := time.Now().UTC()
	if err := st.CreateKeyVersion(ctx, &keyhold.KeyVersion{VaultName: "kv-contoso", Name: "cmk", Version: "0123456789abcdef0123456789abcdef",
		Kty: "RSA", KeySize: 2048, KeyOps: []string{"wrapKey", "unwrapKey"}, PublicJWK: json.RawMessage(`{}`), Enabled: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	return h, st
}

// runLeaf runs one command node with args as the dispatcher would, for
// verbs that the noun that owns them has yet to list.
func (h *harness) runLeaf(cmd *command, args ...string) (int, string, string) {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(k string) string { return h.env[k] },
		now: time.Now, pollInterval: time.Millisecond}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cmd.flags(fs)
	a.g.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return a.fail(usagef("%v", err)), "", err.Error()
	}
	if err := a.resolveOutput(); err != nil {
		return a.fail(err), "", ""
	}
	code := a.fail(cmd.run(context.Background(), a, pos))
	return code, stdout.String(), stderr.String()
}

func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDeployCommand(t *testing.T) {
	h, st := newDeployHarness(t)
	seedText, err := os.ReadFile("../../deploy/testdata/seed_template.json")
	if err != nil {
		t.Fatal(err)
	}

	// The seed's template as printed: the line and column, and what to do.
	seedFile := writeFile(t, h.dir, "policy.json", string(seedText))
	code, _, errOut := h.run("deploy", "--resource-group", "rg-contoso", "--template-file", seedFile)
	if code != exitError || !strings.Contains(errOut, "line 9, column 22: replace the placeholders such as {EnterprisePolicyName}") {
		t.Errorf("deploy of the unfilled seed: exit %d\n%s", code, errOut)
	}

	// Filled in, it deploys, with each resource's progress on stderr.
	filled := strings.NewReplacer(
		"{EnterprisePolicyName}", `"ep-contoso"`, "{location where EnterprisePolicy needs to be created}", `"unitedstates"`,
		"{keyVaultId}", `"`+deployVaultID+`"`, "{keyName}", `"cmk"`, "{keyVersion}", "null",
	).Replace(string(seedText))
	writeFile(t, h.dir, "policy.json", filled)
	code, out, errOut := h.run("deploy", "-g", "rg-contoso", "--template-file", seedFile, "-o", "json")
	if code != exitOK {
		t.Fatalf("deploy: exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "Succeeded Microsoft.PowerPlatform/enterprisePolicies ep-contoso") || !strings.Contains(errOut, "Deployment policy succeeded") {
		t.Errorf("progress:\n%s", errOut)
	}
	var d client.Deployment
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("output is not a deployment: %v\n%s", err, out)
	}
	if d.Name != "policy" || d.Properties.ProvisioningState != "Succeeded" || len(d.Properties.OutputResources) != 1 {
		t.Errorf("deployment = %+v", d)
	}

	// Typed parameters, a parameter file, and a failure with its reason.
	grants := `{"parameters": {"vault": {"type": "string"}, "principal": {"type": "string"}, "count": {"type": "int"}, "strict": {"type": "bool"}},
	  "resources": [{"type": "Microsoft.KeyVault/vaults/accessPolicies", "apiVersion": "2023-07-01", "name": "[concat(parameters('vault'), '/add')]",
	    "properties": {"accessPolicies": [{"tenantId": "[subscription().tenantId]", "objectId": "[parameters('principal')]",
	      "permissions": {"keys": "[if(parameters('strict'), createArray('get', 'wrapKey', 'unwrapKey'), createArray('all'))]"}}]}}],
	  "outputs": {"count": {"type": "int", "value": "[parameters('count')]"}}}`
	grantsFile := writeFile(t, h.dir, "grants.json", grants)
	paramsFile := writeFile(t, h.dir, "grants.parameters.json", `{"$schema": "x", "parameters": {"vault": {"value": "kv-contoso"}}}`)
	ep, err := st.GetResource(context.Background(), client.PolicyID(fakeSub, "rg-contoso", "ep-contoso"))
	if err != nil {
		t.Fatal(err)
	}
	var ident struct {
		PrincipalID string `json:"principalId"`
	}
	json.Unmarshal(ep.Identity, &ident)
	out = h.ok("deploy", "-g", "rg-contoso", "-f", grantsFile, "-p", "@"+paramsFile, "--parameters", "principal="+ident.PrincipalID,
		"-p", "count=3", "-p", "strict=true", "--name", "grants")
	if !strings.Contains(out, "grants") || !strings.Contains(out, "Succeeded") || !strings.Contains(out, "count=3") {
		t.Errorf("table:\n%s", out)
	}
	v, _ := st.GetResource(context.Background(), deployVaultID)
	if !strings.Contains(string(v.Properties), ident.PrincipalID) {
		t.Errorf("the access policy did not land: %s", v.Properties)
	}
	code, _, errOut = h.run("deploy", "-g", "rg-contoso", "-f", grantsFile, "-p", "@"+paramsFile, "-p", "principal=not-a-guid",
		"-p", "count=3", "-p", "strict=true", "--name", "grants2")
	if code != exitError || !strings.Contains(errOut, "deployment grants2 failed") || !strings.Contains(errOut, "Failed") {
		t.Errorf("failing deployment: exit %d\n%s", code, errOut)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "-f", grantsFile}, "--resource-group is required"},
		{[]string{"deploy", "-g", "rg-contoso"}, "--template-file is required"},
		{[]string{"deploy", "-g", "rg-contoso", "-f", grantsFile, "-p", "count=x"}, "the parameter count is an int"},
		{[]string{"deploy", "-g", "rg-contoso", "-f", grantsFile, "-p", "novalue"}, "NAME=VALUE"},
	} {
		code, _, errOut := h.run(tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("keyhold %s: exit %d, %s; want usage error %q", strings.Join(tt.args, " "), code, errOut, tt.want)
		}
	}
}

func TestPolicyCreateCommand(t *testing.T) {
	h, _ := newDeployHarness(t)
	code, out, errOut := h.runLeaf(policyCreateCommand(), "--resource-group", "rg-contoso", "--name", "ep-one", "--location", "europe",
		"--vault-id", deployVaultID, "--key-name", "cmk", "-o", "json")
	if code != exitOK {
		t.Fatalf("policy create: exit %d\n%s", code, errOut)
	}
	var p client.EnterprisePolicy
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatalf("output: %v\n%s", err, out)
	}
	if p.Name != "ep-one" || p.Kind != "Encryption" || p.Location != "europe" || p.PrincipalID() == "" ||
		p.Properties.Encryption == nil || p.Properties.Encryption.KeyVault.Key.Name != "cmk" || p.Properties.Encryption.KeyVault.Key.Version != "" {
		t.Errorf("policy = %+v", p)
	}
	code, out, _ = h.runLeaf(policyCreateCommand(), "--resource-group", "rg-contoso", "--name", "ep-two", "--location", "europe",
		"--vault-id", deployVaultID, "--key-name", "cmk", "--key-version", "0123456789abcdef0123456789abcdef")
	if code != exitOK || !strings.Contains(out, "PRINCIPAL ID") || !strings.Contains(out, "0123456789abcdef0123456789abcdef") {
		t.Errorf("policy create with a version: exit %d\n%s", code, out)
	}
	code, _, errOut = h.runLeaf(policyCreateCommand(), "--resource-group", "rg-contoso", "--name", "ep-three", "--location", "westus",
		"--vault-id", deployVaultID, "--key-name", "cmk")
	if code != exitError || !strings.Contains(errOut, "LocationNotAvailableForResourceType") {
		t.Errorf("policy create in a region that is not Power Platform's: exit %d\n%s", code, errOut)
	}
	code, _, errOut = h.runLeaf(policyCreateCommand(), "--resource-group", "rg-contoso", "--name", "ep", "--location", "europe", "--vault-id", "kv", "--key-name", "cmk")
	if code != exitUsage || !strings.Contains(errOut, "is not a key vault's resource id") {
		t.Errorf("bad vault id: exit %d\n%s", code, errOut)
	}
}

func TestParseParams(t *testing.T) {
	tmpl := []byte(`{"parameters": {"n": {"type": "Int"}, "b": {"type": "bool"}, "o": {"type": "object"}, "s": {"type": "string"}}}`)
	got, err := parseParams(tmpl, []string{"n=5", "b=false", `o={"k":[1]}`, "s=a=b", "free=x"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"n": int64(5), "b": false, "o": map[string]any{"k": []any{float64(1)}}, "s": "a=b", "free": "x"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseParams = %#v\nwant %#v", got, want)
	}
	for _, name := range []struct{ in, want string }{{"dir/my template.json", "my-template"}, {"x.json", "x"}, {".json", "deployment"}} {
		if got := defaultDeploymentName(name.in); got != name.want {
			t.Errorf("defaultDeploymentName(%q) = %q, want %q", name.in, got, name.want)
		}
	}
}
