package keycrypto_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

// Keys are slow to make (RSA 4096 especially under -race), so every test
// shares one standard-library key per size or curve.
var (
	stdKeysMu sync.Mutex
	stdRSA    = map[int]*rsa.PrivateKey{}
	stdEC     = map[string]*ecdsa.PrivateKey{}
)

func stdRSAKey(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	stdKeysMu.Lock()
	defer stdKeysMu.Unlock()
	if k, ok := stdRSA[bits]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	stdRSA[bits] = k
	return k
}

var stdCurves = map[string]elliptic.Curve{
	keycrypto.CurveP256: elliptic.P256(),
	keycrypto.CurveP384: elliptic.P384(),
	keycrypto.CurveP521: elliptic.P521(),
}

func stdECKey(t testing.TB, crv string) *ecdsa.PrivateKey {
	t.Helper()
	stdKeysMu.Lock()
	defer stdKeysMu.Unlock()
	if k, ok := stdEC[crv]; ok {
		return k
	}
	k, err := ecdsa.GenerateKey(stdCurves[crv], rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stdEC[crv] = k
	return k
}

// rsaJWK exports a standard-library RSA key by hand, independently of the
// package under test.
func rsaJWK(k *rsa.PrivateKey, withCRT bool) keycrypto.JWK {
	j := keycrypto.JWK{
		Kty: keycrypto.KtyRSA,
		N:   k.N.Bytes(),
		E:   big.NewInt(int64(k.E)).Bytes(),
		D:   k.D.Bytes(),
		P:   k.Primes[0].Bytes(),
		Q:   k.Primes[1].Bytes(),
	}
	if withCRT {
		k.Precompute()
		j.DP = k.Precomputed.Dp.Bytes()
		j.DQ = k.Precomputed.Dq.Bytes()
		j.QI = k.Precomputed.Qinv.Bytes()
	}
	return j
}

// ecJWK exports a standard-library EC key by hand.
func ecJWK(t testing.TB, k *ecdsa.PrivateKey, crv string) keycrypto.JWK {
	t.Helper()
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	d, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	w := (len(pub) - 1) / 2
	return keycrypto.JWK{Kty: keycrypto.KtyEC, Crv: crv, X: pub[1 : 1+w], Y: pub[1+w:], D: d}
}

func importStdRSA(t testing.TB, bits int) (*keycrypto.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	std := stdRSAKey(t, bits)
	k, err := keycrypto.ImportJWK(rsaJWK(std, false))
	if err != nil {
		t.Fatalf("ImportJWK(RSA %d): %v", bits, err)
	}
	return k, std
}

func importStdEC(t testing.TB, crv string) (*keycrypto.PrivateKey, *ecdsa.PrivateKey) {
	t.Helper()
	std := stdECKey(t, crv)
	k, err := keycrypto.ImportJWK(ecJWK(t, std, crv))
	if err != nil {
		t.Fatalf("ImportJWK(EC %s): %v", crv, err)
	}
	return k, std
}

// wantBadParameter fails unless err is an EInvalid "BadParameter" error
// whose message contains every fragment.
func wantBadParameter(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want BadParameter containing %q", fragments)
	}
	var ke *keyhold.Error
	if !errors.As(err, &ke) {
		t.Fatalf("got %T %v, want *keyhold.Error", err, err)
	}
	if ke.Code != keyhold.EInvalid || ke.Detail != "BadParameter" {
		t.Fatalf("got code %q detail %q (%v), want %q %q", ke.Code, ke.Detail, err, keyhold.EInvalid, "BadParameter")
	}
	for _, f := range fragments {
		if !strings.Contains(ke.Message, f) {
			t.Errorf("message %q does not contain %q", ke.Message, f)
		}
	}
}

func mustRSA1024(t testing.TB) *rsa.PrivateKey { return stdRSAKey(t, 1024) }
