package environment

import (
	"context"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Unlink reverts environment envID from its Encryption policy to the
// platform-managed key, as POST .../enterprisePolicies/Encryption/unlink
// does: a re-wrap of the environment's root-key generations, independent of
// its data size and without an outage. systemID, if given, must be the
// linked policy's. Errors: ENotFound (404) as Link; EInvalid
// (EnterprisePolicyNotLinked) when the environment is not linked (to that
// policy); EForbidden (EnterprisePolicyReadAccessRequired) without Reader on
// the linked policy; EConflict (BYOKMigrationRevertNotAllowed) for an
// environment migrated from BYOK within its no-revert period, and
// (EnvironmentLocked, OperationInProgress) for a locked or busy one.
func (s *Service) Unlink(ctx context.Context, c *keyhold.Caller, envID, systemID string) (*keyhold.Operation, error) {
	e, err := s.lifecycleEnv(ctx, c, envID)
	if err != nil {
		return nil, err
	}
	if e.PolicyID == "" {
		return nil, keyhold.Errorc(keyhold.EInvalid, DetailNotLinked,
			"Environment %s is not linked to an Encryption enterprise policy; there is nothing to remove.", e.ID)
	}
	if systemID = strings.TrimSpace(systemID); systemID != "" && !strings.EqualFold(systemID, e.PolicySystemID) {
		return nil, keyhold.Errorc(keyhold.EInvalid, DetailNotLinked,
			"Environment %s is linked to the enterprise policy %s, not %s.", e.ID, e.PolicySystemID, systemID)
	}
	// A policy deleted meanwhile cannot be read; the administrator may
	// still revert the environment to the platform key.
	if p, err := s.policyByID(ctx, e.PolicyID); err != nil {
		return nil, err
	} else if p != nil {
		if err := s.checkPolicyReader(ctx, c, e.PolicyID); err != nil {
			return nil, err
		}
	}
	if now := s.now(); now.Before(e.NoRevertUntil) {
		return nil, keyhold.Errorc(keyhold.EConflict, DetailNoRevertWindow,
			"Environment %s was migrated from a tenant key (BYOK) and cannot be reverted to the Microsoft-managed key until %s.",
			e.ID, e.NoRevertUntil.UTC().Format(time.RFC3339))
	}
	if err := s.checkNotBusy(ctx, e); err != nil {
		return nil, err
	}
	op, err := s.newOperation(e, ActionUnlink, c.Principal.ID, opParams{PolicyID: e.PolicyID, SystemID: e.PolicySystemID})
	if err != nil {
		return nil, err
	}
	if err := s.enqueue(ctx, op); err != nil {
		return nil, err
	}
	s.log.Info("environment: lifecycle operation requested", "operation", op.ID, "environment", e.ID, "action", ActionUnlink,
		"policy", e.PolicyID, "by", c.Principal.ID)
	return op, nil
}
