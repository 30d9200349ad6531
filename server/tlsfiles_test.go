package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOperatorCertificate serves a certificate given by --tls-cert/--tls-key
// and names that file as the CA in bootstrap.json.
func TestOperatorCertificate(t *testing.T) {
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "operator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "op.pem"), filepath.Join(dir, "op.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)

	s := start(t, filepath.Join(dir, "data"), io.Discard, func(c *Config) { c.TLSCertFile, c.TLSKeyFile = certFile, keyFile })
	defer s.Close()
	bf, _ := readBootstrapFile(t, s.BootstrapFile())
	if bf.CACertFile != certFile {
		t.Errorf("ca_cert_file = %q, want %q", bf.CACertFile, certFile)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "ca.pem")); err == nil {
		t.Error("ca.pem written although the operator gave a certificate")
	}
	if r := do(t, client(t, certFile), "GET", s.URL()+"healthz", "", nil); r.status != 200 {
		t.Errorf("healthz = %d", r.status)
	}
}
