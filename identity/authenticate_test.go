package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/seal"
)

func TestAuthenticateRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sp, _ := e.sp("app")
	good := e.token(sp, AudienceManagement)
	claims := payload(t, good)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")

	disabled, _ := e.sp("disabled app")
	disabledTok := e.token(disabled, AudienceManagement)
	yes := true
	if _, err := e.svc.UpdatePrincipal(ctx, disabled.ID, PrincipalUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	gone, _ := e.sp("deleted app")
	goneTok := e.token(gone, AudienceManagement)
	if err := e.svc.DeletePrincipal(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	u := e.user("bob@" + testDomain)
	idToken := func() string {
		form := map[string][]string{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
			"username": {u.UserPrincipalName}, "password": {testPass}, "scope": {AudienceManagement + "/.default openid profile offline_access"}}
		status, body, _ := e.post(testTenant, form)
		if status != 200 {
			t.Fatalf("password grant: %d %v", status, body)
		}
		return body["id_token"].(string)
	}()
	withClaim := func(k string, v any) map[string]any {
		m := map[string]any{}
		for k, v := range claims {
			m[k] = v
		}
		m[k] = v
		return m
	}
	ourKey := e.svc.signer
	kid := e.svc.kid

	tests := []struct {
		name       string
		header     string // the whole Authorization header; "-" for none
		audiences  []string
		advance    time.Duration
		wantDetail string
		wantMsg    string
	}{
		{name: "missing header", header: "-", wantDetail: DetailAuthenticationFailed, wantMsg: "authentication failed: the Authorization header is missing"},
		{name: "basic scheme", header: "Basic dXNlcjpwYXNz", wantDetail: DetailInvalidToken, wantMsg: "Bearer scheme"},
		{name: "empty bearer", header: "Bearer ", wantDetail: DetailInvalidToken},
		{name: "garbage", header: "Bearer not-a-token", wantDetail: DetailInvalidToken, wantMsg: "the access token is malformed"},
		{name: "garbage with dots", header: "Bearer a.b.c", wantDetail: DetailInvalidToken, wantMsg: "malformed"},
		{name: "expired", header: "Bearer " + good, advance: 2 * time.Hour, wantDetail: DetailInvalidToken, wantMsg: "the access token has expired"},
		{name: "not yet valid", header: "Bearer " + good, advance: -10 * time.Minute, wantDetail: DetailInvalidToken, wantMsg: "not yet valid"},
		{name: "signed by another key", header: "Bearer " + signWith(t, other, map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT"}, claims),
			wantDetail: DetailInvalidToken, wantMsg: "the access token signature is invalid"},
		{name: "another key id", header: "Bearer " + signWith(t, other, map[string]any{"alg": "RS256", "kid": "other", "typ": "JWT"}, claims),
			wantDetail: DetailInvalidToken, wantMsg: "the access token signature is invalid"},
		{name: "tampered claims", header: "Bearer " + parts[0] + "." + b64.EncodeToString([]byte(`{"aud":"`+AudienceManagement+`","oid":"x"}`)) + "." + parts[2],
			wantDetail: DetailInvalidToken, wantMsg: "the access token signature is invalid"},
		{name: "alg none", header: "Bearer " + signWith(t, nil, map[string]any{"alg": "none", "typ": "JWT"}, claims),
			wantDetail: DetailInvalidToken, wantMsg: "algorithm is not supported"},
		{name: "alg HS256", header: "Bearer " + parts[0][:0] + signWith(t, nil, map[string]any{"alg": "HS256", "kid": kid}, claims) + "c2ln",
			wantDetail: DetailInvalidToken, wantMsg: "algorithm is not supported"},
		{name: "other audience", header: "Bearer " + e.token(sp, AudienceVault), audiences: []string{AudienceManagement},
			wantDetail: DetailInvalidToken, wantMsg: "the access token audience is not valid for this service"},
		{name: "unknown audience, our key", header: "Bearer " + signWith(t, ourKey, map[string]any{"alg": "RS256", "kid": kid}, withClaim("aud", "https://evil.example")),
			wantDetail: DetailInvalidToken, wantMsg: "audience is not valid"},
		{name: "other issuer, our key", header: "Bearer " + signWith(t, ourKey, map[string]any{"alg": "RS256", "kid": kid}, withClaim("iss", "https://login.microsoftonline.com/"+testTenant+"/v2.0")),
			wantDetail: DetailInvalidToken, wantMsg: "issuer is not valid"},
		{name: "id token", header: "Bearer " + idToken, wantDetail: DetailInvalidToken, wantMsg: "not an access token"},
		{name: "disabled principal", header: "Bearer " + disabledTok, wantDetail: DetailInvalidToken, wantMsg: "disabled"},
		{name: "deleted principal", header: "Bearer " + goneTok, wantDetail: DetailInvalidToken, wantMsg: "does not exist"},
		{name: "oversized", header: "Bearer " + strings.Repeat("a", maxTokenLen+1), wantDetail: DetailInvalidToken, wantMsg: "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.clock.Add(tt.advance)
			defer e.clock.Add(-tt.advance)
			r := httptest.NewRequest("GET", "/subscriptions", nil)
			if tt.header != "-" {
				r.Header.Set("Authorization", tt.header)
			}
			auds := tt.audiences
			if auds == nil {
				auds = []string{AudienceManagement}
			}
			c, err := e.svc.Authenticate(ctx, r, auds...)
			if err == nil {
				t.Fatalf("accepted, caller %v", c.Principal.ID)
			}
			if got, want := keyhold.ErrorCode(err), keyhold.EUnauthenticated; got != want {
				t.Errorf("code = %q, want %q (%v)", got, want, err)
			}
			if got := keyhold.ErrorDetail(err); got != tt.wantDetail {
				t.Errorf("detail = %q, want %q (%v)", got, tt.wantDetail, err)
			}
			if !strings.Contains(keyhold.ErrorMessage(err), tt.wantMsg) {
				t.Errorf("message = %q, want it to contain %q", keyhold.ErrorMessage(err), tt.wantMsg)
			}
		})
	}

	// And the good token passes, within the leeway too.
	for _, d := range []time.Duration{0, time.Hour + 30*time.Second, -30 * time.Second} {
		e.clock.Add(d)
		if _, err := e.svc.AuthenticateToken(ctx, good, AudienceManagement); err != nil {
			t.Errorf("good token at %v: %v", d, err)
		}
		e.clock.Add(-d)
	}
	// Audiences compare without a trailing slash, and none means any of ours.
	for _, auds := range [][]string{{AudienceManagement + "/"}, nil} {
		if _, err := e.svc.AuthenticateToken(ctx, good, auds...); err != nil {
			t.Errorf("audiences %v: %v", auds, err)
		}
	}
}

func TestAuthenticateNestedGroups(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := e.user("carol@" + testDomain)
	inner, _ := e.svc.CreateGroup(ctx, testTenant, "inner")
	outer, _ := e.svc.CreateGroup(ctx, testTenant, "outer")
	if err := e.svc.AddGroupMember(ctx, inner.ID, u.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.AddGroupMember(ctx, outer.ID, inner.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.AddGroupMember(ctx, inner.ID, outer.ID); keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("cycle: err = %v, want EInvalid", err)
	}
	c, err := e.svc.AuthenticateToken(ctx, e.token(u, AudienceGraph), AudienceGraph)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, g := range c.GroupIDs {
		got[g] = true
	}
	if len(got) != 2 || !got[inner.ID] || !got[outer.ID] {
		t.Errorf("groups = %v, want %s and %s", c.GroupIDs, inner.ID, outer.ID)
	}
}

func TestRestartKeepsSigningKey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sp, _ := e.sp("app")
	tok := e.token(sp, AudienceManagement)
	restarted := e.newService()
	if restarted.kid != e.svc.kid {
		t.Errorf("kid changed on restart: %q -> %q", e.svc.kid, restarted.kid)
	}
	if _, err := restarted.AuthenticateToken(ctx, tok, AudienceManagement); err != nil {
		t.Errorf("restarted service refuses an old token: %v", err)
	}

	// Another master key cannot open the stored keys: refuse to start rather
	// than make new ones and orphan every secret.
	k2, _ := seal.NewKey(seal.GenerateMasterKey())
	if _, err := New(ctx, e.store, k2, Config{PublicURL: e.srv.URL + "/"}); err == nil {
		t.Error("New with another master key succeeded")
	}
	// A fresh store has a fresh key, which does not verify the old token.
	e2 := newEnv(t)
	if _, err := e2.svc.AuthenticateToken(ctx, tok); keyhold.ErrorDetail(err) != DetailInvalidToken {
		t.Errorf("another issuer's token: err = %v, want InvalidAuthenticationToken", err)
	}
}

func TestIssueToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	mi, err := e.svc.CreateManagedIdentity(ctx, nil, testTenant, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/p1", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateManagedIdentity(ctx, nil, testTenant, strings.ToUpper(mi.ResourceID), "again"); keyhold.ErrorCode(err) != keyhold.EConflict {
		t.Errorf("second identity for the resource: err = %v, want EConflict", err)
	}
	tok, exp, err := e.svc.IssueToken(ctx, mi, AudienceVault+"/")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := exp, e.clock.Now().Add(time.Hour); got.Sub(want).Abs() > time.Second {
		t.Errorf("expires %v, want %v", got, want)
	}
	c, err := e.svc.AuthenticateToken(ctx, tok, AudienceVault)
	if err != nil {
		t.Fatal(err)
	}
	if c.Principal.ID != mi.ID || c.ClientID != mi.AppID {
		t.Errorf("caller %s/%s, want %s/%s", c.Principal.ID, c.ClientID, mi.ID, mi.AppID)
	}
	if got := payload(t, tok)["xms_mirid"]; got != mi.ResourceID {
		t.Errorf("xms_mirid = %v, want %v", got, mi.ResourceID)
	}
	if _, _, err := e.svc.IssueToken(ctx, mi, "https://elsewhere.example"); keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("unknown audience: err = %v, want EInvalid", err)
	}
	// A managed identity has no secret, so the token endpoint never serves it.
	status, body, _ := e.post(testTenant, map[string][]string{"grant_type": {"client_credentials"}, "client_id": {mi.AppID},
		"client_secret": {"anything-at-all-anything-at-all-anything"}, "scope": {AudienceVault + "/.default"}})
	if status != 401 || body["error"] != "invalid_client" {
		t.Errorf("managed identity via client credentials: %d %v", status, body)
	}
}
