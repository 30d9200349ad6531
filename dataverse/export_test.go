package dataverse

import "encoding/json"

// AccountsSchema is the accounts table of the tests, for the fuzzer.
func AccountsSchema() *schema {
	cols := []Column{{Name: "name", Type: TypeString, Required: true}, {Name: "revenue", Type: TypeDecimal},
		{Name: "employees", Type: TypeInteger}, {Name: "active", Type: TypeBoolean}, {Name: "founded", Type: TypeDateTime},
		{Name: "logo", Type: TypeFile}}
	sc := &schema{table: "accounts", primary: "accountsid", cols: map[string]Column{}, order: cols}
	for _, c := range cols {
		sc.cols[c.Name] = c
	}
	return sc
}

// ParseRow exposes parseRow to the fuzzer.
func ParseRow(sc *schema, body []byte) (string, map[string]json.RawMessage, error) {
	return parseRow(sc, body)
}
