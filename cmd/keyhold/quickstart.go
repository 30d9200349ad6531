package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

// readerRoleDefinition is the built-in Reader role's id, which the
// platform administrator needs on a policy to link environments to it.
const readerRoleDefinition = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

// quickstartRows is how many sample rows the environment gets: enough to
// show re-encryption progress, few enough to stay quick.
const quickstartRows = 50

func quickstartCommand() *command {
	var o quickstartOptions
	return &command{
		name:    "quickstart",
		summary: "walk the whole customer-managed key story against a server, step by step, in about a minute",
		args:    "[--bootstrap FILE] [--keep] [--location LOC] [--region REGION] [flags]",
		long: "quickstart plays the three people of the customer-managed key story with the signed-in login (or\n" +
			"the administrator of --bootstrap FILE): a resource group, the Microsoft.PowerPlatform provider and\n" +
			"feature, a vault with purge protection, an RSA key, an enterprise policy deployed from the\n" +
			"documentation's template, the policy identity's access to the key, a Power Platform administrator\n" +
			"with Reader on the policy, an environment with sample rows; then it adds the environment to the\n" +
			"policy, revokes the key (the environment locks), restores it and re-enables, changes the key and\n" +
			"removes the environment from the policy. Each step is printed as the command a person would type.\n\n" +
			"Names get a random suffix, so it can run again. Without --keep it deletes what it created (vaults are\n" +
			"soft-deleted and stay recoverable). The platform administrator's password is written to a file\n" +
			"(mode 0600) next to the profile, never printed.",
		examples: []string{
			"keyhold quickstart",
			"keyhold quickstart --bootstrap keyhold-data/bootstrap.json --keep",
		},
		flags: o.register,
		run: func(ctx context.Context, a *app, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			return a.quickstart(ctx, o)
		},
	}
}

// quickstartOptions are the flags of keyhold quickstart.
type quickstartOptions struct {
	bootstrap        string
	keep             bool
	location, region string
	timeout          time.Duration
}

func (o *quickstartOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.bootstrap, "bootstrap", "", "sign in as the administrator of this bootstrap.json `FILE` instead of the profile's login")
	fs.BoolVar(&o.keep, "keep", false, "leave the resources in place at the end")
	fs.StringVar(&o.location, "location", "westus", "Azure `LOCATION` of the group and vault")
	fs.StringVar(&o.region, "region", "unitedstates", "Power Platform `REGION` of the policies and the environment")
	fs.DurationVar(&o.timeout, "wait", 2*time.Minute, "how long one step may `WAIT` for the server (provider, health, encryption, lock)")
}

// qs is one run of the quickstart: the clients of its two people and what
// the steps have created so far.
type qs struct {
	a    *app
	o    quickstartOptions
	c    *client.Client // the signed-in administrator (key vault administrator)
	pp   *client.Client // the Power Platform administrator
	s    settings
	sub  string
	sfx  string
	step int

	group, vault, vaultID string
	keys                  [2]string
	policies              [2]*client.EnterprisePolicy
	ppUPN, ppID, pwFile   string
	envID                 string
	linked                *client.EnterprisePolicy
	rowIDs                []string
	created               struct{ group, vault, user, env bool }
	policyCreated         [2]bool
}

// quickstart runs every step, then cleans up unless --keep. The first
// failing step ends the run with its error and a hint; cleanup still runs.
func (a *app) quickstart(ctx context.Context, o quickstartOptions) error {
	if o.timeout <= 0 {
		return usagef("--wait must be positive")
	}
	q := &qs{a: a, o: o, sfx: randomSuffix()}
	if err := q.connect(); err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(a.stdout, "Keyhold quickstart on %s (subscription %s), names end in -%s\n\n", q.c.Server(), q.sub, q.sfx)
	err := q.runSteps(ctx, q.story())
	if !o.keep {
		fmt.Fprintln(a.stdout, "\nCleaning up (--keep leaves everything in place):")
		q.runCleanup(ctx)
	}
	if err != nil {
		return err
	}
	q.summary(time.Since(start))
	return nil
}

// connect builds the administrator's client from --bootstrap or the profile.
func (q *qs) connect() error {
	a := q.a
	if q.o.bootstrap != "" {
		b, err := readBootstrap(q.o.bootstrap)
		if err != nil {
			return err
		}
		if b.AdminUsername == "" || b.AdminPassword == "" {
			return fmt.Errorf("%s names no administrator with a password", q.o.bootstrap)
		}
		caFile := b.CACertFile
		if caFile != "" {
			if abs, err := filepath.Abs(caFile); err == nil {
				caFile = abs
			}
		}
		q.s = settings{server: first(a.g.server, b.AuthorityHost), caCert: first(a.g.caCert, caFile),
			tenant: first(a.g.tenant, b.TenantID), subscription: first(a.g.subscription, b.SubscriptionID),
			cred: client.Credential{Username: b.AdminUsername, Password: keyhold.NewSecret([]byte(b.AdminPassword))}}
		c, err := a.newClient(q.s)
		if err != nil {
			return err
		}
		q.c = c
	} else {
		c, s, err := a.connect()
		if err != nil {
			return err
		}
		q.c, q.s = c, s
	}
	sub, err := q.s.sub()
	if err != nil {
		return err
	}
	q.sub = sub
	return nil
}

// qsStep is one step: the command a person would type, what it does, and
// a hint for when it fails.
type qsStep struct {
	cmd  string
	hint string
	run  func(ctx context.Context) (string, error)
}

// runSteps runs steps in order and stops at the first failure.
func (q *qs) runSteps(ctx context.Context, steps []qsStep) error {
	for _, st := range steps {
		q.step++
		fmt.Fprintf(q.a.stdout, "$ %s\n", st.cmd)
		sctx, cancel := context.WithTimeout(ctx, q.o.timeout)
		res, err := st.run(sctx)
		cancel()
		if err != nil {
			fmt.Fprintf(q.a.stdout, "  ✗ step %d failed: %s\n", q.step, oneLine(errorMessage(err)))
			if st.hint != "" {
				fmt.Fprintf(q.a.stdout, "    hint: %s\n", st.hint)
			}
			return fmt.Errorf("quickstart: step %d (%s) failed: %w", q.step, firstWords(st.cmd), err)
		}
		for i, line := range strings.Split(res, "\n") {
			if i == 0 {
				fmt.Fprintf(q.a.stdout, "  ✓ %s\n", line)
			} else {
				fmt.Fprintf(q.a.stdout, "    %s\n", line)
			}
		}
	}
	return nil
}

// firstWords names a step by its command's first three words.
func firstWords(cmd string) string {
	f := strings.Fields(cmd)
	return strings.Join(f[:min(len(f), 3)], " ")
}

func randomSuffix() string {
	b := make([]byte, 3)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// randomPassword is a password that passes any complexity rule: random
// letters and digits with an upper case letter, a digit and a symbol.
func randomPassword() keyhold.Secret {
	b := make([]byte, 18)
	rand.Read(b)
	return keyhold.NewSecret([]byte("Qs-" + hex.EncodeToString(b) + "!9"))
}

func (q *qs) policyID(i int) string {
	return client.PolicyID(q.sub, q.group, fmt.Sprintf("ep-qs%d-%s", i+1, q.sfx))
}

// story is the seed's walk, as steps.
func (q *qs) story() []qsStep {
	q.group = "rg-qs-" + q.sfx
	q.vault = "kv-qs-" + q.sfx
	q.keys = [2]string{"cmk", "cmk2"}
	ns := "Microsoft.PowerPlatform"
	steps := []qsStep{
		{cmd: fmt.Sprintf("keyhold group create --name %s --location %s", q.group, q.o.location),
			hint: "check that you are signed in with rights to create resource groups (keyhold login)",
			run: func(ctx context.Context) (string, error) {
				g, err := q.c.CreateResourceGroup(ctx, q.sub, q.group, q.o.location, map[string]string{"createdBy": "keyhold quickstart"})
				if err != nil {
					return "", err
				}
				q.created.group = true
				return fmt.Sprintf("resource group %s in %s", g.Name, g.Location), nil
			}},
		{cmd: "keyhold provider register --namespace " + ns + " --wait",
			hint: "registration takes a moment; run the command again if it timed out (see --wait)",
			run: func(ctx context.Context) (string, error) {
				p, err := q.c.RegisterProvider(ctx, q.sub, ns, true, q.a.progress("registering "+ns).tick)
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%s %s", p.Namespace, p.RegistrationState), nil
			}},
		{cmd: "keyhold feature register --namespace " + ns + " --name enterprisePoliciesPreview",
			hint: "the preview feature is only required under --profile preview; its registration must still be allowed",
			run: func(ctx context.Context) (string, error) {
				f, err := q.c.RegisterFeature(ctx, q.sub, ns, "enterprisePoliciesPreview")
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("feature %s %s", f.Name, f.Properties.State), nil
			}},
		{cmd: fmt.Sprintf("keyhold vault create --name %s --resource-group %s --location %s", q.vault, q.group, q.o.location),
			hint: "vault names are unique on the server; run quickstart again for a new suffix",
			run:  q.createVault},
	}
	for i, key := range q.keys {
		steps = append(steps, qsStep{cmd: fmt.Sprintf("keyhold key create --vault %s --name %s --kty RSA --size 3072", q.vault, key),
			hint: "the signed-in principal needs the create permission on the vault's keys",
			run: func(ctx context.Context) (string, error) {
				k, err := q.c.CreateKey(ctx, q.vault, key, client.KeyCreate{Kty: "RSA", KeySize: 3072})
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("key %s version %s (RSA 3072)%s", key, lastSegment(k.Key.KID), map[bool]string{true: ", for the change of key later", false: ""}[i == 1]), nil
			}})
	}
	for i := range q.policies {
		name := fmt.Sprintf("ep-qs%d-%s", i+1, q.sfx)
		steps = append(steps,
			qsStep{cmd: fmt.Sprintf("keyhold policy create --resource-group %s --name %s --location %s --vault-id %s --key-name %s",
				q.group, name, q.o.region, shortID(q.sub, q.group, q.vault), q.keys[i]),
				hint: "the provider Microsoft.PowerPlatform must be registered and the vault must have purge protection",
				run:  func(ctx context.Context) (string, error) { return q.createPolicy(ctx, i, name) }},
			qsStep{cmd: fmt.Sprintf("keyhold vault set-policy --name %s --object-id <%s's identity> --preset cmk", q.vault, name),
				hint: "the policy's identity needs get, wrapKey and unwrapKey; see keyhold policy validate",
				run:  func(ctx context.Context) (string, error) { return q.grantAccess(ctx, i) }})
	}
	steps = append(steps,
		qsStep{cmd: fmt.Sprintf("keyhold user create --upn ppadmin-%s@DOMAIN --display-name 'Platform Admin' --role 'Power Platform Administrator'", q.sfx),
			hint: "creating users and giving directory roles needs a Global Administrator",
			run:  q.createAdmin},
		qsStep{cmd: fmt.Sprintf("keyhold role assignment create --assignee ppadmin-%s@DOMAIN --role Reader --scope <each policy's id>", q.sfx),
			hint: "Reader on the policy is what lets the platform administrator add environments to it",
			run:  q.grantReader},
		qsStep{cmd: fmt.Sprintf("keyhold login --username ppadmin-%s@DOMAIN   (quickstart signs in as this user itself)", q.sfx),
			hint: "the platform administrator's password is in the file named above",
			run:  q.signInAdmin},
		qsStep{cmd: fmt.Sprintf("keyhold env create --name 'Quickstart %s' --region %s --type Sandbox --managed", q.sfx, q.o.region),
			hint: "environments need a Power Platform, Dynamics 365 or Global administrator",
			run:  q.createEnv},
		qsStep{cmd: fmt.Sprintf("keyhold data table create --env ENV --name account --column name:String --column revenue:Integer && keyhold data row create --env ENV --table account --data '{\"name\":\"Contoso 000\",\"revenue\":0}'   (x%d)", quickstartRows),
			hint: "the environment's data API is at /environments/{id}/api/data/v9.2/",
			run:  q.sampleRows},
		qsStep{cmd: fmt.Sprintf("keyhold env add-policy --env ENV --policy ep-qs1-%s --wait", q.sfx),
			hint: "the policy must be Healthy, in the environment's region, and readable by the platform administrator",
			run:  func(ctx context.Context) (string, error) { return q.link(ctx, 0, "Add") }},
		qsStep{cmd: fmt.Sprintf("keyhold vault delete-policy --name %s --object-id <ep-qs1-%s's identity>   (revoke the key)", q.vault, q.sfx),
			hint: "the environment locks when its key cannot be unwrapped; data requests then answer EnvironmentLocked",
			run:  q.revoke},
		qsStep{cmd: fmt.Sprintf("keyhold vault set-policy --name %s --object-id <ep-qs1-%s's identity> --preset cmk && keyhold env reenable ENV", q.vault, q.sfx),
			hint: "re-enable needs the key back: the policy must be Healthy again",
			run:  q.restore},
		qsStep{cmd: fmt.Sprintf("keyhold env swap-policy --env ENV --policy ep-qs2-%s --wait   (change key)", q.sfx),
			hint: "changing key is a link to another Healthy policy while linked; the data is re-wrapped online",
			run:  func(ctx context.Context) (string, error) { return q.link(ctx, 1, "Change key") }},
		qsStep{cmd: "keyhold env remove-policy --env ENV --wait",
			hint: "removing reverts the environment to the platform-managed key; the policy's key must still be usable",
			run:  q.unlink},
	)
	return steps
}

// shortID is how the printed commands show a vault's id.
func shortID(sub, group, vault string) string {
	return "/subscriptions/" + sub[:min(len(sub), 8)] + ".../resourceGroups/" + group + "/providers/Microsoft.KeyVault/vaults/" + vault
}

func (q *qs) createVault(ctx context.Context) (string, error) {
	tenant, err := tenantOf(ctx, q.c, q.s, q.sub)
	if err != nil {
		return "", err
	}
	me, err := q.c.SignedInObjectID(ctx)
	if err != nil {
		return "", err
	}
	v, err := q.c.CreateVault(ctx, q.sub, q.group, q.vault, client.Vault{Location: q.o.location, Properties: client.VaultProperties{
		TenantID: tenant, SKU: client.VaultSKU{Family: "A", Name: "standard"}, EnablePurgeProtection: pointer(true),
		AccessPolicies: []client.VaultAccessPolicy{{TenantID: tenant, ObjectID: me, Permissions: client.VaultPermissions{Keys: []string{"all"}}}},
	}})
	if err != nil {
		return "", err
	}
	q.created.vault = true
	q.vaultID = v.ID
	days := 90
	if r := v.Properties.SoftDeleteRetentionInDays; r != nil {
		days = *r
	}
	return fmt.Sprintf("vault %s: soft delete %d days, purge protection on", v.Name, days), nil
}

func (q *qs) createPolicy(ctx context.Context, i int, name string) (string, error) {
	params := client.PolicyTemplateParameters(name, q.o.region, q.vaultID, q.keys[i], "")
	if _, err := q.c.CreateDeployment(ctx, q.sub, q.group, deploymentName("EPDeployment-"+name), []byte(client.PolicyTemplate), params); err != nil {
		return "", err
	}
	d, err := q.c.WaitDeployment(ctx, q.sub, q.group, deploymentName("EPDeployment-"+name), q.a.progress("deploying "+name).tick, nil)
	if err != nil {
		return "", err
	}
	p, err := q.c.GetPolicy(ctx, q.policyID(i))
	if err != nil {
		return "", err
	}
	q.policies[i], q.policyCreated[i] = p, true
	return fmt.Sprintf("policy %s deployed from the template (deployment %s %s), identity %s (%s until it can use the key)",
		p.Name, d.Name, d.Properties.ProvisioningState, p.PrincipalID(), p.Properties.HealthStatus), nil
}

func (q *qs) setAccess(ctx context.Context, i int, kind string) error {
	ap := client.VaultAccessPolicy{TenantID: q.s.tenant, ObjectID: q.policies[i].PrincipalID(), Permissions: client.VaultPermissions{Keys: cmkPreset}}
	if ap.TenantID == "" {
		t, err := tenantOf(ctx, q.c, q.s, q.sub)
		if err != nil {
			return err
		}
		ap.TenantID = t
	}
	return q.c.UpdateAccessPolicies(ctx, q.sub, q.group, q.vault, kind, []client.VaultAccessPolicy{ap})
}

// waitHealth polls the policy until its health is want.
func (q *qs) waitHealth(ctx context.Context, i int, want string) (*client.EnterprisePolicy, error) {
	var p *client.EnterprisePolicy
	err := q.c.Poll(ctx, q.a.progress("waiting for "+want).tick, func(ctx context.Context) (bool, error) {
		var err error
		p, err = q.c.GetPolicy(ctx, q.policyID(i))
		return err == nil && p.Properties.HealthStatus == want, err
	})
	if err != nil && p != nil && p.Properties.HealthDetail != nil {
		return nil, fmt.Errorf("%w (policy health %s: %s)", err, p.Properties.HealthStatus, p.Properties.HealthDetail.Reason)
	}
	return p, err
}

func (q *qs) grantAccess(ctx context.Context, i int) (string, error) {
	if err := q.setAccess(ctx, i, client.AccessPolicyAdd); err != nil {
		return "", err
	}
	p, err := q.waitHealth(ctx, i, "Healthy")
	if err != nil {
		return "", err
	}
	q.policies[i] = p
	return fmt.Sprintf("identity %s holds get, wrapKey, unwrapKey on %s; policy %s is Healthy", p.PrincipalID(), q.vault, p.Name), nil
}

func (q *qs) createAdmin(ctx context.Context) (string, error) {
	users, err := q.c.ListUsers(ctx)
	if err != nil {
		return "", err
	}
	domain := ""
	for _, u := range users {
		if _, d, ok := strings.Cut(u.UserPrincipalName, "@"); ok {
			domain = d
			break
		}
	}
	if domain == "" {
		return "", errors.New("no user in the directory shows the tenant's domain")
	}
	q.ppUPN = "ppadmin-" + q.sfx + "@" + domain
	pw := randomPassword()
	// The password goes to a file only its owner reads, next to the profile,
	// so that a person can sign in as this user after the run.
	prof, err := q.a.profilePath()
	if err != nil {
		return "", err
	}
	q.pwFile = filepath.Join(filepath.Dir(prof), "quickstart-"+q.sfx+".password")
	if err := os.MkdirAll(filepath.Dir(q.pwFile), 0o700); err != nil {
		return "", fmt.Errorf("keeping the password: %w", err)
	}
	if err := os.WriteFile(q.pwFile, append(pw.Reveal(), '\n'), 0o600); err != nil {
		return "", fmt.Errorf("keeping the password: %w", err)
	}
	u, err := q.c.CreateUser(ctx, q.ppUPN, "Platform Admin "+q.sfx, pw)
	if err != nil {
		os.Remove(q.pwFile) // a password of no user
		return "", err
	}
	q.created.user, q.ppID = true, u.ID
	if err := q.c.AddDirectoryRoleMember(ctx, keyhold.DirectoryRoles[keyhold.RolePowerPlatformAdministrator], u.ID); err != nil {
		return "", err
	}
	q.pp, err = q.a.newClient(settings{server: q.s.server, caCert: q.s.caCert, tenant: q.s.tenant,
		cred: client.Credential{Username: q.ppUPN, Password: pw}})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("user %s, Power Platform Administrator\npassword (random) in %s (mode 0600)", q.ppUPN, q.pwFile), nil
}

func (q *qs) grantReader(ctx context.Context) (string, error) {
	for i := range q.policies {
		def := "/subscriptions/" + q.sub + "/providers/Microsoft.Authorization/roleDefinitions/" + readerRoleDefinition
		if _, err := q.c.CreateRoleAssignment(ctx, q.policyID(i), def, q.ppID, "User"); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%s is Reader on ep-qs1-%s and ep-qs2-%s", q.ppUPN, q.sfx, q.sfx), nil
}

func (q *qs) signInAdmin(ctx context.Context) (string, error) {
	id, err := q.pp.SignedInObjectID(ctx)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(id, q.ppID) {
		return "", fmt.Errorf("signed in as %s, not as the new administrator %s", id, q.ppID)
	}
	return "signed in as " + q.ppUPN + "; the environment steps below run as this user", nil
}

func (q *qs) createEnv(ctx context.Context) (string, error) {
	e, err := q.pp.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Quickstart " + q.sfx, Region: q.o.region,
		Type: client.EnvironmentSandbox, Managed: true})
	if err != nil {
		return "", err
	}
	q.envID, q.created.env = e.Name, true
	return fmt.Sprintf("environment %s (Sandbox, Managed), key managed by %s", e.Name, e.Properties.ProtectionStatus.KeyManagedBy), nil
}

func (q *qs) sampleRows(ctx context.Context) (string, error) {
	if _, err := q.pp.CreateTable(ctx, q.envID, client.DataTable{Name: "account", Columns: []client.DataColumn{
		{Name: "name", Type: "String"}, {Name: "revenue", Type: "Integer"}}}); err != nil {
		return "", err
	}
	for i := range quickstartRows {
		r, err := q.pp.CreateRow(ctx, q.envID, "account", client.DataRow{"name": fmt.Sprintf("Contoso %03d", i), "revenue": 1000 * i})
		if err != nil {
			return "", err
		}
		id, _ := r["accountid"].(string)
		q.rowIDs = append(q.rowIDs, id)
	}
	return fmt.Sprintf("table account with %d rows, encrypted under the platform key", quickstartRows), nil
}

// checkRows reads every sample row back.
func (q *qs) checkRows(ctx context.Context) error {
	rows, err := q.pp.ListRows(ctx, q.envID, "account", 0, 0)
	if err != nil {
		return err
	}
	if len(rows) != len(q.rowIDs) {
		return fmt.Errorf("%d rows read back, want %d", len(rows), len(q.rowIDs))
	}
	return nil
}

// lifecycle posts a link or unlink as Microsoft's scripts do (the BAP
// route, body {"SystemId"}, then operation-location) and follows the
// operation, drawing its progress, until it ends.
func (q *qs) lifecycle(ctx context.Context, verb, systemID string) error {
	path := client.BAPPrefix + "environments/" + q.envID + "/enterprisePolicies/Encryption/" + verb + "?api-version=2019-10-01"
	resp, err := q.pp.Do(ctx, http.MethodPost, client.AudienceBAP, path, map[string]string{"SystemId": systemID}, nil)
	if err != nil {
		return err
	}
	loc := resp.Header.Get("operation-location")
	if loc == "" {
		return fmt.Errorf("the %s answered %d without an operation-location to follow", verb, resp.StatusCode)
	}
	bar := &qsBar{a: q.a}
	var op client.EnvironmentOperation
	err = q.pp.Poll(ctx, nil, func(ctx context.Context) (bool, error) {
		if _, err := q.pp.Do(ctx, http.MethodGet, client.AudienceBAP, loc, nil, &op); err != nil {
			return false, err
		}
		pct := 0
		if op.Progress.Total > 0 {
			pct = int(op.Progress.Done * 100 / op.Progress.Total)
		}
		if op.State.ID == "Succeeded" {
			pct = 100
		}
		bar.draw(pct, op.State.ID)
		return op.Ended(), nil
	})
	bar.end()
	if err != nil {
		return err
	}
	if op.State.ID != "Succeeded" {
		msg := "no reason given"
		if op.Error != nil {
			msg = op.Error.Message + " (" + op.Error.Code + ")"
		}
		return fmt.Errorf("the %s operation %s: %s", verb, strings.ToLower(op.State.ID), msg)
	}
	return nil
}

// qsBar is the progress bar of a link or unlink: redrawn in place on a
// terminal, and left on the output once at the end.
type qsBar struct {
	a     *app
	pct   int
	state string
}

func (b *qsBar) line() string {
	n := b.pct / 5
	return fmt.Sprintf("[%s%s] %3d%% %s", strings.Repeat("#", n), strings.Repeat(".", 20-n), b.pct, b.state)
}

func (b *qsBar) draw(pct int, state string) {
	b.pct, b.state = max(0, min(pct, 100)), state
	if b.a.stderrTerminal {
		fmt.Fprintf(b.a.stderr, "\r  %s", b.line())
	}
}

func (b *qsBar) end() {
	if b.a.stderrTerminal {
		fmt.Fprint(b.a.stderr, "\r\033[K")
	}
	fmt.Fprintf(b.a.stdout, "  %s\n", b.line())
}

func (q *qs) link(ctx context.Context, i int, what string) (string, error) {
	p := q.policies[i]
	if err := q.lifecycle(ctx, "link", p.Properties.SystemID); err != nil {
		return "", err
	}
	q.linked = p
	e, err := q.pp.GetEnvironment(ctx, q.envID)
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(e.Policy(), p.ID) {
		return "", fmt.Errorf("the environment is linked to %q, not to %s", e.Policy(), p.Name)
	}
	if err := q.checkRows(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: environment on %s (key %s), encryption %s, key managed by %s; all %d rows read back, no downtime",
		what, p.Name, q.keys[i], e.Properties.Encryption.Status, e.Properties.ProtectionStatus.KeyManagedBy, len(q.rowIDs)), nil
}

func (q *qs) revoke(ctx context.Context) (string, error) {
	if err := q.setAccess(ctx, 0, client.AccessPolicyRemove); err != nil {
		return "", err
	}
	var refusal error
	err := q.pp.Poll(ctx, q.a.progress("waiting for the lock").tick, func(ctx context.Context) (bool, error) {
		_, err := q.pp.GetRow(ctx, q.envID, "account", q.rowIDs[0])
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code == "EnvironmentLocked" {
			refusal = err
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("the environment did not lock: %w", err)
	}
	var e *client.Environment
	err = q.pp.Poll(ctx, nil, func(ctx context.Context) (bool, error) {
		var err error
		e, err = q.pp.GetEnvironment(ctx, q.envID)
		return err == nil && e.Locked(), err
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("environment locked: %s\nkeyhold data row get --env ENV --table account --id %s → %s",
		disabledLine(e), q.rowIDs[0], oneLine(errorMessage(refusal))), nil
}

func (q *qs) restore(ctx context.Context) (string, error) {
	if err := q.setAccess(ctx, 0, client.AccessPolicyAdd); err != nil {
		return "", err
	}
	if _, err := q.waitHealth(ctx, 0, "Healthy"); err != nil {
		return "", err
	}
	var e *client.Environment
	err := q.pp.Poll(ctx, q.a.progress("re-enabling").tick, func(ctx context.Context) (bool, error) {
		var err error
		e, err = q.pp.GetEnvironment(ctx, q.envID)
		if err != nil {
			return false, err
		}
		if !e.Locked() {
			return true, nil // re-enabled on its own (the tenant's autoReenable)
		}
		// The lock loop may not have seen the key come back yet; a conflict
		// is worth another try, anything else is not.
		_, err = q.pp.ReenableEnvironment(ctx, q.envID)
		if err != nil && client.StatusCode(err) != http.StatusConflict && client.StatusCode(err) != http.StatusBadRequest {
			return false, err
		}
		return false, nil
	})
	if err != nil {
		return "", err
	}
	if err := q.checkRows(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("key access restored, policy Healthy, environment %s; all %d rows read back", e.Properties.States.Runtime.ID, len(q.rowIDs)), nil
}

func (q *qs) unlink(ctx context.Context) (string, error) {
	if err := q.lifecycle(ctx, "unlink", q.linked.Properties.SystemID); err != nil {
		return "", err
	}
	q.linked = nil
	e, err := q.pp.GetEnvironment(ctx, q.envID)
	if err != nil {
		return "", err
	}
	if err := q.checkRows(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("environment back on the platform key (key managed by %s); all %d rows read back", e.Properties.ProtectionStatus.KeyManagedBy, len(q.rowIDs)), nil
}

// runCleanup deletes what the run created, newest first; a failure is
// reported and the rest still tried.
func (q *qs) runCleanup(ctx context.Context) {
	var steps []qsStep
	if q.linked != nil && q.pp != nil {
		steps = append(steps, qsStep{cmd: "keyhold env remove-policy --env ENV --wait", run: q.unlink})
	}
	if q.created.env {
		steps = append(steps, qsStep{cmd: "keyhold env delete " + q.envID + " --yes", run: func(ctx context.Context) (string, error) {
			return "environment deleted", q.pp.DeleteEnvironment(ctx, q.envID)
		}})
	}
	for i := range q.policies {
		if q.policyCreated[i] && q.linked == nil {
			name := fmt.Sprintf("ep-qs%d-%s", i+1, q.sfx)
			steps = append(steps, qsStep{cmd: fmt.Sprintf("keyhold policy delete --name %s --resource-group %s --yes", name, q.group),
				run: func(ctx context.Context) (string, error) {
					return "policy " + name + " deleted (no environment is linked to it)", q.c.DeletePolicy(ctx, q.policyID(i))
				}})
		}
	}
	if q.created.user {
		steps = append(steps, qsStep{cmd: "keyhold user delete --id " + q.ppUPN, run: func(ctx context.Context) (string, error) {
			if err := q.c.DeleteUser(ctx, q.ppID); err != nil {
				return "", err
			}
			if q.pwFile != "" {
				os.Remove(q.pwFile)
			}
			return "user deleted, its password file removed", nil
		}})
	}
	if q.created.vault {
		steps = append(steps, qsStep{cmd: fmt.Sprintf("keyhold vault delete --name %s --yes", q.vault), run: func(ctx context.Context) (string, error) {
			return fmt.Sprintf("vault soft-deleted: purge protection keeps it recoverable (keyhold vault recover --name %s) until its retention ends", q.vault),
				q.c.DeleteVault(ctx, q.sub, q.group, q.vault)
		}})
	}
	if q.created.group {
		steps = append(steps, qsStep{cmd: fmt.Sprintf("keyhold group delete --name %s --yes", q.group), run: func(ctx context.Context) (string, error) {
			return "resource group deleted", q.c.DeleteResourceGroup(ctx, q.sub, q.group, q.a.progress("deleting "+q.group).tick)
		}})
	}
	for _, st := range steps {
		fmt.Fprintf(q.a.stdout, "$ %s\n", st.cmd)
		sctx, cancel := context.WithTimeout(ctx, q.o.timeout)
		res, err := st.run(sctx)
		cancel()
		if err != nil {
			fmt.Fprintf(q.a.stdout, "  ✗ %s (left in place)\n", oneLine(errorMessage(err)))
			continue
		}
		fmt.Fprintf(q.a.stdout, "  ✓ %s\n", res)
	}
}

func (q *qs) summary(d time.Duration) {
	w := q.a.stdout
	fmt.Fprintf(w, "\nDone in %s: %d steps ✓\n", d.Round(time.Second), q.step)
	fmt.Fprintln(w, "  - the key vault administrator made a vault with purge protection, two RSA keys and two enterprise policies,")
	fmt.Fprintln(w, "    and granted each policy's identity get, wrapKey and unwrapKey;")
	fmt.Fprintln(w, "  - the platform administrator (Reader on the policies) added an environment to the first policy, saw it lock")
	fmt.Fprintln(w, "    when the key was revoked, re-enabled it once the key was back, changed its key and removed it again;")
	fmt.Fprintf(w, "  - every one of the %d sample rows read back after each step, with no downtime during add, change and remove.\n", len(q.rowIDs))
	if q.o.keep {
		fmt.Fprintf(w, "Kept: resource group %s, vault %s, environment %s, user %s (password in %s).\n", q.group, q.vault, q.envID, q.ppUPN, q.pwFile)
	}
}
