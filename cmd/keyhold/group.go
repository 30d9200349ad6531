package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/keyhold/keyhold/client"
)

func groupCommand() *command {
	return &command{
		name:    "group",
		summary: "manage resource groups (like az group)",
		examples: []string{
			"keyhold group create --name rg-contoso --location westus",
			"keyhold group list",
			"keyhold group delete --name rg-contoso --yes",
		},
		subs: []*command{groupCreate(), groupList(), groupShow(), groupDelete()},
	}
}

// nameArg returns the --name flag or the one positional argument.
func nameArg(flagVal string, args []string, what string) (string, error) {
	switch {
	case len(args) > 1 || (len(args) == 1 && flagVal != ""):
		return "", usagef("unexpected argument %q", args[len(args)-1])
	case len(args) == 1:
		return args[0], nil
	case flagVal == "":
		return "", usagef("%s is required", what)
	}
	return flagVal, nil
}

// tagFlag collects --tag KEY=VALUE flags.
type tagFlag map[string]string

func (t tagFlag) String() string { return "" }

func (t tagFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("a tag looks like KEY=VALUE, not %q", v)
	}
	t[k] = val
	return nil
}

func groupTable(gs []client.ResourceGroup) table {
	t := table{header: []string{"NAME", "LOCATION", "STATE", "TAGS"}}
	for _, g := range gs {
		var tags []string
		for k, v := range g.Tags {
			tags = append(tags, k+"="+v)
		}
		sort.Strings(tags)
		t.rows = append(t.rows, []string{g.Name, g.Location, g.Properties.ProvisioningState, strings.Join(tags, ",")})
	}
	return t
}

func groupCreate() *command {
	var name, location string
	tags := tagFlag{}
	return byNameInSub(&command{
		name:     "create",
		summary:  "create or update a resource group",
		args:     "--name NAME --location LOCATION [--tag KEY=VALUE]... [flags]",
		examples: []string{"keyhold group create --name rg-contoso --location westus --tag env=test"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "resource group `NAME`")
			fs.StringVar(&location, "location", "", "the Azure `LOCATION`, such as westus")
			fs.Var(tags, "tag", "a `KEY=VALUE` tag; repeat for more")
		},
	}, &name, "--name", func(*app, string) error {
		return required(location, "--location")
	}, func(ctx context.Context, a *app, c *client.Client, sub, name string) error {
		return printWith(a, one(groupTable))(c.CreateResourceGroup(ctx, sub, name, location, tags))
	})
}

func groupList() *command {
	return listCommand("list the subscription's resource groups", []string{"keyhold group list", "keyhold group list -o json"},
		inSubscription((*client.Client).ListResourceGroups), groupTable)
}

func groupShow() *command {
	var name string
	return byNameInSub(&command{
		name:     "show",
		summary:  "show a resource group",
		args:     "--name NAME [flags]",
		examples: []string{"keyhold group show --name rg-contoso"},
		flags:    func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "resource group `NAME`") },
	}, &name, "--name", nil, func(ctx context.Context, a *app, c *client.Client, sub, name string) error {
		return printWith(a, one(groupTable))(c.GetResourceGroup(ctx, sub, name))
	})
}

func groupDelete() *command {
	var name string
	var yes bool
	return byNameInSub(&command{
		name:    "delete",
		summary: "delete a resource group and everything in it, and wait until it is gone",
		args:    "--name NAME [--yes] [flags]",
		long:    "Without --yes, delete asks for confirmation on the terminal, and refuses to run without one.",
		examples: []string{
			"keyhold group delete --name rg-contoso",
			"keyhold group delete --name rg-contoso --yes",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "resource group `NAME`")
			yesFlag(fs, &yes)
		},
	}, &name, "--name", confirmName(&yes, "group delete", "Delete resource group %s and all its resources?", "resource group %s was not deleted"),
		func(ctx context.Context, a *app, c *client.Client, sub, name string) error {
			p := a.progress("deleting resource group " + name)
			err := c.DeleteResourceGroup(ctx, sub, name, p.tick)
			p.done()
			if err != nil {
				return err
			}
			a.say("Deleted resource group %s.", name)
			return nil
		})
}
