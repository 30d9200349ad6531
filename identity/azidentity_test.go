package identity

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/keyhold/keyhold"
)

// These tests drive the real Azure SDK credentials against the service, with
// only the authority host changed, as DESIGN.md promises.

// counting wraps the test server's client and counts the requests per path.
type counting struct {
	c    *http.Client
	hits atomic.Int64
	seen chan string
}

func (c *counting) Do(r *http.Request) (*http.Response, error) {
	c.hits.Add(1)
	what := r.Method + " " + r.URL.Path
	if r.Method == http.MethodPost && r.Body != nil {
		// Name the grant, to show which flow MSAL chose.
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(b))
		form, _ := url.ParseQuery(string(b))
		what += " grant_type=" + form.Get("grant_type")
	}
	select {
	case c.seen <- what:
	default:
	}
	return c.c.Do(r)
}

func (e *env) clientOptions() (azcore.ClientOptions, *counting) {
	tr := &counting{c: e.srv.Client(), seen: make(chan string, 100)}
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.srv.URL + "/"},
		Transport: tr,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}, tr
}

func paths(c *counting) []string {
	var out []string
	for {
		select {
		case p := <-c.seen:
			out = append(out, p)
		default:
			return out
		}
	}
}

func mgmtScope() policy.TokenRequestOptions {
	// The Azure SDK's ARM clients ask for "<endpoint>/.default" with the
	// endpoint's trailing slash, hence the double slash.
	return policy.TokenRequestOptions{Scopes: []string{AudienceManagement + "//.default"}}
}

func TestClientSecretCredential(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sp, secret := e.sp("deployer")
	opts, tr := e.clientOptions()
	cred, err := azidentity.NewClientSecretCredential(testTenant, sp.AppID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: opts, DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cred.GetToken(ctx, mgmtScope())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MSAL requests: %v", paths(tr))

	req := httptest.NewRequest("GET", "/subscriptions", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	c, err := e.svc.Authenticate(ctx, req, AudienceManagement+"/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Principal.ID, sp.ID; got != want {
		t.Errorf("caller = %q, want %q", got, want)
	}
	if got, want := c.ClientID, sp.AppID; got != want {
		t.Errorf("client id = %q, want %q", got, want)
	}
	if got, want := c.TenantID, testTenant; got != want {
		t.Errorf("tenant = %q, want %q", got, want)
	}
	if got, want := c.Audience, AudienceManagement; got != want {
		t.Errorf("audience = %q, want %q", got, want)
	}
	claims := payload(t, tok.Token)
	for k, want := range map[string]any{"idtyp": "app", "ver": "2.0", "appid": sp.AppID, "azp": sp.AppID, "oid": sp.ID,
		"tid": testTenant, "aud": AudienceManagement, "iss": e.srv.URL + "/" + testTenant + "/v2.0"} {
		if got := claims[k]; got != want {
			t.Errorf("claim %s = %v, want %v", k, got, want)
		}
	}

	// MSAL caches the token: a second request does not reach the server.
	before := tr.hits.Load()
	if _, err := cred.GetToken(ctx, mgmtScope()); err != nil {
		t.Fatal(err)
	}
	if got := tr.hits.Load() - before; got != 0 {
		t.Errorf("second GetToken made %d requests, want 0 (cached)", got)
	}
}

func TestClientSecretCredentialWrongSecret(t *testing.T) {
	e := newEnv(t)
	sp, secret := e.sp("deployer")
	opts, _ := e.clientOptions()
	wrong := secret[:len(secret)-1] + "x"
	if wrong == secret {
		wrong = secret[:len(secret)-1] + "y"
	}
	cred, err := azidentity.NewClientSecretCredential(testTenant, sp.AppID, wrong, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: opts, DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = cred.GetToken(context.Background(), mgmtScope())
	if err == nil {
		t.Fatal("GetToken with a wrong secret succeeded")
	}
	for _, want := range []string{"invalid_client", "AADSTS7000215"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
	if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), secret) {
		t.Error("error contains the secret")
	}
}

func TestUsernamePasswordCredential(t *testing.T) {
	for _, tenant := range []string{testTenant, "organizations"} {
		t.Run(tenant, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			u := e.user("alice@"+testDomain, keyhold.RolePowerPlatformAdministrator)
			grp, err := e.svc.CreateGroup(ctx, testTenant, "vault admins")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.svc.AddGroupMember(ctx, grp.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			opts, tr := e.clientOptions()
			cred, err := azidentity.NewUsernamePasswordCredential(tenant, "04b07795-8ddb-461a-bbee-02f9e1bf7b46", "Alice@"+testDomain, testPass,
				&azidentity.UsernamePasswordCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := cred.GetToken(ctx, mgmtScope())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("MSAL requests: %v", paths(tr))
			c, err := e.svc.AuthenticateToken(ctx, tok.Token, AudienceManagement)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := c.Principal.ID, u.ID; got != want {
				t.Errorf("caller = %q, want %q", got, want)
			}
			if got, want := c.GroupIDs, []string{grp.ID}; len(got) != 1 || got[0] != want[0] {
				t.Errorf("groups = %v, want %v", got, want)
			}
			claims := payload(t, tok.Token)
			if got, want := claims["upn"], "alice@"+testDomain; got != want {
				t.Errorf("upn = %v, want %v", got, want)
			}
			if got, want := claims["idtyp"], "user"; got != want {
				t.Errorf("idtyp = %v, want %v", got, want)
			}

			// Another resource: MSAL redeems its refresh token.
			before := tr.hits.Load()
			vt, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{AudienceVault + "/.default"}})
			if err != nil {
				t.Fatal(err)
			}
			got := paths(tr)
			t.Logf("MSAL requests for the vault token: %v", got)
			if tr.hits.Load() == before {
				t.Error("a token for another resource came from the cache")
			}
			if !slices.ContainsFunc(got, func(p string) bool { return strings.HasSuffix(p, "grant_type=refresh_token") }) {
				t.Errorf("MSAL did not redeem its refresh token: %v", got)
			}
			if _, err := e.svc.AuthenticateToken(ctx, vt.Token, AudienceVault); err != nil {
				t.Errorf("vault token: %v", err)
			}
			if _, err := e.svc.AuthenticateToken(ctx, vt.Token, AudienceManagement); keyhold.ErrorDetail(err) != DetailInvalidToken {
				t.Errorf("vault token accepted by the management audience: %v", err)
			}
		})
	}
}

func TestUsernamePasswordCredentialWrongPassword(t *testing.T) {
	e := newEnv(t)
	e.user("alice@" + testDomain)
	for _, name := range []string{"alice@" + testDomain, "nobody@" + testDomain} {
		opts, _ := e.clientOptions()
		cred, err := azidentity.NewUsernamePasswordCredential(testTenant, "04b07795-8ddb-461a-bbee-02f9e1bf7b46", name, "wrong-password",
			&azidentity.UsernamePasswordCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cred.GetToken(context.Background(), mgmtScope())
		if err == nil {
			t.Fatalf("%s: GetToken with a wrong password succeeded", name)
		}
		for _, want := range []string{"invalid_grant", "AADSTS50126"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error does not mention %s: %v", name, want, err)
			}
		}
	}
}
