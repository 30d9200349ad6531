package admin

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

// FuzzParseRSAPrivateKey feeds the key import parser anything a person could
// paste or upload: it must answer a key or one of its own messages, never
// panic, and never quote the material back.
func FuzzParseRSAPrivateKey(f *testing.F) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	f.Add(pkcs1)
	f.Add(pkcs1[:len(pkcs1)/2])
	f.Add([]byte(`{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQAB","p":"AQAB","q":"AQAB"}`))
	f.Add([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, material []byte) {
		key, err := parseRSAPrivateKey(material)
		if err != nil {
			var ie importError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v (%T) is not one of the form's messages", err, err)
			}
			if s := strings.TrimSpace(string(material)); len(s) > 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("the message quotes the material: %q", err)
			}
			return
		}
		if b := key.N.BitLen(); b != 2048 && b != 3072 && b != 4096 {
			t.Fatalf("accepted a %d-bit key", b)
		}
	})
}

// FuzzParseIPRules feeds the networking card's IP rules box: every rule it
// accepts is an IPv4 address or range, and it never panics.
func FuzzParseIPRules(f *testing.F) {
	for _, s := range []string{"203.0.113.7", "198.51.100.0/24\n203.0.113.7", "10.0.0.0/33", "::1", " , \n\t", "1.2.3.4/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		rules, msg := parseIPRules(text)
		if msg != "" {
			return
		}
		for _, r := range rules {
			if r.Value == "" || strings.ContainsAny(r.Value, " \t\n,") {
				t.Fatalf("accepted rule %q from %q", r.Value, text)
			}
		}
	})
}
