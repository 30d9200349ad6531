package environment

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Environment roles. They are the environment's own (as Dataverse security
// roles are), not Azure role assignments: an Azure Owner of a subscription
// has no business reading an environment's rows. Platform administrators are
// environment administrators of every environment of their tenant.
const (
	RoleEnvironmentAdmin = "Environment Admin"
	RoleEnvironmentUser  = "Environment User"
)

// EnvironmentRoles lists the environment roles.
var EnvironmentRoles = []string{RoleEnvironmentAdmin, RoleEnvironmentUser}

// rolesSettingPrefix names the setting that keeps an environment's role
// holders: one small JSON document per environment, read with the
// environment into the data path's cache.
const rolesSettingPrefix = "environment/roles/"

// RoleHolder is a principal (user, service principal, managed identity or
// group) holding an environment role.
type RoleHolder struct {
	PrincipalID string    `json:"principalId"`
	Role        string    `json:"role"`
	GrantedBy   string    `json:"grantedBy,omitempty"`
	GrantedAt   time.Time `json:"grantedAt"`
}

func rolesSetting(envID string) string { return rolesSettingPrefix + strings.ToLower(envID) }

func readRoles(ctx context.Context, st keyhold.Store, envID string) ([]RoleHolder, error) {
	b, err := st.GetSetting(ctx, rolesSetting(envID))
	if keyhold.IsNotFound(err) || (err == nil && len(b) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []RoleHolder
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, keyhold.Internal("environment: stored role holders", err)
	}
	return out, nil
}

func (s *Service) loadRoles(ctx context.Context, st keyhold.Store, envID string) (map[string]string, error) {
	list, err := readRoles(ctx, st, envID)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(list))
	for _, h := range list {
		m[strings.ToLower(h.PrincipalID)] = h.Role
	}
	return m, nil
}

// roleOf is the strongest environment role the caller holds in st, itself
// or through a group; "" for none.
func roleOf(st *envState, c *keyhold.Caller) string {
	if c.Principal.IsPlatformAdmin() {
		return RoleEnvironmentAdmin
	}
	role := ""
	for _, id := range c.ObjectIDs() {
		switch st.roles[strings.ToLower(id)] {
		case RoleEnvironmentAdmin:
			return RoleEnvironmentAdmin
		case RoleEnvironmentUser:
			role = RoleEnvironmentUser
		}
	}
	return role
}

func canonicalRole(r string) (string, bool) {
	n := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(r)), " ", "")
	switch n {
	case "environmentadmin", "admin", "systemadministrator":
		return RoleEnvironmentAdmin, true
	case "environmentuser", "user", "environmentmaker", "basicuser":
		return RoleEnvironmentUser, true
	}
	return "", false
}

// canManageRoles reports whether the caller administers environment e: a
// platform administrator of its tenant or an Environment Admin.
func (s *Service) canManageRoles(ctx context.Context, caller *keyhold.Caller, envID string) (*envState, error) {
	if caller == nil || caller.Principal == nil {
		return nil, keyhold.Errorf(keyhold.EUnauthenticated, "environment: the request carries no caller")
	}
	st, err := s.state(ctx, envID)
	if keyhold.IsNotFound(err) {
		return nil, notFound(envID, caller.TenantID)
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(st.env.TenantID, caller.TenantID) {
		return nil, notFound(envID, caller.TenantID)
	}
	if roleOf(st, caller) != RoleEnvironmentAdmin {
		if roleOf(st, caller) == "" {
			return nil, notFound(envID, caller.TenantID)
		}
		return nil, keyhold.Errorc(keyhold.EForbidden, DetailEnvironmentAccess,
			"environment: only an %s or a platform administrator may change the roles of environment %s", RoleEnvironmentAdmin, st.env.ID)
	}
	return st, nil
}

// ListRoles lists an environment's role holders to its administrators.
// Errors: ENotFound for anyone who holds no role, EForbidden for an
// Environment User, the store's otherwise.
func (s *Service) ListRoles(ctx context.Context, caller *keyhold.Caller, envID string) ([]RoleHolder, error) {
	st, err := s.canManageRoles(ctx, caller, envID)
	if err != nil {
		return nil, err
	}
	return readRoles(ctx, s.cfg.Store, st.env.ID)
}

// GrantRole gives principalID (a principal or group of the environment's
// tenant) the role in environment envID, replacing any role it held there.
// Errors: those of ListRoles; EInvalid for an unknown role or a principal
// that is not in the tenant; the store's.
func (s *Service) GrantRole(ctx context.Context, caller *keyhold.Caller, envID, principalID, role string) (*RoleHolder, error) {
	st, err := s.canManageRoles(ctx, caller, envID)
	if err != nil {
		return nil, err
	}
	r, ok := canonicalRole(role)
	if !ok {
		return nil, invalid("environment: role %q is not one of %s", role, strings.Join(EnvironmentRoles, ", "))
	}
	p, err := s.cfg.Store.GetPrincipal(ctx, principalID)
	if keyhold.IsNotFound(err) || (err == nil && !strings.EqualFold(p.TenantID, st.env.TenantID)) {
		return nil, invalid("environment: principal %q does not exist in the tenant", principalID)
	}
	if err != nil {
		return nil, err
	}
	h := RoleHolder{PrincipalID: p.ID, Role: r, GrantedBy: caller.Principal.ID, GrantedAt: s.now().UTC()}
	err = s.updateRoles(ctx, st.env.ID, func(list []RoleHolder) []RoleHolder {
		out := list[:0]
		for _, x := range list {
			if !strings.EqualFold(x.PrincipalID, p.ID) {
				out = append(out, x)
			}
		}
		return append(out, h)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("environment: role granted", "environment", st.env.ID, "principal", p.ID, "role", r, "by", caller.Principal.ID)
	s.announce(ctx, &st.env, "environment: roles changed")
	return &h, nil
}

// RevokeRole removes principalID's role in environment envID. Errors: those
// of ListRoles; ENotFound when the principal holds no role there.
func (s *Service) RevokeRole(ctx context.Context, caller *keyhold.Caller, envID, principalID string) error {
	st, err := s.canManageRoles(ctx, caller, envID)
	if err != nil {
		return err
	}
	found := false
	err = s.updateRoles(ctx, st.env.ID, func(list []RoleHolder) []RoleHolder {
		out := list[:0]
		for _, x := range list {
			if strings.EqualFold(x.PrincipalID, principalID) {
				found = true
				continue
			}
			out = append(out, x)
		}
		return out
	})
	if err != nil {
		return err
	}
	if !found {
		return keyhold.Errorc(keyhold.ENotFound, "RoleAssignmentNotFound", "environment: principal %s holds no role in environment %s", principalID, st.env.ID)
	}
	s.log.Info("environment: role revoked", "environment", st.env.ID, "principal", principalID, "by", caller.Principal.ID)
	s.announce(ctx, &st.env, "environment: roles changed")
	return nil
}

func (s *Service) updateRoles(ctx context.Context, envID string, f func([]RoleHolder) []RoleHolder) error {
	return s.cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
		list, err := readRoles(ctx, tx, envID)
		if err != nil {
			return err
		}
		b, err := json.Marshal(f(list))
		if err != nil {
			return keyhold.Internal("environment: encoding role holders", err)
		}
		return tx.PutSetting(ctx, rolesSetting(envID), b)
	})
}

// clearRoles forgets the role holders of a deleted environment; settings
// cannot be deleted, so the document is emptied.
func (s *Service) clearRoles(ctx context.Context, envID string) error {
	return s.cfg.Store.PutSetting(ctx, rolesSetting(envID), []byte("[]"))
}
