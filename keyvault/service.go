package keyvault

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/seal"
)

// Config configures the vault service.
type Config struct {
	// Store keeps vault resources (as keyhold.Resource) and keys.
	Store keyhold.Store
	// Seal seals private key material at rest under the master key.
	Seal *seal.Key
	// Authz decides RBAC for management actions and, on vaults with RBAC
	// authorization, for data actions.
	Authz *rbac.Authorizer
	// Events receives every change that can affect access to a key; nil
	// publishes nowhere.
	Events *events.Bus
	// PublicURL is the server's base URL with a trailing slash; vault URLs
	// are PublicURL + "vaults/" + name, and the challenge's authority is
	// PublicURL + tenant id.
	PublicURL string
	// Audience is the token audience the data plane accepts and names in
	// its challenge.
	Audience string
	// VaultDomain, when set, makes vault URIs host-style:
	// https://<name>.<VaultDomain>[:port of PublicURL]/, served at the root
	// of that host beside the path-style /vaults/{name}/ (vaulthost.go).
	// Empty keeps vault URIs path-style.
	VaultDomain string
	// HSM is the hardware security module for -HSM keys; nil means none is
	// configured and creating one fails with an error that says so.
	HSM HSM
	// Logger receives the service's log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RotationInterval is how often the background rotator and purger look
	// for due work; 0 means one minute.
	RotationInterval time.Duration
	// NodeID names this process for the background round's lease; empty
	// means a random name, unique to this process.
	NodeID string
	// Duties checks every write of access policies (vault PUT and PATCH,
	// accessPolicies/{add,replace}) in its transaction; nil checks nothing.
	Duties *duties.Checker
}

// HSM is a hardware security module that generates and uses -HSM keys
// without letting them out. A later driver (PKCS#11) implements it.
type HSM interface {
	// Name says which module this is, for messages.
	Name() string
}

// Service is the built-in key vault: the resource type for the resource
// manager, and the keys data plane.
type Service struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	// cache keeps parsed private keys of the data plane (keys_crypto.go).
	cache keyCache
	// host is the host-style URL setting (vaulthost.go).
	host hostStyle
}

// New returns the vault service.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.RotationInterval == 0 {
		s.cfg.RotationInterval = time.Minute
	}
	if s.cfg.NodeID == "" {
		b := make([]byte, 8)
		rand.Read(b)
		s.cfg.NodeID = "keyvault-" + hex.EncodeToString(b)
	}
	if !strings.HasSuffix(s.cfg.PublicURL, "/") {
		s.cfg.PublicURL += "/"
	}
	s.host = newHostStyle(cfg.VaultDomain, s.cfg.PublicURL)
	return s
}

// VaultURI returns the URL of the named vault, with a trailing slash as Azure
// writes vaultUri: https://<name>.<vault domain>[:port]/ when a vault domain
// is configured, else path-style below the public URL.
func (s *Service) VaultURI(name string) string {
	if s.host.domain != "" {
		return s.host.scheme + "://" + strings.ToLower(name) + "." + s.host.domain + s.host.port + "/"
	}
	return s.cfg.PublicURL + "vaults/" + name + "/"
}
