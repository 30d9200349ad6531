package environment

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/events"
)

// rotationKinds are the key events after which linked environments check
// for a new version of their policy's key.
var rotationKinds = map[string]bool{events.KeyRotated: true, events.KeyChanged: true, events.KeyCreated: true,
	events.PolicyChanged: true, events.Resync: true}

// CheckRotation queues a rotation (a re-wrap under the newest key version,
// no outage) for each environment linked to policyID ("" for every linked
// environment) whose policy pins no key version, unless the environment has
// an operation pending or running (which will see the newest version
// anyway) or is locked, and only if a generation is wrapped by another
// version than the newest. It returns how many it queued and the store's
// error.
func (s *Service) CheckRotation(ctx context.Context, policyID string) (int, error) {
	var envs []*keyhold.Environment
	var err error
	if policyID != "" {
		envs, err = s.cfg.Store.ListEnvironmentsByPolicy(ctx, policyID)
	} else {
		envs, err = s.cfg.Store.ListEnvironments(ctx, "")
	}
	if err != nil && !keyhold.IsNotFound(err) {
		return 0, err
	}
	queued := 0
	versions := map[string]string{} // lower-case policy id -> newest key version
	for _, e := range envs {
		if e.PolicyID == "" || e.RuntimeState == keyhold.RuntimeDisabled || s.lockedReason(e.ID) != "" {
			continue
		}
		pol, err := s.policyByID(ctx, e.PolicyID)
		if err != nil {
			return queued, err
		}
		if pol == nil {
			continue
		}
		ref, err := customerRef(pol)
		if err != nil || ref.KeyVersion != "" {
			continue // pinned: the policy itself must change to move on
		}
		newest, ok := versions[strings.ToLower(pol.Resource.ID)]
		if !ok {
			// A key that cannot be used now is the health monitor's
			// business (it locks); the rotation waits for the next check.
			newest, err = s.newestVersion(ctx, ref)
			if err != nil {
				s.log.Info("environment: rotation check cannot use the key", "policy", pol.Resource.ID, "err", err.Error())
				newest = ""
			}
			versions[strings.ToLower(pol.Resource.ID)] = newest
		}
		if newest == "" {
			continue
		}
		if op, err := s.activeOperation(ctx, e.ID); err != nil {
			return queued, err
		} else if op != nil {
			continue
		}
		if !s.needsRotation(ctx, e.ID, pol.Resource.ID, newest) {
			continue
		}
		op, err := s.newOperation(e, ActionRotate, "system", opParams{PolicyID: e.PolicyID, SystemID: e.PolicySystemID})
		if err != nil {
			return queued, err
		}
		if err := s.enqueue(ctx, op); err != nil {
			return queued, err
		}
		queued++
	}
	return queued, nil
}

// newestVersion returns the version of the policy's key that wrapping
// uses now: one wrap of a throwaway key, so one vault call per policy and
// check, never one per environment or row.
func (s *Service) newestVersion(ctx context.Context, ref keyhold.WrapRef) (string, error) {
	probe, err := envelope.NewRootKey(nil)
	if err != nil {
		return "", keyhold.Internal("environment: rotation probe", err)
	}
	defer probe.Wipe()
	_, used, err := s.cfg.Wrapper.Wrap(ctx, ref, probe)
	if err != nil {
		return "", err
	}
	return used.KeyVersion, nil
}

// needsRotation reports whether some live generation of the environment is
// wrapped by the policy's key at a version other than newest.
func (s *Service) needsRotation(ctx context.Context, envID, policyID, newest string) bool {
	gens, err := s.cfg.Store.ListGenerations(ctx, envID)
	if err != nil {
		return false
	}
	for _, g := range gens {
		if g.State != keyhold.GenerationDestroyed && len(g.Wrapped) > 0 && g.WrappedBy.Kind == keyhold.WrapCustomer &&
			strings.EqualFold(g.WrappedBy.PolicyID, policyID) && g.WrappedBy.KeyVersion != newest {
			return true
		}
	}
	return false
}

// rotationLoop checks for new key versions on key events and on
// LifecycleConfig.RotationCheck.
func (s *Service) rotationLoop(ctx context.Context) {
	every := s.lcfg().RotationCheck
	var sub *events.Subscription
	var ch <-chan events.Event
	if s.cfg.Events != nil {
		sub = s.cfg.Events.Subscribe(func(e events.Event) bool { return rotationKinds[e.Kind] })
		defer sub.Close()
		ch = sub.C()
	}
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-ch:
			policyID := ""
			if ev.Kind == events.PolicyChanged {
				policyID = ev.Scope
			}
			if _, err := s.CheckRotation(ctx, policyID); err != nil && ctx.Err() == nil {
				s.log.Warn("environment: rotation check", "err", err.Error())
			}
		case <-tick:
			if _, err := s.CheckRotation(ctx, ""); err != nil && ctx.Err() == nil {
				s.log.Warn("environment: rotation check", "err", err.Error())
			}
		}
	}
}
