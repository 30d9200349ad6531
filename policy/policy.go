// Package policy is the enterprise policy: the Microsoft.PowerPlatform/
// enterprisePolicies resource that points at a customer's key and carries its
// own managed identity, and the component that watches whether that identity
// can use the key right now (the policy's health).
package policy

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// ResourceType is the resource-manager type of an enterprise policy.
const ResourceType = "Microsoft.PowerPlatform/enterprisePolicies"

// Namespace is the resource provider of enterprise policies.
const Namespace = "Microsoft.PowerPlatform"

// Kinds of enterprise policy. Encryption drives behaviour; the others are
// validated and stored.
const (
	KindEncryption       = "Encryption"
	KindIdentity         = "Identity"
	KindNetworkInjection = "NetworkInjection"
	KindLockbox          = "Lockbox"
	KindPrivateEndpoint  = "PrivateEndpoint"
)

// Kinds lists the valid kinds.
var Kinds = []string{KindEncryption, KindIdentity, KindNetworkInjection, KindLockbox, KindPrivateEndpoint}

// Health states of a policy, as the resource's properties.healthStatus.
const (
	HealthUndetermined = "Undetermined"
	HealthHealthy      = "Healthy"
	HealthWarning      = "Warning"
	HealthUnhealthy    = "Unhealthy"
)

// Regions are the Power Platform regions a policy (and an environment) may
// be in: the seed's list and the current documentation's additions.
var Regions = []string{
	"unitedstates", "southafrica", "uk", "japan", "india", "france", "europe", "germany", "switzerland",
	"canada", "brazil", "australia", "asia", "uae", "korea", "norway", "singapore", "sweden",
}

// IsRegion reports whether s names a Power Platform region (case-insensitive).
func IsRegion(s string) bool {
	for _, r := range Regions {
		if strings.EqualFold(r, s) {
			return true
		}
	}
	return false
}

// KeyRef names a key in a vault; a nil Version means "the newest version",
// which lets the platform follow rotations.
type KeyRef struct {
	Name    string  `json:"name"`
	Version *string `json:"version,omitempty"`
}

// KeyVaultRef points an Encryption policy at its key.
type KeyVaultRef struct {
	ID  string `json:"id"` // the vault's resource id
	Key KeyRef `json:"key"`
}

// Encryption is the encryption block of a policy.
type Encryption struct {
	KeyVault *KeyVaultRef `json:"keyVault,omitempty"`
	State    string       `json:"state,omitempty"` // Enabled, Disabled, NotConfigured
}

// Lockbox is the lockbox block of a policy.
type Lockbox struct {
	State string `json:"state,omitempty"`
}

// Subnet names a subnet of a virtual network.
type Subnet struct {
	Name string `json:"name"`
}

// VirtualNetwork is one network of a NetworkInjection policy.
type VirtualNetwork struct {
	ID     string `json:"id"`
	Subnet Subnet `json:"subnet"`
}

// NetworkInjection is the network-injection block of a policy.
type NetworkInjection struct {
	VirtualNetworks []VirtualNetwork `json:"virtualNetworks,omitempty"`
}

// HealthDetail is Keyhold's account of the last health check: why the policy
// has the health it has, in words an administrator can act on. It is an
// extension of the ARM shape; clients that do not know it ignore it.
type HealthDetail struct {
	Reason    string    `json:"reason,omitempty"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	// Definite is true when the failure is a definite denial (access
	// removed, key disabled or deleted) rather than an unreachable vault.
	Definite bool `json:"definite,omitempty"`
}

// Properties are an enterprise policy's properties in ARM's JSON shape.
type Properties struct {
	SystemID         string            `json:"systemId,omitempty"`
	Encryption       *Encryption       `json:"encryption,omitempty"`
	Lockbox          *Lockbox          `json:"lockbox,omitempty"`
	NetworkInjection *NetworkInjection `json:"networkInjection,omitempty"`
	HealthStatus     string            `json:"healthStatus,omitempty"`
	HealthDetail     *HealthDetail     `json:"healthDetail,omitempty"`
}

// Identity is a policy's managed identity. Azure's spec names the principal
// systemAssignedIdentityPrincipalId while Microsoft's scripts read
// principalId; Keyhold writes both.
type Identity struct {
	Type                              string `json:"type"` // SystemAssigned or None
	PrincipalID                       string `json:"principalId,omitempty"`
	SystemAssignedIdentityPrincipalID string `json:"systemAssignedIdentityPrincipalId,omitempty"`
	TenantID                          string `json:"tenantId,omitempty"`
}

// Policy is a decoded enterprise policy resource.
type Policy struct {
	Resource   *keyhold.Resource
	Properties Properties
	Identity   Identity
}

// Decode reads a stored policy resource.
func Decode(r *keyhold.Resource) (*Policy, error) {
	p := &Policy{Resource: r}
	if len(r.Properties) > 0 {
		if err := json.Unmarshal(r.Properties, &p.Properties); err != nil {
			return nil, keyhold.Internal("policy: stored properties", err)
		}
	}
	if len(r.Identity) > 0 {
		if err := json.Unmarshal(r.Identity, &p.Identity); err != nil {
			return nil, keyhold.Internal("policy: stored identity", err)
		}
	}
	return p, nil
}

// SystemIDFor returns the systemId of a policy in location with the given
// GUID: /regions/{location}/providers/Microsoft.PowerPlatform/enterprisePolicies/{guid}.
func SystemIDFor(location, guid string) string {
	return "/regions/" + strings.ToLower(location) + "/providers/" + ResourceType + "/" + guid
}

// PolicyIDOf returns the GUID at the end of a systemId (the environment's
// policyId), or "".
func PolicyIDOf(systemID string) string {
	i := strings.LastIndexByte(systemID, '/')
	if i < 0 {
		return ""
	}
	return systemID[i+1:]
}
