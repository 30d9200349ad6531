package resourcegraph

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// testRows is a small resources table: two vaults, a policy with an
// identity, and a storage account with tags.
func testRows(t *testing.T) []Row {
	t.Helper()
	const src = `[
	{"id":"/subscriptions/s1/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/kv-contoso","name":"kv-contoso","type":"microsoft.keyvault/vaults","location":"westus","resourceGroup":"rg-a","subscriptionId":"s1","kind":"","tags":{"env":"prod","owner":"Key Vault Admin"},"properties":{"enableSoftDelete":true,"enablePurgeProtection":true,"vaultUri":"https://kv-contoso.vault/"},"identity":null},
	{"id":"/subscriptions/s1/resourceGroups/rg-b/providers/Microsoft.KeyVault/vaults/kv-fabrikam","name":"kv-fabrikam","type":"microsoft.keyvault/vaults","location":"eastus","resourceGroup":"rg-b","subscriptionId":"s1","kind":"","tags":{},"properties":{"enableSoftDelete":true,"enablePurgeProtection":false},"identity":null},
	{"id":"/subscriptions/s1/resourceGroups/rg-a/providers/Microsoft.PowerPlatform/enterprisePolicies/ep1","name":"ep1","type":"microsoft.powerplatform/enterprisepolicies","location":"unitedstates","resourceGroup":"rg-a","subscriptionId":"s1","kind":"Encryption","tags":{},"properties":{"encryption":{"state":"Enabled","keyVault":{"id":"/subscriptions/s1/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/kv-contoso","key":{"name":"k1"}}},"healthStatus":"Healthy","networkInjection":null},"identity":{"type":"SystemAssigned","principalId":"3f2a0000-0000-4000-8000-000000000001","tenantId":"t1"}},
	{"id":"/subscriptions/s2/resourceGroups/rg-c/providers/Microsoft.Storage/storageAccounts/st1","name":"st1","type":"microsoft.storage/storageaccounts","location":"westus","resourceGroup":"rg-c","subscriptionId":"s2","kind":"StorageV2","tags":{"env":"dev"},"properties":{"count":3,"zones":["1","2"]},"identity":null}
	]`
	var raw []map[string]any
	if err := json.Unmarshal([]byte(src), &raw); err != nil {
		t.Fatal(err)
	}
	rows := make([]Row, len(raw))
	for i, r := range raw {
		for _, c := range tableColumns[TableResources] {
			if _, ok := r[c]; !ok {
				r[c] = nil
			}
		}
		rows[i] = Row(r)
	}
	return rows
}

// run parses and runs q over testRows and returns the result as JSON lines
// of the result's columns, in order.
func run(t *testing.T, q string) (string, error) {
	t.Helper()
	pq, err := Parse(q)
	if err != nil {
		return "", err
	}
	var lines []string
	for _, r := range pq.Run(testRows(t)) {
		b, err := json.Marshal(orderedRow{cols: pq.columns, row: r})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	return strings.Join(lines, "\n"), nil
}

func TestQueries(t *testing.T) {
	tests := []struct {
		name, query, want string
	}{
		{"type =~ and project path", `resources | where type =~ 'Microsoft.PowerPlatform/enterprisePolicies' | project id, name, identity.principalId`,
			`{"id":"/subscriptions/s1/resourceGroups/rg-a/providers/Microsoft.PowerPlatform/enterprisePolicies/ep1","name":"ep1","identity_principalId":"3f2a0000-0000-4000-8000-000000000001"}`},
		{"explorer's double quotes and ==", `Resources | where type == "microsoft.powerplatform/enterprisepolicies" | project name`, `{"name":"ep1"}`},
		{"== is case-sensitive", `resources | where type == 'Microsoft.KeyVault/vaults' | project name`, ``},
		{"no table means resources", `where name startswith 'kv-' | project name | order by name asc`, `{"name":"kv-contoso"}` + "\n" + `{"name":"kv-fabrikam"}`},
		{"order by defaults to desc", `resources | where type =~ 'microsoft.keyvault/vaults' | order by name | project name`, `{"name":"kv-fabrikam"}` + "\n" + `{"name":"kv-contoso"}`},
		{"!=", `resources | where location != 'westus' | project name | order by name asc`, `{"name":"ep1"}` + "\n" + `{"name":"kv-fabrikam"}`},
		{"!~", `resources | where type !~ 'MICROSOFT.KEYVAULT/VAULTS' | project name | order by name asc`, `{"name":"ep1"}` + "\n" + `{"name":"st1"}`},
		{"contains is case-insensitive", `resources | where name contains 'CONTOSO' | project name`, `{"name":"kv-contoso"}`},
		{"contains_cs", `resources | where name contains_cs 'CONTOSO' | project name`, ``},
		{"!contains", `resources | where name !contains 'kv' | project name | order by name asc`, `{"name":"ep1"}` + "\n" + `{"name":"st1"}`},
		{"endswith", `resources | where id endswith '/ep1' | project name`, `{"name":"ep1"}`},
		{"has matches whole terms", `resources | where tags.owner has 'vault' | project name`, `{"name":"kv-contoso"}`},
		{"has refuses part of a term", `resources | where tags.owner has 'vau' | project name`, ``},
		{"in", `resources | where location in ('eastus', 'unitedstates') | project name | order by name asc`, `{"name":"ep1"}` + "\n" + `{"name":"kv-fabrikam"}`},
		{"in is case-sensitive", `resources | where location in ('EASTUS') | project name`, ``},
		{"in~", `resources | where location in~ ('EASTUS') | project name`, `{"name":"kv-fabrikam"}`},
		{"!in", `resources | where location !in ('westus') | count`, `{"Count":2}`},
		{"and or parentheses", `resources | where (location == 'westus' or location == 'eastus') and subscriptionId == 's1' | project name | order by name asc`,
			`{"name":"kv-contoso"}` + "\n" + `{"name":"kv-fabrikam"}`},
		{"not()", `resources | where not(type =~ 'microsoft.keyvault/vaults') | project name | order by name asc`, `{"name":"ep1"}` + "\n" + `{"name":"st1"}`},
		{"bracketed tags", `resources | where tags['env'] == 'prod' | project name, env = tags['env']`, `{"name":"kv-contoso","env":"prod"}`},
		{"derived name of tags['x']", `resources | where name == 'st1' | project tags['env']`, `{"tags_env":"dev"}`},
		{"deep path", `resources | where properties.encryption.keyVault.id =~ '/subscriptions/s1/resourceGroups/rg-a/providers/Microsoft.KeyVault/vaults/KV-CONTOSO' | project name, properties.encryption.keyVault.key.name`,
			`{"name":"ep1","properties_encryption_keyVault_key_name":"k1"}`},
		{"bool property", `resources | where properties.enablePurgeProtection == true | project name`, `{"name":"kv-contoso"}`},
		{"tostring of bool", `resources | where tostring(properties.enablePurgeProtection) == 'false' | project name`, `{"name":"kv-fabrikam"}`},
		{"tostring of object", `resources | where name == 'ep1' | project k = tostring(properties.encryption.keyVault.key)`, `{"k":"{\"name\":\"k1\"}"}`},
		{"number comparison", `resources | where properties.count > 2 | project name`, `{"name":"st1"}`},
		{"array index", `resources | where properties.zones[1] == '2' | project z = properties.zones[0]`, `{"z":"1"}`},
		{"missing path is null", `resources | where isnull(identity.principalId) | count`, `{"Count":3}`},
		{"isnotempty", `resources | where isnotempty(kind) | project name | order by name asc`, `{"name":"ep1"}` + "\n" + `{"name":"st1"}`},
		{"extend then where", `resources | extend health = tostring(properties.healthStatus) | where health == 'Healthy' | project name, health`, `{"name":"ep1","health":"Healthy"}`},
		{"project-away", `resources | where name == 'ep1' | project name, kind, location | project-away kind`, `{"name":"ep1","location":"unitedstates"}`},
		{"limit", `resources | order by name asc | limit 1 | project name`, `{"name":"ep1"}`},
		{"take", `resources | order by name asc | take 2 | project name`, `{"name":"ep1"}` + "\n" + `{"name":"kv-contoso"}`},
		{"top", `resources | top 1 by name asc | project name`, `{"name":"ep1"}`},
		{"count", `resources | count`, `{"Count":4}`},
		{"summarize count() by type", `resources | summarize count() by type | order by type asc`,
			`{"type":"microsoft.keyvault/vaults","count_":2}` + "\n" + `{"type":"microsoft.powerplatform/enterprisepolicies","count_":1}` + "\n" + `{"type":"microsoft.storage/storageaccounts","count_":1}`},
		{"summarize named", `resources | summarize n = count(), vaults = countif(type =~ 'microsoft.keyvault/vaults'), subs = dcount(subscriptionId)`, `{"n":4,"vaults":2,"subs":2}`},
		{"summarize on nothing", `resources | where name == 'none' | summarize count()`, `{"count_":0}`},
		{"distinct", `resources | distinct location | order by location asc`, `{"location":"eastus"}` + "\n" + `{"location":"unitedstates"}` + "\n" + `{"location":"westus"}`},
		{"strcat and tolower", `resources | where name == 'ep1' | project s = strcat(tolower(kind), '/', name)`, `{"s":"encryption/ep1"}`},
		{"iff", `resources | where type =~ 'microsoft.keyvault/vaults' | project name, p = iff(properties.enablePurgeProtection == true, 'on', 'off') | order by name asc`,
			`{"name":"kv-contoso","p":"on"}` + "\n" + `{"name":"kv-fabrikam","p":"off"}`},
		{"comment and newlines", "resources // all of them\n| where name == 'st1'\n| project name", `{"name":"st1"}`},
		{"verbatim string", `resources | where name == @'st1' | project name`, `{"name":"st1"}`},
		{"escaped quote", `resources | where name != 'it\'s' | count`, `{"Count":4}`},
		{"resourcecontainers parses", `resourcecontainers | where type =~ 'microsoft.resources/subscriptions/resourcegroups' | count`, `{"Count":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := run(t, tt.query)
			if err != nil {
				t.Fatalf("query %q: %v", tt.query, err)
			}
			if got != tt.want {
				t.Errorf("query %q\ngot  %s\nwant %s", tt.query, got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, query    string
		code           string
		line, col      int // col counts from 0
		token, message string
	}{
		{"empty", "  ", "ParserFailure", 1, 0, "<end of query>", "empty"},
		{"unknown table", "vaults | count", "SemanticError", 1, 0, "vaults", "unknown table 'vaults'"},
		{"single =", "resources | where type = 'x'", "ParserFailure", 1, 23, "=", "use =="},
		{"bad operator", "resources | where type =~~ 'x'", "ParserFailure", 1, 25, "~", "unexpected character"},
		{"unknown column", "resources | where Type =~ 'x'", "SemanticError", 1, 18, "Type", "did you mean 'type'"},
		{"column gone after project", "resources | project name | where type == 'x'", "SemanticError", 1, 33, "type", "unknown column 'type'"},
		{"unknown function", "resources | where lower(name) == 'x'", "SemanticError", 1, 18, "lower", "unknown function"},
		{"wrong arity", "resources | where tostring(name, id) == 'x'", "SemanticError", 1, 18, "tostring", "takes 1"},
		{"unclosed string", "resources | where name == 'x", "ParserFailure", 1, 26, "'x", "not closed"},
		{"unclosed paren", "resources | where (name == 'x'", "ParserFailure", 1, 30, "<end of query>", "expected ')'"},
		{"missing pipe", "resources where name == 'x'", "ParserFailure", 1, 10, "where", "expected '|'"},
		{"dangling pipe", "resources |", "ParserFailure", 1, 11, "<end of query>", "expected an operator"},
		{"unknown operator", "resources | join x", "ParserFailure", 1, 12, "join", "unknown operator"},
		{"limit needs a number", "resources | limit x", "ParserFailure", 1, 18, "x", "whole number"},
		{"order without by", "resources | order name", "ParserFailure", 1, 18, "name", "expected 'by'"},
		{"second line", "resources\n| where name ==", "ParserFailure", 2, 15, "<end of query>", "expected a value"},
		{"chained comparison", "resources | where name == id == name", "ParserFailure", 1, 29, "==", "do not chain"},
		{"seed placeholder", "resources | where name == {EnterprisePolicyName}", "ParserFailure", 1, 26, "{", "unexpected character"},
		{"aggregate outside summarize", "resources | where count() > 1", "SemanticError", 1, 18, "count", "aggregation"},
		{"duplicate column", "resources | project name, name", "SemanticError", 1, 26, "name", "twice"},
		{"number then letters", "resources | limit 10x", "ParserFailure", 1, 18, "10x", "neither a number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.query)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %v, want a *ParseError", tt.query, err)
			}
			if pe.Code != tt.code || pe.Pos.Line != tt.line || pe.Pos.Column != tt.col || pe.Token != tt.token {
				t.Errorf("Parse(%q) = %s at %d:%d token %q, want %s at %d:%d token %q (%s)",
					tt.query, pe.Code, pe.Pos.Line, pe.Pos.Column, pe.Token, tt.code, tt.line, tt.col, tt.token, pe.Message)
			}
			if !strings.Contains(pe.Message, tt.message) {
				t.Errorf("message %q does not say %q", pe.Message, tt.message)
			}
		})
	}
}

func TestColumns(t *testing.T) {
	tests := []struct{ query, want string }{
		{"resources | project id, name, identity.principalId", "id,name,identity_principalId"},
		{"resources | project x = 1, tostring(name), strcat(id, name)", "x,name,Column1"},
		{"resources | extend h = properties.healthStatus | project-away properties, tags", "id,name,type,tenantId,kind,location,resourceGroup,subscriptionId,managedBy,sku,plan,identity,zones,extendedLocation,h"},
		{"resources | summarize count() by type, location", "type,location,count_"},
		{"resources | count", "Count"},
	}
	for _, tt := range tests {
		q, err := Parse(tt.query)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.query, err)
		}
		if got := strings.Join(q.Columns(), ","); got != tt.want {
			t.Errorf("Columns(%q) = %s, want %s", tt.query, got, tt.want)
		}
	}
}

func TestTypeHint(t *testing.T) {
	tests := []struct{ query, want string }{
		{"resources | where type =~ 'Microsoft.KeyVault/vaults'", "Microsoft.KeyVault/vaults"},
		{"resources | where name == 'x' and 'microsoft.keyvault/vaults' == type", "microsoft.keyvault/vaults"},
		{"resources | where type =~ 'a' or type =~ 'b'", ""},
		{"resources | project type | where type =~ 'a'", ""},
		{"resourcecontainers | where type =~ 'a'", ""},
		{"resources | where type contains 'vault'", ""},
	}
	for _, tt := range tests {
		q, err := Parse(tt.query)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.query, err)
		}
		if got := q.typeHint(); got != tt.want {
			t.Errorf("typeHint(%q) = %q, want %q", tt.query, got, tt.want)
		}
	}
}

func TestRunLeavesInputAlone(t *testing.T) {
	rows := testRows(t)
	q, err := Parse("resources | extend name = 'changed' | project-away id")
	if err != nil {
		t.Fatal(err)
	}
	out := q.Run(rows)
	if out[0]["name"] != "changed" || rows[0]["name"] != "kv-contoso" || rows[0]["id"] == nil {
		t.Errorf("out[0] = %v, rows[0] = %v", out[0], rows[0])
	}
}
