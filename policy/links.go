package policy

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
)

// LinkChecker reports the environments linked to a policy. The environment
// lifecycle implements it; a policy in use must keep its key and identity.
type LinkChecker interface {
	// LinkedEnvironments returns the ids (or names) of the environments
	// linked to the policy with the resource id policyID, none if it has none.
	LinkedEnvironments(ctx context.Context, policyID string) ([]string, error)
}

// checkLinks returns EConflict (409, EnterprisePolicyLinkedToEnvironments)
// when environments are linked to the policy id, saying that they must be
// removed from it before one may do what.
func (s *Service) checkLinks(ctx context.Context, id armid.ID, what string) error {
	if s.cfg.Links == nil {
		return nil
	}
	envs, err := s.cfg.Links.LinkedEnvironments(ctx, id.String())
	if err != nil {
		return err
	}
	if len(envs) == 0 {
		return nil
	}
	noun := "environments"
	if len(envs) == 1 {
		noun = "environment"
	}
	return keyhold.Errorc(keyhold.EConflict, "EnterprisePolicyLinkedToEnvironments",
		"The enterprise policy %s is linked to %s %s. Remove them from the policy first (Remove environment in the admin center, or RemoveCustomerManagedKeyFromEnvironment.ps1), then %s.",
		id.Name(), noun, strings.Join(envs, ", "), what)
}
