package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// User is a directory user, as the Graph-like API shows it.
type User struct {
	ID                string `json:"id"`
	DisplayName       string `json:"displayName"`
	UserPrincipalName string `json:"userPrincipalName"`
	AccountEnabled    *bool  `json:"accountEnabled,omitempty"`
}

// ServicePrincipal is a directory service principal or managed identity.
type ServicePrincipal struct {
	ID                   string `json:"id"`
	AppID                string `json:"appId"`
	DisplayName          string `json:"displayName"`
	ServicePrincipalType string `json:"servicePrincipalType,omitempty"` // Application or ManagedIdentity
	AccountEnabled       *bool  `json:"accountEnabled,omitempty"`
}

// PasswordCredential is a client secret of a service principal. SecretText
// is only set in the answer to AddPassword; it is shown once.
type PasswordCredential struct {
	KeyID         string     `json:"keyId"`
	DisplayName   string     `json:"displayName,omitempty"`
	Hint          string     `json:"hint,omitempty"`
	SecretText    string     `json:"secretText,omitempty"`
	StartDateTime *time.Time `json:"startDateTime,omitempty"`
	EndDateTime   *time.Time `json:"endDateTime,omitempty"`
}

// DirectoryObject is a member of a directory role.
type DirectoryObject struct {
	ODataType         string `json:"@odata.type,omitempty"`
	ID                string `json:"id"`
	DisplayName       string `json:"displayName,omitempty"`
	UserPrincipalName string `json:"userPrincipalName,omitempty"`
}

// CreateUser creates an enabled user with a password.
func (c *Client) CreateUser(ctx context.Context, upn, displayName string, password keyhold.Secret) (*User, error) {
	in := map[string]any{
		"accountEnabled":    true,
		"displayName":       displayName,
		"userPrincipalName": upn,
		"mailNickname":      strings.SplitN(upn, "@", 2)[0],
		"passwordProfile":   map[string]any{"password": string(password.Reveal()), "forceChangePasswordNextSignIn": false},
	}
	var out User
	_, err := c.Do(ctx, http.MethodPost, AudienceGraph, "v1.0/users", in, &out)
	return &out, err
}

// ListUsers lists the tenant's users.
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	return List[User](ctx, c, AudienceGraph, "v1.0/users")
}

// GetUser returns the user with the object id or user principal name
// idOrUPN; a missing one is an *Error with status 404.
func (c *Client) GetUser(ctx context.Context, idOrUPN string) (*User, error) {
	var out User
	_, err := c.Do(ctx, http.MethodGet, AudienceGraph, pathf("v1.0/users/%s", idOrUPN), nil, &out)
	return &out, err
}

// DeleteUser deletes the user with the object id or user principal name.
func (c *Client) DeleteUser(ctx context.Context, idOrUPN string) error {
	_, err := c.Do(ctx, http.MethodDelete, AudienceGraph, pathf("v1.0/users/%s", idOrUPN), nil, nil)
	return err
}

// SetUserPassword replaces the password of the user idOrUPN.
func (c *Client) SetUserPassword(ctx context.Context, idOrUPN string, password keyhold.Secret) error {
	in := map[string]any{"passwordProfile": map[string]any{"password": string(password.Reveal()), "forceChangePasswordNextSignIn": false}}
	_, err := c.Do(ctx, http.MethodPatch, AudienceGraph, pathf("v1.0/users/%s", idOrUPN), in, nil)
	return err
}

// AddDirectoryRoleMember gives the principal objectID the directory role
// with the template id roleTemplateID (a value of keyhold.DirectoryRoles).
func (c *Client) AddDirectoryRoleMember(ctx context.Context, roleTemplateID, objectID string) error {
	in := map[string]string{"@odata.id": c.base.String() + pathf("v1.0/directoryObjects/%s", objectID)}
	_, err := c.Do(ctx, http.MethodPost, AudienceGraph, pathf("v1.0/directoryRoles/roleTemplateId=%s/members/$ref", roleTemplateID), in, nil)
	return err
}

// RemoveDirectoryRoleMember takes the directory role roleTemplateID away from
// the principal objectID.
func (c *Client) RemoveDirectoryRoleMember(ctx context.Context, roleTemplateID, objectID string) error {
	_, err := c.Do(ctx, http.MethodDelete, AudienceGraph, pathf("v1.0/directoryRoles/roleTemplateId=%s/members/%s/$ref", roleTemplateID, objectID), nil, nil)
	return err
}

// ListDirectoryRoleMembers lists the members of the directory role
// roleTemplateID.
func (c *Client) ListDirectoryRoleMembers(ctx context.Context, roleTemplateID string) ([]DirectoryObject, error) {
	return List[DirectoryObject](ctx, c, AudienceGraph, pathf("v1.0/directoryRoles/roleTemplateId=%s/members", roleTemplateID))
}

// CreateServicePrincipal creates a service principal (with its application
// id) named displayName. It has no secret until AddPassword gives it one.
func (c *Client) CreateServicePrincipal(ctx context.Context, displayName string) (*ServicePrincipal, error) {
	var out ServicePrincipal
	_, err := c.Do(ctx, http.MethodPost, AudienceGraph, "v1.0/servicePrincipals", map[string]any{"displayName": displayName, "accountEnabled": true}, &out)
	return &out, err
}

// ListServicePrincipals lists the tenant's service principals and managed
// identities.
func (c *Client) ListServicePrincipals(ctx context.Context) ([]ServicePrincipal, error) {
	return List[ServicePrincipal](ctx, c, AudienceGraph, "v1.0/servicePrincipals")
}

// GetServicePrincipal returns the service principal with the object id or
// application (client) id idOrAppID; a missing one is an *Error with status 404.
func (c *Client) GetServicePrincipal(ctx context.Context, idOrAppID string) (*ServicePrincipal, error) {
	var out ServicePrincipal
	_, err := c.Do(ctx, http.MethodGet, AudienceGraph, pathf("v1.0/servicePrincipals/%s", idOrAppID), nil, &out)
	if !IsNotFound(err) {
		return &out, err
	}
	// Not an object id: look for an application id, as az ad sp show does.
	sps, lerr := List[ServicePrincipal](ctx, c, AudienceGraph, "v1.0/servicePrincipals?$filter="+url.QueryEscape("appId eq '"+strings.ReplaceAll(idOrAppID, "'", "''")+"'"))
	if lerr != nil {
		return nil, err
	}
	if found := only(sps, func(sp *ServicePrincipal) string { return sp.AppID }, idOrAppID); len(found) > 0 {
		return &found[0], nil
	}
	return nil, err
}

// DeleteServicePrincipal deletes the service principal with the object id.
func (c *Client) DeleteServicePrincipal(ctx context.Context, id string) error {
	_, err := c.Do(ctx, http.MethodDelete, AudienceGraph, pathf("v1.0/servicePrincipals/%s", id), nil, nil)
	return err
}

// AddPassword gives the service principal id a new client secret named
// displayName and returns it; the secret is in SecretText, shown only now.
func (c *Client) AddPassword(ctx context.Context, id, displayName string) (*PasswordCredential, error) {
	in := map[string]any{"passwordCredential": map[string]any{"displayName": displayName}}
	var out PasswordCredential
	_, err := c.Do(ctx, http.MethodPost, AudienceGraph, pathf("v1.0/servicePrincipals/%s/addPassword", id), in, &out)
	return &out, err
}
