package sqlstore

import (
	"context"
	"database/sql"
	"errors"

	"github.com/keyhold/keyhold"
)

// CreateTenant stores t. It returns EInvalid without an id, and EConflict if
// the id or the default domain (case-insensitively) is taken.
func (s *Store) CreateTenant(ctx context.Context, t *keyhold.Tenant) error {
	if t.ID == "" {
		return invalid("tenant id is required")
	}
	created, err := encTime(t.CreatedAt)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `INSERT INTO tenants (id, display_name, default_domain, domain_key, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		t.ID, t.DisplayName, t.DefaultDomain, nullKey(t.DefaultDomain), created)
	if err != nil {
		return err
	}
	if n == 0 {
		if t.DefaultDomain == "" {
			return conflict("tenant %q", t.ID)
		}
		return conflict("tenant %q or domain %q", t.ID, t.DefaultDomain)
	}
	return nil
}

const tenantCols = `id, display_name, default_domain, created_at`

func scanTenant(r interface{ Scan(...any) error }) (*keyhold.Tenant, error) {
	t := &keyhold.Tenant{}
	err := r.Scan(&t.ID, &t.DisplayName, &t.DefaultDomain, dbTime{&t.CreatedAt})
	return t, err
}

// GetTenant returns the tenant with id, or ENotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (*keyhold.Tenant, error) {
	t, err := scanTenant(s.queryRow(ctx, `SELECT `+tenantCols+` FROM tenants WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("tenant %q", id)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return t, nil
}

// ListTenants returns every tenant ordered by id.
func (s *Store) ListTenants(ctx context.Context) ([]*keyhold.Tenant, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Tenant, error) { return scanTenant(r) },
		`SELECT `+tenantCols+` FROM tenants ORDER BY id`)
}

// CreatePrincipal stores p. It returns EInvalid without an id, tenant or
// type, and EConflict if the id, the user principal name
// (case-insensitively) or the app id is taken.
func (s *Store) CreatePrincipal(ctx context.Context, p *keyhold.Principal) error {
	switch {
	case p.ID == "":
		return invalid("principal id is required")
	case p.TenantID == "":
		return invalid("principal %q has no tenant", p.ID)
	case p.Type == "":
		return invalid("principal %q has no type", p.ID)
	}
	created, err := encTime(p.CreatedAt)
	if err != nil {
		return err
	}
	roles, err := encJSON(p.DirectoryRoles)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `INSERT INTO principals (id, tenant_id, type, display_name, upn, upn_key, app_id,
		resource_id, resource_key, directory_roles, disabled, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		p.ID, p.TenantID, string(p.Type), p.DisplayName, p.UserPrincipalName, nullKey(p.UserPrincipalName),
		nullStr(p.AppID), p.ResourceID, nullKey(p.ResourceID), roles, p.Disabled, created)
	if err != nil {
		return err
	}
	if n == 0 {
		switch {
		case p.UserPrincipalName != "":
			return conflict("principal %q or user %q", p.ID, p.UserPrincipalName)
		case p.AppID != "":
			return conflict("principal %q or app id %q", p.ID, p.AppID)
		}
		return conflict("principal %q", p.ID)
	}
	return nil
}

const principalCols = `id, tenant_id, type, display_name, upn, app_id, resource_id, directory_roles, disabled, created_at`

func scanPrincipal(r interface{ Scan(...any) error }) (*keyhold.Principal, error) {
	p := &keyhold.Principal{}
	var typ string
	err := r.Scan(&p.ID, &p.TenantID, &typ, &p.DisplayName, &p.UserPrincipalName, dbString{&p.AppID},
		&p.ResourceID, dbJSON{&p.DirectoryRoles}, &p.Disabled, dbTime{&p.CreatedAt})
	p.Type = keyhold.PrincipalType(typ)
	return p, err
}

// GetPrincipal returns the principal with id, or ENotFound.
func (s *Store) GetPrincipal(ctx context.Context, id string) (*keyhold.Principal, error) {
	p, err := scanPrincipal(s.queryRow(ctx, `SELECT `+principalCols+` FROM principals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("principal %q", id)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return p, nil
}

// FindPrincipals returns the principals that match f, ordered by id.
func (s *Store) FindPrincipals(ctx context.Context, f keyhold.PrincipalFilter) ([]*keyhold.Principal, error) {
	var w where
	if f.TenantID != "" {
		w.add("tenant_id = ?", f.TenantID)
	}
	if f.Type != "" {
		w.add("type = ?", string(f.Type))
	}
	if f.UserPrincipalName != "" {
		w.add("upn_key = ?", key(f.UserPrincipalName))
	}
	if f.AppID != "" {
		w.add("app_id = ?", f.AppID)
	}
	if f.ResourceID != "" {
		w.add("resource_key = ?", key(f.ResourceID))
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Principal, error) { return scanPrincipal(r) },
		`SELECT `+principalCols+` FROM principals`+w.String()+` ORDER BY id`, w.args...)
}

// UpdatePrincipal replaces p's DisplayName, DirectoryRoles and Disabled. It
// returns ENotFound if there is no principal with p.ID.
func (s *Store) UpdatePrincipal(ctx context.Context, p *keyhold.Principal) error {
	roles, err := encJSON(p.DirectoryRoles)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `UPDATE principals SET display_name = ?, directory_roles = ?, disabled = ? WHERE id = ?`,
		p.DisplayName, roles, p.Disabled, p.ID)
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("principal %q", p.ID)
	}
	return nil
}

// DeletePrincipal deletes the principal with id together with its
// credentials, its group memberships (either side) and its role assignments,
// in one transaction. It returns ENotFound if there is no such principal.
func (s *Store) DeletePrincipal(ctx context.Context, id string) error {
	return s.inTx(ctx, func(ts *Store) error {
		// Explicit deletes rather than ON DELETE CASCADE alone: role
		// assignments carry no foreign key (Azure keeps assignments of
		// principals from elsewhere), and explicit is the same on every engine.
		for _, st := range []struct {
			query string
			args  []any
		}{
			{`DELETE FROM credentials WHERE principal_id = ?`, []any{id}},
			// Two statements, not one with OR, so that each side uses its index.
			{`DELETE FROM group_members WHERE group_id = ?`, []any{id}},
			{`DELETE FROM group_members WHERE member_id = ?`, []any{id}},
			{`DELETE FROM role_assignments WHERE principal_id = ?`, []any{id}},
		} {
			if _, err := ts.exec(ctx, st.query, st.args...); err != nil {
				return err
			}
		}
		n, err := ts.execN(ctx, `DELETE FROM principals WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("principal %q", id)
		}
		return nil
	})
}

// principalType returns the type of the principal with id, or ENotFound.
func (s *Store) principalType(ctx context.Context, id string) (keyhold.PrincipalType, error) {
	var typ string
	err := s.queryRow(ctx, `SELECT type FROM principals WHERE id = ?`, id).Scan(&typ)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound("principal %q", id)
	}
	if err != nil {
		return "", s.wrap(err)
	}
	return keyhold.PrincipalType(typ), nil
}

// AddCredential stores c. It returns EInvalid without an id or hash,
// ENotFound if the principal does not exist, and EConflict if the id is taken.
func (s *Store) AddCredential(ctx context.Context, c *keyhold.Credential) error {
	switch {
	case c.ID == "":
		return invalid("credential id is required")
	case c.Hash == "":
		return invalid("credential %q has no hash", c.ID)
	}
	ts, err := encTimes(c.CreatedAt, c.ExpiresAt)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.principalType(ctx, c.PrincipalID); err != nil {
			return err
		}
		n, err := tx.execN(ctx, `INSERT INTO credentials (id, principal_id, kind, hash, hint, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			c.ID, c.PrincipalID, string(c.Kind), c.Hash, c.Hint, ts[0], ts[1])
		if err != nil {
			return err
		}
		if n == 0 {
			return conflict("credential %q", c.ID)
		}
		return nil
	})
}

// ListCredentials returns the credentials of a principal, oldest first; none
// for an unknown principal.
func (s *Store) ListCredentials(ctx context.Context, principalID string) ([]*keyhold.Credential, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Credential, error) {
		c := &keyhold.Credential{}
		var kind string
		err := r.Scan(&c.ID, &c.PrincipalID, &kind, &c.Hash, &c.Hint, dbTime{&c.CreatedAt}, dbTime{&c.ExpiresAt})
		c.Kind = keyhold.CredentialKind(kind)
		return c, err
	}, `SELECT id, principal_id, kind, hash, hint, created_at, expires_at FROM credentials
		WHERE principal_id = ? ORDER BY created_at, id`, principalID)
}

// DeleteCredential deletes one credential of a principal. It returns
// ENotFound if the principal has no credential with that id.
func (s *Store) DeleteCredential(ctx context.Context, principalID, id string) error {
	n, err := s.execN(ctx, `DELETE FROM credentials WHERE principal_id = ? AND id = ?`, principalID, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("credential %q of principal %q", id, principalID)
	}
	return nil
}

// AddGroupMember makes memberID a direct member of groupID. It returns
// ENotFound if either principal does not exist, EInvalid if groupID is not a
// group or is memberID itself, and EConflict if memberID is a member already.
func (s *Store) AddGroupMember(ctx context.Context, groupID, memberID string) error {
	if groupID == memberID {
		return invalid("group %q cannot be a member of itself", groupID)
	}
	return s.inTx(ctx, func(tx *Store) error {
		typ, err := tx.principalType(ctx, groupID)
		if err != nil {
			return err
		}
		if typ != keyhold.PrincipalGroup {
			return invalid("principal %q is not a group", groupID)
		}
		if _, err := tx.principalType(ctx, memberID); err != nil {
			return err
		}
		n, err := tx.execN(ctx, `INSERT INTO group_members (group_id, member_id) VALUES (?, ?) ON CONFLICT DO NOTHING`,
			groupID, memberID)
		if err != nil {
			return err
		}
		if n == 0 {
			return keyhold.Errorf(keyhold.EConflict, "sqlstore: %q is already a member of group %q", memberID, groupID)
		}
		return nil
	})
}

// RemoveGroupMember removes memberID from groupID. It returns ENotFound if
// memberID is not a direct member.
func (s *Store) RemoveGroupMember(ctx context.Context, groupID, memberID string) error {
	n, err := s.execN(ctx, `DELETE FROM group_members WHERE group_id = ? AND member_id = ?`, groupID, memberID)
	if err != nil {
		return err
	}
	if n == 0 {
		return keyhold.Errorf(keyhold.ENotFound, "sqlstore: %q is not a member of group %q", memberID, groupID)
	}
	return nil
}

// ListGroupMembers returns the ids of groupID's direct members, ordered.
func (s *Store) ListGroupMembers(ctx context.Context, groupID string) ([]string, error) {
	return scanAll(ctx, s, scanString,
		`SELECT member_id FROM group_members WHERE group_id = ? ORDER BY member_id`, groupID)
}

// ListMemberships returns the ids of the groups memberID belongs to
// directly, ordered.
func (s *Store) ListMemberships(ctx context.Context, memberID string) ([]string, error) {
	return scanAll(ctx, s, scanString,
		`SELECT group_id FROM group_members WHERE member_id = ? ORDER BY group_id`, memberID)
}

func scanString(r *sql.Rows) (string, error) {
	var v string
	err := r.Scan(&v)
	return v, err
}
