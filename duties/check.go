package duties

import (
	"context"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
)

// Each Check method takes st, the transaction the grant is written in: it
// locks the tenant's checks there first, then reads, so that of two grants
// that together would break the rule the second sees the first. All return
// nil when separation of duties is off for the tenant or the grant is not
// one of the two kinds; an EConflict with detail
// keyhold.DetailSeparationOfDuties naming the principal, what it holds and
// what is refused; or the store's error.

// CheckRoleAssignment checks the role assignment a before it is created: a
// key vault role at a scope that holds vaults may not reach a platform
// administrator, directly or, for a group, through its members.
func (c *Checker) CheckRoleAssignment(ctx context.Context, st keyhold.Store, a *keyhold.RoleAssignment) error {
	if c == nil {
		return nil
	}
	role, ok := IsKeyVaultRole(a.RoleDefinitionID)
	if !ok {
		return nil
	}
	scope, err := armid.Parse(a.Scope)
	if err != nil || !HoldsVaults(scope) {
		return nil
	}
	if on, err := c.begin(ctx, st, a.TenantID); !on || err != nil {
		return err
	}
	p, err := st.GetPrincipal(ctx, a.PrincipalID)
	if keyhold.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.refuseUsers(ctx, st, p, Access{Role: role, Scope: a.Scope}.via(p))
}

// CheckAccessPolicies checks a write of vaultID's access policies, from
// prev (nil for a new vault) to next: a principal that gains key management
// permissions may not be, or have among its members, a platform
// administrator. Policies that do not change stay as they are, so an
// existing violation does not block unrelated writes.
func (c *Checker) CheckAccessPolicies(ctx context.Context, st keyhold.Store, tenantID, vaultID string, prev, next []AccessPolicy) error {
	if c == nil {
		return nil
	}
	gains := gainedPermissions(tenantID, prev, next)
	if len(gains) == 0 {
		return nil
	}
	if on, err := c.begin(ctx, st, tenantID); !on || err != nil {
		return err
	}
	for _, g := range gains {
		p, err := st.GetPrincipal(ctx, g.objectID)
		if keyhold.IsNotFound(err) || err == nil && !strings.EqualFold(p.TenantID, tenantID) {
			continue // an access policy may name an object the directory does not know
		}
		if err != nil {
			return err
		}
		if err := c.refuseUsers(ctx, st, p, Access{Role: accessPolicyRole, Permissions: g.perms, Scope: vaultID}.via(p)); err != nil {
			return err
		}
	}
	return nil
}

// CheckDirectoryRole checks giving user u the directory role role: a
// platform role may not go to a user that holds a key vault right,
// directly or through its groups. u is the user as it will be, so a user
// that is (or becomes) a Global Administrator is exempt.
func (c *Checker) CheckDirectoryRole(ctx context.Context, st keyhold.Store, u *keyhold.Principal, role string) error {
	if c == nil || !slices.Contains(PlatformRoles, role) || exempt(u) {
		return nil
	}
	if on, err := c.begin(ctx, st, u.TenantID); !on || err != nil {
		return err
	}
	holders, err := groupsAbove(ctx, st, u.ID)
	if err != nil {
		return err
	}
	vaults, err := vaultsOf(ctx, st, u.TenantID)
	if err != nil {
		return err
	}
	access, err := accessOf(ctx, st, u.TenantID, append([]*keyhold.Principal{u}, holders...), vaults)
	if err != nil || len(access) == 0 {
		return err
	}
	return c.refuse(ctx, u, "holds "+access[0].describe(), "be a "+role)
}

// CheckGroupMember checks making member a member of group: the key vault
// rights of the group, and of the groups above it, may not reach a platform
// administrator that is member or, for a group, one of its members.
func (c *Checker) CheckGroupMember(ctx context.Context, st keyhold.Store, group, member *keyhold.Principal) error {
	if c == nil {
		return nil
	}
	if on, err := c.begin(ctx, st, group.TenantID); !on || err != nil {
		return err
	}
	above, err := groupsAbove(ctx, st, group.ID)
	if err != nil {
		return err
	}
	vaults, err := vaultsOf(ctx, st, group.TenantID)
	if err != nil {
		return err
	}
	access, err := accessOf(ctx, st, group.TenantID, append([]*keyhold.Principal{group}, above...), vaults)
	if err != nil || len(access) == 0 {
		return err
	}
	return c.refuseUsers(ctx, st, member, access[0])
}

// begin reports whether the tenant has separation of duties on and, if so,
// takes the tenant's lock in st.
func (c *Checker) begin(ctx context.Context, st keyhold.Store, tenantID string) (bool, error) {
	on, err := c.Enabled(ctx, st, tenantID)
	if err != nil || !on {
		return false, err
	}
	return true, c.lock(ctx, st, tenantID)
}

// refuseUsers refuses grant if it reaches a user, p or a member of p, that
// is a platform administrator and not exempt.
func (c *Checker) refuseUsers(ctx context.Context, st keyhold.Store, p *keyhold.Principal, grant Access) error {
	users, err := usersUnder(ctx, st, p)
	if err != nil {
		return err
	}
	for _, u := range users {
		if exempt(u) {
			continue
		}
		if r := platformRole(u); r != "" {
			return c.refuse(ctx, u, "is a "+r, "hold "+grant.describe())
		}
	}
	return nil
}

// refuse returns the violation, notes it for the audit record and logs it.
func (c *Checker) refuse(ctx context.Context, p *keyhold.Principal, holds, refused string) error {
	if info := httpapi.InfoFrom(ctx); info != nil {
		info.Detail = "refused: " + keyhold.DetailSeparationOfDuties
	}
	c.log.Info("duties: grant refused by separation of duties", "tenant", p.TenantID, "principal", p.ID, "holds", holds, "refused", refused)
	return keyhold.Errorc(keyhold.EConflict, keyhold.DetailSeparationOfDuties,
		"principal %s %s; with separation of duties on, it may not also %s", name(p), holds, refused)
}

// gain is the key management permissions an object gains.
type gain struct {
	objectID string
	perms    []string
}

// gainedPermissions returns, for each object of tenantID in next, the key
// management permissions it has in next and not in prev.
func gainedPermissions(tenantID string, prev, next []AccessPolicy) []gain {
	perms := func(list []AccessPolicy) map[string][]string {
		out := map[string][]string{}
		for _, ap := range list {
			if !strings.EqualFold(ap.TenantID, tenantID) {
				continue
			}
			oid := strings.ToLower(ap.ObjectID)
			out[oid] = ManagementPermissions(append(out[oid], ap.Keys...))
		}
		return out
	}
	before, after := perms(prev), perms(next)
	var out []gain
	for oid, ps := range after {
		var added []string
		for _, p := range ps {
			if !slices.Contains(before[oid], p) {
				added = append(added, p)
			}
		}
		if len(added) > 0 {
			out = append(out, gain{objectID: oid, perms: added})
		}
	}
	slices.SortFunc(out, func(a, b gain) int { return strings.Compare(a.objectID, b.objectID) })
	return out
}
