package arm

import (
	"context"

	"github.com/keyhold/keyhold"
)

// FeatureState returns the state a subscription's registration of the
// feature namespace/name reads as now, settled the way the resource manager
// settles it: a Registering registration older than the registration delay
// reads Registered (and is persisted through st), and a feature never
// registered reads NotRegistered. st may be a transaction; nil means the
// server's store. It returns the store's error when the registration cannot
// be read.
func (s *Server) FeatureState(ctx context.Context, st keyhold.Store, subscriptionID, namespace, name string) (string, error) {
	if st == nil {
		st = s.store
	}
	f, err := s.feature(ctx, st, subscriptionID, namespace, name)
	if err != nil {
		return "", err
	}
	return f.State, nil
}
