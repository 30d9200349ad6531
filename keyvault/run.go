package keyvault

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
)

// Run does the vault's background work until ctx ends, once at the start
// and then every Config.RotationInterval: see RunOnce. Failures are logged
// and retried on the next round, so Run returns only when ctx ends, with
// nil.
func (s *Service) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.RotationInterval)
	defer t.Stop()
	var since time.Time
	for {
		now := s.now()
		ran, err := s.round(ctx, since)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("vault background round failed; retrying next round", "err", err.Error())
		}
		// Only rounds this process ran move since, so that a server taking
		// the lease over announces what expired while another held it.
		if ran {
			since = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// backgroundLease is the lease the background round holds, so that of
// several servers sharing a store one at a time rotates, announces and
// purges: two at once would rotate a due key twice.
const backgroundLease = "keyvault/background"

// RunOnce does one round of background work, if this process holds (or
// takes) the background lease, and reports nil without doing anything if
// another process does. The lease lasts three rounds, so a server that
// stops is replaced within three RotationIntervals. A round rotates the
// keys whose rotation policy's Rotate trigger is due (timeAfterCreate
// counted from the newest version's creation, timeBeforeExpiry against its
// expiry), giving the new version the policy's expiryTime; publishes
// KeyExpired for newest versions whose exp passed after since (the zero
// time means ever); purges soft-deleted keys past their scheduled purge
// date; and purges vaults due for it. It carries on past failures and
// returns them joined.
func (s *Service) RunOnce(ctx context.Context, since time.Time) error {
	_, err := s.round(ctx, since)
	return err
}

// round is RunOnce, reporting whether this process held the lease and ran.
func (s *Service) round(ctx context.Context, since time.Time) (bool, error) {
	now := s.now()
	held, err := s.cfg.Store.AcquireLease(ctx, backgroundLease, s.cfg.NodeID, now, now.Add(3*s.cfg.RotationInterval))
	if err != nil || !held {
		return false, err
	}
	ks, err := s.keyStore()
	if err != nil {
		return true, err
	}
	vaults, err := s.cfg.Store.ListResources(ctx, keyhold.ResourceFilter{Type: ResourceType})
	if err != nil {
		return true, err
	}
	type vaultInfo struct {
		r *keyhold.Resource
		p *Properties
	}
	byName := map[string]vaultInfo{}
	var errs []error
	for _, r := range vaults {
		p, err := ParseProperties(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byName[strings.ToLower(r.Name)] = vaultInfo{r, p}
		errs = append(errs, s.expireAndPurge(ctx, ks, r, p, since, now))
	}

	policies, err := ks.ListKeyRotationPolicies(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, stored := range policies {
		vi, ok := byName[strings.ToLower(stored.VaultName)]
		if !ok {
			continue
		}
		pol, _, err := parseStoredPolicy(stored)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if pol.rotateAfterCreate == nil && pol.rotateBeforeExpiry == nil {
			continue
		}
		latest, err := ks.GetKeyVersion(ctx, vi.r.Name, stored.Name, "")
		if keyhold.IsNotFound(err) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !rotationDue(pol, latest, now) {
			continue
		}
		v, err := s.rotate(ctx, vi.r, vi.p, latest.Name, pol)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.log.Info("rotated a key by its rotation policy", "vault", vi.r.Name, "key", v.Name, "version", v.Version)
	}
	// Vaults go last, so that keys purged above were announced first.
	errs = append(errs, s.purgeDueVaults(ctx))
	return true, errors.Join(errs...)
}

// rotationDue reports whether pol's Rotate trigger has come for the newest
// version latest.
func rotationDue(pol *rotationPolicy, latest *keyhold.KeyVersion, now time.Time) bool {
	if d := pol.rotateAfterCreate; d != nil && !now.Before(d.addTo(latest.CreatedAt)) {
		return true
	}
	if d := pol.rotateBeforeExpiry; d != nil && !latest.Expires.IsZero() && !now.Before(d.subFrom(latest.Expires)) {
		return true
	}
	return false
}

// expireAndPurge announces keys of one vault whose newest version expired
// in (since, now], and purges its soft-deleted keys whose date has come.
func (s *Service) expireAndPurge(ctx context.Context, ks keyhold.KeyStore, r *keyhold.Resource, p *Properties, since, now time.Time) error {
	var errs []error
	keys, err := ks.ListKeys(ctx, r.Name, "", 0)
	if err != nil {
		errs = append(errs, err)
	}
	for _, v := range keys {
		if !v.Expires.IsZero() && v.Expires.After(since) && !v.Expires.After(now) {
			s.publish(ctx, events.KeyExpired, r, p, v.Name, "version "+v.Version)
		}
	}
	deleted, err := ks.ListDeletedKeys(ctx, r.Name, "", 0)
	if err != nil {
		errs = append(errs, err)
	}
	for _, d := range deleted {
		if now.Before(d.ScheduledPurgeAt) {
			continue
		}
		if err := ks.PurgeKey(ctx, r.Name, d.Latest.Name); err != nil && !keyhold.IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		s.cache.drop(r.Name, d.Latest.Name)
		s.publish(ctx, events.KeyPurged, r, p, d.Latest.Name, "scheduled purge")
		s.log.Info("purged a deleted key whose retention ended", "vault", r.Name, "key", d.Latest.Name)
	}
	return errors.Join(errs...)
}
