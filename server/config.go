package server

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyhold/keyhold/keyvault"
)

// Profiles a server can run with. "preview" is handed to components that
// have preview behaviour; today it is only logged.
const (
	ProfileDefault = "default"
	ProfilePreview = "preview"
)

// Defaults of Config.
const (
	DefaultListen          = "127.0.0.1:8443"
	DefaultDataDir         = "keyhold-data"
	DefaultTokenLifetime   = time.Hour
	DefaultShutdownTimeout = 15 * time.Second
	DefaultDBFile          = "keyhold.db"
	BootstrapFile          = "bootstrap.json"
)

// Config configures a server. The zero value of each field means its
// default.
type Config struct {
	// Listen is the TCP address to listen on; port 0 picks a free port.
	Listen string
	// DataDir holds the SQLite database, master.key, ca.pem and
	// bootstrap.json.
	DataDir string
	// DatabaseURL selects PostgreSQL instead of SQLite in DataDir.
	DatabaseURL string
	// Hostnames are extra names (DNS or IP) for the server certificate.
	Hostnames []string
	// PublicURL is the server's URL as clients see it, with a trailing
	// slash; the default is https://<listen address>/.
	PublicURL string
	// MasterKeyFile names a file with the base64 master key.
	MasterKeyFile string
	// TLSCertFile and TLSKeyFile replace the generated certificate.
	TLSCertFile, TLSKeyFile string
	// Profile is ProfileDefault or ProfilePreview.
	Profile string
	// RegistrationDelay is how long provider and feature registrations
	// stay in Registering before they complete.
	RegistrationDelay time.Duration
	// TokenLifetime is the lifetime of access tokens.
	TokenLifetime time.Duration
	// LogLevel is the minimum level of the logger cmdServe builds; Run
	// itself logs through the logger it is given.
	LogLevel slog.Level
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// HealthInterval and HealthUnhealthyInterval are how often the policy
	// health monitor probes a policy, and an Unhealthy one; zero means the
	// monitor's defaults (60 s and 10 s). Events make it check at once
	// whatever these are.
	HealthInterval, HealthUnhealthyInterval time.Duration
	// VaultDomain, when set, makes vault URIs host-style,
	// https://<name>.<VaultDomain>[:port of the public URL]/, as Azure's
	// https://<name>.vault.azure.net/ are, so that the Azure SDKs parse key
	// ids and verify the challenge's resource; path-style URLs keep working.
	// Clients must resolve *.<VaultDomain> to this server, and the generated
	// certificate carries the SAN *.<VaultDomain>. Empty keeps path-style.
	VaultDomain string
	// SeparationOfDuties turns separation of duties on for every tenant,
	// whatever their own setting: no principal may then be both a key vault
	// administrator and a platform administrator (package duties).
	SeparationOfDuties bool

	// Now is the clock handed to every component; nil means time.Now.
	Now func() time.Time
	// Getenv reads the environment (KEYHOLD_MASTER_KEY); nil means os.Getenv.
	Getenv func(string) string
	// OnReady, if set, is called by Run once the server is listening, so
	// that a command can tell its user where.
	OnReady func(*Server)
}

// withDefaults fills in defaults and checks what can be checked before
// anything is opened.
func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, fmt.Errorf("server: --listen %q must be host:port, such as 127.0.0.1:8443: %v", c.Listen, err)
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("server: --data-dir %q: %w", c.DataDir, err)
	}
	c.DataDir = abs
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return c, fmt.Errorf("server: --public-url %q must be an absolute https URL such as https://keyhold.example:8443/", c.PublicURL)
		}
		if !strings.HasSuffix(c.PublicURL, "/") {
			c.PublicURL += "/"
		}
	}
	if c.VaultDomain != "" {
		c.VaultDomain = keyvault.NormalizeVaultDomain(c.VaultDomain)
		if err := keyvault.CheckVaultDomain(c.VaultDomain); err != nil {
			return c, fmt.Errorf("server: --vault-domain: %s", strings.TrimPrefix(err.Error(), "keyvault: "))
		}
		// Every request to a host below the vault domain goes to the vault,
		// so the server's own host must not be one.
		if u, err := url.Parse(c.PublicURL); err == nil && strings.HasSuffix(strings.ToLower(u.Hostname()), "."+c.VaultDomain) {
			return c, fmt.Errorf("server: --public-url %q must not be below --vault-domain %s: requests to it would reach the vault", c.PublicURL, c.VaultDomain)
		}
	}
	switch c.Profile {
	case "":
		c.Profile = ProfileDefault
	case ProfileDefault, ProfilePreview:
	default:
		return c, fmt.Errorf("server: --profile %q must be %q or %q", c.Profile, ProfileDefault, ProfilePreview)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return c, fmt.Errorf("server: --tls-cert and --tls-key must be given together")
	}
	if c.RegistrationDelay < 0 {
		return c, fmt.Errorf("server: --registration-delay must not be negative")
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	if c.TokenLifetime < time.Minute || c.TokenLifetime > 24*time.Hour {
		return c, fmt.Errorf("server: --token-lifetime %v must be between 1m and 24h", c.TokenLifetime)
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// publicURLFor is the default public URL for a listener's address: a
// wildcard host becomes localhost, which the certificate always carries.
func publicURLFor(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "https://" + addr.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "https://" + net.JoinHostPort(host, port) + "/"
}
