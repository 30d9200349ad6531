package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

func userCommand() *command {
	return &command{
		name:    "user",
		summary: "manage directory users and their directory roles",
		examples: []string{
			"keyhold user create --upn ppadmin@contoso.keyhold.local --display-name 'Platform Admin' --role 'Power Platform Administrator'",
			"keyhold user list",
			"keyhold user add-role --id ppadmin@contoso.keyhold.local --role 'Dynamics 365 Administrator'",
		},
		subs: []*command{userCreate(), userList(), userShow(), userDelete(), userSetPassword(), userRole(true), userRole(false)},
	}
}

func userTable(us []client.User) table {
	t := table{header: []string{"ID", "USER PRINCIPAL NAME", "DISPLAY NAME", "ENABLED"}}
	for _, u := range us {
		t.rows = append(t.rows, []string{u.ID, u.UserPrincipalName, u.DisplayName, yesNo(u.AccountEnabled)})
	}
	return t
}

// roleTemplateID returns the template id of a directory role named
// case-insensitively, or given by its template id.
func roleTemplateID(name string) (string, error) {
	var names []string
	for n, id := range keyhold.DirectoryRoles {
		if strings.EqualFold(n, strings.TrimSpace(name)) || strings.EqualFold(id, strings.TrimSpace(name)) {
			return id, nil
		}
		names = append(names, fmt.Sprintf("%q", n))
	}
	sort.Strings(names)
	return "", usagef("unknown directory role %q; the roles are %s", name, strings.Join(names, ", "))
}

// newPassword returns the --user-password flag, or asks for a password
// twice on the terminal.
func (a *app) newPassword(flagVal, upn string) (keyhold.Secret, error) {
	if flagVal != "" {
		return keyhold.NewSecret([]byte(flagVal)), nil
	}
	p1, err := a.readSecret("New password for " + upn + ": ")
	if err != nil {
		return keyhold.Secret{}, usagef("no password: use --user-password (%v)", err)
	}
	p2, err := a.readSecret("Repeat it: ")
	if err != nil {
		return keyhold.Secret{}, err
	}
	if p1 != p2 {
		return keyhold.Secret{}, fmt.Errorf("the passwords do not match")
	}
	if p1 == "" {
		return keyhold.Secret{}, fmt.Errorf("the password is empty")
	}
	return keyhold.NewSecret([]byte(p1)), nil
}

// stringsFlag collects a repeated flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

func userCreate() *command {
	var upn, displayName, password string
	var roles stringsFlag
	var ids []string
	return byName(&command{
		name:    "create",
		summary: "create a user",
		args:    "--upn UPN --display-name NAME [--user-password PASSWORD] [--role ROLE]... [flags]",
		long: "Without --user-password, create asks for the new user's password on the terminal.\n" +
			"(--password is the signed-in user's own password, as on every command.)",
		examples: []string{
			"keyhold user create --upn kvadmin@contoso.keyhold.local --display-name 'Key Vault Admin'",
			"keyhold user create --upn ppadmin@contoso.keyhold.local --display-name 'Platform Admin' --user-password 'S3cure-pass!' --role 'Power Platform Administrator'",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&upn, "upn", "", "user principal `NAME`, such as alice@contoso.keyhold.local")
			fs.StringVar(&displayName, "display-name", "", "display `NAME`")
			fs.StringVar(&password, "user-password", "", "the new user's `PASSWORD`")
			fs.Var(&roles, "role", "directory `ROLE` to give, such as 'Power Platform Administrator'; repeat for more")
		},
	}, &upn, "--upn", func(_ *app, upn string) error {
		if displayName == "" {
			displayName = strings.SplitN(upn, "@", 2)[0]
		}
		for _, r := range roles {
			id, err := roleTemplateID(r)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	}, func(ctx context.Context, a *app, c *client.Client, _ settings, upn string) error {
		pw, err := a.newPassword(password, upn)
		if err != nil {
			return err
		}
		u, err := c.CreateUser(ctx, upn, displayName, pw)
		if err != nil {
			return err
		}
		for i, id := range ids {
			if err := c.AddDirectoryRoleMember(ctx, id, u.ID); err != nil {
				return fmt.Errorf("user %s was created, but giving it the role %q failed: %w", upn, roles[i], err)
			}
		}
		return a.print(u, func() table { return userTable([]client.User{*u}) })
	})
}

func userList() *command {
	return listCommand("list users", []string{"keyhold user list", "keyhold user list -o json"},
		inTenant((*client.Client).ListUsers), userTable)
}

// userByID is a command that names one user with --id ID|UPN.
// check, if not nil, validates the flags before anything is sent.
func userByID(name, summary, args string, examples []string, extra func(fs *flag.FlagSet), check func() error, do func(ctx context.Context, a *app, c *client.Client, id string) error) *command {
	var id string
	var checkID func(*app, string) error
	if check != nil {
		checkID = func(*app, string) error { return check() }
	}
	return byName(&command{
		name:     name,
		summary:  summary,
		args:     args,
		examples: examples,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&id, "id", "", "the user's object `ID` or user principal name")
			if extra != nil {
				extra(fs)
			}
		},
	}, &id, "--id", checkID, func(ctx context.Context, a *app, c *client.Client, _ settings, id string) error {
		return do(ctx, a, c, id)
	})
}

func userShow() *command {
	return userByID("show", "show a user", "--id ID|UPN [flags]",
		[]string{"keyhold user show --id alice@contoso.keyhold.local"}, nil, nil,
		func(ctx context.Context, a *app, c *client.Client, id string) error {
			return printWith(a, one(userTable))(c.GetUser(ctx, id))
		})
}

func userDelete() *command {
	return userByID("delete", "delete a user", "--id ID|UPN [flags]",
		[]string{"keyhold user delete --id alice@contoso.keyhold.local"}, nil, nil,
		func(ctx context.Context, a *app, c *client.Client, id string) error {
			if err := c.DeleteUser(ctx, id); err != nil {
				return err
			}
			a.say("Deleted user %s.", id)
			return nil
		})
}

func userSetPassword() *command {
	var password string
	return userByID("set-password", "set a user's password", "--id ID|UPN [--user-password PASSWORD] [flags]",
		[]string{"keyhold user set-password --id alice@contoso.keyhold.local"},
		func(fs *flag.FlagSet) {
			fs.StringVar(&password, "user-password", "", "the new `PASSWORD`; asked on the terminal if not given")
		},
		nil,
		func(ctx context.Context, a *app, c *client.Client, id string) error {
			pw, err := a.newPassword(password, id)
			if err != nil {
				return err
			}
			if err := c.SetUserPassword(ctx, id, pw); err != nil {
				return err
			}
			a.say("Changed the password of %s.", id)
			return nil
		})
}

// userRole is add-role, or remove-role if !add.
func userRole(add bool) *command {
	var role string
	name, summary, verb := "add-role", "give a user a directory role", "Gave"
	if !add {
		name, summary, verb = "remove-role", "take a directory role away from a user", "Took"
	}
	return userByID(name, summary, "--id ID|UPN --role ROLE [flags]",
		[]string{fmt.Sprintf("keyhold user %s --id alice@contoso.keyhold.local --role 'Power Platform Administrator'", name)},
		func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", "", "directory `ROLE`: 'Global Administrator', 'Power Platform Administrator' or 'Dynamics 365 Administrator'")
		},
		func() error {
			if role == "" {
				return usagef("--role is required")
			}
			_, err := roleTemplateID(role)
			return err
		},
		func(ctx context.Context, a *app, c *client.Client, id string) error {
			tid, _ := roleTemplateID(role)
			// The role endpoints take object ids; a UPN is looked up first.
			u, err := c.GetUser(ctx, id)
			if err != nil {
				return err
			}
			if add {
				err = c.AddDirectoryRoleMember(ctx, tid, u.ID)
			} else {
				err = c.RemoveDirectoryRoleMember(ctx, tid, u.ID)
			}
			if err != nil {
				return err
			}
			if add {
				a.say("%s %s the role %s.", verb, u.UserPrincipalName, role)
			} else {
				a.say("%s the role %s away from %s.", verb, role, u.UserPrincipalName)
			}
			return nil
		})
}
