package keycrypto_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"strings"
	"testing"

	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

func TestImportJWKStandardLibraryKeys(t *testing.T) {
	for _, bits := range rsaSizes {
		std := stdRSAKey(t, bits)
		for _, withCRT := range []bool{false, true} {
			k, err := keycrypto.ImportJWK(rsaJWK(std, withCRT))
			if err != nil {
				t.Fatalf("RSA %d crt=%v: %v", bits, withCRT, err)
			}
			if got, want := k.Size(), bits; got != want {
				t.Errorf("Size() = %d, want %d", got, want)
			}
			if got, want := k.Kty(), keycrypto.KtyRSA; got != want {
				t.Errorf("Kty() = %q, want %q", got, want)
			}
			// The imported key must be the same key: the standard library
			// decrypts what it wraps.
			ct, err := k.WrapKey(keycrypto.RSAOAEP256, []byte("k"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := std.Decrypt(nil, ct, &rsa.OAEPOptions{Hash: crypto.SHA256}); err != nil {
				t.Errorf("standard library cannot decrypt a wrap by the imported key: %v", err)
			}
		}
	}
	for crv := range stdCurves {
		std := stdECKey(t, crv)
		k, err := keycrypto.ImportJWK(ecJWK(t, std, crv))
		if err != nil {
			t.Fatalf("EC %s: %v", crv, err)
		}
		if got, want := k.Curve(), crv; got != want {
			t.Errorf("Curve() = %q, want %q", got, want)
		}
		if !k.Public().Equal(mustPublic(t, k.PublicJWK())) {
			t.Error("the public key does not survive PublicJWK/NewPublicKey")
		}
		pj := k.PublicJWK()
		w := (std.Curve.Params().BitSize + 7) / 8
		if len(pj.X) != w || len(pj.Y) != w {
			t.Errorf("x, y are %d and %d bytes, want %d each", len(pj.X), len(pj.Y), w)
		}
		stdPub, _ := std.PublicKey.Bytes()
		if !bytes.Equal(append(append([]byte{4}, pj.X...), pj.Y...), stdPub) {
			t.Error("PublicJWK x, y differ from the standard library's point")
		}
	}
}

func mustPublic(t *testing.T, j keycrypto.JWK) *keycrypto.PublicKey {
	t.Helper()
	p, err := keycrypto.NewPublicKey(j)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestImportJWKFromJSON goes the way a request goes: JSON with base64 in all
// four spellings, json.Unmarshal, ImportJWK.
func TestImportJWKFromJSON(t *testing.T) {
	std := stdRSAKey(t, 2048)
	encoders := map[string]*base64.Encoding{
		"raw url": base64.RawURLEncoding,
		"url":     base64.URLEncoding,
		"std":     base64.StdEncoding,
		"raw std": base64.RawStdEncoding,
	}
	for name, enc := range encoders {
		t.Run(name, func(t *testing.T) {
			doc := map[string]any{
				"kty": "RSA", "key_ops": []string{"wrapKey", "unwrapKey"},
				"n": enc.EncodeToString(std.N.Bytes()), "e": enc.EncodeToString([]byte{1, 0, 1}),
				"d": enc.EncodeToString(std.D.Bytes()),
				"p": enc.EncodeToString(std.Primes[0].Bytes()), "q": enc.EncodeToString(std.Primes[1].Bytes()),
			}
			raw, _ := json.Marshal(doc)
			var j keycrypto.JWK
			if err := json.Unmarshal(raw, &j); err != nil {
				t.Fatal(err)
			}
			k, err := keycrypto.ImportJWK(j)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := k.PublicJWK().N, keycrypto.Bytes(std.N.Bytes()); !bytes.Equal(got, want) {
				t.Error("n does not survive the import")
			}
		})
	}
}

func TestBase64(t *testing.T) {
	in := []byte{0xfb, 0xff, 0x01, 0xfe}
	for _, s := range []string{"-_8B_g", "-_8B_g==", "+/8B/g", "+/8B/g=="} {
		got, err := keycrypto.DecodeBase64(s)
		if err != nil || !bytes.Equal(got, in) {
			t.Errorf("DecodeBase64(%q) = %x, %v; want %x", s, got, err, in)
		}
	}
	for _, s := range []string{"a", "-_8B_g===", "*abc", "ab cd"} {
		_, err := keycrypto.DecodeBase64(s)
		wantBadParameter(t, err, "base64")
	}
	if got, want := keycrypto.EncodeBase64(in), "-_8B_g"; got != want {
		t.Errorf("EncodeBase64 = %q, want %q", got, want)
	}
	out, err := json.Marshal(struct{ V keycrypto.Bytes }{in})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), `{"V":"-_8B_g"}`; got != want {
		t.Errorf("marshal Bytes = %s, want %s", got, want)
	}
	var v struct{ V keycrypto.Bytes }
	wantBadParameter(t, json.Unmarshal([]byte(`{"V":12}`), &v), "base64url string")
	if err := json.Unmarshal([]byte(`{"V":null}`), &v); err != nil || v.V != nil {
		t.Errorf("null: got %x, %v; want nil", v.V, err)
	}
}

// TestJWKMarshalIsPublicOnly checks that a JWK carrying private members
// (an import request) marshals and prints without them.
func TestJWKMarshalIsPublicOnly(t *testing.T) {
	std := stdRSAKey(t, 2048)
	j := rsaJWK(std, true)
	j.KID = "https://v.vault.keyhold.internal/keys/k/0123"
	j.KeyOps = []string{"sign"}
	j.K = []byte("symmetric secret")
	out, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "key_hsm"} {
		if _, ok := got[m]; ok {
			t.Errorf("marshalled JWK has private member %q", m)
		}
	}
	for m, want := range map[string]any{"kty": "RSA", "kid": j.KID, "e": "AQAB", "n": keycrypto.EncodeBase64(std.N.Bytes())} {
		if got[m] != want {
			t.Errorf("member %q = %v, want %v", m, got[m], want)
		}
	}
	dB64 := keycrypto.EncodeBase64(std.D.Bytes())
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("import", "jwk", j)
	if !strings.Contains(logs.String(), "[REDACTED]") {
		t.Errorf("log line does not show the redaction: %s", logs.String())
	}
	for _, s := range []string{fmtAll(j), string(out), logs.String(), j.GoString()} {
		if strings.Contains(s, dB64) || strings.Contains(s, std.D.String()) {
			t.Errorf("private exponent leaked: %s", s)
		}
	}
}

func TestPublicJWK(t *testing.T) {
	k, std := importStdRSA(t, 3072)
	j := k.PublicJWK()
	if j.HasPrivate() {
		t.Error("PublicJWK carries private members")
	}
	if got, want := keycrypto.EncodeBase64(j.E), "AQAB"; got != want {
		t.Errorf("e = %q, want %q", got, want)
	}
	if !bytes.Equal(j.N, std.N.Bytes()) || j.N[0] == 0 {
		t.Error("n is not the minimal big-endian modulus")
	}
	if got, want := j.Kty, keycrypto.KtyRSA; got != want {
		t.Errorf("kty = %q, want %q", got, want)
	}
}

func TestImportJWKRejects(t *testing.T) {
	rsaStd := stdRSAKey(t, 2048)
	ecStd := stdECKey(t, keycrypto.CurveP256)
	otherEC := stdECKey(t, keycrypto.CurveP384)
	small := mustRSA1024(t)
	rsaWith := func(f func(*keycrypto.JWK)) keycrypto.JWK {
		j := rsaJWK(rsaStd, true)
		f(&j)
		return j
	}
	ecWith := func(f func(*keycrypto.JWK)) keycrypto.JWK {
		j := ecJWK(t, ecStd, keycrypto.CurveP256)
		f(&j)
		return j
	}
	otherP256, _ := ecdsa.GenerateKey(stdCurves[keycrypto.CurveP256], rand.Reader)
	otherD, _ := otherP256.Bytes()
	p384 := ecJWK(t, otherEC, keycrypto.CurveP384)
	plusOne := func(b []byte) []byte { return new(big.Int).Add(new(big.Int).SetBytes(b), big.NewInt(1)).Bytes() }

	tests := []struct {
		name string
		jwk  keycrypto.JWK
		want []string
	}{
		{"no kty", rsaWith(func(j *keycrypto.JWK) { j.Kty = "" }), []string{"kty", "missing"}},
		{"unknown kty", rsaWith(func(j *keycrypto.JWK) { j.Kty = "DSA" }), []string{"invalid key type", "DSA"}},
		{"oct", keycrypto.JWK{Kty: "oct", K: make([]byte, 32)}, []string{"oct", "not supported"}},
		{"missing n", rsaWith(func(j *keycrypto.JWK) { j.N = nil }), []string{`"n"`, "missing"}},
		{"missing e", rsaWith(func(j *keycrypto.JWK) { j.E = nil }), []string{`"e"`, "missing"}},
		{"missing d", rsaWith(func(j *keycrypto.JWK) { j.D = nil }), []string{`"d"`, "missing"}},
		{"missing p", rsaWith(func(j *keycrypto.JWK) { j.P = nil }), []string{`"p"`, "missing"}},
		{"missing q", rsaWith(func(j *keycrypto.JWK) { j.Q = nil }), []string{`"q"`, "missing"}},
		{"public-only RSA", keycrypto.JWK{Kty: "RSA", N: rsaStd.N.Bytes(), E: []byte{1, 0, 1}}, []string{"no private key", "needs the private key"}},
		{"RSA 1024", rsaJWK(small, false), []string{`"n"`, "1024 bits", "2048 to 4096"}},
		{"even modulus", rsaWith(func(j *keycrypto.JWK) { j.N = plusOne(j.N) }), []string{`"n"`, "not a valid modulus"}},
		{"exponent 17", rsaWith(func(j *keycrypto.JWK) { j.E = []byte{17} }), []string{`"e"`, "65537 or 3"}},
		{"exponent too large", rsaWith(func(j *keycrypto.JWK) { j.E = []byte{1, 0, 0, 0, 1} }), []string{`"e"`, "too large"}},
		{"wrong d", rsaWith(func(j *keycrypto.JWK) { j.D = plusOne(j.D) }), []string{"inconsistent"}},
		{"wrong p", rsaWith(func(j *keycrypto.JWK) { j.P = plusOne(j.P) }), []string{"inconsistent"}},
		{"wrong dp", rsaWith(func(j *keycrypto.JWK) { j.DP = plusOne(j.DP) }), []string{`"dp"`, "does not match"}},
		{"wrong dq", rsaWith(func(j *keycrypto.JWK) { j.DQ = plusOne(j.DQ) }), []string{`"dq"`, "does not match"}},
		{"wrong qi", rsaWith(func(j *keycrypto.JWK) { j.QI = plusOne(j.QI) }), []string{`"qi"`, "does not match"}},
		{"d longer than n", rsaWith(func(j *keycrypto.JWK) { j.D = append([]byte{1}, j.N...) }), []string{`"d"`, "longer than the modulus"}},
		{"p longer than n", rsaWith(func(j *keycrypto.JWK) { j.P = bytes.Repeat([]byte{0xff}, 5000) }), []string{`"p"`, "longer than the modulus"}},
		{"huge dp", rsaWith(func(j *keycrypto.JWK) { j.DP = bytes.Repeat([]byte{0xff}, 300) }), []string{`"dp"`}},
		{"RSA with crv", rsaWith(func(j *keycrypto.JWK) { j.Crv = "P-256" }), []string{"EC members"}},
		{"unknown key op", rsaWith(func(j *keycrypto.JWK) { j.KeyOps = []string{"sign", "frobnicate"} }), []string{"frobnicate"}},
		{"no crv", ecWith(func(j *keycrypto.JWK) { j.Crv = "" }), []string{"crv", "missing"}},
		{"P-256K", ecWith(func(j *keycrypto.JWK) { j.Crv = keycrypto.CurveP256K }), []string{"P-256K", "not supported"}},
		{"P-224", ecWith(func(j *keycrypto.JWK) { j.Crv = "P-224" }), []string{"invalid curve"}},
		{"missing x", ecWith(func(j *keycrypto.JWK) { j.X = nil }), []string{`"x"`, "missing"}},
		{"missing y", ecWith(func(j *keycrypto.JWK) { j.Y = nil }), []string{`"y"`, "missing"}},
		{"x too long", ecWith(func(j *keycrypto.JWK) { j.X = append([]byte{1}, j.X...) }), []string{`"x"`, "33 bytes"}},
		{"point off curve", ecWith(func(j *keycrypto.JWK) { j.Y = plusOne(j.Y) }), []string{"not a point on curve P-256"}},
		{"public-only EC", ecWith(func(j *keycrypto.JWK) { j.D = nil }), []string{"no private key"}},
		{"d of another key", ecWith(func(j *keycrypto.JWK) { j.D = otherD }), []string{`"d"`, "does not match"}},
		{"d zero", ecWith(func(j *keycrypto.JWK) { j.D = make([]byte, 32) }), []string{`"d"`}},
		{"d too long", ecWith(func(j *keycrypto.JWK) { j.D = make([]byte, 40) }), []string{`"d"`, "40 bytes"}},
		{"P-384 point named P-256", func() keycrypto.JWK { j := p384; j.Crv = "P-256"; return j }(), []string{`"x"`}},
		{"EC with n", ecWith(func(j *keycrypto.JWK) { j.N = []byte{1} }), []string{"RSA members"}},
		{"EC with p", ecWith(func(j *keycrypto.JWK) { j.P = []byte{1} }), []string{"RSA members"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := keycrypto.ImportJWK(tt.jwk)
			if k != nil {
				t.Errorf("got a key %v", k)
			}
			wantBadParameter(t, err, tt.want...)
		})
	}
}

func TestImportJWKLeniency(t *testing.T) {
	// Coordinates with stripped leading zeros are unambiguous and accepted.
	for range 200 {
		std, _ := ecdsa.GenerateKey(stdCurves[keycrypto.CurveP256], rand.Reader)
		j := ecJWK(t, std, keycrypto.CurveP256)
		if j.X[0] != 0 && j.D[0] != 0 {
			continue
		}
		j.X = bytes.TrimLeft(j.X, "\x00")
		j.D = bytes.TrimLeft(j.D, "\x00")
		if _, err := keycrypto.ImportJWK(j); err != nil {
			t.Fatalf("short x or d: %v", err)
		}
		return
	}
	t.Skip("no key with a leading zero byte in 200 tries")
}

func TestNewPublicKey(t *testing.T) {
	std := stdRSAKey(t, 2048)
	p, err := keycrypto.NewPublicKey(keycrypto.JWK{Kty: "RSA-HSM", N: std.N.Bytes(), E: []byte{1, 0, 1}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Kty(), keycrypto.KtyRSAHSM; got != want {
		t.Errorf("Kty() = %q, want %q", got, want)
	}
	ct, err := p.WrapKey(keycrypto.RSAOAEP, []byte("key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rsa.DecryptOAEP(sha1New(), nil, std, ct, nil); err != nil {
		t.Errorf("standard library cannot unwrap: %v", err)
	}
	_, err = keycrypto.NewPublicKey(keycrypto.JWK{Kty: "EC", Crv: "P-256", X: []byte{1}, Y: []byte{2}})
	wantBadParameter(t, err, "not a point")
	_, err = keycrypto.NewPublicKey(keycrypto.JWK{Kty: "RSA", E: []byte{1, 0, 1}})
	wantBadParameter(t, err, `"n"`)
}
