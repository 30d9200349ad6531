package identity

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
)

// fuzzSeed makes the fuzz env's ids and secrets the same on every run, so
// that the checked-in corpus under testdata/fuzz can carry a client id and
// secret that really exist and reach the success paths.
var fuzzSeed = [32]byte{'k', 'e', 'y', 'h', 'o', 'l', 'd'}

// fuzzEnv makes a service with one service principal and one user; it
// returns the client id and secret.
func fuzzEnv(f *testing.F) (*env, string, string) {
	e := newEnvRand(f, rand.NewChaCha8(fuzzSeed))
	sp, secret := e.sp("fuzz app")
	e.user("fuzz@" + testDomain)
	return e, sp.AppID, secret
}

var fuzzTenants = []string{testTenant, "common", "organizations", testDomain, "unknown", "0b0b0b0b-0000-4000-8000-000000000000"}

// FuzzTokenRequest feeds arbitrary bodies and content types to the token
// endpoint. It must never panic or answer 500, and every answer must be a
// token or an error in the identity platform's shape.
func FuzzTokenRequest(f *testing.F) {
	e, appID, secret := fuzzEnv(f)
	form := "application/x-www-form-urlencoded"
	f.Add([]byte(ccForm(appID, secret, AudienceManagement+"/.default").Encode()), form, uint8(0))
	f.Add([]byte(pwForm("fuzz@"+testDomain, testPass).Encode()), form+"; charset=utf-8", uint8(2))
	f.Add([]byte("grant_type=refresh_token&client_id="+cliClient+"&refresh_token=KH1.AAAA"), form, uint8(1))
	f.Add([]byte("grant_type=client_credentials&client_id=x&client_id=y"), form, uint8(3))
	f.Add([]byte(`{"grant_type":"client_credentials"}`), "application/json", uint8(0))
	f.Add([]byte("%zz=%"), form, uint8(4))
	h := e.svc.Handler()
	f.Fuzz(func(t *testing.T, body []byte, contentType string, tenant uint8) {
		req := httptest.NewRequest("POST", "/"+fuzzTenants[int(tenant)%len(fuzzTenants)]+"/oauth2/v2.0/token", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatalf("status %d, body not JSON: %v: %q", rec.Code, err, rec.Body)
		}
		switch rec.Code {
		case http.StatusOK:
			if s, _ := out["access_token"].(string); s == "" {
				t.Fatalf("200 without an access token: %v", out)
			}
		default:
			if s, _ := out["error"].(string); s == "" {
				t.Fatalf("status %d without an error code: %v", rec.Code, out)
			}
			if strings.Contains(rec.Body.String(), secret) {
				t.Fatal("an error echoes the client secret")
			}
		}
	})
}

// FuzzBearerToken feeds arbitrary Authorization headers to Authenticate. It
// must never panic, and every refusal must be an authentication error, never
// an internal one.
func FuzzBearerToken(f *testing.F) {
	e, _, _ := fuzzEnv(f)
	sp, _ := e.sp("holder")
	good := e.token(sp, AudienceManagement)
	f.Add("Bearer " + good)
	parts := strings.Split(good, ".")
	f.Add("Bearer " + parts[0] + "." + parts[1] + ".")
	f.Add("bearer " + parts[0] + "..")
	f.Add("Bearer " + b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".")
	f.Add("Basic Zm9vOmJhcg==")
	f.Add("")
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, header string) {
		req := httptest.NewRequest("GET", "/subscriptions", nil)
		req.Header["Authorization"] = []string{header}
		c, err := e.svc.Authenticate(ctx, req, AudienceManagement)
		if err == nil {
			if c.Principal == nil || c.Principal.ID != sp.ID {
				t.Fatalf("accepted a token for %v", c.Principal)
			}
			return
		}
		if code := keyhold.ErrorCode(err); code != keyhold.EUnauthenticated {
			t.Fatalf("code %q: %v", code, err)
		}
		if d := keyhold.ErrorDetail(err); d != DetailInvalidToken && d != DetailAuthenticationFailed {
			t.Fatalf("detail %q: %v", d, err)
		}
	})
}
