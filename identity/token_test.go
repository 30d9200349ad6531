package identity

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

const cliClient = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

func ccForm(clientID, secret, scope string) url.Values {
	return url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret}, "scope": {scope}}
}

func pwForm(user, pass string) url.Values {
	return url.Values{"grant_type": {"password"}, "client_id": {cliClient}, "username": {user}, "password": {pass},
		"scope": {AudienceManagement + "/.default openid profile offline_access"}, "client_info": {"1"}}
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sp, secret := e.sp("app")
	off, offSecret := e.sp("disabled app")
	yes := true
	if _, err := e.svc.UpdatePrincipal(ctx, off.ID, PrincipalUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	alice := e.user("alice@" + testDomain)
	e.user("dave@"+testDomain, keyhold.RoleGlobalAdministrator) // so that alice may be disabled
	if _, err := e.svc.UpdatePrincipal(ctx, alice.ID, PrincipalUpdate{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	e.user("bob@" + testDomain)
	mgmt := AudienceManagement + "/.default"

	with := func(v url.Values, k, val string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = vs
		}
		if val == "" {
			out.Del(k)
		} else {
			out.Set(k, val)
		}
		return out
	}
	tests := []struct {
		name       string
		tenant     string
		form       url.Values
		wantStatus int
		wantError  string
		wantCode   int
	}{
		{"no grant type", testTenant, with(ccForm(sp.AppID, secret, mgmt), "grant_type", ""), 400, "invalid_request", 900144},
		{"no client id", testTenant, with(ccForm(sp.AppID, secret, mgmt), "client_id", ""), 400, "invalid_request", 900144},
		{"unsupported grant", testTenant, with(ccForm(sp.AppID, secret, mgmt), "grant_type", "authorization_code"), 400, "unsupported_grant_type", 70003},
		{"unknown tenant", "0b0b0b0b-0000-4000-8000-000000000000", ccForm(sp.AppID, secret, mgmt), 400, "invalid_request", 90002},
		{"unknown tenant name", "nowhere", ccForm(sp.AppID, secret, mgmt), 400, "invalid_request", 90002},
		{"client credentials at common", "common", ccForm(sp.AppID, secret, mgmt), 400, "invalid_request", 50059},
		{"no scope", testTenant, with(ccForm(sp.AppID, secret, mgmt), "scope", ""), 400, "invalid_request", 900144},
		{"unknown resource", testTenant, ccForm(sp.AppID, secret, "https://management.azure.com/.default"), 400, "invalid_scope", 500011},
		{"scope without .default", testTenant, ccForm(sp.AppID, secret, AudienceManagement+"/user_impersonation"), 400, "invalid_scope", 1002012},
		{"two resources", testTenant, ccForm(sp.AppID, secret, mgmt+" "+AudienceVault+"/.default"), 400, "invalid_scope", 28000},
		{"unknown client", testTenant, ccForm("11111111-2222-4333-8444-555555555555", secret, mgmt), 400, "unauthorized_client", 700016},
		{"no secret", testTenant, with(ccForm(sp.AppID, secret, mgmt), "client_secret", ""), 401, "invalid_client", 7000218},
		{"wrong secret", testTenant, ccForm(sp.AppID, "wrong", mgmt), 401, "invalid_client", 7000215},
		{"disabled app", testTenant, ccForm(off.AppID, offSecret, mgmt), 400, "unauthorized_client", 7000112},
		{"tenant by domain", testDomain, ccForm(sp.AppID, "wrong", mgmt), 401, "invalid_client", 7000215},
		{"wrong password", testTenant, pwForm("bob@"+testDomain, "wrong-password"), 400, "invalid_grant", 50126},
		{"unknown user", testTenant, pwForm("nobody@"+testDomain, "wrong-password"), 400, "invalid_grant", 50126},
		{"not a user name", "organizations", pwForm("nobody", "wrong-password"), 400, "invalid_grant", 50126},
		{"disabled user", testTenant, pwForm("alice@"+testDomain, testPass), 400, "invalid_grant", 50057},
		{"no password", testTenant, with(pwForm("bob@"+testDomain, testPass), "password", ""), 400, "invalid_request", 900144},
		{"no username", testTenant, with(pwForm("bob@"+testDomain, testPass), "username", ""), 400, "invalid_request", 900144},
		{"unknown public client", testTenant, with(pwForm("bob@"+testDomain, testPass), "client_id", "11111111-2222-4333-8444-555555555555"), 400, "unauthorized_client", 700016},
		{"garbage refresh token", testTenant, url.Values{"grant_type": {"refresh_token"}, "client_id": {cliClient}, "refresh_token": {"KH1.AAAA"}}, 400, "invalid_grant", 9002313},
		{"no refresh token", testTenant, url.Values{"grant_type": {"refresh_token"}, "client_id": {cliClient}}, 400, "invalid_request", 900144},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, hdr := e.post(tt.tenant, tt.form)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (%v)", status, tt.wantStatus, body)
			}
			if got := body["error"]; got != tt.wantError {
				t.Errorf("error = %v, want %v", got, tt.wantError)
			}
			codes, _ := body["error_codes"].([]any)
			if len(codes) != 1 || codes[0] != float64(tt.wantCode) {
				t.Errorf("error_codes = %v, want [%d]", body["error_codes"], tt.wantCode)
			}
			desc, _ := body["error_description"].(string)
			if !strings.HasPrefix(desc, fmt.Sprintf("AADSTS%d: ", tt.wantCode)) || !strings.Contains(desc, "Trace ID: ") {
				t.Errorf("error_description = %q", desc)
			}
			for _, k := range []string{"timestamp", "trace_id", "correlation_id"} {
				if s, _ := body[k].(string); s == "" {
					t.Errorf("%s missing", k)
				}
			}
			if body["access_token"] != nil {
				t.Error("an error carries an access token")
			}
			if strings.Contains(fmt.Sprint(body), secret) || strings.Contains(fmt.Sprint(body), testPass) {
				t.Error("the error echoes a secret")
			}
			if hdr.Get("Content-Type") == "" {
				t.Error("no content type")
			}
		})
	}
}

func TestTokenRequestShape(t *testing.T) {
	e := newEnv(t)
	sp, secret := e.sp("app")
	post := func(ct, body string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/"+testTenant+"/oauth2/v2.0/token", strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, decodeBody(t, resp.Body)
	}
	good := ccForm(sp.AppID, secret, AudienceManagement+"/.default").Encode()
	tests := []struct {
		name, ct, body string
		wantStatus     int
	}{
		{"form with charset", "application/x-www-form-urlencoded; charset=utf-8", good, 200},
		{"json body", "application/json", `{"grant_type":"client_credentials"}`, 400},
		{"no content type", "", good, 400},
		{"too large", "application/x-www-form-urlencoded", good + "&pad=" + strings.Repeat("a", maxFormBytes), 400},
		{"repeated parameter", "application/x-www-form-urlencoded", good + "&client_id=" + sp.AppID, 400},
		{"bad escape", "application/x-www-form-urlencoded", "grant_type=%zz", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := post(tt.ct, tt.body)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (%v)", status, tt.wantStatus, body)
			}
		})
	}
}

func TestPasswordGrantResponse(t *testing.T) {
	e := newEnv(t)
	u := e.user("erin@" + testDomain)
	status, body, hdr := e.post("organizations", pwForm("ERIN@"+testDomain, testPass))
	if status != 200 {
		t.Fatalf("status %d: %v", status, body)
	}
	for _, k := range []string{"access_token", "id_token", "refresh_token", "client_info"} {
		if s, _ := body[k].(string); s == "" {
			t.Errorf("%s missing", k)
		}
	}
	if got, want := body["token_type"], "Bearer"; got != want {
		t.Errorf("token_type = %v, want %v", got, want)
	}
	if got, want := body["expires_in"], float64(3600); got != want {
		t.Errorf("expires_in = %v, want %v", got, want)
	}
	if hdr.Get("Cache-Control") == "" {
		t.Error("token response may be cached")
	}
	ci, _ := b64.DecodeString(body["client_info"].(string))
	var info map[string]string
	json.Unmarshal(ci, &info)
	if info["uid"] != u.ID || info["utid"] != testTenant {
		t.Errorf("client_info = %s", ci)
	}
	id := payload(t, body["id_token"].(string))
	if id["aud"] != cliClient || id["oid"] != u.ID || id["preferred_username"] != u.UserPrincipalName {
		t.Errorf("id token claims = %v", id)
	}

	// The refresh token works until the password changes.
	refresh := func(rt string) (int, map[string]any) {
		st, b, _ := e.post(testTenant, url.Values{"grant_type": {"refresh_token"}, "client_id": {cliClient},
			"refresh_token": {rt}, "scope": {AudienceVault + "/.default openid offline_access"}})
		return st, b
	}
	rt := body["refresh_token"].(string)
	st, b := refresh(rt)
	if st != 200 || payload(t, b["access_token"].(string))["aud"] != AudienceVault {
		t.Fatalf("refresh: %d %v", st, b)
	}
	// Another client cannot redeem it.
	st, b, _ = e.post(testTenant, url.Values{"grant_type": {"refresh_token"}, "client_id": {"1950a258-227b-4e31-a9cf-717495945dc2"},
		"refresh_token": {rt}, "scope": {AudienceVault + "/.default"}})
	if st != 400 || b["error"] != "invalid_grant" {
		t.Errorf("refresh by another client: %d %v", st, b)
	}
	if err := e.svc.SetPassword(context.Background(), u.ID, keyhold.NewSecret([]byte("Another-Pass-77"))); err != nil {
		t.Fatal(err)
	}
	if st, b := refresh(rt); st != 400 || b["error"] != "invalid_grant" {
		t.Errorf("refresh after password change: %d %v", st, b)
	}
	if st, b, _ := e.post(testTenant, pwForm(u.UserPrincipalName, testPass)); st != 400 {
		t.Errorf("old password still works: %d %v", st, b)
	}
	if st, b, _ := e.post(testTenant, pwForm(u.UserPrincipalName, "Another-Pass-77")); st != 200 {
		t.Errorf("new password refused: %d %v", st, b)
	}
	// Expired refresh tokens are refused.
	_, body, _ = e.post(testTenant, pwForm(u.UserPrincipalName, "Another-Pass-77"))
	e.clock.Add(25 * time.Hour)
	if st, b := refresh(body["refresh_token"].(string)); st != 400 || b["error"] != "invalid_grant" {
		t.Errorf("expired refresh token: %d %v", st, b)
	}
}

func TestExpiredClientSecret(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sp, _ := e.sp("app")
	_, sec, err := e.svc.AddClientSecret(ctx, sp.ID, e.clock.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	form := ccForm(sp.AppID, string(sec.Reveal()), AudienceManagement+"/.default")
	if st, b, _ := e.post(testTenant, form); st != 200 {
		t.Fatalf("fresh secret: %d %v", st, b)
	}
	e.clock.Add(2 * time.Hour)
	st, b, _ := e.post(testTenant, form)
	if codes, _ := b["error_codes"].([]any); st != 401 || len(codes) != 1 || codes[0] != float64(7000222) {
		t.Errorf("expired secret: %d %v", st, b)
	}
	if _, _, err := e.svc.AddClientSecret(ctx, sp.ID, e.clock.Now().Add(-time.Minute)); keyhold.ErrorCode(err) != keyhold.EInvalid {
		t.Errorf("secret expiring in the past: err = %v", err)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	sp, secret := e.sp("app")
	good := ccForm(sp.AppID, secret, AudienceManagement+"/.default")
	bad := ccForm(sp.AppID, "wrong", AudienceManagement+"/.default")
	for i := range 5 {
		if st, b, _ := e.post(testTenant, bad); st != 401 || b["error_codes"].([]any)[0] != float64(7000215) {
			t.Fatalf("failure %d: %d %v", i+1, st, b)
		}
	}
	// Locked out: even the right secret is refused, with a hint when to retry.
	st, b, hdr := e.post(testTenant, good)
	if st != 401 || b["error"] != "invalid_client" || b["error_codes"].([]any)[0] != float64(50053) {
		t.Fatalf("right secret while locked: %d %v", st, b)
	}
	if hdr.Get("Retry-After") == "" || !strings.Contains(b["error_description"].(string), "Try again in") {
		t.Errorf("no retry hint: %v %v", hdr, b)
	}
	e.clock.Add(61 * time.Second)
	if st, b, _ := e.post(testTenant, good); st != 200 {
		t.Fatalf("after back-off: %d %v", st, b)
	}

	// Users: a name that exists and one that does not answer alike.
	e.user("frank@" + testDomain)
	for _, name := range []string{"frank@" + testDomain, "ghost@" + testDomain} {
		var got []string
		for range 6 {
			st, b, _ := e.post(testTenant, pwForm(name, "wrong-password"))
			got = append(got, fmt.Sprintf("%d/%v", st, b["error_codes"]))
		}
		want := "[400/[50126] 400/[50126] 400/[50126] 400/[50126] 400/[50126] 400/[50053]]"
		if fmt.Sprint(got) != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
	if st, b, _ := e.post(testTenant, pwForm("frank@"+testDomain, testPass)); st != 400 || b["error_codes"].([]any)[0] != float64(50053) {
		t.Errorf("right password while locked: %d %v", st, b)
	}
	e.clock.Add(61 * time.Second)
	if st, b, _ := e.post(testTenant, pwForm("frank@"+testDomain, testPass)); st != 200 {
		t.Errorf("right password after back-off: %d %v", st, b)
	}
}

func TestLimiter(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	l := newLimiter(3, time.Minute)
	tests := []struct {
		at         time.Duration
		fail       bool
		wantLocked bool
	}{
		{0, true, false},
		{0, true, false},
		{0, true, true}, // third failure empties the bucket
		{30 * time.Second, false, true},
		{61 * time.Second, false, false}, // one token back
		{61 * time.Second, true, true},
		{3 * time.Minute, false, false},
	}
	for i, tt := range tests {
		now := start.Add(tt.at)
		if tt.fail {
			l.fail("k", now)
		}
		if _, got := l.locked("k", now); got != tt.wantLocked {
			t.Errorf("step %d: locked = %v, want %v", i, got, tt.wantLocked)
		}
	}
	if _, locked := l.locked("other", start); locked {
		t.Error("an unrelated key is locked")
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	get := func(path string) (int, map[string]any) {
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, decodeBody(t, resp.Body)
	}
	st, cfg := get("/" + testTenant + "/v2.0/.well-known/openid-configuration")
	if st != 200 {
		t.Fatalf("openid configuration: %d %v", st, cfg)
	}
	base := e.srv.URL + "/" + testTenant
	for k, want := range map[string]string{"issuer": base + "/v2.0", "token_endpoint": base + "/oauth2/v2.0/token",
		"jwks_uri": base + "/discovery/v2.0/keys", "authorization_endpoint": base + "/oauth2/v2.0/authorize"} {
		if got := cfg[k]; got != want {
			t.Errorf("%s = %v, want %v", k, got, want)
		}
	}
	if st, cfg := get("/organizations/v2.0/.well-known/openid-configuration"); st != 200 || cfg["issuer"] != e.srv.URL+"/{tenantid}/v2.0" {
		t.Errorf("organizations: %d %v", st, cfg)
	}
	if st, _ := get("/0b0b0b0b-0000-4000-8000-000000000000/v2.0/.well-known/openid-configuration"); st != 400 {
		t.Errorf("unknown tenant: %d", st)
	}

	// The published key verifies an issued token.
	st, set := get("/" + testTenant + "/discovery/v2.0/keys")
	keys, _ := set["keys"].([]any)
	if st != 200 || len(keys) != 1 {
		t.Fatalf("jwks: %d %v", st, set)
	}
	k := keys[0].(map[string]any)
	n, _ := b64.DecodeString(k["n"].(string))
	eb, _ := b64.DecodeString(k["e"].(string))
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(eb).Int64())}
	sp, _ := e.sp("app")
	tok := e.token(sp, AudienceManagement)
	parts := strings.Split(tok, ".")
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, _ := b64.DecodeString(parts[2])
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("JWKS key does not verify a token: %v", err)
	}
	if k["kid"] != e.svc.kid || k["alg"] != "RS256" || k["kty"] != "RSA" {
		t.Errorf("jwk = %v", k)
	}

	// The user realm does not tell whether a user exists.
	e.user("alice@" + testDomain)
	_, known := get("/common/UserRealm/alice@" + testDomain + "?api-version=1.0")
	_, unknown := get("/common/userrealm/nobody@" + testDomain + "?api-version=1.0")
	if fmt.Sprint(known) != fmt.Sprint(unknown) || known["account_type"] != "Managed" || known["domain_name"] != testDomain {
		t.Errorf("user realm: known %v, unknown %v", known, unknown)
	}
	if st, disc := get("/common/discovery/instance?api-version=1.1&authorization_endpoint=" + url.QueryEscape(base+"/oauth2/v2.0/authorize")); st != 200 ||
		disc["tenant_discovery_endpoint"] != base+"/v2.0/.well-known/openid-configuration" {
		t.Errorf("instance discovery: %d %v", st, disc)
	}
}
