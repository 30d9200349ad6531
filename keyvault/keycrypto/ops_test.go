package keycrypto_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"fmt"
	"math/big"
	"testing"

	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

var rsaSizes = []int{2048, 3072, 4096}
var encAlgs = []string{keycrypto.RSAOAEP, keycrypto.RSAOAEP256, keycrypto.RSA15}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	for _, bits := range rsaSizes {
		k, _ := importStdRSA(t, bits)
		pub, err := keycrypto.NewPublicKey(k.PublicJWK())
		if err != nil {
			t.Fatal(err)
		}
		for _, alg := range encAlgs {
			t.Run(fmt.Sprintf("%d/%s", bits, alg), func(t *testing.T) {
				want := []byte("thirty-two bytes of root key....")
				for name, enc := range map[string]func(string, []byte) ([]byte, error){
					"Encrypt":                k.Encrypt,
					"WrapKey":                k.WrapKey,
					"PublicKey.Encrypt":      pub.Encrypt,
					"PublicKey.WrapKey":      pub.WrapKey,
					"PrivateKey.Public.Wrap": k.Public().WrapKey,
				} {
					ct, err := enc(alg, want)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					if got, wantLen := len(ct), bits/8; got != wantLen {
						t.Errorf("%s: ciphertext is %d bytes, want %d", name, got, wantLen)
					}
					got, err := k.Decrypt(alg, ct)
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%s then Decrypt = %q, %v; want %q", name, got, err, want)
					}
					got, err = k.UnwrapKey(alg, ct)
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%s then UnwrapKey = %q, %v; want %q", name, got, err, want)
					}
					got, err = k.UnwrapKeySized(alg, ct, len(want))
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%s then UnwrapKeySized = %q, %v; want %q", name, got, err, want)
					}
				}
			})
		}
	}
}

// TestEncryptCrossCheck checks both directions against direct standard
// library calls, so that the algorithm names map to the right paddings.
func TestEncryptCrossCheck(t *testing.T) {
	k, std := importStdRSA(t, 2048)
	msg := []byte("cross-checked key")
	tests := []struct {
		alg     string
		encrypt func() ([]byte, error)
		decrypt func(ct []byte) ([]byte, error)
	}{
		{
			keycrypto.RSAOAEP,
			func() ([]byte, error) { return rsa.EncryptOAEP(sha1.New(), rand.Reader, &std.PublicKey, msg, nil) },
			func(ct []byte) ([]byte, error) { return rsa.DecryptOAEP(sha1.New(), nil, std, ct, nil) },
		},
		{
			keycrypto.RSAOAEP256,
			func() ([]byte, error) { return rsa.EncryptOAEP(sha256.New(), rand.Reader, &std.PublicKey, msg, nil) },
			func(ct []byte) ([]byte, error) { return rsa.DecryptOAEP(sha256.New(), nil, std, ct, nil) },
		},
		{
			keycrypto.RSA15,
			func() ([]byte, error) { return rsa.EncryptPKCS1v15(rand.Reader, &std.PublicKey, msg) },
			func(ct []byte) ([]byte, error) { return rsa.DecryptPKCS1v15(nil, std, ct) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			ct, err := tt.encrypt()
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.UnwrapKey(tt.alg, ct)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("UnwrapKey(std ciphertext) = %q, %v; want %q", got, err, msg)
			}
			ct, err = k.WrapKey(tt.alg, msg)
			if err != nil {
				t.Fatal(err)
			}
			got, err = tt.decrypt(ct)
			if err != nil || !bytes.Equal(got, msg) {
				t.Errorf("std decrypt(WrapKey) = %q, %v; want %q", got, err, msg)
			}
		})
	}
	// The OAEP hashes must really differ: a SHA-1 ciphertext must not open
	// as RSA-OAEP-256.
	ct, _ := rsa.EncryptOAEP(sha1.New(), rand.Reader, &std.PublicKey, msg, nil)
	if _, err := k.Decrypt(keycrypto.RSAOAEP256, ct); err == nil {
		t.Error("an RSA-OAEP ciphertext decrypted as RSA-OAEP-256")
	}
}

func TestEncryptTooLong(t *testing.T) {
	k, _ := importStdRSA(t, 2048)
	tests := []struct {
		alg string
		max int
	}{
		{keycrypto.RSAOAEP, 256 - 42},
		{keycrypto.RSAOAEP256, 256 - 66},
		{keycrypto.RSA15, 256 - 11},
	}
	for _, tt := range tests {
		if _, err := k.Encrypt(tt.alg, make([]byte, tt.max)); err != nil {
			t.Errorf("%s with %d bytes: %v", tt.alg, tt.max, err)
		}
		_, err := k.Encrypt(tt.alg, make([]byte, tt.max+1))
		wantBadParameter(t, err, "at most", fmt.Sprint(tt.max))
	}
	_, err := k.WrapKey(keycrypto.RSAOAEP256, nil)
	wantBadParameter(t, err, "empty")
}

// TestDecryptFailuresAreIndistinguishable checks that every way a
// decryption can fail gives the very same error, so that the vault is not
// an oracle.
func TestDecryptFailuresAreIndistinguishable(t *testing.T) {
	k, _ := importStdRSA(t, 2048)
	other, _ := importStdRSA(t, 3072)
	for _, alg := range encAlgs {
		t.Run(alg, func(t *testing.T) {
			good, err := k.WrapKey(alg, []byte("0123456789abcdef"))
			if err != nil {
				t.Fatal(err)
			}
			tampered := bytes.Clone(good)
			tampered[10] ^= 0x40
			otherKey, _ := other.WrapKey(alg, []byte("0123456789abcdef"))
			tooBig := bytes.Repeat([]byte{0xff}, 256)
			cases := map[string][]byte{
				"empty":        nil,
				"short":        good[:100],
				"long":         append(bytes.Clone(good), 0),
				"tampered":     tampered,
				"other key":    otherKey[:256],
				"above modulo": tooBig,
				"zero":         make([]byte, 256),
			}
			var first string
			for name, ct := range cases {
				_, err := k.UnwrapKey(alg, ct)
				wantBadParameter(t, err)
				if first == "" {
					first = err.Error()
				}
				if err.Error() != first {
					t.Errorf("%s: error %q differs from %q", name, err, first)
				}
			}
		})
	}
}

// TestUnwrapKeySizedRSA15ImplicitRejection checks that RSA1_5 padding
// failures yield random bytes of the right size rather than an error.
func TestUnwrapKeySizedRSA15ImplicitRejection(t *testing.T) {
	k, _ := importStdRSA(t, 2048)
	want := bytes.Repeat([]byte{7}, 32)
	ct, err := k.WrapKey(keycrypto.RSA15, want)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(ct)
	tampered[0] ^= 1
	wrongLen, _ := k.WrapKey(keycrypto.RSA15, want[:16])
	for name, c := range map[string][]byte{"tampered": tampered, "wrong length": wrongLen} {
		got1, err1 := k.UnwrapKeySized(keycrypto.RSA15, c, 32)
		got2, err2 := k.UnwrapKeySized(keycrypto.RSA15, c, 32)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: got errors %v, %v; want random keys", name, err1, err2)
		}
		if len(got1) != 32 || bytes.Equal(got1, want) || bytes.Equal(got1, got2) {
			t.Errorf("%s: got %x then %x; want two different random 32-byte keys", name, got1, got2)
		}
	}
	// OAEP has no such need: a wrong length is the generic error.
	oaep, _ := k.WrapKey(keycrypto.RSAOAEP256, want[:16])
	_, err = k.UnwrapKeySized(keycrypto.RSAOAEP256, oaep, 32)
	wantBadParameter(t, err, "could not be decrypted")
	_, err = k.UnwrapKeySized(keycrypto.RSA15, ct, 8)
	wantBadParameter(t, err, "16 to 64")
	_, err = k.UnwrapKeySized(keycrypto.RSA15, ct[:5], 32)
	wantBadParameter(t, err, "could not be decrypted")
}

var digestOf = map[crypto.Hash]func([]byte) []byte{
	crypto.SHA256: func(b []byte) []byte { s := sha256.Sum256(b); return s[:] },
	crypto.SHA384: func(b []byte) []byte { s := sha512.Sum384(b); return s[:] },
	crypto.SHA512: func(b []byte) []byte { s := sha512.Sum512(b); return s[:] },
}

func TestSignVerifyRSA(t *testing.T) {
	algs := []struct {
		alg  string
		hash crypto.Hash
		pss  bool
	}{
		{keycrypto.RS256, crypto.SHA256, false},
		{keycrypto.RS384, crypto.SHA384, false},
		{keycrypto.RS512, crypto.SHA512, false},
		{keycrypto.PS256, crypto.SHA256, true},
		{keycrypto.PS384, crypto.SHA384, true},
		{keycrypto.PS512, crypto.SHA512, true},
	}
	for _, bits := range rsaSizes {
		k, std := importStdRSA(t, bits)
		for _, a := range algs {
			t.Run(fmt.Sprintf("%d/%s", bits, a.alg), func(t *testing.T) {
				digest := digestOf[a.hash]([]byte("message " + a.alg))
				sig, err := k.Sign(a.alg, digest)
				if err != nil {
					t.Fatal(err)
				}
				// Independent check with the standard library.
				if a.pss {
					err = rsa.VerifyPSS(&std.PublicKey, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: a.hash.Size()})
				} else {
					err = rsa.VerifyPKCS1v15(&std.PublicKey, a.hash, digest, sig)
				}
				if err != nil {
					t.Errorf("standard library rejects our %s signature: %v", a.alg, err)
				}
				if ok, err := k.Verify(a.alg, digest, sig); !ok || err != nil {
					t.Errorf("Verify(own signature) = %v, %v; want true", ok, err)
				}
				// And the other way round.
				var stdSig []byte
				if a.pss {
					stdSig, err = rsa.SignPSS(rand.Reader, std, a.hash, digest, &rsa.PSSOptions{SaltLength: a.hash.Size()})
				} else {
					stdSig, err = rsa.SignPKCS1v15(nil, std, a.hash, digest)
				}
				if err != nil {
					t.Fatal(err)
				}
				if ok, err := k.Public().Verify(a.alg, digest, stdSig); !ok || err != nil {
					t.Errorf("Verify(std signature) = %v, %v; want true", ok, err)
				}
				bad := bytes.Clone(sig)
				bad[len(bad)/2] ^= 1
				if ok, err := k.Verify(a.alg, digest, bad); ok || err != nil {
					t.Errorf("Verify(tampered) = %v, %v; want false, nil", ok, err)
				}
				other := digestOf[a.hash]([]byte("another message"))
				if ok, err := k.Verify(a.alg, other, sig); ok || err != nil {
					t.Errorf("Verify(other digest) = %v, %v; want false, nil", ok, err)
				}
			})
		}
	}
	// PSS salts must be the hash length: a signature with a shorter salt
	// must not verify.
	k, std := importStdRSA(t, 2048)
	digest := digestOf[crypto.SHA256]([]byte("salt"))
	sig, _ := rsa.SignPSS(rand.Reader, std, crypto.SHA256, digest, &rsa.PSSOptions{SaltLength: 10})
	if ok, _ := k.Verify(keycrypto.PS256, digest, sig); ok {
		t.Error("a PS256 signature with a 10-byte salt verified")
	}
}

func TestSignVerifyEC(t *testing.T) {
	tests := []struct {
		alg   string
		crv   string
		hash  crypto.Hash
		width int
	}{
		{keycrypto.ES256, keycrypto.CurveP256, crypto.SHA256, 32},
		{keycrypto.ES384, keycrypto.CurveP384, crypto.SHA384, 48},
		{keycrypto.ES512, keycrypto.CurveP521, crypto.SHA512, 66},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			k, std := importStdEC(t, tt.crv)
			digest := digestOf[tt.hash]([]byte("message"))
			for range 20 { // leading zero bytes in r or s must keep the width
				sig, err := k.Sign(tt.alg, digest)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := len(sig), 2*tt.width; got != want {
					t.Fatalf("signature is %d bytes, want %d", got, want)
				}
				r := new(big.Int).SetBytes(sig[:tt.width])
				s := new(big.Int).SetBytes(sig[tt.width:])
				if !ecdsa.Verify(&std.PublicKey, digest, r, s) {
					t.Fatal("ecdsa.Verify rejects our r||s signature")
				}
				if ok, err := k.Verify(tt.alg, digest, sig); !ok || err != nil {
					t.Fatalf("Verify(own signature) = %v, %v; want true", ok, err)
				}
			}
			// A standard-library signature, converted from ASN.1 to r||s.
			der, err := ecdsa.SignASN1(rand.Reader, std, digest)
			if err != nil {
				t.Fatal(err)
			}
			var rs struct{ R, S *big.Int }
			if _, err := asn1.Unmarshal(der, &rs); err != nil {
				t.Fatal(err)
			}
			raw := make([]byte, 2*tt.width)
			rs.R.FillBytes(raw[:tt.width])
			rs.S.FillBytes(raw[tt.width:])
			if ok, err := k.Public().Verify(tt.alg, digest, raw); !ok || err != nil {
				t.Errorf("Verify(std r||s) = %v, %v; want true", ok, err)
			}
			// Verify accepts only r||s: the ASN.1 form fails.
			if ok, err := k.Verify(tt.alg, digest, der); ok || err != nil {
				t.Errorf("Verify(ASN.1 DER) = %v, %v; want false, nil", ok, err)
			}
			bad := bytes.Clone(raw)
			bad[3] ^= 1
			if ok, err := k.Verify(tt.alg, digest, bad); ok || err != nil {
				t.Errorf("Verify(tampered) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestAlgorithmMismatch(t *testing.T) {
	rsaKey, _ := importStdRSA(t, 2048)
	p256, _ := importStdEC(t, keycrypto.CurveP256)
	d32 := make([]byte, 32)
	sign := func(k *keycrypto.PrivateKey, alg string, d []byte) func() error {
		return func() error { _, err := k.Sign(alg, d); return err }
	}
	verify := func(k *keycrypto.PrivateKey, alg string, d []byte) func() error {
		return func() error { _, err := k.Verify(alg, d, make([]byte, 64)); return err }
	}
	encrypt := func(k *keycrypto.PrivateKey, alg string) func() error {
		return func() error { _, err := k.Encrypt(alg, []byte("x")); return err }
	}
	decrypt := func(k *keycrypto.PrivateKey, alg string) func() error {
		return func() error { _, err := k.Decrypt(alg, make([]byte, 256)); return err }
	}
	tests := []struct {
		name string
		call func() error
		want []string
	}{
		{"ES256 on RSA", sign(rsaKey, keycrypto.ES256, d32), []string{"ES256", "not valid for key type RSA"}},
		{"RS256 on EC", sign(p256, keycrypto.RS256, d32), []string{"RS256", "not valid for key type EC"}},
		{"PS256 verify on EC", verify(p256, keycrypto.PS256, d32), []string{"PS256", "EC"}},
		{"ES384 on P-256", sign(p256, keycrypto.ES384, make([]byte, 48)), []string{"ES384", "P-384", "P-256"}},
		{"ES512 verify on P-256", verify(p256, keycrypto.ES512, make([]byte, 64)), []string{"ES512", "P-521"}},
		{"RSA-OAEP on EC", encrypt(p256, keycrypto.RSAOAEP), []string{"RSA-OAEP", "not valid for key type EC"}},
		{"RSA1_5 decrypt on EC", decrypt(p256, keycrypto.RSA15), []string{"RSA1_5", "EC"}},
		{"sign with an encryption alg", sign(rsaKey, keycrypto.RSAOAEP256, d32), []string{"encryption algorithm"}},
		{"encrypt with a signature alg", encrypt(rsaKey, keycrypto.RS256), []string{"signature algorithm"}},
		{"unknown alg", encrypt(rsaKey, "RSA-OAEP-512"), []string{"invalid algorithm", "RSA-OAEP-512"}},
		{"missing alg", sign(rsaKey, "", d32), []string{"missing"}},
		{"AES alg on RSA", encrypt(rsaKey, "A256KW"), []string{"A256KW", "not supported"}},
		{"ES256K on EC", sign(p256, "ES256K", d32), []string{"ES256K", "not supported"}},
		{"alg names are case sensitive", sign(rsaKey, "rs256", d32), []string{"invalid algorithm"}},
		{"RS256 digest too short", sign(rsaKey, keycrypto.RS256, make([]byte, 20)), []string{"32 bytes", "got 20"}},
		{"RS512 digest of SHA-256", sign(rsaKey, keycrypto.RS512, d32), []string{"64 bytes"}},
		{"ES256 digest too long", sign(p256, keycrypto.ES256, make([]byte, 48)), []string{"32 bytes"}},
		{"PS384 verify digest wrong", verify(rsaKey, keycrypto.PS384, d32), []string{"48 bytes"}},
		{"empty digest", sign(rsaKey, keycrypto.PS256, nil), []string{"got 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantBadParameter(t, tt.call(), tt.want...)
		})
	}
}

func BenchmarkUnwrapRSAOAEP256_2048(b *testing.B) {
	k, _ := importStdRSA(b, 2048)
	ct, err := k.WrapKey(keycrypto.RSAOAEP256, make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.UnwrapKey(keycrypto.RSAOAEP256, ct); err != nil {
			b.Fatal(err)
		}
	}
}
