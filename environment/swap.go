package environment

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/policy"
)

// rewrapStage runs one stage of an unlink, a swap or a rotation: each is a
// re-wrap of the environment's live root-key generations under another key
// (the platform key, the new policy's key, the newest version of the
// policy's key), O(generations) and not O(rows), while the keys stay
// cached and writes go on.
func (s *Service) rewrapStage(ctx context.Context, r *run, id string) error {
	p, err := r.params()
	if err != nil {
		return err
	}
	switch id {
	case StageValidate:
		if r.op.Action == ActionSwap {
			e, err := s.cfg.Store.GetEnvironment(ctx, r.op.EnvironmentID)
			if err != nil {
				return err
			}
			pol, err := s.linkPolicy(ctx, p)
			if err != nil {
				return err
			}
			return s.checkPolicyUsable(ctx, e, pol)
		}
		return nil
	case StageRun:
		var ref keyhold.WrapRef
		var pol *policy.Policy
		switch r.op.Action {
		case ActionUnlink:
			ref = s.cfg.PlatformKey
		default:
			if pol, err = s.linkPolicy(ctx, p); err != nil {
				return err
			}
			if ref, err = customerRef(pol); err != nil {
				return err
			}
		}
		n, err := s.rewrap(ctx, r, r.op.EnvironmentID, ref, r.op.Action == ActionRotate, func(e *keyhold.Environment) {
			switch r.op.Action {
			case ActionUnlink:
				e.KeyManagedBy = keyhold.KeyManagedByMicrosoft
				e.PolicyID, e.PolicySystemID, e.LinkStatus = "", "", ""
				e.EncryptionStatus = keyhold.EncryptionPlatform
				e.NoRevertUntil = time.Time{}
			case ActionSwap:
				if e.KeyManagedBy != keyhold.KeyManagedByCustomerViaMicrosoft {
					e.KeyManagedBy = keyhold.KeyManagedByCustomer
				}
				e.PolicyID, e.PolicySystemID, e.LinkStatus = pol.Resource.ID, pol.Properties.SystemID, LinkStatusLinked
			}
		})
		if err != nil {
			return err
		}
		return r.save(ctx, func(op *keyhold.Operation) { op.Done, op.Total = int64(n), int64(n) })
	}
	return nil
}

// rewrap wraps every live generation of the environment again under ref
// and, in one transaction, stores them and applies change to the
// environment. With onlyIfNewer it leaves generations already wrapped by the
// version ref resolves to alone, and the environment too if none changed.
// It returns how many generations it re-wrapped. The root keys do not
// change, so the keyring keeps them and records are not touched. Within a
// run (r not nil) the transaction saves the operation too, so that a run
// that lost its lease to another worker re-wraps nothing.
func (s *Service) rewrap(ctx context.Context, r *run, envID string, ref keyhold.WrapRef, onlyIfNewer bool, change func(e *keyhold.Environment)) (int, error) {
	for range 5 {
		gens, err := s.cfg.Store.ListGenerations(ctx, envID)
		if err != nil && !keyhold.IsNotFound(err) {
			return 0, err
		}
		var next []*keyhold.RootKeyGeneration
		for _, g := range gens {
			if g.State == keyhold.GenerationDestroyed || len(g.Wrapped) == 0 {
				continue
			}
			root, err := s.ring.Get(ctx, envID, g.Generation)
			if err != nil {
				return 0, err
			}
			wrapped, used, err := s.cfg.Wrapper.Wrap(ctx, ref, root)
			root.Wipe()
			if err != nil {
				return 0, err
			}
			if onlyIfNewer && sameKeyVersion(used, g.WrappedBy) {
				continue
			}
			ng := *g
			ng.Wrapped, ng.WrappedBy, ng.UpdatedAt = wrapped, used, s.now().UTC()
			next = append(next, &ng)
		}
		if onlyIfNewer && len(next) == 0 {
			return 0, nil
		}
		var env *keyhold.Environment
		inTx := s.cfg.Store.InTx
		if r != nil {
			inTx = func(ctx context.Context, work func(tx keyhold.Store) error) error { return r.saveWith(ctx, work, nil) }
		}
		err = inTx(ctx, func(tx keyhold.Store) error {
			// The generations must be as read: a link or a destroy that
			// ran meanwhile means reading them again.
			now, err := tx.ListGenerations(ctx, envID)
			if err != nil && !keyhold.IsNotFound(err) {
				return err
			}
			if !sameGenerations(gens, now) {
				return keyhold.Errorf(keyhold.EConflict, "environment: generations changed")
			}
			for _, g := range next {
				if err := tx.UpdateGeneration(ctx, g); err != nil {
					return err
				}
			}
			e, err := tx.GetEnvironment(ctx, envID)
			if err != nil {
				return err
			}
			if change != nil {
				change(e)
			}
			e.UpdatedAt = s.now().UTC()
			if err := tx.UpdateEnvironment(ctx, e); err != nil {
				return err
			}
			env = e
			return nil
		})
		if keyhold.IsConflict(err) && !leaseLost(err) {
			continue
		}
		if err != nil {
			return 0, err
		}
		s.publishChanged(ctx, env, "environment: root keys re-wrapped under "+kms.Describe(ref))
		s.log.Info("environment: root keys re-wrapped", "environment", envID, "generations", len(next), "key", kms.Describe(ref))
		return len(next), nil
	}
	return 0, keyhold.Errorf(keyhold.EConflict, "environment: the root-key generations of environment %s kept changing; try again", envID)
}

func sameKeyVersion(a, b keyhold.WrapRef) bool {
	return a.Kind == b.Kind && strings.EqualFold(a.VaultID, b.VaultID) && strings.EqualFold(a.KeyName, b.KeyName) &&
		a.KeyVersion == b.KeyVersion && strings.EqualFold(a.PolicyID, b.PolicyID)
}

func sameGenerations(a, b []*keyhold.RootKeyGeneration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Generation != b[i].Generation || a[i].State != b[i].State || !bytes.Equal(a[i].Wrapped, b[i].Wrapped) {
			return false
		}
	}
	return true
}
