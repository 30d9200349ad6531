package keyvault_test

import (
	"encoding/json"
	"testing"
)

// The fuzz targets send arbitrary bodies to the operations that parse the
// richest input. Whatever arrives, the answer is a success or a 4xx in Key
// Vault's error shape: never a panic, never a 5xx.

func fuzzBody(f *testing.F, method, path string, setup func(e *unitEnv), seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	e := newUnitEnv(f)
	putVault(f, e.store, "kv-fuzz", testTenant, nil)
	must(f, e.call(caller(ownerOID), "POST", "/vaults/kv-fuzz/keys/rsa/create", `{"kty":"RSA"}`), 200)
	must(f, e.call(caller(ownerOID), "POST", "/vaults/kv-fuzz/keys/ec/create", `{"kty":"EC","crv":"P-256"}`), 200)
	if setup != nil {
		setup(e)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := e.callT(t, caller(ownerOID), method, path, body)
		if r.status >= 500 {
			t.Fatalf("status %d for body %q: %s", r.status, body, r.body)
		}
		if r.status >= 400 {
			var shape struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if err := json.Unmarshal(r.body, &shape); err != nil || shape.Error.Code == "" || shape.Error.Message == "" {
				t.Fatalf("status %d without an Azure error body: %s", r.status, r.body)
			}
			if r.status == 400 && shape.Error.Code != "BadParameter" {
				t.Fatalf("400 with code %q, want BadParameter", shape.Error.Code)
			}
		}
	})
}

func FuzzCreateBody(f *testing.F) {
	fuzzBody(f, "POST", "/vaults/kv-fuzz/keys/fuzzed/create", nil,
		`{"kty":"EC","crv":"P-384","key_ops":["sign"],"attributes":{"enabled":false,"nbf":1,"exp":2},"tags":{"a":"b"}}`,
		`{"kty":"RSA","key_size":2048,"public_exponent":65537}`,
		`{"kty":"EC","key_size":521}`,
		`{"kty":"RSA-HSM"}`, `{"kty":"oct","key_size":256}`, `{"kty":null}`, `{"attributes":[]}`, `null`, `"x"`, ``)
}

func FuzzImportBody(f *testing.F) {
	fuzzBody(f, "PUT", "/vaults/kv-fuzz/keys/imported", nil,
		`{"key":{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"},"Hsm":false}`,
		`{"key":{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQ"}}`,
		`{"key":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}}`,
		`{"key":{"kty":"RSA","key_ops":["bogus"]}}`, `{"key":null}`, `{"key":{},"Hsm":true}`, `{}`, `[]`)
}

func FuzzWrapBody(f *testing.F) {
	fuzzBody(f, "POST", "/vaults/kv-fuzz/keys/rsa/wrapkey", nil,
		`{"alg":"RSA-OAEP-256","value":"AAECAwQFBgcICQoLDA0ODw"}`,
		`{"alg":"RSA1_5","value":"AAECAwQFBgcICQoLDA0ODw=="}`,
		`{"alg":"RSA-OAEP","value":"+/+/"}`,
		`{"alg":"A256KW","value":"AA"}`, `{"alg":"RSA-OAEP"}`, `{"value":"AA"}`, `{"alg":1}`, `{`)
}

func FuzzSignBody(f *testing.F) {
	fuzzBody(f, "POST", "/vaults/kv-fuzz/keys/ec/sign", nil,
		`{"alg":"ES256","value":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}`,
		`{"alg":"RS256","value":"47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"}`,
		`{"alg":"ES256","value":"AA"}`, `{"alg":"ES256K","value":"AA"}`, `{"alg":"","value":""}`, `{"value":null}`)
}
