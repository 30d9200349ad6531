package environment

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/policy"
)

// Error details of the environment core. Those the lifecycle also uses keep
// the lifecycle's exported names (preconditions.go) and the same values.
const (
	detailEnvNotFound          = "EnvironmentNotFound"
	detailPolicyUnhealthy      = "EnterprisePolicyUnhealthy"
	detailPolicyReadRequired   = "EnterprisePolicyReadAccessRequired"
	DetailEnvironmentAccess    = "EnvironmentAccessDenied"
	DetailNotPlatformAdmin     = "NotPlatformAdministrator"
	DetailInvalidEnvironment   = "InvalidEnvironmentRequest"
	DetailEnvironmentBusy      = "EnvironmentOperationInProgress"
	DetailEnvironmentNotLocked = "EnvironmentNotDisabled"
	DetailRetentionNotReached  = "EnvironmentLockedRetention"
	DetailKeyNotAccessible     = "EncryptionKeyNotAccessible"
)

// actionPolicyRead is what re-enabling asks of the caller on the policy:
// the documentation's "read access to the enterprise policy".
const actionPolicyRead = "Microsoft.PowerPlatform/enterprisePolicies/read"

// Operation types the core records in an environment's history.
const (
	OpTypeCreate    = "Create"
	OpTypeLock      = "Disable Environment"
	OpTypeReenable  = "Re-enable Environment"
	OpTypeRetention = "Locked Environment Retention"
)

// maxDisplayName bounds an environment's display name, as the admin center does.
const maxDisplayName = 100

// EnvironmentTypes are the environment types Keyhold knows.
var EnvironmentTypes = []string{keyhold.EnvProduction, keyhold.EnvSandbox, keyhold.EnvTrial, keyhold.EnvDeveloper, keyhold.EnvTeams}

// core is the service's in-memory view for the data path: each open
// environment with its active generation and role holders, so that a warm
// Open reads nothing from the store. Events invalidate it.
type core struct {
	mu    sync.Mutex
	cache map[string]*envState // lower-case id
	// epoch counts invalidations, so that a load that raced one does not
	// put a stale state back.
	epoch uint64
	// sub carries events.EnvironmentChanged (and Resync) to the cache; Open
	// drains it before looking, so no goroutine is needed for the cache to
	// see every change published before the request.
	subOnce sync.Once
	sub     *events.Subscription
	// locking counts the locks of each environment under way in this
	// process: between the lock map and the store's Disabled, a load that
	// still reads Enabled must not clear the lock map.
	locking map[string]int

	loop      sync.Mutex           // guards the fields below
	grace     map[string]time.Time // lower-case policy id -> unreachable since
	stop      context.CancelFunc
	done      chan struct{}
	graceWake chan struct{}
}

// envState is what Open needs of one environment.
type envState struct {
	env    keyhold.Environment
	active int64
	roles  map[string]string // object id -> role
}

// CreateRequest is what creating an environment takes.
type CreateRequest struct {
	DisplayName string
	Region      string // a Power Platform region (policy.Regions)
	Type        string // one of EnvironmentTypes
	Managed     bool   // a Managed Environment
}

// Open is the data path's gate. It returns the environment envID for a
// caller who may use its data, with the generation new writes are sealed
// under. Once warm it reads nothing from the store.
//
// Errors: EUnauthenticated without a caller; ENotFound (DetailEnvironmentNotFound)
// when the environment does not exist in the caller's tenant; EForbidden
// (DetailEnvironmentAccess) when the caller holds no environment role and is
// no platform administrator; EForbidden (DetailEnvironmentLocked) when the
// environment is locked, saying why; the store's error otherwise. write is
// accepted for symmetry with the data API: both environment roles may read
// and write data.
func (s *Service) Open(ctx context.Context, caller *keyhold.Caller, envID string, write bool) (*Env, error) {
	_ = write
	if caller == nil || caller.Principal == nil {
		return nil, keyhold.Errorf(keyhold.EUnauthenticated, "environment: the request carries no caller")
	}
	st, err := s.state(ctx, envID)
	if keyhold.IsNotFound(err) {
		return nil, notFound(envID, caller.TenantID)
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(st.env.TenantID, caller.TenantID) {
		return nil, notFound(envID, caller.TenantID)
	}
	if role := roleOf(st, caller); role == "" {
		return nil, keyhold.Errorc(keyhold.EForbidden, DetailEnvironmentAccess,
			"environment: principal %s holds no role in environment %s; an administrator can grant %s or %s", caller.Principal.ID, st.env.ID, RoleEnvironmentAdmin, RoleEnvironmentUser)
	}
	if reason := s.lockedReason(st.env.ID); reason != "" {
		return nil, lockedError(st.env.ID, reason)
	}
	if st.env.RuntimeState == keyhold.RuntimeDisabled {
		// Locked by another process whose event got here before the lock map
		// caught up, or found so on load.
		return nil, lockedError(st.env.ID, lockReasonOf(&st.env))
	}
	e := st.env
	return &Env{Environment: &e, Active: st.active, ring: s.ring}, nil
}

// lockReasonOf is an environment's lock reason, never empty for a locked one.
func lockReasonOf(e *keyhold.Environment) string {
	if e.LockReason != "" {
		return e.LockReason
	}
	return "the environment's encryption key is not accessible"
}

// notFound is Microsoft's answer for an environment the caller may not see.
func notFound(envID, tenantID string) error {
	return keyhold.Errorc(keyhold.ENotFound, detailEnvNotFound,
		"The environment '%s' could not be found in the tenant '%s'.", envID, tenantID)
}

// state returns the cached state of an environment, loading it on a miss:
// ENotFound if it does not exist, the store's error otherwise.
func (s *Service) state(ctx context.Context, envID string) (*envState, error) {
	key := strings.ToLower(strings.TrimSpace(envID))
	if key == "" {
		return nil, keyhold.Errorf(keyhold.ENotFound, "environment: no environment id")
	}
	c := &s.core
	s.drainChanges()
	c.mu.Lock()
	if st, ok := c.cache[key]; ok {
		c.mu.Unlock()
		return st, nil
	}
	epoch := c.epoch
	c.mu.Unlock()

	st, err := s.loadState(ctx, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.epoch == epoch {
		if c.cache == nil {
			c.cache = map[string]*envState{}
		}
		c.cache[key] = st
	}
	c.mu.Unlock()
	// The store is the truth between processes: a lock or unlock made
	// elsewhere reaches this process's lock map through the reload its
	// EnvironmentChanged event caused.
	switch {
	case st.env.RuntimeState == keyhold.RuntimeDisabled && s.lockedReason(key) == "":
		s.setLocked(st.env.ID, lockReasonOf(&st.env))
	case st.env.RuntimeState == keyhold.RuntimeEnabled && s.lockedReason(key) != "" && !s.isLocking(key):
		s.setLocked(st.env.ID, "")
	}
	return st, nil
}

func (s *Service) loadState(ctx context.Context, id string) (*envState, error) {
	e, err := s.cfg.Store.GetEnvironment(ctx, id)
	if err != nil {
		return nil, err
	}
	gens, err := s.cfg.Store.ListGenerations(ctx, e.ID)
	if err != nil && !keyhold.IsNotFound(err) {
		return nil, err
	}
	active := activeGeneration(gens)
	if active == 0 {
		return nil, keyhold.Internal("environment: open", fmt.Errorf("environment %s has no usable root-key generation", e.ID))
	}
	roles, err := s.loadRoles(ctx, s.cfg.Store, e.ID)
	if err != nil {
		return nil, err
	}
	return &envState{env: *e, active: active, roles: roles}, nil
}

// activeGeneration is the newest active generation, or else the newest one
// not destroyed; 0 if there is none.
func activeGeneration(gens []*keyhold.RootKeyGeneration) int64 {
	var active, live int64
	for _, g := range gens {
		if g.State == keyhold.GenerationActive && g.Generation > active {
			active = g.Generation
		}
		if g.State != keyhold.GenerationDestroyed && g.Generation > live {
			live = g.Generation
		}
	}
	if active != 0 {
		return active
	}
	return live
}

// beginLock marks a lock of the environment under way; the returned
// function ends it.
func (s *Service) beginLock(id string) func() {
	c := &s.core
	key := strings.ToLower(id)
	c.mu.Lock()
	if c.locking == nil {
		c.locking = map[string]int{}
	}
	c.locking[key]++
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		if c.locking[key]--; c.locking[key] <= 0 {
			delete(c.locking, key)
		}
		c.mu.Unlock()
	}
}

func (s *Service) isLocking(key string) bool {
	c := &s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.locking[key] > 0
}

// drainChanges applies the environment changes published since the last
// call to the cache.
func (s *Service) drainChanges() {
	c := &s.core
	c.subOnce.Do(func() {
		if s.cfg.Events != nil {
			c.sub = s.cfg.Events.Subscribe(func(e events.Event) bool { return e.Kind == events.EnvironmentChanged })
		}
	})
	if c.sub == nil {
		return
	}
	for {
		select {
		case e, ok := <-c.sub.C():
			if !ok {
				return
			}
			if e.Kind == events.Resync {
				s.Invalidate("")
			} else {
				s.Invalidate(e.Scope)
			}
		default:
			return
		}
	}
}

// Invalidate forgets the cached state of an environment ("" for every
// one), so that the next Open re-reads it. The lifecycle calls it (through
// events.EnvironmentChanged) when generations or the link change.
func (s *Service) Invalidate(envID string) {
	c := &s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if envID == "" {
		c.cache = nil
		return
	}
	delete(c.cache, strings.ToLower(envID))
}

// announce tells every process (through the event bridge) to re-read
// the environment.
func (s *Service) announce(ctx context.Context, e *keyhold.Environment, detail string) {
	s.Invalidate(e.ID)
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(context.WithoutCancel(ctx), events.Event{Kind: events.EnvironmentChanged, TenantID: e.TenantID, Scope: e.ID, Detail: detail})
	}
}

// requireAdmin returns ENotFound, Microsoft's answer, unless the caller is a
// platform administrator of tenantID.
func requireAdmin(caller *keyhold.Caller, envID, tenantID string) error {
	if caller == nil || caller.Principal == nil {
		return keyhold.Errorf(keyhold.EUnauthenticated, "environment: the request carries no caller")
	}
	if !caller.Principal.IsPlatformAdmin() || !strings.EqualFold(caller.TenantID, tenantID) {
		return notFound(envID, caller.TenantID)
	}
	return nil
}

// Get returns the environment envID to a platform administrator of its
// tenant. Errors: ENotFound (DetailEnvironmentNotFound) for anyone else or a
// missing environment; the store's error otherwise.
func (s *Service) Get(ctx context.Context, caller *keyhold.Caller, envID string) (*keyhold.Environment, error) {
	if caller == nil || caller.Principal == nil {
		return nil, keyhold.Errorf(keyhold.EUnauthenticated, "environment: the request carries no caller")
	}
	if strings.TrimSpace(envID) == "" {
		return nil, notFound(envID, caller.TenantID)
	}
	e, err := s.cfg.Store.GetEnvironment(ctx, envID)
	if keyhold.IsNotFound(err) {
		return nil, notFound(envID, caller.TenantID)
	}
	if err != nil {
		return nil, err
	}
	if err := requireAdmin(caller, envID, e.TenantID); err != nil {
		return nil, err
	}
	return e, nil
}

// List returns the environments of the caller's tenant to a platform
// administrator, oldest first; anyone else sees none. It returns the store's
// error.
func (s *Service) List(ctx context.Context, caller *keyhold.Caller) ([]*keyhold.Environment, error) {
	if caller == nil || caller.Principal == nil {
		return nil, keyhold.Errorf(keyhold.EUnauthenticated, "environment: the request carries no caller")
	}
	if !caller.Principal.IsPlatformAdmin() || caller.TenantID == "" {
		return nil, nil
	}
	list, err := s.cfg.Store.ListEnvironments(ctx, caller.TenantID)
	if err != nil && !keyhold.IsNotFound(err) {
		return nil, err
	}
	return list, nil
}

// Create creates an environment in the caller's tenant under the platform
// key: generation 1 is 32 random bytes wrapped by cfg.PlatformKey, cached at
// once so that the first writes call no vault.
//
// Errors: EForbidden (DetailNotPlatformAdmin) unless the caller is a platform
// administrator; EInvalid (DetailInvalidEnvironment) for a missing or bad
// display name, region or type; the wrapper's error when the platform key
// cannot wrap (EUnavailable when its vault cannot be reached); the store's.
func (s *Service) Create(ctx context.Context, caller *keyhold.Caller, req CreateRequest) (*keyhold.Environment, error) {
	if caller == nil || caller.Principal == nil {
		return nil, keyhold.Errorf(keyhold.EUnauthenticated, "environment: the request carries no caller")
	}
	if !caller.Principal.IsPlatformAdmin() {
		return nil, keyhold.Errorc(keyhold.EForbidden, DetailNotPlatformAdmin,
			"environment: only Global, Power Platform and Dynamics 365 administrators may create environments")
	}
	e, err := s.newEnvironment(caller, req)
	if err != nil {
		return nil, err
	}
	root, err := envelope.NewRootKey(rand.Reader)
	if err != nil {
		return nil, keyhold.Internal("environment: root key", err)
	}
	defer root.Wipe()
	wrapped, used, err := s.cfg.Wrapper.Wrap(ctx, s.cfg.PlatformKey, root)
	if err != nil {
		s.log.Error("environment: the platform key did not wrap a new root key", "ref", kms.Describe(s.cfg.PlatformKey), "err", err.Error())
		if code := keyhold.ErrorCode(err); code == keyhold.EUnavailable || code == keyhold.EForbidden {
			return nil, keyhold.Errorc(keyhold.EUnavailable, "PlatformKeyUnavailable", "environment: the platform key cannot be used right now; try again later")
		}
		return nil, keyhold.Internal("environment: wrap root key", err)
	}
	now := e.CreatedAt
	g := &keyhold.RootKeyGeneration{EnvironmentID: e.ID, Generation: 1, Wrapped: wrapped, WrappedBy: used,
		State: keyhold.GenerationActive, CreatedAt: now, UpdatedAt: now}
	op := &keyhold.Operation{ID: newGUID(), TenantID: e.TenantID, EnvironmentID: e.ID, Type: OpTypeCreate, Action: "create",
		State: keyhold.OpSucceeded, RequestedBy: caller.Principal.ID, CreatedAt: now, UpdatedAt: now}
	err = s.cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
		if err := tx.CreateEnvironment(ctx, e); err != nil {
			return err
		}
		if err := tx.CreateGeneration(ctx, g); err != nil {
			return err
		}
		return tx.CreateOperation(ctx, op)
	})
	if err != nil {
		return nil, err
	}
	if err := s.ring.Put(e.ID, 1, root); err != nil {
		return nil, keyhold.Internal("environment: cache root key", err)
	}
	s.log.Info("environment: created", "environment", e.ID, "tenant", e.TenantID, "type", e.Type, "region", e.Region, "by", caller.Principal.ID)
	s.announce(ctx, e, "environment: created")
	return e, nil
}

// newEnvironment validates req and returns the environment it describes.
func (s *Service) newEnvironment(caller *keyhold.Caller, req CreateRequest) (*keyhold.Environment, error) {
	name := strings.TrimSpace(req.DisplayName)
	switch {
	case name == "":
		return nil, invalid("environment: a display name is required")
	case utf8.RuneCountInString(name) > maxDisplayName:
		return nil, invalid("environment: the display name is longer than %d characters", maxDisplayName)
	}
	region := strings.ToLower(strings.TrimSpace(req.Region))
	if !policy.IsRegion(region) {
		return nil, invalid("environment: region %q is not a Power Platform region; use one of %s", req.Region, strings.Join(policy.Regions, ", "))
	}
	typ, ok := canonicalType(req.Type)
	if !ok {
		return nil, invalid("environment: type %q is not one of %s", req.Type, strings.Join(EnvironmentTypes, ", "))
	}
	now := s.now().UTC()
	return &keyhold.Environment{
		ID: newGUID(), TenantID: caller.TenantID, DisplayName: name, Region: region, Type: typ, Managed: req.Managed,
		RuntimeState: keyhold.RuntimeEnabled, KeyManagedBy: keyhold.KeyManagedByMicrosoft,
		EncryptionStatus: keyhold.EncryptionPlatform, CreatedBy: caller.Principal.ID, CreatedAt: now, UpdatedAt: now,
	}, nil
}

func canonicalType(t string) (string, bool) {
	for _, x := range EnvironmentTypes {
		if strings.EqualFold(x, strings.TrimSpace(t)) {
			return x, true
		}
	}
	return "", false
}

func invalid(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, DetailInvalidEnvironment, format, args...)
}

// Delete deletes an environment with its generations, data and history,
// and wipes its cached keys.
//
// Errors: ENotFound (DetailEnvironmentNotFound) unless the caller is a
// platform administrator of its tenant; EConflict (DetailEnvironmentBusy)
// while a link or unlink is under way; EConflict (DetailRetentionNotReached)
// for a locked environment, which is kept until access to its key is
// restored unless the tenant's retention period has run out; the store's.
func (s *Service) Delete(ctx context.Context, caller *keyhold.Caller, envID string) error {
	e, err := s.Get(ctx, caller, envID)
	if err != nil {
		return err
	}
	if e.LinkStatus == LinkLinking || e.LinkStatus == LinkUnlinking {
		return keyhold.Errorc(keyhold.EConflict, DetailEnvironmentBusy,
			"environment: %s is being %s; wait for the operation to end before deleting it", e.ID, strings.ToLower(strings.TrimSuffix(e.LinkStatus, "ing"))+"ed")
	}
	if e.RuntimeState == keyhold.RuntimeDisabled {
		ts, err := s.TenantSettings(ctx, e.TenantID)
		if err != nil {
			return err
		}
		due, ok := retentionDue(ts, e)
		if !ok || s.now().Before(due) {
			return keyhold.Errorc(keyhold.EConflict, DetailRetentionNotReached,
				"environment: %s is locked (Environment disabled: %s). A locked environment is kept so that nothing is lost once access to its key is restored; re-enable it first%s",
				e.ID, lockReasonOf(e), retentionHint(ok, due))
		}
	}
	return s.deleteEnvironment(ctx, e, caller.Principal.ID, "deleted by an administrator")
}

func retentionHint(on bool, due time.Time) string {
	if !on {
		return ""
	}
	return ", or wait until the tenant's retention period ends at " + due.UTC().Format(time.RFC3339)
}

func (s *Service) deleteEnvironment(ctx context.Context, e *keyhold.Environment, by, why string) error {
	if err := s.cfg.Store.DeleteEnvironment(ctx, e.ID); err != nil {
		return err
	}
	if err := s.clearRoles(ctx, e.ID); err != nil {
		s.log.Error("environment: role holders of a deleted environment were not cleared", "environment", e.ID, "err", err.Error())
	}
	s.ring.Wipe(e.ID)
	s.setLocked(e.ID, "")
	s.log.Info("environment: deleted", "environment", e.ID, "tenant", e.TenantID, "by", by, "why", why)
	s.announce(ctx, e, "environment: deleted")
	return nil
}

// Link states of an environment's customer-managed key.
const (
	LinkLinked    = "Linked"
	LinkLinking   = "Linking"
	LinkUnlinking = "Unlinking"
)

// newGUID returns a random version 4 UUID.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
