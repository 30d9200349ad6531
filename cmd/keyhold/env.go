package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold/client"
)

func envCommand() *command {
	return &command{
		name:    "env",
		summary: "manage environments through the platform admin API: create, list, show, delete, re-enable, history, roles, settings",
		long: "Environments hold a tenant's tables and rows, encrypted under a root key that the platform's key\n" +
			"(KEY MANAGED BY Microsoft) or an enterprise policy's customer-managed key (Customer) protects.\n" +
			"Only Global, Power Platform and Dynamics 365 administrators see environments; to anyone else they\n" +
			"\"could not be found in the tenant\". When the customer's key becomes unusable the environment is\n" +
			"locked (\"Environment disabled\"); once access to the original key is back, 'env reenable' unlocks it.",
		examples: []string{
			"keyhold env create --name Sales --region unitedstates --type Production --managed",
			"keyhold env list",
			"keyhold env show ENV-ID",
			"keyhold env history ENV-ID",
			"keyhold env reenable ENV-ID",
			"keyhold env settings set --auto-reenable true",
		},
		subs: envVerbs(),
	}
}

// envVerbs is the verb table of the env noun; the lifecycle verbs
// (add-policy, remove-policy, swap-policy) come from env_policy.go.
func envVerbs() []*command {
	return append([]*command{envCreate(), envList(), envShow(), envDelete(), envReenable(), envHistory(), envRoleCommand(), envSettingsCommand()},
		envPolicyVerbs()...)
}

// envIDArg returns the one positional environment id, or a usage error.
func envIDArg(args []string, verb string) (string, error) {
	switch len(args) {
	case 0:
		return "", usagef("env %s needs the environment's ID (see 'keyhold env list')", verb)
	case 1:
		return args[0], nil
	}
	return "", usagef("unexpected argument %q", args[1])
}

// envState is what the STATE column shows: Enabled, or Disabled.
func envState(e *client.Environment) string {
	return e.Properties.States.Runtime.ID
}

// envEncryption is the ENCRYPTION column: the status, with the progress
// while encrypting or failed part-way.
func envEncryption(e *client.Environment) string {
	enc := e.Properties.Encryption
	switch enc.Status {
	case "Encrypting", "Failed":
		return fmt.Sprintf("%s %d%%", enc.Status, enc.Progress)
	}
	return enc.Status
}

func envTable(es []client.Environment) table {
	t := table{header: []string{"NAME", "ID", "TYPE", "REGION", "STATE", "KEY MANAGED BY", "ENCRYPTION"}}
	for i := range es {
		e := &es[i]
		typ := e.Properties.EnvironmentSku
		if e.Managed() {
			typ += " (managed)"
		}
		t.rows = append(t.rows, []string{e.Properties.DisplayName, e.Name, typ, e.Location, envState(e),
			e.Properties.ProtectionStatus.KeyManagedBy, envEncryption(e)})
	}
	return t
}

// envDetail is show's table: one field a line.
func envDetail(e *client.Environment) table {
	t := table{header: []string{"FIELD", "VALUE"}}
	add := func(k, v string) { t.rows = append(t.rows, []string{k, v}) }
	p := e.Properties
	add("NAME", p.DisplayName)
	add("ID", e.Name)
	add("TYPE", p.EnvironmentSku)
	add("MANAGED", strconv.FormatBool(e.Managed()))
	add("REGION", e.Location+" ("+p.AzureRegion+")")
	add("STATE", envState(e))
	if e.Locked() {
		add("DISABLED AT", timeCell(p.States.Runtime.DisabledAt))
	}
	add("KEY MANAGED BY", p.ProtectionStatus.KeyManagedBy)
	if l := p.EnterprisePolicies.CustomerManagedKeys; l != nil {
		add("POLICY", l.ID)
		add("POLICY SYSTEM ID", l.SystemID)
		add("LINK STATUS", l.LinkStatus)
	} else {
		add("POLICY", "(none: the platform's key)")
	}
	add("ENCRYPTION", p.Encryption.Status)
	add("PROGRESS", fmt.Sprintf("%d%%", p.Encryption.Progress))
	add("CREATED", timeCell(p.CreatedTime))
	add("MODIFIED", timeCell(p.LastModifiedTime))
	return t
}

func timeCell(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// disabledLine is the line show and reenable print above the table of a
// locked environment, in the admin center's words.
func disabledLine(e *client.Environment) string {
	reason := e.Properties.States.Runtime.Reason
	if reason == "" {
		reason = "Environment disabled"
	}
	if !strings.HasPrefix(reason, "Environment disabled") {
		reason = "Environment disabled: " + reason
	}
	return reason
}

// printEnv prints one environment: a prominent "Environment disabled"
// line first when it is locked, then its fields.
func (a *app) printEnv(e *client.Environment) error {
	if e.Locked() {
		a.say("%s\n", oneLine(disabledLine(e)))
	}
	return a.print(e, func() table { return envDetail(e) })
}

func envCreate() *command {
	var name, region, typ string
	var managed bool
	return &command{
		name:    "create",
		summary: "create an environment under the platform's key",
		args:    "--name NAME --region REGION --type TYPE [--managed] [flags]",
		long: "Regions are Power Platform regions (unitedstates, europe, uk, asia, ...). Types are " + strings.Join(client.EnvironmentTypes, ", ") + ".\n" +
			"A customer-managed key can be applied to managed Production and Sandbox environments.",
		examples: []string{
			"keyhold env create --name Sales --region unitedstates --type Production --managed",
			"keyhold env create --name Test --region europe --type Sandbox -o json",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "display `NAME`")
			fs.StringVar(&region, "region", "", "Power Platform `REGION`, such as unitedstates")
			fs.StringVar(&typ, "type", "", "environment `TYPE`: "+strings.Join(client.EnvironmentTypes, ", "))
			fs.BoolVar(&managed, "managed", false, "make it a Managed Environment")
		},
		run: signedIn(argless, func(*app) error {
			for _, f := range []struct{ v, name string }{{name, "--name"}, {region, "--region"}, {typ, "--type"}} {
				if err := required(f.v, f.name); err != nil {
					return err
				}
			}
			return nil
		}, func(ctx context.Context, a *app, c *client.Client, _ settings) error {
			return printWith(a, one(envTable))(c.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: name, Region: region, Type: typ, Managed: managed}))
		}),
	}
}

func envList() *command {
	return listCommand("list the tenant's environments with their state, key and encryption status",
		[]string{"keyhold env list", "keyhold env list -o json"},
		inTenant((*client.Client).ListEnvironments), envTable)
}

// envVerb is a verb on one environment given as the argument.
func envVerb(name, summary, long string, examples []string, run func(ctx context.Context, a *app, c *client.Client, id string) error) *command {
	return byEnvID(&command{name: name, summary: summary, args: "ENV-ID [flags]", long: long, examples: examples}, name, nil, run)
}

// byEnvID completes cmd, a verb on the environment its one argument names:
// run takes the id (verb names the command in the usage error without one),
// runs check (if not nil) before anything is sent, signs in and hands the
// id to do. Errors are envIDArg's, check's, the sign-in's and do's.
func byEnvID(cmd *command, verb string, check func(a *app) error, do func(ctx context.Context, a *app, c *client.Client, id string) error) *command {
	var id string
	cmd.run = signedIn(func(_ *app, args []string) (err error) {
		id, err = envIDArg(args, verb)
		return err
	}, check, func(ctx context.Context, a *app, c *client.Client, _ settings) error {
		return do(ctx, a, c, id)
	})
	return cmd
}

func envShow() *command {
	return envVerb("show", "show an environment: state (and why it is disabled), key, policy link, encryption progress", "",
		[]string{"keyhold env show ENV-ID", "keyhold env show ENV-ID -o json"},
		func(ctx context.Context, a *app, c *client.Client, id string) error {
			e, err := c.GetEnvironment(ctx, id)
			if err != nil {
				return err
			}
			return a.printEnv(e)
		})
}

func envReenable() *command {
	return envVerb("reenable", "re-enable a locked environment once access to its original key is restored",
		"You need Reader on the environment's enterprise policy, the policy must be Healthy again, and the\n"+
			"original key must unwrap the environment's root key. Nothing was lost while it was disabled.",
		[]string{"keyhold env reenable ENV-ID"},
		func(ctx context.Context, a *app, c *client.Client, id string) error {
			e, err := c.ReenableEnvironment(ctx, id)
			if err != nil {
				return err
			}
			if a.g.output == "json" {
				return writeJSON(a.stdout, e)
			}
			a.say("Environment %s (%s) is enabled again.", e.Properties.DisplayName, e.Name)
			return nil
		})
}

func historyTable(ops []client.EnvironmentOperation) table {
	t := table{header: []string{"TYPE", "STATE", "STARTED", "ENDED", "ERROR"}}
	for _, op := range ops {
		typ := op.TypeDisplayName
		// A CMK update says which one: link, unlink, swap, rotate, migrate.
		if op.Type.ID == "UpdateCustomerManagedKey" && op.Action != "" {
			typ += " (" + op.Action + ")"
		}
		state := op.State.ID
		if op.State.ID == "Running" && op.Progress.Total > 0 {
			state += fmt.Sprintf(" %d%%", min(op.Progress.Done*100/op.Progress.Total, 100))
		}
		ended := ""
		if op.Ended() {
			ended = timeCell(op.LastActionDateTime)
		}
		msg := ""
		if op.Error != nil {
			msg = op.Error.Message
		}
		t.rows = append(t.rows, []string{typ, state, timeCell(op.CreatedDateTime), ended, msg})
	}
	return t
}

func envHistory() *command {
	return envVerb("history", "show an environment's history: created, CMK updates, locks and re-enables, newest first", "",
		[]string{"keyhold env history ENV-ID", "keyhold env history ENV-ID -o json"},
		func(ctx context.Context, a *app, c *client.Client, id string) error {
			return printList(a, historyTable)(c.EnvironmentHistory(ctx, id))
		})
}

func envDelete() *command {
	var yes bool
	return &command{
		name:    "delete",
		summary: "delete an environment and all of its data",
		args:    "ENV-ID [--yes] [flags]",
		long: "The environment's tables, rows, files and root keys are destroyed. Without --yes, delete asks for\n" +
			"confirmation on the terminal, and refuses to run without one.",
		examples: []string{"keyhold env delete ENV-ID --yes"},
		flags:    func(fs *flag.FlagSet) { fs.BoolVar(&yes, "yes", false, "do not ask for confirmation") },
		run: func(ctx context.Context, a *app, args []string) error {
			id, err := envIDArg(args, "delete")
			if err != nil {
				return err
			}
			if !yes && !a.stdinTerminal {
				return usagef("env delete needs --yes when not run on a terminal")
			}
			c, _, err := a.connect()
			if err != nil {
				return err
			}
			e, err := c.GetEnvironment(ctx, id)
			if err != nil {
				return err
			}
			if err := a.mayDestroy(yes, "env delete", fmt.Sprintf("Delete environment %s (%s) and all of its data?", e.Properties.DisplayName, e.Name),
				fmt.Sprintf("environment %s was not deleted", e.Name)); err != nil {
				return err
			}
			if err := c.DeleteEnvironment(ctx, id); err != nil {
				return err
			}
			a.say("Deleted environment %s (%s).", e.Properties.DisplayName, e.Name)
			return nil
		},
	}
}

// --- roles ---

func envRoleCommand() *command {
	return &command{
		name:    "role",
		summary: "grant, revoke and list environment roles (Environment Admin, Environment User)",
		long: "Environment roles let principals use an environment's data. Platform administrators are\n" +
			"environment administrators of every environment already.",
		subs: []*command{envRoleGrant(), envRoleRevoke(), envRoleList()},
	}
}

// envRoleName accepts admin and user for the two roles' full names.
func envRoleName(r string) string {
	switch strings.ToLower(strings.TrimSpace(r)) {
	case "admin", "environment admin", "environmentadmin":
		return client.EnvironmentRoleAdmin
	case "user", "environment user", "environmentuser":
		return client.EnvironmentRoleUser
	}
	return r
}

func roleTable(rs []client.EnvironmentRoleAssignment) table {
	t := table{header: []string{"PRINCIPAL", "ROLE", "GRANTED BY", "GRANTED"}}
	for _, r := range rs {
		t.rows = append(t.rows, []string{r.Properties.PrincipalID, r.Properties.Role, r.Properties.GrantedBy, timeCell(r.Properties.GrantedAt)})
	}
	return t
}

func envRoleGrant() *command {
	var principal, role string
	return byEnvID(&command{
		name:     "grant",
		summary:  "give a principal an environment role",
		args:     "ENV-ID --principal OBJECT-ID --role admin|user [flags]",
		examples: []string{"keyhold env role grant ENV-ID --principal OBJECT-ID --role user"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&principal, "principal", "", "the principal's object `ID` (user, service principal, managed identity or group)")
			fs.StringVar(&role, "role", "", "`ROLE`: admin (Environment Admin) or user (Environment User)")
		},
	}, "role grant", func(*app) error {
		if err := required(principal, "--principal"); err != nil {
			return err
		}
		return required(role, "--role")
	}, func(ctx context.Context, a *app, c *client.Client, id string) error {
		return printWith(a, one(roleTable))(c.GrantEnvironmentRole(ctx, id, principal, envRoleName(role)))
	})
}

func envRoleRevoke() *command {
	var principal string
	return byEnvID(&command{
		name:     "revoke",
		summary:  "take a principal's environment role away",
		args:     "ENV-ID --principal OBJECT-ID [flags]",
		examples: []string{"keyhold env role revoke ENV-ID --principal OBJECT-ID"},
		flags:    func(fs *flag.FlagSet) { fs.StringVar(&principal, "principal", "", "the principal's object `ID`") },
	}, "role revoke", func(*app) error {
		return required(principal, "--principal")
	}, func(ctx context.Context, a *app, c *client.Client, id string) error {
		if err := c.RevokeEnvironmentRole(ctx, id, principal); err != nil {
			return err
		}
		a.say("Revoked the environment role of %s in %s.", principal, id)
		return nil
	})
}

func envRoleList() *command {
	return envVerb("list", "list an environment's role holders", "",
		[]string{"keyhold env role list ENV-ID", "keyhold env role list ENV-ID -o json"},
		func(ctx context.Context, a *app, c *client.Client, id string) error {
			return printList(a, roleTable)(c.ListEnvironmentRoles(ctx, id))
		})
}

// --- tenant settings ---

func envSettingsCommand() *command {
	return &command{
		name:    "settings",
		summary: "show and change the tenant's settings for locked environments",
		long: "auto-reenable: re-enable a locked environment on its own as soon as its policy is healthy again and\n" +
			"the original key works, instead of waiting for 'env reenable'.\n" +
			"retention: delete environments locked for longer than 7 days (30 for Production), after warnings.\n" +
			"Both are off by default: a locked environment is kept until its key is back.",
		subs: []*command{envSettingsShow(), envSettingsSet()},
	}
}

func settingsTable(s *client.EnvironmentSettings) table {
	return table{header: []string{"AUTO REENABLE", "RETENTION"}, rows: [][]string{{strconv.FormatBool(s.AutoReenable), strconv.FormatBool(s.Retention)}}}
}

func envSettingsShow() *command {
	return callCommand("show", "show the tenant's environment settings",
		[]string{"keyhold env settings show", "keyhold env settings show -o json"},
		(*client.Client).GetEnvironmentSettings,
		func(a *app, s *client.EnvironmentSettings) error {
			return a.print(s, func() table { return settingsTable(s) })
		})
}

// parseBoolFlag parses an optional true|false flag; "" is unset.
func parseBoolFlag(v, name string) (*bool, error) {
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, usagef("%s must be true or false, not %q", name, v)
	}
	return &b, nil
}

func envSettingsSet() *command {
	var auto, retention string
	return &command{
		name:     "set",
		summary:  "change the tenant's environment settings; settings not given keep their values",
		args:     "[--auto-reenable true|false] [--retention true|false] [flags]",
		examples: []string{"keyhold env settings set --auto-reenable true", "keyhold env settings set --retention false"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&auto, "auto-reenable", "", "`true` or false: re-enable locked environments once the key is back")
			fs.StringVar(&retention, "retention", "", "`true` or false: delete environments locked longer than 7 days (30 for Production)")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			ab, err := parseBoolFlag(auto, "--auto-reenable")
			if err != nil {
				return err
			}
			rb, err := parseBoolFlag(retention, "--retention")
			if err != nil {
				return err
			}
			if ab == nil && rb == nil {
				return usagef("nothing to change: give --auto-reenable or --retention")
			}
			c, _, err := a.connect()
			if err != nil {
				return err
			}
			s, err := c.GetEnvironmentSettings(ctx)
			if err != nil {
				return err
			}
			if ab != nil {
				s.AutoReenable = *ab
			}
			if rb != nil {
				s.Retention = *rb
			}
			if s, err = c.SetEnvironmentSettings(ctx, *s); err != nil {
				return err
			}
			return a.print(s, func() table { return settingsTable(s) })
		},
	}
}
