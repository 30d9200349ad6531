package duties

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
)

// Access is one key vault right a principal holds.
type Access struct {
	// Role is the role's name, or "Access policy".
	Role string `json:"role"`
	// Permissions are an access policy's key management permissions.
	Permissions []string `json:"permissions,omitempty"`
	// Scope is the role assignment's scope, or the vault's id.
	Scope string `json:"scope"`
	// RoleAssignment is the role assignment's name, a GUID.
	RoleAssignment string `json:"roleAssignment,omitempty"`
	// GroupID and GroupName name the group the right is held through;
	// empty when it is held directly.
	GroupID   string `json:"groupId,omitempty"`
	GroupName string `json:"groupName,omitempty"`
}

// accessPolicyRole is Access.Role for an access policy.
const accessPolicyRole = "Access policy"

// describe says what a is, as the tail of a refusal: "Key Vault
// Administrator on /subscriptions/...", "key management permissions
// (create, delete) in an access policy of /subscriptions/.../vaults/kv".
func (a Access) describe() string {
	s := a.Role + " on " + a.Scope
	if a.Role == accessPolicyRole {
		s = "key management permissions (" + strings.Join(a.Permissions, ", ") + ") in an access policy of " + a.Scope
	}
	if a.GroupID != "" {
		s += fmt.Sprintf(" through group '%s'", a.GroupName)
	}
	return s
}

// via marks a as held through group g, unless g is the principal itself.
func (a Access) via(g *keyhold.Principal) Access {
	if g.Type == keyhold.PrincipalGroup {
		a.GroupID, a.GroupName = g.ID, g.DisplayName
	}
	return a
}

// AccessPolicy is the part of a vault access policy the checker reads.
type AccessPolicy struct {
	TenantID string
	ObjectID string
	Keys     []string // key permissions
}

// vault is a live vault's id and access policies.
type vault struct {
	id       string
	policies []AccessPolicy
}

// storedVault is the part of a stored vault's properties the checker reads.
type storedVault struct {
	AccessPolicies []struct {
		TenantID    string `json:"tenantId"`
		ObjectID    string `json:"objectId"`
		Permissions struct {
			Keys []string `json:"keys"`
		} `json:"permissions"`
	} `json:"accessPolicies"`
}

// vaultsOf returns the live vaults of tenantID's subscriptions, read
// through st.
func vaultsOf(ctx context.Context, st keyhold.Store, tenantID string) ([]vault, error) {
	subs, err := st.ListSubscriptions(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var out []vault
	for _, sub := range subs {
		rs, err := st.ListResources(ctx, keyhold.ResourceFilter{SubscriptionID: sub.ID, Type: VaultType})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if !strings.EqualFold(r.Type, VaultType) {
				continue
			}
			var p storedVault
			if len(r.Properties) > 0 {
				if err := json.Unmarshal(r.Properties, &p); err != nil {
					return nil, keyhold.Internal("duties: stored vault properties of "+r.ID, err)
				}
			}
			v := vault{id: r.ID}
			for _, ap := range p.AccessPolicies {
				v.policies = append(v.policies, AccessPolicy{TenantID: ap.TenantID, ObjectID: ap.ObjectID, Keys: ap.Permissions.Keys})
			}
			out = append(out, v)
		}
	}
	return out, nil
}

// accessOf returns the key vault rights that holders (a principal and the
// groups above it, or groups alone) hold in tenantID, each marked with the
// group it comes through. vaults is vaultsOf(tenantID).
func accessOf(ctx context.Context, st keyhold.Store, tenantID string, holders []*keyhold.Principal, vaults []vault) ([]Access, error) {
	var out []Access
	for _, h := range holders {
		as, err := st.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: tenantID, PrincipalID: h.ID})
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			// The store filters already; checking again keeps a lax driver
			// from mixing tenants up.
			if !strings.EqualFold(a.TenantID, tenantID) || !strings.EqualFold(a.PrincipalID, h.ID) {
				continue
			}
			role, ok := IsKeyVaultRole(a.RoleDefinitionID)
			if !ok {
				continue
			}
			scope, err := armid.Parse(a.Scope)
			if err != nil || !HoldsVaults(scope) {
				continue
			}
			out = append(out, Access{Role: role, Scope: a.Scope, RoleAssignment: a.Name}.via(h))
		}
		for _, v := range vaults {
			for _, ap := range v.policies {
				if !strings.EqualFold(ap.TenantID, tenantID) || !strings.EqualFold(ap.ObjectID, h.ID) {
					continue
				}
				if perms := ManagementPermissions(ap.Keys); len(perms) > 0 {
					out = append(out, Access{Role: accessPolicyRole, Permissions: perms, Scope: v.id}.via(h))
				}
			}
		}
	}
	return out, nil
}

// maxGroups bounds the walks through nested groups.
const maxGroups = 2048

// groupsAbove returns the groups id belongs to, directly or through other
// groups, each once.
func groupsAbove(ctx context.Context, st keyhold.Store, id string) ([]*keyhold.Principal, error) {
	seen := map[string]bool{strings.ToLower(id): true}
	var out []*keyhold.Principal
	queue := []string{id}
	for len(queue) > 0 && len(out) < maxGroups {
		cur := queue[0]
		queue = queue[1:]
		ids, err := st.ListMemberships(ctx, cur)
		if err != nil && !keyhold.IsNotFound(err) {
			return nil, err
		}
		for _, g := range ids {
			if seen[strings.ToLower(g)] {
				continue
			}
			seen[strings.ToLower(g)] = true
			p, err := st.GetPrincipal(ctx, g)
			if keyhold.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, p)
			queue = append(queue, g)
		}
	}
	return out, nil
}

// usersUnder returns the users a right given to p reaches: p itself if it
// is a user, the users in it, directly or through nested groups, if it is
// a group, and none for an application or managed identity, which cannot
// hold directory roles.
func usersUnder(ctx context.Context, st keyhold.Store, p *keyhold.Principal) ([]*keyhold.Principal, error) {
	switch p.Type {
	case keyhold.PrincipalUser:
		return []*keyhold.Principal{p}, nil
	case keyhold.PrincipalGroup:
	default:
		return nil, nil
	}
	seen := map[string]bool{strings.ToLower(p.ID): true}
	var out []*keyhold.Principal
	queue := []string{p.ID}
	for n := 0; len(queue) > 0 && n < maxGroups; n++ {
		cur := queue[0]
		queue = queue[1:]
		ids, err := st.ListGroupMembers(ctx, cur)
		if err != nil && !keyhold.IsNotFound(err) {
			return nil, err
		}
		for _, id := range ids {
			if seen[strings.ToLower(id)] {
				continue
			}
			seen[strings.ToLower(id)] = true
			m, err := st.GetPrincipal(ctx, id)
			if keyhold.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, err
			}
			switch m.Type {
			case keyhold.PrincipalUser:
				out = append(out, m)
			case keyhold.PrincipalGroup:
				queue = append(queue, m.ID)
			}
		}
	}
	slices.SortFunc(out, func(a, b *keyhold.Principal) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
