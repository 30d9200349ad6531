package environment

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// BAPAPIVersions are the api-versions the platform admin API accepts:
// those Microsoft's scripts, PowerShell module and Terraform provider send.
var BAPAPIVersions = []string{
	"2016-11-01", "2018-01-01", "2019-05-01", "2019-10-01", "2020-06-01", "2020-08-01", "2020-10-01",
	"2021-03-01", "2021-04-01", "2022-05-01", "2023-06-01", "2024-05-01",
}

// EnvironmentType is the type of an environment resource in the BAP API.
const EnvironmentType = "Microsoft.BusinessAppPlatform/environments"

// Handler serves the platform admin (BAP) API under BAPPrefix; it expects
// the Caller in the context. Paths compare case-insensitively, and each
// route is also served under {BAPPrefix}/scopes/admin/..., as newer clients
// call it:
//
//	GET    /environments                                 list (platform administrators; others get an empty list)
//	POST   /environments   (or PUT)                      create: {"location", "properties": {"displayName", "environmentSku", ...}}
//	GET    /environments/{id}                            one environment (404 "could not be found in the tenant" for anyone but its administrators)
//	DELETE /environments/{id}                            delete
//	POST   /environments/{id}/enable                     re-enable a locked environment (also .../enterprisePolicies/Encryption/reenable)
//	GET    /environments/{id}/operations                 the environment's history, newest first (also .../lifecycleOperations)
//	GET    /environments/{id}/roleAssignments            environment role holders
//	PUT    /environments/{id}/roleAssignments/{objectId} {"properties": {"role": "Environment Admin" | "Environment User"}}
//	DELETE /environments/{id}/roleAssignments/{objectId}
//	GET    /environmentSettings                          the tenant's lock settings (autoReenable, retention)
//	PUT    /environmentSettings
//
// Every other path (link, unlink, lifecycleOperations) goes to
// LifecycleHandler. Errors are in the Azure shape {"error":{"code","message"}}.
func (s *Service) Handler() http.Handler {
	life := s.LifecycleHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		segs, ok := bapSegments(r.URL.Path)
		if !ok {
			httpapi.WriteError(w, r, noRoute(r))
			return
		}
		if keyhold.CallerFrom(r.Context()) == nil {
			httpapi.WriteError(w, r, keyhold.Errorf(keyhold.EUnauthenticated, "environment: the request carries no caller"))
			return
		}
		if !s.serveCore(w, r, segs) {
			// The lifecycle's routes are case-sensitive; hand them the
			// canonical spelling of the path.
			r2 := r.Clone(r.Context())
			r2.URL.Path = BAPPrefix + "/" + strings.Join(canonicalSegments(segs), "/")
			r2.URL.RawPath = ""
			if mux, ok := life.(*http.ServeMux); ok {
				if _, pattern := mux.Handler(r2); pattern == "" {
					// The mux's own 404 is plain text, not the Azure shape.
					httpapi.WriteError(w, r, noRoute(r))
					return
				}
			}
			life.ServeHTTP(w, r2)
		}
	})
}

// bapSegments splits a path under BAPPrefix into segments, dropping a
// leading scopes/admin and a trailing slash.
func bapSegments(path string) ([]string, bool) {
	if len(path) < len(BAPPrefix) || !strings.EqualFold(path[:len(BAPPrefix)], BAPPrefix) {
		return nil, false
	}
	rest := strings.Trim(path[len(BAPPrefix):], "/")
	var segs []string
	if rest != "" {
		segs = strings.Split(rest, "/")
	}
	if len(segs) >= 2 && strings.EqualFold(segs[0], "scopes") && strings.EqualFold(segs[1], "admin") {
		segs = segs[2:]
	}
	return segs, true
}

var canonicalWords = []string{"environments", "enterprisePolicies", "lifecycleOperations", "operations", "Encryption"}

func canonicalSegments(segs []string) []string {
	out := slices.Clone(segs)
	for i, s := range out {
		for _, w := range canonicalWords {
			if strings.EqualFold(s, w) {
				out[i] = w
			}
		}
	}
	return out
}

// match reports whether segs matches the pattern, where "*" matches any one
// segment and words compare case-insensitively.
func match(segs []string, pattern ...string) bool {
	if len(segs) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && !strings.EqualFold(p, segs[i]) {
			return false
		}
	}
	return true
}

func noRoute(r *http.Request) error {
	return keyhold.Errorc(keyhold.ENotFound, "NotFound", "No route for %s %s.", r.Method, r.URL.Path)
}

func methodNotAllowed(r *http.Request, allowed ...string) error {
	return keyhold.Errorc(keyhold.EInvalid, "MethodNotAllowed", "%s is not allowed on %s; use %s.", r.Method, r.URL.Path, strings.Join(allowed, " or "))
}

// checkAPIVersion returns the 400 Microsoft's API gives for a missing or
// unknown api-version.
func checkAPIVersion(r *http.Request) error {
	v := r.URL.Query().Get("api-version")
	if v == "" {
		return keyhold.Errorc(keyhold.EInvalid, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is required for all requests.")
	}
	if !slices.Contains(BAPAPIVersions, v) {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidApiVersionParameter", "The api-version '%s' is invalid. The supported versions are '%s'.", v, strings.Join(BAPAPIVersions, ","))
	}
	return nil
}

// serveCore serves the core's routes and reports whether segs was one.
func (s *Service) serveCore(w http.ResponseWriter, r *http.Request, segs []string) bool {
	var h func(w http.ResponseWriter, r *http.Request, segs []string) error
	switch {
	case match(segs, "environments"):
		h = s.serveEnvironments
	case match(segs, "environments", "*"):
		h = s.serveEnvironment
	case match(segs, "environments", "*", "enable"), match(segs, "environments", "*", "enterprisePolicies", "Encryption", "reenable"):
		h = s.serveReenable
	case match(segs, "environments", "*", "operations"):
		// The lifecycle's history lists every entry (create, lock,
		// re-enable and the CMK operations) already.
		segs[2] = "lifecycleOperations"
		return false
	case match(segs, "environments", "*", "roleAssignments"), match(segs, "environments", "*", "roleAssignments", "*"):
		h = s.serveRoles
	case match(segs, "environmentSettings"):
		h = s.serveSettings
	default:
		return false
	}
	if err := checkAPIVersion(r); err != nil {
		httpapi.WriteError(w, r, err)
		return true
	}
	if err := h(w, r, segs); err != nil {
		httpapi.WriteError(w, r, err)
	}
	return true
}

// createBody is the body of an environment create, in the BAP shape.
type createBody struct {
	Location   string `json:"location"`
	Properties struct {
		DisplayName    string `json:"displayName"`
		EnvironmentSku string `json:"environmentSku"`
		AzureRegion    string `json:"azureRegion,omitempty"`
		// Managed asks for a Managed Environment; BAP expresses it as
		// governanceConfiguration.protectionLevel "Standard".
		GovernanceConfiguration *struct {
			ProtectionLevel string `json:"protectionLevel"`
		} `json:"governanceConfiguration,omitempty"`
		IsManaged *bool `json:"isManaged,omitempty"`
	} `json:"properties"`
}

func (s *Service) serveEnvironments(w http.ResponseWriter, r *http.Request, _ []string) error {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	switch r.Method {
	case http.MethodGet:
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/read", BAPPrefix+"/environments")
		httpapi.MarkReadOnly(ctx)
		list, err := s.List(ctx, c)
		if err != nil {
			return err
		}
		out := make([]EnvironmentView, 0, len(list))
		for _, e := range list {
			out = append(out, s.render(ctx, e))
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
		return nil
	case http.MethodPost, http.MethodPut:
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/write", BAPPrefix+"/environments")
		var b createBody
		if err := httpapi.DecodeJSON(r, &b, "InvalidRequestContent"); err != nil {
			return err
		}
		req := CreateRequest{DisplayName: b.Properties.DisplayName, Region: b.Location, Type: b.Properties.EnvironmentSku}
		if g := b.Properties.GovernanceConfiguration; g != nil && !strings.EqualFold(g.ProtectionLevel, "Basic") && g.ProtectionLevel != "" {
			req.Managed = true
		}
		if b.Properties.IsManaged != nil {
			req.Managed = *b.Properties.IsManaged
		}
		e, err := s.Create(ctx, c, req)
		if err != nil {
			return err
		}
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/write", BAPPrefix+"/environments/"+e.ID)
		w.Header().Set("Location", requestBase(r)+BAPPrefix+"/environments/"+e.ID+"?api-version="+r.URL.Query().Get("api-version"))
		httpapi.WriteJSON(w, http.StatusCreated, s.render(ctx, e))
		return nil
	}
	return methodNotAllowed(r, http.MethodGet, http.MethodPost)
}

func (s *Service) serveEnvironment(w http.ResponseWriter, r *http.Request, segs []string) error {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	id := segs[1]
	scope := BAPPrefix + "/environments/" + id
	switch r.Method {
	case http.MethodGet:
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/read", scope)
		httpapi.MarkReadOnly(ctx)
		e, err := s.Get(ctx, c, id)
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, s.render(ctx, e))
		return nil
	case http.MethodDelete:
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/delete", scope)
		if err := s.Delete(ctx, c, id); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(r, http.MethodGet, http.MethodDelete)
}

func (s *Service) serveReenable(w http.ResponseWriter, r *http.Request, segs []string) error {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		return methodNotAllowed(r, http.MethodPost)
	}
	id := segs[1]
	httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/enable/action", BAPPrefix+"/environments/"+id)
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, httpapi.MaxBodyBytes))
	e, err := s.Reenable(ctx, keyhold.CallerFrom(ctx), id)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, s.render(ctx, e))
	return nil
}

// roleBody is the body of a role assignment PUT.
type roleBody struct {
	Properties struct {
		Role string `json:"role"`
	} `json:"properties"`
}

// RoleAssignmentView is an environment role holder in the API.
type RoleAssignmentView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Properties RoleHolder `json:"properties"`
}

func roleView(envID string, h RoleHolder) RoleAssignmentView {
	return RoleAssignmentView{ID: BAPPrefix + "/environments/" + envID + "/roleAssignments/" + h.PrincipalID, Name: h.PrincipalID, Properties: h}
}

func (s *Service) serveRoles(w http.ResponseWriter, r *http.Request, segs []string) error {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	id := segs[1]
	scope := BAPPrefix + "/environments/" + id + "/roleAssignments"
	if len(segs) == 3 {
		if r.Method != http.MethodGet {
			return methodNotAllowed(r, http.MethodGet)
		}
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/roleAssignments/read", scope)
		httpapi.MarkReadOnly(ctx)
		list, err := s.ListRoles(ctx, c, id)
		if err != nil {
			return err
		}
		out := make([]RoleAssignmentView, 0, len(list))
		for _, h := range list {
			out = append(out, roleView(id, h))
		}
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
		return nil
	}
	principal := segs[3]
	switch r.Method {
	case http.MethodPut:
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/roleAssignments/write", scope+"/"+principal)
		var b roleBody
		if err := httpapi.DecodeJSON(r, &b, "InvalidRequestContent"); err != nil {
			return err
		}
		h, err := s.GrantRole(ctx, c, id, principal, b.Properties.Role)
		if err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, roleView(id, *h))
		return nil
	case http.MethodDelete:
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/roleAssignments/delete", scope+"/"+principal)
		if err := s.RevokeRole(ctx, c, id, principal); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(r, http.MethodPut, http.MethodDelete)
}

func (s *Service) serveSettings(w http.ResponseWriter, r *http.Request, _ []string) error {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	scope := BAPPrefix + "/environmentSettings"
	if !c.Principal.IsPlatformAdmin() {
		return keyhold.Errorc(keyhold.EForbidden, DetailNotPlatformAdmin, "environment: only platform administrators may read or change the tenant's environment settings")
	}
	switch r.Method {
	case http.MethodGet:
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environmentSettings/read", scope)
		httpapi.MarkReadOnly(ctx)
	case http.MethodPut:
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environmentSettings/write", scope)
		var ts TenantSettings
		if err := httpapi.DecodeJSON(r, &ts, "InvalidRequestContent"); err != nil {
			return err
		}
		if err := s.SetTenantSettings(ctx, c, ts); err != nil {
			return err
		}
	default:
		return methodNotAllowed(r, http.MethodGet, http.MethodPut)
	}
	ts, err := s.TenantSettings(ctx, c.TenantID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, ts)
	return nil
}

// requestBase is the scheme and host the request came to.
func requestBase(r *http.Request) string {
	u := url.URL{Scheme: "https", Host: r.Host}
	if r.TLS == nil {
		u.Scheme = "http"
	}
	return u.String()
}

// EnvironmentView is an environment in the BAP API's shape (reference
// 2.4), with Keyhold's encryption status and progress and lock reason.
type EnvironmentView struct {
	ID         string              `json:"id"`
	Type       string              `json:"type"`
	Location   string              `json:"location"`
	Name       string              `json:"name"`
	Properties EnvironmentViewProp `json:"properties"`
}

// EnvironmentViewProp is properties of EnvironmentView.
type EnvironmentViewProp struct {
	TenantID                string            `json:"tenantId"`
	DisplayName             string            `json:"displayName"`
	AzureRegion             string            `json:"azureRegion"`
	EnvironmentSku          string            `json:"environmentSku"`
	IsDefault               bool              `json:"isDefault"`
	ProvisioningState       string            `json:"provisioningState"`
	CreatedTime             time.Time         `json:"createdTime"`
	LastModifiedTime        time.Time         `json:"lastModifiedTime"`
	CreatedBy               Principal         `json:"createdBy"`
	States                  States            `json:"states"`
	ProtectionStatus        ProtectionStatus  `json:"protectionStatus"`
	EnterprisePolicies      EnterprisePolices `json:"enterprisePolicies"`
	GovernanceConfiguration Governance        `json:"governanceConfiguration"`
	Encryption              EncryptionView    `json:"encryption"`
}

// Principal names a principal in a view.
type Principal struct {
	ID          string `json:"id,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Type        string `json:"type,omitempty"`
}

// States are an environment's management and runtime states.
type States struct {
	Management StateID      `json:"management"`
	Runtime    RuntimeState `json:"runtime"`
}

// RuntimeState is states.runtime: Enabled, or Disabled with the reason.
type RuntimeState struct {
	ID                string    `json:"id"`
	RuntimeReasonCode string    `json:"runtimeReasonCode"`
	Reason            string    `json:"reason,omitempty"` // Keyhold: why, in words
	DisabledAt        time.Time `json:"disabledAt,omitzero"`
	RequestedBy       Principal `json:"requestedBy"`
}

// ProtectionStatus says who manages the environment's key.
type ProtectionStatus struct {
	KeyManagedBy string `json:"keyManagedBy"`
}

// EnterprisePolices are the policies linked to an environment.
type EnterprisePolices struct {
	CustomerManagedKeys *PolicyLink `json:"customerManagedKeys,omitempty"`
}

// PolicyLink is one linked enterprise policy.
type PolicyLink struct {
	PolicyID   string `json:"policyId"`
	Location   string `json:"location"`
	ID         string `json:"id"`
	SystemID   string `json:"systemId"`
	LinkStatus string `json:"linkStatus"`
}

// Governance is governanceConfiguration: Standard for a Managed Environment.
type Governance struct {
	ProtectionLevel string `json:"protectionLevel"`
}

// EncryptionView is Keyhold's encryption status and progress (percent).
type EncryptionView struct {
	Status   string `json:"status"`
	Progress int    `json:"progress"`
}

// azureRegions names the Azure region shown for each Power Platform region.
var azureRegions = map[string]string{
	"unitedstates": "westus", "europe": "westeurope", "uk": "uksouth", "asia": "eastasia", "australia": "australiaeast",
	"india": "centralindia", "japan": "japaneast", "canada": "canadacentral", "southamerica": "brazilsouth", "brazil": "brazilsouth",
	"france": "francecentral", "germany": "germanywestcentral", "switzerland": "switzerlandnorth", "norway": "norwayeast",
	"korea": "koreacentral", "southafrica": "southafricanorth", "uae": "uaenorth", "singapore": "southeastasia", "sweden": "swedencentral",
}

// render returns e in the BAP shape, with the progress of a running
// encryption.
func (s *Service) render(ctx context.Context, e *keyhold.Environment) EnvironmentView {
	v := EnvironmentView{ID: BAPPrefix + "/environments/" + e.ID, Type: EnvironmentType, Location: e.Region, Name: e.ID}
	p := &v.Properties
	p.TenantID, p.DisplayName, p.EnvironmentSku = e.TenantID, e.DisplayName, e.Type
	p.AzureRegion = azureRegions[e.Region]
	if p.AzureRegion == "" {
		p.AzureRegion = e.Region
	}
	p.ProvisioningState = "Succeeded"
	p.CreatedTime, p.LastModifiedTime = e.CreatedAt, e.UpdatedAt
	p.CreatedBy = Principal{ID: e.CreatedBy, Type: "User"}
	p.States.Management = StateID{ID: "Ready"}
	p.States.Runtime = RuntimeState{ID: e.RuntimeState, RuntimeReasonCode: "NotSpecified", RequestedBy: Principal{DisplayName: "SYSTEM", Type: "NotSpecified"}}
	if e.RuntimeState == keyhold.RuntimeDisabled {
		p.States.Runtime.RuntimeReasonCode = "EnterprisePolicyUnhealthy"
		p.States.Runtime.Reason = "Environment disabled: " + lockReasonOf(e)
		p.States.Runtime.DisabledAt = e.LockedAt
	}
	p.ProtectionStatus.KeyManagedBy = e.KeyManagedBy
	if e.PolicyID != "" {
		p.EnterprisePolicies.CustomerManagedKeys = &PolicyLink{PolicyID: policyGUID(e.PolicySystemID), Location: e.Region, ID: e.PolicyID,
			SystemID: e.PolicySystemID, LinkStatus: e.LinkStatus}
	}
	p.GovernanceConfiguration.ProtectionLevel = "Basic"
	if e.Managed {
		p.GovernanceConfiguration.ProtectionLevel = "Standard"
	}
	p.Encryption = EncryptionView{Status: e.EncryptionStatus}
	switch e.EncryptionStatus {
	case keyhold.EncryptionEncrypted:
		p.Encryption.Progress = 100
	case keyhold.EncryptionEncrypting, keyhold.EncryptionFailed:
		p.Encryption.Progress = s.progress(ctx, e.ID)
	}
	return v
}

// policyGUID is the GUID at the end of a policy's systemId.
func policyGUID(systemID string) string {
	return systemID[strings.LastIndexByte(systemID, '/')+1:]
}

// progress is the percentage done of the environment's newest CMK
// operation; 0 if it cannot be read.
func (s *Service) progress(ctx context.Context, envID string) int {
	ops, err := s.cfg.Store.ListOperations(ctx, envID)
	if err != nil {
		return 0
	}
	for _, op := range ops {
		if op.Type != TypeUpdateCMK {
			continue
		}
		if op.Total <= 0 {
			return 0
		}
		return int(min(op.Done*100/op.Total, 100))
	}
	return 0
}
