package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold/client"
)

func vaultCommand() *command {
	return &command{
		name:    "vault",
		summary: "manage key vaults: create, soft delete, recover, purge, access policies (like az keyvault)",
		long: "Vaults always have soft delete: a deleted vault keeps its keys and can be recovered until its\n" +
			"retention period (7-90 days, fixed at creation) ends. Purge protection is on for every vault created\n" +
			"here and can never be turned off: a protected vault cannot be purged early.",
		examples: []string{
			"keyhold vault create --name kv-contoso --resource-group rg-contoso --location westus",
			"keyhold vault set-policy --name kv-contoso --object-id IDENTITY_ID --preset cmk",
			"keyhold vault list",
		},
		subs: []*command{vaultCreate(), vaultShow(), vaultList(), vaultDelete(), vaultRecover(), vaultPurge(), vaultSetPolicy(), vaultDeletePolicy()},
	}
}

// listFlag collects a repeatable flag, also taking comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// groupOf returns the resource group in a resource id.
func groupOf(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "resourceGroups") {
			return segs[i+1]
		}
	}
	return ""
}

func vaultTable(vs []client.Vault) table {
	t := table{header: []string{"NAME", "RESOURCE GROUP", "LOCATION", "SKU", "AUTHORIZATION", "PURGE PROTECTION", "RETENTION", "PUBLIC ACCESS", "URI"}}
	for _, v := range vs {
		p := v.Properties
		authz := "access policies"
		if p.EnableRbacAuthorization != nil && *p.EnableRbacAuthorization {
			authz = "RBAC"
		}
		retention := ""
		if p.SoftDeleteRetentionInDays != nil {
			retention = strconv.Itoa(*p.SoftDeleteRetentionInDays) + " days"
		}
		pp := yesNo(p.EnablePurgeProtection)
		if pp == "" {
			pp = "false"
		}
		t.rows = append(t.rows, []string{v.Name, groupOf(v.ID), v.Location, p.SKU.Name, authz, pp, retention, p.PublicNetworkAccess, p.VaultURI})
	}
	return t
}

func policyTable(v *client.Vault) table {
	t := table{header: []string{"OBJECT ID", "TENANT", "KEY PERMISSIONS", "SECRET PERMISSIONS"}}
	for _, ap := range v.Properties.AccessPolicies {
		t.rows = append(t.rows, []string{ap.ObjectID, ap.TenantID, strings.Join(ap.Permissions.Keys, ","), strings.Join(ap.Permissions.Secrets, ",")})
	}
	return t
}

// tenantOf returns the tenant of the command's login, asking the server
// for the subscription's if the profile does not say.
func tenantOf(ctx context.Context, c *client.Client, s settings, sub string) (string, error) {
	if s.tenant != "" {
		return s.tenant, nil
	}
	subs, err := c.ListSubscriptions(ctx)
	if err != nil {
		return "", err
	}
	for _, x := range subs {
		if strings.EqualFold(x.SubscriptionID, sub) && x.TenantID != "" {
			return x.TenantID, nil
		}
	}
	return "", errors.New("cannot tell the tenant of this login: use --tenant or KEYHOLD_TENANT")
}

// subAndTenant returns the profile's subscription and tenantOf it.
func subAndTenant(ctx context.Context, c *client.Client, s settings) (sub, tenant string, err error) {
	if sub, err = s.sub(); err != nil {
		return "", "", err
	}
	tenant, err = tenantOf(ctx, c, s, sub)
	return sub, tenant, err
}

// findVault returns the vault name, in group if given, else wherever it is
// in the subscription.
func findVault(ctx context.Context, c *client.Client, sub, group, name string) (*client.Vault, error) {
	var v *client.Vault
	var err error
	if group != "" {
		v, err = c.GetVault(ctx, sub, group, name)
	} else {
		v, err = c.FindVault(ctx, sub, name)
	}
	if client.IsNotFound(err) {
		return nil, fmt.Errorf("there is no vault %s in subscription %s; run 'keyhold vault list' for the list", name, sub)
	}
	return v, err
}

// vaultFlags registers --name and --resource-group for a vault that is
// searched for in the subscription when no group is given.
func vaultFlags(fs *flag.FlagSet, name, group *string) {
	fs.StringVar(name, "name", "", "vault `NAME`")
	fs.StringVar(group, "resource-group", "", "resource `GROUP`; searched for if not given")
}

func vaultCreate() *command {
	var name, group, location, sku, publicAccess, bypass, defaultAction string
	var retention int
	var rbac, noSelf bool
	var ipRules listFlag
	tags := tagFlag{}
	return byName(&command{
		name:    "create",
		summary: "create a vault with soft delete and purge protection",
		args:    "--name NAME --resource-group GROUP --location LOCATION [flags]",
		long: "Soft delete is always on. Purge protection is turned on and cannot be turned off later, not even\n" +
			"by the vault's owner: a deleted vault then stays recoverable until its retention period ends, which is\n" +
			"what a customer-managed key needs. The retention period (7-90 days, default 90) cannot be changed\n" +
			"after creation. Vault names are unique on the server: 3-24 letters, digits and hyphens.\n\n" +
			"Unless --enable-rbac is given, the vault gets an access policy that gives you, the signed-in\n" +
			"principal, every key permission (as az keyvault create does), so that you can create its keys;\n" +
			"--no-self-access leaves it out.",
		examples: []string{
			"keyhold vault create --name kv-contoso --resource-group rg-contoso --location westus",
			"keyhold vault create --name kv-contoso --resource-group rg-contoso --location westus --sku premium --retention-days 30 --enable-rbac",
			"keyhold vault create --name kv-contoso --resource-group rg-contoso --location westus --default-action Deny --bypass AzureServices --ip-rule 203.0.113.0/24",
		},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "vault `NAME`")
			fs.StringVar(&group, "resource-group", "", "resource `GROUP`")
			fs.StringVar(&location, "location", "", "the Azure `LOCATION`, such as westus")
			fs.StringVar(&sku, "sku", "standard", "`SKU`: standard or premium (premium may hold HSM keys)")
			fs.IntVar(&retention, "retention-days", 0, "soft-delete retention in `DAYS`, 7-90; fixed at creation (default 90)")
			fs.BoolVar(&rbac, "enable-rbac", false, "authorize the data plane by role assignments instead of access policies")
			fs.BoolVar(&noSelf, "no-self-access", false, "do not give the signed-in principal an access policy")
			fs.StringVar(&publicAccess, "public-network-access", "", "`Enabled` or Disabled")
			fs.StringVar(&bypass, "bypass", "", "firewall bypass: `AzureServices` (trusted platform services) or None")
			fs.StringVar(&defaultAction, "default-action", "", "firewall default `ACTION`: Allow or Deny")
			fs.Var(&ipRules, "ip-rule", "an `ADDRESS` or CIDR range the firewall lets through; repeat for more")
			fs.Var(tags, "tag", "a `KEY=VALUE` tag; repeat for more")
		},
	}, &name, "--name", func(*app, string) error {
		if group == "" || location == "" {
			return usagef("--resource-group and --location are required")
		}
		if retention != 0 && (retention < 7 || retention > 90) {
			return usagef("--retention-days must be between 7 and 90")
		}
		return nil
	}, func(ctx context.Context, a *app, c *client.Client, s settings, name string) error {
		sub, tenant, err := subAndTenant(ctx, c, s)
		if err != nil {
			return err
		}
		v := client.Vault{Location: location, Tags: tags, Properties: client.VaultProperties{
			TenantID:                tenant,
			SKU:                     client.VaultSKU{Family: "A", Name: sku},
			EnablePurgeProtection:   pointer(true),
			EnableRbacAuthorization: pointer(rbac),
			PublicNetworkAccess:     publicAccess,
		}}
		if retention != 0 {
			v.Properties.SoftDeleteRetentionInDays = pointer(retention)
		}
		if !rbac && !noSelf {
			me, err := c.SignedInObjectID(ctx)
			if err != nil {
				return fmt.Errorf("cannot tell who is signed in to give you access to the vault's keys (use --no-self-access to skip): %w", err)
			}
			v.Properties.AccessPolicies = []client.VaultAccessPolicy{{TenantID: tenant, ObjectID: me,
				Permissions: client.VaultPermissions{Keys: []string{"all"}}}}
		}
		if bypass != "" || defaultAction != "" || len(ipRules) > 0 {
			acl := &client.VaultNetworkACLs{Bypass: bypass, DefaultAction: defaultAction}
			for _, r := range ipRules {
				acl.IPRules = append(acl.IPRules, client.VaultIPRule{Value: r})
			}
			v.Properties.NetworkACLs = acl
		}
		return printWith(a, one(vaultTable))(c.CreateVault(ctx, sub, group, name, v))
	})
}

func vaultShow() *command {
	var name, group string
	return byNameInSub(&command{
		name:     "show",
		summary:  "show a vault and its access policies",
		args:     "--name NAME [--resource-group GROUP] [flags]",
		examples: []string{"keyhold vault show --name kv-contoso", "keyhold vault show --name kv-contoso -o json"},
		flags:    func(fs *flag.FlagSet) { vaultFlags(fs, &name, &group) },
	}, &name, "--name", nil, func(ctx context.Context, a *app, c *client.Client, sub, name string) error {
		v, err := findVault(ctx, c, sub, group, name)
		if err != nil {
			return err
		}
		if a.g.output == "json" {
			return writeJSON(a.stdout, v)
		}
		if err := writeTable(a.stdout, vaultTable([]client.Vault{*v})); err != nil {
			return err
		}
		if len(v.Properties.AccessPolicies) > 0 {
			fmt.Fprintln(a.stdout)
			return writeTable(a.stdout, policyTable(v))
		}
		return nil
	})
}

func deletedTable(ds []client.DeletedVault) table {
	t := table{header: []string{"NAME", "RESOURCE GROUP", "LOCATION", "DELETED", "PURGE AFTER", "PURGE PROTECTION"}}
	for _, d := range ds {
		p := d.Properties
		t.rows = append(t.rows, []string{d.Name, d.ResourceGroup(), p.Location, p.DeletionDate.UTC().Format("2006-01-02 15:04"),
			p.ScheduledPurgeDate.UTC().Format("2006-01-02 15:04"), strconv.FormatBool(p.PurgeProtectionEnabled)})
	}
	return t
}

func vaultList() *command {
	var group string
	var deleted bool
	return &command{
		name:     "list",
		summary:  "list the vaults of the subscription or of a resource group, or the deleted ones",
		args:     "[--resource-group GROUP] [--deleted] [flags]",
		examples: []string{"keyhold vault list", "keyhold vault list --resource-group rg-contoso", "keyhold vault list --deleted"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&group, "resource-group", "", "only this resource `GROUP`")
			fs.BoolVar(&deleted, "deleted", false, "list soft-deleted vaults instead")
		},
		run: signedIn(argless, func(*app) error {
			if deleted && group != "" {
				return usagef("--deleted lists the whole subscription; drop --resource-group")
			}
			return nil
		}, inSub(func(ctx context.Context, a *app, c *client.Client, sub string) error {
			if deleted {
				return printList(a, deletedTable)(c.ListDeletedVaults(ctx, sub))
			}
			return printList(a, vaultTable)(c.ListVaults(ctx, sub, group))
		})),
	}
}

func vaultDelete() *command {
	var name, group string
	var yes bool
	return byNameInSub(&command{
		name:    "delete",
		summary: "soft-delete a vault: it and its keys stay recoverable for the retention period",
		args:    "--name NAME [--resource-group GROUP] [--yes] [flags]",
		long: "Every key in the vault becomes unusable at once: environments encrypted with them lock. The vault\n" +
			"can be recovered with 'keyhold vault recover' until its scheduled purge date. Without --yes, delete asks\n" +
			"for confirmation on the terminal, and refuses to run without one.",
		examples: []string{"keyhold vault delete --name kv-contoso --yes"},
		flags: func(fs *flag.FlagSet) {
			vaultFlags(fs, &name, &group)
			yesFlag(fs, &yes)
		},
	}, &name, "--name", confirmName(&yes, "vault delete", "Delete vault %s? Its keys stop working until it is recovered.", "vault %s was not deleted"),
		func(ctx context.Context, a *app, c *client.Client, sub, name string) error {
			v, err := findVault(ctx, c, sub, group, name)
			if err != nil {
				return err
			}
			if err := c.DeleteVault(ctx, sub, groupOf(v.ID), v.Name); err != nil {
				return err
			}
			a.say("Deleted vault %s; recover it with 'keyhold vault recover --name %s'.", v.Name, v.Name)
			return nil
		})
}

func vaultRecover() *command {
	var name string
	return byName(&command{
		name:     "recover",
		summary:  "recover a soft-deleted vault with its properties, access policies and keys",
		args:     "--name NAME [flags]",
		examples: []string{"keyhold vault recover --name kv-contoso"},
		flags:    func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "vault `NAME`") },
	}, &name, "--name", nil, func(ctx context.Context, a *app, c *client.Client, s settings, name string) error {
		sub, tenant, err := subAndTenant(ctx, c, s)
		if err != nil {
			return err
		}
		v, err := c.RecoverVault(ctx, sub, tenant, name)
		if client.IsNotFound(err) {
			return noDeletedVault(name)
		}
		return printWith(a, one(vaultTable))(v, err)
	})
}

// noDeletedVault is the error of recover and purge for a name that is not
// among the deleted vaults.
func noDeletedVault(name string) error {
	return fmt.Errorf("there is no deleted vault %s; run 'keyhold vault list --deleted' for the list", name)
}

func vaultPurge() *command {
	var name, location string
	var yes bool
	return byNameInSub(&command{
		name:    "purge",
		summary: "purge a soft-deleted vault and its keys for good",
		args:    "--name NAME [--location LOCATION] [--yes] [flags]",
		long: "Purging cannot be undone: the vault's keys are destroyed and anything encrypted with them is lost.\n" +
			"A vault with purge protection cannot be purged; it is purged by the server at its scheduled purge date.",
		examples: []string{"keyhold vault purge --name kv-scratch --yes"},
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "vault `NAME`")
			fs.StringVar(&location, "location", "", "`LOCATION` of the deleted vault; looked up if not given")
			yesFlag(fs, &yes)
		},
	}, &name, "--name", confirmName(&yes, "vault purge", "Purge vault %s and destroy its keys for good?", "vault %s was not purged"),
		func(ctx context.Context, a *app, c *client.Client, sub, name string) error {
			if location == "" {
				d, err := c.FindDeletedVault(ctx, sub, name)
				if client.IsNotFound(err) {
					return noDeletedVault(name)
				}
				if err != nil {
					return err
				}
				location = d.Properties.Location
			}
			p := a.progress("purging vault " + name)
			err := c.PurgeVault(ctx, sub, location, name, p.tick)
			p.done()
			if err != nil {
				return err
			}
			a.say("Purged vault %s.", name)
			return nil
		})
}

// cmkPreset is what an enterprise policy's identity needs on its key.
var cmkPreset = []string{"get", "wrapKey", "unwrapKey"}

// policyTarget resolves --object-id or --upn to an object id.
func policyTarget(ctx context.Context, c *client.Client, objectID, upn string) (string, error) {
	switch {
	case objectID != "" && upn != "":
		return "", usagef("give --object-id or --upn, not both")
	case objectID != "":
		return objectID, nil
	case upn != "":
		u, err := c.GetUser(ctx, upn)
		if client.IsNotFound(err) {
			return "", fmt.Errorf("there is no user %s", upn)
		}
		if err != nil {
			return "", err
		}
		return u.ID, nil
	}
	return "", usagef("--object-id or --upn is required")
}

func vaultSetPolicy() *command {
	var name, group, objectID, upn, preset string
	var keys listFlag
	var perms []string
	return byNameInSub(&command{
		name:    "set-policy",
		summary: "grant a principal key permissions on a vault (access-policy vaults)",
		args:    "--name NAME (--object-id ID | --upn UPN) (--key-permissions P,... | --preset cmk) [flags]",
		long: "The permissions are added to what the principal already has. --preset cmk grants Get, Wrap key and\n" +
			"Unwrap key, which an enterprise policy's managed identity needs for a customer-managed key. Vaults with\n" +
			"RBAC authorization ignore access policies: assign a role with 'keyhold role assignment create' instead.",
		examples: []string{
			"keyhold vault set-policy --name kv-contoso --object-id IDENTITY_ID --preset cmk",
			"keyhold vault set-policy --name kv-contoso --upn kvadmin@contoso.keyhold.local --key-permissions get,list,create",
		},
		flags: func(fs *flag.FlagSet) {
			vaultFlags(fs, &name, &group)
			fs.StringVar(&objectID, "object-id", "", "object `ID` of a user, group, service principal or managed identity")
			fs.StringVar(&upn, "upn", "", "user principal `NAME` of a user")
			fs.Var(&keys, "key-permissions", "key `PERMISSIONS`, comma-separated, such as get,wrapKey,unwrapKey")
			fs.StringVar(&preset, "preset", "", "`cmk`: get, wrapKey and unwrapKey")
		},
	}, &name, "--name", func(*app, string) error {
		perms = append([]string(nil), keys...)
		switch strings.ToLower(preset) {
		case "":
		case "cmk":
			perms = append(perms, cmkPreset...)
		default:
			return usagef("--preset must be cmk, not %q", preset)
		}
		if len(perms) == 0 {
			return usagef("--key-permissions or --preset is required")
		}
		return nil
	}, func(ctx context.Context, a *app, c *client.Client, sub, name string) error {
		oid, v, err := policyVault(ctx, c, sub, group, name, objectID, upn)
		if err != nil {
			return err
		}
		if v.Properties.EnableRbacAuthorization != nil && *v.Properties.EnableRbacAuthorization {
			fmt.Fprintf(a.stderr, "keyhold: note: vault %s uses RBAC authorization, so access policies have no effect on it\n", v.Name)
		}
		ap := client.VaultAccessPolicy{TenantID: v.Properties.TenantID, ObjectID: oid, Permissions: client.VaultPermissions{Keys: perms}}
		if err := c.UpdateAccessPolicies(ctx, sub, groupOf(v.ID), v.Name, client.AccessPolicyAdd, []client.VaultAccessPolicy{ap}); err != nil {
			return err
		}
		return printWith(a, policyTable)(c.GetVault(ctx, sub, groupOf(v.ID), v.Name))
	})
}

// policyVault resolves the principal of an access-policy verb, then finds
// its vault; errors are policyTarget's and findVault's, in that order.
func policyVault(ctx context.Context, c *client.Client, sub, group, name, objectID, upn string) (string, *client.Vault, error) {
	oid, err := policyTarget(ctx, c, objectID, upn)
	if err != nil {
		return "", nil, err
	}
	v, err := findVault(ctx, c, sub, group, name)
	return oid, v, err
}

func vaultDeletePolicy() *command {
	var name, group, objectID, upn string
	return byNameInSub(&command{
		name:     "delete-policy",
		summary:  "remove a principal's access policy from a vault",
		args:     "--name NAME (--object-id ID | --upn UPN) [flags]",
		long:     "The principal loses every permission the policy gave it, at once.",
		examples: []string{"keyhold vault delete-policy --name kv-contoso --object-id IDENTITY_ID"},
		flags: func(fs *flag.FlagSet) {
			vaultFlags(fs, &name, &group)
			fs.StringVar(&objectID, "object-id", "", "object `ID` of the principal")
			fs.StringVar(&upn, "upn", "", "user principal `NAME` of a user")
		},
	}, &name, "--name", nil, func(ctx context.Context, a *app, c *client.Client, sub, name string) error {
		oid, v, err := policyVault(ctx, c, sub, group, name, objectID, upn)
		if err != nil {
			return err
		}
		var remove []client.VaultAccessPolicy
		for _, ap := range v.Properties.AccessPolicies {
			if strings.EqualFold(ap.ObjectID, oid) {
				remove = append(remove, ap)
			}
		}
		if len(remove) == 0 {
			return fmt.Errorf("vault %s has no access policy for %s", v.Name, oid)
		}
		if err := c.UpdateAccessPolicies(ctx, sub, groupOf(v.ID), v.Name, client.AccessPolicyRemove, remove); err != nil {
			return err
		}
		a.say("Removed the access policy of %s from vault %s.", oid, v.Name)
		return nil
	})
}

func pointer[T any](v T) *T { return &v }
