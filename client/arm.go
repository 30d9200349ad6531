package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Subscription is an ARM subscription.
type Subscription struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscriptionId"`
	TenantID       string `json:"tenantId,omitempty"`
	DisplayName    string `json:"displayName"`
	State          string `json:"state"`
}

// ResourceGroup is an ARM resource group.
type ResourceGroup struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name"`
	Type       string            `json:"type,omitempty"`
	Location   string            `json:"location"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties struct {
		ProvisioningState string `json:"provisioningState,omitempty"`
	} `json:"properties"`
}

// Provider is a resource provider and the subscription's registration of it.
type Provider struct {
	ID                 string                 `json:"id,omitempty"`
	Namespace          string                 `json:"namespace"`
	RegistrationState  string                 `json:"registrationState"`
	RegistrationPolicy string                 `json:"registrationPolicy,omitempty"`
	ResourceTypes      []ProviderResourceType `json:"resourceTypes,omitempty"`
}

// ProviderResourceType is a resource type a provider offers.
type ProviderResourceType struct {
	ResourceType string   `json:"resourceType"`
	Locations    []string `json:"locations,omitempty"`
	APIVersions  []string `json:"apiVersions,omitempty"`
}

// Feature is a preview feature and the subscription's registration of it.
type Feature struct {
	ID         string `json:"id,omitempty"`
	Name       string `json:"name"` // Namespace/FeatureName
	Type       string `json:"type,omitempty"`
	Properties struct {
		State string `json:"state"`
	} `json:"properties"`
}

// RoleDefinition is an ARM role definition.
type RoleDefinition struct {
	ID         string `json:"id"`
	Name       string `json:"name"` // the role's GUID
	Type       string `json:"type,omitempty"`
	Properties struct {
		RoleName         string       `json:"roleName"`
		Description      string       `json:"description,omitempty"`
		Type             string       `json:"type,omitempty"` // BuiltInRole or CustomRole
		Permissions      []Permission `json:"permissions,omitempty"`
		AssignableScopes []string     `json:"assignableScopes,omitempty"`
	} `json:"properties"`
}

// Permission is one permission block of a role definition.
type Permission struct {
	Actions        []string `json:"actions,omitempty"`
	NotActions     []string `json:"notActions,omitempty"`
	DataActions    []string `json:"dataActions,omitempty"`
	NotDataActions []string `json:"notDataActions,omitempty"`
}

// RoleAssignment is an ARM role assignment.
type RoleAssignment struct {
	ID         string                   `json:"id,omitempty"`
	Name       string                   `json:"name,omitempty"`
	Type       string                   `json:"type,omitempty"`
	Properties RoleAssignmentProperties `json:"properties"`
}

// RoleAssignmentProperties are the properties of a RoleAssignment.
type RoleAssignmentProperties struct {
	RoleDefinitionID string `json:"roleDefinitionId"`
	PrincipalID      string `json:"principalId"`
	PrincipalType    string `json:"principalType,omitempty"`
	Scope            string `json:"scope,omitempty"`
	Description      string `json:"description,omitempty"`
	CreatedOn        string `json:"createdOn,omitempty"`
	CreatedBy        string `json:"createdBy,omitempty"`
}

func q(apiVersion string) string { return "?api-version=" + apiVersion }

// ListSubscriptions lists the subscriptions the caller can see.
func (c *Client) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	return List[Subscription](ctx, c, AudienceARM, "subscriptions"+q(APIVersionSubscriptions))
}

// CreateResourceGroup creates or updates the resource group name.
func (c *Client) CreateResourceGroup(ctx context.Context, sub, name, location string, tags map[string]string) (*ResourceGroup, error) {
	in := map[string]any{"location": location}
	if len(tags) > 0 {
		in["tags"] = tags
	}
	var out ResourceGroup
	_, err := c.Do(ctx, http.MethodPut, AudienceARM, pathf("subscriptions/%s/resourcegroups/%s", sub, name)+q(APIVersionResources), in, &out)
	return &out, err
}

// GetResourceGroup returns the resource group name; a missing one is an
// *Error with status 404.
func (c *Client) GetResourceGroup(ctx context.Context, sub, name string) (*ResourceGroup, error) {
	var out ResourceGroup
	_, err := c.Do(ctx, http.MethodGet, AudienceARM, pathf("subscriptions/%s/resourcegroups/%s", sub, name)+q(APIVersionResources), nil, &out)
	return &out, err
}

// ListResourceGroups lists the subscription's resource groups.
func (c *Client) ListResourceGroups(ctx context.Context, sub string) ([]ResourceGroup, error) {
	return List[ResourceGroup](ctx, c, AudienceARM, pathf("subscriptions/%s/resourcegroups", sub)+q(APIVersionResources))
}

// DeleteResourceGroup deletes the resource group name and waits until it is
// gone, calling tick while it waits.
func (c *Client) DeleteResourceGroup(ctx context.Context, sub, name string, tick func()) error {
	resp, err := c.Do(ctx, http.MethodDelete, AudienceARM, pathf("subscriptions/%s/resourcegroups/%s", sub, name)+q(APIVersionResources), nil, nil)
	if err != nil {
		return err
	}
	if resp.Header.Get("Location") != "" || resp.Header.Get("Azure-AsyncOperation") != "" {
		return c.WaitLocation(ctx, AudienceARM, resp, tick)
	}
	if resp.StatusCode != http.StatusAccepted {
		return nil
	}
	// Accepted without a URL to poll: the group is gone when GET says so.
	return c.Poll(ctx, tick, func(ctx context.Context) (bool, error) {
		_, err := c.GetResourceGroup(ctx, sub, name)
		if IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
}

// ListProviders lists the resource providers and their registration states.
func (c *Client) ListProviders(ctx context.Context, sub string) ([]Provider, error) {
	return List[Provider](ctx, c, AudienceARM, pathf("subscriptions/%s/providers", sub)+q(APIVersionResources))
}

// GetProvider returns the resource provider ns.
func (c *Client) GetProvider(ctx context.Context, sub, ns string) (*Provider, error) {
	var out Provider
	_, err := c.Do(ctx, http.MethodGet, AudienceARM, pathf("subscriptions/%s/providers/%s", sub, ns)+q(APIVersionResources), nil, &out)
	return &out, err
}

// RegisterProvider registers the subscription for the provider ns. With
// wait, it polls until the provider is Registered, calling tick meanwhile.
func (c *Client) RegisterProvider(ctx context.Context, sub, ns string, wait bool, tick func()) (*Provider, error) {
	return c.providerAction(ctx, sub, ns, "register", "Registered", wait, tick)
}

// UnregisterProvider unregisters the subscription from the provider ns. With
// wait, it polls until the provider is Unregistered.
func (c *Client) UnregisterProvider(ctx context.Context, sub, ns string, wait bool, tick func()) (*Provider, error) {
	return c.providerAction(ctx, sub, ns, "unregister", "Unregistered", wait, tick)
}

func (c *Client) providerAction(ctx context.Context, sub, ns, action, final string, wait bool, tick func()) (*Provider, error) {
	var p Provider
	if _, err := c.Do(ctx, http.MethodPost, AudienceARM, pathf("subscriptions/%s/providers/%s/", sub, ns)+action+q(APIVersionResources), nil, &p); err != nil {
		return nil, err
	}
	if !wait {
		return &p, nil
	}
	err := c.Poll(ctx, tick, func(ctx context.Context) (bool, error) {
		if strings.EqualFold(p.RegistrationState, final) {
			return true, nil
		}
		got, err := c.GetProvider(ctx, sub, ns)
		if err != nil {
			return false, err
		}
		p = *got
		return strings.EqualFold(p.RegistrationState, final), nil
	})
	return &p, err
}

func featurePath(sub, ns, name string) string {
	return pathf("subscriptions/%s/providers/Microsoft.Features/providers/%s/features/%s", sub, ns, name)
}

// RegisterFeature registers the preview feature ns/name, with the call the
// CMK documentation makes: POST .../features/{name}/register.
func (c *Client) RegisterFeature(ctx context.Context, sub, ns, name string) (*Feature, error) {
	var out Feature
	_, err := c.Do(ctx, http.MethodPost, AudienceARM, featurePath(sub, ns, name)+"/register"+q(APIVersionFeatures), nil, &out)
	return &out, err
}

// GetFeature returns the preview feature ns/name.
func (c *Client) GetFeature(ctx context.Context, sub, ns, name string) (*Feature, error) {
	var out Feature
	_, err := c.Do(ctx, http.MethodGet, AudienceARM, featurePath(sub, ns, name)+q(APIVersionFeatures), nil, &out)
	return &out, err
}

// ListFeatures lists the subscription's preview features, of the namespace
// ns or of all namespaces if ns is empty.
func (c *Client) ListFeatures(ctx context.Context, sub, ns string) ([]Feature, error) {
	p := pathf("subscriptions/%s/providers/Microsoft.Features/features", sub)
	if ns != "" {
		p = pathf("subscriptions/%s/providers/Microsoft.Features/providers/%s/features", sub, ns)
	}
	return List[Feature](ctx, c, AudienceARM, p+q(APIVersionFeatures))
}

// ListRoleDefinitions lists the role definitions usable at scope, only the
// one named roleName (case-insensitive) if it is not empty.
func (c *Client) ListRoleDefinitions(ctx context.Context, scope, roleName string) ([]RoleDefinition, error) {
	p := scopePath(scope) + "providers/Microsoft.Authorization/roleDefinitions" + q(APIVersionAuthorization)
	if roleName != "" {
		p += "&$filter=" + url.QueryEscape("roleName eq '"+strings.ReplaceAll(roleName, "'", "''")+"'")
	}
	defs, err := List[RoleDefinition](ctx, c, AudienceARM, p)
	if err != nil || roleName == "" {
		return defs, err
	}
	return only(defs, func(d *RoleDefinition) string { return d.Properties.RoleName }, roleName), nil
}

// only keeps the items whose field, as of reads it, is want in any case:
// servers may ignore $filter, and the answer must hold only what it asked.
func only[T any](items []T, of func(*T) string, want string) []T {
	var out []T
	for i := range items {
		if strings.EqualFold(of(&items[i]), want) {
			out = append(out, items[i])
		}
	}
	return out
}

// CreateRoleAssignment assigns the role definition roleDefinitionID (a full
// id) to principalID at scope, under a new random name.
func (c *Client) CreateRoleAssignment(ctx context.Context, scope, roleDefinitionID, principalID, principalType string) (*RoleAssignment, error) {
	in := RoleAssignment{Properties: RoleAssignmentProperties{RoleDefinitionID: roleDefinitionID, PrincipalID: principalID, PrincipalType: principalType}}
	var out RoleAssignment
	p := scopePath(scope) + "providers/Microsoft.Authorization/roleAssignments/" + NewUUID() + q(APIVersionAuthorization)
	_, err := c.Do(ctx, http.MethodPut, AudienceARM, p, in, &out)
	return &out, err
}

// ListRoleAssignments lists the role assignments at scope and above and
// below it, only principalID's if it is not empty.
func (c *Client) ListRoleAssignments(ctx context.Context, scope, principalID string) ([]RoleAssignment, error) {
	p := scopePath(scope) + "providers/Microsoft.Authorization/roleAssignments" + q(APIVersionAuthorization)
	if principalID != "" {
		p += "&$filter=" + url.QueryEscape("principalId eq '"+principalID+"'")
	}
	as, err := List[RoleAssignment](ctx, c, AudienceARM, p)
	if err != nil || principalID == "" {
		return as, err
	}
	return only(as, func(a *RoleAssignment) string { return a.Properties.PrincipalID }, principalID), nil
}

// DeleteRoleAssignment deletes the role assignment with the full id.
func (c *Client) DeleteRoleAssignment(ctx context.Context, id string) error {
	if !strings.Contains(strings.ToLower(id), "/providers/microsoft.authorization/roleassignments/") {
		return errors.New("client: a role assignment id looks like {scope}/providers/Microsoft.Authorization/roleAssignments/{name}")
	}
	_, err := c.Do(ctx, http.MethodDelete, AudienceARM, escapeID(id)+q(APIVersionAuthorization), nil, nil)
	return err
}

// scopePath turns a scope ("/", "/subscriptions/s/...") into a relative path
// ending in a slash.
func scopePath(scope string) string {
	s := escapeID(scope)
	if s != "" && !strings.HasSuffix(s, "/") {
		s += "/"
	}
	return s
}

// escapeID escapes each segment of a resource id and drops its leading slash.
func escapeID(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}
