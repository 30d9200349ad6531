package armid

import (
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

const sub = "00000000-0000-0000-0000-0000000000aa"

func TestParse(t *testing.T) {
	tests := []struct {
		in        string
		canonical string
		typ       string
		name      string
		rg        string
		parent    string
	}{
		{"/", "/", TypeTenant, "", "", "/"},
		{"/subscriptions/" + strings.ToUpper(sub), "/subscriptions/" + sub, TypeSubscription, sub, "", "/"},
		{"/SUBSCRIPTIONS/" + sub + "/resourcegroups/My.RG(1)", "/subscriptions/" + sub + "/resourceGroups/My.RG(1)", TypeResourceGroup, "My.RG(1)", "My.RG(1)", "/subscriptions/" + sub},
		{
			"/subscriptions/" + sub + "/resourceGroups/rg/PROVIDERS/Microsoft.KeyVault/vaults/kv1",
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1",
			"Microsoft.KeyVault/vaults", "kv1", "rg",
			"/subscriptions/" + sub + "/resourceGroups/rg",
		},
		{
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1/keys/k1",
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1/keys/k1",
			"Microsoft.KeyVault/vaults/keys", "k1", "rg",
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1",
		},
		{
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1/providers/Microsoft.Authorization/roleAssignments/0b0b0b0b-0000-0000-0000-000000000001",
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1/providers/Microsoft.Authorization/roleAssignments/0b0b0b0b-0000-0000-0000-000000000001",
			"Microsoft.Authorization/roleAssignments", "0b0b0b0b-0000-0000-0000-000000000001", "rg",
			"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv1",
		},
		{
			"/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
			"/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
			"Microsoft.Authorization/roleDefinitions", "acdd72a7-3385-48ef-bd42-f606fba81ae7", "", "/",
		},
		{
			"/subscriptions/" + sub + "/providers/Microsoft.Features/providers/Microsoft.PowerPlatform/features/enterprisePoliciesPreview",
			"/subscriptions/" + sub + "/providers/Microsoft.Features/providers/Microsoft.PowerPlatform/features/enterprisePoliciesPreview",
			"Microsoft.Features/providers/features", "enterprisePoliciesPreview", "",
			"/subscriptions/" + sub + "/providers/Microsoft.Features/providers/Microsoft.PowerPlatform",
		},
		{
			"/subscriptions/" + sub + "/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/kv1",
			"/subscriptions/" + sub + "/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/kv1",
			"Microsoft.KeyVault/locations/deletedVaults", "kv1", "",
			"/subscriptions/" + sub + "/providers/Microsoft.KeyVault/locations/westeurope",
		},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			id, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := id.String(); got != tt.canonical {
				t.Errorf("String() = %q, want %q", got, tt.canonical)
			}
			if got := id.Type(); got != tt.typ {
				t.Errorf("Type() = %q, want %q", got, tt.typ)
			}
			if got := id.Name(); got != tt.name {
				t.Errorf("Name() = %q, want %q", got, tt.name)
			}
			if got := id.ResourceGroup(); got != tt.rg {
				t.Errorf("ResourceGroup() = %q, want %q", got, tt.rg)
			}
			if got := id.Parent().String(); got != tt.parent {
				t.Errorf("Parent() = %q, want %q", got, tt.parent)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, detail string
	}{
		{"", "InvalidResourceId"},
		{"subscriptions/" + sub, "InvalidResourceId"},
		{"/subscriptions/", "InvalidResourceId"},
		{"/subscriptions", "InvalidResourceId"},
		{"/subscriptions/not-a-guid", "InvalidSubscriptionId"},
		{"/subscriptions/" + sub + "/", "InvalidResourceId"},
		{"/subscriptions/" + sub + "//resourceGroups/rg", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg./", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg.", "InvalidResourceGroupName"},
		{"/subscriptions/" + sub + "/resourceGroups/r g", "InvalidResourceGroupName"},
		{"/subscriptions/" + sub + "/resourceGroups/" + strings.Repeat("a", 91), "InvalidResourceGroupName"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/KeyVault/vaults/kv", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/a<b", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/a%b", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv.", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/1vaults/kv", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/foo/bar", "InvalidResourceId"},
		{"/tenants/x", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/providers/Microsoft.Authorization", "InvalidResourceId"},
		{"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/a\x00b", "InvalidResourceId"},
		{"/\xff", "InvalidResourceId"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if got := keyhold.ErrorCode(err); got != keyhold.EInvalid {
				t.Errorf("code = %q, want %q", got, keyhold.EInvalid)
			}
			if got := keyhold.ErrorDetail(err); got != tt.detail {
				t.Errorf("detail = %q, want %q (%v)", got, tt.detail, err)
			}
		})
	}
}

func TestAncestors(t *testing.T) {
	id := MustParse("/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k")
	var got []string
	for _, a := range id.Ancestors() {
		got = append(got, a.String())
	}
	want := []string{
		"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
		"/subscriptions/" + sub + "/resourceGroups/rg",
		"/subscriptions/" + sub,
		"/",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Ancestors() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := len(Root.Ancestors()); n != 0 {
		t.Errorf("Root.Ancestors() has %d entries, want 0", n)
	}
}

func TestIsUnder(t *testing.T) {
	s := "/subscriptions/" + sub
	tests := []struct {
		id, scope string
		want      bool
	}{
		{s + "/resourceGroups/rg", "/", true},
		{s + "/resourceGroups/rg", s, true},
		{s + "/resourceGroups/rg", strings.ToUpper(s) + "/RESOURCEGROUPS/RG", true},
		{s + "/resourceGroups/rg1", s + "/resourceGroups/rg", false},
		{s + "/resourceGroups/rg", s + "/resourceGroups/rg1", false},
		{s, s + "/resourceGroups/rg", false},
		{s + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", s + "/resourceGroups/rg", true},
		{"/", s, false},
		{"/subscriptions/00000000-0000-0000-0000-0000000000ab", s, false},
	}
	for _, tt := range tests {
		if got := MustParse(tt.id).IsUnder(MustParse(tt.scope)); got != tt.want {
			t.Errorf("%s IsUnder %s = %v, want %v", tt.id, tt.scope, got, tt.want)
		}
	}
}

func TestChild(t *testing.T) {
	g := MustParse("/subscriptions/" + sub + "/resourceGroups/rg")
	got, err := g.Child("Microsoft.KeyVault", "vaults/keys", "kv", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k1"; got.String() != want {
		t.Errorf("Child = %q, want %q", got, want)
	}
	if _, err := g.Child("Microsoft.KeyVault", "vaults/keys", "kv"); err == nil {
		t.Error("Child with a missing name succeeded")
	}
	ra, err := Root.Child("Microsoft.Authorization", "roleDefinitions", "x")
	if err != nil || ra.String() != "/providers/Microsoft.Authorization/roleDefinitions/x" {
		t.Errorf("Root.Child = %q, %v", ra, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"/",
		"/subscriptions/" + sub,
		"/subscriptions/" + sub + "/resourceGroups/rg",
		"/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/keys/k",
		"/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
		"/subscriptions/" + sub + "/providers/Microsoft.Features/providers/Microsoft.X/features/f",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := Parse(s)
		if err != nil {
			if keyhold.ErrorCode(err) != keyhold.EInvalid {
				t.Fatalf("Parse(%q) error code %q, want invalid", s, keyhold.ErrorCode(err))
			}
			return
		}
		again, err := Parse(id.String())
		if err != nil {
			t.Fatalf("Parse(String()) of %q = %q failed: %v", s, id.String(), err)
		}
		if again.String() != id.String() || again.Type() != id.Type() || again.Name() != id.Name() {
			t.Fatalf("round trip of %q: %q (%s) != %q (%s)", s, again, again.Type(), id, id.Type())
		}
		if !strings.EqualFold(id.String(), s) {
			t.Fatalf("canonical %q differs from %q beyond case", id.String(), s)
		}
		if !id.IsUnder(id.Parent()) || !id.IsUnder(Root) {
			t.Fatalf("%q is not under its parent %q", id, id.Parent())
		}
		if n := len(id.Ancestors()); n > 200 {
			t.Fatalf("%d ancestors", n)
		}
	})
}
