package client

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"
)

// APIVersionBAP is the api-version the client sends to the platform admin
// (BAP) environments API; the server accepts the ones Microsoft's tools send.
const APIVersionBAP = "2020-10-01"

// BAPPrefix is where the platform admin API's resources live.
const BAPPrefix = "providers/Microsoft.BusinessAppPlatform/"

// Environment types, as the platform admin API spells them.
const (
	EnvironmentProduction = "Production"
	EnvironmentSandbox    = "Sandbox"
	EnvironmentTrial      = "Trial"
	EnvironmentDeveloper  = "Developer"
	EnvironmentTeams      = "Teams"
)

// EnvironmentTypes lists the environment types a create accepts.
var EnvironmentTypes = []string{EnvironmentProduction, EnvironmentSandbox, EnvironmentTrial, EnvironmentDeveloper, EnvironmentTeams}

// Environment roles, for GrantEnvironmentRole.
const (
	EnvironmentRoleAdmin = "Environment Admin"
	EnvironmentRoleUser  = "Environment User"
)

// Environment is an environment in the platform admin API's shape.
type Environment struct {
	ID         string                `json:"id"`
	Type       string                `json:"type"`
	Location   string                `json:"location"`
	Name       string                `json:"name"` // the environment's id (a GUID)
	Properties EnvironmentProperties `json:"properties"`
}

// EnvironmentProperties are an environment's properties.
type EnvironmentProperties struct {
	TenantID                string                        `json:"tenantId"`
	DisplayName             string                        `json:"displayName"`
	AzureRegion             string                        `json:"azureRegion"`
	EnvironmentSku          string                        `json:"environmentSku"`
	IsDefault               bool                          `json:"isDefault"`
	ProvisioningState       string                        `json:"provisioningState"`
	CreatedTime             time.Time                     `json:"createdTime"`
	LastModifiedTime        time.Time                     `json:"lastModifiedTime"`
	CreatedBy               EnvironmentPrincipal          `json:"createdBy"`
	States                  EnvironmentStates             `json:"states"`
	ProtectionStatus        EnvironmentProtection         `json:"protectionStatus"`
	EnterprisePolicies      EnvironmentEnterprisePolicies `json:"enterprisePolicies"`
	GovernanceConfiguration EnvironmentGovernance         `json:"governanceConfiguration"`
	Encryption              EnvironmentEncryption         `json:"encryption"`
}

// EnvironmentPrincipal names a principal in an environment's properties.
type EnvironmentPrincipal struct {
	ID          string `json:"id,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Type        string `json:"type,omitempty"`
}

// EnvironmentStates are the management and runtime states.
type EnvironmentStates struct {
	Management struct {
		ID string `json:"id"`
	} `json:"management"`
	Runtime EnvironmentRuntime `json:"runtime"`
}

// EnvironmentRuntime is states.runtime: Enabled, or Disabled with a reason.
type EnvironmentRuntime struct {
	ID                string               `json:"id"`
	RuntimeReasonCode string               `json:"runtimeReasonCode,omitempty"`
	Reason            string               `json:"reason,omitempty"`
	DisabledAt        time.Time            `json:"disabledAt,omitzero"`
	RequestedBy       EnvironmentPrincipal `json:"requestedBy"`
}

// EnvironmentProtection says who manages the key: Microsoft, Customer or
// CustomerViaMicrosoft.
type EnvironmentProtection struct {
	KeyManagedBy string `json:"keyManagedBy"`
}

// EnvironmentEnterprisePolicies are the policies linked to an environment.
type EnvironmentEnterprisePolicies struct {
	CustomerManagedKeys *EnvironmentPolicyLink `json:"customerManagedKeys,omitempty"`
}

// EnvironmentPolicyLink is the environment's link to an Encryption policy.
type EnvironmentPolicyLink struct {
	PolicyID   string `json:"policyId"`
	Location   string `json:"location"`
	ID         string `json:"id"`
	SystemID   string `json:"systemId"`
	LinkStatus string `json:"linkStatus"`
}

// EnvironmentGovernance is governanceConfiguration; protection level
// Standard is a Managed Environment.
type EnvironmentGovernance struct {
	ProtectionLevel string `json:"protectionLevel"`
}

// EnvironmentEncryption is the encryption status (NotApplicable,
// Encrypting, Encrypted, Failed) and its progress in percent.
type EnvironmentEncryption struct {
	Status   string `json:"status"`
	Progress int    `json:"progress"`
}

// Locked reports whether the environment is disabled because its key is
// unusable.
func (e *Environment) Locked() bool {
	return strings.EqualFold(e.Properties.States.Runtime.ID, "Disabled")
}

// Managed reports whether the environment is a Managed Environment.
func (e *Environment) Managed() bool {
	return strings.EqualFold(e.Properties.GovernanceConfiguration.ProtectionLevel, "Standard")
}

// Policy returns the resource id of the linked Encryption policy, or "".
func (e *Environment) Policy() string {
	if l := e.Properties.EnterprisePolicies.CustomerManagedKeys; l != nil {
		return l.ID
	}
	return ""
}

// EnvironmentSpec is what CreateEnvironment needs.
type EnvironmentSpec struct {
	DisplayName string
	Region      string // a Power Platform region, such as unitedstates or europe
	Type        string // one of EnvironmentTypes
	Managed     bool   // a Managed Environment
}

// EnvironmentOperation is one entry of an environment's history: a
// lifecycle operation (Update Customer Managed Key) or a create, lock or
// re-enable, in the platform admin API's shape.
type EnvironmentOperation struct {
	ID    string `json:"id"`
	Links struct {
		Self struct {
			Path string `json:"path"`
		} `json:"self"`
		Environment struct {
			Path string `json:"path"`
		} `json:"environment"`
	} `json:"links"`
	Type struct {
		ID string `json:"id"`
	} `json:"type"`
	TypeDisplayName string `json:"typeDisplayName"`
	Action          string `json:"action"`
	State           struct {
		ID string `json:"id"` // NotStarted, Running, Succeeded, Failed
	} `json:"state"`
	CreatedDateTime    time.Time `json:"createdDateTime"`
	LastActionDateTime time.Time `json:"lastActionDateTime"`
	RequestedBy        struct {
		ID          string `json:"id"`
		DisplayName string `json:"displayName,omitempty"`
		Type        string `json:"type,omitempty"`
	} `json:"requestedBy"`
	Stages []struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		State struct {
			ID string `json:"id"`
		} `json:"state"`
		FirstActionDateTime time.Time `json:"firstActionDateTime,omitzero"`
		LastActionDateTime  time.Time `json:"lastActionDateTime,omitzero"`
	} `json:"stages"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
	Progress struct {
		Done  int64 `json:"done"`
		Total int64 `json:"total"`
	} `json:"progress"`
}

// Ended reports whether the operation reached Succeeded or Failed.
func (o *EnvironmentOperation) Ended() bool {
	return o.State.ID == "Succeeded" || o.State.ID == "Failed"
}

// EnvironmentRoleAssignment is a principal holding an environment role.
type EnvironmentRoleAssignment struct {
	ID         string `json:"id"`
	Name       string `json:"name"` // the principal's object id
	Properties struct {
		PrincipalID string    `json:"principalId"`
		Role        string    `json:"role"`
		GrantedBy   string    `json:"grantedBy,omitempty"`
		GrantedAt   time.Time `json:"grantedAt"`
	} `json:"properties"`
}

// EnvironmentSettings are the tenant's choices about locked environments:
// re-enable them on their own once the key is back, and delete those
// locked longer than the retention period (7 days, 30 for Production).
type EnvironmentSettings struct {
	AutoReenable bool `json:"autoReenable"`
	Retention    bool `json:"retention"`
}

func bapPath(format string, args ...string) string {
	return BAPPrefix + pathf(format, args...) + q(APIVersionBAP)
}

func checkEnvID(id string) error {
	if strings.TrimSpace(id) == "" || strings.ContainsAny(id, "/?#") {
		return errors.New("client: an environment id is a GUID such as 00000000-0000-0000-0000-000000000000")
	}
	return nil
}

// CreateEnvironment creates an environment under the platform-managed key.
// The server refuses (400) an unknown type or region and (403) a caller who
// is not a Global, Power Platform or Dynamics 365 administrator.
func (c *Client) CreateEnvironment(ctx context.Context, spec EnvironmentSpec) (*Environment, error) {
	body := map[string]any{
		"location": spec.Region,
		"properties": map[string]any{
			"displayName": spec.DisplayName, "environmentSku": spec.Type, "isManaged": spec.Managed,
		},
	}
	var out Environment
	if _, err := c.Do(ctx, http.MethodPost, AudienceBAP, bapPath("environments"), body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListEnvironments returns the tenant's environments; a caller who is not
// a platform administrator gets an empty list.
func (c *Client) ListEnvironments(ctx context.Context) ([]Environment, error) {
	return List[Environment](ctx, c, AudienceBAP, bapPath("environments"))
}

// GetEnvironment returns one environment. An unknown one, or any one for a
// caller who is not a platform administrator, is an *Error with status 404.
func (c *Client) GetEnvironment(ctx context.Context, id string) (*Environment, error) {
	if err := checkEnvID(id); err != nil {
		return nil, err
	}
	var out Environment
	if _, err := c.Do(ctx, http.MethodGet, AudienceBAP, bapPath("environments/%s", id), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteEnvironment deletes an environment and its data. A busy
// environment (a lifecycle operation running) is a 409.
func (c *Client) DeleteEnvironment(ctx context.Context, id string) error {
	if err := checkEnvID(id); err != nil {
		return err
	}
	_, err := c.Do(ctx, http.MethodDelete, AudienceBAP, bapPath("environments/%s", id), nil, nil)
	return err
}

// ReenableEnvironment re-enables a locked environment once access to its
// original key is back. The server refuses it without Reader on the policy
// (403) or while the key is still unusable (409), saying why.
func (c *Client) ReenableEnvironment(ctx context.Context, id string) (*Environment, error) {
	if err := checkEnvID(id); err != nil {
		return nil, err
	}
	var out Environment
	if _, err := c.Do(ctx, http.MethodPost, AudienceBAP, bapPath("environments/%s/enable", id), struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// EnvironmentHistory returns the environment's history, newest first:
// create, lock, re-enable and the CMK operations with state and error.
func (c *Client) EnvironmentHistory(ctx context.Context, id string) ([]EnvironmentOperation, error) {
	if err := checkEnvID(id); err != nil {
		return nil, err
	}
	return List[EnvironmentOperation](ctx, c, AudienceBAP, bapPath("environments/%s/operations", id))
}

// ListEnvironmentRoles returns the principals holding an environment role.
func (c *Client) ListEnvironmentRoles(ctx context.Context, id string) ([]EnvironmentRoleAssignment, error) {
	if err := checkEnvID(id); err != nil {
		return nil, err
	}
	return List[EnvironmentRoleAssignment](ctx, c, AudienceBAP, bapPath("environments/%s/roleAssignments", id))
}

// GrantEnvironmentRole gives the principal with object id principalID the
// role (EnvironmentRoleAdmin or EnvironmentRoleUser) in the environment,
// replacing any role it held. An unknown role is a 400.
func (c *Client) GrantEnvironmentRole(ctx context.Context, id, principalID, role string) (*EnvironmentRoleAssignment, error) {
	if err := checkEnvID(id); err != nil {
		return nil, err
	}
	if principalID == "" {
		return nil, errors.New("client: a role assignment needs the principal's object id")
	}
	body := map[string]any{"properties": map[string]string{"role": role}}
	var out EnvironmentRoleAssignment
	if _, err := c.Do(ctx, http.MethodPut, AudienceBAP, bapPath("environments/%s/roleAssignments/%s", id, principalID), body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeEnvironmentRole takes the principal's environment role away.
func (c *Client) RevokeEnvironmentRole(ctx context.Context, id, principalID string) error {
	if err := checkEnvID(id); err != nil {
		return err
	}
	if principalID == "" {
		return errors.New("client: a role assignment needs the principal's object id")
	}
	_, err := c.Do(ctx, http.MethodDelete, AudienceBAP, bapPath("environments/%s/roleAssignments/%s", id, principalID), nil, nil)
	return err
}

// GetEnvironmentSettings returns the tenant's environment settings; only
// platform administrators may read them (403 otherwise).
func (c *Client) GetEnvironmentSettings(ctx context.Context) (*EnvironmentSettings, error) {
	var out EnvironmentSettings
	if _, err := c.Do(ctx, http.MethodGet, AudienceBAP, bapPath("environmentSettings"), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetEnvironmentSettings replaces the tenant's environment settings and
// returns them as stored; only platform administrators may (403 otherwise).
func (c *Client) SetEnvironmentSettings(ctx context.Context, s EnvironmentSettings) (*EnvironmentSettings, error) {
	var out EnvironmentSettings
	if _, err := c.Do(ctx, http.MethodPut, AudienceBAP, bapPath("environmentSettings"), s, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
