package keycrypto_test

import (
	"encoding/json"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// FuzzImportJWK feeds arbitrary JSON through json.Unmarshal and ImportJWK,
// as an import request would go. It must never panic, and every refusal
// must be EInvalid so that the vault answers 400, not 500.
func FuzzImportJWK(f *testing.F) {
	f.Add([]byte(`{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQ","p":"Aw","q":"BQ"}`))
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"AQ","y":"Ag","d":"Aw"}`))
	f.Add([]byte(`{"kty":"EC","crv":"P-256K","x":"","y":"","d":""}`))
	f.Add([]byte(`{"kty":"oct","k":"AAAA"}`))
	f.Add([]byte(`{"kty":"RSA","e":"AAAAAAAAAQ==","n":"_w"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var j keycrypto.JWK
		if err := json.Unmarshal(data, &j); err != nil {
			return
		}
		k, err := keycrypto.ImportJWK(j)
		if err != nil {
			if got := keyhold.ErrorCode(err); got != keyhold.EInvalid {
				t.Fatalf("ImportJWK error code %q (%v), want %q", got, err, keyhold.EInvalid)
			}
			return
		}
		// Whatever imports must be usable and survive a storage round trip.
		back, err := keycrypto.ParsePrivate(k.MarshalPrivate())
		if err != nil || !back.Public().Equal(k.Public()) {
			t.Fatalf("imported key does not survive MarshalPrivate: %v", err)
		}
	})
}

// FuzzUnwrap feeds arbitrary ciphertexts and algorithm names to UnwrapKey
// and UnwrapKeySized. They must never panic, and every failure must be
// EInvalid.
func FuzzUnwrap(f *testing.F) {
	k, _ := importStdRSA(f, 2048)
	ec, _ := importStdEC(f, keycrypto.CurveP256)
	good, err := k.WrapKey(keycrypto.RSAOAEP256, make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(keycrypto.RSAOAEP256, good)
	f.Add(keycrypto.RSAOAEP, good)
	f.Add(keycrypto.RSA15, good)
	f.Add(keycrypto.RSA15, []byte{})
	f.Add("ES256", []byte{1, 2, 3})
	f.Add("A256KW", make([]byte, 40))
	f.Fuzz(func(t *testing.T, alg string, ct []byte) {
		for _, key := range []*keycrypto.PrivateKey{k, ec} {
			if _, err := key.UnwrapKey(alg, ct); err != nil && keyhold.ErrorCode(err) != keyhold.EInvalid {
				t.Fatalf("UnwrapKey(%q) error code %q: %v", alg, keyhold.ErrorCode(err), err)
			}
			if _, err := key.UnwrapKeySized(alg, ct, 32); err != nil && keyhold.ErrorCode(err) != keyhold.EInvalid {
				t.Fatalf("UnwrapKeySized(%q) error code %q: %v", alg, keyhold.ErrorCode(err), err)
			}
		}
	})
}
