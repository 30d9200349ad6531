package resourcegraph_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resourcegraph/armresourcegraph"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armresources"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/testenv"
)

const readerRoleID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

// e2e is a started server and what the real clients need to reach it.
type e2e struct{ *testenv.Env }

// startServer starts a server whose SDK clients do not retry, so that a
// refusal is seen as the first answer.
func startServer(t *testing.T) *e2e {
	t.Helper()
	return &e2e{testenv.Start(t, testenv.WithRetry(policy.RetryOptions{MaxRetries: -1}))}
}

// owner is the bootstrap service principal, Owner of the subscription.
func (e *e2e) owner() azcore.TokenCredential { return e.ServicePrincipal() }

// newUser creates a user with no roles through the identity service and
// returns its object id and a password credential for it.
func (e *e2e) newUser(name string) (string, azcore.TokenCredential) {
	e.TB.Helper()
	ctx := context.Background()
	tenant, err := e.Server.Store().GetTenant(ctx, e.Boot.TenantID)
	if err != nil {
		e.TB.Fatal(err)
	}
	upn := name + "@" + tenant.DefaultDomain
	const pw = "Graph-test-pw-1234!"
	p, err := e.Server.Identity().CreateUser(ctx, e.Boot.TenantID, upn, name, keyhold.NewSecret([]byte(pw)), nil)
	if err != nil {
		e.TB.Fatalf("CreateUser: %v", err)
	}
	return p.ID, e.User(upn, pw)
}

func (e *e2e) graph(cred azcore.TokenCredential) *armresourcegraph.Client {
	e.TB.Helper()
	c, err := armresourcegraph.NewClient(cred, e.ARMOptions())
	if err != nil {
		e.TB.Fatal(err)
	}
	return c
}

// query runs q through the real client and returns the rows of an
// objectArray answer.
func query(t *testing.T, c *armresourcegraph.Client, q string, opts *armresourcegraph.QueryRequestOptions, subs ...string) (armresourcegraph.QueryResponse, []map[string]any) {
	t.Helper()
	req := armresourcegraph.QueryRequest{Query: to.Ptr(q), Options: opts}
	for _, s := range subs {
		req.Subscriptions = append(req.Subscriptions, to.Ptr(s))
	}
	resp, err := c.Resources(context.Background(), req, nil)
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	var rows []map[string]any
	if list, ok := resp.Data.([]any); ok {
		for _, r := range list {
			m, _ := r.(map[string]any)
			rows = append(rows, m)
		}
	}
	return resp.QueryResponse, rows
}

func names(rows []map[string]any) string {
	var out []string
	for _, r := range rows {
		s, _ := r["name"].(string)
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func TestRealClients(t *testing.T) {
	e := startServer(t)
	ctx := context.Background()
	sub := e.Boot.SubscriptionID
	owner := e.owner()

	groups, err := armresources.NewResourceGroupsClient(sub, owner, e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	vaults, err := armkeyvault.NewVaultsClient(sub, owner, e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct{ group, vault string }{{"rg-a", "kv-graph-a"}, {"rg-b", "kv-graph-b"}} {
		if _, err := groups.CreateOrUpdate(ctx, g.group, armresources.ResourceGroup{Location: to.Ptr("westus")}, nil); err != nil {
			t.Fatalf("create group %s: %v", g.group, err)
		}
		poller, err := vaults.BeginCreateOrUpdate(ctx, g.group, g.vault, armkeyvault.VaultCreateOrUpdateParameters{
			Location: to.Ptr("westus"),
			Tags:     map[string]*string{"group": to.Ptr(g.group)},
			Properties: &armkeyvault.VaultProperties{
				TenantID:              to.Ptr(e.Boot.TenantID),
				SKU:                   &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
				EnableSoftDelete:      to.Ptr(true),
				EnablePurgeProtection: to.Ptr(true),
			},
		}, nil)
		if err != nil {
			t.Fatalf("create vault %s: %v", g.vault, err)
		}
		if _, err := poller.PollUntilDone(ctx, nil); err != nil {
			t.Fatalf("create vault %s: %v", g.vault, err)
		}
	}

	g := e.graph(owner)
	t.Run("vaults by type", func(t *testing.T) {
		resp, rows := query(t, g, "resources | where type =~ 'Microsoft.KeyVault/vaults' | project id, name, type, resourceGroup, properties.vaultUri, tags.group | order by name asc", nil)
		if got := names(rows); got != "kv-graph-a,kv-graph-b" {
			t.Fatalf("names = %s", got)
		}
		r := rows[0]
		if r["id"] != "/subscriptions/"+sub+"/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/kv-graph-a" ||
			r["type"] != "microsoft.keyvault/vaults" || r["resourceGroup"] != "rg-a" || r["tags_group"] != "rg-a" ||
			!strings.HasSuffix(r["properties_vaultUri"].(string), "/vaults/kv-graph-a/") {
			t.Errorf("row = %v", r)
		}
		if *resp.TotalRecords != 2 || *resp.Count != 2 || *resp.ResultTruncated != armresourcegraph.ResultTruncatedFalse || resp.SkipToken != nil {
			t.Errorf("totalRecords %d count %d truncated %s", *resp.TotalRecords, *resp.Count, *resp.ResultTruncated)
		}
	})
	t.Run("resource groups by type", func(t *testing.T) {
		_, rows := query(t, g, "resourcecontainers | where type =~ 'microsoft.resources/subscriptions/resourcegroups' | where name startswith 'rg-' | project name, location, properties.provisioningState | order by name asc", nil)
		if got := names(rows); got != "rg-a,rg-b" || rows[0]["location"] != "westus" || rows[0]["properties_provisioningState"] != "Succeeded" {
			t.Errorf("rows = %v", rows)
		}
	})
	t.Run("paging with skip tokens", func(t *testing.T) {
		q := "resources | where type =~ 'microsoft.keyvault/vaults' | order by name asc | project name"
		resp, rows := query(t, g, q, &armresourcegraph.QueryRequestOptions{Top: to.Ptr[int32](1)})
		if names(rows) != "kv-graph-a" || resp.SkipToken == nil || *resp.TotalRecords != 2 {
			t.Fatalf("first page %v, token %v", rows, resp.SkipToken)
		}
		resp, rows = query(t, g, q, &armresourcegraph.QueryRequestOptions{Top: to.Ptr[int32](1), SkipToken: resp.SkipToken})
		if names(rows) != "kv-graph-b" || resp.SkipToken != nil {
			t.Errorf("second page %v, token %v", rows, resp.SkipToken)
		}
	})
	t.Run("table format", func(t *testing.T) {
		resp, err := g.Resources(ctx, armresourcegraph.QueryRequest{
			Query:   to.Ptr("resources | summarize count() by type"),
			Options: &armresourcegraph.QueryRequestOptions{ResultFormat: to.Ptr(armresourcegraph.ResultFormatTable)},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(resp.Data)
		if want := `{"columns":[{"name":"type","type":"string"},{"name":"count_","type":"integer"}],"rows":[["microsoft.keyvault/vaults",2]]}`; string(b) != want {
			t.Errorf("data = %s, want %s", b, want)
		}
	})
	t.Run("subscriptions narrow the scope", func(t *testing.T) {
		_, rows := query(t, g, "resources | count", nil, "00000000-0000-4000-8000-000000000000")
		if len(rows) != 1 || rows[0]["Count"] != float64(0) {
			t.Errorf("rows = %v", rows)
		}
		_, rows = query(t, g, "resources | count", nil, sub)
		if len(rows) != 1 || rows[0]["Count"] != float64(2) {
			t.Errorf("rows = %v", rows)
		}
	})
	t.Run("parser failure", func(t *testing.T) {
		_, err := g.Resources(ctx, armresourcegraph.QueryRequest{Query: to.Ptr("resources\n| where type =~~ 'x'")}, nil)
		var re *azcore.ResponseError
		if !errors.As(err, &re) {
			t.Fatalf("err = %v", err)
		}
		if re.StatusCode != 400 || re.ErrorCode != "BadRequest" {
			t.Errorf("status %d code %s", re.StatusCode, re.ErrorCode)
		}
		body, _ := io.ReadAll(re.RawResponse.Body)
		var got struct {
			Error struct {
				Message string
				Details []struct {
					Code                    string
					Line                    int
					CharacterPositionInLine int
					Token                   string
				}
			}
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		d := got.Error.Details
		if len(d) != 2 || d[0].Code != "InvalidQuery" || d[1].Code != "ParserFailure" || d[1].Line != 2 || d[1].CharacterPositionInLine != 15 || d[1].Token != "~" ||
			!strings.Contains(got.Error.Message, "line 2, column 16") {
			t.Errorf("error body %s", body)
		}
	})

	// A user with Reader on rg-a sees only rg-a and what is in it.
	userID, userCred := e.newUser("graph-reader")
	assignments, err := armauthorization.NewRoleAssignmentsClient(sub, owner, e.ARMOptions())
	if err != nil {
		t.Fatal(err)
	}
	scope := "/subscriptions/" + sub + "/resourceGroups/rg-a"
	if _, err := assignments.Create(ctx, scope, "8d1f2b9e-5a4c-4e3b-9f21-6c7d8e9fa0b1", armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			PrincipalID:      to.Ptr(userID),
			PrincipalType:    to.Ptr(armauthorization.PrincipalTypeUser),
			RoleDefinitionID: to.Ptr("/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + readerRoleID),
		},
	}, nil); err != nil {
		t.Fatalf("assign Reader: %v", err)
	}
	ug := e.graph(userCred)
	t.Run("reader on one group", func(t *testing.T) {
		_, rows := query(t, ug, "resources | project name, resourceGroup", nil)
		if names(rows) != "kv-graph-a" {
			t.Errorf("resources = %v", rows)
		}
		_, rows = query(t, ug, "resourcecontainers | project name, type", nil)
		if names(rows) != "rg-a" {
			t.Errorf("containers = %v", rows)
		}
	})
	t.Run("nobody sees nothing", func(t *testing.T) {
		_, cred := e.newUser("graph-nobody")
		ng := e.graph(cred)
		for _, q := range []string{"resources | count", "resourcecontainers | count"} {
			if _, rows := query(t, ng, q, nil); len(rows) != 1 || rows[0]["Count"] != float64(0) {
				t.Errorf("%s: %v", q, rows)
			}
		}
	})

	// The enterprise policy type is registered by the server: its managed
	// identity is found through the graph, as Terraform finds it.
	t.Run("policy identity", func(t *testing.T) {
		providers, err := armresources.NewProvidersClient(sub, owner, e.ARMOptions())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := providers.Register(ctx, "Microsoft.PowerPlatform", nil); err != nil {
			t.Fatalf("register: %v", err)
		}
		for i := 0; ; i++ {
			p, err := providers.Get(ctx, "Microsoft.PowerPlatform", nil)
			if err != nil {
				t.Fatal(err)
			}
			if *p.RegistrationState == "Registered" {
				break
			}
			if i == 100 {
				t.Fatalf("still %s", *p.RegistrationState)
			}
			time.Sleep(10 * time.Millisecond)
		}
		resources, err := armresources.NewClient(sub, owner, e.ARMOptions())
		if err != nil {
			t.Fatal(err)
		}
		id := "/subscriptions/" + sub + "/resourceGroups/rg-b/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-graph"
		poller, err := resources.BeginCreateOrUpdateByID(ctx, id, "2020-10-30", armresources.GenericResource{
			Kind: to.Ptr("Identity"), Location: to.Ptr("unitedstates"),
			Identity: &armresources.Identity{Type: to.Ptr(armresources.ResourceIdentityTypeSystemAssigned)},
		}, nil)
		if err != nil {
			t.Fatalf("create policy: %v", err)
		}
		created, err := poller.PollUntilDone(ctx, nil)
		if err != nil {
			t.Fatalf("create policy: %v", err)
		}
		if created.Identity == nil || created.Identity.PrincipalID == nil || *created.Identity.PrincipalID == "" {
			t.Fatalf("created %+v", created.GenericResource)
		}
		principal := *created.Identity.PrincipalID
		_, rows := query(t, g, "resources | where type =~ 'Microsoft.PowerPlatform/enterprisePolicies' | project id, name, identity.principalId", nil)
		if len(rows) != 1 || rows[0]["id"] != id || rows[0]["identity_principalId"] != principal {
			t.Errorf("rows = %v, want %s with %s", rows, id, principal)
		}
		// The seed's Resource Graph Explorer step, as the explorer words it.
		_, rows = query(t, g, `resources | where type == "microsoft.powerplatform/enterprisepolicies"`, nil)
		if len(rows) != 1 || rows[0]["kind"] != "Identity" || rows[0]["location"] != "unitedstates" {
			t.Errorf("explorer rows = %v", rows)
		}
		props, _ := rows[0]["properties"].(map[string]any)
		if sysID, _ := props["systemId"].(string); !strings.HasPrefix(sysID, "/regions/unitedstates/providers/Microsoft.PowerPlatform/enterprisePolicies/") {
			t.Errorf("properties = %v", props)
		}
		// The reader of rg-a does not see a policy in rg-b.
		if _, rows := query(t, ug, "resources | where type =~ 'microsoft.powerplatform/enterprisepolicies'", nil); len(rows) != 0 {
			t.Errorf("the reader of rg-a sees %v", rows)
		}
	})
}
