// Package duties keeps the two administrators of the seed's story apart:
// the key vault administrator, who holds the customer's key, and the
// platform administrator, who puts environments under it. The seed's advice
// is that "the Azure Key Vault administrator isn't granted access to the
// Power Platform admin center"; with separation of duties on, Keyhold
// refuses every grant that would leave one principal holding both.
//
// A key vault right is one of KeyVaultRoles assigned at a vault (or a key in
// it) or at a scope that holds vaults (a resource group, a subscription, the
// root), or an access policy on a vault with one of
// ManagementKeyPermissions. A platform right is one of PlatformRoles. Both
// count when held directly or through a group, nested or not. Global
// Administrators are exempt, since they can grant themselves anything; the
// report lists them apart.
//
// The Checker is called by every surface that grants either right (role
// assignments, vault access policies, directory role members, group
// members) inside the transaction of the write, so that two grants racing
// each other cannot both pass. It refuses with an EConflict whose detail is
// keyhold.DetailSeparationOfDuties. A nil *Checker checks nothing.
package duties

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/rbac"
)

// VaultType is the resource type of a key vault, whose access policies the
// checker reads from the stored resource.
const VaultType = "Microsoft.KeyVault/vaults"

// KeyVaultRoles are the Azure roles that make their holder a key vault
// administrator: each can delete or disable the customer's key, delete the
// vault, close its firewall or take the policy identity's access away,
// which locks every environment under the key. Owner and User Access
// Administrator can also grant roles, but every such grant is itself checked.
var KeyVaultRoles = []string{
	rbac.RoleOwner, rbac.RoleContributor,
	rbac.RoleKeyVaultAdministrator, rbac.RoleKeyVaultContributor, rbac.RoleKeyVaultCryptoOfficer,
}

// PlatformRoles are the directory roles of a platform administrator.
// Global Administrator is not among them: it is exempt.
var PlatformRoles = []string{keyhold.RolePowerPlatformAdministrator, keyhold.RoleDynamics365Administrator}

// ManagementKeyPermissions are the access-policy key permissions that
// manage keys rather than use them: each changes a key's life (create,
// import, update, rotate, delete, purge, recover, backup, restore, set the
// rotation policy) or lets key material out (release). "all" grants them
// all. get, list, getrotationpolicy and the cryptographic operations
// (encrypt, decrypt, wrapKey, unwrapKey, sign, verify) do not: get, wrapKey
// and unwrapKey are the policy identity's CMK preset.
var ManagementKeyPermissions = []string{
	"backup", "create", "delete", "import", "purge", "recover", "release",
	"restore", "rotate", "setrotationpolicy", "update",
}

// Config configures a Checker.
type Config struct {
	// Store keeps the tenant settings and is read when no transaction is
	// given.
	Store keyhold.Store
	// Enforce turns separation of duties on for every tenant, whatever
	// their own setting says (keyhold serve --separation-of-duties).
	Enforce bool
	// Authz decides who may read the report; nil means rbac.New(Store).
	Authz *rbac.Authorizer
	// Logger receives a line for each refused grant and setting change;
	// nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Checker decides whether grants keep the two administrators apart. It is
// safe for concurrent use and keeps no state of its own.
type Checker struct {
	store   keyhold.Store
	enforce bool
	authz   *rbac.Authorizer
	log     *slog.Logger
	now     func() time.Time
}

// New returns a Checker for cfg.
func New(cfg Config) *Checker {
	c := &Checker{store: cfg.Store, enforce: cfg.Enforce, authz: cfg.Authz, log: cfg.Logger, now: cfg.Now}
	if c.authz == nil {
		c.authz = rbac.New(cfg.Store)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Setting names: the tenant's choice, and the row every check of a tenant
// writes first so that checks of one tenant run one at a time.
const (
	settingPrefix = "duties/tenant/"
	lockPrefix    = "duties/lock/"
)

// TenantSetting is a tenant's stored choice.
type TenantSetting struct {
	Enabled   bool      `json:"enabled"`
	ChangedBy string    `json:"changedBy,omitempty"` // object id of who changed it last
	ChangedAt time.Time `json:"changedAt,omitzero"`
}

// Setting returns tenantID's stored choice, read through st (nil means the
// checker's store); off when the tenant never set it. It returns the store's
// error.
func (c *Checker) Setting(ctx context.Context, st keyhold.Store, tenantID string) (TenantSetting, error) {
	var ts TenantSetting
	if st == nil {
		st = c.store
	}
	b, err := st.GetSetting(ctx, settingPrefix+strings.ToLower(tenantID))
	if keyhold.IsNotFound(err) || err == nil && len(b) == 0 {
		return ts, nil
	}
	if err != nil {
		return ts, err
	}
	if err := json.Unmarshal(b, &ts); err != nil {
		return ts, keyhold.Internal("duties: stored tenant setting", err)
	}
	return ts, nil
}

// Enabled reports whether separation of duties is on for tenantID: by the
// server's flag or by the tenant's setting. A nil Checker is never enabled.
func (c *Checker) Enabled(ctx context.Context, st keyhold.Store, tenantID string) (bool, error) {
	if c == nil {
		return false, nil
	}
	if c.enforce {
		return true, nil
	}
	ts, err := c.Setting(ctx, st, tenantID)
	return ts.Enabled, err
}

// Enforced reports whether the server turns separation of duties on for
// every tenant.
func (c *Checker) Enforced() bool { return c != nil && c.enforce }

// setEnabled stores tenantID's choice.
func (c *Checker) setEnabled(ctx context.Context, tenantID, by string, on bool) error {
	b, err := json.Marshal(TenantSetting{Enabled: on, ChangedBy: by, ChangedAt: c.now().UTC()})
	if err != nil {
		return keyhold.Internal("duties: encoding the tenant setting", err)
	}
	if err := c.store.PutSetting(ctx, settingPrefix+strings.ToLower(tenantID), b); err != nil {
		return err
	}
	c.log.Info("duties: separation of duties changed", "tenant", tenantID, "enabled", on, "by", by)
	return nil
}

// lock writes the tenant's lock row in st's transaction. On PostgreSQL the
// write holds the row until the transaction ends, so a second check of the
// tenant waits and then reads what the first one wrote; SQLite runs one
// writer at a time anyway.
func (c *Checker) lock(ctx context.Context, st keyhold.Store, tenantID string) error {
	return st.PutSetting(ctx, lockPrefix+strings.ToLower(tenantID), []byte(c.now().UTC().Format(time.RFC3339Nano)))
}

// IsKeyVaultRole reports whether the role definition (by GUID) is one of
// KeyVaultRoles, and returns its name.
func IsKeyVaultRole(roleDefinitionID string) (string, bool) {
	r, ok := rbac.RoleByID(roleDefinitionID)
	if !ok || !slices.Contains(KeyVaultRoles, r.Name) {
		return "", false
	}
	return r.Name, true
}

// HoldsVaults reports whether scope is a vault, something in a vault, or a
// scope that can hold vaults: a key vault role there reaches vaults. A role
// at another resource, such as an enterprise policy, does not.
func HoldsVaults(scope armid.ID) bool {
	switch {
	case scope.IsRoot(), scope.IsSubscription(), scope.IsResourceGroup():
		return true
	case scope.IsResource():
		t := strings.ToLower(scope.Type())
		return t == strings.ToLower(VaultType) || strings.HasPrefix(t, strings.ToLower(VaultType)+"/")
	}
	return false
}

// ManagementPermissions returns the ManagementKeyPermissions among keys
// (access-policy key permissions, any case), sorted; "all" gives them all.
func ManagementPermissions(keys []string) []string {
	var out []string
	for _, k := range keys {
		k = strings.ToLower(k)
		if k == "all" {
			return slices.Clone(ManagementKeyPermissions)
		}
		if slices.Contains(ManagementKeyPermissions, k) && !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// platformRole returns the first of PlatformRoles p holds, or "".
func platformRole(p *keyhold.Principal) string {
	for _, r := range PlatformRoles {
		if p.HasDirectoryRole(r) {
			return r
		}
	}
	return ""
}

// exempt reports whether p is a Global Administrator, who can grant itself
// anything and so is reported rather than refused.
func exempt(p *keyhold.Principal) bool {
	return p.HasDirectoryRole(keyhold.RoleGlobalAdministrator)
}

// name is how messages and reports name a principal: a user by its UPN,
// anything else by display name and object id.
func name(p *keyhold.Principal) string {
	if p.UserPrincipalName != "" {
		return p.UserPrincipalName
	}
	return "'" + p.DisplayName + "' (" + p.ID + ")"
}
