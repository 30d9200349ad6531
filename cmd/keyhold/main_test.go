package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// harness runs the CLI against a fake server with a private profile and
// environment.
type harness struct {
	t       *testing.T
	f       *fake
	env     map[string]string
	prompts []string // answers to terminal prompts, in order
	dir     string
}

func newHarness(t *testing.T) *harness {
	f := newFake(t)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, f: f, dir: dir, env: map[string]string{
		"KEYHOLD_CONFIG":  filepath.Join(dir, "config", "profile.json"),
		"KEYHOLD_CA_CERT": ca,
		"HOME":            dir,
	}}
}

func (h *harness) profilePath() string { return h.env["KEYHOLD_CONFIG"] }

// refusal is a command line that fails with the exit code code and a
// stderr that contains stderr.
type refusal struct {
	name   string
	args   []string
	code   int
	stderr string
}

// refuses runs each refusal as a subtest of t.
func (h *harness) refuses(t *testing.T, tests []refusal) {
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := h.run(tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tt.code, tt.stderr)
			}
		})
	}
}

// run runs keyhold with args and returns the exit code, stdout and stderr.
func (h *harness) run(args ...string) (int, string, string) {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	a := &app{
		stdin:        strings.NewReader(""),
		stdout:       &stdout,
		stderr:       &stderr,
		getenv:       func(k string) string { return h.env[k] },
		now:          time.Now,
		pollInterval: time.Millisecond,
		readSecret: func(prompt string) (string, error) {
			if len(h.prompts) == 0 {
				return "", errors.New("no terminal to ask on")
			}
			p := h.prompts[0]
			h.prompts = h.prompts[1:]
			return p, nil
		},
	}
	code := a.run(context.Background(), args)
	return code, stdout.String(), stderr.String()
}

// ok runs args and fails the test unless they exit 0.
func (h *harness) ok(args ...string) string {
	h.t.Helper()
	code, out, errOut := h.run(args...)
	if code != 0 {
		h.t.Fatalf("keyhold %s: exit %d\nstderr: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// login signs in as the administrator with a password.
func (h *harness) login() {
	h.t.Helper()
	h.ok("login", "--server", h.f.srv.URL, "--username", adminUPN, "--password", adminPW)
}

func (h *harness) readProfile() (*Profile, []byte) {
	h.t.Helper()
	b, err := os.ReadFile(h.profilePath())
	if err != nil {
		h.t.Fatal(err)
	}
	var p Profile
	if err := json.Unmarshal(b, &p); err != nil {
		h.t.Fatal(err)
	}
	return &p, b
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
	}
}

// walk calls fn with the path of every command in the tree.
func walk(c *command, path []string, fn func(path []string, c *command)) {
	fn(path, c)
	for _, s := range c.subs {
		walk(s, append(append([]string(nil), path...), s.name), fn)
	}
}

func TestHelpOfEveryCommand(t *testing.T) {
	h := newHarness(t)
	n := 0
	walk(root(), nil, func(path []string, c *command) {
		n++
		for _, args := range [][]string{append(append([]string(nil), path...), "--help"), append(append([]string(nil), path...), "-h"), append([]string{"help"}, path...)} {
			code, out, errOut := h.run(args...)
			want := "Usage: " + strings.Join(append([]string{"keyhold"}, path...), " ")
			// serve (the server's file) prints its help on stderr too; the
			// rest must keep stderr clean.
			if code != 0 || !strings.HasPrefix(out, want) || (errOut != "" && c.raw == nil) {
				t.Errorf("keyhold %s: exit %d, stdout %q, stderr %q; want exit 0 and %q", strings.Join(args, " "), code, firstLine(out), errOut, want)
			}
			if len(c.subs) == 0 && !strings.Contains(out, "Examples:") {
				t.Errorf("keyhold %s: no examples", strings.Join(args, " "))
			}
		}
	})
	if n < 30 {
		t.Errorf("walked %d commands; the tree seems to be missing some", n)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func TestUsageErrors(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		args []string
		want string // stderr's last line
	}{
		{[]string{"frob"}, `keyhold: unknown command "frob"; run 'keyhold --help' for the list`},
		{[]string{"group", "frob"}, `keyhold: unknown command "group frob"; run 'keyhold group --help' for the list`},
		{[]string{"role", "assignment", "frob"}, `keyhold: unknown command "role assignment frob"; run 'keyhold role assignment --help' for the list`},
		{[]string{"group", "create", "--bogus"}, `keyhold: keyhold group create: -bogus is not a flag of this command`},
		{[]string{"group", "create", "--name", "rg"}, `keyhold: --location is required`},
		{[]string{"group", "list", "-o", "yaml"}, `keyhold: --output must be table or json, not "yaml"`},
		{[]string{"group", "delete", "--name", "rg"}, `keyhold: group delete needs --yes when not run on a terminal`},
		{[]string{"user", "add-role", "--id", "x", "--role", "Emperor"}, `keyhold: unknown directory role "Emperor"; the roles are "Dynamics 365 Administrator", "Global Administrator", "Power Platform Administrator"`},
		{[]string{"role", "assignment", "delete"}, `keyhold: role assignment delete needs one of --id and --name`},
		{[]string{"audit", "list", "--since", "yesterday"}, `keyhold: "yesterday" is not a time: use RFC 3339 (2026-05-01T10:00:00Z), a date (2026-05-01) or a duration back from now (90m)`},
		{[]string{"login"}, `keyhold: login needs --server URL (or KEYHOLD_SERVER, or --bootstrap FILE)`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, _, errOut := h.run(tt.args...)
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if code != exitUsage || lines[len(lines)-1] != tt.want {
				t.Errorf("got exit %d, stderr %q; want exit 2 and %q", code, errOut, tt.want)
			}
		})
	}
	// A noun alone prints its usage on stderr and exits 2.
	code, out, errOut := h.run("group")
	if code != exitUsage || out != "" || !strings.HasPrefix(errOut, "Usage: keyhold group") {
		t.Errorf("keyhold group: exit %d, stdout %q, stderr %q", code, out, firstLine(errOut))
	}
}

func TestServerErrorsPrintMessageAndCode(t *testing.T) {
	h := newHarness(t)
	h.login()
	code, out, errOut := h.run("group", "show", "--name", "missing")
	want := "keyhold: Resource group 'missing' could not be found. (ResourceGroupNotFound)\n" +
		"keyhold: request id fake-req-ResourceGroupNotFound (quote it when asking for support)\n"
	if code != exitError || out != "" || errOut != want {
		t.Errorf("got exit %d, stdout %q, stderr %q; want exit 1 and %q", code, out, errOut, want)
	}
	// A refused login shows the identity service's words.
	code, _, errOut = h.run("login", "--server", h.f.srv.URL, "--client-id", spAppID, "--client-secret", "x")
	if want := "keyhold: signing in as " + spAppID + ": a service principal signs in to its own tenant: give the tenant id\n"; code != exitError || errOut != want {
		t.Errorf("no tenant: exit %d, stderr %q, want %q", code, errOut, want)
	}
	code, _, errOut = h.run("login", "--server", h.f.srv.URL, "--username", adminUPN, "--password", "wrong")
	if code != exitError || !strings.HasPrefix(errOut, "keyhold: signing in as "+adminUPN+": AADSTS50126: Error validating credentials due to invalid username or password. (invalid_grant)\n") {
		t.Errorf("bad password: exit %d, stderr %q", code, errOut)
	}
}

func TestLoginWritesPrivateProfileWithoutSecrets(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		prompts   []string
		env       map[string]string
		wantLogin string
		wantType  string
		secret    string
	}{
		{"password flag", []string{"--username", adminUPN, "--password", adminPW}, nil, nil, adminUPN, loginUser, adminPW},
		{"password prompt", []string{"--username", adminUPN}, []string{adminPW}, nil, adminUPN, loginUser, adminPW},
		{"password env", []string{"--username", adminUPN}, nil, map[string]string{"KEYHOLD_PASSWORD": adminPW}, adminUPN, loginUser, adminPW},
		{"client secret env", nil, nil, map[string]string{"KEYHOLD_CLIENT_ID": spAppID, "KEYHOLD_CLIENT_SECRET": spSecretText, "KEYHOLD_TENANT": fakeTenant}, spAppID, loginServicePrincipal, spSecretText},
		{"client secret flag", []string{"--tenant", fakeTenant, "--client-id", spAppID, "--client-secret", spSecretText}, nil, nil, spAppID, loginServicePrincipal, spSecretText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			h.prompts = tt.prompts
			for k, v := range tt.env {
				h.env[k] = v
			}
			out := h.ok(append([]string{"login", "--server", h.f.srv.URL}, tt.args...)...)
			if !strings.Contains(out, "Logged in to "+h.f.srv.URL+"/ as "+tt.wantLogin) {
				t.Errorf("stdout %q", out)
			}
			st, err := os.Stat(h.profilePath())
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("profile mode %v, want 0600", st.Mode().Perm())
			}
			p, raw := h.readProfile()
			if bytes.Contains(raw, []byte(tt.secret)) {
				t.Errorf("the profile holds the secret:\n%s", raw)
			}
			if p.LoginName != tt.wantLogin || p.LoginType != tt.wantType || p.Tenant != fakeTenant || p.Subscription != fakeSub || p.CACert != h.env["KEYHOLD_CA_CERT"] {
				t.Errorf("profile %+v", p)
			}
			for _, aud := range loginAudiences {
				if tok := p.Tokens[aud]; !tok.Valid(time.Now()) || audienceOf(tok.AccessToken) != aud {
					t.Errorf("token for %s: %+v", aud, tok)
				}
			}
			// Later commands use the cached tokens and ask for no new ones.
			before := len(h.f.tokenRequests)
			h.ok("group", "create", "--name", "rg1", "--location", "westus")
			h.ok("user", "list")
			if n := len(h.f.tokenRequests); n != before {
				t.Errorf("%d token requests after login, want none", n-before)
			}
		})
	}
}

func TestLoginBootstrap(t *testing.T) {
	for _, asSP := range []bool{false, true} {
		h := newHarness(t)
		dir := filepath.Join(h.dir, "data")
		os.MkdirAll(dir, 0o700)
		// The CA path is relative to the bootstrap file.
		ca, _ := os.ReadFile(h.env["KEYHOLD_CA_CERT"])
		os.WriteFile(filepath.Join(dir, "ca.pem"), ca, 0o644)
		delete(h.env, "KEYHOLD_CA_CERT")
		b := map[string]any{ // the shape of server.BootstrapFileContents
			"tenant_id": fakeTenant, "subscription_id": fakeSub, "authority_host": h.f.srv.URL + "/",
			"resource_manager_endpoint": h.f.srv.URL + "/", "resource_manager_audience": client.AudienceARM,
			"graph_endpoint": h.f.srv.URL + "/", "graph_audience": client.AudienceGraph, "ca_cert_file": "ca.pem",
			"admin_username": adminUPN, "admin_password": adminPW, "client_id": spAppID, "client_secret": spSecretText,
		}
		raw, _ := json.Marshal(b)
		bf := filepath.Join(dir, "bootstrap.json")
		os.WriteFile(bf, raw, 0o600)
		args := []string{"login", "--bootstrap", bf}
		want := adminUPN
		if asSP {
			args, want = append(args, "--as-service-principal"), spAppID
		}
		h.ok(args...)
		p, prof := h.readProfile()
		if p.LoginName != want || p.CACert != filepath.Join(dir, "ca.pem") || p.Subscription != fakeSub {
			t.Errorf("profile %+v", p)
		}
		if bytes.Contains(prof, []byte(adminPW)) || bytes.Contains(prof, []byte(spSecretText)) {
			t.Errorf("the profile holds a secret:\n%s", prof)
		}
		h.ok("provider", "list")
	}
}

func TestExpiredSession(t *testing.T) {
	h := newHarness(t)
	h.login()
	p, _ := h.readProfile()
	for aud, tok := range p.Tokens {
		tok.ExpiresOn = time.Now().Add(-time.Minute)
		p.Tokens[aud] = tok
	}
	b, _ := json.Marshal(p)
	os.WriteFile(h.profilePath(), b, 0o600)

	code, _, errOut := h.run("group", "list")
	if want := "keyhold: your session has expired; run keyhold login\n"; code != exitError || errOut != want {
		t.Errorf("got exit %d, stderr %q; want exit 1 and %q", code, errOut, want)
	}
	// With the password in the environment, the token is renewed and cached.
	h.env["KEYHOLD_PASSWORD"] = adminPW
	h.ok("group", "list")
	p, _ = h.readProfile()
	if !p.Tokens[client.AudienceARM].Valid(time.Now()) {
		t.Error("the renewed token was not cached in the profile")
	}
	if p.Tokens[client.AudienceGraph].Valid(time.Now()) {
		t.Error("a token no command asked for was renewed")
	}
	// logout removes the tokens, and then the session is over.
	delete(h.env, "KEYHOLD_PASSWORD")
	h.ok("logout")
	if p, _ := h.readProfile(); len(p.Tokens) != 0 || p.Server == "" {
		t.Errorf("after logout: %+v", p)
	}
	if code, _, errOut := h.run("group", "list"); code != exitError || errOut != "keyhold: you are not logged in (or logged out); run keyhold login\n" {
		t.Errorf("after logout: exit %d, stderr %q", code, errOut)
	}
}

func TestSettingsPrecedence(t *testing.T) {
	prof := &Profile{Server: "https://profile:1/", Tenant: "t-profile", CACert: "/profile/ca.pem", Subscription: "s-profile", LoginName: "p@x", LoginType: loginUser}
	tests := []struct {
		name     string
		flags    globals
		env      map[string]string
		want     [4]string // server, tenant, subscription, ca
		wantName string
		wantUser bool
		useProf  bool
	}{
		{"profile only", globals{}, nil, [4]string{"https://profile:1/", "t-profile", "s-profile", "/profile/ca.pem"}, "p@x", true, true},
		{"env over profile", globals{}, map[string]string{"KEYHOLD_TENANT": "t-env", "KEYHOLD_SUBSCRIPTION": "s-env", "KEYHOLD_CA_CERT": "/env/ca.pem"},
			[4]string{"https://profile:1/", "t-env", "s-env", "/env/ca.pem"}, "p@x", true, false},
		{"flags over env", globals{tenant: "t-flag", subscription: "s-flag", caCert: "/flag/ca.pem"}, map[string]string{"KEYHOLD_TENANT": "t-env", "KEYHOLD_SUBSCRIPTION": "s-env", "KEYHOLD_CA_CERT": "/env/ca.pem"},
			[4]string{"https://profile:1/", "t-flag", "s-flag", "/flag/ca.pem"}, "p@x", true, false},
		{"other server drops the profile", globals{server: "https://other:2/"}, nil, [4]string{"https://other:2/", "", "", ""}, "p@x", true, false},
		{"env client id over the profile login", globals{}, map[string]string{"KEYHOLD_CLIENT_ID": "app", "KEYHOLD_CLIENT_SECRET": "s"},
			[4]string{"https://profile:1/", "", "", "/profile/ca.pem"}, "app", false, false},
		{"flag user over env client id", globals{username: "u@x"}, map[string]string{"KEYHOLD_CLIENT_ID": "app", "KEYHOLD_CLIENT_SECRET": "s"},
			[4]string{"https://profile:1/", "", "", "/profile/ca.pem"}, "u@x", true, false},
		{"same login by env keeps the profile", globals{}, map[string]string{"KEYHOLD_USERNAME": "P@X", "KEYHOLD_PASSWORD": "pw"},
			[4]string{"https://profile:1/", "t-profile", "s-profile", "/profile/ca.pem"}, "P@X", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{g: tt.flags, getenv: func(k string) string { return tt.env[k] }}
			s := a.resolveSettings(prof)
			got := [4]string{s.server, s.tenant, s.subscription, s.caCert}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if s.cred.Name() != tt.wantName || s.cred.IsUser() != tt.wantUser {
				t.Errorf("credential %q user=%v, want %q user=%v", s.cred.Name(), s.cred.IsUser(), tt.wantName, tt.wantUser)
			}
			if (s.profile != nil) != tt.useProf {
				t.Errorf("profile tokens used = %v, want %v", s.profile != nil, tt.useProf)
			}
		})
	}
}

func TestOutputGolden(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.ok("group", "create", "--name", "rg-contoso", "--location", "westus", "--tag", "env=test", "--tag", "owner=kv")
	h.ok("group", "create", "rg-b", "--location", "eastus")
	h.ok("feature", "register", "--namespace", "Microsoft.PowerPlatform", "--name", "enterprisePoliciesPreview")
	h.ok("role", "assignment", "create", "--assignee", "kvadmin@contoso.keyhold.local", "--role", "reader")
	tests := []struct {
		name string
		args []string
	}{
		{"group_list", []string{"group", "list"}},
		{"group_list_json", []string{"group", "list", "-o", "json"}},
		{"group_show_json", []string{"group", "show", "--output", "json", "rg-contoso"}},
		{"user_list", []string{"user", "list"}},
		{"user_list_json", []string{"user", "list", "-o", "json"}},
		{"sp_list", []string{"sp", "list"}},
		{"provider_list", []string{"provider", "list"}},
		{"feature_show", []string{"feature", "show", "--namespace", "Microsoft.PowerPlatform", "--name", "enterprisePoliciesPreview"}},
		{"feature_list_json", []string{"feature", "list", "-o", "json"}},
		{"role_definition_list", []string{"role", "definition", "list"}},
		{"role_definition_reader_json", []string{"role", "definition", "list", "--name", "READER", "-o", "json"}},
		{"role_assignment_list", []string{"role", "assignment", "list"}},
		{"role_assignment_list_json", []string{"role", "assignment", "list", "-o", "json"}},
		{"audit_list", []string{"audit", "list"}},
		{"audit_list_json", []string{"audit", "list", "--top", "1", "-o", "json"}},
		{"audit_list_principal", []string{"audit", "list", "--principal", adminUPN, "--since", "2026-05-01"}},
		{"audit_verify", []string{"audit", "verify"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.name, h.ok(tt.args...))
		})
	}
}

func TestSPCreateShowsSecretOnce(t *testing.T) {
	h := newHarness(t)
	h.login()
	out := h.ok("sp", "create", "--display-name", "automation", "-o", "json")
	var got spSecret
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got.ClientSecret != "new-secret-value" || got.AppID != "55555555-5555-4555-8555-555555555555" || got.Tenant != fakeTenant {
		t.Errorf("got %+v", got)
	}
	golden(t, "sp_add_secret", h.ok("sp", "add-secret", "--id", "55555555-5555-4555-8555-555555555555"))
	if _, prof := h.readProfile(); bytes.Contains(prof, []byte("new-secret-value")) {
		t.Error("the client secret reached the profile")
	}
}

func TestGroupDeleteWaits(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.ok("group", "create", "--name", "rg1", "--location", "westus")
	out := h.ok("group", "delete", "--name", "rg1", "--yes")
	if out != "Deleted resource group rg1.\n" || h.f.deletePolls != 2 {
		t.Errorf("stdout %q after %d polls; want the message after 2 polls", out, h.f.deletePolls)
	}
	// A group that is not there fails at once, with the server's words.
	code, out, errOut := h.run("group", "delete", "--name", "rg2", "--yes", "-o", "json")
	if code != exitError || out != "" || !strings.HasPrefix(errOut, "keyhold: Resource group 'rg2' could not be found. (ResourceGroupNotFound)\n") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestProviderRegisterWait(t *testing.T) {
	h := newHarness(t)
	h.login()
	out := h.ok("provider", "register", "--namespace", "Microsoft.PowerPlatform", "--wait", "-o", "json")
	var p client.Provider
	if err := json.Unmarshal([]byte(out), &p); err != nil || p.RegistrationState != "Registered" {
		t.Errorf("got %q (%v), want Registered", out, err)
	}
	if h.f.providerGets < 2 {
		t.Errorf("polled %d times, want at least 2", h.f.providerGets)
	}
}

func TestUserCreateWithRoles(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.prompts = []string{"N3w-pass!", "N3w-pass!"}
	out := h.ok("user", "create", "--upn", "pp@contoso.keyhold.local", "--role", "power platform administrator", "--role", "Dynamics 365 Administrator")
	golden(t, "user_create", out)
	const newID = "33333333-3333-4333-8333-333333333333"
	for _, role := range []string{"11648597-926c-4cf3-9c36-bcebb0ba8dcc", "44367163-eba1-44c3-98af-f5787879f96a"} {
		if got := h.f.roles[role]; len(got) != 1 || got[0] != newID {
			t.Errorf("role %s members %v, want [%s]", role, got, newID)
		}
	}
	// Mismatched prompts fail and create nothing.
	h.prompts = []string{"a-Pass-1", "b-Pass-2"}
	if code, _, errOut := h.run("user", "create", "--upn", "x@contoso.keyhold.local"); code != exitError || errOut != "keyhold: the passwords do not match\n" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestAuditVerifyBroken(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.f.audit[1].Action = "Microsoft.Resources/subscriptions/resourceGroups/read"
	code, out, errOut := h.run("audit", "verify")
	if code != exitError || out != "" || !strings.HasPrefix(errOut, "keyhold: the audit log is broken: audit: record 2 was altered (AuditChainBroken)\nkeyhold: request id ") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestRoleAssignmentDeleteByName(t *testing.T) {
	h := newHarness(t)
	h.login()
	h.ok("role", "assignment", "create", "--assignee", spAppID, "--role", "Contributor")
	if len(h.f.assignments) != 1 || h.f.assignments[0].Properties.PrincipalID != spID || h.f.assignments[0].Properties.PrincipalType != "ServicePrincipal" ||
		!strings.HasSuffix(h.f.assignments[0].Properties.RoleDefinitionID, "/b24988ac-6180-42a0-ab88-20f7382dd24c") {
		t.Fatalf("assignments %+v", h.f.assignments)
	}
	h.ok("role", "assignment", "delete", "--name", "0b5c2f4e-3f0a-4d2b-9e55-3c1d7a9f1e21")
	if len(h.f.assignments) != 0 {
		t.Errorf("assignment not deleted: %+v", h.f.assignments)
	}
	if code, _, errOut := h.run("role", "assignment", "create", "--assignee", "nobody@contoso.keyhold.local", "--role", "Reader"); code != exitError || errOut != "keyhold: there is no user nobody@contoso.keyhold.local\n" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestTableCellsAreSanitized(t *testing.T) {
	var b bytes.Buffer
	writeTable(&b, table{header: []string{"A", "B"}, rows: [][]string{{"x\ty\n\x1b[31mred", ""}}})
	if got, want := b.String(), "A            B\nx y [31mred  -\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
