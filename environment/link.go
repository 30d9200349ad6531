package environment

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/kms"
	"github.com/keyhold/keyhold/policy"
)

// LinkStatusLinked is an environment's linkStatus once a policy is applied.
const LinkStatusLinked = "Linked"

// Link applies the Encryption policy with systemID (matched
// case-insensitively among the caller's tenant's policies) to environment
// envID, as POST .../enterprisePolicies/Encryption/link does, and returns
// the operation that does it in the background:
//
//   - not linked: a link (new root-key generation under the policy's key,
//     re-encryption of older records, older generations destroyed);
//   - under a tenant's BYOK key: a migration (re-wrap only, then
//     CustomerViaMicrosoft, not revertible for LifecycleConfig.NoRevertPeriod);
//   - linked to another policy: a swap (re-wrap only);
//   - linked to this policy: nothing to do, an operation already Succeeded,
//     unless the last link failed, which this one resumes.
//
// Every precondition is checked before anything changes. Errors: ENotFound
// (404, EnvironmentNotFound) for a caller who is not a platform administrator
// or an environment not in the caller's tenant; ENotFound
// (EnterprisePolicyNotFound) for an unknown systemId; EForbidden
// (EnterprisePolicyReadAccessRequired) without Reader on the policy; EInvalid
// for a policy of another kind or region, an environment type the profile
// does not allow, or a key the policy's identity cannot use (each check its
// own detail, see CheckDetail); EConflict (EnvironmentLocked,
// OperationInProgress) for a locked or busy environment; and the store's
// errors.
func (s *Service) Link(ctx context.Context, c *keyhold.Caller, envID, systemID string) (*keyhold.Operation, error) {
	e, err := s.lifecycleEnv(ctx, c, envID)
	if err != nil {
		return nil, err
	}
	p, err := s.policyBySystemID(ctx, e.TenantID, systemID)
	if err != nil {
		return nil, err
	}
	if err := s.checkPolicyReader(ctx, c, p.Resource.ID); err != nil {
		return nil, err
	}
	who := c.Principal.ID
	if strings.EqualFold(e.PolicyID, p.Resource.ID) && e.EncryptionStatus != keyhold.EncryptionFailed {
		if op, err := s.activeOperation(ctx, e.ID); err != nil || op != nil {
			if op != nil {
				return op, nil // the link in progress is the answer
			}
			return nil, err
		}
		return s.noop(ctx, e, who, p)
	}
	if err := checkEnvType(s.cfg.Profile, e); err != nil {
		return nil, err
	}
	if err := s.checkNotBusy(ctx, e); err != nil {
		return nil, err
	}
	if err := s.checkPolicyUsable(ctx, e, p); err != nil {
		return nil, err
	}
	params := opParams{PolicyID: p.Resource.ID, SystemID: p.Properties.SystemID}
	action := ActionLink
	switch {
	case e.PolicyID != "" && !strings.EqualFold(e.PolicyID, p.Resource.ID):
		action, params.FromPolicyID = ActionSwap, e.PolicyID
	default:
		byok, err := s.underBYOK(ctx, e.ID)
		if err != nil {
			return nil, err
		}
		params.Migration = byok
	}
	op, err := s.newOperation(e, action, who, params)
	if err != nil {
		return nil, err
	}
	if err := s.enqueue(ctx, op); err != nil {
		return nil, err
	}
	s.log.Info("environment: lifecycle operation requested", "operation", op.ID, "environment", e.ID, "action", action,
		"policy", p.Resource.ID, "by", who)
	return op, nil
}

// noop records a link to the policy already linked: an operation that
// succeeded at once, so that scripts that poll it see Succeeded.
func (s *Service) noop(ctx context.Context, e *keyhold.Environment, who string, p *policy.Policy) (*keyhold.Operation, error) {
	op, err := s.newOperation(e, ActionLink, who, opParams{PolicyID: p.Resource.ID, SystemID: p.Properties.SystemID})
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	st := stagesOf(op)
	for i := range st {
		st[i].State, st[i].First, st[i].Last = keyhold.OpSucceeded, now, now
	}
	if err := setJSON(&op.Stages, st); err != nil {
		return nil, err
	}
	op.State = keyhold.OpSucceeded
	return op, s.cfg.Store.CreateOperation(ctx, op)
}

// customerRef is the wrap ref of p's key: its pinned version, or none so
// that wrapping uses (and the rotation check follows) the newest one.
func customerRef(p *policy.Policy) (keyhold.WrapRef, error) {
	e := p.Properties.Encryption
	if e == nil || e.KeyVault == nil || e.KeyVault.ID == "" || e.KeyVault.Key.Name == "" {
		return keyhold.WrapRef{}, keyhold.Errorc(keyhold.EInvalid, "EnterprisePolicyKeyVaultMissing",
			"The enterprise policy %s names no key vault and key.", p.Resource.Name)
	}
	ref := keyhold.WrapRef{Kind: keyhold.WrapCustomer, PolicyID: p.Resource.ID, VaultID: e.KeyVault.ID,
		KeyName: e.KeyVault.Key.Name, Algorithm: kms.DefaultAlgorithm}
	if v := e.KeyVault.Key.Version; v != nil {
		ref.KeyVersion = *v
	}
	return ref, nil
}

// underBYOK reports whether the environment's active generation is wrapped
// by a tenant-uploaded key.
func (s *Service) underBYOK(ctx context.Context, envID string) (bool, error) {
	g, err := s.activeGeneration(ctx, envID)
	if err != nil || g == nil {
		return false, err
	}
	return g.WrappedBy.Kind == keyhold.WrapBYOK, nil
}

// activeGeneration returns the newest active generation of the
// environment, or nil.
func (s *Service) activeGeneration(ctx context.Context, envID string) (*keyhold.RootKeyGeneration, error) {
	gens, err := s.cfg.Store.ListGenerations(ctx, envID)
	if err != nil && !keyhold.IsNotFound(err) {
		return nil, err
	}
	var active *keyhold.RootKeyGeneration
	for _, g := range gens {
		if g.State == keyhold.GenerationActive && (active == nil || g.Generation > active.Generation) {
			active = g
		}
	}
	return active, nil
}

// linkPolicy loads the operation's target policy, or fails the operation
// when it is gone.
func (s *Service) linkPolicy(ctx context.Context, p opParams) (*policy.Policy, error) {
	pol, err := s.policyByID(ctx, p.PolicyID)
	if err != nil {
		return nil, err
	}
	if pol == nil {
		return nil, opFailure("the enterprise policy %s no longer exists", p.PolicyID)
	}
	return pol, nil
}

// linkStage runs one stage of a link.
func (s *Service) linkStage(ctx context.Context, r *run, id string) error {
	p, err := r.params()
	if err != nil {
		return err
	}
	switch id {
	case StageValidate:
		e, err := s.cfg.Store.GetEnvironment(ctx, r.op.EnvironmentID)
		if err != nil {
			return err
		}
		pol, err := s.linkPolicy(ctx, p)
		if err != nil {
			return err
		}
		return s.checkPolicyUsable(ctx, e, pol)
	case StagePrepare:
		pol, err := s.linkPolicy(ctx, p)
		if err != nil {
			return err
		}
		if p.Migration {
			return s.migrate(ctx, r, pol)
		}
		return s.prepareLink(ctx, r, p, pol)
	case StageRun:
		if p.Migration {
			return nil
		}
		return s.reencrypt(ctx, r)
	case StageFinalize:
		if p.Migration {
			return nil
		}
		return s.finalizeLink(ctx, r)
	}
	return nil
}

// prepareLink makes the new root-key generation under the policy's key and
// makes it the one new writes use, in one transaction with the
// environment's new state and the operation's record of the generation, so
// that a crash before or after leaves a state the resumed stage handles.
func (s *Service) prepareLink(ctx context.Context, r *run, p opParams, pol *policy.Policy) error {
	envID := r.op.EnvironmentID
	gens, err := s.cfg.Store.ListGenerations(ctx, envID)
	if err != nil && !keyhold.IsNotFound(err) {
		return err
	}
	var top int64
	for _, g := range gens {
		top = max(top, g.Generation)
		if g.Generation == p.Generation && p.Generation != 0 {
			return nil // made before a crash
		}
	}
	// A re-run after a failed link reuses the generation that link made.
	for _, g := range gens {
		if g.State == keyhold.GenerationActive && g.Generation == top && g.WrappedBy.Kind == keyhold.WrapCustomer &&
			strings.EqualFold(g.WrappedBy.PolicyID, p.PolicyID) {
			p.Generation = g.Generation
			return s.commitLink(ctx, r, p, pol, nil)
		}
	}
	ref, err := customerRef(pol)
	if err != nil {
		return err
	}
	root, err := envelope.NewRootKey(nil)
	if err != nil {
		return keyhold.Internal("environment: new root key", err)
	}
	defer root.Wipe()
	wrapped, used, err := s.cfg.Wrapper.Wrap(ctx, ref, root)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	g := &keyhold.RootKeyGeneration{EnvironmentID: envID, Generation: top + 1, Wrapped: wrapped, WrappedBy: used,
		State: keyhold.GenerationActive, CreatedAt: now, UpdatedAt: now}
	p.Generation = g.Generation
	if err := s.commitLink(ctx, r, p, pol, g); err != nil {
		return err
	}
	// The writer that made the key caches it, so the first write under it
	// needs no vault call.
	if err := s.ring.Put(envID, g.Generation, root); err != nil {
		return err
	}
	s.log.Info("environment: new root-key generation", "environment", envID, "generation", g.Generation, "wrappedBy", kms.Describe(used))
	return nil
}

// commitLink stores g (if not nil), retires the older active generations
// and links the environment, with the operation's parameters, in one
// transaction: a run that lost its lease to another worker commits none of
// it.
func (s *Service) commitLink(ctx context.Context, r *run, p opParams, pol *policy.Policy, g *keyhold.RootKeyGeneration) error {
	var params json.RawMessage
	if err := setJSON(&params, p); err != nil {
		return err
	}
	var env *keyhold.Environment
	for range 10 {
		err := r.saveWith(ctx, func(tx keyhold.Store) error {
			now := s.now().UTC()
			if g != nil {
				olds, err := tx.ListGenerations(ctx, r.op.EnvironmentID)
				if err != nil && !keyhold.IsNotFound(err) {
					return err
				}
				if err := tx.CreateGeneration(ctx, g); err != nil {
					return err
				}
				for _, old := range olds {
					if old.State == keyhold.GenerationActive {
						old.State, old.UpdatedAt = keyhold.GenerationRetiring, now
						if err := tx.UpdateGeneration(ctx, old); err != nil {
							return err
						}
					}
				}
			}
			e, err := tx.GetEnvironment(ctx, r.op.EnvironmentID)
			if err != nil {
				return err
			}
			e.KeyManagedBy = keyhold.KeyManagedByCustomer
			e.PolicyID, e.PolicySystemID, e.LinkStatus = pol.Resource.ID, pol.Properties.SystemID, LinkStatusLinked
			e.EncryptionStatus = keyhold.EncryptionEncrypting
			e.UpdatedAt = now
			if err := tx.UpdateEnvironment(ctx, e); err != nil {
				return err
			}
			env = e
			return nil
		}, func(op *keyhold.Operation) { op.Params = params })
		if keyhold.IsConflict(err) && !leaseLost(err) {
			continue // the environment changed meanwhile: read it again
		}
		if err != nil {
			return err
		}
		s.publishChanged(ctx, env, "environment: linked; new writes use the new root-key generation")
		return nil
	}
	return keyhold.Errorf(keyhold.EConflict, "environment: environment %s kept changing; try again", r.op.EnvironmentID)
}

// finalizeLink destroys every generation older than the link's once no
// record is sealed under one, and marks the environment Encrypted.
func (s *Service) finalizeLink(ctx context.Context, r *run) error {
	p, err := r.params()
	if err != nil {
		return err
	}
	envID := r.op.EnvironmentID
	_, below, err := s.cfg.Store.CountRows(ctx, envID, p.Generation)
	if err != nil {
		return err
	}
	_, segBelow, err := s.cfg.Store.CountFileSegments(ctx, envID, p.Generation)
	if err != nil {
		return err
	}
	if below+segBelow > 0 {
		return opFailure("%d records of environment %s are still under an older root-key generation; re-run the operation to resume", below+segBelow, envID)
	}
	gens, err := s.cfg.Store.ListGenerations(ctx, envID)
	if err != nil {
		return err
	}
	var destroyed []int64
	err = s.cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
		now := s.now().UTC()
		for _, g := range gens {
			if g.Generation >= p.Generation || g.State == keyhold.GenerationDestroyed {
				continue
			}
			g.State, g.Wrapped, g.UpdatedAt = keyhold.GenerationDestroyed, nil, now
			if err := tx.UpdateGeneration(ctx, g); err != nil {
				return err
			}
			destroyed = append(destroyed, g.Generation)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, g := range destroyed {
		s.ring.Drop(envID, g)
	}
	if err := s.updateEnv(ctx, envID, func(e *keyhold.Environment) error {
		e.EncryptionStatus = keyhold.EncryptionEncrypted
		return nil
	}); err != nil {
		return err
	}
	s.log.Info("environment: encrypted under the customer key", "environment", envID, "generation", p.Generation,
		"destroyedGenerations", len(destroyed))
	return r.save(ctx, func(op *keyhold.Operation) { op.Done = op.Total })
}
