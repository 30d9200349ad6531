package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/resourcegraph"
)

// newGraphHarness runs the CLI against the real resource manager with
// Resource Graph registered, over two vaults and an enterprise policy.
func newGraphHarness(t *testing.T) *harness {
	t.Helper()
	const adminID = "11111111-1111-4111-8111-111111111111"
	group := "/subscriptions/" + fakeSub + "/resourceGroups/rg-contoso/providers/"
	st := seededStore(t, adminID, "44444444-4444-4444-8444-444444444444", func(ctx context.Context, st keyhold.Store, now time.Time) []error {
		return []error{
			st.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: fakeSub, Name: "rg-contoso", Location: "westus"}),
			st.PutResource(ctx, &keyhold.Resource{ID: group + "Microsoft.KeyVault/vaults/kv-a", SubscriptionID: fakeSub, ResourceGroup: "rg-contoso",
				Type: "Microsoft.KeyVault/vaults", Name: "kv-a", Location: "westus", Properties: json.RawMessage(`{"enablePurgeProtection":true}`)}),
			st.PutResource(ctx, &keyhold.Resource{ID: group + "Microsoft.KeyVault/vaults/kv-b", SubscriptionID: fakeSub, ResourceGroup: "rg-contoso",
				Type: "Microsoft.KeyVault/vaults", Name: "kv-b", Location: "eastus", Properties: json.RawMessage(`{"enablePurgeProtection":false}`)}),
			st.PutResource(ctx, &keyhold.Resource{ID: group + "Microsoft.PowerPlatform/enterprisePolicies/ep-contoso", SubscriptionID: fakeSub, ResourceGroup: "rg-contoso",
				Type: "Microsoft.PowerPlatform/enterprisePolicies", Name: "ep-contoso", Location: "unitedstates", Kind: "Encryption",
				Identity: json.RawMessage(`{"type":"SystemAssigned","principalId":"3f2a1b0c-0000-4000-8000-0000000000aa"}`), Properties: json.RawMessage(`{"healthStatus":"Healthy"}`)}),
		}
	})
	a := arm.New(arm.Config{Store: st})
	a.Register(resourcegraph.New(resourcegraph.Config{Store: st}).ResourceType())
	mux := http.NewServeMux()
	adminTokens(mux)
	mux.Handle("/", armAsAdmin(st, adminID, a.Handler()))
	return serveHarness(t, mux)
}

func TestGraphQuery(t *testing.T) {
	h := newGraphHarness(t)
	h.login()

	tests := []struct {
		name string
		args []string
		want string // exact stdout
	}{
		{"table with a projected path", []string{"graph", "query", "resources | where type =~ 'Microsoft.PowerPlatform/enterprisePolicies' | project name, identity.principalId"},
			"name        identity_principalId\nep-contoso  3f2a1b0c-0000-4000-8000-0000000000aa\n"},
		{"objects and booleans as JSON cells", []string{"graph", "query", "resources | where type =~ 'microsoft.keyvault/vaults' | order by name asc | project name, properties"},
			"name  properties\nkv-a  {\"enablePurgeProtection\":true}\nkv-b  {\"enablePurgeProtection\":false}\n"},
		{"--first says what is left out", []string{"graph", "query", "resources | order by name asc | project name", "--first", "1"},
			"name\nep-contoso\nShowing 1 of 3 rows; use --first to see more.\n"},
		{"summarize", []string{"graph", "query", "resources | summarize count() by type | order by type asc"},
			"type                                        count_\nmicrosoft.keyvault/vaults                   2\nmicrosoft.powerplatform/enterprisepolicies  1\n"},
		{"another subscription", []string{"graph", "query", "resources | count", "--subscriptions", "00000000-0000-4000-8000-000000000009"},
			"Count\n0\n"},
		{"the subscription", []string{"graph", "query", "resources | count", "--subscriptions", " " + fakeSub + " ,"},
			"Count\n3\n"},
		{"empty cells", []string{"graph", "query", "resources | where name == 'kv-a' | project name, kind"},
			"name  kind\nkv-a  -\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.ok(tt.args...); got != tt.want {
				t.Errorf("stdout:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}

	out := h.ok("graph", "query", "resources | where name == 'ep-contoso' | project id, identity.principalId", "-o", "json")
	want := `{
  "count": 1,
  "data": [
    {
      "id": "/subscriptions/` + fakeSub + `/resourceGroups/rg-contoso/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso",
      "identity_principalId": "3f2a1b0c-0000-4000-8000-0000000000aa"
    }
  ],
  "total_records": 1
}
`
	if out != want {
		t.Errorf("json:\n%s\nwant:\n%s", out, want)
	}
	if out := h.ok("graph", "query", "resources | where name == 'none'", "-o", "json"); !strings.Contains(out, `"data": []`) {
		t.Errorf("empty json: %s", out)
	}
}

func TestGraphQueryErrors(t *testing.T) {
	h := newGraphHarness(t)
	h.login()
	tests := []struct {
		name     string
		args     []string
		code     int
		stderrIn string
	}{
		{"no query", []string{"graph", "query"}, exitUsage, "needs a QUERY"},
		{"unquoted query", []string{"graph", "query", "resources", "|", "count"}, exitUsage, "quote it"},
		{"negative --first", []string{"graph", "query", "resources", "--first", "-1"}, exitUsage, "--first must be 0 or more"},
		{"parser failure names the place", []string{"graph", "query", "resources\n| where type = 'x'"}, exitError, "line 2, column 14"},
		{"unknown column", []string{"graph", "query", "resources | where Type =~ 'x'"}, exitError, "did you mean 'type'"},
		{"bad subscription", []string{"graph", "query", "resources", "--subscriptions", "sub1"}, exitError, "not a valid subscription id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := h.run(tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderrIn) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderrIn)
			}
		})
	}
}
