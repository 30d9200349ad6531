package client

import (
	"context"
	"net/http"
	"time"
)

// separationOfDutiesPath is where the server keeps the tenant's separation
// of duties.
const separationOfDutiesPath = "keyhold/v1/separationOfDuties"

// SeparationOfDuties is the caller's tenant's separation of duties: whether
// the server refuses grants that make one principal both a key vault
// administrator and a platform administrator, and who holds both today.
type SeparationOfDuties struct {
	// Enabled is whether grants are checked: TenantSetting or
	// ServerEnforced (keyhold serve --separation-of-duties).
	Enabled        bool      `json:"enabled"`
	TenantSetting  bool      `json:"tenantSetting"`
	ServerEnforced bool      `json:"serverEnforced"`
	ChangedBy      string    `json:"changedBy,omitempty"`
	ChangedAt      time.Time `json:"changedAt,omitzero"`
	// Violations are the platform administrators that hold a key vault
	// right; turning the setting on does not revoke them.
	Violations []DutiesHolder `json:"violations"`
	// Exempt are the Global Administrators that hold a key vault right.
	Exempt []DutiesHolder `json:"exempt"`
	// Rules are the roles and permissions the server counts.
	Rules struct {
		KeyVaultRoles            []string `json:"keyVaultRoles"`
		ManagementKeyPermissions []string `json:"managementKeyPermissions"`
		PlatformRoles            []string `json:"platformRoles"`
		Exempt                   []string `json:"exempt"`
	} `json:"rules"`
}

// DutiesHolder is a user that holds a key vault right and a platform (or
// Global Administrator) role.
type DutiesHolder struct {
	PrincipalID    string           `json:"principalId"`
	PrincipalName  string           `json:"principalName"`
	DirectoryRoles []string         `json:"directoryRoles"`
	KeyVaultAccess []KeyVaultAccess `json:"keyVaultAccess"`
}

// KeyVaultAccess is one key vault right: a role at a scope, or an access
// policy's key management permissions on a vault, held directly or through
// a group.
type KeyVaultAccess struct {
	Role           string   `json:"role"` // a role name, or "Access policy"
	Permissions    []string `json:"permissions,omitempty"`
	Scope          string   `json:"scope"`
	RoleAssignment string   `json:"roleAssignment,omitempty"`
	GroupID        string   `json:"groupId,omitempty"`
	GroupName      string   `json:"groupName,omitempty"`
}

// GetSeparationOfDuties returns the tenant's separation of duties with its
// current violations. Administrators may read it (a directory role, or
// Owner, User Access Administrator or a key vault role somewhere); anyone
// else gets a 403 *Error.
func (c *Client) GetSeparationOfDuties(ctx context.Context) (*SeparationOfDuties, error) {
	var out SeparationOfDuties
	if _, err := c.Do(ctx, http.MethodGet, AudienceARM, separationOfDutiesPath, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetSeparationOfDuties turns the tenant's separation of duties on or off
// and returns it with the violations that exist now; turning it on revokes
// nothing. Only a Global Administrator may (a 403 *Error otherwise). With
// the server's --separation-of-duties flag it stays enforced whatever the
// tenant sets.
func (c *Client) SetSeparationOfDuties(ctx context.Context, enabled bool) (*SeparationOfDuties, error) {
	var out SeparationOfDuties
	in := struct {
		Enabled bool `json:"enabled"`
	}{enabled}
	if _, err := c.Do(ctx, http.MethodPut, AudienceARM, separationOfDutiesPath, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
