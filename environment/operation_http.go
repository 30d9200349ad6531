package environment

import (
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// BAPPrefix is where the platform admin API's resources live.
const BAPPrefix = "/providers/Microsoft.BusinessAppPlatform"

// LifecycleAPIVersion is the api-version Microsoft's scripts send to link
// and unlink, and the one operation-location carries.
const LifecycleAPIVersion = "2019-10-01"

// LifecycleHandler serves the lifecycle routes of the platform admin API;
// the BAP handler mounts it (it expects the Caller in the context):
//
//	POST {BAPPrefix}/environments/{id}/enterprisePolicies/Encryption/link    {"SystemId": "..."}
//	POST {BAPPrefix}/environments/{id}/enterprisePolicies/Encryption/unlink  {"SystemId": "..."}
//	GET  {BAPPrefix}/lifecycleOperations/{operationId}
//	GET  {BAPPrefix}/environments/{id}/lifecycleOperations                   (the CMK history)
//	POST /keyhold/v1/environments/{id}/byok                                  {"ref": WrapRef} (legacy BYOK)
//	POST /keyhold/v1/tenantProtectionKeys                                    {"key": JWK} -> {"ref": WrapRef}
//
// link and unlink answer 202 Accepted with the operation, operation-location
// (its absolute URL) and Retry-After: 1. Errors are in the Azure shape: 400
// for a bad body or a broken precondition, 403 without Reader on the policy,
// 404 for a caller who is not a platform administrator or an unknown
// environment, 409 for a locked or busy environment.
func (s *Service) LifecycleHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+BAPPrefix+"/environments/{id}/enterprisePolicies/{kind}/{verb}", s.serveLink)
	mux.HandleFunc("GET "+BAPPrefix+"/lifecycleOperations/{op}", s.serveOperation)
	mux.HandleFunc("GET "+BAPPrefix+"/environments/{id}/lifecycleOperations", s.serveHistory)
	mux.HandleFunc("POST /keyhold/v1/environments/{id}/byok", s.serveBYOK)
	mux.HandleFunc("POST "+TenantKeysPath, s.serveImportTenantKey)
	return mux
}

type linkBody struct {
	SystemID string `json:"systemId"` // encoding/json matches "SystemId" too
}

func (s *Service) serveLink(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	envID, kind, verb := r.PathValue("id"), r.PathValue("kind"), r.PathValue("verb")
	if !strings.EqualFold(kind, "Encryption") {
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EInvalid, "UnsupportedEnterprisePolicyType",
			"Enterprise policy type '%s' is not supported here; use Encryption.", kind))
		return
	}
	var body linkBody
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes))
	if err != nil {
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EInvalid, "InvalidRequestContent", "the request body could not be read"))
		return
	}
	if len(strings.TrimSpace(string(raw))) > 0 {
		if err := httpapi.Unmarshal(raw, &body, "InvalidRequestContent"); err != nil {
			httpapi.WriteError(w, r, err)
			return
		}
	}
	var op *keyhold.Operation
	switch strings.ToLower(verb) {
	case "link":
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/enterprisePolicies/link/action", envID)
		op, err = s.Link(ctx, c, envID, body.SystemID)
	case "unlink":
		httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/environments/enterprisePolicies/unlink/action", envID)
		op, err = s.Unlink(ctx, c, envID, body.SystemID)
	default:
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.ENotFound, "NotFound", "No route for %s %s.", r.Method, r.URL.Path))
		return
	}
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	w.Header().Set("operation-location", operationURL(r, op.ID))
	w.Header().Set("Location", operationURL(r, op.ID))
	w.Header().Set("Retry-After", "1")
	httpapi.WriteJSON(w, http.StatusAccepted, RenderOperation(op))
}

// operationURL is the absolute URL of an operation on the host the request
// came to.
func operationURL(r *http.Request, id string) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + BAPPrefix + "/lifecycleOperations/" + id + "?api-version=" + LifecycleAPIVersion
}

func (s *Service) serveOperation(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	id := r.PathValue("op")
	httpapi.Annotate(ctx, "Microsoft.BusinessAppPlatform/lifecycleOperations/read", id)
	httpapi.MarkReadOnly(ctx)
	if c == nil || c.Principal == nil || !c.Principal.IsPlatformAdmin() {
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.ENotFound, "OperationNotFound", "The lifecycle operation %s could not be found in the tenant.", id))
		return
	}
	op, err := s.Operation(ctx, c.TenantID, id)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	if op.State == keyhold.OpNotStarted || op.State == keyhold.OpRunning {
		w.Header().Set("Retry-After", "1")
	}
	httpapi.WriteJSON(w, http.StatusOK, RenderOperation(op))
}

func (s *Service) serveHistory(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	envID := r.PathValue("id")
	httpapi.MarkReadOnly(ctx)
	if _, err := s.lifecycleEnv(ctx, c, envID); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	ops, err := s.History(ctx, envID)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	out := make([]OperationView, 0, len(ops))
	for _, op := range ops {
		out = append(out, RenderOperation(op))
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"value": out})
}

func (s *Service) serveBYOK(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c := keyhold.CallerFrom(ctx)
	envID := r.PathValue("id")
	httpapi.Annotate(ctx, "Keyhold/environments/byok/action", envID)
	var body struct {
		Ref keyhold.WrapRef `json:"ref"`
	}
	if err := httpapi.DecodeJSON(r, &body, "InvalidRequestContent"); err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	e, err := s.ApplyBYOK(ctx, c, envID, body.Ref)
	if err != nil {
		httpapi.WriteError(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, e)
}

// OperationView is a lifecycle operation in the platform admin API's shape
// (Microsoft's lifecycleOperations body), with Keyhold's progress.
type OperationView struct {
	ID    string `json:"id"`
	Links struct {
		Self        Link `json:"self"`
		Environment Link `json:"environment"`
	} `json:"links"`
	Type               StateID     `json:"type"`
	TypeDisplayName    string      `json:"typeDisplayName"`
	Action             string      `json:"action"`
	State              StateID     `json:"state"`
	CreatedDateTime    time.Time   `json:"createdDateTime"`
	LastActionDateTime time.Time   `json:"lastActionDateTime"`
	RequestedBy        RequestedBy `json:"requestedBy"`
	Stages             []StageView `json:"stages"`
	Error              *OpError    `json:"error,omitempty"`
	Progress           Progress    `json:"progress"`
}

// Link is a path link of an operation.
type Link struct {
	Path string `json:"path"`
}

// StateID is the {"id": "..."} object the BAP API uses for states and types.
type StateID struct {
	ID string `json:"id"`
}

// RequestedBy names who asked for an operation.
type RequestedBy struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName,omitempty"`
	Type        string `json:"type,omitempty"`
}

// StageView is one stage of an operation.
type StageView struct {
	ID                  string    `json:"id"`
	Name                string    `json:"name"`
	State               StateID   `json:"state"`
	FirstActionDateTime time.Time `json:"firstActionDateTime,omitzero"`
	LastActionDateTime  time.Time `json:"lastActionDateTime,omitzero"`
}

// OpError is a failed operation's error.
type OpError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Progress is how many records the operation has moved of how many.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

// RenderOperation returns op in the platform admin API's shape.
func RenderOperation(op *keyhold.Operation) OperationView {
	v := OperationView{ID: op.ID, Type: StateID{"UpdateCustomerManagedKey"}, TypeDisplayName: op.Type, Action: op.Action,
		State: StateID{op.State}, CreatedDateTime: op.CreatedAt, LastActionDateTime: op.UpdatedAt,
		RequestedBy: RequestedBy{ID: op.RequestedBy}, Progress: Progress{Done: op.Done, Total: op.Total}}
	if op.Type != TypeUpdateCMK {
		v.Type = StateID{strings.ReplaceAll(op.Type, " ", "")}
	}
	v.Links.Self.Path = BAPPrefix + "/lifecycleOperations/" + op.ID
	v.Links.Environment.Path = BAPPrefix + "/environments/" + op.EnvironmentID
	for _, sg := range stagesOf(op) {
		v.Stages = append(v.Stages, StageView{ID: sg.ID, Name: sg.ID, State: StateID{sg.State},
			FirstActionDateTime: sg.First, LastActionDateTime: sg.Last})
	}
	if op.State == keyhold.OpFailed {
		v.Error = &OpError{Code: "OperationFailed", Message: op.Error}
	}
	return v
}
