// Package identity is Keyhold's token issuer and directory. It speaks the
// Microsoft identity platform v2 contract (token endpoint, OpenID metadata,
// JWKS, user realm) so that the Azure SDK credentials work against it with
// only the authority host changed, verifies the access tokens it issued, and
// keeps the principals of each tenant: users with passwords, service
// principals with client secrets, managed identities, groups and directory
// roles. GraphHandler serves a Graph-like subset of the directory API.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/seal"
)

// Audiences of the services Keyhold issues tokens for. Tokens carry them
// without a trailing slash.
const (
	AudienceManagement = "https://management.keyhold.internal"
	AudiencePlatform   = "https://service.powerapps.keyhold.internal"
	AudienceVault      = "https://vault.keyhold.internal"
	AudienceGraph      = "https://graph.keyhold.internal"
)

// KnownAudiences lists every audience a token may be requested for.
var KnownAudiences = []string{AudienceManagement, AudiencePlatform, AudienceVault, AudienceGraph}

// PublicClientIDs are the first-party public client application ids that may
// use the password grant without being registered in a tenant, as Entra ID
// lets the Azure CLI and Azure PowerShell do.
var PublicClientIDs = map[string]string{
	"04b07795-8ddb-461a-bbee-02f9e1bf7b46": "Microsoft Azure CLI",
	"1950a258-227b-4e31-a9cf-717495945dc2": "Microsoft Azure PowerShell",
}

// Setting names under which the Service keeps its sealed secrets; each is also
// the seal label.
const (
	settingSigningKey    = "identity/signing-key"
	settingSecretHashKey = "identity/secret-hash-key"
	labelRefreshToken    = "identity/refresh-token"
)

// Config configures a Service.
type Config struct {
	// PublicURL is the authority host as clients see it, with a trailing
	// slash, such as https://127.0.0.1:8443/.
	PublicURL string
	// TokenLifetime is how long access tokens live; 0 means one hour.
	TokenLifetime time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages, never secrets; nil discards.
	Logger *slog.Logger

	// RefreshTokenLifetime is how long refresh tokens live; 0 means 24 hours.
	RefreshTokenLifetime time.Duration
	// MaxFailures is how many wrong passwords or client secrets a principal
	// may present before it is locked out; 0 means 5.
	MaxFailures int
	// FailureRefill is how long it takes to forgive one failure; 0 means one
	// minute.
	FailureRefill time.Duration
	// Audiences overrides KnownAudiences.
	Audiences []string
	// Rand is the source of ids and secrets; nil means crypto/rand.
	Rand io.Reader
	// Duties checks each new platform role and group membership in the
	// transaction that writes it; nil checks nothing.
	Duties *duties.Checker
}

// Service issues and verifies tokens and keeps the directory.
type Service struct {
	store     keyhold.Store
	seal      *seal.Key
	publicURL string
	lifetime  time.Duration
	rtLife    time.Duration
	now       func() time.Time
	log       *slog.Logger
	rand      io.Reader
	audiences []string
	duties    *duties.Checker

	signer  *rsa.PrivateKey
	kid     string
	hashKey keyhold.Secret // keys the hash of client secrets

	limiter *limiter
	argon   argonParams

	dummyOnce sync.Once
	dummyHash string // verified against when a user does not exist, so timing does not tell
}

// New returns a Service over store. On first start it creates the token
// signing key and the client-secret hash key and keeps them in the store's
// settings sealed under key; later starts, and other processes sharing the
// store, reuse them. It returns an error if the configuration is invalid or
// the stored keys cannot be read or opened (a different master key).
func New(ctx context.Context, store keyhold.Store, key *seal.Key, cfg Config) (*Service, error) {
	if store == nil || key == nil {
		return nil, errors.New("identity: a store and a seal key are required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("identity: public URL %q must be an absolute http(s) URL", cfg.PublicURL)
	}
	s := &Service{
		store:     store,
		seal:      key,
		publicURL: strings.TrimRight(cfg.PublicURL, "/") + "/",
		lifetime:  cfg.TokenLifetime,
		rtLife:    cfg.RefreshTokenLifetime,
		now:       cfg.Now,
		log:       cfg.Logger,
		rand:      cfg.Rand,
		audiences: cfg.Audiences,
		duties:    cfg.Duties,
		argon:     defaultArgon,
	}
	if s.lifetime <= 0 {
		s.lifetime = time.Hour
	}
	if s.rtLife <= 0 {
		s.rtLife = 24 * time.Hour
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if len(s.audiences) == 0 {
		s.audiences = KnownAudiences
	}
	s.audiences = append([]string(nil), s.audiences...) // ours to canonicalize
	for i, a := range s.audiences {
		s.audiences[i] = strings.TrimRight(a, "/")
	}
	max, refill := cfg.MaxFailures, cfg.FailureRefill
	if max <= 0 {
		max = 5
	}
	if refill <= 0 {
		refill = time.Minute
	}
	s.limiter = newLimiter(max, refill)

	der, err := s.loadOrCreate(ctx, settingSigningKey, func() ([]byte, error) {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		return x509.MarshalPKCS8PrivateKey(k)
	})
	if err != nil {
		return nil, err
	}
	pk, err := x509.ParsePKCS8PrivateKey(der.Reveal())
	der.Wipe()
	if err != nil {
		return nil, fmt.Errorf("identity: stored signing key is damaged: %w", err)
	}
	rk, ok := pk.(*rsa.PrivateKey)
	if !ok || rk.N.BitLen() < 2048 {
		return nil, errors.New("identity: stored signing key is not an RSA key of at least 2048 bits")
	}
	s.signer = rk
	s.kid = thumbprint(&rk.PublicKey)

	s.hashKey, err = s.loadOrCreate(ctx, settingSecretHashKey, func() ([]byte, error) {
		b := make([]byte, 32)
		_, err := io.ReadFull(rand.Reader, b)
		return b, err
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// loadOrCreate returns the secret setting name, creating it with gen on first
// use. Concurrent first starts race on CreateSetting; the loser reads the
// winner's value, so all processes agree.
func (s *Service) loadOrCreate(ctx context.Context, name string, gen func() ([]byte, error)) (keyhold.Secret, error) {
	sealed, err := s.store.GetSetting(ctx, name)
	if keyhold.IsNotFound(err) {
		plain, gerr := gen()
		if gerr != nil {
			return keyhold.Secret{}, fmt.Errorf("identity: create %s: %w", name, gerr)
		}
		sealed = s.seal.Seal(name, plain)
		clear(plain)
		err = s.store.CreateSetting(ctx, name, sealed)
		if keyhold.IsConflict(err) {
			sealed, err = s.store.GetSetting(ctx, name)
		}
		if err == nil {
			s.log.Info("identity: created key", "setting", name)
		}
	}
	if err != nil {
		return keyhold.Secret{}, fmt.Errorf("identity: load %s: %w", name, err)
	}
	sec, err := s.seal.Open(name, sealed)
	if err != nil {
		return keyhold.Secret{}, fmt.Errorf("identity: open %s: %w", name, err)
	}
	return sec, nil
}

// issuer returns the token issuer of a tenant.
func (s *Service) issuer(tenantID string) string {
	return s.publicURL + tenantID + "/v2.0"
}

// audience returns the canonical spelling of a requested resource, and
// whether it is one Keyhold serves.
func (s *Service) audience(resource string) (string, bool) {
	r := strings.TrimRight(resource, "/")
	for _, a := range s.audiences {
		if strings.EqualFold(a, r) {
			return a, true
		}
	}
	return "", false
}

// newID returns a random (version 4) GUID.
func (s *Service) newID() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", keyhold.Internal("identity: new id", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]), nil
}

// isGUID reports whether s is spelled as a GUID.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
