package policy

import (
	"net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/rbac"
)

// ValidatePath is where Keyhold's management API validates a policy:
// GET ValidatePath?id={policy resource id}. Azure has no such route (the
// ValidateKeyVaultForCMK script runs its checks on the client), so it lives
// beside Keyhold's other own endpoints.
const ValidatePath = "/keyhold/v1/policies/validate"

// Validation is the answer of ValidatePath: every check, in order, with
// the health these checks give the policy.
type Validation struct {
	PolicyID     string                 `json:"policyId"`
	Passed       bool                   `json:"passed"`
	HealthStatus string                 `json:"healthStatus"`
	Reason       string                 `json:"reason"`
	Definite     bool                   `json:"definite,omitempty"`
	VaultID      string                 `json:"vaultId,omitempty"`
	KeyName      string                 `json:"keyName,omitempty"`
	KeyVersion   string                 `json:"keyVersion,omitempty"`
	PrincipalID  string                 `json:"principalId,omitempty"`
	CheckedAt    time.Time              `json:"checkedAt"`
	Checks       []keyvault.AccessCheck `json:"checks"`
}

// NewValidation sums a report of policy policyID up as ValidatePath answers.
func NewValidation(policyID string, rep *keyvault.AccessReport) *Validation {
	status, d := HealthOf(rep)
	checks := rep.Checks
	if checks == nil {
		checks = []keyvault.AccessCheck{}
	}
	return &Validation{PolicyID: policyID, Passed: rep.Passed(), HealthStatus: status, Reason: d.Reason, Definite: d.Definite,
		VaultID: rep.VaultID, KeyName: rep.KeyName, KeyVersion: rep.KeyVersion, PrincipalID: rep.PrincipalID,
		CheckedAt: rep.CheckedAt.UTC(), Checks: checks}
}

// ValidateHandler serves GET ValidatePath?id={policyId}: it runs Check on
// the policy for a caller who may read it and answers with a Validation
// (200 whether or not the checks pass). It expects an authenticated
// *keyhold.Caller in the request context. Errors come in the Azure shape:
// 400 for a missing or malformed id, 403 AuthorizationFailed for a caller
// who may not read the policy, 404 ResourceNotFound for a policy that does
// not exist, 405 for a method other than GET.
func (m *Monitor) ValidateHandler(authz *rbac.Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.TrimSuffix(r.URL.Path, "/") != ValidatePath {
			httpapi.WriteError(w, r, keyhold.Errorc(keyhold.ENotFound, "NotFound",
				"the path '%s' does not exist in the Keyhold management API; validate a policy with GET %s?id={policyId}", r.URL.Path, ValidatePath))
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httpapi.WriteJSON(w, http.StatusMethodNotAllowed, httpapi.AzureError{Error: httpapi.AzureErrorBody{
				Code: "MethodNotAllowed", Message: "policy: validate a policy with GET " + ValidatePath + "?id={policyId}"}})
			return
		}
		ctx := r.Context()
		c := keyhold.CallerFrom(ctx)
		if c == nil || c.Principal == nil {
			httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EUnauthenticated, "AuthenticationFailed", "policy: the request is not authenticated"))
			return
		}
		id, err := validationTarget(r.URL.Query()["id"])
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		httpapi.Annotate(ctx, ActionRead, id.String())
		if err := m.authorizeRead(r, authz, c, id); err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		rep, err := m.Check(ctx, id.String())
		if err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, NewValidation(id.String(), rep))
	})
}

// authorizeRead lets c read policy id only inside c's own tenant: role
// assignments are kept per tenant, but a scope such as "/" would otherwise
// reach into another tenant's subscription. A subscription of another
// tenant gets the same 403 as a policy the caller may not read, so that it
// does not learn what exists there.
func (m *Monitor) authorizeRead(r *http.Request, authz *rbac.Authorizer, c *keyhold.Caller, id armid.ID) error {
	sub, err := m.cfg.Store.GetSubscription(r.Context(), id.SubscriptionID())
	if keyhold.IsNotFound(err) || err == nil && !strings.EqualFold(sub.TenantID, c.TenantID) {
		return rbac.Denied(c, ActionRead, id.String())
	}
	if err != nil {
		return err
	}
	return authz.Authorize(r.Context(), c, ActionRead, id.String())
}

// validationTarget reads the policy id of a validation request.
func validationTarget(ids []string) (armid.ID, error) {
	const shape = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/Microsoft.PowerPlatform/enterprisePolicies/{name}"
	if len(ids) != 1 || strings.TrimSpace(ids[0]) == "" {
		return armid.ID{}, keyhold.Errorc(keyhold.EInvalid, "InvalidRequest",
			"policy: give the policy to validate once, as ?id=%s", shape)
	}
	id, err := armid.Parse(ids[0])
	if err != nil || !strings.EqualFold(id.Type(), ResourceType) || id.IsExtension() {
		return armid.ID{}, keyhold.Errorc(keyhold.EInvalid, "InvalidResourceId",
			"policy: %q is not the resource id of an enterprise policy; it looks like %s", ids[0], shape)
	}
	return id, nil
}
