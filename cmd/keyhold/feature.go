package main

import (
	"context"
	"flag"
	"strings"

	"github.com/keyhold/keyhold/client"
)

func featureCommand() *command {
	return &command{
		name:    "feature",
		summary: "register the subscription for preview features",
		examples: []string{
			"keyhold feature register --namespace Microsoft.PowerPlatform --name enterprisePoliciesPreview",
			"keyhold feature list --namespace Microsoft.PowerPlatform",
		},
		subs: []*command{featureRegister(), featureShow(), featureList()},
	}
}

func featureTable(fs []client.Feature) table {
	t := table{header: []string{"NAMESPACE", "NAME", "STATE"}}
	for _, f := range fs {
		ns, name, ok := strings.Cut(f.Name, "/")
		if !ok {
			ns, name = "", f.Name
		}
		t.rows = append(t.rows, []string{ns, name, f.Properties.State})
	}
	return t
}

// featureFlags registers --namespace and --name.
func featureFlags(ns, name *string) func(fs *flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		fs.StringVar(ns, "namespace", "", "provider `NAMESPACE`, such as Microsoft.PowerPlatform")
		fs.StringVar(name, "name", "", "feature `NAME`, such as enterprisePoliciesPreview")
	}
}

// featureRun returns the run of a command that acts on the feature
// --namespace/--name with do.
func featureRun(verb string, ns, name *string, do func(c *client.Client, ctx context.Context, sub, ns, name string) (*client.Feature, error)) func(ctx context.Context, a *app, args []string) error {
	return signedIn(argless, func(*app) error {
		if *ns == "" || *name == "" {
			return usagef("feature %s needs --namespace and --name", verb)
		}
		return nil
	}, inSub(func(ctx context.Context, a *app, c *client.Client, sub string) error {
		f, err := do(c, ctx, sub, *ns, *name)
		if err != nil {
			return err
		}
		if f.Name == "" {
			f.Name = *ns + "/" + *name
		}
		return a.print(f, func() table { return featureTable([]client.Feature{*f}) })
	}))
}

func featureRegister() *command {
	var ns, name string
	return &command{
		name:     "register",
		summary:  "register the subscription for a preview feature",
		args:     "--namespace NAMESPACE --name NAME [flags]",
		long:     "It sends the call the CMK documentation makes:\nPOST /subscriptions/{s}/providers/Microsoft.Features/providers/{ns}/features/{name}/register?api-version=2014-08-01-preview",
		examples: []string{"keyhold feature register --namespace Microsoft.PowerPlatform --name enterprisePoliciesPreview"},
		flags:    featureFlags(&ns, &name),
		run:      featureRun("register", &ns, &name, (*client.Client).RegisterFeature),
	}
}

func featureShow() *command {
	var ns, name string
	return &command{
		name:     "show",
		summary:  "show the subscription's registration of a preview feature",
		args:     "--namespace NAMESPACE --name NAME [flags]",
		examples: []string{"keyhold feature show --namespace Microsoft.PowerPlatform --name enterprisePoliciesPreview"},
		flags:    featureFlags(&ns, &name),
		run:      featureRun("show", &ns, &name, (*client.Client).GetFeature),
	}
}

func featureList() *command {
	var ns string
	return &command{
		name:     "list",
		summary:  "list preview features, of one namespace or all",
		args:     "[--namespace NAMESPACE] [flags]",
		examples: []string{"keyhold feature list", "keyhold feature list --namespace Microsoft.PowerPlatform"},
		flags:    func(fs *flag.FlagSet) { fs.StringVar(&ns, "namespace", "", "only this provider `NAMESPACE`") },
		run: signedIn(argless, nil, inSub(func(ctx context.Context, a *app, c *client.Client, sub string) error {
			return printList(a, featureTable)(c.ListFeatures(ctx, sub, ns))
		})),
	}
}
