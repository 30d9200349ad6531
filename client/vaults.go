package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// APIVersionKeyVault is the api-version of the vault calls.
const APIVersionKeyVault = "2023-07-01"

// Vault is a key vault, as the resource manager shows it.
type Vault struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties VaultProperties   `json:"properties"`
}

// VaultSKU is a vault's pricing tier: family A, name standard or premium.
type VaultSKU struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

// VaultProperties are a vault's properties. Pointers are left out of a
// request when nil, so that the server's default applies.
type VaultProperties struct {
	TenantID                  string              `json:"tenantId"`
	SKU                       VaultSKU            `json:"sku"`
	AccessPolicies            []VaultAccessPolicy `json:"accessPolicies"`
	VaultURI                  string              `json:"vaultUri,omitempty"`
	EnableSoftDelete          *bool               `json:"enableSoftDelete,omitempty"`
	SoftDeleteRetentionInDays *int                `json:"softDeleteRetentionInDays,omitempty"`
	EnablePurgeProtection     *bool               `json:"enablePurgeProtection,omitempty"`
	EnableRbacAuthorization   *bool               `json:"enableRbacAuthorization,omitempty"`
	PublicNetworkAccess       string              `json:"publicNetworkAccess,omitempty"`
	NetworkACLs               *VaultNetworkACLs   `json:"networkAcls,omitempty"`
	CreateMode                string              `json:"createMode,omitempty"`
	ProvisioningState         string              `json:"provisioningState,omitempty"`
}

// VaultAccessPolicy grants a principal permissions on a vault's objects.
type VaultAccessPolicy struct {
	TenantID      string           `json:"tenantId"`
	ObjectID      string           `json:"objectId"`
	ApplicationID string           `json:"applicationId,omitempty"`
	Permissions   VaultPermissions `json:"permissions"`
}

// VaultPermissions lists what an access policy allows, per kind of object.
type VaultPermissions struct {
	Keys         []string `json:"keys,omitempty"`
	Secrets      []string `json:"secrets,omitempty"`
	Certificates []string `json:"certificates,omitempty"`
	Storage      []string `json:"storage,omitempty"`
}

// VaultNetworkACLs is a vault's firewall.
type VaultNetworkACLs struct {
	Bypass              string                    `json:"bypass,omitempty"`
	DefaultAction       string                    `json:"defaultAction,omitempty"`
	IPRules             []VaultIPRule             `json:"ipRules,omitempty"`
	VirtualNetworkRules []VaultVirtualNetworkRule `json:"virtualNetworkRules,omitempty"`
}

// VaultVirtualNetworkRule lets a subnet through the firewall.
type VaultVirtualNetworkRule struct {
	ID                               string `json:"id"`
	IgnoreMissingVnetServiceEndpoint bool   `json:"ignoreMissingVnetServiceEndpoint,omitempty"`
}

// VaultIPRule lets an address or CIDR range through the firewall.
type VaultIPRule struct {
	Value string `json:"value"`
}

// DeletedVault is a soft-deleted vault, recoverable until ScheduledPurgeDate.
type DeletedVault struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type,omitempty"`
	Properties struct {
		VaultID                string            `json:"vaultId"`
		Location               string            `json:"location"`
		DeletionDate           time.Time         `json:"deletionDate"`
		ScheduledPurgeDate     time.Time         `json:"scheduledPurgeDate"`
		Tags                   map[string]string `json:"tags,omitempty"`
		PurgeProtectionEnabled bool              `json:"purgeProtectionEnabled"`
	} `json:"properties"`
}

// ResourceGroup returns the resource group the vault was deleted from.
func (d *DeletedVault) ResourceGroup() string {
	segs := strings.Split(strings.Trim(d.Properties.VaultID, "/"), "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "resourceGroups") {
			return segs[i+1]
		}
	}
	return ""
}

// NameAvailability is the answer of CheckVaultName.
type NameAvailability struct {
	NameAvailable bool   `json:"nameAvailable"`
	Reason        string `json:"reason,omitempty"`
	Message       string `json:"message,omitempty"`
}

// Access-policy update kinds for UpdateAccessPolicies.
const (
	AccessPolicyAdd     = "add"     // merge the given permissions into each principal's policy
	AccessPolicyRemove  = "remove"  // take the given permissions away
	AccessPolicyReplace = "replace" // set the vault's whole list
)

func vaultPath(sub, group, name string) string {
	return pathf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s", sub, group, name)
}

// CreateVault creates the vault name in a resource group, or updates it.
func (c *Client) CreateVault(ctx context.Context, sub, group, name string, v Vault) (*Vault, error) {
	if v.Properties.AccessPolicies == nil {
		v.Properties.AccessPolicies = []VaultAccessPolicy{}
	}
	var out Vault
	_, err := c.Do(ctx, http.MethodPut, AudienceARM, vaultPath(sub, group, name)+q(APIVersionKeyVault), v, &out)
	return &out, err
}

// GetVault returns the vault name; a missing one is an *Error with status 404.
func (c *Client) GetVault(ctx context.Context, sub, group, name string) (*Vault, error) {
	var out Vault
	_, err := c.Do(ctx, http.MethodGet, AudienceARM, vaultPath(sub, group, name)+q(APIVersionKeyVault), nil, &out)
	return &out, err
}

// FindVault returns the vault name wherever it is in the subscription; a
// missing one is an *Error with status 404.
func (c *Client) FindVault(ctx context.Context, sub, name string) (*Vault, error) {
	vs, err := c.ListVaults(ctx, sub, "")
	return findNamed(vs, err, func(v *Vault) string { return v.Name }, name, fmt.Sprintf("there is no vault %s in subscription %s", name, sub))
}

// findNamed returns the first of items (listed with err) whose name, as
// nameOf says, is name in any case; with none it is a 404 *Error saying
// missing. err comes back as it is.
func findNamed[T any](items []T, err error, nameOf func(*T) string, name, missing string) (*T, error) {
	if err != nil {
		return nil, err
	}
	if found := only(items, nameOf, name); len(found) > 0 {
		return &found[0], nil
	}
	return nil, notFound(missing)
}

// notFound is the 404 *Error of a name looked for in a list, saying missing.
func notFound(missing string) *Error {
	return &Error{StatusCode: http.StatusNotFound, Code: "ResourceNotFound", Message: missing}
}

// ListVaults lists the vaults of a resource group, or of the whole
// subscription if group is empty.
func (c *Client) ListVaults(ctx context.Context, sub, group string) ([]Vault, error) {
	p := pathf("subscriptions/%s/providers/Microsoft.KeyVault/vaults", sub)
	if group != "" {
		p = pathf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults", sub, group)
	}
	return List[Vault](ctx, c, AudienceARM, p+q(APIVersionKeyVault))
}

// DeleteVault soft-deletes the vault name: it can be recovered or, without
// purge protection, purged until its scheduled purge date.
func (c *Client) DeleteVault(ctx context.Context, sub, group, name string) error {
	_, err := c.Do(ctx, http.MethodDelete, AudienceARM, vaultPath(sub, group, name)+q(APIVersionKeyVault), nil, nil)
	return err
}

// ListDeletedVaults lists the subscription's soft-deleted vaults.
func (c *Client) ListDeletedVaults(ctx context.Context, sub string) ([]DeletedVault, error) {
	return List[DeletedVault](ctx, c, AudienceARM, pathf("subscriptions/%s/providers/Microsoft.KeyVault/deletedVaults", sub)+q(APIVersionKeyVault))
}

// GetDeletedVault returns the soft-deleted vault name in location.
func (c *Client) GetDeletedVault(ctx context.Context, sub, location, name string) (*DeletedVault, error) {
	var out DeletedVault
	_, err := c.Do(ctx, http.MethodGet, AudienceARM, pathf("subscriptions/%s/providers/Microsoft.KeyVault/locations/%s/deletedVaults/%s", sub, location, name)+q(APIVersionKeyVault), nil, &out)
	return &out, err
}

// FindDeletedVault returns the subscription's soft-deleted vault name; a
// missing one is an *Error with status 404.
func (c *Client) FindDeletedVault(ctx context.Context, sub, name string) (*DeletedVault, error) {
	ds, err := c.ListDeletedVaults(ctx, sub)
	return findNamed(ds, err, func(d *DeletedVault) string { return d.Name }, name, fmt.Sprintf("there is no deleted vault %s in subscription %s", name, sub))
}

// RecoverVault recovers the soft-deleted vault name, in the resource group
// and location it was deleted from, with its properties, access policies
// and keys. tenantID is the caller's tenant.
func (c *Client) RecoverVault(ctx context.Context, sub, tenantID, name string) (*Vault, error) {
	d, err := c.FindDeletedVault(ctx, sub, name)
	if err != nil {
		return nil, err
	}
	group := d.ResourceGroup()
	if group == "" {
		return nil, fmt.Errorf("client: the deleted vault %s names no resource group (%s)", name, d.Properties.VaultID)
	}
	v := Vault{Location: d.Properties.Location, Properties: VaultProperties{
		TenantID: tenantID, SKU: VaultSKU{Family: "A", Name: "standard"}, CreateMode: "recover",
	}}
	return c.CreateVault(ctx, sub, group, d.Name, v)
}

// PurgeVault removes the soft-deleted vault name in location and its keys
// for good. A vault under purge protection cannot be purged: it waits for
// its scheduled purge date.
func (c *Client) PurgeVault(ctx context.Context, sub, location, name string, tick func()) error {
	resp, err := c.Do(ctx, http.MethodPost, AudienceARM, pathf("subscriptions/%s/providers/Microsoft.KeyVault/locations/%s/deletedVaults/%s/purge", sub, location, name)+q(APIVersionKeyVault), nil, nil)
	if err != nil {
		return err
	}
	return c.WaitLocation(ctx, AudienceARM, resp, tick)
}

// UpdateAccessPolicies changes the access policies of the vault name: kind
// is AccessPolicyAdd, AccessPolicyRemove or AccessPolicyReplace.
func (c *Client) UpdateAccessPolicies(ctx context.Context, sub, group, name, kind string, policies []VaultAccessPolicy) error {
	switch kind {
	case AccessPolicyAdd, AccessPolicyRemove, AccessPolicyReplace:
	default:
		return errors.New("client: an access-policy update is add, remove or replace")
	}
	in := map[string]any{"properties": map[string]any{"accessPolicies": policies}}
	_, err := c.Do(ctx, http.MethodPut, AudienceARM, vaultPath(sub, group, name)+"/accessPolicies/"+kind+q(APIVersionKeyVault), in, nil)
	return err
}

// CheckVaultName asks whether name is free for a new vault.
func (c *Client) CheckVaultName(ctx context.Context, sub, name string) (*NameAvailability, error) {
	var out NameAvailability
	in := map[string]string{"name": name, "type": "Microsoft.KeyVault/vaults"}
	_, err := c.Do(ctx, http.MethodPost, AudienceARM, pathf("subscriptions/%s/providers/Microsoft.KeyVault/checkNameAvailability", sub)+q(APIVersionKeyVault), in, &out)
	return &out, err
}

// VaultPatch changes some of a vault's properties; empty and nil fields
// stay as they are. NetworkACLs replaces the whole firewall.
type VaultPatch struct {
	Tags                  map[string]string
	PublicNetworkAccess   string // Enabled or Disabled
	NetworkACLs           *VaultNetworkACLs
	EnablePurgeProtection *bool
}

// UpdateVault applies p to the vault name with a PATCH, which leaves the
// properties p does not name (access policies among them) as they are. A
// refused change is an *Error with the resource manager's status and message.
func (c *Client) UpdateVault(ctx context.Context, sub, group, name string, p VaultPatch) (*Vault, error) {
	props := map[string]any{}
	if p.PublicNetworkAccess != "" {
		props["publicNetworkAccess"] = p.PublicNetworkAccess
	}
	if p.NetworkACLs != nil {
		props["networkAcls"] = p.NetworkACLs
	}
	if p.EnablePurgeProtection != nil {
		props["enablePurgeProtection"] = *p.EnablePurgeProtection
	}
	in := map[string]any{"properties": props}
	if p.Tags != nil {
		in["tags"] = p.Tags
	}
	var out Vault
	_, err := c.Do(ctx, http.MethodPatch, AudienceARM, vaultPath(sub, group, name)+q(APIVersionKeyVault), in, &out)
	return &out, err
}
