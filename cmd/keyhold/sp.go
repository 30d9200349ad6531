package main

import (
	"context"
	"flag"
	"time"

	"github.com/keyhold/keyhold/client"
)

func spCommand() *command {
	return &command{
		name:    "sp",
		summary: "manage service principals and their client secrets",
		examples: []string{
			"keyhold sp create --display-name automation",
			"keyhold sp add-secret --id APP_OR_OBJECT_ID",
		},
		subs: []*command{spCreate(), spList(), spShow(), spDelete(), spAddSecret()},
	}
}

func spTable(sps []client.ServicePrincipal) table {
	t := table{header: []string{"ID", "APP ID", "DISPLAY NAME", "TYPE"}}
	for _, sp := range sps {
		t.rows = append(t.rows, []string{sp.ID, sp.AppID, sp.DisplayName, sp.ServicePrincipalType})
	}
	return t
}

// spSecret is what sp create and sp add-secret show: the one time the
// secret can be seen.
type spSecret struct {
	ID           string     `json:"id"`
	AppID        string     `json:"appId"`
	DisplayName  string     `json:"displayName"`
	Tenant       string     `json:"tenant,omitempty"`
	KeyID        string     `json:"keyId"`
	ClientSecret string     `json:"clientSecret"`
	EndDateTime  *time.Time `json:"endDateTime,omitempty"`
}

func (a *app) printSecret(s spSecret) error {
	if a.g.output != "json" {
		a.say("Save the client secret now: it cannot be shown again.")
	}
	return a.print(s, func() table {
		return table{
			header: []string{"APP ID", "DISPLAY NAME", "TENANT", "CLIENT SECRET"},
			rows:   [][]string{{s.AppID, s.DisplayName, s.Tenant, s.ClientSecret}},
		}
	})
}

// addSecret gives sp a client secret with the display name name and prints
// it, the one time it can be seen. Errors are the server's.
func (a *app) addSecret(ctx context.Context, c *client.Client, s settings, sp *client.ServicePrincipal, name string) error {
	pc, err := c.AddPassword(ctx, sp.ID, name)
	if err != nil {
		return err
	}
	return a.printSecret(spSecret{ID: sp.ID, AppID: sp.AppID, DisplayName: sp.DisplayName, Tenant: s.tenant, KeyID: pc.KeyID, ClientSecret: pc.SecretText, EndDateTime: pc.EndDateTime})
}

func spCreate() *command {
	var displayName string
	return byName(&command{
		name:    "create",
		summary: "create a service principal with a client secret",
		args:    "--display-name NAME [flags]",
		long:    "The client secret is printed once; keep it, for example in KEYHOLD_CLIENT_SECRET.",
		examples: []string{
			"keyhold sp create --display-name automation",
			"keyhold sp create --display-name automation -o json",
		},
		flags: func(fs *flag.FlagSet) { fs.StringVar(&displayName, "display-name", "", "display `NAME`") },
	}, &displayName, "--display-name", nil, func(ctx context.Context, a *app, c *client.Client, s settings, displayName string) error {
		sp, err := c.CreateServicePrincipal(ctx, displayName)
		if err != nil {
			return err
		}
		return a.addSecret(ctx, c, s, sp, "keyhold cli")
	})
}

func spList() *command {
	return listCommand("list service principals and managed identities", []string{"keyhold sp list"},
		inTenant((*client.Client).ListServicePrincipals), spTable)
}

// spByID is a command that names one service principal with --id.
func spByID(name, summary string, examples []string, extra func(fs *flag.FlagSet), do func(ctx context.Context, a *app, c *client.Client, s settings, sp *client.ServicePrincipal) error) *command {
	var id string
	return byName(&command{
		name:     name,
		summary:  summary,
		args:     "--id ID [flags]",
		examples: examples,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&id, "id", "", "the service principal's object `ID` or application (client) id")
			if extra != nil {
				extra(fs)
			}
		},
	}, &id, "--id", nil, func(ctx context.Context, a *app, c *client.Client, s settings, id string) error {
		sp, err := c.GetServicePrincipal(ctx, id)
		if err != nil {
			return err
		}
		return do(ctx, a, c, s, sp)
	})
}

func spShow() *command {
	return spByID("show", "show a service principal", []string{"keyhold sp show --id APP_ID"}, nil,
		func(ctx context.Context, a *app, c *client.Client, s settings, sp *client.ServicePrincipal) error {
			return a.print(sp, func() table { return spTable([]client.ServicePrincipal{*sp}) })
		})
}

func spDelete() *command {
	return spByID("delete", "delete a service principal", []string{"keyhold sp delete --id APP_ID"}, nil,
		func(ctx context.Context, a *app, c *client.Client, s settings, sp *client.ServicePrincipal) error {
			if err := c.DeleteServicePrincipal(ctx, sp.ID); err != nil {
				return err
			}
			a.say("Deleted service principal %s (%s).", sp.DisplayName, sp.AppID)
			return nil
		})
}

func spAddSecret() *command {
	var name string
	return spByID("add-secret", "give a service principal a new client secret", []string{"keyhold sp add-secret --id APP_ID --name rotation-2026"},
		func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "keyhold cli", "a display `NAME` for the secret")
		},
		func(ctx context.Context, a *app, c *client.Client, s settings, sp *client.ServicePrincipal) error {
			return a.addSecret(ctx, c, s, sp, name)
		})
}
