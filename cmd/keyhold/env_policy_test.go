package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/client/clienttest"
	"github.com/keyhold/keyhold/internal/testenv"
)

// testCMK is a customer's key set up for linking: an Encryption policy whose
// identity may use a key in a vault with purge protection.
type testCMK struct {
	policy *client.EnterprisePolicy
}

// setupCMK is clienttest.SetupCMK: a customer's key, through owner, with
// Reader on its policy for each of readers, once the policy is Healthy.
func setupCMK(t *testing.T, owner *client.Client, sub, tenant, me, group, vault, name string, readers ...string) testCMK {
	t.Helper()
	return testCMK{policy: clienttest.SetupCMK(t, owner, sub, tenant, me, group, vault, name, readers...)}
}

// issued hands out tokens the in-process server's identity service issues.
type issued struct {
	e *testenv.Env
	p *keyhold.Principal
}

func (s issued) Token(_ context.Context, aud string) (string, error) {
	return s.e.IssueToken(s.p, aud), nil
}

// TestEnvPolicyCommands links an environment, swaps and unlinks it with
// the CLI against a real server, each with --wait (a progress bar on
// stderr, then the final state), and checks the usage errors and refusals.
func TestEnvPolicyCommands(t *testing.T) {
	h, e := newEnvHarness(t)
	b := e.Server.Bootstrap()
	sp, err := e.Server.Store().GetPrincipal(context.Background(), b.ServicePrincipalID)
	if err != nil {
		t.Fatal(err)
	}
	owner, err := client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP, Tokens: issued{e, sp}})
	if err != nil {
		t.Fatal(err)
	}
	p1 := setupCMK(t, owner, b.SubscriptionID, b.TenantID, b.ServicePrincipalID, "rg-cli-cmk", "kv-cli-1", "ep-cli-1", b.AdminID).policy
	p2 := setupCMK(t, owner, b.SubscriptionID, b.TenantID, b.ServicePrincipalID, "rg-cli-cmk", "kv-cli-2", "ep-cli-2", b.AdminID).policy

	wantAll(t, "env --help", h.ok("env", "--help"), "add-policy", "remove-policy", "swap-policy")
	wantAll(t, "add-policy --help", h.ok("env", "add-policy", "--help"), "--env ID", "--policy POLICY", "--system-id ID", "--wait", "-o, --output")

	var created struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(h.ok("env", "create", "--name", "CMK", "--region", "unitedstates", "--type", "Sandbox", "--managed", "-o", "json")), &created); err != nil {
		t.Fatal(err)
	}
	id := created.Name

	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		words string
	}{
		{"no env", []string{"env", "add-policy", "--policy", "ep-cli-1"}, exitUsage, "--env is required"},
		{"no policy", []string{"env", "add-policy", "--env", id}, exitUsage, "needs --policy or --system-id"},
		{"both", []string{"env", "swap-policy", "--env", id, "--policy", "x", "--system-id", "y"}, exitUsage, "not both"},
		{"argument", []string{"env", "add-policy", "--env", id, "--policy", "x", "extra"}, exitUsage, "unexpected argument"},
		{"unknown policy", []string{"env", "add-policy", "--env", id, "--policy", "ep-none"}, exitError, "ep-none"},
		{"not linked: swap", []string{"env", "swap-policy", "--env", id, "--policy", "ep-cli-2"}, exitError, "is not linked"},
		{"not linked: remove", []string{"env", "remove-policy", "--env", id}, exitError, "is not linked"},
	} {
		code, _, errOut := h.run(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.words) {
			t.Errorf("%s: exit %d, stderr %q; want %d with %q", tc.name, code, errOut, tc.code, tc.words)
		}
	}

	// Link by name, waiting: the bar ends full, then the final state.
	code, out, errOut := h.run("env", "add-policy", "--env", id, "--policy", "ep-cli-1", "--wait")
	if code != 0 {
		t.Fatalf("add-policy: exit %d\n%s\n%s", code, out, errOut)
	}
	wantAll(t, "add-policy stderr", errOut, "[####################] 100%", "Succeeded")
	wantAll(t, "add-policy stdout", out, "OPERATION", "ACTION", "STATE", "PROGRESS", "ENCRYPTION", "link", "Succeeded", "Encrypted")
	wantAll(t, "env show after link", h.ok("env", "show", id), "Customer", p1.ID)

	if code, _, errOut := h.run("env", "swap-policy", "--env", id, "--system-id", p1.Properties.SystemID); code != exitError || !strings.Contains(errOut, "already linked") {
		t.Errorf("swap to the same policy: exit %d, %s", code, errOut)
	}

	// Swap by resource id, JSON.
	var swapped client.EnvironmentOperation
	if err := json.Unmarshal([]byte(h.ok("env", "swap-policy", "--env", id, "--policy", p2.ID, "--wait", "-o", "json")), &swapped); err != nil {
		t.Fatal(err)
	}
	if swapped.State.ID != "Succeeded" || !strings.EqualFold(swapped.Action, "Swap") {
		t.Errorf("swap = %+v", swapped)
	}
	wantAll(t, "env show after swap", h.ok("env", "show", id), p2.ID)

	// Remove without waiting: the accepted operation, then history has it.
	out = h.ok("env", "remove-policy", "--env", id)
	wantAll(t, "remove-policy", out, "Accepted: operation", "unlink")
	// The environment is back on the platform's key a moment before the
	// operation records its end, so wait for both.
	testenv.WaitFor(t, 30*time.Second, "unlink to end", func() bool {
		return strings.Contains(h.ok("env", "show", id), "the platform's key") && strings.Contains(h.ok("env", "history", id), "(unlink)  Succeeded")
	})
	wantAll(t, "env history", h.ok("env", "history", id), "(unlink)  Succeeded", "(swap)    Succeeded", "(link)    Succeeded")
}
