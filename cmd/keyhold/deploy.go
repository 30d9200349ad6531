package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/client"
)

// deployCommand is `keyhold deploy`: an ARM template deployment into a
// resource group, followed until it ends.
func deployCommand() *command {
	var o deployOptions
	return &command{
		name:    "deploy",
		summary: "deploy an ARM template into a resource group and show its progress until it ends (like az deployment group create)",
		args:    "--resource-group RG --template-file FILE [--parameters NAME=VALUE|@FILE]... [--name NAME] [flags]",
		long: "The template is validated as a whole first; a template that is not JSON (such as the documentation's\n" +
			"enterprise-policy template with {EnterprisePolicyName} still in it) is refused with its line and column.\n" +
			"Then each resource is deployed in dependsOn order, as you, and each one's state is shown as it changes.\n" +
			"Parameters take the type the template declares: NAME=VALUE gives a string, number or boolean as the\n" +
			"parameter's type asks, and JSON for object and array parameters; @FILE reads a parameter file.\n" +
			"The deployment is named after the template file unless --name says otherwise.",
		examples: []string{
			"keyhold deploy --resource-group rg-contoso --template-file policy.json",
			"keyhold deploy --resource-group rg-contoso --template-file grants.json --parameters vaultName=kv-contoso --parameters @grants.parameters.json",
			"keyhold deploy -g rg-contoso -f policy.json --name EPDeployment -o json",
		},
		flags: o.register,
		run: func(ctx context.Context, a *app, args []string) error {
			return cmdDeploy(ctx, a, args, &o)
		},
	}
}

// deployOptions are the flags of keyhold deploy.
type deployOptions struct {
	group, file, name string
	params            paramFlag
}

func (o *deployOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.group, "resource-group", "", "resource `GROUP` to deploy into")
	fs.StringVar(&o.group, "g", "", "short for --resource-group")
	fs.StringVar(&o.file, "template-file", "", "the template's JSON `FILE`")
	fs.StringVar(&o.file, "f", "", "short for --template-file")
	fs.StringVar(&o.name, "name", "", "deployment `NAME` (default: the template file's name)")
	fs.Var(&o.params, "parameters", "a parameter `NAME=VALUE`, or @FILE for a parameter file; repeat for more")
	fs.Var(&o.params, "p", "short for --parameters")
}

// paramFlag collects --parameters values in order.
type paramFlag []string

func (p *paramFlag) String() string { return "" }

func (p *paramFlag) Set(v string) error {
	if !strings.HasPrefix(v, "@") && !strings.Contains(v, "=") {
		return fmt.Errorf("a parameter looks like NAME=VALUE or @FILE, not %q", v)
	}
	*p = append(*p, v)
	return nil
}

var deploymentNameChars = regexp.MustCompile(`[^-\w._()]`)

// defaultDeploymentName names a deployment after its template file.
func defaultDeploymentName(file string) string {
	return deploymentName(strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)))
}

// deploymentName makes s a valid deployment name: 1 to 64 letters, digits,
// and - _ . ( ).
func deploymentName(s string) string {
	s = deploymentNameChars.ReplaceAllString(s, "-")
	if s == "" || s == "." {
		s = "deployment"
	}
	return s[:min(len(s), 64)]
}

func cmdDeploy(ctx context.Context, a *app, args []string, o *deployOptions) error {
	if err := noArgs(args); err != nil {
		return err
	}
	if o.group == "" {
		return usagef("--resource-group is required")
	}
	if o.file == "" {
		return usagef("--template-file is required")
	}
	template, err := os.ReadFile(o.file)
	if err != nil {
		return fmt.Errorf("reading the template: %w", err)
	}
	params, err := parseParams(template, o.params)
	if err != nil {
		return err
	}
	name := o.name
	if name == "" {
		name = defaultDeploymentName(o.file)
	}
	c, sub, err := a.connectSub()
	if err != nil {
		return err
	}
	return printWith(a, deploymentTable)(a.deploy(ctx, c, sub, o.group, name, template, params))
}

// deploy starts a deployment and shows its progress on stderr until it
// ends. A failed deployment comes back as an error with the failure's
// details.
func (a *app) deploy(ctx context.Context, c *client.Client, sub, group, name string, template []byte, params map[string]any) (*client.Deployment, error) {
	if _, err := c.CreateDeployment(ctx, sub, group, name, template, params); err != nil {
		return nil, err
	}
	fmt.Fprintf(a.stderr, "Deploying %s into resource group %s...\n", name, group)
	p := a.progress("deploying " + name)
	shown := map[string]string{}
	d, err := c.WaitDeployment(ctx, sub, group, name, p.tick, func(d *client.Deployment, ops []client.DeploymentOperation) {
		for _, op := range ops {
			t := op.Properties.TargetResource
			key := op.OperationID
			st := op.Properties.ProvisioningState
			if shown[key] == st {
				continue
			}
			shown[key] = st
			p.done()
			line := fmt.Sprintf("  %-9s %s %s", st, t.ResourceType, t.ResourceName)
			if sm := op.Properties.StatusMessage; sm != nil && sm.Error != nil {
				line += ": " + sm.Error.Message + " (" + sm.Error.Code + ")"
			}
			fmt.Fprintln(a.stderr, oneLine(line))
		}
	})
	p.done()
	if err != nil {
		return d, err
	}
	fmt.Fprintf(a.stderr, "Deployment %s %s in %s.\n", name, strings.ToLower(d.Properties.ProvisioningState), d.Properties.Duration)
	return d, nil
}

// parseParams turns --parameters values into parameter values, typed as
// the template declares them (when the template is JSON; the server
// reports a template that is not).
func parseParams(template []byte, flags []string) (map[string]any, error) {
	var decl struct {
		Parameters map[string]struct {
			Type string `json:"type"`
		} `json:"parameters"`
	}
	_ = json.Unmarshal(template, &decl)
	typeOf := func(name string) string {
		for k, v := range decl.Parameters {
			if strings.EqualFold(k, name) {
				return strings.ToLower(v.Type)
			}
		}
		return ""
	}
	out := map[string]any{}
	for _, f := range flags {
		if file, ok := strings.CutPrefix(f, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("reading the parameter file: %w", err)
			}
			var pf map[string]json.RawMessage
			if err := json.Unmarshal(b, &pf); err != nil {
				return nil, usagef("the parameter file %s is not JSON: %v", file, err)
			}
			if inner, ok := pf["parameters"]; ok {
				pf = nil
				if err := json.Unmarshal(inner, &pf); err != nil {
					return nil, usagef("the parameters in %s are not an object", file)
				}
			}
			for k, raw := range pf {
				var v struct {
					Value any `json:"value"`
				}
				if err := json.Unmarshal(raw, &v); err != nil {
					return nil, usagef("the parameter %s in %s must be an object with a value", k, file)
				}
				out[k] = v.Value
			}
			continue
		}
		k, v, _ := strings.Cut(f, "=")
		if k == "" {
			return nil, usagef("a parameter looks like NAME=VALUE, not %q", f)
		}
		switch typeOf(k) {
		case "int":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, usagef("the parameter %s is an int; %q is not", k, v)
			}
			out[k] = n
		case "bool":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, usagef("the parameter %s is a bool; %q is not (use true or false)", k, v)
			}
			out[k] = b
		case "object", "secureobject", "array":
			var j any
			if err := json.Unmarshal([]byte(v), &j); err != nil {
				return nil, usagef("the parameter %s takes JSON; %q is not: %v", k, v, err)
			}
			out[k] = j
		default:
			out[k] = v
		}
	}
	return out, nil
}

func deploymentTable(d *client.Deployment) table {
	t := table{header: []string{"NAME", "STATE", "DURATION", "RESOURCES", "OUTPUTS"}}
	var res, outs []string
	for _, r := range d.Properties.OutputResources {
		res = append(res, r.ID)
	}
	for k, v := range d.Properties.Outputs {
		outs = append(outs, fmt.Sprintf("%s=%v", k, v.Value))
	}
	t.rows = append(t.rows, []string{d.Name, d.Properties.ProvisioningState, d.Properties.Duration, strings.Join(res, " "), strings.Join(outs, " ")})
	return t
}

// policyCreateOptions are the flags of keyhold policy create.
type policyCreateOptions struct {
	group, name, location, vaultID, keyName, keyVersion string
}

func (o *policyCreateOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.group, "resource-group", "", "resource `GROUP` for the policy")
	fs.StringVar(&o.name, "name", "", "policy `NAME`, as the admin center shows it")
	fs.StringVar(&o.location, "location", "", "Power Platform `REGION`, such as unitedstates or europe; it must be the environments' region")
	fs.StringVar(&o.vaultID, "vault-id", "", "the key vault's resource `ID`")
	fs.StringVar(&o.keyName, "key-name", "", "the key's `NAME`")
	fs.StringVar(&o.keyVersion, "key-version", "", "the key's `VERSION`; without it the policy follows the newest version")
}

// policyCreateCommand is `keyhold policy create`; the policy noun lists it
// among its verbs.
func policyCreateCommand() *command {
	var o policyCreateOptions
	return &command{
		name:    "create",
		summary: "create an Encryption enterprise policy by deploying the documentation's template, and print it with its identity",
		args:    "--resource-group RG --name NAME --location REGION --vault-id ID --key-name KEY [--key-version V] [flags]",
		long: "Builds the enterprise-policy template of \"Manage your customer-managed encryption key\" with your values\n" +
			"and deploys it (deployment EPDeployment-NAME), as CreateCMKEnterprisePolicy.ps1 does. The policy gets a\n" +
			"system-assigned managed identity: grant it get, wrapKey and unwrapKey on the key next. Register the\n" +
			"Microsoft.PowerPlatform provider first.",
		examples: []string{
			"keyhold policy create --resource-group rg-contoso --name ep-contoso --location unitedstates \\\n" +
				"    --vault-id /subscriptions/SUB/resourceGroups/rg-contoso/providers/Microsoft.KeyVault/vaults/kv-contoso --key-name cmk",
		},
		flags: o.register,
		run: func(ctx context.Context, a *app, args []string) error {
			return cmdPolicyCreate(ctx, a, args, &o)
		},
	}
}

// cmdPolicyCreate runs `keyhold policy create`: it deploys the policy
// template and prints the policy with its principal id.
func cmdPolicyCreate(ctx context.Context, a *app, args []string, o *policyCreateOptions) error {
	name, err := nameArg(o.name, args, "--name")
	if err != nil {
		return err
	}
	for _, f := range []struct{ v, flag string }{{o.group, "--resource-group"}, {o.location, "--location"}, {o.vaultID, "--vault-id"}, {o.keyName, "--key-name"}} {
		if f.v == "" {
			return usagef("%s is required", f.flag)
		}
	}
	if !strings.Contains(strings.ToLower(o.vaultID), "/providers/microsoft.keyvault/vaults/") {
		return usagef("--vault-id %q is not a key vault's resource id; it looks like /subscriptions/SUB/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/NAME", o.vaultID)
	}
	c, sub, err := a.connectSub()
	if err != nil {
		return err
	}
	params := client.PolicyTemplateParameters(name, o.location, o.vaultID, o.keyName, o.keyVersion)
	if _, err := a.deploy(ctx, c, sub, o.group, deploymentName("EPDeployment-"+name), []byte(client.PolicyTemplate), params); err != nil {
		return err
	}
	p, err := c.GetPolicy(ctx, client.PolicyID(sub, o.group, name))
	if err != nil {
		return err
	}
	if a.g.output != "json" {
		fmt.Fprintf(a.stderr, "Grant the policy's identity %s get, wrapKey and unwrapKey on key %s, and a Power Platform administrator Reader on the policy.\n", p.PrincipalID(), o.keyName)
	}
	return a.print(p, func() table { return enterprisePolicyDetail(p) })
}
