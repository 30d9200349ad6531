package deploy

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

const (
	testSub   = "11111111-2222-3333-4444-555555555555"
	testGroup = "rg-contoso"
)

func testEnv() *env {
	return &env{
		params: map[string]any{
			"name": "kv-contoso", "size": float64(2048), "flag": true,
			"list": []any{"a", "b"}, "obj": map[string]any{"Inner": map[string]any{"x": "y"}},
		},
		varsRaw: map[string]any{
			"prefix": "[concat(parameters('name'), '-x')]",
			"plain":  "literal",
			"self":   "[variables('self')]",
			"a":      "[variables('b')]",
			"b":      "[variables('a')]",
		},
		vars: map[string]any{}, varsBusy: map[string]bool{},
		subscriptionID: testSub, tenantID: "tenant-1", subName: "Sub One",
		group:      &keyhold.ResourceGroup{Name: testGroup, Location: "westeurope", Tags: map[string]string{"env": "test"}},
		deployment: "dep1",
	}
}

func TestExpressions(t *testing.T) {
	tests := []struct {
		expr string
		want any
	}{
		{"plain text", "plain text"},
		{"[[not an expression]", "[not an expression]"},
		{"[parameters('name')]", "kv-contoso"},
		{"[parameters('NAME')]", "kv-contoso"},
		{"[parameters('size')]", float64(2048)},
		{"[variables('prefix')]", "kv-contoso-x"},
		{"[variables('plain')]", "literal"},
		{"[resourceGroup().name]", testGroup},
		{"[resourceGroup().location]", "westeurope"},
		{"[resourceGroup().id]", "/subscriptions/" + testSub + "/resourceGroups/" + testGroup},
		{"[resourceGroup().tags.env]", "test"},
		{"[subscription().subscriptionId]", testSub},
		{"[subscription().id]", "/subscriptions/" + testSub},
		{"[subscription().tenantId]", "tenant-1"},
		{"[deployment().name]", "dep1"},
		{"[resourceId('Microsoft.KeyVault/vaults', 'kv1')]", "/subscriptions/" + testSub + "/resourceGroups/" + testGroup + "/providers/Microsoft.KeyVault/vaults/kv1"},
		{"[resourceId('other-rg', 'Microsoft.KeyVault/vaults', 'kv1')]", "/subscriptions/" + testSub + "/resourceGroups/other-rg/providers/Microsoft.KeyVault/vaults/kv1"},
		{"[resourceId('sub2', 'rg2', 'Microsoft.KeyVault/vaults', 'kv1')]", "/subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.KeyVault/vaults/kv1"},
		{"[resourceId('Microsoft.KeyVault/vaults/accessPolicies', 'kv1', 'add')]", "/subscriptions/" + testSub + "/resourceGroups/" + testGroup + "/providers/Microsoft.KeyVault/vaults/kv1/accessPolicies/add"},
		{"[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'acdd72a7-3385-48ef-bd42-f606fba81ae7')]", "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"},
		{"[extensionResourceId('/subscriptions/s/resourceGroups/g/providers/A.B/c/d', 'Microsoft.Authorization/roleAssignments', 'n')]", "/subscriptions/s/resourceGroups/g/providers/A.B/c/d/providers/Microsoft.Authorization/roleAssignments/n"},
		{"[concat('a', 'b', 'c')]", "abc"},
		{"[concat('n', 1, true())]", "n1True"},
		{"[concat(parameters('list'), createArray('c'))]", []any{"a", "b", "c"}},
		{"[concat()]", ""},
		{"[format('{0}-{1}', 'a', 2)]", "a-2"},
		{"[format('{{literal}} {0}', 'x')]", "{literal} x"},
		{"[toLower('ABC')]", "abc"},
		{"[toUpper('abc')]", "ABC"},
		{"[guid('a', 'b')]", nameGUID("a-b")},
		{"[length(uniqueString('x'))]", float64(13)},
		{"[equals(uniqueString('x'), uniqueString('x'))]", true},
		{"[parameters('obj').inner.x]", "y"},
		{"[parameters('obj')['Inner']['x']]", "y"},
		{"[parameters('list')[1]]", "b"},
		{"['it''s']", "it's"},
		{"[ concat( 'a' , 'b' ) ]", "ab"},
		{"[if(parameters('flag'), 'yes', 'no')]", "yes"},
		{"[not(equals(1, 2))]", true},
		{"[and(true(), or(false(), true()))]", true},
		{"[empty('')]", true},
		{"[length(parameters('list'))]", float64(2)},
		{"[contains(parameters('list'), 'b')]", true},
		{"[string(parameters('size'))]", "2048"},
		{"[int('42')]", float64(42)},
		{"[bool('true')]", true},
		{"[null()]", nil},
		{"[coalesce(null(), 'x')]", "x"},
		{"[json('{\"a\":1}').a]", float64(1)},
		{"[createObject('k', 'v').k]", "v"},
		{"[replace('a-b', '-', '_')]", "a_b"},
		{"[split('a/b', '/')[1]]", "b"},
		{"[last(split('a/b/c', '/'))]", "c"},
		{"[first('xyz')]", "x"},
		{"[-1]", float64(-1)},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			got, err := testEnv().evalString(tt.expr)
			if err != nil {
				t.Fatalf("evalString(%q): %v", tt.expr, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("evalString(%q) = %#v, want %#v", tt.expr, got, tt.want)
			}
		})
	}
}

func TestExpressionErrors(t *testing.T) {
	tests := []struct {
		expr, want string
	}{
		{"[parameters('missing')]", "the template parameter 'missing' is not found"},
		{"[variables('missing')]", "the template variable 'missing' is not found"},
		{"[variables('self')]", "refers to itself"},
		{"[variables('a')]", "refers to itself"},
		{"[nosuch()]", "the template function 'nosuch' is not valid"},
		{"[concat('a']", "expected ')'"},
		{"[concat('a' 'b')]", "expected ',' or ')'"},
		{"['unclosed]", "not closed"},
		{"[parameters]", "must be followed by '('"},
		{"[]", "the expression is empty"},
		{"[parameters('list')[5]]", "outside the array"},
		{"[parameters('obj').nope]", "has no property 'nope'"},
		{"[resourceId('kv1')]", "takes at least 2"},
		{"[resourceId('a', 'b')]", "needs a resource type"},
		{"[resourceId('Microsoft.KeyVault/vaults', 'a', 'b')]", "needs 1 resource name"},
		{"[toLower(1)]", "must be a String"},
		{"[format('{3}', 'a')]", "does not name one of"},
		{"[if('x', 1, 2)]", "must be a Boolean"},
		{"[concat(createArray(1), 'a')]", "must be an Array"},
		{"[" + strings.Repeat("concat(", 100) + "'a'" + strings.Repeat(")", 100) + "]", "nested more than"},
		{"[1 2]", "unexpected '2'"},
		{"[99999999999999999999999]", "is not an integer"},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := testEnv().evalString(tt.expr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("evalString(%q) error = %v, want it to contain %q", tt.expr, err, tt.want)
			}
		})
	}
}

func TestReferenceWaitsForTheDeployment(t *testing.T) {
	_, err := testEnv().evalString("[reference('x').prop]")
	if !errors.Is(err, errNeedsDeployment) {
		t.Fatalf("reference() during validation: %v, want errNeedsDeployment", err)
	}
	e := testEnv()
	var gotTarget, gotVersion string
	var gotFull bool
	e.reference = func(target, apiVersion string, full bool) (any, error) {
		gotTarget, gotVersion, gotFull = target, apiVersion, full
		return map[string]any{"principalId": "p1"}, nil
	}
	got, err := e.evalString("[reference(resourceId('Microsoft.PowerPlatform/enterprisePolicies', 'ep'), '2020-10-30', 'Full').principalId]")
	if err != nil {
		t.Fatal(err)
	}
	if got != "p1" || !gotFull || gotVersion != "2020-10-30" || !strings.HasSuffix(gotTarget, "/enterprisePolicies/ep") {
		t.Errorf("got %v (target %q, version %q, full %v)", got, gotTarget, gotVersion, gotFull)
	}
}

func TestNameGUIDIsStableVersion5(t *testing.T) {
	a, b := nameGUID("x-y"), nameGUID("x-y")
	if a != b || len(a) != 36 || a[14] != '5' {
		t.Errorf("nameGUID = %q, %q; want the same version 5 GUID twice", a, b)
	}
	if nameGUID("x-z") == a {
		t.Error("different names gave the same GUID")
	}
}

func testSite() site {
	return site{subscriptionID: testSub, tenantID: "tenant-1", group: &keyhold.ResourceGroup{Name: testGroup, Location: "westeurope"}, deployment: "d"}
}

func compileText(t *testing.T, text string, params map[string]any) (*compiled, error) {
	t.Helper()
	raw, err := parseTemplateText([]byte(text))
	if err != nil {
		return nil, err
	}
	return compile(raw, params, testSite())
}

func TestDependsOnOrdering(t *testing.T) {
	tmpl := `{
	  "parameters": {"vault": {"type": "string", "defaultValue": "kv1"}},
	  "resources": [
	    {"type": "Microsoft.Authorization/roleAssignments", "apiVersion": "2022-04-01", "name": "[guid('r')]",
	     "scope": "[resourceId('Microsoft.KeyVault/vaults', parameters('vault'))]",
	     "dependsOn": ["[resourceId('Microsoft.KeyVault/vaults/accessPolicies', parameters('vault'), 'add')]"],
	     "properties": {"principalId": "[reference('ep', '2020-10-30', 'Full').identity.principalId]"}},
	    {"type": "Microsoft.KeyVault/vaults/accessPolicies", "apiVersion": "2023-07-01", "name": "[concat(parameters('vault'), '/add')]",
	     "dependsOn": ["[parameters('vault')]", "ep"]},
	    {"type": "Microsoft.KeyVault/vaults", "apiVersion": "2023-07-01", "name": "[parameters('vault')]", "location": "westeurope"},
	    {"type": "Microsoft.PowerPlatform/enterprisePolicies", "apiVersion": "2020-10-30", "name": "ep", "location": "europe",
	     "dependsOn": ["Microsoft.KeyVault/vaults/kv1"]}
	  ]}`
	c, err := compileText(t, tmpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range c.order {
		got = append(got, c.resources[i].Name)
	}
	want := []string{"kv1", "ep", "kv1/add", nameGUID("r")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	ids := map[string]string{}
	for _, r := range c.resources {
		ids[r.Type] = r.ID
	}
	rg := "/subscriptions/" + testSub + "/resourceGroups/" + testGroup
	wantIDs := map[string]string{
		"Microsoft.Authorization/roleAssignments":    rg + "/providers/Microsoft.KeyVault/vaults/kv1/providers/Microsoft.Authorization/roleAssignments/" + nameGUID("r"),
		"Microsoft.KeyVault/vaults/accessPolicies":   rg + "/providers/Microsoft.KeyVault/vaults/kv1/accessPolicies/add",
		"Microsoft.KeyVault/vaults":                  rg + "/providers/Microsoft.KeyVault/vaults/kv1",
		"Microsoft.PowerPlatform/enterprisePolicies": rg + "/providers/Microsoft.PowerPlatform/enterprisePolicies/ep",
	}
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Errorf("ids = %v\nwant %v", ids, wantIDs)
	}
}

func TestImplicitDependencyOnReference(t *testing.T) {
	tmpl := `{"resources": [
	    {"type": "A.B/c", "apiVersion": "1", "name": "second", "properties": {"x": "[reference('first').y]"}},
	    {"type": "A.B/c", "apiVersion": "1", "name": "first"}]}`
	c, err := compileText(t, tmpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{c.order[0], c.order[1]}; !reflect.DeepEqual(got, []int{1, 0}) {
		t.Errorf("order = %v, want [1 0]: reference() must wait for its target", got)
	}
}

func TestExtensionNameSyntax(t *testing.T) {
	tmpl := `{"resources": [{"type": "Microsoft.KeyVault/vaults/providers/roleAssignments", "apiVersion": "2022-04-01",
	    "name": "kv1/Microsoft.Authorization/0b3b2f7e-4a8e-4d7a-9a48-8f7c9e2b1d11"}]}`
	c, err := compileText(t, tmpl, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "/subscriptions/" + testSub + "/resourceGroups/" + testGroup + "/providers/Microsoft.KeyVault/vaults/kv1/providers/Microsoft.Authorization/roleAssignments/0b3b2f7e-4a8e-4d7a-9a48-8f7c9e2b1d11"
	if got := c.resources[0].ID; got != want {
		t.Errorf("id = %s, want %s", got, want)
	}
	if got := c.resources[0].Type; got != "Microsoft.Authorization/roleAssignments" {
		t.Errorf("type = %s", got)
	}
}

func TestTemplateErrors(t *testing.T) {
	res := func(extra string) string {
		return `{"type": "Microsoft.KeyVault/vaults", "apiVersion": "2023-07-01", "name": "kv1"` + extra + `}`
	}
	tests := []struct {
		name, tmpl string
		params     map[string]any
		want       string
	}{
		{"cycle", `{"resources": [
		    {"type": "A.B/c", "apiVersion": "1", "name": "x", "dependsOn": ["y"]},
		    {"type": "A.B/c", "apiVersion": "1", "name": "y", "dependsOn": ["z"]},
		    {"type": "A.B/c", "apiVersion": "1", "name": "z", "dependsOn": ["x"]}]}`, nil, "Circular dependency detected on resource: x -> y -> z -> x"},
		{"self dependency", `{"resources": [{"type": "A.B/c", "apiVersion": "1", "name": "x", "dependsOn": ["x"]}]}`, nil, "depends on itself"},
		{"unknown dependency", `{"resources": [` + res(`, "dependsOn": ["nope"]`) + `]}`, nil, "The resource 'nope' is not defined in the template"},
		{"missing parameter", `{"parameters": {"p": {"type": "string"}}, "resources": []}`, nil, "The value for the template parameter 'p' is not provided"},
		{"undeclared parameter", `{"resources": []}`, map[string]any{"x": "1"}, "The template parameter 'x' is not declared"},
		{"wrong type", `{"parameters": {"p": {"type": "int"}}, "resources": []}`, map[string]any{"p": "1"}, "Expected a value of type 'Int', but received a value of type 'String'"},
		{"secure value hidden", `{"parameters": {"p": {"type": "securestring"}}, "resources": []}`, map[string]any{"p": float64(1)}, "(secure value)"},
		{"not allowed", `{"parameters": {"p": {"type": "string", "allowedValues": ["a", "b"]}}, "resources": []}`, map[string]any{"p": "c"}, `The value must be one of "a", "b"`},
		{"too short", `{"parameters": {"p": {"type": "string", "minLength": 3}}, "resources": []}`, map[string]any{"p": "ab"}, "too short"},
		{"bad parameter type", `{"parameters": {"p": {"type": "float"}}, "resources": []}`, nil, "has the type 'float'"},
		{"copy", `{"resources": [` + res(`, "copy": {"name": "c", "count": 2}`) + `]}`, nil, "copy loops are not supported"},
		{"no type", `{"resources": [{"apiVersion": "1", "name": "x"}]}`, nil, "must have 'type'"},
		{"no apiVersion", `{"resources": [{"type": "A.B/c", "name": "x"}]}`, nil, "must have 'apiVersion'"},
		{"name segments", `{"resources": [{"type": "Microsoft.KeyVault/vaults/accessPolicies", "apiVersion": "1", "name": "kv1"}]}`, nil, "needs 2 name segment"},
		{"bad expression", `{"resources": [` + res(`, "properties": {"x": "[concat('a']"}`) + `]}`, nil, "expected ')'"},
		{"no resources", `{"parameters": {}}`, nil, "no 'resources' array"},
		{"reference in name", `{"resources": [{"type": "A.B/c", "apiVersion": "1", "name": "[reference('x').n]"}]}`, nil, "cannot use reference()"},
		{"bad variable", `{"variables": {"v": "[parameters('nope')]"}, "resources": []}`, nil, "The variable 'v' is not valid"},
		{"functions", `{"functions": [{"namespace": "x"}], "resources": []}`, nil, "User-defined functions are not supported"},
		{"trailing text", `{"resources": []} x`, nil, "more text after the end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileText(t, tt.tmpl, tt.params)
			if err == nil || !strings.Contains(keyhold.ErrorMessage(err), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			if keyhold.ErrorCode(err) != keyhold.EInvalid {
				t.Errorf("code = %s, want invalid", keyhold.ErrorCode(err))
			}
		})
	}
}

func TestParameterDefaultsAndCoercion(t *testing.T) {
	tmpl := `{"parameters": {
	    "loc": {"type": "string", "defaultValue": "[resourceGroup().location]"},
	    "n": {"type": "int", "defaultValue": 3, "minValue": 1, "maxValue": 5},
	    "secret": {"type": "secureString"},
	    "choice": {"type": "string", "allowedValues": ["Encryption", "Lockbox"]}},
	  "resources": []}`
	c, err := compileText(t, tmpl, map[string]any{"secret": "s3cret", "choice": "encryption"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"loc": "westeurope", "n": float64(3), "secret": "s3cret", "choice": "encryption"}
	if !reflect.DeepEqual(c.params, want) {
		t.Errorf("params = %v, want %v", c.params, want)
	}
	if c.paramType["secret"] != "SecureString" {
		t.Errorf("type of secret = %q", c.paramType["secret"])
	}
}

// TestSeedTemplateWithPlaceholders is the seed's template as the docs
// print it: the error says where and what to do.
func TestSeedTemplateWithPlaceholders(t *testing.T) {
	text, err := os.ReadFile("testdata/seed_template.json")
	if err != nil {
		t.Fatal(err)
	}
	_, err = parseTemplateText(text)
	want := "The template is not valid JSON at line 9, column 22: replace the placeholders such as {EnterprisePolicyName} with real values"
	if err == nil || !strings.Contains(keyhold.ErrorMessage(err), want) {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if keyhold.ErrorDetail(err) != "InvalidTemplate" || keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("detail %q code %q", keyhold.ErrorDetail(err), keyhold.ErrorCode(err))
	}
}

func TestSeedTemplateFilled(t *testing.T) {
	c, err := compileText(t, fillSeed(t, "ep1", "unitedstates", "/subscriptions/"+testSub+"/resourceGroups/"+testGroup+"/providers/Microsoft.KeyVault/vaults/kv1", "k1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := c.resources[0]
	if r.Type != "Microsoft.PowerPlatform/enterprisePolicies" || r.Name != "ep1" || r.APIVersion != "2020-10-30" {
		t.Errorf("resource = %+v", r)
	}
	b, _ := json.Marshal(r.Body)
	for _, want := range []string{`"kind":"Encryption"`, `"location":"unitedstates"`, `"identity":{"type":"SystemAssigned"}`, `"name":"k1"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("body %s lacks %s", b, want)
		}
	}
}

// fillSeed fills the seed template's placeholders, as its instructions say.
func fillSeed(t testing.TB, name, location, vaultID, key string) string {
	text, err := os.ReadFile("testdata/seed_template.json")
	if err != nil {
		t.Fatal(err)
	}
	return strings.NewReplacer(
		"{EnterprisePolicyName}", `"`+name+`"`,
		"{location where EnterprisePolicy needs to be created}", `"`+location+`"`,
		"{keyVaultId}", `"`+vaultID+`"`,
		"{keyName}", `"`+key+`"`,
		"{keyVersion}", "null",
	).Replace(string(text))
}

func TestDurationISO(t *testing.T) {
	for _, tt := range []struct {
		in   float64
		want string
	}{{0, "PT0S"}, {1.5, "PT1.5S"}, {61, "PT61S"}} {
		if got := durationISO(secs(tt.in)); got != tt.want {
			t.Errorf("durationISO(%v) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func FuzzExpression(f *testing.F) {
	for _, s := range []string{
		"[parameters('name')]", "[concat('a', variables('prefix'))]", "[resourceId('A.B/c', 'x')]",
		"[reference('x', '1', 'Full').identity.principalId]", "[format('{0}', 1)]", "[parameters('list')[0]]",
		"[guid(resourceGroup().id)]", "[[escaped]", "['it''s']", "[-5]", "[if(true(), 1, 2)]",
		"[json('{}')]", "[createObject('a', createArray(1, 2))]", "[split('a,b', ',')[1]]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseExpression(s)
		if err == nil && n == nil {
			t.Fatalf("parseExpression(%q) gave neither a tree nor an error", s)
		}
		e := testEnv()
		e.reference = func(string, string, bool) (any, error) { return map[string]any{"a": "b"}, nil }
		_, _ = e.evalString(s)
		_ = checkSyntax(map[string]any{s: []any{s}})
	})
}

func secs(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
