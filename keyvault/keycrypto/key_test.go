package keycrypto_test

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/keyvault/keycrypto"
)

func sha1New() hash.Hash { return sha1.New() }

func TestGenerate(t *testing.T) {
	tests := []struct {
		kty, curve string
		size       int
		wantSize   int
		wantCurve  string
	}{
		{keycrypto.KtyRSA, "", 0, 2048, ""},
		{keycrypto.KtyRSA, "", 2048, 2048, ""},
		{keycrypto.KtyRSAHSM, "", 3072, 3072, ""},
		{keycrypto.KtyRSA, "", 4096, 4096, ""},
		{keycrypto.KtyEC, "", 0, 256, keycrypto.CurveP256},
		{keycrypto.KtyEC, keycrypto.CurveP256, 0, 256, keycrypto.CurveP256},
		{keycrypto.KtyECHSM, keycrypto.CurveP384, 384, 384, keycrypto.CurveP384},
		{keycrypto.KtyEC, keycrypto.CurveP521, 0, 521, keycrypto.CurveP521},
		{keycrypto.KtyEC, "", 521, 521, keycrypto.CurveP521},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d/%s", tt.kty, tt.size, tt.curve), func(t *testing.T) {
			if testing.Short() && tt.size == 4096 {
				t.Skip("slow")
			}
			k, err := keycrypto.Generate(tt.kty, tt.size, tt.curve, nil)
			if err != nil {
				t.Fatal(err)
			}
			if k.Kty() != tt.kty || k.Size() != tt.wantSize || k.Curve() != tt.wantCurve {
				t.Errorf("got %s %d %q, want %s %d %q", k.Kty(), k.Size(), k.Curve(), tt.kty, tt.wantSize, tt.wantCurve)
			}
			if got, want := k.Public().Kty(), tt.kty; got != want {
				t.Errorf("public kty = %q, want %q", got, want)
			}
		})
	}
}

func TestGenerateRejects(t *testing.T) {
	tests := []struct {
		name, kty, curve string
		size             int
		want             []string
	}{
		{"RSA 1024", keycrypto.KtyRSA, "", 1024, []string{"1024", "2048, 3072 or 4096"}},
		{"RSA 2047", keycrypto.KtyRSA, "", 2047, []string{"2047"}},
		{"RSA 8192", keycrypto.KtyRSA, "", 8192, []string{"8192"}},
		{"RSA with curve", keycrypto.KtyRSA, keycrypto.CurveP256, 0, []string{"curve"}},
		{"P-256K", keycrypto.KtyEC, keycrypto.CurveP256K, 0, []string{"P-256K", "not supported"}},
		{"P-224", keycrypto.KtyEC, "P-224", 0, []string{"invalid curve"}},
		{"EC size 255", keycrypto.KtyEC, "", 255, []string{"255"}},
		{"EC size mismatch", keycrypto.KtyEC, keycrypto.CurveP384, 256, []string{"256", "P-384"}},
		{"oct", "oct", "", 256, []string{"oct", "not supported"}},
		{"empty kty", "", "", 0, []string{"missing"}},
		{"lower-case kty", "rsa", "", 0, []string{"invalid key type"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := keycrypto.Generate(tt.kty, tt.size, tt.curve, nil)
			wantBadParameter(t, err, tt.want...)
		})
	}
	_, err := keycrypto.GenerateRSA(keycrypto.KtyRSA, 2048, 5, nil)
	wantBadParameter(t, err, "exponent 5")
	_, err = keycrypto.GenerateRSA(keycrypto.KtyEC, 2048, 0, nil)
	wantBadParameter(t, err, "not an RSA key type")
}

func TestGenerateRSAExponent3(t *testing.T) {
	k, err := keycrypto.GenerateRSA(keycrypto.KtyRSA, 2048, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := keycrypto.EncodeBase64(k.PublicJWK().E), "Aw"; got != want {
		t.Errorf("e = %q, want %q (3)", got, want)
	}
	if got := k.Size(); got != 2048 {
		t.Errorf("Size() = %d, want 2048", got)
	}
	msg := []byte("exponent three")
	ct, err := k.WrapKey(keycrypto.RSAOAEP256, msg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.UnwrapKey(keycrypto.RSAOAEP256, ct); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("round trip = %q, %v", got, err)
	}
	back, err := keycrypto.ParsePrivate(k.MarshalPrivate())
	if err != nil {
		t.Fatalf("ParsePrivate(e=3): %v", err)
	}
	if !back.Public().Equal(k.Public()) {
		t.Error("e=3 key changed through MarshalPrivate")
	}
}

func TestMarshalPrivateRoundTrip(t *testing.T) {
	rsaKey, _ := importStdRSA(t, 2048)
	p384, _ := importStdEC(t, keycrypto.CurveP384)
	hsm, err := keycrypto.Generate(keycrypto.KtyRSAHSM, 2048, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	echsm, err := keycrypto.Generate(keycrypto.KtyECHSM, 0, keycrypto.CurveP521, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []*keycrypto.PrivateKey{rsaKey, p384, hsm, echsm} {
		t.Run(k.String(), func(t *testing.T) {
			s := k.MarshalPrivate()
			back, err := keycrypto.ParsePrivate(s)
			if err != nil {
				t.Fatal(err)
			}
			if back.Kty() != k.Kty() || back.Curve() != k.Curve() || back.Size() != k.Size() || !back.Public().Equal(k.Public()) {
				t.Errorf("got %v, want %v", back, k)
			}
			if !bytes.Equal(s.Reveal(), back.MarshalPrivate().Reveal()) {
				t.Error("MarshalPrivate is not stable")
			}
			// The reparsed key must work with the private half too.
			alg := keycrypto.RS256
			digest := make([]byte, 32)
			if k.Curve() == keycrypto.CurveP384 {
				alg, digest = keycrypto.ES384, make([]byte, 48)
			} else if k.Curve() == keycrypto.CurveP521 {
				alg, digest = keycrypto.ES512, make([]byte, 64)
			}
			sig, err := back.Sign(alg, digest)
			if err != nil {
				t.Fatal(err)
			}
			if ok, _ := k.Verify(alg, digest, sig); !ok {
				t.Error("signature by the reparsed key does not verify")
			}
		})
	}
	// Bare PKCS #8 from the standard library reads as RSA or EC.
	der, err := x509.MarshalPKCS8PrivateKey(stdRSAKey(t, 2048))
	if err != nil {
		t.Fatal(err)
	}
	k, err := keycrypto.ParsePrivate(keyhold.NewSecret(der))
	if err != nil || k.Kty() != keycrypto.KtyRSA {
		t.Errorf("bare PKCS#8: %v, %v", k, err)
	}
}

func TestParsePrivateDamaged(t *testing.T) {
	good := func() []byte {
		k, _ := importStdEC(t, keycrypto.CurveP256)
		return k.MarshalPrivate().Reveal()
	}
	small, _ := x509.MarshalPKCS8PrivateKey(mustRSA1024(t))
	tests := map[string][]byte{
		"empty":          nil,
		"garbage":        []byte("not a key at all"),
		"bad version":    func() []byte { b := good(); b[2] = 9; return b }(),
		"bad kty code":   func() []byte { b := good(); b[3] = 9; return b }(),
		"EC as RSA":      func() []byte { b := good(); b[3] = 1; return b }(),
		"truncated":      func() []byte { b := good(); return b[:len(b)-5] }(),
		"RSA 1024 PKCS8": small,
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := keycrypto.ParsePrivate(keyhold.NewSecret(b))
			if got, want := keyhold.ErrorCode(err), keyhold.EInternal; got != want {
				t.Errorf("code = %q (%v), want %q", got, err, want)
			}
		})
	}
}

// TestPrivateKeyNeverPrints checks fmt, log/slog and encoding/json against
// every representation of the private numbers.
func TestPrivateKeyNeverPrints(t *testing.T) {
	rsaKey, std := importStdRSA(t, 2048)
	ecKey, ecStd := importStdEC(t, keycrypto.CurveP256)
	ecD, _ := ecStd.Bytes()
	secrets := []string{}
	for _, b := range [][]byte{std.D.Bytes(), std.Primes[0].Bytes(), std.Primes[1].Bytes(), ecD} {
		secrets = append(secrets,
			hex.EncodeToString(b)[:24],
			keycrypto.EncodeBase64(b)[:24],
			fmt.Sprint(b[:8])[1:20])
	}
	secrets = append(secrets, std.D.String()[:24], std.Primes[0].String()[:24])
	for _, k := range []*keycrypto.PrivateKey{rsaKey, ecKey} {
		out := fmtAll(k) + fmtAll(*k)
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("key", "k", k, "v", *k)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("key", "k", k)
		out += buf.String()
		if b, err := json.Marshal(k); err == nil {
			t.Errorf("json.Marshal(*PrivateKey) = %s, want an error", b)
		}
		if b, err := json.Marshal(map[string]any{"k": *k}); err == nil {
			t.Errorf("json.Marshal(PrivateKey in a map) = %s, want an error", b)
		}
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("private material %q leaked in:\n%s", s, out)
			}
		}
		if !strings.Contains(out, "[REDACTED]") {
			t.Errorf("output does not say it is redacted:\n%s", out)
		}
	}
}

func fmtAll(v any) string {
	var sb strings.Builder
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%q"} {
		fmt.Fprintf(&sb, verb+"\n", v)
	}
	fmt.Fprintf(&sb, "%v\n", []any{v})
	fmt.Fprintf(&sb, "%+v\n", struct{ K any }{v})
	return sb.String()
}

func TestNormalizeKeyOps(t *testing.T) {
	tests := []struct {
		kty  string
		in   []string
		want []string
	}{
		{keycrypto.KtyRSA, nil, []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}},
		{keycrypto.KtyRSAHSM, nil, []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}},
		{keycrypto.KtyEC, nil, []string{"sign", "verify"}},
		{keycrypto.KtyRSA, []string{}, []string{}},
		{keycrypto.KtyRSA, []string{"wrapkey", "UNWRAPKEY", "wrapKey"}, []string{"wrapKey", "unwrapKey"}},
		{keycrypto.KtyEC, []string{"verify", "sign", "import", "export"}, []string{"verify", "sign", "import", "export"}},
	}
	for _, tt := range tests {
		got, err := keycrypto.NormalizeKeyOps(tt.kty, tt.in)
		if err != nil || !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) {
			t.Errorf("NormalizeKeyOps(%s, %q) = %q, %v; want %q", tt.kty, tt.in, got, err, tt.want)
		}
	}
	_, err := keycrypto.NormalizeKeyOps(keycrypto.KtyRSA, []string{"sign", "purge"})
	wantBadParameter(t, err, `"purge"`)
	_, err = keycrypto.NormalizeKeyOps("oct", nil)
	wantBadParameter(t, err, "oct")
	if got := keycrypto.DefaultKeyOps("oct"); got != nil {
		t.Errorf("DefaultKeyOps(oct) = %q, want nil", got)
	}
	if !keycrypto.HasKeyOp([]string{"sign", "wrapKey"}, keycrypto.OpWrapKey) || keycrypto.HasKeyOp([]string{"sign"}, keycrypto.OpUnwrapKey) {
		t.Error("HasKeyOp is wrong")
	}
}

func TestNewVersion(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		v := keycrypto.NewVersion()
		if !keycrypto.IsVersion(v) {
			t.Fatalf("NewVersion() = %q is not 32 lowercase hex characters", v)
		}
		if seen[v] {
			t.Fatalf("NewVersion() repeated %q", v)
		}
		seen[v] = true
	}
	for _, bad := range []string{"", "78deebed173b48e48f55abf87ed4cf7", "78DEEBED173B48E48F55ABF87ED4CF71", "78deebed173b48e48f55abf87ed4cf7g", "78deebed173b48e48f55abf87ed4cf711"} {
		if keycrypto.IsVersion(bad) {
			t.Errorf("IsVersion(%q) = true", bad)
		}
	}
	if !keycrypto.IsVersion("78deebed173b48e48f55abf87ed4cf71") {
		t.Error("IsVersion rejects a real Key Vault version")
	}
}
