package environment

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// TenantSettings are a tenant's choices about locked environments.
type TenantSettings struct {
	// AutoReenable re-enables locked environments as soon as their policy
	// is healthy again and the original key unwraps their root key, instead
	// of waiting for an administrator.
	AutoReenable bool `json:"autoReenable"`
	// Retention turns on deletion of environments locked for longer than
	// their type's retention period (RetentionFor). Off by default: a locked
	// environment is kept until its key is back.
	Retention bool `json:"retention"`
}

// Retention periods of locked environments, as Microsoft documents them:
// sandbox (and other non-production) environments after seven days,
// production after 30.
const (
	RetentionProduction = 30 * 24 * time.Hour
	RetentionOther      = 7 * 24 * time.Hour
)

// RetentionFor is how long a locked environment of type typ is kept when the
// tenant turned retention on.
func RetentionFor(typ string) time.Duration {
	if typ == keyhold.EnvProduction {
		return RetentionProduction
	}
	return RetentionOther
}

const tenantSettingPrefix = "environment/tenant/"

// TenantSettings returns a tenant's settings; the defaults (all off) when it
// never set any. It returns the store's error.
func (s *Service) TenantSettings(ctx context.Context, tenantID string) (TenantSettings, error) {
	var ts TenantSettings
	b, err := s.cfg.Store.GetSetting(ctx, tenantSettingPrefix+strings.ToLower(tenantID))
	if keyhold.IsNotFound(err) || (err == nil && len(b) == 0) {
		return ts, nil
	}
	if err != nil {
		return ts, err
	}
	if err := json.Unmarshal(b, &ts); err != nil {
		return ts, keyhold.Internal("environment: stored tenant settings", err)
	}
	return ts, nil
}

// SetTenantSettings replaces the settings of the caller's tenant. Errors:
// EForbidden (DetailNotPlatformAdmin) unless the caller is a platform
// administrator; the store's.
func (s *Service) SetTenantSettings(ctx context.Context, caller *keyhold.Caller, ts TenantSettings) error {
	if caller == nil || caller.Principal == nil {
		return keyhold.Errorf(keyhold.EUnauthenticated, "environment: the request carries no caller")
	}
	if !caller.Principal.IsPlatformAdmin() {
		return keyhold.Errorc(keyhold.EForbidden, DetailNotPlatformAdmin,
			"environment: only Global, Power Platform and Dynamics 365 administrators may change the tenant's environment settings")
	}
	b, err := json.Marshal(ts)
	if err != nil {
		return keyhold.Internal("environment: encoding tenant settings", err)
	}
	if err := s.cfg.Store.PutSetting(ctx, tenantSettingPrefix+strings.ToLower(caller.TenantID), b); err != nil {
		return err
	}
	s.log.Info("environment: tenant settings changed", "tenant", caller.TenantID, "autoReenable", ts.AutoReenable, "retention", ts.Retention, "by", caller.Principal.ID)
	return nil
}

// retentionDue is when a locked environment may be deleted, and whether the
// tenant's retention allows deleting it at all.
func retentionDue(ts TenantSettings, e *keyhold.Environment) (time.Time, bool) {
	if !ts.Retention || e.RuntimeState != keyhold.RuntimeDisabled || e.LockedAt.IsZero() {
		return time.Time{}, false
	}
	return e.LockedAt.Add(RetentionFor(e.Type)), true
}
