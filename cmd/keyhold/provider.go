package main

import (
	"context"
	"flag"

	"github.com/keyhold/keyhold/client"
)

func providerCommand() *command {
	return &command{
		name:    "provider",
		summary: "list resource providers and register the subscription for them",
		examples: []string{
			"keyhold provider list",
			"keyhold provider register --namespace Microsoft.PowerPlatform --wait",
		},
		subs: []*command{providerList(), providerShow(), providerRegister(true), providerRegister(false)},
	}
}

func providerTable(ps []client.Provider) table {
	t := table{header: []string{"NAMESPACE", "REGISTRATION STATE"}}
	for _, p := range ps {
		t.rows = append(t.rows, []string{p.Namespace, p.RegistrationState})
	}
	return t
}

func providerList() *command {
	return listCommand("list resource providers and the subscription's registration of each", []string{"keyhold provider list", "keyhold provider list -o json"},
		inSubscription((*client.Client).ListProviders), providerTable)
}

func providerShow() *command {
	var ns string
	return byNameInSub(&command{
		name:     "show",
		summary:  "show a resource provider",
		args:     "--namespace NAMESPACE [flags]",
		examples: []string{"keyhold provider show --namespace Microsoft.KeyVault"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ns, "namespace", "", "provider `NAMESPACE`, such as Microsoft.PowerPlatform")
		},
	}, &ns, "--namespace", nil, func(ctx context.Context, a *app, c *client.Client, sub, ns string) error {
		return printWith(a, one(providerTable))(c.GetProvider(ctx, sub, ns))
	})
}

// providerRegister is the register command, or unregister if !register.
func providerRegister(register bool) *command {
	var ns string
	var wait bool
	c := &command{
		name:     "register",
		summary:  "register the subscription for a resource provider",
		args:     "--namespace NAMESPACE [--wait] [flags]",
		examples: []string{"keyhold provider register --namespace Microsoft.PowerPlatform --wait"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ns, "namespace", "", "provider `NAMESPACE`, such as Microsoft.PowerPlatform")
			fs.BoolVar(&wait, "wait", false, "wait until the registration is done")
		},
	}
	verb, final := "registering", "Registered"
	if !register {
		c.name, c.summary = "unregister", "unregister the subscription from a resource provider"
		c.examples = []string{"keyhold provider unregister --namespace Microsoft.PowerPlatform --wait"}
		verb, final = "unregistering", "Unregistered"
	}
	return byNameInSub(c, &ns, "--namespace", nil, func(ctx context.Context, a *app, cl *client.Client, sub, ns string) error {
		pr := a.progress(verb + " " + ns)
		var p *client.Provider
		var err error
		if register {
			p, err = cl.RegisterProvider(ctx, sub, ns, wait, pr.tick)
		} else {
			p, err = cl.UnregisterProvider(ctx, sub, ns, wait, pr.tick)
		}
		pr.done()
		if err != nil {
			return err
		}
		if !wait && p.RegistrationState != final {
			a.say("%s is %s; run 'keyhold provider show --namespace %s' to follow it, or use --wait.", ns, p.RegistrationState, ns)
		}
		return a.print(p, func() table { return providerTable([]client.Provider{*p}) })
	})
}
