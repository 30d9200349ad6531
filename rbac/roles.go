package rbac

import "strings"

// RoleDefinition is an Azure role: a named set of permissions that a role
// assignment grants at a scope.
type RoleDefinition struct {
	ID               string // the role's GUID, the same in every tenant for built-in roles
	Name             string // roleName, e.g. "Reader"
	Description      string
	Type             string // "BuiltInRole" or "CustomRole"
	Permissions      []Permission
	AssignableScopes []string
}

// Permission is one permission block of a role. An action is allowed by the
// block when it matches Actions and none of NotActions; data actions alike.
type Permission struct {
	Actions        []string
	NotActions     []string
	DataActions    []string
	NotDataActions []string
}

// Names of the built-in roles Keyhold knows.
const (
	RoleOwner                               = "Owner"
	RoleContributor                         = "Contributor"
	RoleReader                              = "Reader"
	RoleUserAccessAdministrator             = "User Access Administrator"
	RoleKeyVaultAdministrator               = "Key Vault Administrator"
	RoleKeyVaultContributor                 = "Key Vault Contributor"
	RoleKeyVaultCryptoOfficer               = "Key Vault Crypto Officer"
	RoleKeyVaultCryptoUser                  = "Key Vault Crypto User"
	RoleKeyVaultCryptoServiceEncryptionUser = "Key Vault Crypto Service Encryption User"
	RoleKeyVaultReader                      = "Key Vault Reader"
	RoleKeyVaultCryptoServiceReleaseUser    = "Key Vault Crypto Service Release User"
)

// BuiltInRole is the type of the roles Azure defines.
const BuiltInRole = "BuiltInRole"

const (
	keyVaultRBACOnly                          = " Only works for key vaults that use the 'Azure role-based access control' permission model."
	roleIDOwner                               = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	roleIDContributor                         = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	roleIDReader                              = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	roleIDUserAccessAdministrator             = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
	roleIDKeyVaultAdministrator               = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
	roleIDKeyVaultContributor                 = "f25e0fa2-a7c8-4377-a976-54943a77a395"
	roleIDKeyVaultCryptoOfficer               = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
	roleIDKeyVaultCryptoUser                  = "12338af0-0e69-4776-bea7-57ae8d297424"
	roleIDKeyVaultCryptoServiceEncryptionUser = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
	roleIDKeyVaultReader                      = "21090545-7ca7-4776-b22c-e363652d74d2"
	roleIDKeyVaultCryptoServiceReleaseUser    = "08bbd89e-9f13-488c-ac41-acfcb10c90ab"
)

// keyVaultControlRead is the control-plane part that Azure gives every Key
// Vault data role, so that holders can find the vault they may use.
var keyVaultControlRead = []string{
	"Microsoft.Authorization/*/read",
	"Microsoft.Insights/alertRules/*",
	"Microsoft.Resources/deployments/*",
	"Microsoft.Resources/subscriptions/resourceGroups/read",
	"Microsoft.Support/*",
	"Microsoft.KeyVault/checkNameAvailability/read",
	"Microsoft.KeyVault/deletedVaults/read",
	"Microsoft.KeyVault/locations/*/read",
	"Microsoft.KeyVault/vaults/*/read",
	"Microsoft.KeyVault/operations/read",
}

var builtIn = []RoleDefinition{
	{
		ID: roleIDOwner, Name: RoleOwner,
		Description: "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
		Permissions: []Permission{{Actions: []string{"*"}}},
	},
	{
		ID: roleIDContributor, Name: RoleContributor,
		Description: "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
		Permissions: []Permission{{
			Actions: []string{"*"},
			NotActions: []string{
				"Microsoft.Authorization/*/Delete",
				"Microsoft.Authorization/*/Write",
				"Microsoft.Authorization/elevateAccess/Action",
				"Microsoft.Blueprint/blueprintAssignments/write",
				"Microsoft.Blueprint/blueprintAssignments/delete",
				"Microsoft.Compute/galleries/share/action",
				"Microsoft.Purview/consents/write",
				"Microsoft.Purview/consents/delete",
				"Microsoft.Resources/deploymentStacks/manageDenySetting/action",
				"Microsoft.Subscription/cancel/action",
				"Microsoft.Subscription/enable/action",
			},
		}},
	},
	{
		ID: roleIDReader, Name: RoleReader,
		Description: "View all resources, but does not allow you to make any changes.",
		Permissions: []Permission{{Actions: []string{"*/read"}}},
	},
	{
		ID: roleIDUserAccessAdministrator, Name: RoleUserAccessAdministrator,
		Description: "Lets you manage user access to Azure resources.",
		Permissions: []Permission{{Actions: []string{"*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"}}},
	},
	{
		ID: roleIDKeyVaultAdministrator, Name: RoleKeyVaultAdministrator,
		Description: "Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments." + keyVaultRBACOnly,
		Permissions: []Permission{{Actions: keyVaultControlRead, DataActions: []string{"Microsoft.KeyVault/vaults/*"}}},
	},
	{
		ID: roleIDKeyVaultContributor, Name: RoleKeyVaultContributor,
		Description: "Manage key vaults, but does not allow you to assign roles in Azure RBAC, and does not allow you to access secrets, keys, or certificates.",
		Permissions: []Permission{{
			Actions: []string{
				"Microsoft.Authorization/*/read",
				"Microsoft.Insights/alertRules/*",
				"Microsoft.KeyVault/*",
				"Microsoft.Resources/deployments/*",
				"Microsoft.Resources/subscriptions/resourceGroups/read",
				"Microsoft.Support/*",
			},
			NotActions: []string{
				"Microsoft.KeyVault/locations/deletedVaults/purge/action",
				"Microsoft.KeyVault/hsmPools/*",
				"Microsoft.KeyVault/managedHsms/*",
			},
		}},
	},
	{
		ID: roleIDKeyVaultCryptoOfficer, Name: RoleKeyVaultCryptoOfficer,
		Description: "Perform any action on the keys of a key vault, except manage permissions." + keyVaultRBACOnly,
		Permissions: []Permission{{
			Actions:     keyVaultControlRead,
			DataActions: []string{"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"},
		}},
	},
	{
		ID: roleIDKeyVaultCryptoUser, Name: RoleKeyVaultCryptoUser,
		Description: "Perform cryptographic operations using keys." + keyVaultRBACOnly,
		Permissions: []Permission{{DataActions: []string{
			"Microsoft.KeyVault/vaults/keys/read",
			"Microsoft.KeyVault/vaults/keys/update/action",
			"Microsoft.KeyVault/vaults/keys/backup/action",
			"Microsoft.KeyVault/vaults/keys/encrypt/action",
			"Microsoft.KeyVault/vaults/keys/decrypt/action",
			"Microsoft.KeyVault/vaults/keys/wrap/action",
			"Microsoft.KeyVault/vaults/keys/unwrap/action",
			"Microsoft.KeyVault/vaults/keys/sign/action",
			"Microsoft.KeyVault/vaults/keys/verify/action",
		}}},
	},
	{
		ID: roleIDKeyVaultCryptoServiceEncryptionUser, Name: RoleKeyVaultCryptoServiceEncryptionUser,
		Description: "Read metadata of keys and perform wrap/unwrap operations." + keyVaultRBACOnly,
		Permissions: []Permission{{
			Actions: []string{
				"Microsoft.EventGrid/eventSubscriptions/write",
				"Microsoft.EventGrid/eventSubscriptions/read",
				"Microsoft.EventGrid/eventSubscriptions/delete",
			},
			DataActions: []string{
				"Microsoft.KeyVault/vaults/keys/read",
				"Microsoft.KeyVault/vaults/keys/wrap/action",
				"Microsoft.KeyVault/vaults/keys/unwrap/action",
			},
		}},
	},
	{
		ID: roleIDKeyVaultReader, Name: RoleKeyVaultReader,
		Description: "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or key material." + keyVaultRBACOnly,
		Permissions: []Permission{{
			Actions:     keyVaultControlRead,
			DataActions: []string{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"},
		}},
	},
	{
		ID: roleIDKeyVaultCryptoServiceReleaseUser, Name: RoleKeyVaultCryptoServiceReleaseUser,
		Description: "Release keys." + keyVaultRBACOnly,
		Permissions: []Permission{{DataActions: []string{"Microsoft.KeyVault/vaults/keys/release/action"}}},
	},
}

// BuiltInRoles returns the built-in role definitions, as Azure defines
// them. The result is a copy the caller may change.
func BuiltInRoles() []RoleDefinition {
	out := make([]RoleDefinition, len(builtIn))
	for i, r := range builtIn {
		out[i] = r.clone()
	}
	return out
}

// RoleByName returns the built-in role with the given roleName, compared
// case-insensitively.
func RoleByName(name string) (RoleDefinition, bool) {
	for _, r := range builtIn {
		if strings.EqualFold(r.Name, name) {
			return r.clone(), true
		}
	}
	return RoleDefinition{}, false
}

// RoleByID returns the built-in role with the given GUID, compared
// case-insensitively.
func RoleByID(guid string) (RoleDefinition, bool) {
	for _, r := range builtIn {
		if strings.EqualFold(r.ID, guid) {
			return r.clone(), true
		}
	}
	return RoleDefinition{}, false
}

func (r RoleDefinition) clone() RoleDefinition {
	out := r
	if out.Type == "" {
		out.Type = BuiltInRole
	}
	if len(out.AssignableScopes) == 0 {
		out.AssignableScopes = []string{"/"}
	} else {
		out.AssignableScopes = append([]string(nil), r.AssignableScopes...)
	}
	out.Permissions = make([]Permission, len(r.Permissions))
	for i, p := range r.Permissions {
		out.Permissions[i] = Permission{
			Actions:        append([]string{}, p.Actions...),
			NotActions:     append([]string{}, p.NotActions...),
			DataActions:    append([]string{}, p.DataActions...),
			NotDataActions: append([]string{}, p.NotDataActions...),
		}
	}
	return out
}

// Allows reports whether the role allows the control-plane action: some
// permission block matches it in Actions and not in NotActions. Azure
// subtracts NotActions per role, not across roles, and so does this.
func (r RoleDefinition) Allows(action string) bool {
	for _, p := range r.Permissions {
		if matchAny(p.Actions, action) && !matchAny(p.NotActions, action) {
			return true
		}
	}
	return false
}

// AllowsData reports whether the role allows the data-plane action.
func (r RoleDefinition) AllowsData(dataAction string) bool {
	for _, p := range r.Permissions {
		if matchAny(p.DataActions, dataAction) && !matchAny(p.NotDataActions, dataAction) {
			return true
		}
	}
	return false
}

func matchAny(patterns []string, action string) bool {
	for _, p := range patterns {
		if Match(p, action) {
			return true
		}
	}
	return false
}

// Match reports whether action matches pattern, case-insensitively, where
// each "*" in pattern stands for any run of characters, "/" included:
// "*/read" matches "Microsoft.KeyVault/vaults/read" and
// "Microsoft.KeyVault/vaults/keys/*" matches every key action.
func Match(pattern, action string) bool {
	p, s := strings.ToLower(pattern), strings.ToLower(action)
	// Greedy glob with one backtrack point: linear, no recursion.
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
