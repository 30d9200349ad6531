package keyvault_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/keyvault"
)

var b64url = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)

func TestCreateKeyWireShape(t *testing.T) {
	e := newUnitEnv(t)
	putVault(t, e.store, "kv-shape", testTenant, nil)
	r := must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-shape/keys/cmk/create",
		`{"kty":"RSA","key_size":2048,"attributes":{},"tags":{"purpose":"unit test"}}`), 200)

	// Decode into the exact types the Azure SDK for Go uses: int64 times.
	var b struct {
		Key struct {
			KID    string   `json:"kid"`
			Kty    string   `json:"kty"`
			KeyOps []string `json:"key_ops"`
			N      string   `json:"n"`
			E      string   `json:"e"`
			D      *string  `json:"d"`
		} `json:"key"`
		Attributes struct {
			Enabled         bool   `json:"enabled"`
			Created         int64  `json:"created"`
			Updated         int64  `json:"updated"`
			RecoveryLevel   string `json:"recoveryLevel"`
			RecoverableDays int32  `json:"recoverableDays"`
		} `json:"attributes"`
		Tags map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("the SDK's types cannot decode %s: %v", r.body, err)
	}
	kidRE := regexp.MustCompile(`^https://` + regexp.QuoteMeta(testHost) + `/vaults/kv-shape/keys/cmk/[0-9a-f]{32}$`)
	if !kidRE.MatchString(b.Key.KID) {
		t.Errorf("kid = %q, want the request's host and a 32-hex version", b.Key.KID)
	}
	if got, want := strings.Join(b.Key.KeyOps, ","), "encrypt,decrypt,sign,verify,wrapKey,unwrapKey"; got != want {
		t.Errorf("key_ops = %s, want the full RSA default %s", got, want)
	}
	if !b64url.MatchString(b.Key.N) || !b64url.MatchString(b.Key.E) || b.Key.E != "AQAB" {
		t.Errorf("n/e not unpadded base64url: n=%.20s... e=%q", b.Key.N, b.Key.E)
	}
	if n, _ := base64.RawURLEncoding.DecodeString(b.Key.N); new(big.Int).SetBytes(n).BitLen() != 2048 {
		t.Errorf("modulus is not 2048 bits")
	}
	if b.Key.D != nil || strings.Contains(string(r.body), `"d"`) {
		t.Errorf("the response carries a private member: %s", r.body)
	}
	if want := e.clock.Now().Unix(); b.Attributes.Created != want || b.Attributes.Updated != want {
		t.Errorf("created/updated = %d/%d, want %d", b.Attributes.Created, b.Attributes.Updated, want)
	}
	if !b.Attributes.Enabled || b.Attributes.RecoveryLevel != "Recoverable+Purgeable" || b.Attributes.RecoverableDays != 90 {
		t.Errorf("attributes = %+v", b.Attributes)
	}
	if b.Tags["purpose"] != "unit test" {
		t.Errorf("tags = %v", b.Tags)
	}
	if strings.Contains(string(r.body), ".") && regexp.MustCompile(`"(created|updated)":\d+\.`).Match(r.body) {
		t.Errorf("fractional timestamps in %s", r.body)
	}
	evs := e.drain()
	if len(evs) != 1 || evs[0].Kind != events.KeyCreated || evs[0].Scope != vaultID("kv-shape")+"/keys/cmk" || evs[0].TenantID != testTenant {
		t.Errorf("events = %+v, want one KeyCreated for the key's resource id", evs)
	}
}

func TestRoutes(t *testing.T) {
	e := newUnitEnv(t)
	putVault(t, e.store, "kv-routes", testTenant, nil)
	c := caller(ownerOID)
	b := must(t, e.call(c, "POST", "/vaults/kv-routes/keys/Route-Key/create", `{"kty":"RSA"}`), 200).json(t)
	kid := b["key"].(map[string]any)["kid"].(string)
	version := kid[strings.LastIndex(kid, "/")+1:]
	wrap := `{"alg":"RSA-OAEP-256","value":"AAECAwQFBgcICQoLDA0ODw"}`

	tests := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/vaults/kv-routes/keys/route-key/", "", 200},
		{"GET", "/vaults/kv-routes/keys/route-key", "", 200},
		{"GET", "/vaults/kv-routes/keys/route-key/" + version, "", 200},
		{"GET", "/vaults/kv-routes/keys/route-key/" + version + "/", "", 200},
		{"GET", "/vaults/KV-ROUTES/Keys/route-key/", "", 200},
		{"POST", "/vaults/kv-routes/keys/route-key/wrapkey", wrap, 200},
		{"POST", "/vaults/kv-routes/keys/route-key/wrapKey", wrap, 200},
		{"POST", "/vaults/kv-routes/keys/route-key/WRAPKEY", wrap, 200},
		{"POST", "/vaults/kv-routes/keys/route-key/" + version + "/wrapKey", wrap, 200},
		{"GET", "/vaults/kv-routes/keys/route-key/versions", "", 200},
		{"GET", "/vaults/kv-routes/keys", "", 200},
		{"GET", "/vaults/kv-routes/keys/", "", 200},
		{"GET", "/vaults/kv-routes/deletedkeys", "", 200},
		{"GET", "/vaults/kv-routes/keys/route-key/rotationpolicy", "", 200},
		{"POST", "/vaults/kv-routes/rng", `{"count":16}`, 200},
		{"GET", "/vaults/kv-routes/keys/route-key/" + strings.Repeat("0", 32), "", 404},
		{"GET", "/vaults/kv-routes/keys/route-key/not-a-version", "", 404},
		{"GET", "/vaults/kv-routes/keys/no-such-key/", "", 404},
		{"GET", "/vaults/kv-routes/secrets/x", "", 404},
		{"GET", "/vaults/no-such-vault/keys", "", 404},
		{"GET", "/vaults/kv-routes/keys/bad_name/", "", 400},
		{"DELETE", "/vaults/kv-routes/keys/route-key/wrapkey", "", 400},
		{"POST", "/vaults/kv-routes/keys/route-key/backup", "", 400},
		{"POST", "/vaults/kv-routes/keys/restore", `{"value":"AA"}`, 400},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := e.call(c, tt.method, tt.path, body)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if r.status >= 400 {
				r.errorCodes(t)
			}
		})
	}
}

func TestAPIVersions(t *testing.T) {
	e := newUnitEnv(t)
	putVault(t, e.store, "kv-versions", testTenant, nil)
	tests := []struct {
		version string
		want    int
	}{
		{"7.0", 200}, {"7.4", 200}, {"7.5", 200}, {"7.6", 200}, {"7.6-preview.2", 200},
		{"2025-07-01", 200}, {"2026-02-01-preview", 200},
		{"7.7", 400}, {"6.0", 400}, {"2016-10-01", 400}, {"latest", 400}, {"", 400},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			r := e.call(caller(ownerOID), "GET", "/vaults/kv-versions/keys?api-version="+url.QueryEscape(tt.version), nil)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if tt.want == 400 {
				code, _ := r.errorCodes(t)
				if code != "BadParameter" {
					t.Errorf("code %q, want BadParameter", code)
				}
				if tt.version != "" && !strings.Contains(string(r.body), "The specified version ("+tt.version+") is not recognized.") {
					t.Errorf("message %s lacks the real service's words", r.body)
				}
			}
		})
	}
}

func TestErrorTable(t *testing.T) {
	e := newUnitEnv(t)
	yes := true
	putVault(t, e.store, "kv-errors", testTenant, func(p *keyvault.Properties) {
		p.EnablePurgeProtection = &yes
		p.AccessPolicies = append(p.AccessPolicies, keyvault.AccessPolicy{TenantID: testTenant, ObjectID: otherOID,
			Permissions: keyvault.Permissions{Keys: []string{"get", "list"}}})
	})
	owner := caller(ownerOID)
	must(t, e.call(owner, "POST", "/vaults/kv-errors/keys/wraponly/create", `{"kty":"RSA","key_ops":["wrapKey"]}`), 200)
	must(t, e.call(owner, "POST", "/vaults/kv-errors/keys/disabled/create", `{"kty":"RSA","attributes":{"enabled":false}}`), 200)
	now := e.clock.Now().Unix()
	must(t, e.call(owner, "POST", "/vaults/kv-errors/keys/expired/create", fmt.Sprintf(`{"kty":"RSA","attributes":{"exp":%d}}`, now-10)), 200)
	must(t, e.call(owner, "POST", "/vaults/kv-errors/keys/future/create", fmt.Sprintf(`{"kty":"RSA","attributes":{"nbf":%d}}`, now+3600)), 200)
	must(t, e.call(owner, "POST", "/vaults/kv-errors/keys/gone/create", `{"kty":"EC"}`), 200)
	must(t, e.call(owner, "DELETE", "/vaults/kv-errors/keys/gone", nil), 200)
	unwrap := `{"alg":"RSA-OAEP","value":"AAAA"}`

	tests := []struct {
		name                string
		c                   *keyhold.Caller
		method, path, body  string
		status              int
		code, inner, phrase string
	}{
		{"op not in key_ops", owner, "POST", "/vaults/kv-errors/keys/wraponly/decrypt", unwrap, 403, "Forbidden", "KeyOperationForbidden", "Operation decrypt is not permitted on this key."},
		{"disabled", owner, "POST", "/vaults/kv-errors/keys/disabled/wrapkey", unwrap, 403, "Forbidden", "KeyDisabled", "disabled key"},
		{"expired", owner, "POST", "/vaults/kv-errors/keys/expired/wrapkey", unwrap, 403, "Forbidden", "KeyExpired", "expired"},
		{"not yet valid", owner, "POST", "/vaults/kv-errors/keys/future/wrapkey", unwrap, 403, "Forbidden", "KeyNotYetValid", "not yet valid"},
		{"missing key", owner, "GET", "/vaults/kv-errors/keys/nope/", "", 404, "KeyNotFound", "", "A key with (name/id) nope was not found in this key vault."},
		{"deleted key is not found", owner, "GET", "/vaults/kv-errors/keys/gone/", "", 404, "KeyNotFound", "", "was not found"},
		{"missing deleted key", owner, "GET", "/vaults/kv-errors/deletedkeys/nope", "", 404, "KeyNotFound", "", "Deleted Key not found: nope"},
		{"create over a deleted name", owner, "POST", "/vaults/kv-errors/keys/gone/create", `{"kty":"EC"}`, 409, "Conflict", "ObjectIsDeletedButRecoverable", "Key gone is currently in a deleted but recoverable state"},
		{"import over a deleted name", owner, "PUT", "/vaults/kv-errors/keys/GONE", importBody(t), 409, "Conflict", "ObjectIsDeletedButRecoverable", "can only be recovered or purged"},
		{"purge under purge protection", owner, "DELETE", "/vaults/kv-errors/deletedkeys/gone", "", 403, "Forbidden", "", `Operation "purge" is not allowed because purge protection is enabled for this vault.`},
		{"no permission", caller(otherOID), "POST", "/vaults/kv-errors/keys/wraponly/wrapkey", unwrap, 403, "Forbidden", "ForbiddenByPolicy", "does not have keys wrapKey permission on key vault 'kv-errors;location=westus'"},
		{"no policy at all", caller("33333333-3333-4333-8333-333333333333"), "GET", "/vaults/kv-errors/keys", "", 403, "Forbidden", "ForbiddenByPolicy", "keys list permission"},
		{"bad alg", owner, "POST", "/vaults/kv-errors/keys/wraponly/wrapkey", `{"alg":"A256KW","value":"AAAA"}`, 400, "BadParameter", "", "A256KW"},
		{"HSM key without an HSM", owner, "POST", "/vaults/kv-errors/keys/hsm/create", `{"kty":"RSA-HSM"}`, 400, "BadParameter", "", "premium"},
		{"oct key", owner, "POST", "/vaults/kv-errors/keys/oct/create", `{"kty":"oct"}`, 400, "BadParameter", "", "not supported"},
		{"rsa 1024", owner, "POST", "/vaults/kv-errors/keys/small/create", `{"kty":"RSA","key_size":1024}`, 400, "BadParameter", "", "1024"},
		{"exportable", owner, "POST", "/vaults/kv-errors/keys/exp/create", `{"kty":"RSA","attributes":{"exportable":true}}`, 400, "BadParameter", "", "never leaves"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			r := e.call(tt.c, tt.method, tt.path, body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.status, tt.status, r.body)
			}
			code, inner := r.errorCodes(t)
			if code != tt.code || inner != tt.inner {
				t.Errorf("code/inner = %q/%q, want %q/%q (%s)", code, inner, tt.code, tt.inner, r.body)
			}
			if got := r.header.Get("x-ms-error-code"); got != tt.code {
				t.Errorf("x-ms-error-code = %q, want %q", got, tt.code)
			}
			if msg := r.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tt.phrase) {
				t.Errorf("message %q lacks %q", msg, tt.phrase)
			}
		})
	}
}

// importBody is an import request for a fresh RSA key.
func importBody(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return string(mustJSON(t, map[string]any{"key": rsaJWK(k, nil)}))
}

func rsaJWK(k *rsa.PrivateKey, ops []string) map[string]any {
	enc := base64.RawURLEncoding.EncodeToString
	k.Precompute()
	m := map[string]any{
		"kty": "RSA", "n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes()), "d": enc(k.D.Bytes()),
		"p": enc(k.Primes[0].Bytes()), "q": enc(k.Primes[1].Bytes()),
		"dp": enc(k.Precomputed.Dp.Bytes()), "dq": enc(k.Precomputed.Dq.Bytes()), "qi": enc(k.Precomputed.Qinv.Bytes()),
	}
	if ops != nil {
		m["key_ops"] = ops
	}
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportAndCryptoAgainstStandardLibrary(t *testing.T) {
	e := newUnitEnv(t)
	putVault(t, e.store, "kv-import", testTenant, nil)
	owner := caller(ownerOID)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// "Hsm": false with a capital H, as the SDKs send it.
	body := mustJSON(t, map[string]any{"key": rsaJWK(k, nil), "Hsm": false})
	b := must(t, e.call(owner, "PUT", "/vaults/kv-import/keys/byok", body), 200).json(t)
	key := b["key"].(map[string]any)
	if key["kty"] != "RSA" || len(key["key_ops"].([]any)) != 6 {
		t.Errorf("imported key = %v, want RSA with the six default key_ops", key)
	}
	if _, ok := key["d"]; ok {
		t.Fatalf("import echoed the private exponent")
	}

	// Unwrap what the standard library wrapped, and decrypt back what the
	// vault wrapped.
	cek := []byte("0123456789abcdef0123456789abcdef")
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &k.PublicKey, cek, nil)
	r := must(t, e.call(owner, "POST", "/vaults/kv-import/keys/byok/unwrapkey",
		map[string]string{"alg": "RSA-OAEP-256", "value": base64.RawURLEncoding.EncodeToString(ct)}), 200).json(t)
	if got, _ := base64.RawURLEncoding.DecodeString(r["value"].(string)); string(got) != string(cek) {
		t.Errorf("unwrap = %q, want %q", got, cek)
	}
	if !strings.HasSuffix(r["kid"].(string), "/keys/byok/"+lastSegment(key["kid"].(string))) {
		t.Errorf("result kid %v is not the versioned kid %v", r["kid"], key["kid"])
	}
	// Padded standard base64 is accepted on input.
	r = must(t, e.call(owner, "POST", "/vaults/kv-import/keys/byok/wrapkey",
		map[string]string{"alg": "RSA-OAEP-256", "value": base64.StdEncoding.EncodeToString(cek)}), 200).json(t)
	wrapped, err := base64.RawURLEncoding.DecodeString(r["value"].(string))
	if err != nil {
		t.Fatalf("wrapped value %q is not unpadded base64url: %v", r["value"], err)
	}
	pt, err := rsa.DecryptOAEP(sha256.New(), nil, k, wrapped, nil)
	if err != nil || string(pt) != string(cek) {
		t.Errorf("the standard library cannot unwrap the vault's wrap: %v", err)
	}

	// Sign and verify.
	digest := sha256.Sum256([]byte("hello"))
	r = must(t, e.call(owner, "POST", "/vaults/kv-import/keys/byok/sign",
		map[string]string{"alg": "RS256", "value": base64.RawURLEncoding.EncodeToString(digest[:])}), 200).json(t)
	sig, _ := base64.RawURLEncoding.DecodeString(r["value"].(string))
	if err := rsa.VerifyPKCS1v15(&k.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		t.Errorf("the vault's RS256 signature does not verify: %v", err)
	}
	for _, tt := range []struct {
		sig  []byte
		want bool
	}{{sig, true}, {append([]byte{sig[0] ^ 1}, sig[1:]...), false}} {
		r = must(t, e.call(owner, "POST", "/vaults/kv-import/keys/byok/verify", map[string]string{"alg": "RS256",
			"digest": base64.RawURLEncoding.EncodeToString(digest[:]), "value": base64.RawURLEncoding.EncodeToString(tt.sig)}), 200).json(t)
		if r["value"] != tt.want {
			t.Errorf("verify = %v, want %v", r["value"], tt.want)
		}
	}
}

func lastSegment(s string) string { return s[strings.LastIndex(s, "/")+1:] }

func TestListPaging(t *testing.T) {
	e := newUnitEnv(t)
	putVault(t, e.store, "kv-paging", testTenant, nil)
	owner := caller(ownerOID)
	for i := range 12 {
		must(t, e.call(owner, "POST", fmt.Sprintf("/vaults/kv-paging/keys/key-%02d/create", i), `{"kty":"EC"}`), 200)
	}
	for range 2 {
		must(t, e.call(owner, "POST", "/vaults/kv-paging/keys/key-03/rotate", nil), 200)
	}
	var names []string
	next := "/vaults/kv-paging/keys?api-version=7.5&maxresults=5"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		r := must(t, e.call(owner, "GET", next, nil), 200)
		var page keyvault.KeyListResult
		if err := json.Unmarshal(r.body, &page); err != nil {
			t.Fatal(err)
		}
		if len(page.Value) > 5 {
			t.Errorf("page of %d items, want at most 5", len(page.Value))
		}
		for _, it := range page.Value {
			if strings.Count(strings.TrimPrefix(it.KID, "https://"), "/") != 4 {
				t.Errorf("list kid %q is not versionless", it.KID)
			}
			names = append(names, lastSegment(it.KID))
		}
		next = ""
		if page.NextLink != nil {
			u, err := url.Parse(*page.NextLink)
			if err != nil || u.Host != testHost || u.Query().Get("api-version") != "7.5" || u.Query().Get("$skiptoken") == "" {
				t.Fatalf("nextLink %q must be absolute on the request's host with api-version and $skiptoken", *page.NextLink)
			}
			next = u.RequestURI()
		}
	}
	if got := strings.Join(names, ","); got != "key-00,key-01,key-02,key-03,key-04,key-05,key-06,key-07,key-08,key-09,key-10,key-11" {
		t.Errorf("listed %s", got)
	}
	r := must(t, e.call(owner, "GET", "/vaults/kv-paging/keys/key-03/versions?api-version=7.6&maxresults=2", nil), 200)
	var page keyvault.KeyListResult
	json.Unmarshal(r.body, &page)
	if len(page.Value) != 2 || page.NextLink == nil || strings.Count(strings.TrimPrefix(page.Value[0].KID, "https://"), "/") != 5 {
		t.Errorf("versions page = %s, want 2 versioned items and a nextLink", r.body)
	}
	for _, bad := range []string{"0", "26", "x"} {
		r := e.call(owner, "GET", "/vaults/kv-paging/keys?api-version=7.6&maxresults="+bad, nil)
		if r.status != 400 {
			t.Errorf("maxresults=%s: status %d, want 400", bad, r.status)
		}
	}
}

func TestUpdateDeleteRecoverPurge(t *testing.T) {
	e := newUnitEnv(t)
	putVault(t, e.store, "kv-life", testTenant, nil)
	owner := caller(ownerOID)
	must(t, e.call(owner, "POST", "/vaults/kv-life/keys/k1/create", `{"kty":"RSA"}`), 200)
	e.drain()
	e.clock.Add(time.Minute)
	exp := e.clock.Now().Add(24 * time.Hour).Unix()
	b := must(t, e.call(owner, "PATCH", "/vaults/kv-life/keys/k1/", fmt.Sprintf(
		`{"key_ops":["decrypt","encrypt"],"attributes":{"enabled":false,"exp":%d},"tags":{"a":"b"}}`, exp)), 200).json(t)
	attrs := b["attributes"].(map[string]any)
	if attrs["enabled"] != false || attrs["exp"] != float64(exp) || attrs["updated"] == attrs["created"] {
		t.Errorf("attributes after update = %v", attrs)
	}
	if ops := b["key"].(map[string]any)["key_ops"].([]any); len(ops) != 2 || ops[0] != "decrypt" {
		t.Errorf("key_ops after update = %v", ops)
	}
	if evs := e.drain(); len(evs) != 1 || evs[0].Kind != events.KeyDisabled {
		t.Errorf("events after disabling = %+v, want KeyDisabled", evs)
	}
	// A disabled key is still readable, as in Key Vault, and can be enabled.
	must(t, e.call(owner, "GET", "/vaults/kv-life/keys/k1", nil), 200)
	must(t, e.call(owner, "PATCH", "/vaults/kv-life/keys/k1", `{"attributes":{"enabled":true}}`), 200)
	if evs := e.drain(); len(evs) != 1 || evs[0].Kind != events.KeyEnabled {
		t.Errorf("events after enabling = %+v, want KeyEnabled", evs)
	}

	d := must(t, e.call(owner, "DELETE", "/vaults/kv-life/keys/k1", nil), 200).json(t)
	if d["recoveryId"] != "https://"+testHost+"/vaults/kv-life/deletedkeys/k1" {
		t.Errorf("recoveryId = %v", d["recoveryId"])
	}
	if got := d["scheduledPurgeDate"].(float64) - d["deletedDate"].(float64); got != 90*24*3600 {
		t.Errorf("scheduledPurgeDate - deletedDate = %v, want 90 days", got)
	}
	must(t, e.call(owner, "GET", "/vaults/kv-life/deletedkeys/k1", nil), 200)
	lst := must(t, e.call(owner, "GET", "/vaults/kv-life/deletedkeys", nil), 200).json(t)
	if v := lst["value"].([]any); len(v) != 1 || v[0].(map[string]any)["recoveryId"] == nil {
		t.Errorf("deleted list = %v", lst)
	}
	must(t, e.call(owner, "POST", "/vaults/kv-life/deletedkeys/k1/recover", nil), 200)
	must(t, e.call(owner, "GET", "/vaults/kv-life/keys/k1/", nil), 200)
	must(t, e.call(owner, "DELETE", "/vaults/kv-life/keys/k1", nil), 200)
	r := e.call(owner, "DELETE", "/vaults/kv-life/deletedkeys/k1", nil)
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("purge: status %d body %q, want 204 and no body", r.status, r.body)
	}
	must(t, e.call(owner, "GET", "/vaults/kv-life/deletedkeys/k1", nil), 404)
	// The name is free again.
	must(t, e.call(owner, "POST", "/vaults/kv-life/keys/k1/create", `{"kty":"RSA"}`), 200)
	kinds := []string{}
	for _, ev := range e.drain() {
		kinds = append(kinds, ev.Kind)
	}
	if got, want := strings.Join(kinds, ","), "KeyDeleted,KeyRecovered,KeyDeleted,KeyPurged,KeyCreated"; got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
}

func TestMalformedBodies(t *testing.T) {
	e := newUnitEnv(t)
	putVault(t, e.store, "kv-bodies", testTenant, nil)
	owner := caller(ownerOID)
	must(t, e.call(owner, "POST", "/vaults/kv-bodies/keys/k/create", `{"kty":"RSA"}`), 200)
	tests := []struct{ path, body, phrase string }{
		{"/keys/k/create", ``, "empty"},
		{"/keys/k/create", `{`, "deserialized"},
		{"/keys/k/create", `[]`, "object"},
		{"/keys/k/create", `{"kty":5}`, "kty"},
		{"/keys/k/create", `{"kty":"RSA","attributes":{"exp":"2020-01-01"}}`, "exp"},
		{"/keys/k/create", `{"kty":"RSA","attributes":{"exp":1.5}}`, "exp"},
		{"/keys/k/create", `{"kty":"RSA","key_ops":["fly"]}`, "fly"},
		{"/keys/k/create", `{"kty":"EC","crv":"P-999"}`, "P-999"},
		{"/keys/k/create", `{"kty":"EC","key_size":2048}`, "2048"},
		{"/keys/k/create", `{"kty":"RSA","public_exponent":4}`, "exponent"},
		{"/keys/k", `{}`, "key"},
		{"/keys/k", `{"key":{"kty":"RSA","n":"AQAB","e":"AQAB"}}`, ""},
		{"/keys/k", `{"key":{"kty":"RSA","n":"!!!"}}`, "base64"},
		{"/keys/k/wrapkey", `{"value":"AAAA"}`, "alg"},
		{"/keys/k/wrapkey", `{"alg":"RSA-OAEP"}`, "value"},
		{"/keys/k/wrapkey", `{"alg":"RSA-OAEP","value":"***"}`, "base64"},
		{"/keys/k/sign", `{"alg":"RS256","value":"AAAA"}`, "digest"},
		{"/keys/k/sign", `{"alg":"ES256","value":"AAAA"}`, "ES256"},
		{"/keys/k/verify", `{"alg":"RS256","value":"AAAA"}`, "digest"},
		{"/keys/k/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P1D"},"action":{"type":"Explode"}}]}`, "Explode"},
		{"/rng", `{"count":0}`, "count"},
		{"/rng", `{"count":129}`, "count"},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.body, func(t *testing.T) {
			method := "POST"
			switch {
			case tt.path == "/keys/k":
				method = "PUT"
			case strings.HasSuffix(tt.path, "rotationpolicy"):
				method = "PUT"
			}
			r := e.call(owner, method, "/vaults/kv-bodies"+tt.path, tt.body)
			if r.status != 400 {
				t.Fatalf("status %d, want 400: %s", r.status, r.body)
			}
			if code, _ := r.errorCodes(t); code != "BadParameter" {
				t.Errorf("code %q, want BadParameter", code)
			}
			if !strings.Contains(string(r.body), tt.phrase) {
				t.Errorf("body %s does not name %q", r.body, tt.phrase)
			}
		})
	}
}

func TestFirewallAndRBAC(t *testing.T) {
	e := newUnitEnv(t)
	ctx := t.Context()
	yes := true
	putVault(t, e.store, "kv-fw", testTenant, func(p *keyvault.Properties) {
		p.NetworkACLs = &keyvault.NetworkRuleSet{DefaultAction: "Deny", Bypass: "AzureServices", IPRules: []keyvault.IPRule{{Value: "198.51.100.0/24"}}}
	})
	r := e.call(caller(ownerOID), "GET", "/vaults/kv-fw/keys", nil)
	if code, inner := r.errorCodes(t); r.status != 403 || code != "Forbidden" || inner != "ForbiddenByFirewall" ||
		!strings.Contains(string(r.body), "Client address is not authorized and caller is not a trusted service.") {
		t.Errorf("firewall refusal = %d %s", r.status, r.body)
	}
	// A Power Platform enterprise policy's managed identity is trusted.
	mi := caller(ownerOID)
	mi.Principal.Type = keyhold.PrincipalManagedIdentity
	mi.Principal.ResourceID = "/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.PowerPlatform/enterprisePolicies/ep1"
	must(t, e.call(mi, "GET", "/vaults/kv-fw/keys", nil), 200)

	putVault(t, e.store, "kv-rbac", testTenant, func(p *keyvault.Properties) { p.EnableRbacAuthorization = &yes })
	r = e.call(caller(ownerOID), "POST", "/vaults/kv-rbac/keys/k/create", `{"kty":"RSA"}`)
	if code, inner := r.errorCodes(t); r.status != 403 || code != "Forbidden" || inner != "ForbiddenByRbac" ||
		!strings.Contains(string(r.body), "Action: 'Microsoft.KeyVault/vaults/keys/create/action'") {
		t.Errorf("RBAC refusal = %d %s", r.status, r.body)
	}
	assign := func(name, oid, roleID, scope string) {
		t.Helper()
		err := e.store.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: name, TenantID: testTenant, Scope: scope,
			RoleDefinitionID: roleID, PrincipalID: oid, PrincipalType: keyhold.PrincipalServicePrincipal})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Crypto Officer on the vault; Crypto Service Encryption User on one key.
	assign("a0000000-0000-4000-8000-000000000001", ownerOID, "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", vaultID("kv-rbac"))
	must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-rbac/keys/k/create", `{"kty":"RSA"}`), 200)
	must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-rbac/keys/k2/create", `{"kty":"RSA"}`), 200)
	assign("a0000000-0000-4000-8000-000000000002", otherOID, "e147488a-f6f5-4113-8e2d-b22465e65bf6", vaultID("kv-rbac")+"/keys/k")
	wrap := `{"alg":"RSA-OAEP-256","value":"AAECAwQFBgcICQoLDA0ODw"}`
	must(t, e.call(caller(otherOID), "POST", "/vaults/kv-rbac/keys/k/wrapkey", wrap), 200)
	must(t, e.call(caller(otherOID), "POST", "/vaults/kv-rbac/keys/k2/wrapkey", wrap), 403)
	must(t, e.call(caller(otherOID), "POST", "/vaults/kv-rbac/keys/k/sign", `{"alg":"RS256","value":"AAAA"}`), 403)
	// Access policies do not count on an RBAC vault.
	must(t, e.call(caller(ownerOID), "POST", "/vaults/kv-rbac/keys/k/wrapkey", wrap), 200)
}
