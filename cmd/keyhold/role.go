package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path"
	"strings"

	"github.com/keyhold/keyhold/client"
)

func roleCommand() *command {
	return &command{
		name:    "role",
		summary: "list role definitions and manage role assignments (Azure RBAC)",
		examples: []string{
			"keyhold role definition list --name Reader",
			"keyhold role assignment create --assignee ppadmin@contoso.keyhold.local --role Reader --scope /subscriptions/SUB/resourceGroups/rg-contoso",
		},
		subs: []*command{
			{
				name:     "definition",
				summary:  "list role definitions",
				examples: []string{"keyhold role definition list"},
				subs:     []*command{roleDefinitionList()},
			},
			{
				name:     "assignment",
				summary:  "create, list and delete role assignments",
				examples: []string{"keyhold role assignment list --assignee ppadmin@contoso.keyhold.local"},
				subs:     []*command{roleAssignmentCreate(), roleAssignmentList(), roleAssignmentDelete()},
			},
		},
	}
}

func roleDefinitionList() *command {
	var name, scope string
	return &command{
		name:     "list",
		summary:  "list role definitions, or the one with --name",
		args:     "[--name ROLE] [--scope SCOPE] [flags]",
		examples: []string{"keyhold role definition list", "keyhold role definition list --name 'Key Vault Crypto Service Encryption User' -o json"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "only the role with this `NAME` (case-insensitive)")
			fs.StringVar(&scope, "scope", "", "`SCOPE` to list at; the subscription if not given")
		},
		run: signedIn(argless, nil, func(ctx context.Context, a *app, c *client.Client, s settings) error {
			scope, err := s.scope(scope)
			if err != nil {
				return err
			}
			defs, err := c.ListRoleDefinitions(ctx, scope, name)
			if err != nil {
				return err
			}
			if name != "" && len(defs) == 0 {
				return fmt.Errorf("there is no role named %q; run 'keyhold role definition list' for the list", name)
			}
			return a.print(orEmpty(defs), func() table {
				t := table{header: []string{"NAME", "ID", "TYPE", "DESCRIPTION"}}
				for _, d := range defs {
					t.rows = append(t.rows, []string{d.Properties.RoleName, d.Name, d.Properties.Type, d.Properties.Description})
				}
				return t
			})
		}),
	}
}

// scope returns the given scope, or the subscription's.
func (s settings) scope(scope string) (string, error) {
	if scope != "" {
		if !strings.HasPrefix(scope, "/") {
			return "", usagef("a scope starts with /, such as /subscriptions/SUB/resourceGroups/RG")
		}
		return scope, nil
	}
	sub, err := s.sub()
	if err != nil {
		return "", err
	}
	return "/subscriptions/" + sub, nil
}

// principal is an assignee resolved through the directory.
type principal struct {
	id, typ, name string
}

// resolveAssignee finds the principal named by an object id, a user
// principal name or a service principal's application id.
func resolveAssignee(ctx context.Context, c *client.Client, assignee string) (principal, error) {
	if strings.Contains(assignee, "@") {
		u, err := c.GetUser(ctx, assignee)
		if err != nil {
			if client.IsNotFound(err) {
				return principal{}, fmt.Errorf("there is no user %s", assignee)
			}
			return principal{}, err
		}
		return principal{u.ID, "User", u.UserPrincipalName}, nil
	}
	u, err := c.GetUser(ctx, assignee)
	if err == nil {
		return principal{u.ID, "User", u.UserPrincipalName}, nil
	}
	if !client.IsNotFound(err) {
		return principal{}, err
	}
	sp, err := c.GetServicePrincipal(ctx, assignee)
	if err == nil {
		// Managed identities are ServicePrincipal on assignments, as in Azure.
		return principal{sp.ID, "ServicePrincipal", sp.DisplayName}, nil
	}
	if !client.IsNotFound(err) {
		return principal{}, err
	}
	return principal{}, fmt.Errorf("there is no user or service principal %s", assignee)
}

func roleAssignmentCreate() *command {
	var assignee, role, scope string
	return &command{
		name:    "create",
		summary: "assign a role to a user or service principal at a scope",
		args:    "--assignee ID|UPN --role NAME|ID [--scope SCOPE] [flags]",
		long:    "The assignee is an object id, a user principal name or an application id. The scope defaults\nto the subscription.",
		examples: []string{
			"keyhold role assignment create --assignee ppadmin@contoso.keyhold.local --role Reader --scope /subscriptions/SUB/resourceGroups/rg-contoso/providers/Microsoft.PowerPlatform/enterprisePolicies/cmk-policy",
			"keyhold role assignment create --assignee APP_ID --role Contributor",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&assignee, "assignee", "", "object `ID`, user principal name or application id")
			fs.StringVar(&role, "role", "", "role `NAME` or definition id, such as Reader")
			fs.StringVar(&scope, "scope", "", "`SCOPE` of the assignment; the subscription if not given")
		},
		run: signedIn(argless, func(*app) error {
			if assignee == "" || role == "" {
				return usagef("role assignment create needs --assignee and --role")
			}
			return nil
		}, func(ctx context.Context, a *app, c *client.Client, s settings) error {
			scope, err := s.scope(scope)
			if err != nil {
				return err
			}
			roleID, err := resolveRole(ctx, c, s, role)
			if err != nil {
				return err
			}
			p, err := resolveAssignee(ctx, c, assignee)
			if err != nil {
				return err
			}
			ra, err := c.CreateRoleAssignment(ctx, scope, roleID, p.id, p.typ)
			if err != nil {
				return err
			}
			return a.print(ra, func() table {
				return assignmentTable([]client.RoleAssignment{*ra}, map[string]string{strings.ToLower(lastSegment(roleID)): role})
			})
		}),
	}
}

// resolveRole returns the full definition id of a role given by name, GUID
// or id.
func resolveRole(ctx context.Context, c *client.Client, s settings, role string) (string, error) {
	if strings.HasPrefix(role, "/") {
		return role, nil
	}
	scope, err := s.scope("")
	if err != nil {
		return "", err
	}
	if looksLikeGUID(role) {
		return scope + "/providers/Microsoft.Authorization/roleDefinitions/" + role, nil
	}
	defs, err := c.ListRoleDefinitions(ctx, scope, role)
	if err != nil {
		return "", err
	}
	if len(defs) == 0 {
		return "", fmt.Errorf("there is no role named %q; run 'keyhold role definition list' for the list", role)
	}
	return defs[0].ID, nil
}

func looksLikeGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, r := range s {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if r != '-' {
				return false
			}
		case !strings.ContainsRune("0123456789abcdefABCDEF", r):
			return false
		}
	}
	return true
}

func lastSegment(id string) string { return path.Base(strings.TrimRight(id, "/")) }

// assignmentTable shows assignments, naming roles from names (definition
// GUID to role name) where known.
func assignmentTable(as []client.RoleAssignment, names map[string]string) table {
	t := table{header: []string{"NAME", "ROLE", "PRINCIPAL", "PRINCIPAL TYPE", "SCOPE"}}
	for _, ra := range as {
		role := lastSegment(ra.Properties.RoleDefinitionID)
		if n, ok := names[strings.ToLower(role)]; ok {
			role = n
		}
		t.rows = append(t.rows, []string{ra.Name, role, ra.Properties.PrincipalID, ra.Properties.PrincipalType, ra.Properties.Scope})
	}
	return t
}

// roleNames maps role definition GUIDs (lower case) to role names, for
// tables; a failure leaves the GUIDs showing.
func roleNames(ctx context.Context, c *client.Client, scope string) map[string]string {
	names := map[string]string{}
	defs, err := c.ListRoleDefinitions(ctx, scope, "")
	if err != nil {
		return names
	}
	for _, d := range defs {
		names[strings.ToLower(d.Name)] = d.Properties.RoleName
	}
	return names
}

func roleAssignmentList() *command {
	var scope, assignee string
	return &command{
		name:    "list",
		summary: "list role assignments at a scope, or of an assignee",
		args:    "[--scope SCOPE] [--assignee ID|UPN] [flags]",
		examples: []string{
			"keyhold role assignment list",
			"keyhold role assignment list --assignee ppadmin@contoso.keyhold.local -o json",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&scope, "scope", "", "`SCOPE`; the subscription if not given")
			fs.StringVar(&assignee, "assignee", "", "only assignments of this object `ID`, user principal name or application id")
		},
		run: signedIn(argless, nil, func(ctx context.Context, a *app, c *client.Client, s settings) error {
			scope, err := s.scope(scope)
			if err != nil {
				return err
			}
			var pid string
			if assignee != "" {
				p, err := resolveAssignee(ctx, c, assignee)
				if err != nil {
					return err
				}
				pid = p.id
			}
			as, err := c.ListRoleAssignments(ctx, scope, pid)
			if err != nil {
				return err
			}
			if a.g.output == "json" {
				return writeJSON(a.stdout, orEmpty(as))
			}
			return writeTable(a.stdout, assignmentTable(as, roleNames(ctx, c, scope)))
		}),
	}
}

func roleAssignmentDelete() *command {
	var id, name string
	return &command{
		name:    "delete",
		summary: "delete a role assignment by its id or name",
		args:    "(--id ID | --name NAME) [flags]",
		examples: []string{
			"keyhold role assignment delete --name 0b5c2f4e-3f0a-4d2b-9e55-3c1d7a9f1e21",
			"keyhold role assignment delete --id /subscriptions/SUB/providers/Microsoft.Authorization/roleAssignments/0b5c2f4e-3f0a-4d2b-9e55-3c1d7a9f1e21",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&id, "id", "", "the assignment's full `ID`")
			fs.StringVar(&name, "name", "", "the assignment's `NAME` (a GUID), looked up in the subscription")
		},
		run: signedIn(argless, func(*app) error {
			if (id == "") == (name == "") {
				return usagef("role assignment delete needs one of --id and --name")
			}
			return nil
		}, func(ctx context.Context, a *app, c *client.Client, s settings) error {
			if id == "" {
				scope, err := s.scope("")
				if err != nil {
					return err
				}
				as, err := c.ListRoleAssignments(ctx, scope, "")
				if err != nil {
					return err
				}
				for _, ra := range as {
					if strings.EqualFold(ra.Name, name) {
						id = ra.ID
					}
				}
				if id == "" {
					return errors.New("there is no role assignment named " + name + " in the subscription")
				}
			}
			if err := c.DeleteRoleAssignment(ctx, id); err != nil {
				return err
			}
			a.say("Deleted role assignment %s.", lastSegment(id))
			return nil
		}),
	}
}
