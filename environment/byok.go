package environment

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/policy"
)

// DetailNotBYOKKey is the detail of ApplyBYOK's refusal of a key that is not
// a tenant-uploaded one.
const DetailNotBYOKKey = "InvalidTenantProtectionKey"

// ApplyBYOK puts environment envID under a tenant-uploaded key (legacy
// BYOK): ref names a key that kms/builtin's ImportBYOK stored in the system
// vault. Its root-key generations are re-wrapped under that key and the
// environment shows keyManagedBy Customer without a policy, as the legacy
// Set-PowerAppTenantProtectionKey left it. It exists for tests and
// migration demos; new tenants use policies. Errors: ENotFound (404) as Link;
// EInvalid (InvalidTenantProtectionKey) for a ref that is not a BYOK key;
// EConflict for an environment linked to a policy, locked or busy; and the
// wrapper's errors for a key it cannot use.
func (s *Service) ApplyBYOK(ctx context.Context, c *keyhold.Caller, envID string, ref keyhold.WrapRef) (*keyhold.Environment, error) {
	e, err := s.lifecycleEnv(ctx, c, envID)
	if err != nil {
		return nil, err
	}
	if ref.Kind != keyhold.WrapBYOK {
		return nil, keyhold.Errorc(keyhold.EInvalid, DetailNotBYOKKey,
			"A tenant protection key must be a key uploaded to the platform (kind %s), not %q.", keyhold.WrapBYOK, ref.Kind)
	}
	if e.PolicyID != "" {
		return nil, keyhold.Errorc(keyhold.EConflict, "EnterprisePolicyLinked",
			"Environment %s is linked to the enterprise policy %s; a tenant protection key cannot replace a customer-managed key.", e.ID, e.PolicyID)
	}
	if err := s.checkNotBusy(ctx, e); err != nil {
		return nil, err
	}
	if _, err := s.rewrap(ctx, nil, e.ID, ref, false, func(e *keyhold.Environment) {
		e.KeyManagedBy = keyhold.KeyManagedByCustomer
		e.EncryptionStatus = keyhold.EncryptionEncrypted
	}); err != nil {
		return nil, err
	}
	s.log.Info("environment: under a tenant protection key (BYOK)", "environment", e.ID, "by", c.Principal.ID)
	return s.cfg.Store.GetEnvironment(ctx, e.ID)
}

// migrate moves a BYOK environment to a policy's key: a re-wrap, not a
// re-encryption. The root keys were only ever wrapped by the tenant's key
// inside the platform's system vault, never exposed, so re-wrapping them
// under the customer's key gives the same protection as new keys would,
// with no downtime and in time independent of the data size, as the
// documentation promises. The environment then shows CustomerViaMicrosoft
// and cannot be reverted for LifecycleConfig.NoRevertPeriod.
func (s *Service) migrate(ctx context.Context, r *run, pol *policy.Policy) error {
	ref, err := customerRef(pol)
	if err != nil {
		return err
	}
	until := s.now().UTC().Add(s.lcfg().NoRevertPeriod)
	n, err := s.rewrap(ctx, r, r.op.EnvironmentID, ref, false, func(e *keyhold.Environment) {
		e.KeyManagedBy = keyhold.KeyManagedByCustomerViaMicrosoft
		e.PolicyID, e.PolicySystemID, e.LinkStatus = pol.Resource.ID, pol.Properties.SystemID, LinkStatusLinked
		e.EncryptionStatus = keyhold.EncryptionEncrypted
		if e.NoRevertUntil.Before(until) {
			e.NoRevertUntil = until
		}
	})
	if err != nil {
		return err
	}
	return r.save(ctx, func(op *keyhold.Operation) { op.Done, op.Total = int64(n), int64(n) })
}
