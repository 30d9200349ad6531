package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

func auditCommand() *command {
	return &command{
		name:    "audit",
		summary: "read and verify the audit log",
		examples: []string{
			"keyhold audit list --since 1h",
			"keyhold audit verify",
		},
		subs: []*command{auditList(), auditVerify()},
	}
}

// parseWhen reads a time as RFC 3339 (2026-05-01T10:00:00Z), a date
// (2026-05-01), or a duration back from now (90m, 24h).
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("%q is not a time: use RFC 3339 (2026-05-01T10:00:00Z), a date (2026-05-01) or a duration back from now (90m)", s)
}

func auditTable(recs []*keyhold.AuditRecord) table {
	t := table{header: []string{"SEQ", "TIME", "PRINCIPAL", "METHOD", "ACTION", "SCOPE", "STATUS", "RESULT"}}
	for _, r := range recs {
		who := r.PrincipalName
		if who == "" {
			who = r.PrincipalID
		}
		t.rows = append(t.rows, []string{
			strconv.FormatInt(r.Seq, 10), r.Time.UTC().Format(time.RFC3339), who, r.Method, r.Action, r.Scope,
			strconv.Itoa(r.Status), r.Result,
		})
	}
	return t
}

func auditList() *command {
	var principal, scope, since, until string
	var top int
	var q client.AuditQuery
	return &command{
		name:    "list",
		summary: "list audit records",
		args:    "[--principal ID|UPN] [--scope SCOPE] [--since WHEN] [--until WHEN] [--top N] [flags]",
		long:    "WHEN is RFC 3339 (2026-05-01T10:00:00Z), a date (2026-05-01) or a duration back from now (90m).",
		examples: []string{
			"keyhold audit list --top 20",
			"keyhold audit list --principal kvadmin@contoso.keyhold.local --since 24h -o json",
			"keyhold audit list --scope /subscriptions/SUB/resourceGroups/rg-contoso",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&principal, "principal", "", "only records of this object `ID` or user principal name")
			fs.StringVar(&scope, "scope", "", "only records at this `SCOPE` or below it")
			fs.StringVar(&since, "since", "", "only records at or after `WHEN`")
			fs.StringVar(&until, "until", "", "only records before `WHEN`")
			fs.IntVar(&top, "top", 0, "at most `N` records")
		},
		run: signedIn(argless, func(a *app) (err error) {
			if top < 0 {
				return usagef("--top must not be negative")
			}
			q = client.AuditQuery{Scope: scope, Top: top}
			if q.Since, err = parseWhen(since, a.now()); err != nil {
				return err
			}
			q.Until, err = parseWhen(until, a.now())
			return err
		}, func(ctx context.Context, a *app, c *client.Client, _ settings) error {
			q.Principal = principal
			if strings.Contains(principal, "@") {
				u, err := c.GetUser(ctx, principal)
				if err != nil {
					return err
				}
				q.Principal = u.ID
			}
			return printList(a, auditTable)(c.ListAudit(ctx, q))
		}),
	}
}

func auditVerify() *command {
	return &command{
		name:    "verify",
		summary: "check the audit log's hash chain; exit 1 if it is broken",
		long: "The server checks the whole chain, which spans every tenant, so this needs a Global Administrator\n" +
			"or read access to the audit log at scope /. Keep the record count and last hash it prints: a log\n" +
			"cut short at its end still verifies, and only an earlier copy of them shows it.",
		examples: []string{"keyhold audit verify", "keyhold audit verify -o json"},
		run: signedIn(argless, nil, func(ctx context.Context, a *app, c *client.Client, _ settings) error {
			v, err := c.VerifyAudit(ctx)
			if client.StatusCode(err) == http.StatusConflict {
				return fmt.Errorf("the audit log is broken: %w", err)
			}
			if err != nil {
				return err
			}
			if !v.Verified {
				return fmt.Errorf("the server did not verify the audit log")
			}
			return a.print(v, func() table {
				return table{header: []string{"VERIFIED", "RECORDS", "LAST HASH"}, rows: [][]string{{"true", strconv.FormatInt(v.Records, 10), v.LastHash}}}
			})
		}),
	}
}
