package environment

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/policy"
)

// Links returns the policy.LinkChecker of the enterprise-policy service:
// the environments linked (or being linked) to a policy, from the store, so
// that a policy in use cannot be deleted or pointed at another key. It needs
// only the store because the policy service is made before this one.
func Links(store keyhold.EnvironmentStore) policy.LinkChecker { return links{store} }

type links struct{ store keyhold.EnvironmentStore }

// LinkedEnvironments implements policy.LinkChecker. It returns the store's
// error.
func (l links) LinkedEnvironments(ctx context.Context, policyID string) ([]string, error) {
	envs, err := l.store.ListEnvironmentsByPolicy(ctx, policyID)
	if keyhold.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(envs))
	for _, e := range envs {
		out = append(out, e.ID)
	}
	return out, nil
}
