package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold/client"
)

func policyCommand() *command {
	return &command{
		name:    "policy",
		summary: "manage enterprise policies (Microsoft.PowerPlatform/enterprisePolicies): create, show, list, delete, validate",
		long: "An enterprise policy of kind Encryption points at a key in a key vault and has its own managed identity,\n" +
			"which must be granted get, wrapKey and unwrapKey on the key. Its health says whether that identity can\n" +
			"use the key right now. Name a policy by its resource id, or by --name (and --resource-group when the\n" +
			"name is in several groups).",
		examples: []string{
			"keyhold policy create --resource-group rg-contoso --name ep-contoso --location unitedstates --vault-id VAULT-ID --key-name cmk",
			"keyhold policy list",
			"keyhold policy show --name ep-contoso",
			"keyhold policy show /subscriptions/SUB/resourceGroups/rg-contoso/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso -o json",
			"keyhold policy delete --name ep-contoso --yes",
		},
		subs: policyVerbs(),
	}
}

// policyVerbs is the verb table of the policy noun. create (deploy.go) and
// validate (policy_validate.go) come from their own files.
func policyVerbs() []*command {
	return []*command{policyCreateCommand(), policyShow(), policyList(), policyDelete(), policyValidateCommand()}
}

// policyRef is how a command names one policy: a resource id as the
// argument, or --name with an optional --resource-group.
type policyRef struct{ name, group string }

func (r *policyRef) register(fs *flag.FlagSet) {
	fs.StringVar(&r.name, "name", "", "policy `NAME`")
	fs.StringVar(&r.group, "resource-group", "", "resource `GROUP`; searched for if not given")
}

// resolve returns the policy the arguments name, reading it from the server.
func (r *policyRef) resolve(ctx context.Context, a *app, args []string, verb string) (*client.Client, *client.EnterprisePolicy, error) {
	id, err := r.id(args, verb)
	if err != nil {
		return nil, nil, err
	}
	var c *client.Client
	var sub string
	if id != "" {
		if c, _, err = a.connect(); err != nil {
			return nil, nil, err
		}
		p, err := c.GetPolicy(ctx, id)
		if client.IsNotFound(err) {
			return nil, nil, fmt.Errorf("there is no enterprise policy %s", id)
		}
		return c, p, err
	}
	if c, sub, err = a.connectSub(); err != nil {
		return nil, nil, err
	}
	if r.group != "" {
		p, err := c.GetPolicy(ctx, client.PolicyID(sub, r.group, r.name))
		if client.IsNotFound(err) {
			return nil, nil, fmt.Errorf("there is no enterprise policy %s in resource group %s", r.name, r.group)
		}
		return c, p, err
	}
	p, err := c.FindPolicy(ctx, sub, r.name)
	if errors.Is(err, client.ErrAmbiguousPolicy) {
		return nil, nil, usagef("%s", strings.TrimPrefix(err.Error(), "client: "))
	}
	return c, p, err
}

// id returns the resource id given as the argument, or "" when the policy
// is named by --name.
func (r *policyRef) id(args []string, verb string) (string, error) {
	switch {
	case len(args) > 1:
		return "", usagef("unexpected argument %q", args[1])
	case len(args) == 1 && r.name != "":
		return "", usagef("policy %s: give the policy's resource id or --name, not both", verb)
	case len(args) == 1:
		if !client.IsPolicyID(args[0]) {
			return "", usagef("%q is not an enterprise policy's resource id (/subscriptions/SUB/resourceGroups/RG/providers/Microsoft.PowerPlatform/enterprisePolicies/NAME); use --name for a name", args[0])
		}
		if r.group != "" {
			return "", usagef("policy %s: --resource-group goes with --name, not with a resource id", verb)
		}
		return args[0], nil
	case r.name == "":
		return "", usagef("policy %s needs the policy's resource id or --name", verb)
	}
	return "", nil
}

// keyOf describes the key an Encryption policy uses: vault/key[/version].
func keyOf(p client.EnterprisePolicy) string {
	e := p.Properties.Encryption
	if e == nil || e.KeyVault == nil {
		return ""
	}
	vault := e.KeyVault.ID
	if i := strings.LastIndexByte(vault, '/'); i >= 0 {
		vault = vault[i+1:]
	}
	s := vault + "/" + e.KeyVault.Key.Name
	if e.KeyVault.Key.Version != "" {
		s += "/" + e.KeyVault.Key.Version
	}
	return s
}

func enterprisePolicyTable(ps []client.EnterprisePolicy) table {
	t := table{header: []string{"NAME", "RESOURCE GROUP", "LOCATION", "KIND", "HEALTH", "IDENTITY", "KEY"}}
	for _, p := range ps {
		t.rows = append(t.rows, []string{p.Name, p.ResourceGroup(), p.Location, p.Kind, p.Properties.HealthStatus, p.PrincipalID(), keyOf(p)})
	}
	return t
}

// enterprisePolicyDetail is show's table: one field a line.
func enterprisePolicyDetail(p *client.EnterprisePolicy) table {
	t := table{header: []string{"FIELD", "VALUE"}}
	add := func(k, v string) { t.rows = append(t.rows, []string{k, v}) }
	add("ID", p.ID)
	add("KIND", p.Kind)
	add("LOCATION", p.Location)
	add("SYSTEM ID", p.Properties.SystemID)
	add("HEALTH", p.Properties.HealthStatus)
	if d := p.Properties.HealthDetail; d != nil {
		add("HEALTH REASON", d.Reason)
		if !d.CheckedAt.IsZero() {
			add("CHECKED", d.CheckedAt.UTC().Format(time.RFC3339))
		}
	}
	identity := "None"
	if p.Identity != nil && p.Identity.Type != "" {
		identity = p.Identity.Type
	}
	add("IDENTITY", identity)
	if id := p.PrincipalID(); id != "" {
		add("PRINCIPAL ID", id)
		add("TENANT", p.Identity.TenantID)
	}
	if e := p.Properties.Encryption; e != nil {
		add("ENCRYPTION", e.State)
		if e.KeyVault != nil {
			add("VAULT", e.KeyVault.ID)
			add("KEY", e.KeyVault.Key.Name)
			version := e.KeyVault.Key.Version
			if version == "" {
				version = "(newest)"
			}
			add("KEY VERSION", version)
		}
	}
	if n := p.Properties.NetworkInjection; n != nil {
		for i, v := range n.VirtualNetworks {
			add(fmt.Sprintf("NETWORK %d", i+1), v.ID+" subnet "+v.Subnet.Name)
		}
	}
	if l := p.Properties.Lockbox; l != nil {
		add("LOCKBOX", l.State)
	}
	return t
}

func policyShow() *command {
	var ref policyRef
	return &command{
		name:    "show",
		summary: "show a policy: its key, identity, systemId and health with the reason",
		args:    "[POLICY-ID | --name NAME [--resource-group GROUP]] [flags]",
		examples: []string{
			"keyhold policy show --name ep-contoso",
			"keyhold policy show /subscriptions/SUB/resourceGroups/rg-contoso/providers/Microsoft.PowerPlatform/enterprisePolicies/ep-contoso -o json",
		},
		flags: ref.register,
		run: func(ctx context.Context, a *app, args []string) error {
			_, p, err := ref.resolve(ctx, a, args, "show")
			if err != nil {
				return err
			}
			return a.print(p, func() table { return enterprisePolicyDetail(p) })
		},
	}
}

func policyList() *command {
	var group, kind string
	return &command{
		name:     "list",
		summary:  "list the policies of the subscription or of a resource group",
		args:     "[--resource-group GROUP] [--kind KIND] [flags]",
		examples: []string{"keyhold policy list", "keyhold policy list --resource-group rg-contoso --kind Encryption -o json"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&group, "resource-group", "", "only this resource `GROUP`")
			fs.StringVar(&kind, "kind", "", "only policies of this `KIND` (Encryption, Identity, NetworkInjection, Lockbox, PrivateEndpoint)")
		},
		run: signedIn(argless, nil, inSub(func(ctx context.Context, a *app, c *client.Client, sub string) error {
			ps, err := c.ListPolicies(ctx, sub, group)
			if err != nil {
				return err
			}
			if kind != "" {
				kept := ps[:0]
				for _, p := range ps {
					if strings.EqualFold(p.Kind, kind) {
						kept = append(kept, p)
					}
				}
				ps = kept
			}
			return a.print(orEmpty(ps), func() table { return enterprisePolicyTable(ps) })
		})),
	}
}

func policyDelete() *command {
	var ref policyRef
	var yes bool
	return &command{
		name:    "delete",
		summary: "delete a policy and its managed identity",
		args:    "[POLICY-ID | --name NAME [--resource-group GROUP]] [--yes] [flags]",
		long: "A policy that environments are linked to cannot be deleted: remove the environments from it first.\n" +
			"Its managed identity is deleted with it, so access granted to that identity is gone for good.\n" +
			"Without --yes, delete asks for confirmation on the terminal, and refuses to run without one.",
		examples: []string{"keyhold policy delete --name ep-contoso --yes"},
		flags: func(fs *flag.FlagSet) {
			ref.register(fs)
			fs.BoolVar(&yes, "yes", false, "do not ask for confirmation")
		},
		run: func(ctx context.Context, a *app, args []string) error {
			if _, err := ref.id(args, "delete"); err != nil {
				return err
			}
			if !yes && !a.stdinTerminal {
				return usagef("policy delete needs --yes when not run on a terminal")
			}
			c, p, err := ref.resolve(ctx, a, args, "delete")
			if err != nil {
				return err
			}
			if !yes && !a.confirm(fmt.Sprintf("Delete enterprise policy %s and its managed identity %s?", p.Name, p.PrincipalID())) {
				return fmt.Errorf("enterprise policy %s was not deleted", p.Name)
			}
			if err := c.DeletePolicy(ctx, p.ID); err != nil {
				return err
			}
			a.say("Deleted enterprise policy %s.", p.Name)
			return nil
		},
	}
}
