// Package rbac is Keyhold's Azure role-based access control: the built-in
// role definitions, with Azure's names, GUIDs and permissions, and the
// check that decides whether a caller may perform an action at a scope from
// the role assignments in the store.
package rbac

import (
	"context"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
)

// Authorizer decides from role assignments whether callers may act. It is
// safe for concurrent use; it keeps no cache, so a new or removed assignment
// counts from the next request.
type Authorizer struct {
	store keyhold.Store
}

// New returns an Authorizer that reads role assignments from store.
func New(store keyhold.Store) *Authorizer {
	return &Authorizer{store: store}
}

// Grant is one role a caller holds at a scope.
type Grant struct {
	Assignment *keyhold.RoleAssignment
	Scope      armid.ID
	Role       RoleDefinition
}

// Grants is what a caller holds: the roles of all its assignments (its own
// and its groups') in its tenant. Load it once with Authorizer.Grants to
// check many scopes, such as when filtering a list.
type Grants struct {
	list []Grant
}

// Grants loads the role assignments of c (its object id and group ids) in
// c's tenant. Assignments naming an unknown role or an unparsable scope are
// skipped: they grant nothing. It returns EUnauthenticated for a nil caller
// and the store's error if it fails.
func (a *Authorizer) Grants(ctx context.Context, c *keyhold.Caller) (*Grants, error) {
	if c == nil || c.Principal == nil {
		return nil, keyhold.Errorc(keyhold.EUnauthenticated, "AuthenticationFailed", "Authentication failed.")
	}
	g := &Grants{}
	seen := map[string]bool{}
	for _, oid := range c.ObjectIDs() {
		if oid == "" || seen[strings.ToLower(oid)] {
			continue
		}
		seen[strings.ToLower(oid)] = true
		list, err := a.store.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: c.TenantID, PrincipalID: oid})
		if err != nil {
			return nil, err
		}
		for _, as := range list {
			// The store filters already; checking again keeps a lax driver from
			// leaking another tenant's grants.
			if !strings.EqualFold(as.TenantID, c.TenantID) || !strings.EqualFold(as.PrincipalID, oid) {
				continue
			}
			role, ok := RoleByID(as.RoleDefinitionID)
			if !ok {
				continue
			}
			scope, err := armid.Parse(as.Scope)
			if err != nil {
				continue
			}
			g.list = append(g.list, Grant{Assignment: as, Scope: scope, Role: role})
		}
	}
	return g, nil
}

// List returns the grants, in no particular order.
func (g *Grants) List() []Grant { return append([]Grant(nil), g.list...) }

// Allows reports whether some grant at scope or above it allows action.
func (g *Grants) Allows(action string, scope armid.ID) bool {
	for _, gr := range g.list {
		if scope.IsUnder(gr.Scope) && gr.Role.Allows(action) {
			return true
		}
	}
	return false
}

// AllowsData reports whether some grant at scope or above it allows the
// data action.
func (g *Grants) AllowsData(dataAction string, scope armid.ID) bool {
	for _, gr := range g.list {
		if scope.IsUnder(gr.Scope) && gr.Role.AllowsData(dataAction) {
			return true
		}
	}
	return false
}

// AllowsBelow reports whether some grant at, above or below scope allows
// action: whether the caller can see anything there, as ARM asks before it
// lists a subscription's groups.
func (g *Grants) AllowsBelow(action string, scope armid.ID) bool {
	for _, gr := range g.list {
		if (scope.IsUnder(gr.Scope) || gr.Scope.IsUnder(scope)) && gr.Role.Allows(action) {
			return true
		}
	}
	return false
}

// Check reports whether c may perform the control-plane action at scope,
// through a role assigned at scope or an ancestor of it. It returns an
// EInvalid error for a scope that is not a valid resource id or scope,
// EUnauthenticated for a nil caller, and the store's error if it fails.
func (a *Authorizer) Check(ctx context.Context, c *keyhold.Caller, action, scope string) (bool, error) {
	id, err := armid.Parse(scope)
	if err != nil {
		return false, err
	}
	g, err := a.Grants(ctx, c)
	if err != nil {
		return false, err
	}
	return g.Allows(action, id), nil
}

// CheckData reports whether c may perform the data-plane action (such as
// Microsoft.KeyVault/vaults/keys/wrap/action) at scope. Errors as Check.
func (a *Authorizer) CheckData(ctx context.Context, c *keyhold.Caller, dataAction, scope string) (bool, error) {
	id, err := armid.Parse(scope)
	if err != nil {
		return false, err
	}
	g, err := a.Grants(ctx, c)
	if err != nil {
		return false, err
	}
	return g.AllowsData(dataAction, id), nil
}

// Authorize returns nil if c may perform action at scope, and otherwise a
// keyhold.EForbidden error with detail "AuthorizationFailed" in ARM's words.
// Other errors are those of Check.
func (a *Authorizer) Authorize(ctx context.Context, c *keyhold.Caller, action, scope string) error {
	ok, err := a.Check(ctx, c, action, scope)
	if err != nil {
		return err
	}
	if !ok {
		return Denied(c, action, scope)
	}
	return nil
}

// Denied returns the AuthorizationFailed error ARM gives when c may not
// perform action at scope.
func Denied(c *keyhold.Caller, action, scope string) error {
	return keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed",
		"The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was recently granted, please refresh your credentials.",
		ClientName(c), objectID(c), action, scope)
}

// ClientName returns how ARM names a caller in messages: a user's UPN, an
// application's client id, or else the object id.
func ClientName(c *keyhold.Caller) string {
	if c == nil || c.Principal == nil {
		return ""
	}
	p := c.Principal
	switch {
	case p.UserPrincipalName != "":
		return p.UserPrincipalName
	case p.AppID != "":
		return p.AppID
	case c.ClientID != "":
		return c.ClientID
	}
	return p.ID
}

func objectID(c *keyhold.Caller) string {
	if c == nil || c.Principal == nil {
		return ""
	}
	return c.Principal.ID
}
