// Package keyhold holds the domain of Keyhold, an open implementation of
// customer-managed encryption keys for multi-tenant data platforms: tenants,
// principals, subscriptions, resource groups, role assignments, generic
// resource-manager resources, the audit log, and the Store that keeps them.
// It imports nothing that imports it back; drivers and surfaces live in
// sub-packages.
package keyhold

import (
	"encoding/json"
	"time"
)

// Tenant is a directory: the home of principals and subscriptions.
type Tenant struct {
	ID            string    `json:"id"`
	DisplayName   string    `json:"displayName"`
	DefaultDomain string    `json:"defaultDomain"` // users are named user@DefaultDomain
	CreatedAt     time.Time `json:"createdAt"`
}

// PrincipalType says what kind of security principal a Principal is.
type PrincipalType string

// Principal types, spelled as Azure role assignments spell them.
const (
	PrincipalUser             PrincipalType = "User"
	PrincipalServicePrincipal PrincipalType = "ServicePrincipal"
	PrincipalManagedIdentity  PrincipalType = "ManagedIdentity" // shown as ServicePrincipal on role assignments, as Azure does
	PrincipalGroup            PrincipalType = "Group"
)

// Directory roles a user can hold, named as Entra ID names them.
const (
	RoleGlobalAdministrator        = "Global Administrator"
	RolePowerPlatformAdministrator = "Power Platform Administrator"
	RoleDynamics365Administrator   = "Dynamics 365 Administrator"
)

// DirectoryRoles lists the directory roles Keyhold knows, with the role
// template ids that Entra ID uses for them.
var DirectoryRoles = map[string]string{
	RoleGlobalAdministrator:        "62e90394-69f5-4237-9190-012177145e10",
	RolePowerPlatformAdministrator: "11648597-926c-4cf3-9c36-bcebb0ba8dcc",
	RoleDynamics365Administrator:   "44367163-eba1-44c3-98af-f5787879f96a",
}

// Principal is a security principal: a user, a service principal (an
// application with client secrets), a managed identity (created by a resource,
// without secrets) or a group.
type Principal struct {
	ID                string        `json:"id"` // object id
	TenantID          string        `json:"tenantId"`
	Type              PrincipalType `json:"type"`
	DisplayName       string        `json:"displayName"`
	UserPrincipalName string        `json:"userPrincipalName,omitempty"` // users only
	AppID             string        `json:"appId,omitempty"`             // service principals and managed identities: the client id
	ResourceID        string        `json:"resourceId,omitempty"`        // managed identities: the resource that owns it
	DirectoryRoles    []string      `json:"directoryRoles,omitempty"`    // users only
	Disabled          bool          `json:"disabled,omitempty"`
	CreatedAt         time.Time     `json:"createdAt"`
}

// HasDirectoryRole reports whether p holds the named directory role.
func (p *Principal) HasDirectoryRole(role string) bool {
	for _, r := range p.DirectoryRoles {
		if r == role {
			return true
		}
	}
	return false
}

// IsPlatformAdmin reports whether p may administer environments: a Global,
// Power Platform or Dynamics 365 administrator.
func (p *Principal) IsPlatformAdmin() bool {
	return p.HasDirectoryRole(RoleGlobalAdministrator) ||
		p.HasDirectoryRole(RolePowerPlatformAdministrator) ||
		p.HasDirectoryRole(RoleDynamics365Administrator)
}

// CredentialKind says what a Credential proves.
type CredentialKind string

// Credential kinds.
const (
	CredentialPassword     CredentialKind = "password"      // a user's password
	CredentialClientSecret CredentialKind = "client_secret" // a service principal's client secret
)

// Credential is a hashed secret that proves a principal's identity. The secret
// itself is never stored; Hash is a self-describing hash string (PHC format).
type Credential struct {
	ID          string         `json:"id"`
	PrincipalID string         `json:"principalId"`
	Kind        CredentialKind `json:"kind"`
	Hash        string         `json:"-"`
	Hint        string         `json:"hint,omitempty"` // first characters of a client secret, as Entra ID shows them
	CreatedAt   time.Time      `json:"createdAt"`
	ExpiresAt   time.Time      `json:"expiresAt,omitzero"`
}

// Subscription is the unit of resource-manager billing and scoping.
type Subscription struct {
	ID          string    `json:"subscriptionId"`
	TenantID    string    `json:"tenantId"`
	DisplayName string    `json:"displayName"`
	State       string    `json:"state"` // Enabled
	CreatedAt   time.Time `json:"-"`
}

// SystemData is ARM's record of who created and last changed a resource.
type SystemData struct {
	CreatedBy          string    `json:"createdBy,omitempty"`
	CreatedByType      string    `json:"createdByType,omitempty"`
	CreatedAt          time.Time `json:"createdAt,omitzero"`
	LastModifiedBy     string    `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string    `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     time.Time `json:"lastModifiedAt,omitzero"`
}

// ResourceGroup is a named, located container of resources in a subscription.
type ResourceGroup struct {
	SubscriptionID    string            `json:"-"`
	Name              string            `json:"name"` // case preserved; looked up case-insensitively
	Location          string            `json:"location"`
	Tags              map[string]string `json:"tags,omitempty"`
	ManagedBy         string            `json:"managedBy,omitempty"`
	ProvisioningState string            `json:"-"` // Succeeded, Deleting
	SystemData        SystemData        `json:"-"`
}

// Registration states of resource providers and features, as ARM spells them.
const (
	StateNotRegistered = "NotRegistered"
	StateRegistering   = "Registering"
	StateRegistered    = "Registered"
	StateUnregistering = "Unregistering"
	StateUnregistered  = "Unregistered"
)

// ProviderRegistration records whether a subscription may use a resource
// provider namespace such as Microsoft.PowerPlatform.
type ProviderRegistration struct {
	SubscriptionID string    `json:"subscriptionId"`
	Namespace      string    `json:"namespace"`
	State          string    `json:"registrationState"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// FeatureRegistration records a subscription's registration of a preview
// feature, such as Microsoft.PowerPlatform/enterprisePoliciesPreview.
type FeatureRegistration struct {
	SubscriptionID string    `json:"subscriptionId"`
	Namespace      string    `json:"namespace"`
	Name           string    `json:"name"`
	State          string    `json:"state"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// RoleAssignment grants a principal a role definition at a scope, and so at
// every scope below it.
type RoleAssignment struct {
	Name             string        `json:"name"`             // a GUID, unique in the tenant
	TenantID         string        `json:"tenantId"`         //
	Scope            string        `json:"scope"`            // "/", "/subscriptions/{s}", ".../resourceGroups/{rg}", a resource id
	RoleDefinitionID string        `json:"roleDefinitionId"` // the role definition's GUID
	PrincipalID      string        `json:"principalId"`
	PrincipalType    PrincipalType `json:"principalType"`
	Description      string        `json:"description,omitempty"`
	CreatedBy        string        `json:"createdBy,omitempty"`
	CreatedAt        time.Time     `json:"createdOn"`
	UpdatedAt        time.Time     `json:"updatedOn"`
}

// Resource is a resource-manager resource of any type. Handlers for each type
// (vaults, enterprise policies, ...) validate and interpret Properties; the
// store keeps them as JSON.
type Resource struct {
	ID             string            `json:"id"` // canonical id, case preserved
	SubscriptionID string            `json:"-"`
	ResourceGroup  string            `json:"-"`
	Type           string            `json:"type"` // e.g. Microsoft.KeyVault/vaults
	Name           string            `json:"name"`
	Location       string            `json:"location,omitempty"`
	Kind           string            `json:"kind,omitempty"`
	Tags           map[string]string `json:"tags,omitempty"`
	SKU            json.RawMessage   `json:"sku,omitempty"`
	Identity       json.RawMessage   `json:"identity,omitempty"`
	Properties     json.RawMessage   `json:"properties,omitempty"`
	SystemData     SystemData        `json:"systemData"`
	ETag           string            `json:"etag,omitempty"`
}

// AuditRecord is one entry of the append-only audit log. Records are hash
// chained: each Hash covers the record and the previous record's Hash, so that
// a removed or altered record is detectable. It never holds a secret.
type AuditRecord struct {
	Seq           int64     `json:"seq"`
	Time          time.Time `json:"time"`
	TenantID      string    `json:"tenantId"`
	PrincipalID   string    `json:"principalId"`
	PrincipalName string    `json:"principalName,omitempty"`
	Action        string    `json:"action"` // e.g. Microsoft.Resources/subscriptions/resourceGroups/write
	Method        string    `json:"method"`
	Scope         string    `json:"scope"`
	Status        int       `json:"status"` // HTTP status of the response
	Result        string    `json:"result"` // Succeeded or Failed
	Detail        string    `json:"detail,omitempty"`
	RequestID     string    `json:"requestId"`
	ClientIP      string    `json:"clientIp,omitempty"`
	PrevHash      string    `json:"prevHash"`
	Hash          string    `json:"hash"`
}
