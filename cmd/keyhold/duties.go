package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyhold/keyhold/client"
)

func dutiesCommand() *command {
	return &command{
		name:    "duties",
		summary: "show, enforce and relax separation of duties between key vault and platform administrators",
		long: "With separation of duties on, the server refuses any grant that would make one principal, directly or\n" +
			"through a group, both a key vault administrator and a platform administrator:\n" +
			"  key vault rights: Owner, Contributor, Key Vault Administrator, Key Vault Contributor or Key Vault Crypto\n" +
			"    Officer at a vault, a key, or a resource group, subscription or root above vaults; or an access policy\n" +
			"    with a key management permission (backup, create, delete, import, purge, recover, release, restore,\n" +
			"    rotate, setrotationpolicy, update, or all). get, list, wrapKey, unwrapKey and the other cryptographic\n" +
			"    operations are not management: the policy identity's CMK preset stays allowed.\n" +
			"  platform roles: Power Platform Administrator, Dynamics 365 Administrator.\n" +
			"Global Administrators are exempt (they can grant themselves anything) and are listed apart. Refused\n" +
			"grants answer 409 SeparationOfDutiesViolation (Graph: 400 Request_BadRequest). Turning it on revokes\n" +
			"nothing: 'show' lists the violations that exist. 'keyhold serve --separation-of-duties' enforces it for\n" +
			"every tenant. Any administrator may show it; only a Global Administrator may enforce or relax it.",
		examples: []string{
			"keyhold duties show",
			"keyhold duties enforce",
			"keyhold duties show -o json",
			"keyhold duties relax",
		},
		subs: []*command{dutiesShow(), dutiesEnforce(), dutiesRelax()},
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// dutiesTable lists each key vault right of each holder: the violations,
// then the exempt Global Administrators.
func dutiesTable(s *client.SeparationOfDuties) table {
	t := table{header: []string{"PRINCIPAL", "DIRECTORY ROLES", "KEY VAULT RIGHT", "SCOPE", "THROUGH GROUP", "STATE"}}
	add := func(hs []client.DutiesHolder, state string) {
		for _, h := range hs {
			for _, a := range h.KeyVaultAccess {
				right := a.Role
				switch {
				case len(a.Permissions) > 0 && len(a.Permissions) == len(s.Rules.ManagementKeyPermissions):
					right += " (every management permission)"
				case len(a.Permissions) > 0:
					right += " (" + strings.Join(a.Permissions, ", ") + ")"
				}
				t.rows = append(t.rows, []string{h.PrincipalName, strings.Join(h.DirectoryRoles, ", "), right, a.Scope, a.GroupName, state})
			}
		}
	}
	add(s.Violations, "violation")
	add(s.Exempt, "exempt")
	return t
}

// count is "1 thing" or "n things".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// printDuties prints s: a summary for people, then the table (or JSON).
func (a *app) printDuties(s *client.SeparationOfDuties) error {
	a.say("Separation of duties is %s (tenant setting: %s; server --separation-of-duties: %s).", onOff(s.Enabled), onOff(s.TenantSetting), onOff(s.ServerEnforced))
	switch n := len(s.Violations); {
	case n == 0 && len(s.Exempt) == 0:
		a.say("No platform administrator or Global Administrator holds a key vault right.")
		if a.g.output == "json" {
			return a.print(s, nil)
		}
		return nil
	case n == 0:
		a.say("No platform administrator holds a key vault right; %s, exempt.", count(len(s.Exempt), "Global Administrator does", "Global Administrators do"))
	case s.Enabled:
		a.say("%s a key vault right. Existing rights are not revoked: remove the role assignment, access policy, group membership or directory role by hand.",
			count(n, "platform administrator holds", "platform administrators hold"))
	default:
		a.say("%s a key vault right.", count(n, "platform administrator holds", "platform administrators hold"))
	}
	return a.print(s, func() table { return dutiesTable(s) })
}

func dutiesShow() *command {
	return callCommand("show", "show whether separation of duties is on, and who holds both kinds of right",
		[]string{"keyhold duties show", "keyhold duties show -o json"},
		(*client.Client).GetSeparationOfDuties, (*app).printDuties)
}

// dutiesSet is the enforce and relax verbs: they store the tenant's setting
// and print what show prints.
func dutiesSet(name, summary string, on bool, examples []string) *command {
	cmd := callCommand(name, summary, examples,
		func(c *client.Client, ctx context.Context) (*client.SeparationOfDuties, error) {
			return c.SetSeparationOfDuties(ctx, on)
		},
		func(a *app, s *client.SeparationOfDuties) error {
			if !on && s.ServerEnforced {
				a.say("The tenant setting is off, but the server runs with --separation-of-duties, which still enforces it.")
			}
			return a.printDuties(s)
		})
	cmd.long = "Needs a Global Administrator. The change is written to the audit log."
	return cmd
}

func dutiesEnforce() *command {
	return dutiesSet("enforce", "turn separation of duties on for the tenant; existing violations are listed, not revoked", true,
		[]string{"keyhold duties enforce", "keyhold duties enforce -o json"})
}

func dutiesRelax() *command {
	return dutiesSet("relax", "turn the tenant's separation of duties off", false,
		[]string{"keyhold duties relax"})
}
