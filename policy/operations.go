package policy

import (
	"context"
	"net/http"

	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/httpapi"
)

// Operation is one entry of GET /providers/Microsoft.PowerPlatform/operations,
// in ARM's operations shape.
type Operation struct {
	Name         string           `json:"name"`
	IsDataAction bool             `json:"isDataAction"`
	Display      OperationDisplay `json:"display"`
	Origin       string           `json:"origin"`
}

// OperationDisplay is an Operation's localized description.
type OperationDisplay struct {
	Provider    string `json:"provider"`
	Resource    string `json:"resource"`
	Operation   string `json:"operation"`
	Description string `json:"description"`
}

// Operations returns the operations the provider offers.
func Operations() []Operation {
	op := func(name, operation, description string) Operation {
		return Operation{Name: name, Origin: "user,system", Display: OperationDisplay{
			Provider: "Microsoft Power Platform", Resource: "Enterprise Policies", Operation: operation, Description: description,
		}}
	}
	return []Operation{
		op(ActionRead, "Get enterprisePolicy.", "Reads an enterprise policy: its kind, key, identity and health."),
		op(ActionWrite, "Create new enterprisePolicy.", "Creates or updates an enterprise policy."),
		op(ActionDelete, "Delete enterprisePolicy.", "Deletes an enterprise policy that no environment is linked to."),
		{Name: Namespace + "/operations/read", Origin: "user,system", Display: OperationDisplay{
			Provider: "Microsoft Power Platform", Resource: "Operations", Operation: "List operations.", Description: "Lists the operations of the Microsoft.PowerPlatform resource provider.",
		}},
	}
}

// Routes returns GET /providers/Microsoft.PowerPlatform/operations. It is
// tenant-level and open to every authenticated caller, as ARM's operation
// lists are; the api-version is required like everywhere in ARM.
func (t policyType) Routes() []arm.Route {
	return []arm.Route{{
		Method: http.MethodGet, Pattern: "/providers/" + Namespace + "/operations",
		Handle: func(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
			httpapi.Annotate(ctx, Namespace+"/operations/read", "/")
			return map[string]any{"value": Operations()}, http.StatusOK, nil
		},
	}}
}
