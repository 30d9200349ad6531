package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/rbac"
)

// Bootstrap settings and names.
const (
	bootstrapSetting   = "bootstrap/done"
	bootstrapSPName    = "keyhold-bootstrap"
	bootstrapAdminName = "Keyhold Administrator"
	adminPasswordLen   = 24
	// bootstrapStale is how long an unfinished bootstrap is left to the
	// process that started it before another start takes it over.
	bootstrapStale = 2 * time.Minute
)

// BootstrapInfo is what the store remembers of the first start: ids only,
// never a secret.
type BootstrapInfo struct {
	TenantID           string    `json:"tenantId"`
	SubscriptionID     string    `json:"subscriptionId"`
	AdminID            string    `json:"adminId,omitempty"`
	AdminUsername      string    `json:"adminUsername"`
	ServicePrincipalID string    `json:"servicePrincipalId,omitempty"`
	ClientID           string    `json:"clientId,omitempty"`
	StartedAt          time.Time `json:"startedAt"`
	Complete           bool      `json:"complete"`
}

// BootstrapFileContents is the JSON of bootstrap.json: the endpoints and
// audiences a client needs, and the first credentials. The file is written
// once, with mode 0600, because the secrets in it cannot be recovered.
type BootstrapFileContents struct {
	TenantID                string `json:"tenant_id"`
	SubscriptionID          string `json:"subscription_id"`
	AuthorityHost           string `json:"authority_host"`
	ResourceManagerEndpoint string `json:"resource_manager_endpoint"`
	ResourceManagerAudience string `json:"resource_manager_audience"`
	BAPEndpoint             string `json:"bap_endpoint"`
	BAPAudience             string `json:"bap_audience"`
	VaultURLTemplate        string `json:"vault_url_template"`
	VaultAudience           string `json:"vault_audience"`
	GraphEndpoint           string `json:"graph_endpoint"`
	GraphAudience           string `json:"graph_audience"`
	CACertFile              string `json:"ca_cert_file"`
	AdminUsername           string `json:"admin_username"`
	AdminPassword           string `json:"admin_password"`
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret"`
}

// runBootstrap creates the first tenant, subscription, Global Administrator
// and service principal, once per store. Claiming the bootstrap and creating
// the tenant and subscription happen in one transaction guarded by
// CreateSetting, so that two processes on one PostgreSQL agree on a single
// tenant; the principals follow, and the setting is marked complete last, so
// that a start interrupted half way is finished by the next one.
func (s *Server) runBootstrap(ctx context.Context) (*BootstrapInfo, error) {
	now := s.cfg.Now().UTC()
	info, err := s.readBootstrap(ctx)
	switch {
	case keyhold.IsNotFound(err):
		info, err = s.claimBootstrap(ctx, now)
		if keyhold.IsConflict(err) {
			// Another process claimed it between our read and our claim.
			info, err = s.readBootstrap(ctx)
			if err != nil {
				return nil, err
			}
			s.logBootstrapDone(info, "another process is bootstrapping this store")
			return info, nil
		}
		if err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	case info.Complete:
		s.logBootstrapDone(info, "")
		return info, nil
	case now.Sub(info.StartedAt) < bootstrapStale:
		s.logBootstrapDone(info, "another process is bootstrapping this store")
		return info, nil
	default:
		s.logger.Warn("an earlier start did not finish the bootstrap; finishing it now", "tenantId", info.TenantID)
	}
	return s.finishBootstrap(ctx, info)
}

func (s *Server) readBootstrap(ctx context.Context) (*BootstrapInfo, error) {
	b, err := s.store.GetSetting(ctx, bootstrapSetting)
	if err != nil {
		if keyhold.IsNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("server: cannot read the bootstrap state: %w", err)
	}
	var info BootstrapInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("server: the bootstrap state in setting %s is damaged: %w", bootstrapSetting, err)
	}
	return &info, nil
}

func (s *Server) logBootstrapDone(info *BootstrapInfo, why string) {
	attrs := []any{"tenantId", info.TenantID, "subscriptionId", info.SubscriptionID}
	if why != "" {
		s.logger.Info("bootstrap skipped: "+why, attrs...)
		return
	}
	if _, err := os.Stat(s.BootstrapFile()); errors.Is(err, fs.ErrNotExist) {
		if s.cfg.DatabaseURL != "" {
			// Servers sharing a PostgreSQL database: the one that
			// bootstrapped it holds the file; the rest never had it.
			s.logger.Info("already bootstrapped by another server of this database; its data directory holds bootstrap.json",
				append(attrs, "adminUsername", info.AdminUsername)...)
			return
		}
		s.logger.Warn("bootstrap.json is missing; the admin password and client secret it held cannot be recovered: reset them through the directory API",
			append(attrs, "path", s.BootstrapFile(), "adminUsername", info.AdminUsername)...)
		return
	}
	s.logger.Info("already bootstrapped; reusing the tenant and subscription", attrs...)
	if err := s.refreshBootstrapFile(); err != nil {
		s.logger.Warn("cannot update bootstrap.json", "err", err.Error())
	}
}

// claimBootstrap makes the tenant and subscription and records the claim,
// all in one transaction.
func (s *Server) claimBootstrap(ctx context.Context, now time.Time) (*BootstrapInfo, error) {
	tenantID, subID := newUUID(), newUUID()
	domain := "keyhold" + tenantID[:8] + ".onkeyhold.internal"
	info := &BootstrapInfo{TenantID: tenantID, SubscriptionID: subID, AdminUsername: "admin@" + domain, StartedAt: now}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	err = s.store.InTx(ctx, func(tx keyhold.Store) error {
		if err := tx.CreateSetting(ctx, bootstrapSetting, b); err != nil {
			return err
		}
		if err := tx.CreateTenant(ctx, &keyhold.Tenant{ID: tenantID, DisplayName: "Keyhold", DefaultDomain: domain, CreatedAt: now}); err != nil {
			return err
		}
		return tx.CreateSubscription(ctx, &keyhold.Subscription{ID: subID, TenantID: tenantID, DisplayName: "Keyhold Subscription", State: "Enabled", CreatedAt: now})
	})
	if err != nil {
		if keyhold.IsConflict(err) {
			return nil, err
		}
		return nil, fmt.Errorf("server: cannot create the first tenant and subscription: %w", err)
	}
	s.logger.Info("bootstrap: created a tenant and a subscription", "tenantId", tenantID, "subscriptionId", subID, "domain", domain)
	return info, nil
}

// finishBootstrap creates (or, after an interrupted start, resets) the Global
// Administrator and the service principal, grants both Owner on the
// subscription, writes bootstrap.json and marks the bootstrap complete.
func (s *Server) finishBootstrap(ctx context.Context, info *BootstrapInfo) (*BootstrapInfo, error) {
	password, err := newPassword(adminPasswordLen)
	if err != nil {
		return nil, err
	}
	defer password.Wipe()

	admin, err := s.identity.UserByName(ctx, info.TenantID, info.AdminUsername)
	switch {
	case keyhold.IsNotFound(err):
		admin, err = s.identity.CreateUser(ctx, info.TenantID, info.AdminUsername, bootstrapAdminName, password, []string{keyhold.RoleGlobalAdministrator})
		if err != nil {
			return nil, fmt.Errorf("server: bootstrap: cannot create the Global Administrator: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("server: bootstrap: cannot look up the Global Administrator: %w", err)
	default:
		if err := s.identity.SetPassword(ctx, admin.ID, password); err != nil {
			return nil, fmt.Errorf("server: bootstrap: cannot reset the Global Administrator's password: %w", err)
		}
	}

	sps, err := s.store.FindPrincipals(ctx, keyhold.PrincipalFilter{TenantID: info.TenantID, Type: keyhold.PrincipalServicePrincipal})
	if err != nil {
		return nil, fmt.Errorf("server: bootstrap: cannot look up the service principal: %w", err)
	}
	var sp *keyhold.Principal
	for _, p := range sps {
		if p.DisplayName == bootstrapSPName {
			sp = p
		}
	}
	var secret keyhold.Secret
	if sp == nil {
		sp, secret, err = s.identity.CreateServicePrincipal(ctx, info.TenantID, bootstrapSPName)
	} else {
		_, secret, err = s.identity.AddClientSecret(ctx, sp.ID, time.Time{})
	}
	if err != nil {
		return nil, fmt.Errorf("server: bootstrap: cannot create the %s service principal: %w", bootstrapSPName, err)
	}
	defer secret.Wipe()

	scope := "/subscriptions/" + info.SubscriptionID
	for _, p := range []*keyhold.Principal{admin, sp} {
		if err := s.grantOwner(ctx, info.TenantID, scope, p); err != nil {
			return nil, err
		}
	}
	s.logger.Info("bootstrap: granted Owner on the subscription to the Global Administrator and the service principal",
		"subscriptionId", info.SubscriptionID, "adminUsername", info.AdminUsername, "adminId", admin.ID,
		"servicePrincipal", bootstrapSPName, "clientId", sp.AppID)

	if err := s.writeBootstrapFile(info, admin, sp, password, secret); err != nil {
		return nil, err
	}

	info.AdminID, info.ServicePrincipalID, info.ClientID, info.Complete = admin.ID, sp.ID, sp.AppID, true
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := s.store.PutSetting(ctx, bootstrapSetting, b); err != nil {
		return nil, fmt.Errorf("server: bootstrap: cannot mark the bootstrap complete: %w", err)
	}
	s.logger.Info("bootstrap complete: the first credentials are in bootstrap.json; keep it safe", "path", s.BootstrapFile())
	return info, nil
}

func (s *Server) grantOwner(ctx context.Context, tenantID, scope string, p *keyhold.Principal) error {
	existing, err := s.store.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{PrincipalID: p.ID, Scope: scope})
	if err != nil {
		return fmt.Errorf("server: bootstrap: cannot list role assignments: %w", err)
	}
	owner, ok := rbac.RoleByName("Owner")
	if !ok {
		return errors.New("server: bootstrap: the Owner role is not defined")
	}
	for _, a := range existing {
		if strings.EqualFold(a.RoleDefinitionID, owner.ID) {
			return nil
		}
	}
	ptype := p.Type
	if ptype == keyhold.PrincipalManagedIdentity {
		ptype = keyhold.PrincipalServicePrincipal
	}
	now := s.cfg.Now().UTC()
	err = s.store.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{
		Name: newUUID(), TenantID: tenantID, Scope: scope, RoleDefinitionID: owner.ID,
		PrincipalID: p.ID, PrincipalType: ptype, Description: "Granted at bootstrap",
		CreatedBy: "keyhold-bootstrap", CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return fmt.Errorf("server: bootstrap: cannot grant Owner to %s: %w", p.ID, err)
	}
	return nil
}

func (s *Server) writeBootstrapFile(info *BootstrapInfo, admin, sp *keyhold.Principal, password, secret keyhold.Secret) error {
	contents := BootstrapFileContents{
		TenantID:       info.TenantID,
		SubscriptionID: info.SubscriptionID,
		AdminUsername:  admin.UserPrincipalName,
		AdminPassword:  string(password.Reveal()),
		ClientID:       sp.AppID,
		ClientSecret:   string(secret.Reveal()),
	}
	s.setEndpoints(&contents)
	return s.saveBootstrapFile(&contents)
}

// setEndpoints fills in the fields of bootstrap.json that follow from where
// this server listens, as opposed to the secrets made once.
func (s *Server) setEndpoints(c *BootstrapFileContents) {
	base := s.publicURL
	c.AuthorityHost = base
	c.ResourceManagerEndpoint = base
	c.ResourceManagerAudience = identity.AudienceManagement
	c.BAPEndpoint = base
	c.BAPAudience = identity.AudiencePlatform
	// Host-style under --vault-domain, path-style otherwise: what vaultUri
	// says, without its trailing slash.
	c.VaultURLTemplate = strings.TrimSuffix(s.vault.VaultURI("{name}"), "/")
	c.VaultAudience = identity.AudienceVault
	c.GraphEndpoint = base
	c.GraphAudience = identity.AudienceGraph
	c.CACertFile = s.caFile
}

// refreshBootstrapFile rewrites the endpoints in an existing bootstrap.json
// when the server now listens elsewhere (another --listen or --public-url),
// keeping the secrets, so that scripts reading the file keep working.
func (s *Server) refreshBootstrapFile() error {
	path := s.BootstrapFile()
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("server: cannot read %s: %w", path, err)
	}
	defer wipe(b)
	var c BootstrapFileContents
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("server: %s is not valid JSON; leaving it as it is: %v", path, err)
	}
	before := c
	s.setEndpoints(&c)
	if c == before {
		return nil
	}
	s.logger.Info("bootstrap.json names old endpoints; updating them", "path", path, "endpoint", s.publicURL)
	return s.saveBootstrapFile(&c)
}

func (s *Server) saveBootstrapFile(contents *BootstrapFileContents) error {
	b, err := json.MarshalIndent(contents, "", "  ")
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	defer wipe(b)
	path := s.BootstrapFile()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bootstrap.json.*")
	if err != nil {
		return fmt.Errorf("server: cannot write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600, so the secrets are never readable by
	// others, not even for a moment.
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("server: cannot write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("server: cannot write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("server: cannot write %s: %w", path, err)
	}
	return nil
}

const passwordAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
const passwordSymbols = "-_.~!*"

// newPassword returns a random password of n characters with upper- and
// lower-case letters, digits and a symbol, which any complexity rule accepts.
func newPassword(n int) (keyhold.Secret, error) {
	all := passwordAlphabet + passwordSymbols
	for {
		b := make([]byte, n)
		for i := range b {
			k, err := rand.Int(rand.Reader, big.NewInt(int64(len(all))))
			if err != nil {
				return keyhold.Secret{}, fmt.Errorf("server: no randomness: %w", err)
			}
			b[i] = all[k.Int64()]
		}
		if hasClasses(b) {
			return keyhold.NewSecret(b), nil
		}
		wipe(b)
	}
}

func hasClasses(b []byte) bool {
	var upper, lower, digit, sym bool
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			sym = true
		}
	}
	return upper && lower && digit && sym
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}
