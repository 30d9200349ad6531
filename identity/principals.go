package identity

import (
	"context"
	"io"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyhold/keyhold"
)

// Password length limits. Entra ID asks for at least 8 characters and allows
// 256.
const (
	minPasswordLen = 8
	maxPasswordLen = 256
)

// secretAlphabet has 64 symbols, so each random byte's low six bits pick one
// without bias; 40 symbols carry 240 bits.
const secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~."

const secretLen = 40

// CreateUser creates a user in tenantID with a password and directory roles.
// It returns EInvalid for a malformed UPN (or one outside the tenant's
// domain), an empty display name, a password shorter than 8 or longer than 256
// characters or an unknown role; ENotFound if the tenant does not exist; and
// EConflict if the tenant already has a user with that UPN, compared
// case-insensitively.
func (s *Service) CreateUser(ctx context.Context, tenantID, upn, displayName string, password keyhold.Secret, roles []string) (*keyhold.Principal, error) {
	return s.createUser(ctx, tenantID, upn, displayName, password, roles, false)
}

func (s *Service) createUser(ctx context.Context, tenantID, upn, displayName string, password keyhold.Secret, roles []string, disabled bool) (*keyhold.Principal, error) {
	if err := checkDisplayName(displayName); err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	if err := checkRoles(roles); err != nil {
		return nil, err
	}
	t, err := s.tenant(ctx, s.store, tenantID)
	if err != nil {
		return nil, err
	}
	if err := checkUPN(upn, t.DefaultDomain); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return nil, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	credID, err := s.newID()
	if err != nil {
		return nil, err
	}
	now := s.now().UTC()
	p := &keyhold.Principal{
		ID:                id,
		TenantID:          t.ID,
		Type:              keyhold.PrincipalUser,
		DisplayName:       displayName,
		UserPrincipalName: upn,
		DirectoryRoles:    dedupe(roles),
		Disabled:          disabled,
		CreatedAt:         now,
	}
	err = s.store.InTx(ctx, func(tx keyhold.Store) error {
		same, err := tx.FindPrincipals(ctx, keyhold.PrincipalFilter{TenantID: t.ID, UserPrincipalName: upn})
		if err != nil {
			return err
		}
		if len(same) > 0 {
			return keyhold.Errorf(keyhold.EConflict, "identity: another object with the same value for property userPrincipalName already exists")
		}
		if err := tx.CreatePrincipal(ctx, p); err != nil {
			return err
		}
		return tx.AddCredential(ctx, &keyhold.Credential{ID: credID, PrincipalID: id, Kind: keyhold.CredentialPassword, Hash: hash, CreatedAt: now})
	})
	if err != nil {
		return nil, s.storeErr("create user", err)
	}
	s.log.Info("identity: user created", "tenant", t.ID, "principal", id)
	return p, nil
}

// SetPassword replaces the password of a user. Refresh tokens issued under
// the old password stop working. It returns ENotFound if userID is not a
// user, and EInvalid for a password shorter than 8 or longer than 256
// characters.
func (s *Service) SetPassword(ctx context.Context, userID string, password keyhold.Secret) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := s.hashPassword(password)
	if err != nil {
		return err
	}
	credID, err := s.newID()
	if err != nil {
		return err
	}
	var upn string
	err = s.store.InTx(ctx, func(tx keyhold.Store) error {
		p, err := tx.GetPrincipal(ctx, userID)
		if err != nil {
			return err
		}
		if p.Type != keyhold.PrincipalUser {
			return keyhold.Errorf(keyhold.ENotFound, "identity: user %q does not exist", userID)
		}
		upn = p.UserPrincipalName
		creds, err := tx.ListCredentials(ctx, userID)
		if err != nil {
			return err
		}
		for _, c := range creds {
			if c.Kind == keyhold.CredentialPassword {
				if err := tx.DeleteCredential(ctx, userID, c.ID); err != nil {
					return err
				}
			}
		}
		return tx.AddCredential(ctx, &keyhold.Credential{ID: credID, PrincipalID: userID, Kind: keyhold.CredentialPassword, Hash: hash, CreatedAt: s.now().UTC()})
	})
	if err != nil {
		return s.storeErr("set password", err)
	}
	// An administrator's reset also lifts a lockout.
	s.limiter.succeed(userKey(upn))
	s.log.Info("identity: password set", "principal", userID)
	return nil
}

// CreateServicePrincipal creates an application's service principal in
// tenantID, with a new client id (AppID) and one client secret that does not
// expire. The secret is returned once and never stored; only its hash is. It
// returns EInvalid for an empty display name and ENotFound if the tenant does
// not exist.
func (s *Service) CreateServicePrincipal(ctx context.Context, tenantID, displayName string) (*keyhold.Principal, keyhold.Secret, error) {
	return s.createServicePrincipal(ctx, tenantID, displayName, true)
}

// createServicePrincipal creates a service principal, with a first client
// secret if withSecret; Graph clients add theirs with addPassword instead.
func (s *Service) createServicePrincipal(ctx context.Context, tenantID, displayName string, withSecret bool) (*keyhold.Principal, keyhold.Secret, error) {
	if err := checkDisplayName(displayName); err != nil {
		return nil, keyhold.Secret{}, err
	}
	t, err := s.tenant(ctx, s.store, tenantID)
	if err != nil {
		return nil, keyhold.Secret{}, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, keyhold.Secret{}, err
	}
	appID, err := s.newID()
	if err != nil {
		return nil, keyhold.Secret{}, err
	}
	var cred *keyhold.Credential
	var secret keyhold.Secret
	if withSecret {
		if cred, secret, err = s.newClientSecret(id, time.Time{}); err != nil {
			return nil, keyhold.Secret{}, err
		}
	}
	p := &keyhold.Principal{
		ID:          id,
		TenantID:    t.ID,
		Type:        keyhold.PrincipalServicePrincipal,
		DisplayName: displayName,
		AppID:       appID,
		CreatedAt:   s.now().UTC(),
	}
	err = s.store.InTx(ctx, func(tx keyhold.Store) error {
		if err := tx.CreatePrincipal(ctx, p); err != nil || cred == nil {
			return err
		}
		return tx.AddCredential(ctx, cred)
	})
	if err != nil {
		secret.Wipe()
		return nil, keyhold.Secret{}, s.storeErr("create service principal", err)
	}
	s.log.Info("identity: service principal created", "tenant", t.ID, "principal", id, "appId", appID)
	return p, secret, nil
}

// AddClientSecret adds a client secret to a service principal and returns
// its credential (safe to show: id, hint, dates) and the secret, which is
// shown once and never stored. A zero expiresAt means it does not expire. It
// returns ENotFound if principalID is not a service principal (managed
// identities have no secrets) and EInvalid if expiresAt is in the past.
func (s *Service) AddClientSecret(ctx context.Context, principalID string, expiresAt time.Time) (*keyhold.Credential, keyhold.Secret, error) {
	if !expiresAt.IsZero() && !expiresAt.After(s.now()) {
		return nil, keyhold.Secret{}, keyhold.Errorf(keyhold.EInvalid, "identity: the secret's end date must be in the future")
	}
	p, err := s.store.GetPrincipal(ctx, principalID)
	if err != nil {
		return nil, keyhold.Secret{}, s.storeErr("add client secret", err)
	}
	if p.Type != keyhold.PrincipalServicePrincipal {
		return nil, keyhold.Secret{}, keyhold.Errorf(keyhold.ENotFound, "identity: service principal %q does not exist", principalID)
	}
	cred, secret, err := s.newClientSecret(principalID, expiresAt)
	if err != nil {
		return nil, keyhold.Secret{}, err
	}
	if err := s.store.AddCredential(ctx, cred); err != nil {
		secret.Wipe()
		return nil, keyhold.Secret{}, s.storeErr("add client secret", err)
	}
	s.log.Info("identity: client secret added", "principal", principalID, "credential", cred.ID)
	return cred, secret, nil
}

// RemoveClientSecret deletes a client secret of a service principal. It
// returns ENotFound if there is no such secret.
func (s *Service) RemoveClientSecret(ctx context.Context, principalID, credentialID string) error {
	creds, err := s.store.ListCredentials(ctx, principalID)
	if err != nil {
		return s.storeErr("remove client secret", err)
	}
	for _, c := range creds {
		if c.ID == credentialID && c.Kind == keyhold.CredentialClientSecret {
			if err := s.store.DeleteCredential(ctx, principalID, credentialID); err != nil {
				return s.storeErr("remove client secret", err)
			}
			s.log.Info("identity: client secret removed", "principal", principalID, "credential", credentialID)
			return nil
		}
	}
	return keyhold.Errorf(keyhold.ENotFound, "identity: no password credential with keyId %q", credentialID)
}

// ClientSecrets lists the client secret credentials of a principal: ids,
// hints and dates, never the secrets.
func (s *Service) ClientSecrets(ctx context.Context, principalID string) ([]*keyhold.Credential, error) {
	creds, err := s.store.ListCredentials(ctx, principalID)
	if err != nil {
		return nil, s.storeErr("list client secrets", err)
	}
	var out []*keyhold.Credential
	for _, c := range creds {
		if c.Kind == keyhold.CredentialClientSecret {
			out = append(out, c)
		}
	}
	return out, nil
}

func (s *Service) newClientSecret(principalID string, expiresAt time.Time) (*keyhold.Credential, keyhold.Secret, error) {
	raw := make([]byte, secretLen)
	if _, err := io.ReadFull(s.rand, raw); err != nil {
		return nil, keyhold.Secret{}, keyhold.Internal("identity: new client secret", err)
	}
	for i, b := range raw {
		raw[i] = secretAlphabet[b&63]
	}
	secret := keyhold.NewSecret(raw)
	hash, err := s.hashSecret(secret)
	if err != nil {
		return nil, keyhold.Secret{}, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, keyhold.Secret{}, err
	}
	return &keyhold.Credential{
		ID:          id,
		PrincipalID: principalID,
		Kind:        keyhold.CredentialClientSecret,
		Hash:        hash,
		Hint:        string(raw[:3]),
		CreatedAt:   s.now().UTC(),
		ExpiresAt:   expiresAt,
	}, secret, nil
}

// CreateManagedIdentity creates the system-assigned managed identity of the
// resource resourceID in tenantID, using tx (nil means the service's store)
// so that the caller can create it atomically with the resource. It has a
// client id but no credentials; tokens for it come from IssueToken. It returns
// EInvalid for an empty resource id or display name, ENotFound if the tenant
// does not exist, and EConflict if the resource already has one.
func (s *Service) CreateManagedIdentity(ctx context.Context, tx keyhold.Store, tenantID, resourceID, displayName string) (*keyhold.Principal, error) {
	if tx == nil {
		tx = s.store
	}
	if strings.TrimSpace(resourceID) == "" {
		return nil, keyhold.Errorf(keyhold.EInvalid, "identity: a managed identity needs the id of its resource")
	}
	if err := checkDisplayName(displayName); err != nil {
		return nil, err
	}
	t, err := s.tenant(ctx, tx, tenantID)
	if err != nil {
		return nil, err
	}
	same, err := tx.FindPrincipals(ctx, keyhold.PrincipalFilter{Type: keyhold.PrincipalManagedIdentity, ResourceID: resourceID})
	if err != nil {
		return nil, s.storeErr("create managed identity", err)
	}
	if len(same) > 0 {
		return nil, keyhold.Errorf(keyhold.EConflict, "identity: resource %q already has a managed identity", resourceID)
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	appID, err := s.newID()
	if err != nil {
		return nil, err
	}
	p := &keyhold.Principal{
		ID:          id,
		TenantID:    t.ID,
		Type:        keyhold.PrincipalManagedIdentity,
		DisplayName: displayName,
		AppID:       appID,
		ResourceID:  resourceID,
		CreatedAt:   s.now().UTC(),
	}
	if err := tx.CreatePrincipal(ctx, p); err != nil {
		return nil, s.storeErr("create managed identity", err)
	}
	s.log.Info("identity: managed identity created", "tenant", t.ID, "principal", id, "resource", resourceID)
	return p, nil
}

// CreateGroup creates a security group in tenantID. It returns EInvalid for
// an empty display name and ENotFound if the tenant does not exist.
func (s *Service) CreateGroup(ctx context.Context, tenantID, displayName string) (*keyhold.Principal, error) {
	if err := checkDisplayName(displayName); err != nil {
		return nil, err
	}
	t, err := s.tenant(ctx, s.store, tenantID)
	if err != nil {
		return nil, err
	}
	id, err := s.newID()
	if err != nil {
		return nil, err
	}
	p := &keyhold.Principal{ID: id, TenantID: t.ID, Type: keyhold.PrincipalGroup, DisplayName: displayName, CreatedAt: s.now().UTC()}
	if err := s.store.CreatePrincipal(ctx, p); err != nil {
		return nil, s.storeErr("create group", err)
	}
	return p, nil
}

// AddGroupMember makes memberID a direct member of groupID. It returns
// ENotFound if either does not exist (or they are in different tenants),
// EInvalid if groupID is not a group or the membership would make a cycle, and
// EConflict if memberID is already a member or separation of duties refuses
// the membership (detail keyhold.DetailSeparationOfDuties).
func (s *Service) AddGroupMember(ctx context.Context, groupID, memberID string) error {
	return s.storeErr("add group member", s.store.InTx(ctx, func(tx keyhold.Store) error {
		g, err := tx.GetPrincipal(ctx, groupID)
		if err != nil {
			return err
		}
		if g.Type != keyhold.PrincipalGroup {
			return keyhold.Errorf(keyhold.EInvalid, "identity: %q is not a group", groupID)
		}
		m, err := tx.GetPrincipal(ctx, memberID)
		if err != nil {
			return err
		}
		if m.TenantID != g.TenantID {
			return keyhold.Errorf(keyhold.ENotFound, "identity: object %q does not exist", memberID)
		}
		if m.Type == keyhold.PrincipalGroup {
			above, err := groupsOf(ctx, tx, groupID)
			if err != nil {
				return err
			}
			for _, a := range append(above, groupID) {
				if a == memberID {
					return keyhold.Errorf(keyhold.EInvalid, "identity: adding group %q to group %q would make a membership cycle", memberID, groupID)
				}
			}
		}
		members, err := tx.ListGroupMembers(ctx, groupID)
		if err != nil {
			return err
		}
		for _, id := range members {
			if id == memberID {
				return keyhold.Errorf(keyhold.EConflict, "identity: one or more added object references already exist for the following modified properties: 'members'")
			}
		}
		if err := s.duties.CheckGroupMember(ctx, tx, g, m); err != nil {
			return err
		}
		return tx.AddGroupMember(ctx, groupID, memberID)
	}))
}

// RemoveGroupMember removes memberID from groupID. It returns ENotFound if
// it is not a direct member.
func (s *Service) RemoveGroupMember(ctx context.Context, groupID, memberID string) error {
	return s.storeErr("remove group member", s.store.RemoveGroupMember(ctx, groupID, memberID))
}

// GroupIDs returns the groups principalID belongs to, directly or through
// other groups.
func (s *Service) GroupIDs(ctx context.Context, principalID string) ([]string, error) {
	ids, err := groupsOf(ctx, s.store, principalID)
	return ids, s.storeErr("list memberships", err)
}

// maxGroups bounds the walk of nested groups.
const maxGroups = 2048

// groupsOf walks memberships breadth first, each group once, so nesting and
// even a cycle that slipped in end.
func groupsOf(ctx context.Context, st keyhold.Store, id string) ([]string, error) {
	seen := map[string]bool{id: true}
	var out []string
	queue := []string{id}
	for len(queue) > 0 && len(out) < maxGroups {
		next := queue[0]
		queue = queue[1:]
		direct, err := st.ListMemberships(ctx, next)
		if err != nil {
			return nil, err
		}
		for _, g := range direct {
			if !seen[g] {
				seen[g] = true
				out = append(out, g)
				queue = append(queue, g)
			}
		}
	}
	return out, nil
}

// PrincipalUpdate lists the changes UpdatePrincipal makes; nil fields stay.
type PrincipalUpdate struct {
	DisplayName    *string
	Disabled       *bool
	DirectoryRoles *[]string // users only
}

// UpdatePrincipal changes a principal's display name, enabled state or
// directory roles and returns it. It returns ENotFound if it does not exist,
// EInvalid for an empty display name, an unknown role or roles for a
// non-user, and EConflict if the change would leave the tenant without an
// enabled Global Administrator or separation of duties refuses a new
// platform role (detail keyhold.DetailSeparationOfDuties).
func (s *Service) UpdatePrincipal(ctx context.Context, id string, u PrincipalUpdate) (*keyhold.Principal, error) {
	if u.DisplayName != nil {
		if err := checkDisplayName(*u.DisplayName); err != nil {
			return nil, err
		}
	}
	if u.DirectoryRoles != nil {
		if err := checkRoles(*u.DirectoryRoles); err != nil {
			return nil, err
		}
	}
	var out *keyhold.Principal
	err := s.store.InTx(ctx, func(tx keyhold.Store) error {
		p, err := tx.GetPrincipal(ctx, id)
		if err != nil {
			return err
		}
		wasGA := p.HasDirectoryRole(keyhold.RoleGlobalAdministrator) && !p.Disabled
		if u.DisplayName != nil {
			p.DisplayName = *u.DisplayName
		}
		if u.Disabled != nil {
			p.Disabled = *u.Disabled
		}
		if u.DirectoryRoles != nil {
			if p.Type != keyhold.PrincipalUser && len(*u.DirectoryRoles) > 0 {
				return keyhold.Errorf(keyhold.EInvalid, "identity: only users can hold directory roles")
			}
			had := p.DirectoryRoles
			p.DirectoryRoles = dedupe(*u.DirectoryRoles)
			for _, r := range p.DirectoryRoles {
				if !slices.Contains(had, r) {
					if err := s.duties.CheckDirectoryRole(ctx, tx, p, r); err != nil {
						return err
					}
				}
			}
		}
		if wasGA && (p.Disabled || !p.HasDirectoryRole(keyhold.RoleGlobalAdministrator)) {
			if err := lastGA(ctx, tx, p); err != nil {
				return err
			}
		}
		if err := tx.UpdatePrincipal(ctx, p); err != nil {
			return err
		}
		out = p
		return nil
	})
	if err != nil {
		return nil, s.storeErr("update principal", err)
	}
	s.log.Info("identity: principal updated", "principal", id)
	return out, nil
}

// DeletePrincipal deletes a user, service principal or group with its
// credentials, memberships and role assignments. It returns ENotFound if it
// does not exist, EConflict for a managed identity (it goes with its
// resource, see DeleteManagedIdentity) or for the tenant's last enabled
// Global Administrator.
func (s *Service) DeletePrincipal(ctx context.Context, id string) error {
	err := s.store.InTx(ctx, func(tx keyhold.Store) error {
		p, err := tx.GetPrincipal(ctx, id)
		if err != nil {
			return err
		}
		if p.Type == keyhold.PrincipalManagedIdentity {
			return keyhold.Errorf(keyhold.EConflict, "identity: a managed identity is deleted with its resource")
		}
		if p.HasDirectoryRole(keyhold.RoleGlobalAdministrator) && !p.Disabled {
			if err := lastGA(ctx, tx, p); err != nil {
				return err
			}
		}
		return tx.DeletePrincipal(ctx, id)
	})
	if err != nil {
		return s.storeErr("delete principal", err)
	}
	s.log.Info("identity: principal deleted", "principal", id)
	return nil
}

// DeleteManagedIdentity deletes the managed identity of resourceID, using tx
// (nil means the service's store) so that it goes with the resource. A
// resource without one is not an error.
func (s *Service) DeleteManagedIdentity(ctx context.Context, tx keyhold.Store, resourceID string) error {
	if tx == nil {
		tx = s.store
	}
	ps, err := tx.FindPrincipals(ctx, keyhold.PrincipalFilter{Type: keyhold.PrincipalManagedIdentity, ResourceID: resourceID})
	if err != nil {
		return s.storeErr("delete managed identity", err)
	}
	for _, p := range ps {
		if err := tx.DeletePrincipal(ctx, p.ID); err != nil && !keyhold.IsNotFound(err) {
			return s.storeErr("delete managed identity", err)
		}
	}
	return nil
}

// lastGA returns EConflict if p is the only enabled Global Administrator of
// its tenant: without one nobody could manage the directory any more.
func lastGA(ctx context.Context, tx keyhold.Store, p *keyhold.Principal) error {
	users, err := tx.FindPrincipals(ctx, keyhold.PrincipalFilter{TenantID: p.TenantID, Type: keyhold.PrincipalUser})
	if err != nil {
		return err
	}
	for _, u := range users {
		if u.ID != p.ID && !u.Disabled && u.HasDirectoryRole(keyhold.RoleGlobalAdministrator) {
			return nil
		}
	}
	return keyhold.Errorf(keyhold.EConflict, "identity: the last enabled Global Administrator of the tenant cannot be removed, disabled or demoted")
}

// Principal returns the principal id of tenantID. A principal of another
// tenant is ENotFound, so that tenants cannot see each other's objects.
func (s *Service) Principal(ctx context.Context, tenantID, id string) (*keyhold.Principal, error) {
	p, err := s.store.GetPrincipal(ctx, id)
	if err == nil && p.TenantID != tenantID {
		err = keyhold.Errorf(keyhold.ENotFound, "identity: object %q does not exist", id)
	}
	if err != nil {
		return nil, s.storeErr("get principal", err)
	}
	return p, nil
}

// UserByName returns the user of tenantID whose object id or UPN
// (case-insensitive) is name. It returns ENotFound if there is none.
func (s *Service) UserByName(ctx context.Context, tenantID, name string) (*keyhold.Principal, error) {
	if isGUID(name) {
		p, err := s.Principal(ctx, tenantID, name)
		if err == nil && p.Type == keyhold.PrincipalUser {
			return p, nil
		}
		if err != nil && !keyhold.IsNotFound(err) {
			return nil, err
		}
	}
	ps, err := s.store.FindPrincipals(ctx, keyhold.PrincipalFilter{TenantID: tenantID, Type: keyhold.PrincipalUser, UserPrincipalName: name})
	if err != nil {
		return nil, s.storeErr("find user", err)
	}
	if len(ps) == 0 {
		return nil, keyhold.Errorf(keyhold.ENotFound, "identity: user %q does not exist", name)
	}
	return ps[0], nil
}

// tenant returns tenant id, read through st.
func (s *Service) tenant(ctx context.Context, st keyhold.Store, id string) (*keyhold.Tenant, error) {
	t, err := st.GetTenant(ctx, id)
	if keyhold.IsNotFound(err) {
		return nil, keyhold.Errorf(keyhold.ENotFound, "identity: tenant %q does not exist", id)
	}
	if err != nil {
		return nil, s.storeErr("get tenant", err)
	}
	return t, nil
}

// storeErr passes keyhold errors through and wraps anything else as internal.
func (s *Service) storeErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if keyhold.ErrorCode(err) == keyhold.EInternal {
		return keyhold.Internal("identity: "+op, err)
	}
	return err
}

func checkDisplayName(name string) error {
	if strings.TrimSpace(name) == "" {
		return keyhold.Errorf(keyhold.EInvalid, "identity: displayName is required")
	}
	if utf8.RuneCountInString(name) > 256 || !utf8.ValidString(name) {
		return keyhold.Errorf(keyhold.EInvalid, "identity: displayName must be valid text of at most 256 characters")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return keyhold.Errorf(keyhold.EInvalid, "identity: displayName must not contain control characters")
		}
	}
	return nil
}

func checkPassword(p keyhold.Secret) error {
	n := utf8.RuneCount(p.Reveal())
	if n < minPasswordLen || n > maxPasswordLen || !utf8.Valid(p.Reveal()) {
		return keyhold.Errorf(keyhold.EInvalid, "identity: the password must be %d to %d characters long", minPasswordLen, maxPasswordLen)
	}
	return nil
}

func checkRoles(roles []string) error {
	for _, r := range roles {
		if _, ok := keyhold.DirectoryRoles[r]; !ok {
			return keyhold.Errorf(keyhold.EInvalid, "identity: unknown directory role %q", r)
		}
	}
	return nil
}

// checkUPN checks that upn is local@domain with the tenant's domain, if the
// tenant has one.
func checkUPN(upn, domain string) error {
	local, dom, ok := strings.Cut(upn, "@")
	if !ok || local == "" || dom == "" || len(upn) > 113 || strings.Count(upn, "@") != 1 {
		return keyhold.Errorf(keyhold.EInvalid, "identity: userPrincipalName %q must look like alias@%s", upn, orDomain(domain))
	}
	for _, c := range local {
		if !(c < 128 && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune(".-_'+!#$%&*/=?^`{|}~", c))) {
			return keyhold.Errorf(keyhold.EInvalid, "identity: userPrincipalName %q has a character that is not allowed", upn)
		}
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return keyhold.Errorf(keyhold.EInvalid, "identity: userPrincipalName %q must not start or end with a dot or have two in a row", upn)
	}
	if domain != "" && !strings.EqualFold(dom, domain) {
		return keyhold.Errorf(keyhold.EInvalid, "identity: the domain portion of userPrincipalName %q must be the tenant's domain %s", upn, domain)
	}
	return nil
}

func orDomain(d string) string {
	if d == "" {
		return "domain"
	}
	return d
}

func dedupe(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
