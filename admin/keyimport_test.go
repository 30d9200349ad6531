package admin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"
	"testing"
)

func TestParseRSAPrivateKey(t *testing.T) {
	k2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k2048)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	ec8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k2048.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemOf := func(typ string, der []byte, headers map[string]string) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Headers: headers, Bytes: der}))
	}
	b64 := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.Bytes()) }
	jwk := func(members map[string]string) string {
		b, err := json.Marshal(members)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	full := map[string]string{"kty": "RSA", "n": b64(k2048.N), "e": b64(big.NewInt(int64(k2048.E))), "d": b64(k2048.D),
		"p": b64(k2048.Primes[0]), "q": b64(k2048.Primes[1])}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range full {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	wrongD := new(big.Int).Add(k2048.D, big.NewInt(2))

	tests := []struct {
		name  string
		input string
		want  error // nil: the key parses to k2048
	}{
		{"PKCS#1 PEM", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k2048), nil), nil},
		{"PKCS#8 PEM", pemOf("PRIVATE KEY", pkcs8, nil), nil},
		{"PKCS#8 PEM with spaces around", "\n\n  " + pemOf("PRIVATE KEY", pkcs8, nil) + "\n\n", nil},
		{"PKCS#8 DER", string(pkcs8), nil},
		{"JWK", jwk(full), nil},
		{"JWK with padding", jwk(with("n", b64(k2048.N)+"==")), nil},
		{"empty", "  \n", errNoMaterial},
		{"text", "hello", errNotKey},
		{"broken JSON", `{"kty": "RSA", `, errNotKey},
		{"JSON without kty", `{"n": "AQAB"}`, errNotKey},
		{"too large", strings.Repeat("A", maxKeyMaterial+1), errTooLarge},
		{"encrypted PKCS#8", pemOf("ENCRYPTED PRIVATE KEY", []byte{1, 2, 3}, nil), errEncrypted},
		{"legacy encrypted PKCS#1", pemOf("RSA PRIVATE KEY", []byte{1, 2, 3}, map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00112233445566778899AABBCCDDEEFF"}), errEncrypted},
		{"public key", pemOf("PUBLIC KEY", pub, nil), errPublicOnly},
		{"certificate", pemOf("CERTIFICATE", []byte{1}, nil), errPublicOnly},
		{"EC PEM", pemOf("EC PRIVATE KEY", ecDER, nil), errNotRSA},
		{"EC in PKCS#8", pemOf("PRIVATE KEY", ec8, nil), errNotRSA},
		{"EC DER", string(ecDER), errNotRSA},
		{"OpenSSH", pemOf("OPENSSH PRIVATE KEY", []byte{1}, nil), errOpenSSH},
		{"damaged PKCS#1", pemOf("RSA PRIVATE KEY", []byte{0x30, 0x03, 1, 2, 3}, nil), errBadRSA},
		{"RSA 1024", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k1024), nil), errRSASize},
		{"EC JWK", jwk(map[string]string{"kty": "EC", "crv": "P-256"}), errNotRSA},
		{"public JWK", jwk(map[string]string{"kty": "RSA", "n": full["n"], "e": full["e"]}), errJWKNoPriv},
		{"JWK without q", jwk(with("q", "")), errBadRSA},
		{"JWK with a bad d", jwk(with("d", b64(wrongD))), errBadRSA},
		{"JWK not base64url", jwk(with("p", "***")), errJWKEncoding},
		// A huge key is refused by its size, before any arithmetic on it.
		{"JWK of 40,000 bits", jwk(with("n", b64(new(big.Int).Lsh(big.NewInt(1), 40000)))), errRSASize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRSAPrivateKey([]byte(tt.input))
			if err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.want == nil && (got.N.Cmp(k2048.N) != 0 || got.D.Cmp(k2048.D) != 0) {
				t.Fatal("the parsed key is not the key given")
			}
			if mid := len(tt.input) / 2; err != nil && len(tt.input) > 32 && strings.Contains(err.Error(), tt.input[mid:mid+8]) {
				t.Fatal("the message quotes the key material")
			}
		})
	}
}

// TestImportJWKRoundTrip shows the JWK sent to the vault is the key read.
func TestImportJWKRoundTrip(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	k.Precompute()
	s, err := importJWK(k)
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseRSAPrivateKey(s.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if got.N.Cmp(k.N) != 0 || got.D.Cmp(k.D) != 0 || got.E != k.E {
		t.Fatal("the JWK does not hold the key")
	}
	var m map[string]string
	if err := json.Unmarshal(s.Reveal(), &m); err != nil {
		t.Fatal(err)
	}
	for _, member := range []string{"kty", "n", "e", "d", "p", "q", "dp", "dq", "qi"} {
		if m[member] == "" {
			t.Errorf("the JWK lacks %s", member)
		}
	}
	s.Wipe()
	for _, b := range s.Reveal() {
		if b != 0 {
			t.Fatal("Wipe left key material behind")
		}
	}
}

func TestParseIPRules(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
		msg      string // part of the message, "" when it parses
	}{
		{"empty", " \n ", nil, ""},
		{"address and range", "203.0.113.7\n198.51.100.0/24", []string{"203.0.113.7", "198.51.100.0/24"}, ""},
		{"commas, spaces, CRLF and repeats", "10.0.0.1, 10.0.0.1\r\n10.1.0.0/16 ;10.0.0.2", []string{"10.0.0.1", "10.1.0.0/16", "10.0.0.2"}, ""},
		{"bad octet", "10.0.0.300", nil, `"10.0.0.300" is not an IPv4 address`},
		{"bad prefix", "10.0.0.0/33", nil, `"10.0.0.0/33" is not an IPv4 address`},
		{"host bits", "10.0.0.5/24", nil, "has host bits set; the range is 10.0.0.0/24"},
		{"IPv6 address", "2001:db8::1", nil, "IPv6 address"},
		{"IPv6 range", "2001:db8::/32", nil, "IPv6 range"},
		{"name", "vault.example.com", nil, "is not an IPv4 address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, msg := parseIPRules(tt.in)
			if tt.msg != "" {
				if !strings.Contains(msg, tt.msg) {
					t.Fatalf("message = %q, want it to contain %q", msg, tt.msg)
				}
				return
			}
			if msg != "" {
				t.Fatalf("message = %q, want none", msg)
			}
			var got []string
			for _, r := range rules {
				got = append(got, r.Value)
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("rules = %v, want %v", got, tt.want)
			}
		})
	}
	var many strings.Builder
	for i := 0; i <= maxIPRules; i++ {
		fmt.Fprintf(&many, "10.1.%d.%d\n", i/256, i%256)
	}
	if _, msg := parseIPRules(many.String()); !strings.Contains(msg, "at most 1000") {
		t.Fatalf("too many rules: message = %q", msg)
	}
}

func TestParseNetwork(t *testing.T) {
	tests := []struct {
		mode, rules     string
		bypass          bool
		wantPublic      string
		wantDefault     string
		wantBypass      string
		wantRules       int
		wantErrorFields string
	}{
		{"Enabled", "10.0.0.1", true, "Enabled", "Allow", "AzureServices", 0, ""},
		{"Selected", "10.0.0.1\n10.0.1.0/24", false, "Enabled", "Deny", "None", 2, ""},
		{"Selected", "", true, "", "", "", 0, "iprules"},
		{"Selected", "nope", true, "", "", "", 0, "iprules"},
		{"Disabled", "10.0.0.1", true, "Disabled", "Deny", "AzureServices", 1, ""},
		{"Open", "", true, "", "", "", 0, "network"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.rules, func(t *testing.T) {
			got, errs := parseNetwork(tt.mode, tt.rules, tt.bypass, nil)
			if tt.wantErrorFields != "" {
				if errs[tt.wantErrorFields] == "" {
					t.Fatalf("errors = %v, want one for %s", errs, tt.wantErrorFields)
				}
				return
			}
			if len(errs) > 0 {
				t.Fatalf("errors = %v", errs)
			}
			if got.PublicNetworkAccess != tt.wantPublic || got.NetworkACLs.DefaultAction != tt.wantDefault ||
				got.NetworkACLs.Bypass != tt.wantBypass || len(got.NetworkACLs.IPRules) != tt.wantRules {
				t.Fatalf("got %+v %+v", got, *got.NetworkACLs)
			}
		})
	}
}

// TestParseDEREndingInASpaceByte: DER is binary, so a key whose encoding
// ends in a byte trimming takes for white space (about one in forty) must
// still parse. The 1024-bit key is refused for its size, which shows it was
// read.
func TestParseDEREndingInASpaceByte(t *testing.T) {
	for i := 0; i < 5000; i++ {
		k, err := rsa.GenerateKey(rand.Reader, 1024)
		if err != nil {
			t.Fatal(err)
		}
		der := x509.MarshalPKCS1PrivateKey(k)
		if !strings.ContainsRune(" \t\n\v\f\r", rune(der[len(der)-1])) {
			continue
		}
		if _, err := parseRSAPrivateKey(der); err != errRSASize {
			t.Fatalf("DER ending in %#x: err = %v, want %v", der[len(der)-1], err, errRSASize)
		}
		return
	}
	t.Skip("no key of 5000 ended in a space byte")
}
