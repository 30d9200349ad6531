package environment

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/policy"
)

// systemActor names the platform itself in history entries it writes.
const systemActor = "system"

// lockTick is how often the lock loop looks at grace periods and retention.
// Grace periods are minutes, so a second is precise enough.
const lockTick = time.Second

// retentionWarnings are the times before deletion at which a locked
// environment's administrators are warned, as history entries and log lines.
var retentionWarnings = []time.Duration{72 * time.Hour, 24 * time.Hour}

// RunLocks keeps environments' lock state in line with their policies'
// health until ctx ends: it locks every environment linked to a policy whose
// key is definitely unusable at once, locks after cfg.GracePeriod those whose
// vault stays unreachable, re-enables where the tenant asked for it once the
// policy is healthy again, and deletes environments locked past the tenant's
// retention period, after warnings. It returns nil when ctx ends.
func (s *Service) RunLocks(ctx context.Context) error {
	if s.cfg.Events == nil {
		return keyhold.Internal("environment: lock loop", errNoEvents)
	}
	sub := s.cfg.Events.Subscribe(func(e events.Event) bool { return e.Kind == events.PolicyChanged })
	defer sub.Close()
	s.resyncLocks(ctx)
	tick := time.NewTicker(lockTick)
	defer tick.Stop()
	sweep := s.now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-sub.C():
			if !ok {
				return nil
			}
			if e.Kind == events.Resync {
				s.resyncLocks(ctx)
				continue
			}
			if err := s.PolicyHealthChanged(ctx, e.Scope); err != nil {
				s.log.Error("environment: acting on a policy change failed", "policy", e.Scope, "err", err.Error())
			}
		case <-tick.C:
			if err := s.CheckGrace(ctx); err != nil {
				s.log.Error("environment: grace period check failed", "err", err.Error())
			}
			if now := s.now(); now.Sub(sweep) >= time.Minute {
				sweep = now
				if err := s.SweepRetention(ctx); err != nil {
					s.log.Error("environment: retention sweep failed", "err", err.Error())
				}
			}
		}
	}
}

var errNoEvents = keyhold.Errorf(keyhold.EInternal, "environment: the lock loop needs an event bus")

// resyncLocks re-reads everything the lock loop watches: the lock map from
// the store, and every Encryption policy's health.
func (s *Service) resyncLocks(ctx context.Context) {
	envs, err := s.cfg.Store.ListEnvironments(ctx, "")
	if err != nil && !keyhold.IsNotFound(err) {
		s.log.Error("environment: listing environments for the lock map failed", "err", err.Error())
	}
	for _, e := range envs {
		if e.RuntimeState == keyhold.RuntimeDisabled {
			s.setLocked(e.ID, lockReasonOf(e))
		}
	}
	s.Invalidate("")
	if s.cfg.Policies == nil {
		return
	}
	ps, err := s.cfg.Policies.List(ctx)
	if err != nil {
		s.log.Error("environment: listing policies for the lock loop failed", "err", err.Error())
		return
	}
	for _, p := range ps {
		if err := s.PolicyHealthChanged(ctx, p.Resource.ID); err != nil {
			s.log.Error("environment: acting on a policy's health failed", "policy", p.Resource.ID, "err", err.Error())
		}
	}
}

// PolicyHealthChanged acts on the current health of the policy policyID: a
// definite failure (or a deleted policy) locks every linked environment at
// once; an unreachable vault starts the grace period; health restored ends it
// and re-enables the environments of tenants that turned AutoReenable on.
// The lock loop calls it on events.PolicyChanged. It returns the store's
// error.
func (s *Service) PolicyHealthChanged(ctx context.Context, policyID string) error {
	p, err := s.cfg.Policies.Get(ctx, policyID)
	if keyhold.IsNotFound(err) {
		s.endGrace(policyID)
		return s.lockLinked(ctx, policyID, "the enterprise policy "+lastSegment(policyID)+" was deleted")
	}
	if err != nil {
		return err
	}
	if !strings.EqualFold(p.Resource.Kind, policy.KindEncryption) {
		return nil
	}
	reason := ""
	if p.Properties.HealthDetail != nil {
		reason = p.Properties.HealthDetail.Reason
	}
	switch p.Properties.HealthStatus {
	case policy.HealthUnhealthy:
		if p.Properties.HealthDetail != nil && p.Properties.HealthDetail.Definite {
			s.endGrace(policyID)
			return s.lockLinked(ctx, policyID, policyReason(p, reason))
		}
		s.startGrace(ctx, policyID, reason)
	case policy.HealthHealthy:
		s.endGrace(policyID)
		return s.autoReenable(ctx, policyID)
	}
	return nil
}

func policyReason(p *policy.Policy, reason string) string {
	if reason == "" {
		reason = "its key cannot be used"
	}
	return "the enterprise policy " + p.Resource.Name + " is unhealthy: " + reason
}

func lastSegment(id string) string {
	id = strings.TrimRight(id, "/")
	return id[strings.LastIndexByte(id, '/')+1:]
}

func (s *Service) startGrace(ctx context.Context, policyID, reason string) {
	c := &s.core
	c.loop.Lock()
	defer c.loop.Unlock()
	if c.grace == nil {
		c.grace = map[string]time.Time{}
	}
	key := strings.ToLower(policyID)
	if _, ok := c.grace[key]; ok {
		return
	}
	c.grace[key] = s.now()
	s.log.Warn("environment: the key vault of a policy cannot be reached; linked environments keep serving from cached keys for the grace period",
		"policy", policyID, "grace", s.cfg.GracePeriod.String(), "reason", reason)
}

func (s *Service) endGrace(policyID string) {
	c := &s.core
	c.loop.Lock()
	delete(c.grace, strings.ToLower(policyID))
	c.loop.Unlock()
}

// CheckGrace locks the environments of every policy whose vault has been
// unreachable for longer than the grace period and is still unhealthy. The
// lock loop calls it every second; tests call it after moving the clock.
func (s *Service) CheckGrace(ctx context.Context) error {
	c := &s.core
	now := s.now()
	var due []string
	c.loop.Lock()
	for id, since := range c.grace {
		if now.Sub(since) >= s.cfg.GracePeriod {
			due = append(due, id)
		}
	}
	c.loop.Unlock()
	for _, id := range due {
		p, err := s.cfg.Policies.Get(ctx, id)
		if err != nil && !keyhold.IsNotFound(err) {
			return err
		}
		s.endGrace(id)
		if p != nil && p.Properties.HealthStatus != policy.HealthUnhealthy {
			continue
		}
		reason := "the key vault could not be reached for " + s.cfg.GracePeriod.String()
		if p != nil && p.Properties.HealthDetail != nil && p.Properties.HealthDetail.Reason != "" {
			reason += ": " + p.Properties.HealthDetail.Reason
		}
		if err := s.lockLinked(ctx, id, reason); err != nil {
			return err
		}
	}
	return nil
}

// lockLinked locks every environment linked to policyID that is not locked.
func (s *Service) lockLinked(ctx context.Context, policyID, reason string) error {
	envs, err := s.cfg.Store.ListEnvironmentsByPolicy(ctx, policyID)
	if keyhold.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var first error
	for _, e := range envs {
		if e.RuntimeState == keyhold.RuntimeDisabled && s.lockedReason(e.ID) != "" {
			continue
		}
		if err := s.Lock(ctx, e.ID, reason); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Lock locks an environment: from the moment it is called, every data
// request is refused with DetailEnvironmentLocked and the reason, and its
// cached root keys are wiped; then the environment is stored Disabled
// ("Environment disabled"), the lock is written to its history, and
// events.EnvironmentChanged tells other processes. Nothing is deleted. It
// returns ENotFound for a missing environment and the store's error.
func (s *Service) Lock(ctx context.Context, envID, reason string) error {
	done := s.beginLock(envID)
	defer done()
	// Memory first: the data path refuses before the store is written.
	s.setLocked(envID, reason)
	var locked *keyhold.Environment
	changed := false
	err := s.changeEnvironment(ctx, envID, func(e *keyhold.Environment) bool {
		locked = e
		changed = e.RuntimeState != keyhold.RuntimeDisabled
		if changed {
			e.RuntimeState, e.LockReason, e.LockedAt = keyhold.RuntimeDisabled, reason, s.now().UTC()
		}
		return changed
	})
	if err != nil {
		return err
	}
	if !changed {
		// It was locked already, for its own reason; keep that one.
		s.setLocked(envID, lockReasonOf(locked))
		return nil
	}
	s.record(ctx, locked, OpTypeLock, "lock", systemActor, reason)
	s.log.Warn("environment: locked; data requests are refused until the key is accessible and the environment is re-enabled",
		"environment", locked.ID, "tenant", locked.TenantID, "policy", locked.PolicyID, "reason", reason)
	s.announce(ctx, locked, "environment: locked")
	return nil
}

// changeEnvironment applies change to the stored environment and saves it if
// change says so, retrying when a concurrent writer got there first.
func (s *Service) changeEnvironment(ctx context.Context, id string, change func(e *keyhold.Environment) bool) error {
	for range 10 {
		e, err := s.cfg.Store.GetEnvironment(ctx, id)
		if err != nil {
			return err
		}
		if !change(e) {
			return nil
		}
		e.UpdatedAt = s.now().UTC()
		err = s.cfg.Store.UpdateEnvironment(ctx, e)
		if keyhold.IsConflict(err) {
			continue
		}
		return err
	}
	return keyhold.Errorc(keyhold.EConflict, DetailEnvironmentBusy, "environment: %s kept changing; try again", id)
}

// record writes a finished entry to an environment's history. A failure is
// logged, not returned: the change it describes has happened.
func (s *Service) record(ctx context.Context, e *keyhold.Environment, typ, action, by, message string) {
	now := s.now().UTC()
	op := &keyhold.Operation{ID: newGUID(), TenantID: e.TenantID, EnvironmentID: e.ID, Type: typ, Action: action,
		State: keyhold.OpSucceeded, Error: message, RequestedBy: by, CreatedAt: now, UpdatedAt: now}
	if err := s.cfg.Store.CreateOperation(context.WithoutCancel(ctx), op); err != nil {
		s.log.Error("environment: writing a history entry failed", "environment", e.ID, "type", typ, "err", err.Error())
	}
}

// Reenable re-enables a locked environment once access to its original key
// is restored: the caller must be a platform administrator of its tenant
// with Reader on the enterprise policy, the policy must be Healthy, and the
// key must unwrap every live root-key generation. Nothing is lost.
//
// Errors: ENotFound (EnvironmentNotFound) for anyone but a platform
// administrator of the tenant; EConflict (DetailEnvironmentNotLocked) when it
// is not disabled; EForbidden (EnterprisePolicyReadAccessRequired) without
// Reader on the policy; EConflict (EnterprisePolicyUnhealthy) while the
// policy is not Healthy; EConflict (DetailKeyNotAccessible) when the key
// still refuses; EUnavailable when its vault cannot be reached.
func (s *Service) Reenable(ctx context.Context, caller *keyhold.Caller, envID string) (*keyhold.Environment, error) {
	e, err := s.Get(ctx, caller, envID)
	if err != nil {
		return nil, err
	}
	if e.RuntimeState != keyhold.RuntimeDisabled {
		return nil, keyhold.Errorc(keyhold.EConflict, DetailEnvironmentNotLocked, "environment: %s is not disabled; there is nothing to re-enable", e.ID)
	}
	if e.PolicyID != "" {
		ok, err := s.cfg.Authz.Check(ctx, caller, actionPolicyRead, e.PolicyID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, keyhold.Errorc(keyhold.EForbidden, detailPolicyReadRequired,
				"environment: re-enabling %s needs read access (Reader) to the enterprise policy %s, which the caller does not have", e.ID, e.PolicyID)
		}
	}
	return s.reenable(ctx, e, caller.Principal.ID)
}

func (s *Service) reenable(ctx context.Context, e *keyhold.Environment, by string) (*keyhold.Environment, error) {
	if e.PolicyID != "" {
		p, err := s.cfg.Policies.Get(ctx, e.PolicyID)
		if keyhold.IsNotFound(err) {
			return nil, keyhold.Errorc(keyhold.EConflict, detailPolicyUnhealthy,
				"environment: the enterprise policy %s of environment %s no longer exists; its key cannot be reached", e.PolicyID, e.ID)
		}
		if err != nil {
			return nil, err
		}
		if p.Properties.HealthStatus != policy.HealthHealthy {
			why := ""
			if p.Properties.HealthDetail != nil && p.Properties.HealthDetail.Reason != "" {
				why = ": " + p.Properties.HealthDetail.Reason
			}
			status := p.Properties.HealthStatus
			if status == "" {
				status = policy.HealthUndetermined
			}
			return nil, keyhold.Errorc(keyhold.EConflict, detailPolicyUnhealthy,
				"environment: the enterprise policy %s is %s%s. Restore the policy's access to the original key, then re-enable", p.Resource.Name, status, why)
		}
	}
	if err := s.proveKeys(ctx, e); err != nil {
		return nil, err
	}
	var out *keyhold.Environment
	err := s.changeEnvironment(ctx, e.ID, func(cur *keyhold.Environment) bool {
		out = cur
		if cur.RuntimeState != keyhold.RuntimeDisabled {
			return false
		}
		cur.RuntimeState, cur.LockReason, cur.LockedAt = keyhold.RuntimeEnabled, "", time.Time{}
		return true
	})
	if err != nil {
		return nil, err
	}
	s.setLocked(e.ID, "")
	s.record(ctx, out, OpTypeReenable, "reenable", by, "")
	s.log.Info("environment: re-enabled", "environment", e.ID, "tenant", e.TenantID, "by", by)
	s.announce(ctx, out, "environment: re-enabled")
	return out, nil
}

// proveKeys unwraps every live generation of e with the key that wraps it,
// and caches the keys, so that a re-enabled environment serves at once.
func (s *Service) proveKeys(ctx context.Context, e *keyhold.Environment) error {
	gens, err := s.cfg.Store.ListGenerations(ctx, e.ID)
	if err != nil && !keyhold.IsNotFound(err) {
		return err
	}
	for _, g := range gens {
		if g.State == keyhold.GenerationDestroyed || len(g.Wrapped) == 0 {
			continue
		}
		key, err := s.cfg.Wrapper.Unwrap(ctx, g.WrappedBy, g.Wrapped)
		if err != nil {
			s.log.Warn("environment: the original key does not unwrap a root key yet", "environment", e.ID, "generation", g.Generation,
				"ref", kms.Describe(g.WrappedBy), "err", err.Error())
			if kms.Unreachable(err) {
				return keyhold.Errorc(keyhold.EUnavailable, DetailKeyNotAccessible,
					"environment: the key vault holding %s cannot be reached; try again later", kms.Describe(g.WrappedBy))
			}
			return keyhold.Errorc(keyhold.EConflict, DetailKeyNotAccessible,
				"environment: %s still cannot unwrap the root key of environment %s (%s). Restore access to the original key version, then re-enable",
				kms.Describe(g.WrappedBy), e.ID, keyhold.ErrorMessage(err))
		}
		perr := s.ring.Put(e.ID, g.Generation, key)
		key.Wipe()
		if perr != nil {
			return keyhold.Internal("environment: cache root key", perr)
		}
	}
	return nil
}

// autoReenable re-enables the locked environments linked to a healthy
// policy whose tenants turned AutoReenable on.
func (s *Service) autoReenable(ctx context.Context, policyID string) error {
	envs, err := s.cfg.Store.ListEnvironmentsByPolicy(ctx, policyID)
	if err != nil && !keyhold.IsNotFound(err) {
		return err
	}
	for _, e := range envs {
		if e.RuntimeState != keyhold.RuntimeDisabled {
			continue
		}
		ts, err := s.TenantSettings(ctx, e.TenantID)
		if err != nil {
			return err
		}
		if !ts.AutoReenable {
			continue
		}
		if _, err := s.reenable(ctx, e, systemActor); err != nil {
			s.log.Warn("environment: automatic re-enable did not succeed", "environment", e.ID, "err", err.Error())
		}
	}
	return nil
}

// SweepRetention warns about, then deletes, environments locked for longer
// than their tenant's retention period (only tenants that turned Retention
// on). Each warning is written once to the environment's history and the
// log; an environment is deleted only after it was warned. It returns the
// store's error.
func (s *Service) SweepRetention(ctx context.Context) error {
	envs, err := s.cfg.Store.ListEnvironments(ctx, "")
	if err != nil && !keyhold.IsNotFound(err) {
		return err
	}
	settings := map[string]TenantSettings{}
	now := s.now()
	for _, e := range envs {
		if e.RuntimeState != keyhold.RuntimeDisabled {
			continue
		}
		ts, ok := settings[e.TenantID]
		if !ok {
			if ts, err = s.TenantSettings(ctx, e.TenantID); err != nil {
				return err
			}
			settings[e.TenantID] = ts
		}
		due, on := retentionDue(ts, e)
		if !on {
			continue
		}
		warned, err := s.retentionWarned(ctx, e)
		if err != nil {
			return err
		}
		if !now.Before(due) && len(warned) > 0 {
			s.log.Warn("environment: deleting an environment locked past the tenant's retention period",
				"environment", e.ID, "tenant", e.TenantID, "lockedAt", e.LockedAt, "retention", RetentionFor(e.Type).String())
			if err := s.deleteEnvironment(ctx, e, systemActor, "locked past the tenant's retention period"); err != nil {
				return err
			}
			continue
		}
		for _, before := range retentionWarnings {
			action := "warning-" + before.String()
			if warned[action] || now.Before(due.Add(-before)) {
				continue
			}
			msg := "environment " + e.ID + " has been locked since " + e.LockedAt.UTC().Format(time.RFC3339) +
				" and will be deleted at " + due.UTC().Format(time.RFC3339) + " unless access to its key is restored and it is re-enabled"
			s.record(ctx, e, OpTypeRetention, action, systemActor, msg)
			s.log.Warn("environment: locked environment will be deleted", "environment", e.ID, "tenant", e.TenantID, "deleteAt", due.UTC())
			warned[action] = true
		}
	}
	return nil
}

// retentionWarned returns the retention warnings written since the
// environment was locked, by action.
func (s *Service) retentionWarned(ctx context.Context, e *keyhold.Environment) (map[string]bool, error) {
	ops, err := s.cfg.Store.ListOperations(ctx, e.ID)
	if err != nil && !keyhold.IsNotFound(err) {
		return nil, err
	}
	out := map[string]bool{}
	for _, op := range ops {
		if op.Type == OpTypeRetention && !op.CreatedAt.Before(e.LockedAt) {
			out[op.Action] = true
		}
	}
	return out, nil
}
