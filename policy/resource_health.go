package policy

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
)

// HealthStates lists the valid health states.
var HealthStates = []string{HealthUndetermined, HealthHealthy, HealthWarning, HealthUnhealthy}

// Get returns the policy with the resource id policyID. It returns ENotFound
// when there is none, and the store's error otherwise.
func (s *Service) Get(ctx context.Context, policyID string) (*Policy, error) {
	r, err := s.cfg.Store.GetResource(ctx, policyID)
	if err == nil && !strings.EqualFold(r.Type, ResourceType) {
		err = keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound", "policy: %s is not an enterprise policy", policyID)
	}
	if keyhold.IsNotFound(err) {
		return nil, keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound", "policy: enterprise policy %s was not found", policyID)
	}
	if err != nil {
		return nil, err
	}
	return Decode(r)
}

// List returns every policy of kind Encryption on the server, in every
// tenant, ordered by id: the policies whose health is watched. It returns
// the store's error, or EInternal for a stored policy that does not decode.
func (s *Service) List(ctx context.Context) ([]*Policy, error) {
	rs, err := s.cfg.Store.ListResources(ctx, keyhold.ResourceFilter{Type: ResourceType})
	if err != nil {
		return nil, err
	}
	out := make([]*Policy, 0, len(rs))
	for _, r := range rs {
		if !strings.EqualFold(r.Kind, KindEncryption) || !strings.EqualFold(r.Type, ResourceType) {
			continue
		}
		p, err := Decode(r)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// SetHealth records the health checker's verdict on the policy policyID:
// properties.healthStatus and properties.healthDetail, and nothing else. The
// ETag and systemData stay as they were, so that a client's If-Match on the
// policy does not fail because a probe ran. When the status or the reason
// changed it publishes events.PolicyChanged after the write commits (a
// repeated verdict publishes nothing, so that a subscriber that re-checks on
// PolicyChanged does not loop). It returns EInvalid for a status that is not
// one of HealthStates, ENotFound when the policy does not exist, and the
// store's error otherwise.
func (s *Service) SetHealth(ctx context.Context, policyID string, status string, detail HealthDetail) error {
	st, ok := canonical(status, HealthStates)
	if !ok {
		return keyhold.Errorf(keyhold.EInvalid, "policy: health status %q is not one of %s", status, strings.Join(HealthStates, ", "))
	}
	if detail.CheckedAt.IsZero() {
		detail.CheckedAt = s.now().UTC()
	}
	var changed bool
	var tenant, principal string
	err := s.cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
		r, err := tx.GetResource(ctx, policyID)
		if err == nil && !strings.EqualFold(r.Type, ResourceType) {
			err = keyhold.Errorf(keyhold.ENotFound, "policy: %s is not an enterprise policy", policyID)
		}
		if keyhold.IsNotFound(err) {
			return keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound", "policy: enterprise policy %s was not found", policyID)
		}
		if err != nil {
			return err
		}
		p, err := Decode(r)
		if err != nil {
			return err
		}
		tenant, principal = p.Identity.TenantID, p.Identity.PrincipalID
		old := p.Properties.HealthDetail
		changed = p.Properties.HealthStatus != st || old == nil || old.Reason != detail.Reason || old.Definite != detail.Definite
		// Rewriting only the two fields keeps whatever else the stored
		// properties hold exactly as it was.
		props := map[string]json.RawMessage{}
		if len(r.Properties) > 0 {
			if err := json.Unmarshal(r.Properties, &props); err != nil {
				return keyhold.Internal("policy: stored properties", err)
			}
		}
		if props["healthStatus"], err = json.Marshal(st); err != nil {
			return keyhold.Internal("policy: encoding health", err)
		}
		if props["healthDetail"], err = json.Marshal(detail); err != nil {
			return keyhold.Internal("policy: encoding health", err)
		}
		if r.Properties, err = json.Marshal(props); err != nil {
			return keyhold.Internal("policy: encoding properties", err)
		}
		return tx.PutResource(ctx, r)
	})
	if err != nil {
		return err
	}
	if changed {
		s.log.Info("policy: health changed", "policy", policyID, "health", st, "reason", detail.Reason)
		if s.cfg.Events != nil {
			s.cfg.Events.Publish(ctx, events.Event{Kind: events.PolicyChanged, TenantID: tenant, Scope: policyID, Subject: principal,
				Detail: "policy: health is now " + st})
		}
	}
	return nil
}
