package storetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

func testSubscriptions(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	a := &keyhold.Subscription{ID: "00000000-0000-0000-0000-00000000000b", TenantID: "t1", DisplayName: "B", State: "Enabled", CreatedAt: t0}
	b := &keyhold.Subscription{ID: "00000000-0000-0000-0000-00000000000A", TenantID: "t1", DisplayName: "A", State: "Enabled", CreatedAt: t0}
	c := &keyhold.Subscription{ID: "00000000-0000-0000-0000-00000000000c", TenantID: "t2", DisplayName: "C", State: "Disabled", CreatedAt: t0}
	for _, sub := range []*keyhold.Subscription{a, b, c} {
		must(t, s.CreateSubscription(ctx, sub))
	}
	got, err := s.GetSubscription(ctx, strings.ToLower(b.ID))
	must(t, err)
	same(t, "GetSubscription (other case)", got, b)
	_, err = s.GetSubscription(ctx, "nope")
	wantCode(t, "GetSubscription(missing)", err, keyhold.ENotFound)
	wantCode(t, "CreateSubscription(same id other case)",
		s.CreateSubscription(ctx, &keyhold.Subscription{ID: strings.ToUpper(a.ID), TenantID: "t1"}), keyhold.EConflict)
	wantCode(t, "CreateSubscription(no id)", s.CreateSubscription(ctx, &keyhold.Subscription{}), keyhold.EInvalid)

	list, err := s.ListSubscriptions(ctx, "t1")
	must(t, err)
	same(t, "ListSubscriptions(t1)", list, []*keyhold.Subscription{b, a})
	list, err = s.ListSubscriptions(ctx, "")
	must(t, err)
	same(t, "ListSubscriptions(all)", list, []*keyhold.Subscription{b, a, c})
	list, err = s.ListSubscriptions(ctx, "t9")
	must(t, err)
	same(t, "ListSubscriptions(unknown)", len(list), 0)
}

func testResourceGroups(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	first := &keyhold.ResourceGroup{SubscriptionID: "s1", Name: "MyGroup", Location: "westeurope",
		Tags: map[string]string{"a": "1"}, ProvisioningState: "Succeeded",
		SystemData: keyhold.SystemData{CreatedBy: "ann", CreatedByType: "User", CreatedAt: t0,
			LastModifiedBy: "ann", LastModifiedByType: "User", LastModifiedAt: t0}}
	must(t, s.PutResourceGroup(ctx, first))
	got, err := s.GetResourceGroup(ctx, "S1", "mygroup")
	must(t, err)
	same(t, "GetResourceGroup (other case)", got, first)

	// A second PUT in another case replaces the mutable parts and keeps the
	// first name and creation record.
	second := &keyhold.ResourceGroup{SubscriptionID: "s1", Name: "MYGROUP", Location: "northeurope",
		Tags: map[string]string{"b": "2"}, ManagedBy: "/subscriptions/s1/x", ProvisioningState: "Deleting",
		SystemData: keyhold.SystemData{CreatedBy: "bob", CreatedByType: "Application", CreatedAt: t0.Add(time.Hour),
			LastModifiedBy: "bob", LastModifiedByType: "Application", LastModifiedAt: t0.Add(time.Hour)}}
	must(t, s.PutResourceGroup(ctx, second))
	got, err = s.GetResourceGroup(ctx, "s1", "MyGroup")
	must(t, err)
	want := *second
	want.Name = "MyGroup"
	want.SystemData.CreatedBy, want.SystemData.CreatedByType, want.SystemData.CreatedAt = "ann", "User", t0
	same(t, "GetResourceGroup after second PUT", got, &want)

	other := &keyhold.ResourceGroup{SubscriptionID: "s1", Name: "alpha", Location: "westeurope"}
	elsewhere := &keyhold.ResourceGroup{SubscriptionID: "s2", Name: "MyGroup", Location: "westeurope"}
	must(t, s.PutResourceGroup(ctx, other))
	must(t, s.PutResourceGroup(ctx, elsewhere))
	list, err := s.ListResourceGroups(ctx, "s1")
	must(t, err)
	same(t, "ListResourceGroups", list, []*keyhold.ResourceGroup{other, &want})

	wantCode(t, "PutResourceGroup(no name)", s.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: "s1"}), keyhold.EInvalid)
	wantCode(t, "PutResourceGroup(no subscription)", s.PutResourceGroup(ctx, &keyhold.ResourceGroup{Name: "x"}), keyhold.EInvalid)

	must(t, s.DeleteResourceGroup(ctx, "s1", "MYGROUP"))
	_, err = s.GetResourceGroup(ctx, "s1", "MyGroup")
	wantCode(t, "GetResourceGroup(deleted)", err, keyhold.ENotFound)
	if got, want := keyhold.ErrorMessage(err), `sqlstore: resource group "MyGroup" not found`; got != want {
		t.Errorf("not-found message: got %q, want %q", got, want)
	}
	wantCode(t, "DeleteResourceGroup(again)", s.DeleteResourceGroup(ctx, "s1", "mygroup"), keyhold.ENotFound)
	_, err = s.GetResourceGroup(ctx, "s2", "mygroup")
	must(t, err)
}

func testRegistrations(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	pp := &keyhold.ProviderRegistration{SubscriptionID: "s1", Namespace: "Microsoft.PowerPlatform",
		State: keyhold.StateRegistering, UpdatedAt: t0}
	kv := &keyhold.ProviderRegistration{SubscriptionID: "s1", Namespace: "Microsoft.KeyVault",
		State: keyhold.StateRegistered, UpdatedAt: t0}
	must(t, s.PutProviderRegistration(ctx, pp))
	must(t, s.PutProviderRegistration(ctx, kv))
	must(t, s.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: "s2",
		Namespace: "Microsoft.KeyVault", State: keyhold.StateRegistered, UpdatedAt: t0}))
	_, err := s.GetProviderRegistration(ctx, "s1", "Microsoft.Resources")
	wantCode(t, "GetProviderRegistration(never registered)", err, keyhold.ENotFound)

	// Put again in another case: state changes, the namespace keeps its case.
	must(t, s.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: "s1",
		Namespace: "microsoft.powerplatform", State: keyhold.StateRegistered, UpdatedAt: t0.Add(time.Minute)}))
	got, err := s.GetProviderRegistration(ctx, "s1", "MICROSOFT.POWERPLATFORM")
	must(t, err)
	wantPP := *pp
	wantPP.State, wantPP.UpdatedAt = keyhold.StateRegistered, t0.Add(time.Minute)
	same(t, "GetProviderRegistration", got, &wantPP)
	list, err := s.ListProviderRegistrations(ctx, "s1")
	must(t, err)
	same(t, "ListProviderRegistrations", list, []*keyhold.ProviderRegistration{kv, &wantPP})
	wantCode(t, "PutProviderRegistration(no namespace)",
		s.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: "s1"}), keyhold.EInvalid)

	f1 := &keyhold.FeatureRegistration{SubscriptionID: "s1", Namespace: "Microsoft.PowerPlatform",
		Name: "enterprisePoliciesPreview", State: keyhold.StateRegistering, UpdatedAt: t0}
	f2 := &keyhold.FeatureRegistration{SubscriptionID: "s1", Namespace: "Microsoft.KeyVault",
		Name: "preview", State: keyhold.StateRegistered, UpdatedAt: t0}
	f3 := &keyhold.FeatureRegistration{SubscriptionID: "s1", Namespace: "Microsoft.PowerPlatform",
		Name: "another", State: keyhold.StateRegistered, UpdatedAt: t0}
	for _, f := range []*keyhold.FeatureRegistration{f1, f2, f3} {
		must(t, s.PutFeatureRegistration(ctx, f))
	}
	must(t, s.PutFeatureRegistration(ctx, &keyhold.FeatureRegistration{SubscriptionID: "S1",
		Namespace: "MICROSOFT.POWERPLATFORM", Name: "ENTERPRISEPOLICIESPREVIEW", State: keyhold.StateRegistered, UpdatedAt: t0}))
	gotF, err := s.GetFeatureRegistration(ctx, "s1", "microsoft.powerplatform", "EnterprisePoliciesPreview")
	must(t, err)
	wantF1 := *f1
	wantF1.State = keyhold.StateRegistered
	same(t, "GetFeatureRegistration", gotF, &wantF1)
	_, err = s.GetFeatureRegistration(ctx, "s1", "Microsoft.PowerPlatform", "nope")
	wantCode(t, "GetFeatureRegistration(never registered)", err, keyhold.ENotFound)

	tests := []struct {
		ns   string
		want []*keyhold.FeatureRegistration
	}{
		{"", []*keyhold.FeatureRegistration{f2, f3, &wantF1}},
		{"microsoft.powerplatform", []*keyhold.FeatureRegistration{f3, &wantF1}},
		{"Microsoft.Other", []*keyhold.FeatureRegistration{}},
	}
	for _, tt := range tests {
		got, err := s.ListFeatureRegistrations(ctx, "s1", tt.ns)
		must(t, err)
		same(t, "ListFeatureRegistrations("+tt.ns+")", got, tt.want)
	}
	wantCode(t, "PutFeatureRegistration(no name)", s.PutFeatureRegistration(ctx,
		&keyhold.FeatureRegistration{SubscriptionID: "s1", Namespace: "x"}), keyhold.EInvalid)
}

func testRoleAssignments(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	a := &keyhold.RoleAssignment{Name: "3f6c1e2a-0000-0000-0000-000000000001", TenantID: "t1",
		Scope: "/subscriptions/S1/resourceGroups/RG", RoleDefinitionID: "b24988ac-6180-42a0-ab88-20f7382dd24c",
		PrincipalID: "u1", PrincipalType: keyhold.PrincipalUser, Description: "reader", CreatedBy: "admin",
		CreatedAt: t0, UpdatedAt: t0.Add(time.Second)}
	must(t, s.CreateRoleAssignment(ctx, a))
	got, err := s.GetRoleAssignment(ctx, strings.ToUpper(a.Name))
	must(t, err)
	same(t, "GetRoleAssignment", got, a)
	wantCode(t, "CreateRoleAssignment(same name)", s.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{
		Name: a.Name, Scope: "/", RoleDefinitionID: "r", PrincipalID: "u2"}), keyhold.EConflict)
	for _, bad := range []*keyhold.RoleAssignment{
		{Scope: "/", RoleDefinitionID: "r", PrincipalID: "u"},
		{Name: "n", RoleDefinitionID: "r", PrincipalID: "u"},
		{Name: "n", Scope: "/", PrincipalID: "u"},
		{Name: "n", Scope: "/", RoleDefinitionID: "r"},
	} {
		wantCode(t, "CreateRoleAssignment(incomplete)", s.CreateRoleAssignment(ctx, bad), keyhold.EInvalid)
	}
	must(t, s.DeleteRoleAssignment(ctx, a.Name))
	_, err = s.GetRoleAssignment(ctx, a.Name)
	wantCode(t, "GetRoleAssignment(deleted)", err, keyhold.ENotFound)
	wantCode(t, "DeleteRoleAssignment(again)", s.DeleteRoleAssignment(ctx, a.Name), keyhold.ENotFound)
}

func testRoleAssignmentScopePrefix(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	assignments := []struct{ name, tenant, scope, principal string }{
		{"root", "t1", "/", "u1"},
		{"sub-a", "t1", "/subscriptions/a", "u1"},
		{"sub-ab", "t1", "/subscriptions/ab", "u2"},
		{"rg", "t1", "/subscriptions/A/resourceGroups/RG", "u2"},
		{"rg2", "t1", "/subscriptions/a/resourceGroups/rg2", "u1"},
		{"vault", "t1", "/subscriptions/a/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v1", "u1"},
		{"other-tenant", "t2", "/subscriptions/a", "u3"},
		{"under_score", "t1", "/subscriptions/a_b", "u3"},
		{"dotted", "t1", "/subscriptions/a.b", "u4"}, // sorts between "/subscriptions/a" and "/subscriptions/a/"
	}
	for _, a := range assignments {
		must(t, s.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: a.name, TenantID: a.tenant, Scope: a.scope,
			RoleDefinitionID: "r", PrincipalID: a.principal, PrincipalType: keyhold.PrincipalUser}))
	}
	names := func(list []*keyhold.RoleAssignment) []string {
		out := []string{}
		for _, a := range list {
			out = append(out, a.Name)
		}
		return out
	}
	tests := []struct {
		name string
		f    keyhold.RoleAssignmentFilter
		want []string // in store order: scope, then name
	}{
		{"subscription", keyhold.RoleAssignmentFilter{TenantID: "t1", ScopePrefix: "/subscriptions/a"},
			[]string{"sub-a", "rg", "vault", "rg2"}},
		{"subscription trailing slash, upper case", keyhold.RoleAssignmentFilter{TenantID: "t1", ScopePrefix: "/SUBSCRIPTIONS/A/"},
			[]string{"sub-a", "rg", "vault", "rg2"}},
		{"resource group", keyhold.RoleAssignmentFilter{ScopePrefix: "/subscriptions/a/resourceGroups/rg"},
			[]string{"rg", "vault"}},
		{"root covers all of the tenant", keyhold.RoleAssignmentFilter{TenantID: "t1", ScopePrefix: "/"},
			[]string{"root", "sub-a", "dotted", "rg", "vault", "rg2", "under_score", "sub-ab"}},
		{"underscore is literal", keyhold.RoleAssignmentFilter{ScopePrefix: "/subscriptions/a_b"}, []string{"under_score"}},
		{"exact scope", keyhold.RoleAssignmentFilter{Scope: "/Subscriptions/A"}, []string{"other-tenant", "sub-a"}},
		{"exact root", keyhold.RoleAssignmentFilter{Scope: "/"}, []string{"root"}},
		{"principal", keyhold.RoleAssignmentFilter{PrincipalID: "u2"}, []string{"rg", "sub-ab"}},
		{"principal and prefix", keyhold.RoleAssignmentFilter{PrincipalID: "u1", ScopePrefix: "/subscriptions/a/resourcegroups"},
			[]string{"vault", "rg2"}},
		{"tenant", keyhold.RoleAssignmentFilter{TenantID: "t2"}, []string{"other-tenant"}},
		{"nothing below", keyhold.RoleAssignmentFilter{ScopePrefix: "/subscriptions/zz"}, []string{}},
	}
	for _, tt := range tests {
		got, err := s.ListRoleAssignments(ctx, tt.f)
		must(t, err)
		same(t, "ListRoleAssignments("+tt.name+")", names(got), tt.want)
	}
}

func testResources(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	id := "/subscriptions/S1/resourceGroups/RG/providers/Microsoft.PowerPlatform/enterprisePolicies/Policy1"
	r := &keyhold.Resource{ID: id, SubscriptionID: "S1", ResourceGroup: "RG",
		Type: "Microsoft.PowerPlatform/enterprisePolicies", Name: "Policy1", Location: "europe", Kind: "Encryption",
		Tags: map[string]string{"owner": "ann"}, SKU: json.RawMessage(`{"name":"standard"}`),
		Identity:   json.RawMessage(`{"type":"SystemAssigned","principalId":"mi1"}`),
		Properties: json.RawMessage(`{"encryption":{"state":"Enabled"},"n":[1,2.5,"x"]}`),
		SystemData: keyhold.SystemData{CreatedBy: "ann", CreatedByType: "User", CreatedAt: t0,
			LastModifiedBy: "ann", LastModifiedByType: "User", LastModifiedAt: t0},
		ETag: `"0x1"`}
	must(t, s.PutResource(ctx, r))
	got, err := s.GetResource(ctx, strings.ToLower(id))
	must(t, err)
	same(t, "GetResource (other case)", got, r)

	// Replace through an id in another case: everything but the id and the
	// creation record is replaced; absent JSON stays absent.
	r2 := &keyhold.Resource{ID: strings.ToUpper(id), SubscriptionID: "S1", ResourceGroup: "RG",
		Type: "Microsoft.PowerPlatform/enterprisePolicies", Name: "Policy1", Location: "europe", Kind: "Encryption",
		Properties: json.RawMessage(`{"encryption":{"state":"Disabled"}}`),
		SystemData: keyhold.SystemData{CreatedBy: "bob", CreatedAt: t0.Add(time.Hour),
			LastModifiedBy: "bob", LastModifiedByType: "User", LastModifiedAt: t0.Add(time.Hour)},
		ETag: `"0x2"`}
	must(t, s.PutResource(ctx, r2))
	got, err = s.GetResource(ctx, id)
	must(t, err)
	want := *r2
	want.ID = id
	want.SystemData.CreatedBy, want.SystemData.CreatedByType, want.SystemData.CreatedAt = "ann", "User", t0
	same(t, "GetResource after replace", got, &want)
	if got.SKU != nil || got.Identity != nil || got.Tags != nil {
		t.Errorf("replaced resource kept SKU %s, Identity %s, Tags %v; want them gone", got.SKU, got.Identity, got.Tags)
	}

	for _, bad := range []*keyhold.Resource{
		{},
		{ID: "/x", Properties: json.RawMessage(`{"unterminated"`)},
		{ID: "/x", SKU: json.RawMessage(`nope`)},
		{ID: "/x", Identity: json.RawMessage(`{`)},
	} {
		wantCode(t, "PutResource(bad)", s.PutResource(ctx, bad), keyhold.EInvalid)
	}
	_, err = s.GetResource(ctx, "/x")
	wantCode(t, "GetResource(refused)", err, keyhold.ENotFound)

	must(t, s.DeleteResource(ctx, strings.ToUpper(id)))
	_, err = s.GetResource(ctx, id)
	wantCode(t, "GetResource(deleted)", err, keyhold.ENotFound)
	wantCode(t, "DeleteResource(again)", s.DeleteResource(ctx, id), keyhold.ENotFound)
}

func testListResources(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	rs := []*keyhold.Resource{
		{ID: "/subscriptions/s1/resourceGroups/RG1/providers/Microsoft.KeyVault/vaults/b", SubscriptionID: "s1", ResourceGroup: "RG1", Type: "Microsoft.KeyVault/vaults", Name: "b"},
		{ID: "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/A", SubscriptionID: "s1", ResourceGroup: "rg1", Type: "Microsoft.KeyVault/vaults", Name: "A"},
		{ID: "/subscriptions/s1/resourceGroups/rg2/providers/Microsoft.PowerPlatform/enterprisePolicies/p", SubscriptionID: "s1", ResourceGroup: "rg2", Type: "Microsoft.PowerPlatform/enterprisePolicies", Name: "p"},
		{ID: "/subscriptions/s2/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/c", SubscriptionID: "s2", ResourceGroup: "rg1", Type: "Microsoft.KeyVault/vaults", Name: "c"},
	}
	for _, r := range rs {
		must(t, s.PutResource(ctx, r))
	}
	names := func(list []*keyhold.Resource) []string {
		out := []string{}
		for _, r := range list {
			out = append(out, r.Name)
		}
		return out
	}
	tests := []struct {
		name string
		f    keyhold.ResourceFilter
		want []string
	}{
		{"all, ordered by id", keyhold.ResourceFilter{}, []string{"A", "b", "p", "c"}},
		{"subscription", keyhold.ResourceFilter{SubscriptionID: "S1"}, []string{"A", "b", "p"}},
		{"group any case", keyhold.ResourceFilter{SubscriptionID: "s1", ResourceGroup: "Rg1"}, []string{"A", "b"}},
		{"type any case", keyhold.ResourceFilter{Type: "microsoft.keyvault/VAULTS"}, []string{"A", "b", "c"}},
		{"group across subscriptions", keyhold.ResourceFilter{ResourceGroup: "rg1", Type: "Microsoft.KeyVault/vaults"}, []string{"A", "b", "c"}},
		{"none", keyhold.ResourceFilter{SubscriptionID: "s3"}, []string{}},
		{"name any case", keyhold.ResourceFilter{Name: "a"}, []string{"A"}},
		{"name and type", keyhold.ResourceFilter{Name: "C", Type: "Microsoft.KeyVault/vaults"}, []string{"c"}},
		{"name is exact, not a prefix", keyhold.ResourceFilter{Name: "vault"}, []string{}},
		{"name of another type", keyhold.ResourceFilter{Name: "p", Type: "Microsoft.KeyVault/vaults"}, []string{}},
	}
	for _, tt := range tests {
		got, err := s.ListResources(ctx, tt.f)
		must(t, err)
		same(t, "ListResources("+tt.name+")", names(got), tt.want)
	}
	// A replacing PUT moves the name with it.
	renamed := *rs[3]
	renamed.Name = "C2"
	must(t, s.PutResource(ctx, &renamed))
	for name, want := range map[string][]string{"c2": {"C2"}, "c": {}} {
		got, err := s.ListResources(ctx, keyhold.ResourceFilter{Name: name})
		must(t, err)
		same(t, "ListResources(name "+name+" after rename)", names(got), want)
	}
}
