package duties

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// Status is a tenant's separation of duties: whether it is on, why, and
// who holds both kinds of right today. Turning the setting on revokes
// nothing; Violations is what an administrator has to clean up by hand.
type Status struct {
	// Enabled is whether grants are checked now: TenantSetting or
	// ServerEnforced.
	Enabled        bool      `json:"enabled"`
	TenantSetting  bool      `json:"tenantSetting"`
	ServerEnforced bool      `json:"serverEnforced"`
	ChangedBy      string    `json:"changedBy,omitempty"`
	ChangedAt      time.Time `json:"changedAt,omitzero"`
	// Violations are the users that are platform administrators and hold
	// a key vault right.
	Violations []Holder `json:"violations"`
	// Exempt are the Global Administrators that hold a key vault right.
	Exempt []Holder `json:"exempt"`
	// Rules are the roles and permissions the checks count.
	Rules Rules `json:"rules"`
}

// Rules lists what counts as which kind of right.
type Rules struct {
	KeyVaultRoles            []string `json:"keyVaultRoles"`
	ManagementKeyPermissions []string `json:"managementKeyPermissions"`
	PlatformRoles            []string `json:"platformRoles"`
	Exempt                   []string `json:"exempt"`
}

// Holder is a user that holds both kinds of right, or a Global
// Administrator that holds a key vault right.
type Holder struct {
	PrincipalID   string `json:"principalId"`
	PrincipalName string `json:"principalName"`
	// DirectoryRoles are its platform roles, and Global Administrator.
	DirectoryRoles []string `json:"directoryRoles"`
	// KeyVaultAccess are its key vault rights.
	KeyVaultAccess []Access `json:"keyVaultAccess"`
}

// Status returns tenantID's separation of duties with its current
// violations. It returns the store's error.
func (c *Checker) Status(ctx context.Context, tenantID string) (*Status, error) {
	ts, err := c.Setting(ctx, nil, tenantID)
	if err != nil {
		return nil, err
	}
	out := &Status{
		Enabled: ts.Enabled || c.enforce, TenantSetting: ts.Enabled, ServerEnforced: c.enforce,
		ChangedBy: ts.ChangedBy, ChangedAt: ts.ChangedAt,
		Violations: []Holder{}, Exempt: []Holder{},
		Rules: Rules{
			KeyVaultRoles: slices.Clone(KeyVaultRoles), ManagementKeyPermissions: slices.Clone(ManagementKeyPermissions),
			PlatformRoles: slices.Clone(PlatformRoles), Exempt: []string{keyhold.RoleGlobalAdministrator},
		},
	}
	users, err := c.store.FindPrincipals(ctx, keyhold.PrincipalFilter{TenantID: tenantID, Type: keyhold.PrincipalUser})
	if err != nil {
		return nil, err
	}
	vaults, err := vaultsOf(ctx, c.store, tenantID)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		platform := platformRole(u) != ""
		if !platform && !exempt(u) {
			continue
		}
		groups, err := groupsAbove(ctx, c.store, u.ID)
		if err != nil {
			return nil, err
		}
		access, err := accessOf(ctx, c.store, tenantID, append([]*keyhold.Principal{u}, groups...), vaults)
		if err != nil {
			return nil, err
		}
		if len(access) == 0 {
			continue
		}
		h := Holder{PrincipalID: u.ID, PrincipalName: name(u), KeyVaultAccess: access}
		for _, r := range append([]string{keyhold.RoleGlobalAdministrator}, PlatformRoles...) {
			if u.HasDirectoryRole(r) {
				h.DirectoryRoles = append(h.DirectoryRoles, r)
			}
		}
		if exempt(u) {
			out.Exempt = append(out.Exempt, h)
		} else {
			out.Violations = append(out.Violations, h)
		}
	}
	byName := func(a, b Holder) int {
		return strings.Compare(strings.ToLower(a.PrincipalName), strings.ToLower(b.PrincipalName))
	}
	slices.SortFunc(out.Violations, byName)
	slices.SortFunc(out.Exempt, byName)
	return out, nil
}
