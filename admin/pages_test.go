package admin_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/admin"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/testenv"
)

// pageClient is a cookie-keeping client that does not follow redirects,
// so tests see each answer.
func pageClient(t *testing.T, e *testenv.Env) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: e.HTTP.Transport, Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, method, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	return doWithCookie(t, c, method, u, "", form)
}

// doWithCookie is do with the session cookie set by hand (none when cookie
// is ""): a cookie jar hands a cookie of 127.0.0.1 to every port, which
// tests of several servers cannot have.
func doWithCookie(t *testing.T, c *http.Client, method, u, cookie string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: admin.CookieName, Value: cookie})
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestPagesSecurity checks sign-in, the session cookie, CSRF, role checks,
// redirects and error pages over HTTP, without a browser.
func TestPagesSecurity(t *testing.T) {
	e := testenv.Start(t)
	base := strings.TrimSuffix(e.Server.URL(), "/")
	const password = "Plain-user-password-42!"
	_, upn := e.CreateUser("plain", password)

	anon := pageClient(t, e)
	tests := []struct {
		name       string
		method     string
		path       string
		form       url.Values
		wantStatus int
		wantIn     string // in the body, or the Location header for redirects
		notIn      string
	}{
		{"signed out is sent to sign in", "GET", "/admin/environments", nil, http.StatusSeeOther, "/admin/signin?next=%2Fadmin%2Fenvironments", ""},
		{"sign-in page", "GET", "/admin/signin", nil, http.StatusOK, `name="password"`, ""},
		{"no user name", "POST", "/admin/signin", url.Values{"password": {"x"}}, http.StatusBadRequest, "Enter your user name", ""},
		{"no password", "POST", "/admin/signin", url.Values{"username": {upn}}, http.StatusBadRequest, "Enter your password", ""},
		{"wrong password", "POST", "/admin/signin", url.Values{"username": {upn}, "password": {"Wrong-secret-value-9"}}, http.StatusUnauthorized, "incorrect", "Wrong-secret-value-9"},
		{"unknown page", "GET", "/admin/nowhere", nil, http.StatusNotFound, "Page not found", "{"},
		{"post without session", "POST", "/admin/signout", url.Values{}, http.StatusUnauthorized, "Sign in again", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, anon, tt.method, base+tt.path, tt.form)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
			}
			got := body
			if resp.StatusCode == http.StatusSeeOther {
				got = resp.Header.Get("Location")
			}
			if !strings.Contains(got, tt.wantIn) {
				t.Errorf("got %q, want it to contain %q", got, tt.wantIn)
			}
			if tt.notIn != "" && strings.Contains(body, tt.notIn) {
				t.Errorf("body contains %q", tt.notIn)
			}
		})
	}

	// A good sign-in sets a hardened cookie and keeps the redirect on the pages.
	c := pageClient(t, e)
	resp, _ := do(t, c, "POST", base+"/admin/signin", url.Values{"username": {upn}, "password": {password}, "next": {"//evil.example/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/" {
		t.Fatalf("sign-in: %d to %q, want 303 to /admin/", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-keyhold_session" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/" {
		t.Fatalf("session cookie = %+v, want HttpOnly, Secure, SameSite=Strict, Path=/", cookie)
	}
	if strings.Contains(cookie.Value, ".") {
		t.Fatal("the cookie looks like a token; it must be an opaque session id")
	}

	after := []struct {
		name       string
		method     string
		path       string
		form       url.Values
		wantStatus int
		wantIn     string
	}{
		{"home without admin roles", "GET", "/admin/", nil, http.StatusOK, "do not include the admin center"},
		{"admin center refused", "GET", "/admin/environments", nil, http.StatusForbidden, "You don&#39;t have access"},
		{"policies refused", "GET", "/admin/policies", nil, http.StatusForbidden, "You don&#39;t have access"},
		{"post without CSRF token", "POST", "/admin/signout", url.Values{}, http.StatusForbidden, "Form expired"},
		{"post with a wrong CSRF token", "POST", "/admin/vaults", url.Values{"csrf": {"forged"}}, http.StatusForbidden, "Form expired"},
		{"audit filter with a bad date", "GET", "/admin/audit?since=yesterday", nil, http.StatusBadRequest, "Enter a date as YYYY-MM-DD."},
		{"policy access page for any signed-in user", "GET", "/admin/kv/policies", nil, http.StatusOK, "Grant Reader"},
	}
	for _, tt := range after {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, c, tt.method, base+tt.path, tt.form)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantIn) {
				t.Fatalf("%s %s = %d, want %d with %q; body %s", tt.method, tt.path, resp.StatusCode, tt.wantStatus, tt.wantIn, body)
			}
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
		})
	}

	// Sign out with the page's CSRF token ends the session.
	_, home := do(t, c, "GET", base+"/admin/", nil)
	i := strings.Index(home, `name="csrf" value="`)
	if i < 0 {
		t.Fatal("the page has no CSRF field")
	}
	token := home[i+len(`name="csrf" value="`):]
	token = token[:strings.IndexByte(token, '"')]
	if resp, _ := do(t, c, "POST", base+"/admin/signout", url.Values{"csrf": {token}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out: %d", resp.StatusCode)
	}
	if resp, _ := do(t, c, "GET", base+"/admin/", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after sign-out the home page answers %d, want a redirect to sign in", resp.StatusCode)
	}
}

// TestKeyDisableAsksFirst shows that disabling a key, which locks every
// environment whose policy uses it, goes through a confirmation page, and
// that the key is disabled only once that is confirmed.
func TestKeyDisableAsksFirst(t *testing.T) {
	e := testenv.Start(t)
	base := strings.TrimSuffix(e.Server.URL(), "/")
	sub, tenant := e.Boot.SubscriptionID, e.Boot.TenantID
	arm := e.Token(e.Admin(), identity.AudienceManagement)
	if resp, b := e.Do("PUT", "/subscriptions/"+sub+"/resourcegroups/rg?api-version=2021-04-01", arm, map[string]any{"location": "westus"}, nil); resp.StatusCode >= 300 {
		t.Fatalf("group: %d %s", resp.StatusCode, b)
	}
	var admin struct {
		ID string `json:"id"`
	}
	e.Do("GET", "/v1.0/me", e.Token(e.Admin(), identity.AudienceGraph), nil, &admin)
	if resp, b := e.Do("PUT", "/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-pages?api-version=2023-07-01", arm, map[string]any{
		"location": "westus", "properties": map[string]any{"tenantId": tenant, "sku": map[string]any{"family": "A", "name": "standard"},
			"enablePurgeProtection": true, "accessPolicies": []any{map[string]any{"tenantId": tenant, "objectId": admin.ID,
				"permissions": map[string]any{"keys": []string{"all"}}}}},
	}, nil); resp.StatusCode >= 300 {
		t.Fatalf("vault: %d %s", resp.StatusCode, b)
	}
	vaultTok := e.Token(e.Admin(), identity.AudienceVault)
	if resp, b := e.Do("POST", "/vaults/kv-pages/keys/cmk/create?api-version=7.6", vaultTok, map[string]any{"kty": "RSA"}, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("key: %d %s", resp.StatusCode, b)
	}
	enabled := func() bool {
		var k struct {
			Attributes struct{ Enabled bool } `json:"attributes"`
		}
		e.Do("GET", "/vaults/kv-pages/keys/cmk?api-version=7.6", vaultTok, nil, &k)
		return k.Attributes.Enabled
	}

	c := pageClient(t, e)
	if resp, _ := do(t, c, "POST", base+"/admin/signin", url.Values{"username": {e.Boot.AdminUsername}, "password": {e.Boot.AdminPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	_, page := do(t, c, "GET", base+"/admin/vaults/"+sub+"/rg/kv-pages", nil)
	i := strings.Index(page, `name="csrf" value="`)
	if i < 0 {
		t.Fatalf("the vault page has no CSRF field: %s", page)
	}
	token := page[i+len(`name="csrf" value="`):]
	token = token[:strings.IndexByte(token, '"')]
	keyURL := base + "/admin/vaults/" + sub + "/rg/kv-pages/keys/cmk"

	resp, body := do(t, c, "POST", keyURL, url.Values{"csrf": {token}, "action": {"disable"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Disable key cmk") || !strings.Contains(body, "disabled at once") {
		t.Fatalf("disable without confirmation = %d: %s", resp.StatusCode, body)
	}
	if !enabled() {
		t.Fatal("the key was disabled before the administrator confirmed")
	}
	if resp, body := do(t, c, "POST", keyURL, url.Values{"csrf": {token}, "action": {"disable"}, "confirm": {"yes"}}); resp.StatusCode >= 400 {
		t.Fatalf("confirmed disable = %d: %s", resp.StatusCode, body)
	}
	if enabled() {
		t.Fatal("the key is still enabled after the confirmed disable")
	}
}

// TestChangeKeyRefusals: Change key answers a bad choice, and the API's
// refusal of a policy that does not exist, next to its field on the
// environment page, with the matching status.
func TestChangeKeyRefusals(t *testing.T) {
	e := testenv.Start(t)
	ctx := context.Background()
	base := strings.TrimSuffix(e.Server.URL(), "/")
	api, err := client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	admin := api.WithTokens(client.NewCredentialSource(api, e.Boot.TenantID,
		client.Credential{Username: e.Boot.AdminUsername, Password: keyhold.NewSecret([]byte(e.Boot.AdminPassword))}, nil))
	env, err := admin.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Contoso", Region: "unitedstates", Type: client.EnvironmentSandbox, Managed: true})
	if err != nil {
		t.Fatal(err)
	}
	c, csrf := signInPages(t, e, e.Boot.AdminUsername, e.Boot.AdminPassword)
	path := base + "/admin/environments/" + env.Name + "/changekey"
	missing := client.PolicyID(e.Boot.SubscriptionID, "rg-none", "ep-none")
	tests := []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"no policy", url.Values{"csrf": {csrf}}, http.StatusBadRequest, "Choose the policy whose key the environment should use."},
		{"not a policy id", url.Values{"csrf": {csrf}, "policy": {"/subscriptions/x"}}, http.StatusBadRequest, "Choose the policy whose key the environment should use."},
		{"a policy that does not exist", url.Values{"csrf": {csrf}, "policy": {missing}, "confirm": {"yes"}}, http.StatusNotFound, "ep-none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, c, "POST", path, tt.form)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			i := strings.Index(body, `<p class="field-error" id="policy-error">`)
			if i < 0 || !strings.Contains(body[i:], tt.want) || !strings.Contains(body, `aria-describedby="policy-error"`) {
				t.Fatalf("the refusal is not next to the field: %s", body)
			}
		})
	}
}
