package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/testenv"
)

// setupEnv is a server with a key vault administrator (Owner of the
// subscription, with a vault and a key) and a user who only reads it.
type setupEnv struct {
	e         *testenv.Env
	base      string
	sub       string
	sp        *client.Client
	kv        *http.Client // signed in as the key vault administrator
	reader    *http.Client // signed in as the Reader
	vaultID   string
	kvCSRF    string
	readCSRF  string
	readerUPN string
}

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	i := strings.Index(page, `name="csrf" value="`)
	if i < 0 {
		t.Fatalf("the page has no CSRF field: %s", page)
	}
	token := page[i+len(`name="csrf" value="`):]
	return token[:strings.IndexByte(token, '"')]
}

func signInPages(t *testing.T, e *testenv.Env, upn, password string) (*http.Client, string) {
	t.Helper()
	c := pageClient(t, e)
	base := strings.TrimSuffix(e.Server.URL(), "/")
	if resp, body := do(t, c, "POST", base+"/admin/signin", url.Values{"username": {upn}, "password": {password}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in as %s: %d %s", upn, resp.StatusCode, body)
	}
	_, home := do(t, c, "GET", base+"/admin/kv/providers", nil)
	return c, csrfOf(t, home)
}

func newSetupEnv(t *testing.T) *setupEnv {
	t.Helper()
	e := testenv.Start(t)
	ctx := context.Background()
	base, err := client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP, PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sp := base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID,
		client.Credential{ClientID: e.Boot.ClientID, ClientSecret: keyhold.NewSecret([]byte(e.Boot.ClientSecret))}, nil))
	s := &setupEnv{e: e, base: strings.TrimSuffix(e.Server.URL(), "/"), sub: e.Boot.SubscriptionID, sp: sp}
	const kvPassword, readerPassword = "Kv-admin-password-42!", "Reader-password-42!"
	kvID, kvUPN := e.CreateUser("kvsetup", kvPassword)
	readerID, readerUPN := e.CreateUser("reader", readerPassword)
	s.readerUPN = readerUPN
	for _, ra := range []struct{ who, role string }{{kvID, ownerRoleID}, {readerID, readerRoleID}} {
		if _, err := sp.CreateRoleAssignment(ctx, "/subscriptions/"+s.sub, "/subscriptions/"+s.sub+"/providers/Microsoft.Authorization/roleDefinitions/"+ra.role, ra.who, "User"); err != nil {
			t.Fatal(err)
		}
	}
	kv := base.WithTokens(client.NewCredentialSource(base, e.Boot.TenantID, client.Credential{Username: kvUPN, Password: keyhold.NewSecret([]byte(kvPassword))}, nil))
	if _, err := kv.CreateResourceGroup(ctx, s.sub, "rg-setup", "westus", nil); err != nil {
		t.Fatal(err)
	}
	v, err := kv.CreateVault(ctx, s.sub, "rg-setup", "kv-setup", client.Vault{Location: "westus", Properties: client.VaultProperties{
		TenantID: e.Boot.TenantID, SKU: client.VaultSKU{Family: "A", Name: "standard"}, EnablePurgeProtection: new(true),
		AccessPolicies: []client.VaultAccessPolicy{{TenantID: e.Boot.TenantID, ObjectID: kvID, Permissions: client.VaultPermissions{Keys: []string{"all"}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.vaultID = v.ID
	if _, err := kv.CreateKey(ctx, "kv-setup", "cmk", client.KeyCreate{Kty: "RSA", KeySize: 2048}); err != nil {
		t.Fatal(err)
	}
	s.kv, s.kvCSRF = signInPages(t, e, kvUPN, kvPassword)
	s.reader, s.readCSRF = signInPages(t, e, readerUPN, readerPassword)
	return s
}

// policyForm is a valid policy form for the test's vault and key.
func (s *setupEnv) policyForm(csrf string, change map[string]string) url.Values {
	f := url.Values{"csrf": {csrf}, "subscription": {s.sub}, "group": {"rg-setup"}, "name": {"ep-setup"},
		"region": {"unitedstates"}, "vault": {s.vaultID}, "key": {"cmk"}, "version": {""}}
	for k, v := range change {
		f.Set(k, v)
	}
	return f
}

// waitDeployment waits for a deployment to end and returns its state.
func (s *setupEnv) waitDeployment(t *testing.T, name string) string {
	t.Helper()
	var state string
	testenv.WaitFor(t, time.Minute, "deployment "+name+" ends", func() bool {
		d, err := s.sp.GetDeployment(context.Background(), s.sub, "rg-setup", name)
		if err != nil {
			return false
		}
		state = d.Properties.ProvisioningState
		return d.Done()
	})
	return state
}

// TestProvidersPage registers and unregisters providers and the preview
// feature through the providers page: state changes land, unregistering
// asks first, and refusals (a provider that cannot be unregistered, a
// Reader who may not register) are shown next to their row.
func TestProvidersPage(t *testing.T) {
	s := newSetupEnv(t)
	ctx := context.Background()
	provider := func(ns string) string {
		p, err := s.sp.GetProvider(ctx, s.sub, ns)
		if err != nil {
			t.Fatal(err)
		}
		return p.RegistrationState
	}
	form := func(csrf, ns, feature, action string, extra ...string) url.Values {
		f := url.Values{"csrf": {csrf}, "subscription": {s.sub}, "namespace": {ns}, "action": {action}}
		if feature != "" {
			f.Set("feature", feature)
		}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return f
	}
	tests := []struct {
		name       string
		c          *http.Client
		method     string
		path       string
		form       url.Values
		wantStatus int
		wantIn     []string
		notIn      string
	}{
		{"page lists the providers and the feature", s.kv, "GET", "/admin/kv/providers", nil, http.StatusOK,
			[]string{"Microsoft.PowerPlatform", "Microsoft.KeyVault", "Microsoft.PowerPlatform/enterprisePoliciesPreview", ">NotRegistered<", `aria-label="Register Microsoft.PowerPlatform in`}, ""},
		{"post without CSRF token", s.kv, "POST", "/admin/kv/providers", form("", "Microsoft.PowerPlatform", "", "register"), http.StatusForbidden, []string{"Form expired"}, ""},
		{"post with another session's token", s.kv, "POST", "/admin/kv/providers", form(s.readCSRF, "Microsoft.PowerPlatform", "", "register"), http.StatusForbidden, []string{"Form expired"}, ""},
		{"a provider the page does not manage", s.kv, "POST", "/admin/kv/providers", form(s.kvCSRF, "Microsoft.Compute", "", "register"), http.StatusBadRequest, []string{"Unknown action"}, ""},
		{"unregister a feature", s.kv, "POST", "/admin/kv/providers", form(s.kvCSRF, "Microsoft.PowerPlatform", "enterprisePoliciesPreview", "unregister"), http.StatusBadRequest, []string{"Unknown action"}, ""},
		{"a Reader's register is refused next to the row", s.reader, "POST", "/admin/kv/providers", form(s.readCSRF, "Microsoft.PowerPlatform", "", "register"), http.StatusForbidden,
			[]string{`role="alert" id="error-` + s.sub + `-Microsoft.PowerPlatform"`, "Microsoft.PowerPlatform/register/action", `aria-describedby="error-` + s.sub + `-Microsoft.PowerPlatform"`}, "Something went wrong"},
		{"a Reader's feature registration is refused next to the row", s.reader, "POST", "/admin/kv/providers", form(s.readCSRF, "Microsoft.PowerPlatform", "enterprisePoliciesPreview", "register"), http.StatusForbidden,
			[]string{`id="error-` + s.sub + `-Microsoft.PowerPlatform/enterprisePoliciesPreview"`}, "Something went wrong"},
		{"register the provider", s.kv, "POST", "/admin/kv/providers", form(s.kvCSRF, "Microsoft.PowerPlatform", "", "register"), http.StatusSeeOther, []string{"/admin/kv/providers"}, ""},
		{"register the feature", s.kv, "POST", "/admin/kv/providers", form(s.kvCSRF, "Microsoft.PowerPlatform", "enterprisePoliciesPreview", "register"), http.StatusSeeOther, []string{"/admin/kv/providers"}, ""},
		{"registered state in the status", s.kv, "GET", "/admin/kv/providers/status?subscription=" + s.sub + "&namespace=Microsoft.PowerPlatform", nil, http.StatusOK, []string{`"state":"Registered"`, `"done":true`, `"class":"ok"`}, ""},
		{"feature state in the status", s.kv, "GET", "/admin/kv/providers/status?subscription=" + s.sub + "&namespace=Microsoft.PowerPlatform&feature=enterprisePoliciesPreview", nil, http.StatusOK, []string{`"state":"Registered"`}, ""},
		{"status of a provider the page does not manage", s.kv, "GET", "/admin/kv/providers/status?subscription=" + s.sub + "&namespace=Microsoft.Compute", nil, http.StatusBadRequest, []string{`"error"`}, ""},
		{"unregister asks first", s.kv, "POST", "/admin/kv/providers", form(s.kvCSRF, "Microsoft.PowerPlatform", "", "unregister"), http.StatusOK,
			[]string{"Are you sure?", "Confirm: Unregister Microsoft.PowerPlatform", `name="confirm" value="yes"`}, ""},
		{"a provider that cannot be unregistered", s.kv, "POST", "/admin/kv/providers", form(s.kvCSRF, "Microsoft.KeyVault", "", "unregister", "confirm", "yes"), http.StatusConflict,
			[]string{`id="error-` + s.sub + `-Microsoft.KeyVault"`, "cannot be unregistered"}, "Something went wrong"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.c, tt.method, s.base+tt.path, tt.form)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			if resp.StatusCode == http.StatusSeeOther {
				body = resp.Header.Get("Location")
			}
			for _, want := range tt.wantIn {
				if !strings.Contains(body, want) {
					t.Errorf("the answer lacks %q: %s", want, body)
				}
			}
			if tt.notIn != "" && strings.Contains(body, tt.notIn) {
				t.Errorf("the answer has %q: %s", tt.notIn, body)
			}
		})
	}
	if got := provider("Microsoft.PowerPlatform"); got != keyhold.StateRegistered {
		t.Fatalf("after Register and an unconfirmed Unregister the provider is %s, want Registered", got)
	}
	f, err := s.sp.GetFeature(ctx, s.sub, "Microsoft.PowerPlatform", "enterprisePoliciesPreview")
	if err != nil || f.Properties.State != keyhold.StateRegistered {
		t.Fatalf("feature = %+v, %v; want Registered", f, err)
	}
	// Confirmed, the unregistration goes through.
	if resp, body := do(t, s.kv, "POST", s.base+"/admin/kv/providers", form(s.kvCSRF, "Microsoft.PowerPlatform", "", "unregister", "confirm", "yes")); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirmed unregister = %d: %s", resp.StatusCode, body)
	}
	testenv.WaitFor(t, 10*time.Second, "the provider is unregistered", func() bool { return provider("Microsoft.PowerPlatform") == keyhold.StateUnregistered })
}

// TestCreatePolicyPage creates an enterprise policy through the form: bad
// input is answered next to each field, a deployment into a missing group
// or by a Reader is refused next to the field it concerns, a failing
// deployment's error comes back next to the field it concerns, and a
// successful one shows the policy's identity with links to grant it access.
func TestCreatePolicyPage(t *testing.T) {
	s := newSetupEnv(t)
	ctx := context.Background()
	if _, err := s.sp.RegisterProvider(ctx, s.sub, "Microsoft.PowerPlatform", true, nil); err != nil {
		t.Fatal(err)
	}

	_, page := do(t, s.kv, "GET", s.base+"/admin/kv/policies/new", nil)
	for _, want := range []string{`<option selected>unitedstates</option>`, "<option>europe</option>", `value="` + s.vaultID + `" selected`, "<option selected>cmk</option>", `<option value="rg-setup">`} {
		if !strings.Contains(page, want) {
			t.Errorf("the form lacks %q: %s", want, page)
		}
	}
	resp, body := do(t, s.kv, "GET", s.base+"/admin/kv/policies/new/keys?vault="+url.QueryEscape(s.vaultID), nil)
	var keys struct{ Keys []string }
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &keys) != nil || len(keys.Keys) != 1 || keys.Keys[0] != "cmk" {
		t.Fatalf("vault keys = %d %s, want [cmk]", resp.StatusCode, body)
	}

	bad := []struct {
		name       string
		c          *http.Client
		form       url.Values
		wantStatus int
		wantIn     []string
	}{
		{"no CSRF token", s.kv, s.policyForm("", nil), http.StatusForbidden, []string{"Form expired"}},
		{"bad name", s.kv, s.policyForm(s.kvCSRF, map[string]string{"name": "bad name!"}), http.StatusBadRequest,
			[]string{`id="name-error"`, "A policy name is 1 to 51", `aria-invalid="true" aria-describedby="name-error"`, `value="bad name!"`}},
		{"everything wrong", s.kv, s.policyForm(s.kvCSRF, map[string]string{"subscription": "nope", "group": "", "name": "", "region": "mars", "vault": "/not/a/vault", "version": "not a version"}), http.StatusBadRequest,
			[]string{`id="subscription-error"`, `id="group-error"`, `id="name-error"`, `id="region-error"`, `id="vault-error"`, `id="version-error"`, "Choose a Power Platform region"}},
		{"a key the vault does not have", s.kv, s.policyForm(s.kvCSRF, map[string]string{"key": "other"}), http.StatusBadRequest,
			[]string{`id="key-error"`, "Key vault kv-setup has no key named other"}},
		{"show keys does not deploy", s.kv, s.policyForm(s.kvCSRF, map[string]string{"step": "keys"}), http.StatusOK,
			[]string{"<option selected>cmk</option>"}},
		{"a missing resource group is refused next to its field", s.kv, s.policyForm(s.kvCSRF, map[string]string{"group": "rg-missing"}), http.StatusNotFound,
			[]string{`id="group-error"`, "could not be found", "ResourceGroupNotFound"}},
		{"a Reader's deployment is refused next to the group", s.reader, s.policyForm(s.readCSRF, nil), http.StatusForbidden,
			[]string{`id="group-error"`, "AuthorizationFailed"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, tt.c, "POST", s.base+"/admin/kv/policies/new", tt.form)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			for _, want := range tt.wantIn {
				if !strings.Contains(body, want) {
					t.Errorf("the answer lacks %q: %s", want, body)
				}
			}
			if strings.Contains(body, "Something went wrong") {
				t.Errorf("a refusal is shown as a failure: %s", body)
			}
		})
	}
	if ds, err := s.sp.ListDeployments(ctx, s.sub, "rg-setup"); err != nil || len(ds) != 0 {
		t.Fatalf("refused forms deployed something: %+v %v", ds, err)
	}

	// A key version that does not exist: the deployment fails, its page
	// shows the error, and the form shows it next to the version.
	const missingVersion = "0123456789abcdef0123456789abcdef"
	resp, _ = do(t, s.kv, "POST", s.base+"/admin/kv/policies/new", s.policyForm(s.kvCSRF, map[string]string{"version": missingVersion}))
	depPath := "/admin/kv/deployments/" + s.sub + "/rg-setup/EPDeployment-ep-setup"
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != depPath {
		t.Fatalf("create = %d to %q, want 303 to %s", resp.StatusCode, resp.Header.Get("Location"), depPath)
	}
	if got := s.waitDeployment(t, "EPDeployment-ep-setup"); got != "Failed" {
		t.Fatalf("deployment with a missing key version = %s, want Failed", got)
	}
	resp, body = do(t, s.kv, "GET", s.base+depPath, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "KeyNotFound") || !strings.Contains(body, `id="correct-policy"`) {
		t.Fatalf("failed deployment page = %d: %s", resp.StatusCode, body)
	}
	resp, body = do(t, s.kv, "GET", s.base+"/admin/kv/policies/new?subscription="+s.sub+"&group=rg-setup&deployment=EPDeployment-ep-setup", nil)
	for _, want := range []string{`id="version-error"`, "KeyNotFound", missingVersion, `value="ep-setup"`, "Deployment EPDeployment-ep-setup failed"} {
		if !strings.Contains(body, want) {
			t.Errorf("the corrected form lacks %q: %s", want, body)
		}
	}
	if resp, body := do(t, s.kv, "GET", s.base+"/admin/kv/deployments/"+s.sub+"/rg-setup/no-such-deployment", nil); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "Something went wrong") {
		t.Fatalf("missing deployment = %d: %s", resp.StatusCode, body)
	}

	// Corrected, the deployment succeeds and the page leads on.
	if resp, body := do(t, s.kv, "POST", s.base+"/admin/kv/policies/new", s.policyForm(s.kvCSRF, nil)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create = %d: %s", resp.StatusCode, body)
	}
	if got := s.waitDeployment(t, "EPDeployment-ep-setup"); got != "Succeeded" {
		t.Fatalf("deployment = %s, want Succeeded", got)
	}
	policyID := client.PolicyID(s.sub, "rg-setup", "ep-setup")
	p, err := s.sp.GetPolicy(ctx, policyID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Location != "unitedstates" || p.Properties.Encryption == nil || p.Properties.Encryption.KeyVault.Key.Name != "cmk" || p.PrincipalID() == "" {
		t.Fatalf("policy = %+v", p)
	}
	resp, body = do(t, s.kv, "GET", s.base+depPath, nil)
	for _, want := range []string{">Succeeded<", `id="policy-identity">` + p.PrincipalID(), `href="/admin/vaults/` + s.sub + `/rg-setup/kv-setup?object=` + p.PrincipalID() + `"`, `id="grant-reader-link"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the deployment page lacks %q: %s", want, body)
		}
	}
	// Its links fill in the next forms: the identity on the vault page,
	// the policy on the policy access page.
	_, body = do(t, s.kv, "GET", s.base+"/admin/vaults/"+s.sub+"/rg-setup/kv-setup?object="+p.PrincipalID(), nil)
	if !strings.Contains(body, `<input id="object" name="object" type="text" value="`+p.PrincipalID()+`"`) {
		t.Errorf("the vault page does not take the policy identity from the link: %s", body)
	}
	_, body = do(t, s.kv, "GET", s.base+"/admin/vaults/"+s.sub+"/rg-setup/kv-setup?object=%22%3E%3Cscript%3E", nil)
	if strings.Contains(body, "<script>") || !strings.Contains(body, `<input id="object" name="object" type="text" value=""`) {
		t.Errorf("the vault page took a link's object that is not an object id: %s", body)
	}
	_, body = do(t, s.kv, "GET", s.base+"/admin/kv/policies?"+url.Values{"policy": {policyID}}.Encode(), nil)
	if !strings.Contains(body, `<option value="`+policyID+`" selected>`) {
		t.Errorf("the policy access page does not preselect the policy from the link: %s", body)
	}
	resp, body = do(t, s.kv, "GET", s.base+depPath+"/status", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"state":"Succeeded"`) || !strings.Contains(body, `"done":true`) {
		t.Fatalf("deployment status = %d %s", resp.StatusCode, body)
	}
	// The Reader cannot list the vault's keys: the form asks for a name.
	_, body = do(t, s.reader, "GET", s.base+"/admin/kv/policies/new", nil)
	if !strings.Contains(body, `<input id="key" name="key" type="text"`) || !strings.Contains(body, "could not be listed") {
		t.Errorf("the Reader's form = %s", body)
	}
}
