package main

import (
	"context"
	"encoding/json"
	"flag"
	"strings"

	"github.com/keyhold/keyhold/client"
)

func graphCommand() *command {
	return &command{
		name:    "graph",
		summary: "query resources with Resource Graph",
		examples: []string{
			`keyhold graph query "resources | where type =~ 'Microsoft.PowerPlatform/enterprisePolicies' | project id, name, identity.principalId"`,
			`keyhold graph query "resourcecontainers | where type =~ 'microsoft.resources/subscriptions/resourcegroups' | project name, location"`,
		},
		subs: []*command{graphQuery()},
	}
}

// graphOutput is what -o json prints, in the shape az graph query prints.
type graphOutput struct {
	Count        int                  `json:"count"`
	Data         []client.GraphObject `json:"data"`
	TotalRecords int64                `json:"total_records"`
}

func graphQuery() *command {
	var subs string
	var first int
	return &command{
		name:    "query",
		summary: "run a Resource Graph query over the resources you can read",
		args:    "QUERY [--subscriptions S1,S2] [--first N] [flags]",
		long: "QUERY is Kusto as Resource Graph takes it: a table (resources, or resourcecontainers for\n" +
			"subscriptions and resource groups), then operators such as where, project, extend, order by,\n" +
			"limit, count and summarize count() by. Types are lower-case in results; compare them with =~.\n" +
			"Without --subscriptions the query covers every subscription of the tenant.",
		examples: []string{
			`keyhold graph query "resources | where type =~ 'Microsoft.KeyVault/vaults' | project name, resourceGroup, location"`,
			`keyhold graph query "resources | summarize count() by type" --first 10`,
			`keyhold graph query "resources | where type =~ 'Microsoft.PowerPlatform/enterprisePolicies' | project id, identity.principalId" -o json`,
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&subs, "subscriptions", "", "comma-separated subscription `IDS` to query (default: all of the tenant's)")
			fs.IntVar(&first, "first", 100, "the most `ROWS` to return; 0 returns all")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			if len(args) == 0 {
				return usagef("graph query needs a QUERY, such as \"resources | project name, type\"")
			}
			if len(args) > 1 {
				return usagef("graph query takes one QUERY; quote it, as in keyhold graph query \"resources | count\" (unexpected %q)", args[1])
			}
			if first < 0 {
				return usagef("--first must be 0 or more, not %d", first)
			}
			opts := client.GraphQueryOptions{First: first}
			for _, s := range strings.Split(subs, ",") {
				if s = strings.TrimSpace(s); s != "" {
					opts.Subscriptions = append(opts.Subscriptions, s)
				}
			}
			c, _, err := a.connect()
			if err != nil {
				return err
			}
			res, err := c.QueryResources(ctx, args[0], opts)
			if err != nil {
				return err
			}
			out := graphOutput{Count: len(res.Rows), Data: res.Objects(), TotalRecords: res.TotalRecords}
			if err := a.print(out, func() table { return graphTable(res) }); err != nil {
				return err
			}
			if int64(len(res.Rows)) < res.TotalRecords {
				a.say("Showing %d of %d rows; use --first to see more.", len(res.Rows), res.TotalRecords)
			}
			return nil
		},
	}
}

// graphTable shows a result with a column per query column; objects and
// arrays show as compact JSON.
func graphTable(res *client.GraphResult) table {
	t := table{}
	for _, c := range res.Columns {
		t.header = append(t.header, c.Name)
	}
	for _, row := range res.Rows {
		cells := make([]string, len(row))
		for i, v := range row {
			cells[i] = graphCell(v)
		}
		t.rows = append(t.rows, cells)
	}
	return t
}

func graphCell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}
