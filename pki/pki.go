// Package pki gives the server its TLS certificate. On first start it makes a
// certificate authority (ECDSA P-256, ten years) and a server certificate
// signed by it (one year), keeps both in the store with their private keys
// sealed under the master key, and writes the CA certificate to
// DATA_DIR/ca.pem for clients to trust. Later starts reuse them and reissue
// the server certificate when its names differ from the ones wanted or its
// expiry is near. Operators may bring their own certificate instead
// (LoadFiles).
package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/seal"
)

// Store settings that hold the certificates (PEM) and their sealed keys. The
// key setting names are also the seal labels, so a CA key cannot be opened as
// a server key.
const (
	SettingCACert     = "pki/ca-cert"
	SettingCAKey      = "pki/ca-key"
	SettingServerCert = "pki/server-cert"
	SettingServerKey  = "pki/server-key"
)

// CAFileName is the name of the public CA certificate in the data directory.
const CAFileName = "ca.pem"

// Lifetimes of the certificates this package makes.
const (
	CALifetime     = 10 * 365 * 24 * time.Hour
	ServerLifetime = 365 * 24 * time.Hour
	// DefaultRenewBefore is how close to expiry a server certificate is
	// reissued at start.
	DefaultRenewBefore = 30 * 24 * time.Hour
	// clockSkew backdates NotBefore so that a client whose clock is a little
	// behind still accepts a certificate made a moment ago.
	clockSkew = 5 * time.Minute
)

// Store is what this package needs of the store: its settings and
// transactions, so that two processes starting together agree on one CA.
type Store interface {
	keyhold.SettingStore
	InTx(ctx context.Context, fn func(tx keyhold.Store) error) error
}

// Config configures Ensure.
type Config struct {
	Store Store
	Key   *seal.Key
	// Hostnames are the DNS names and IP addresses the server certificate
	// must carry besides localhost, 127.0.0.1 and ::1.
	Hostnames []string
	// DataDir receives ca.pem; empty means the file is not written.
	DataDir string
	// RenewBefore overrides DefaultRenewBefore when positive.
	RenewBefore time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

// Certs is the outcome of Ensure.
type Certs struct {
	CA     *x509.Certificate
	CAPEM  []byte
	CAFile string // absolute path of ca.pem, or "" when DataDir was empty
	Server tls.Certificate
	// Issued reports whether the server certificate was made by this call.
	Issued bool
}

// Ensure returns the CA and server certificate kept in the store, making
// either one if it is missing and reissuing the server certificate when its
// names differ from the wanted ones, its expiry is within RenewBefore, or it
// was not signed by the CA. It returns an error when a sealed key does not
// open (the wrong master key), a stored certificate is damaged, or the store
// or data directory cannot be written.
func Ensure(ctx context.Context, cfg Config) (*Certs, error) {
	now := time.Now
	if cfg.Now != nil {
		now = cfg.Now
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	renew := cfg.RenewBefore
	if renew <= 0 {
		renew = DefaultRenewBefore
	}
	if cfg.Store == nil || cfg.Key == nil {
		return nil, errors.New("pki: a store and a master key are needed")
	}

	ca, caKey, err := ensureCA(ctx, cfg, now(), logger)
	if err != nil {
		return nil, err
	}
	dns, ips := WantedSANs(cfg.Hostnames)

	out := &Certs{CA: ca, CAPEM: pemCert(ca.Raw)}
	cert, why, err := storedServer(ctx, cfg, ca, dns, ips, now(), renew)
	if err != nil {
		return nil, err
	}
	if cert == nil {
		cert, err = issueServer(ctx, cfg, ca, caKey, dns, ips, now())
		if err != nil {
			return nil, err
		}
		out.Issued = true
		logger.Info("issued a server certificate", "reason", why, "dns", dns, "ips", ipStrings(ips), "notAfter", cert.Leaf.NotAfter)
	}
	out.Server = *cert

	if cfg.DataDir != "" {
		path, err := filepath.Abs(filepath.Join(cfg.DataDir, CAFileName))
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		if err := writeIfChanged(path, out.CAPEM, 0o644); err != nil {
			return nil, fmt.Errorf("pki: cannot write the CA certificate: %w", err)
		}
		out.CAFile = path
	}
	return out, nil
}

// ensureCA reads the CA from the store or makes it. Both settings are created
// in one transaction with CreateSetting, so that of two first starts one wins
// and the other reads the winner's CA.
func ensureCA(ctx context.Context, cfg Config, now time.Time, logger *slog.Logger) (*x509.Certificate, crypto.Signer, error) {
	ca, key, err := loadPair(ctx, cfg.Store, cfg.Key, SettingCACert, SettingCAKey)
	if err == nil || !keyhold.IsNotFound(err) {
		return ca, key, err
	}
	ca, key, certPEM, keyDER, err := newCA(now)
	if err != nil {
		return nil, nil, err
	}
	sealed := cfg.Key.Seal(SettingCAKey, keyDER)
	wipe(keyDER)
	err = cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
		if err := tx.CreateSetting(ctx, SettingCACert, certPEM); err != nil {
			return err
		}
		return tx.CreateSetting(ctx, SettingCAKey, sealed)
	})
	if keyhold.IsConflict(err) {
		return loadPair(ctx, cfg.Store, cfg.Key, SettingCACert, SettingCAKey)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("pki: cannot store the CA: %w", err)
	}
	logger.Info("created a certificate authority", "subject", ca.Subject.CommonName, "notAfter", ca.NotAfter)
	return ca, key, nil
}

// loadPair reads a certificate and its sealed key. A missing certificate is
// ENotFound; a key that does not open is an error that says why.
func loadPair(ctx context.Context, store Store, k *seal.Key, certName, keyName string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := store.GetSetting(ctx, certName)
	if err != nil {
		if keyhold.IsNotFound(err) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("pki: cannot read %s: %w", certName, err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: the stored %s is damaged: %w", certName, err)
	}
	sealed, err := store.GetSetting(ctx, keyName)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: cannot read %s: %w", keyName, err)
	}
	der, err := k.Open(keyName, sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: the stored %s does not open under this master key: %w", keyName, err)
	}
	defer der.Wipe()
	parsed, err := x509.ParsePKCS8PrivateKey(der.Reveal())
	if err != nil {
		return nil, nil, fmt.Errorf("pki: the stored %s is damaged: %w", keyName, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok || !publicKeyEqual(signer.Public(), cert.PublicKey) {
		return nil, nil, fmt.Errorf("pki: the stored %s does not belong to %s", keyName, certName)
	}
	return cert, signer, nil
}

// storedServer returns the stored server certificate if it can be kept, or
// nil and the reason to issue a new one.
func storedServer(ctx context.Context, cfg Config, ca *x509.Certificate, dns []string, ips []net.IP, now time.Time, renew time.Duration) (*tls.Certificate, string, error) {
	cert, key, err := loadPair(ctx, cfg.Store, cfg.Key, SettingServerCert, SettingServerKey)
	switch {
	case keyhold.IsNotFound(err):
		return nil, "first start", nil
	case err != nil:
		// A damaged server certificate is replaceable; a key that does not
		// open is not damage but the wrong master key, which the master key
		// check has already ruled out, so reissuing is safe either way.
		return nil, "the stored certificate is unusable", nil
	case cert.CheckSignatureFrom(ca) != nil:
		return nil, "not signed by the current CA", nil
	case !sameSANs(cert, dns, ips):
		return nil, "host names changed", nil
	case cert.NotAfter.Sub(now) < renew:
		return nil, "expiry is near", nil
	}
	return &tls.Certificate{Certificate: [][]byte{cert.Raw, ca.Raw}, PrivateKey: key, Leaf: cert}, "", nil
}

func issueServer(ctx context.Context, cfg Config, ca *x509.Certificate, caKey crypto.Signer, dns []string, ips []net.IP, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot make a server key: %w", err)
	}
	notAfter := now.Add(ServerLifetime)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: serverCN(dns), Organization: []string{"Keyhold"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: cannot sign the server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	sealed := cfg.Key.Seal(SettingServerKey, keyDER)
	wipe(keyDER)
	err = cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
		if err := tx.PutSetting(ctx, SettingServerCert, pemCert(der)); err != nil {
			return err
		}
		return tx.PutSetting(ctx, SettingServerKey, sealed)
	})
	if err != nil {
		return nil, fmt.Errorf("pki: cannot store the server certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

func newCA(now time.Time) (cert *x509.Certificate, key crypto.Signer, certPEM, keyDER []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("pki: cannot make a CA key: %w", err)
	}
	sn := serial()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		// The serial in the name tells one installation's CA from another's
		// in a trust store.
		Subject:               pkix.Name{CommonName: "Keyhold Local CA " + sn.Text(16)[:8], Organization: []string{"Keyhold"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("pki: cannot make the CA certificate: %w", err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("pki: %w", err)
	}
	keyDER, err = x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("pki: %w", err)
	}
	return cert, k, pemCert(der), keyDER, nil
}

// WantedSANs returns the DNS names and IP addresses a server certificate must
// carry: localhost, 127.0.0.1, ::1 and every hostname, lowercased, without
// duplicates and sorted, so that two lists compare as sets. A hostname may be
// a wildcard, *.<domain>, which covers one label below domain.
func WantedSANs(hostnames []string) (dns []string, ips []net.IP) {
	seenIP := map[string]bool{}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hostnames...) {
		h = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(h), "["), "]")
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !seenIP[ip.String()] {
				seenIP[ip.String()] = true
				ips = append(ips, ip)
			}
			continue
		}
		dns = append(dns, strings.ToLower(strings.TrimSuffix(h, ".")))
	}
	slices.Sort(dns)
	dns = slices.Compact(dns)
	slices.SortFunc(ips, func(a, b net.IP) int { return bytes.Compare(a.To16(), b.To16()) })
	return dns, ips
}

func sameSANs(c *x509.Certificate, dns []string, ips []net.IP) bool {
	gotDNS := slices.Clone(c.DNSNames)
	for i := range gotDNS {
		gotDNS[i] = strings.ToLower(gotDNS[i])
	}
	slices.Sort(gotDNS)
	gotDNS = slices.Compact(gotDNS)
	if !slices.Equal(gotDNS, dns) {
		return false
	}
	got := ipStrings(c.IPAddresses)
	want := ipStrings(ips)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(slices.Compact(got), want)
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

// serverCN names the certificate after its first host name that is neither
// localhost nor a wildcard (such as the *.<vault domain> of host-style vault
// URLs, which sorts first).
func serverCN(dns []string) string {
	for _, d := range dns {
		if d != "localhost" && !strings.HasPrefix(d, "*.") {
			return d
		}
	}
	for _, d := range dns {
		if d != "localhost" {
			return d
		}
	}
	return "localhost"
}

// LoadFiles loads an operator's certificate chain and key from PEM files, as
// given by --tls-cert and --tls-key. It returns an error naming the file when
// either cannot be read or they do not match.
func LoadFiles(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: cannot load --tls-cert %s and --tls-key %s: %w", certFile, keyFile, err)
	}
	return cert, nil
}

// TLSConfig returns the server's TLS configuration for cert: TLS 1.2 at the
// least, with Go's default (forward-secret, AEAD) cipher suites.
func TLSConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
	}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic("pki: no randomness: " + err.Error())
	}
	// A zero serial is invalid; 2^127 choices make it rare but not impossible.
	return n.Add(n, big.NewInt(1))
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parseCertPEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}

// writeIfChanged writes b to path through a temporary file and a rename, so a
// client never reads half a certificate, and leaves an identical file alone.
func writeIfChanged(path string, b []byte, perm os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
