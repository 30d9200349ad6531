package resourcegraph

import (
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzQuery checks that any text either parses and runs, or fails with a
// *ParseError whose position lies inside the text; never a panic.
func FuzzQuery(f *testing.F) {
	for _, q := range []string{
		// The seed's Resource Graph Explorer step, as the explorer writes it.
		`resources | where type == "microsoft.powerplatform/enterprisepolicies"`,
		// Terraform's and the scripts' lookup of the policy's identity.
		`resources | where type =~ 'Microsoft.PowerPlatform/enterprisePolicies' | project id, name, identity.principalId`,
		`Resources | where type =~ 'microsoft.powerplatform/enterprisepolicies' and name == 'ep-contoso' | project identity.principalId`,
		`resources | where properties.encryption.keyVault.id =~ '/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv' | project name, tostring(properties.healthStatus)`,
		`resourcecontainers | where type == 'microsoft.resources/subscriptions/resourcegroups' | project name, location`,
		`resources | summarize count() by type | order by count_ desc | take 5`,
		`where tags['env'] in~ ('prod', 'dev') | extend h = iff(isnotempty(kind), kind, 'none') | project-away properties`,
		`resources | where not(name contains 'x' or name !startswith "y") | top 3 by name asc | distinct location`,
		"resources // comment\n| where @'a''b' == name | limit 10",
		`resources | where name == {EnterprisePolicyName}`,
		`resources | where ((((((name))))))`,
		`resources | project a = properties.zones[0], b = strcat(id, '\'', name) | count`,
	} {
		f.Add(q)
	}
	rows := fuzzRows()
	f.Fuzz(func(t *testing.T, q string) {
		pq, err := Parse(q)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse(%q) = %T %v, want a *ParseError", q, err, err)
			}
			if pe.Code != "ParserFailure" && pe.Code != "SemanticError" {
				t.Fatalf("Parse(%q): code %q", q, pe.Code)
			}
			if utf8.ValidString(q) && (pe.Pos.Line < 1 || pe.Pos.Column < 0 || pe.Pos.Column > utf8.RuneCountInString(q)) {
				t.Fatalf("Parse(%q): position %+v outside the text", q, pe.Pos)
			}
			return
		}
		out := pq.Run(rows)
		for _, r := range out {
			if _, err := json.Marshal(orderedRow{cols: pq.columns, row: r}); err != nil {
				t.Fatalf("Run(%q): row does not marshal: %v", q, err)
			}
		}
	})
}

func fuzzRows() []Row {
	var rows []Row
	for _, src := range []string{
		`{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv","name":"kv","type":"microsoft.keyvault/vaults","location":"westus","tags":{"env":"prod"},"properties":{"enableSoftDelete":true,"zones":["1",2,null]},"identity":null}`,
		`{"id":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/ep","name":"ep","type":"microsoft.powerplatform/enterprisepolicies","kind":"Encryption","location":"unitedstates","tags":{},"properties":{"healthStatus":"Healthy","count":1.5},"identity":{"principalId":"p"}}`,
	} {
		var r Row
		if err := json.Unmarshal([]byte(src), &r); err != nil {
			panic(err)
		}
		rows = append(rows, r)
	}
	return rows
}
