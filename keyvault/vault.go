// Package keyvault is Keyhold's built-in key vault: vaults as resource-manager
// resources (Microsoft.KeyVault/vaults) and the Azure Key Vault keys data plane
// at the vault URL. The customer's key lives here; private key material never
// leaves it.
package keyvault

import (
	"encoding/json"
	"net/netip"
	"strings"

	"github.com/keyhold/keyhold"
)

// ResourceType is the resource-manager type of a vault.
const ResourceType = "Microsoft.KeyVault/vaults"

// DeletedVaultType is the resource-manager type of a soft-deleted vault.
const DeletedVaultType = "Microsoft.KeyVault/locations/deletedVaults"

// SKU is a vault's pricing tier. Premium vaults may hold HSM keys.
type SKU struct {
	Family string `json:"family"` // always "A"
	Name   string `json:"name"`   // standard or premium
}

// Permissions lists what an access policy allows, per kind of object.
type Permissions struct {
	Keys         []string `json:"keys,omitempty"`
	Secrets      []string `json:"secrets,omitempty"`
	Certificates []string `json:"certificates,omitempty"`
	Storage      []string `json:"storage,omitempty"`
}

// AccessPolicy grants a principal (ObjectID, in TenantID) permissions on the
// vault's objects. Used only when RBAC authorization is off.
type AccessPolicy struct {
	TenantID      string      `json:"tenantId"`
	ObjectID      string      `json:"objectId"`
	ApplicationID string      `json:"applicationId,omitempty"`
	Permissions   Permissions `json:"permissions"`
}

// IPRule allows an address or CIDR range through the vault firewall.
type IPRule struct {
	Value string `json:"value"`
}

// VirtualNetworkRule allows a subnet through the vault firewall.
type VirtualNetworkRule struct {
	ID                               string `json:"id"`
	IgnoreMissingVnetServiceEndpoint bool   `json:"ignoreMissingVnetServiceEndpoint,omitempty"`
}

// NetworkRuleSet is the vault firewall.
type NetworkRuleSet struct {
	Bypass              string               `json:"bypass,omitempty"`        // AzureServices or None
	DefaultAction       string               `json:"defaultAction,omitempty"` // Allow or Deny
	IPRules             []IPRule             `json:"ipRules,omitempty"`
	VirtualNetworkRules []VirtualNetworkRule `json:"virtualNetworkRules,omitempty"`
}

// Properties are a vault's properties in ARM's JSON shape. Pointers mark
// fields whose absence means something different from their zero value.
type Properties struct {
	TenantID                     string          `json:"tenantId"`
	SKU                          SKU             `json:"sku"`
	AccessPolicies               []AccessPolicy  `json:"accessPolicies"`
	VaultURI                     string          `json:"vaultUri,omitempty"`
	EnabledForDeployment         *bool           `json:"enabledForDeployment,omitempty"`
	EnabledForDiskEncryption     *bool           `json:"enabledForDiskEncryption,omitempty"`
	EnabledForTemplateDeployment *bool           `json:"enabledForTemplateDeployment,omitempty"`
	EnableSoftDelete             *bool           `json:"enableSoftDelete,omitempty"`
	SoftDeleteRetentionInDays    *int            `json:"softDeleteRetentionInDays,omitempty"`
	EnableRbacAuthorization      *bool           `json:"enableRbacAuthorization,omitempty"`
	EnablePurgeProtection        *bool           `json:"enablePurgeProtection,omitempty"`
	CreateMode                   string          `json:"createMode,omitempty"`
	NetworkACLs                  *NetworkRuleSet `json:"networkAcls,omitempty"`
	PublicNetworkAccess          string          `json:"publicNetworkAccess,omitempty"` // Enabled or Disabled
	ProvisioningState            string          `json:"provisioningState,omitempty"`
	HSMConfigured                bool            `json:"-"`
}

// RBAC reports whether the data plane is authorized by role assignments
// rather than access policies.
func (p *Properties) RBAC() bool {
	return p.EnableRbacAuthorization != nil && *p.EnableRbacAuthorization
}

// PurgeProtected reports whether purge protection is on.
func (p *Properties) PurgeProtected() bool {
	return p.EnablePurgeProtection != nil && *p.EnablePurgeProtection
}

// RetentionDays returns the soft-delete retention period (default 90).
func (p *Properties) RetentionDays() int {
	if p.SoftDeleteRetentionInDays == nil {
		return 90
	}
	return *p.SoftDeleteRetentionInDays
}

// RecoveryLevel returns the DeletionRecoveryLevel that the vault's keys show.
func (p *Properties) RecoveryLevel() string {
	level := "Recoverable"
	if p.RetentionDays() < 90 {
		level = "CustomizedRecoverable"
	}
	if !p.PurgeProtected() {
		level += "+Purgeable"
	}
	return level
}

// ParseProperties decodes the stored properties of a vault resource.
func ParseProperties(r *keyhold.Resource) (*Properties, error) {
	var p Properties
	if err := json.Unmarshal(r.Properties, &p); err != nil {
		return nil, keyhold.Internal("keyvault: stored vault properties", err)
	}
	return &p, nil
}

// KeyPermissions returns the key permissions the vault's access policies give
// to any of objectIDs in tenantID, lower-cased; "all" expands to every one.
func (p *Properties) KeyPermissions(tenantID string, objectIDs []string) map[string]bool {
	perms := map[string]bool{}
	for _, ap := range p.AccessPolicies {
		if !strings.EqualFold(ap.TenantID, tenantID) || !containsFold(objectIDs, ap.ObjectID) {
			continue
		}
		for _, k := range ap.Permissions.Keys {
			k = strings.ToLower(k)
			if k == "all" {
				for _, all := range AllKeyPermissions {
					perms[strings.ToLower(all)] = true
				}
				continue
			}
			perms[k] = true
		}
	}
	return perms
}

// AllKeyPermissions lists the key permissions an access policy may grant.
var AllKeyPermissions = []string{
	"backup", "create", "decrypt", "delete", "encrypt", "get", "getrotationpolicy", "import", "list",
	"purge", "recover", "release", "restore", "rotate", "setrotationpolicy", "sign", "unwrapKey",
	"update", "verify", "wrapKey",
}

// NetworkAllows reports whether the vault firewall lets a request through:
// from clientIP, by a caller that is a trusted platform service (the managed
// identity of a Keyhold platform resource) or not. A vault closed to the
// public network is reachable only by trusted services, and only when the
// firewall's bypass names AzureServices.
func (p *Properties) NetworkAllows(clientIP netip.Addr, trustedService bool) bool {
	bypass := p.NetworkACLs != nil && strings.Contains(strings.ToLower(p.NetworkACLs.Bypass), "azureservices")
	if trustedService && bypass {
		return true
	}
	if strings.EqualFold(p.PublicNetworkAccess, "Disabled") {
		return false
	}
	if p.NetworkACLs == nil || !strings.EqualFold(p.NetworkACLs.DefaultAction, "Deny") {
		return true
	}
	for _, r := range p.NetworkACLs.IPRules {
		if pfx, err := netip.ParsePrefix(r.Value); err == nil && pfx.Contains(clientIP) {
			return true
		}
		if a, err := netip.ParseAddr(r.Value); err == nil && a == clientIP {
			return true
		}
	}
	return false
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
