package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// APIVersionDeployments is the api-version of template deployments, as
// armresources v1.2.0 sends it.
const APIVersionDeployments = "2021-04-01"

// Deployment is an ARM template deployment at resource-group scope.
type Deployment struct {
	ID         string               `json:"id,omitempty"`
	Name       string               `json:"name,omitempty"`
	Type       string               `json:"type,omitempty"`
	Properties DeploymentProperties `json:"properties"`
}

// DeploymentProperties are what a deployment reports.
type DeploymentProperties struct {
	ProvisioningState string                     `json:"provisioningState"` // Accepted, Running, Succeeded, Failed, Canceled
	Mode              string                     `json:"mode,omitempty"`
	Timestamp         string                     `json:"timestamp,omitempty"`
	Duration          string                     `json:"duration,omitempty"`
	CorrelationID     string                     `json:"correlationId,omitempty"`
	TemplateHash      string                     `json:"templateHash,omitempty"`
	Parameters        map[string]DeploymentValue `json:"parameters,omitempty"`
	Outputs           map[string]DeploymentValue `json:"outputs,omitempty"`
	OutputResources   []struct {
		ID string `json:"id"`
	} `json:"outputResources,omitempty"`
	ValidatedResources []struct {
		ID string `json:"id"`
	} `json:"validatedResources,omitempty"`
	Error *DeploymentError `json:"error,omitempty"`
}

// DeploymentValue is a parameter or output: its type and value. Secure
// parameters come back without a value.
type DeploymentValue struct {
	Type  string `json:"type"`
	Value any    `json:"value,omitempty"`
}

// DeploymentError is ARM's error object with its details.
type DeploymentError struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Target  string            `json:"target,omitempty"`
	Details []DeploymentError `json:"details,omitempty"`
}

// Error words the error with its first details, which name the resource
// that failed and why.
func (e *DeploymentError) Error() string {
	s := e.Message + " (" + e.Code + ")"
	for _, d := range e.Details {
		s += "; " + d.Message + " (" + d.Code
		if d.Target != "" {
			s += ", " + d.Target
		}
		s += ")"
	}
	return s
}

// DeploymentOperation is one resource a deployment applied.
type DeploymentOperation struct {
	ID          string `json:"id,omitempty"`
	OperationID string `json:"operationId"`
	Properties  struct {
		ProvisioningState string `json:"provisioningState"`
		Timestamp         string `json:"timestamp,omitempty"`
		Duration          string `json:"duration,omitempty"`
		StatusCode        string `json:"statusCode,omitempty"`
		StatusMessage     *struct {
			Error *DeploymentError `json:"error,omitempty"`
		} `json:"statusMessage,omitempty"`
		TargetResource struct {
			ID           string `json:"id"`
			ResourceType string `json:"resourceType"`
			ResourceName string `json:"resourceName"`
		} `json:"targetResource"`
	} `json:"properties"`
}

// Done reports whether the deployment has ended.
func (d *Deployment) Done() bool {
	switch d.Properties.ProvisioningState {
	case "Succeeded", "Failed", "Canceled":
		return true
	}
	return false
}

// deploymentBody is the body of PUT and validate. A template that is JSON
// travels as JSON; anything else travels as text, so that the server can
// say at which line and column it is wrong.
func deploymentBody(template []byte, params map[string]any) map[string]any {
	var tmpl any = string(template)
	if json.Valid(template) {
		tmpl = json.RawMessage(bytes.TrimSpace(template))
	}
	p := map[string]any{}
	for k, v := range params {
		p[k] = map[string]any{"value": v}
	}
	return map[string]any{"properties": map[string]any{"template": tmpl, "parameters": p, "mode": "Incremental"}}
}

func deploymentPath(sub, group, name string) string {
	return pathf("subscriptions/%s/resourcegroups/%s/providers/Microsoft.Resources/deployments/%s", sub, group, name)
}

// CreateDeployment starts deploying template with params into group under
// name and returns the deployment as accepted. Use WaitDeployment to follow
// it. A template the server finds invalid is an *Error with status 400.
func (c *Client) CreateDeployment(ctx context.Context, sub, group, name string, template []byte, params map[string]any) (*Deployment, error) {
	var out Deployment
	_, err := c.Do(ctx, http.MethodPut, AudienceARM, deploymentPath(sub, group, name)+q(APIVersionDeployments), deploymentBody(template, params), &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// ValidateDeployment checks template with params as a deployment would,
// without deploying anything. An invalid one is an *Error with status 400.
func (c *Client) ValidateDeployment(ctx context.Context, sub, group, name string, template []byte, params map[string]any) (*Deployment, error) {
	var out Deployment
	_, err := c.Do(ctx, http.MethodPost, AudienceARM, deploymentPath(sub, group, name)+"/validate"+q(APIVersionDeployments), deploymentBody(template, params), &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// GetDeployment returns the deployment name; a missing one is an *Error
// with status 404.
func (c *Client) GetDeployment(ctx context.Context, sub, group, name string) (*Deployment, error) {
	var out Deployment
	if _, err := c.Do(ctx, http.MethodGet, AudienceARM, deploymentPath(sub, group, name)+q(APIVersionDeployments), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListDeployments lists a group's deployments, newest first.
func (c *Client) ListDeployments(ctx context.Context, sub, group string) ([]Deployment, error) {
	return List[Deployment](ctx, c, AudienceARM, pathf("subscriptions/%s/resourcegroups/%s/providers/Microsoft.Resources/deployments", sub, group)+q(APIVersionDeployments))
}

// ListDeploymentOperations lists the resources a deployment has applied or
// is applying, in order.
func (c *Client) ListDeploymentOperations(ctx context.Context, sub, group, name string) ([]DeploymentOperation, error) {
	return List[DeploymentOperation](ctx, c, AudienceARM, pathf("subscriptions/%s/resourcegroups/%s/deployments/%s/operations", sub, group, name)+q(APIVersionDeployments))
}

// WaitDeployment polls the deployment until it ends, calling progress (if
// not nil) with each state and the operations so far, and tick while it
// waits. A deployment that ends Failed or Canceled comes back with an error
// that carries the server's reason (a *DeploymentError when there is one).
func (c *Client) WaitDeployment(ctx context.Context, sub, group, name string, tick func(), progress func(*Deployment, []DeploymentOperation)) (*Deployment, error) {
	var last *Deployment
	err := c.Poll(ctx, tick, func(ctx context.Context) (bool, error) {
		d, err := c.GetDeployment(ctx, sub, group, name)
		if err != nil {
			return false, err
		}
		last = d
		if progress != nil {
			ops, err := c.ListDeploymentOperations(ctx, sub, group, name)
			if err != nil {
				return false, err
			}
			progress(d, ops)
		}
		return d.Done(), nil
	})
	if err != nil {
		return last, err
	}
	switch last.Properties.ProvisioningState {
	case "Failed":
		if e := last.Properties.Error; e != nil {
			return last, fmt.Errorf("deployment %s failed: %w", name, e)
		}
		return last, fmt.Errorf("deployment %s failed", name)
	case "Canceled":
		return last, fmt.Errorf("deployment %s was canceled", name)
	}
	return last, nil
}

// GetResourceByID reads any resource by id with the given api-version into
// out.
func (c *Client) GetResourceByID(ctx context.Context, id, apiVersion string, out any) error {
	if !strings.HasPrefix(id, "/") {
		return fmt.Errorf("client: %q is not a resource id", id)
	}
	_, err := c.Do(ctx, http.MethodGet, AudienceARM, escapeID(id)+q(apiVersion), nil, out)
	return err
}
