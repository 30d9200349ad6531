// Package environment is the heart of Keyhold: environments whose data is
// encrypted at rest under the platform's key or a customer's key, and the
// customer-managed-key lifecycle (link, unlink, swap, rotate, lock, unlock,
// BYOK migration) done online, without the downtime the seed describes.
//
// The package owns each environment's root-key generations and the keyring of
// unwrapped root keys. The data API (package dataverse) seals and opens
// records through an *Env handle from Service.Open, which refuses locked
// environments at once.
package environment

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/policy"
	"github.com/keyhold/keyhold/rbac"
)

// DetailEnvironmentLocked is the error detail of every data request to a
// locked environment.
const DetailEnvironmentLocked = "EnvironmentLocked"

// Profiles.
const (
	ProfileDefault = "default"
	ProfilePreview = "preview" // the seed's preview: Sandbox environments only
)

// Config configures the environment service.
type Config struct {
	Store keyhold.Store
	// Wrapper wraps and unwraps root keys with the platform's or a
	// customer's key (kms.Counted around the built-in driver in the server).
	Wrapper kms.Wrapper
	// PlatformKey is the platform-managed key that wraps root keys of
	// environments without a policy.
	PlatformKey keyhold.WrapRef
	// TenantKeys keeps tenants' uploaded protection keys (legacy BYOK);
	// nil refuses uploads.
	TenantKeys TenantKeyImporter
	// Policies reads enterprise policies and their health.
	Policies *policy.Service
	Authz    *rbac.Authorizer
	Events   *events.Bus
	// Profile is ProfileDefault or ProfilePreview.
	Profile string
	// GracePeriod is how long an environment keeps serving from cached keys
	// while its vault is unreachable (not denied); default 10 minutes.
	GracePeriod time.Duration
	// NodeID names this process's lifecycle workers in operation leases and
	// log lines; it must differ between processes sharing a store. Empty
	// makes a random one, "node-" and 8 hex digits.
	NodeID string
	Logger *slog.Logger
	Now    func() time.Time

	// Lifecycle tunes the CMK lifecycle operations (operation.go).
	Lifecycle LifecycleConfig
}

// Service is the environment service.
type Service struct {
	cfg  Config
	log  *slog.Logger
	now  func() time.Time
	ring *envelope.Keyring
	node string // Config.NodeID or the random name New made

	mu     sync.RWMutex
	locked map[string]string // lower-case environment id -> reason, for the data path

	core core // the environment cache, roles and lock loop (core.go, lock.go); zero value ready

	life lifecycle // the lifecycle worker's state (operation.go); zero value ready
}

// New returns the environment service.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now, locked: map[string]string{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.GracePeriod == 0 {
		s.cfg.GracePeriod = 10 * time.Minute
	}
	if s.cfg.Profile == "" {
		s.cfg.Profile = ProfileDefault
	}
	// Kept out of cfg, so that a Service made from another's Config (a
	// test's second process) gets a name of its own.
	s.node = cfg.NodeID
	if s.node == "" {
		s.node = "node-" + randomHex(4)
	}
	s.ring = envelope.NewKeyring(cfg.Store, kms.GenerationUnwrapper{Wrapper: cfg.Wrapper})
	return s
}

// Keyring returns the keyring of unwrapped root keys, for metrics and tests.
func (s *Service) Keyring() *envelope.Keyring { return s.ring }

// Env is an open environment: what the data path needs to seal new records
// and open old ones. It is cheap to get and holds no key itself.
type Env struct {
	Environment *keyhold.Environment
	// Active is the generation new writes are sealed under.
	Active int64
	ring   *envelope.Keyring
}

// Seal seals a record of table and row id under the active generation.
func (e *Env) Seal(ctx context.Context, b envelope.Binding, plaintext []byte) ([]byte, int64, error) {
	sealed, err := e.ring.Seal(ctx, e.Active, b, plaintext)
	return sealed, e.Active, err
}

// Open opens a record sealed under any live generation of the environment.
func (e *Env) Open(ctx context.Context, b envelope.Binding, sealed []byte) ([]byte, error) {
	return e.ring.Open(ctx, b, sealed)
}

// lockedReason returns why the environment is locked, or "".
func (s *Service) lockedReason(id string) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.locked[strings.ToLower(id)]
}

// setLocked records (reason != "") or clears the lock of an environment in
// the data path's view and wipes its cached keys when locking.
func (s *Service) setLocked(id, reason string) {
	s.mu.Lock()
	if reason == "" {
		delete(s.locked, strings.ToLower(id))
	} else {
		s.locked[strings.ToLower(id)] = reason
	}
	s.mu.Unlock()
	if reason != "" {
		s.ring.Wipe(id)
	}
}

// lockedError is the error every data request to a locked environment gets.
func lockedError(id, reason string) error {
	return keyhold.Errorc(keyhold.EForbidden, DetailEnvironmentLocked,
		"environment %s is locked (Environment disabled): %s. An administrator with Reader on the enterprise policy can re-enable it once access to the key is restored", id, reason)
}
