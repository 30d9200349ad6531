package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/keyhold/keyhold"
)

// CreateRoleAssignment stores a. Names compare case-insensitively (they are
// GUIDs). It returns EInvalid without a name, scope, role definition or
// principal, and EConflict if the name is taken.
func (s *Store) CreateRoleAssignment(ctx context.Context, a *keyhold.RoleAssignment) error {
	switch {
	case a.Name == "":
		return invalid("role assignment name is required")
	case a.Scope == "":
		return invalid("role assignment %q has no scope", a.Name)
	case a.RoleDefinitionID == "":
		return invalid("role assignment %q has no role definition", a.Name)
	case a.PrincipalID == "":
		return invalid("role assignment %q has no principal", a.Name)
	}
	ts, err := encTimes(a.CreatedAt, a.UpdatedAt)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `INSERT INTO role_assignments (name_key, name, tenant_id, scope, scope_key,
		role_definition_id, principal_id, principal_type, description, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		key(a.Name), a.Name, a.TenantID, a.Scope, scopeKey(a.Scope), a.RoleDefinitionID, a.PrincipalID,
		string(a.PrincipalType), a.Description, a.CreatedBy, ts[0], ts[1])
	if err != nil {
		return err
	}
	if n == 0 {
		return conflict("role assignment %q", a.Name)
	}
	return nil
}

const roleAssignmentCols = `name, tenant_id, scope, role_definition_id, principal_id, principal_type, description,
	created_by, created_at, updated_at`

func scanRoleAssignment(r interface{ Scan(...any) error }) (*keyhold.RoleAssignment, error) {
	a := &keyhold.RoleAssignment{}
	var typ string
	err := r.Scan(&a.Name, &a.TenantID, &a.Scope, &a.RoleDefinitionID, &a.PrincipalID, &typ, &a.Description,
		&a.CreatedBy, dbTime{&a.CreatedAt}, dbTime{&a.UpdatedAt})
	a.PrincipalType = keyhold.PrincipalType(typ)
	return a, err
}

// GetRoleAssignment returns the assignment with name (case-insensitive), or
// ENotFound.
func (s *Store) GetRoleAssignment(ctx context.Context, name string) (*keyhold.RoleAssignment, error) {
	a, err := scanRoleAssignment(s.queryRow(ctx, `SELECT `+roleAssignmentCols+` FROM role_assignments
		WHERE name_key = ?`, key(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("role assignment %q", name)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return a, nil
}

// DeleteRoleAssignment deletes the assignment with name (case-insensitive).
// It returns ENotFound if there is no such assignment.
func (s *Store) DeleteRoleAssignment(ctx context.Context, name string) error {
	n, err := s.execN(ctx, `DELETE FROM role_assignments WHERE name_key = ?`, key(name))
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("role assignment %q", name)
	}
	return nil
}

// ListRoleAssignments returns the assignments that match f, ordered by
// scope and name. Scope matches exactly and ScopePrefix matches the scope and
// everything below it at a segment boundary, both case-insensitively and
// ignoring a trailing slash.
func (s *Store) ListRoleAssignments(ctx context.Context, f keyhold.RoleAssignmentFilter) ([]*keyhold.RoleAssignment, error) {
	var w where
	if f.TenantID != "" {
		w.add("tenant_id = ?", f.TenantID)
	}
	if f.PrincipalID != "" {
		w.add("principal_id = ?", f.PrincipalID)
	}
	if f.Scope != "" {
		w.add("scope_key = ?", scopeKey(f.Scope))
	}
	if f.ScopePrefix != "" {
		if cond, args := scopeUnder("scope_key", f.ScopePrefix); cond != "" {
			w.add(cond, args...)
		}
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.RoleAssignment, error) { return scanRoleAssignment(r) },
		`SELECT `+roleAssignmentCols+` FROM role_assignments`+w.String()+` ORDER BY scope_key, name_key`, w.args...)
}
