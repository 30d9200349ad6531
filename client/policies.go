package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// APIVersionEnterprisePolicies is the api-version of the enterprise-policy
// calls, the one Microsoft's scripts and template use.
const APIVersionEnterprisePolicies = "2020-10-30"

// EnterprisePolicyType is the resource type of enterprise policies.
const EnterprisePolicyType = "Microsoft.PowerPlatform/enterprisePolicies"

// EnterprisePolicy is a Microsoft.PowerPlatform/enterprisePolicies resource.
type EnterprisePolicy struct {
	ID         string                     `json:"id,omitempty"`
	Name       string                     `json:"name,omitempty"`
	Type       string                     `json:"type,omitempty"`
	Location   string                     `json:"location"`
	Kind       string                     `json:"kind"`
	Tags       map[string]string          `json:"tags,omitempty"`
	Identity   *EnterprisePolicyIdentity  `json:"identity,omitempty"`
	Properties EnterprisePolicyProperties `json:"properties"`
	ETag       string                     `json:"etag,omitempty"`
}

// EnterprisePolicyIdentity is a policy's managed identity; the server fills
// in the principal and tenant.
type EnterprisePolicyIdentity struct {
	Type                              string `json:"type"` // SystemAssigned or None
	PrincipalID                       string `json:"principalId,omitempty"`
	SystemAssignedIdentityPrincipalID string `json:"systemAssignedIdentityPrincipalId,omitempty"`
	TenantID                          string `json:"tenantId,omitempty"`
}

// EnterprisePolicyProperties are a policy's properties. SystemID,
// HealthStatus and HealthDetail are read-only.
type EnterprisePolicyProperties struct {
	SystemID         string                  `json:"systemId,omitempty"`
	Encryption       *PolicyEncryption       `json:"encryption,omitempty"`
	Lockbox          *PolicyLockbox          `json:"lockbox,omitempty"`
	NetworkInjection *PolicyNetworkInjection `json:"networkInjection,omitempty"`
	HealthStatus     string                  `json:"healthStatus,omitempty"`
	HealthDetail     *PolicyHealthDetail     `json:"healthDetail,omitempty"`
}

// PolicyEncryption points an Encryption policy at its key.
type PolicyEncryption struct {
	State    string          `json:"state,omitempty"` // Enabled, Disabled, NotConfigured
	KeyVault *PolicyKeyVault `json:"keyVault,omitempty"`
}

// PolicyKeyVault names the vault (by resource id) and the key.
type PolicyKeyVault struct {
	ID  string    `json:"id"`
	Key PolicyKey `json:"key"`
}

// PolicyKey names a key; an empty Version follows the newest version.
type PolicyKey struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// PolicyLockbox is the lockbox block of a policy.
type PolicyLockbox struct {
	State string `json:"state,omitempty"`
}

// PolicyNetworkInjection is the network-injection block of a policy.
type PolicyNetworkInjection struct {
	VirtualNetworks []PolicyVirtualNetwork `json:"virtualNetworks,omitempty"`
}

// PolicyVirtualNetwork is one network of a NetworkInjection policy.
type PolicyVirtualNetwork struct {
	ID     string `json:"id"`
	Subnet struct {
		Name string `json:"name"`
	} `json:"subnet"`
}

// PolicyHealthDetail is Keyhold's account of a policy's last health check.
type PolicyHealthDetail struct {
	Reason    string    `json:"reason,omitempty"`
	CheckedAt time.Time `json:"checkedAt,omitzero"`
	Definite  bool      `json:"definite,omitempty"`
}

// PrincipalID returns the id of the policy's managed identity, or "".
func (p *EnterprisePolicy) PrincipalID() string {
	if p.Identity == nil {
		return ""
	}
	if p.Identity.PrincipalID != "" {
		return p.Identity.PrincipalID
	}
	return p.Identity.SystemAssignedIdentityPrincipalID
}

// ResourceGroup returns the resource group in the policy's id.
func (p *EnterprisePolicy) ResourceGroup() string {
	segs := strings.Split(strings.Trim(p.ID, "/"), "/")
	for i := 0; i+1 < len(segs); i++ {
		if strings.EqualFold(segs[i], "resourceGroups") {
			return segs[i+1]
		}
	}
	return ""
}

// PolicyID returns the resource id of the policy name in a resource group.
func PolicyID(sub, group, name string) string {
	return "/subscriptions/" + sub + "/resourceGroups/" + group + "/providers/" + EnterprisePolicyType + "/" + name
}

// IsPolicyID reports whether id looks like an enterprise policy's resource id.
func IsPolicyID(id string) bool {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	return len(segs) == 8 && strings.EqualFold(segs[0], "subscriptions") && strings.EqualFold(segs[2], "resourceGroups") &&
		strings.EqualFold(segs[4], "providers") && strings.EqualFold(segs[5]+"/"+segs[6], EnterprisePolicyType) && segs[7] != ""
}

func checkPolicyID(id string) error {
	if !IsPolicyID(id) {
		return fmt.Errorf("client: %q is not an enterprise policy id: /subscriptions/{id}/resourceGroups/{group}/providers/%s/{name}", id, EnterprisePolicyType)
	}
	return nil
}

// PutPolicy creates or replaces the policy with the resource id id. The
// server answers synchronously.
func (c *Client) PutPolicy(ctx context.Context, id string, p EnterprisePolicy) (*EnterprisePolicy, error) {
	if err := checkPolicyID(id); err != nil {
		return nil, err
	}
	var out EnterprisePolicy
	_, err := c.Do(ctx, http.MethodPut, AudienceARM, escapeID(id)+q(APIVersionEnterprisePolicies), p, &out)
	return &out, err
}

// GetPolicy returns the policy with the resource id id; a missing one is an
// *Error with status 404.
func (c *Client) GetPolicy(ctx context.Context, id string) (*EnterprisePolicy, error) {
	if err := checkPolicyID(id); err != nil {
		return nil, err
	}
	var out EnterprisePolicy
	_, err := c.Do(ctx, http.MethodGet, AudienceARM, escapeID(id)+q(APIVersionEnterprisePolicies), nil, &out)
	return &out, err
}

// ListPolicies lists the policies of a resource group, or of the whole
// subscription when group is "".
func (c *Client) ListPolicies(ctx context.Context, sub, group string) ([]EnterprisePolicy, error) {
	path := pathf("subscriptions/%s/providers/Microsoft.PowerPlatform/enterprisePolicies", sub)
	if group != "" {
		path = pathf("subscriptions/%s/resourceGroups/%s/providers/Microsoft.PowerPlatform/enterprisePolicies", sub, group)
	}
	return List[EnterprisePolicy](ctx, c, AudienceARM, path+q(APIVersionEnterprisePolicies))
}

// ErrAmbiguousPolicy is returned by FindPolicy when several resource groups
// have a policy of the name.
var ErrAmbiguousPolicy = errors.New("client: several resource groups have an enterprise policy of that name")

// FindPolicy returns the policy name of the subscription, searching every
// resource group. It returns an *Error with status 404 when there is none,
// and an error wrapping ErrAmbiguousPolicy that names the groups when there
// are several.
func (c *Client) FindPolicy(ctx context.Context, sub, name string) (*EnterprisePolicy, error) {
	ps, err := c.ListPolicies(ctx, sub, "")
	if err != nil {
		return nil, err
	}
	found := only(ps, func(p *EnterprisePolicy) string { return p.Name }, name)
	switch len(found) {
	case 0:
		return nil, notFound(fmt.Sprintf("there is no enterprise policy %s in subscription %s", name, sub))
	case 1:
		return &found[0], nil
	}
	var groups []string
	for _, p := range found {
		groups = append(groups, p.ResourceGroup())
	}
	return nil, fmt.Errorf("%w: %s is in %s; name one with --resource-group", ErrAmbiguousPolicy, name, strings.Join(groups, ", "))
}

// DeletePolicy deletes the policy with the resource id id. A policy that
// environments are linked to is refused with status 409; one that does not
// exist is not an error.
func (c *Client) DeletePolicy(ctx context.Context, id string) error {
	if err := checkPolicyID(id); err != nil {
		return err
	}
	_, err := c.Do(ctx, http.MethodDelete, AudienceARM, escapeID(id)+q(APIVersionEnterprisePolicies), nil, nil)
	return err
}

// PolicyTemplate is the enterprise-policy template of "Manage your
// customer-managed encryption key", its placeholders turned into the
// parameters enterprisePolicyName, location, keyVaultId, keyName and
// keyVersion (empty: follow the newest version). Deploy it with
// CreateDeployment and PolicyTemplateParameters, as the documentation's
// custom deployment does; its output principalId is the policy's identity.
const PolicyTemplate = `{
  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
  "contentVersion": "1.0.0.0",
  "parameters": {
    "enterprisePolicyName": {"type": "string"},
    "location": {"type": "string"},
    "keyVaultId": {"type": "string"},
    "keyName": {"type": "string"},
    "keyVersion": {"type": "string", "defaultValue": ""}
  },
  "resources": [
    {
      "type": "Microsoft.PowerPlatform/enterprisePolicies",
      "apiVersion": "2020-10-30",
      "name": "[parameters('enterprisePolicyName')]",
      "location": "[parameters('location')]",
      "kind": "Encryption",
      "identity": {"type": "SystemAssigned"},
      "properties": {
        "lockbox": null,
        "encryption": {
          "state": "Enabled",
          "keyVault": {
            "id": "[parameters('keyVaultId')]",
            "key": {"name": "[parameters('keyName')]", "version": "[if(empty(parameters('keyVersion')), null(), parameters('keyVersion'))]"}
          }
        },
        "networkInjection": null
      }
    }
  ],
  "outputs": {
    "principalId": {"type": "string", "value": "[reference(parameters('enterprisePolicyName'), '2020-10-30', 'Full').identity.principalId]"}
  }
}`

// PolicyTemplateParameters returns the parameters of PolicyTemplate for a
// policy name in location (a Power Platform region) that uses key keyName of
// the vault with resource id vaultID; an empty keyVersion follows the newest
// version.
func PolicyTemplateParameters(name, location, vaultID, keyName, keyVersion string) map[string]any {
	return map[string]any{"enterprisePolicyName": name, "location": location, "keyVaultId": vaultID, "keyName": keyName, "keyVersion": keyVersion}
}
