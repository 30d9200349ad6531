package deploy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/rbac"
)

// Actions of the deployments surface, as Azure names them.
const (
	actionRead      = "Microsoft.Resources/deployments/read"
	actionWrite     = "Microsoft.Resources/deployments/write"
	actionDelete    = "Microsoft.Resources/deployments/delete"
	actionValidate  = "Microsoft.Resources/deployments/validate/action"
	actionCancel    = "Microsoft.Resources/deployments/cancel/action"
	actionExport    = "Microsoft.Resources/deployments/exportTemplate/action"
	actionOpsRead   = "Microsoft.Resources/deployments/operations/read"
	actionOpStatus  = "Microsoft.Resources/deployments/operationstatuses/read"
	groupCollection = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/providers/Microsoft.Resources/deployments"
	oneDeployment   = groupCollection + "/{deploymentName}"
	// operationsPath is where armresources' DeploymentOperationsClient
	// reads a group deployment's operations: without "providers".
	operationsPath = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}/deployments/{deploymentName}/operations"
)

func deploymentID(p map[string]string) string {
	return "/subscriptions/" + p["subscriptionId"] + "/resourceGroups/" + p["resourceGroupName"] + "/providers/" + ResourceType + "/" + p["deploymentName"]
}

func groupID(p map[string]string) string {
	return "/subscriptions/" + p["subscriptionId"] + "/resourceGroups/" + p["resourceGroupName"]
}

// Routes returns every route of the deployments surface.
func (t resourceType) Routes() []arm.Route {
	s := t.s
	return []arm.Route{
		{Method: http.MethodPut, Pattern: oneDeployment, Action: actionWrite, Scope: deploymentID, Handle: s.put},
		{Method: http.MethodGet, Pattern: oneDeployment, Action: actionRead, Scope: deploymentID, Handle: s.get},
		{Method: http.MethodHead, Pattern: oneDeployment, Action: actionRead, Scope: deploymentID, Handle: s.head},
		{Method: http.MethodDelete, Pattern: oneDeployment, Action: actionDelete, Scope: deploymentID, Handle: s.delete},
		{Method: http.MethodGet, Pattern: groupCollection, Action: actionRead, Scope: groupID, Handle: s.list},
		{Method: http.MethodPost, Pattern: oneDeployment + "/validate", Action: actionValidate, Scope: deploymentID, Handle: s.validate},
		{Method: http.MethodPost, Pattern: oneDeployment + "/cancel", Action: actionCancel, Scope: deploymentID, Handle: s.cancel},
		{Method: http.MethodPost, Pattern: oneDeployment + "/exportTemplate", Action: actionExport, Scope: deploymentID, Handle: s.exportTemplate},
		{Method: http.MethodGet, Pattern: oneDeployment + "/operationStatuses/{operationId}", Action: actionOpStatus, Scope: deploymentID, Handle: s.operationStatus},
		{Method: http.MethodGet, Pattern: operationsPath, Action: actionOpsRead, Scope: deploymentID, Handle: s.listOperations},
		{Method: http.MethodGet, Pattern: operationsPath + "/{operationId}", Action: actionOpsRead, Scope: deploymentID, Handle: s.getOperation},
		{Method: http.MethodGet, Pattern: oneDeployment + "/operations", Action: actionOpsRead, Scope: deploymentID, Handle: s.listOperations},
		{Method: http.MethodGet, Pattern: oneDeployment + "/operations/{operationId}", Action: actionOpsRead, Scope: deploymentID, Handle: s.getOperation},
	}
}

var deploymentName = regexp.MustCompile(`^[-\w._()]{1,64}$`)

func checkName(name string) error {
	if !deploymentName.MatchString(name) {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidDeploymentName",
			"The deployment name '%s' is not valid: it must be 1 to 64 letters, digits, underscores, periods, hyphens or parentheses.", name)
	}
	return nil
}

// group returns the resource group the route names, or ARM's 404.
func (s *Service) group(ctx context.Context, rr *arm.RouteRequest) (*keyhold.ResourceGroup, error) {
	name := rr.Params["resourceGroupName"]
	g, err := rr.Store.GetResourceGroup(ctx, rr.Subscription.ID, name)
	if keyhold.IsNotFound(err) || err == nil && g.ProvisioningState == "Deleting" {
		return nil, keyhold.Errorc(keyhold.ENotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
	}
	return g, err
}

func notFound(name, group string) error {
	return keyhold.Errorc(keyhold.ENotFound, "DeploymentNotFound", "Deployment '%s' could not be found under resource group '%s'.", name, group)
}

// requestBody is ARM's Deployment: the body of PUT and validate.
type requestBody struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties *struct {
		Template        json.RawMessage `json:"template"`
		TemplateLink    json.RawMessage `json:"templateLink"`
		Parameters      json.RawMessage `json:"parameters"`
		ParametersLink  json.RawMessage `json:"parametersLink"`
		Mode            string          `json:"mode"`
		OnErrorDeploy   json.RawMessage `json:"onErrorDeployment"`
		ExpressionScope json.RawMessage `json:"expressionEvaluationOptions"`
	} `json:"properties"`
}

// prepared is a checked deployment request.
type prepared struct {
	body     requestBody
	text     []byte // the template's JSON text
	raw      *rawTemplate
	given    map[string]any
	compiled *compiled
	group    *keyhold.ResourceGroup
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s == "" || s == "null"
}

// prepare reads and validates a deployment request: the body, the
// template (a JSON object, or JSON text in a string), the parameters, the
// group, and that the caller may write every resource the template names.
func (s *Service) prepare(ctx context.Context, rr *arm.RouteRequest) (*prepared, error) {
	p := &prepared{}
	if err := checkName(rr.Params["deploymentName"]); err != nil {
		return nil, err
	}
	if err := httpapi.DecodeJSON(rr.HTTP, &p.body, "InvalidRequestContent"); err != nil {
		return nil, err
	}
	props := p.body.Properties
	if props == nil {
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidRequestContent", "The request content must have 'properties' with 'template', 'parameters' and 'mode'.")
	}
	switch {
	case !isNull(props.TemplateLink):
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate", "Linked templates (templateLink) are not supported; send the template in properties.template.")
	case !isNull(props.ParametersLink):
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate", "Linked parameter files (parametersLink) are not supported; send the values in properties.parameters.")
	case isNull(props.Template):
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate", "The request content must have properties.template.")
	}
	switch strings.ToLower(props.Mode) {
	case "", "incremental":
		props.Mode = "Incremental"
	case "complete":
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidDeploymentMode", "Complete mode is not supported; use Incremental, which leaves resources the template does not name alone.")
	default:
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidDeploymentMode", "The deployment mode '%s' is not valid; use Incremental.", props.Mode)
	}
	text, err := jsonOrText(props.Template)
	if err != nil {
		return nil, err
	}
	p.text = text
	if p.raw, err = parseTemplateText(text); err != nil {
		return nil, err
	}
	if p.given, err = parseParameters(props.Parameters); err != nil {
		return nil, err
	}
	if p.group, err = s.group(ctx, rr); err != nil {
		return nil, err
	}
	sub := rr.Subscription
	p.compiled, err = compile(p.raw, p.given, site{
		subscriptionID: sub.ID, tenantID: sub.TenantID, subName: sub.DisplayName, group: p.group, deployment: rr.Params["deploymentName"],
	})
	if err != nil {
		return nil, err
	}
	// Preflight, as ARM does: a caller who may not write a resource hears
	// so before anything is deployed.
	for _, r := range p.compiled.resources {
		id, err := armid.Parse(r.ID)
		if err != nil {
			return nil, err
		}
		ok, err := rr.Allowed(r.Type+"/write", id)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, rbac.Denied(rr.Caller, r.Type+"/write", r.ID)
		}
	}
	return p, nil
}

// jsonOrText returns the JSON text of a template or parameters given as a
// JSON value, or as JSON text in a string (as a client that pasted a file
// sends it, so that errors name the file's lines).
func jsonOrText(raw json.RawMessage) ([]byte, error) {
	trimmed := strings.TrimSpace(string(raw))
	if strings.HasPrefix(trimmed, `"`) {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidRequestContent", "The template string could not be read.")
		}
		return []byte(s), nil
	}
	return []byte(trimmed), nil
}

// parseParameters reads properties.parameters: {"name": {"value": ...}},
// or a whole parameter file with a "parameters" member, as JSON or text.
func parseParameters(raw json.RawMessage) (map[string]any, error) {
	out := map[string]any{}
	if isNull(raw) {
		return out, nil
	}
	text, err := jsonOrText(raw)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := decodeJSONText(text, "parameters", &m); err != nil {
		return nil, err
	}
	if inner, ok := m["parameters"]; ok && m["$schema"] != nil {
		m = nil
		if err := decodeJSONText(inner, "parameters", &m); err != nil {
			return nil, err
		}
	}
	for name, v := range m {
		var p struct {
			Value     *json.RawMessage `json:"value"`
			Reference json.RawMessage  `json:"reference"`
		}
		if err := json.Unmarshal(v, &p); err != nil {
			return nil, invalidTemplate("The parameter '%s' must be an object with a 'value'.", name)
		}
		if !isNull(p.Reference) {
			return nil, invalidTemplate("The parameter '%s' is a Key Vault reference; references are not supported, give the value.", name)
		}
		if p.Value == nil {
			return nil, invalidTemplate("The parameter '%s' must be an object with a 'value'.", name)
		}
		var val any
		if err := json.Unmarshal(*p.Value, &val); err != nil {
			return nil, invalidTemplate("The value of the parameter '%s' is not valid JSON.", name)
		}
		out[name] = val
	}
	return out, nil
}

// put serves PUT: it validates the whole template, stores the deployment
// as Accepted, starts it in the background and answers 201 with the
// Azure-AsyncOperation URL to poll.
func (s *Service) put(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	p, err := s.prepare(ctx, rr)
	if err != nil {
		return nil, 0, err
	}
	name := rr.Params["deploymentName"]
	id := "/subscriptions/" + rr.Subscription.ID + "/resourceGroups/" + p.group.Name + "/providers/" + ResourceType + "/" + name
	now := s.now().UTC()
	sum := sha256.Sum256(p.text)
	rec := &record{
		ProvisioningState: StateAccepted,
		Mode:              p.body.Properties.Mode,
		CorrelationID:     newUUID(),
		Timestamp:         now,
		StartedAt:         now,
		TemplateHash:      hex.EncodeToString(sum[:8]),
		ContentVersion:    p.raw.ContentVersion,
		Template:          json.RawMessage(compactJSON(p.text)),
		ParameterTypes:    p.compiled.paramType,
		Caller:            callerRef{PrincipalID: rr.Caller.Principal.ID, TenantID: rr.Caller.TenantID, Audience: rr.Caller.Audience, ClientID: rr.Caller.ClientID},
		RunID:             newUUID(),
		Owner:             s.owner,
		Heartbeat:         now,
	}
	if err := s.sealParams(rec, id, p.given, p.compiled.paramType); err != nil {
		return nil, 0, err
	}
	res := &keyhold.Resource{
		ID: id, SubscriptionID: rr.Subscription.ID, ResourceGroup: p.group.Name, Type: ResourceType, Name: name, Tags: p.body.Tags,
	}
	if p.body.Location != nil {
		res.Location = strings.ToLower(strings.ReplaceAll(*p.body.Location, " ", ""))
	}
	status := http.StatusCreated
	err = rr.Store.InTx(ctx, func(tx keyhold.Store) error {
		old, err := tx.GetResource(ctx, id)
		switch {
		case err == nil:
			res.ID, res.Name = old.ID, old.Name
			prev, err := decodeRecord(old)
			if err != nil {
				return err
			}
			if prev.active() {
				return keyhold.Errorc(keyhold.EConflict, "DeploymentActive",
					"Unable to edit or replace deployment '%s': previous deployment from '%s' is still active (state: %s). Please see https://aka.ms/arm-deploy-resources for usage details.",
					old.Name, prev.Timestamp.Format("1/2/2006 3:04:05 PM"), prev.ProvisioningState)
			}
			res.SystemData.CreatedAt, res.SystemData.CreatedBy, res.SystemData.CreatedByType = old.SystemData.CreatedAt, old.SystemData.CreatedBy, old.SystemData.CreatedByType
			status = http.StatusOK
		case keyhold.IsNotFound(err):
			res.SystemData.CreatedAt = now
			res.SystemData.CreatedBy, res.SystemData.CreatedByType = actor(rr.Caller)
		default:
			return err
		}
		res.SystemData.LastModifiedAt = now
		res.SystemData.LastModifiedBy, res.SystemData.LastModifiedByType = actor(rr.Caller)
		if err := encodeRecord(res, rec); err != nil {
			return err
		}
		return tx.PutResource(ctx, res)
	})
	if err != nil {
		return nil, 0, err
	}
	s.log.Info("deployment accepted", "deployment", res.ID, "principal", rr.Caller.Principal.ID, "resources", len(p.compiled.resources))
	s.start(res.ID)
	h := rr.Writer.Header()
	h.Set("Azure-AsyncOperation", s.statusURL(rr, res.ID, rec.RunID))
	h.Set("Retry-After", strconv.Itoa(max(1, int(s.cfg.RetryAfter.Seconds()))))
	return s.render(res, rec), status, nil
}

// statusURL is the Azure-AsyncOperation URL of a run.
func (s *Service) statusURL(rr *arm.RouteRequest, id, runID string) string {
	base := s.cfg.PublicURL
	if base == "" {
		scheme := "https"
		if rr.HTTP.TLS == nil {
			scheme = "http"
		}
		base = scheme + "://" + rr.HTTP.Host + "/"
	}
	return strings.TrimSuffix(base, "/") + id + "/operationStatuses/" + runID + "?api-version=" + url.QueryEscape(rr.APIVersion)
}

func compactJSON(b []byte) []byte {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return b
	}
	return out.Bytes()
}

// actor names a caller for systemData.
func actor(c *keyhold.Caller) (string, string) {
	p := c.Principal
	switch p.Type {
	case keyhold.PrincipalUser:
		return p.UserPrincipalName, "User"
	case keyhold.PrincipalManagedIdentity:
		return p.AppID, "ManagedIdentity"
	default:
		return p.AppID, "Application"
	}
}

// load returns the stored deployment the route names.
func (s *Service) load(ctx context.Context, rr *arm.RouteRequest) (*keyhold.Resource, *record, error) {
	if _, err := s.group(ctx, rr); err != nil {
		return nil, nil, err
	}
	r, err := rr.Store.GetResource(ctx, deploymentID(rr.Params))
	if keyhold.IsNotFound(err) || err == nil && !strings.EqualFold(r.Type, ResourceType) {
		return nil, nil, notFound(rr.Params["deploymentName"], rr.Params["resourceGroupName"])
	}
	if err != nil {
		return nil, nil, err
	}
	rec, err := decodeRecord(r)
	if err != nil {
		return nil, nil, err
	}
	return r, rec, nil
}

func (s *Service) get(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	r, rec, err := s.load(ctx, rr)
	if err != nil {
		return nil, 0, err
	}
	return s.render(r, rec), http.StatusOK, nil
}

// head answers armresources' CheckExistence: 204 or 404, no body.
func (s *Service) head(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	_, _, err := s.load(ctx, rr)
	switch {
	case keyhold.IsNotFound(err):
		rr.Writer.WriteHeader(http.StatusNotFound)
	case err != nil:
		return nil, 0, err
	default:
		rr.Writer.WriteHeader(http.StatusNoContent)
	}
	return nil, 0, nil
}

// delete removes a deployment's record; the resources it deployed stay,
// as in ARM. A deployment still running must be canceled first.
func (s *Service) delete(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	if _, err := s.group(ctx, rr); err != nil {
		return nil, 0, err
	}
	id := deploymentID(rr.Params)
	gone := false
	err := rr.Store.InTx(ctx, func(tx keyhold.Store) error {
		r, err := tx.GetResource(ctx, id)
		if keyhold.IsNotFound(err) {
			gone = true
			return nil
		}
		if err != nil {
			return err
		}
		rec, err := decodeRecord(r)
		if err != nil {
			return err
		}
		if rec.active() {
			return keyhold.Errorc(keyhold.EConflict, "DeploymentActive",
				"The deployment '%s' is still %s; cancel it first (POST .../deployments/%s/cancel).", r.Name, strings.ToLower(rec.ProvisioningState), r.Name)
		}
		return tx.DeleteResource(ctx, r.ID)
	})
	if err != nil {
		return nil, 0, err
	}
	if gone {
		return nil, http.StatusNoContent, nil
	}
	return nil, http.StatusOK, nil
}

// list answers GET on a group's deployments, newest first, with ARM's
// $filter=provisioningState eq '...'.
func (s *Service) list(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	g, err := s.group(ctx, rr)
	if err != nil {
		return nil, 0, err
	}
	state, err := stateFilter(rr.HTTP.URL.Query().Get("$filter"))
	if err != nil {
		return nil, 0, err
	}
	list, err := rr.Store.ListResources(ctx, keyhold.ResourceFilter{SubscriptionID: rr.Subscription.ID, ResourceGroup: g.Name, Type: ResourceType})
	if err != nil {
		return nil, 0, err
	}
	type item struct {
		at  int64
		out any
	}
	var items []item
	for _, r := range list {
		rec, err := decodeRecord(r)
		if err != nil {
			return nil, 0, err
		}
		if state != "" && !strings.EqualFold(state, rec.ProvisioningState) {
			continue
		}
		items = append(items, item{rec.Timestamp.UnixNano(), s.render(r, rec)})
	}
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].at > items[j-1].at; j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
	out := []any{}
	for _, it := range items {
		out = append(out, it.out)
	}
	return map[string]any{"value": out}, http.StatusOK, nil
}

var stateFilterRE = regexp.MustCompile(`(?i)^\s*provisioningState\s+eq\s+'([A-Za-z]+)'\s*$`)

func stateFilter(f string) (string, error) {
	if f == "" {
		return "", nil
	}
	m := stateFilterRE.FindStringSubmatch(f)
	if m == nil {
		return "", keyhold.Errorc(keyhold.EInvalid, "InvalidFilter", "The $filter '%s' is not supported; use provisioningState eq 'Failed' (or another state).", f)
	}
	return m[1], nil
}

// validate answers POST .../validate: 200 with the deployment as it would
// be, or 400 with the reason, without storing or deploying anything.
func (s *Service) validate(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	p, err := s.prepare(ctx, rr)
	if err != nil {
		if keyhold.ErrorCode(err) != keyhold.EInvalid {
			return nil, 0, err
		}
		status, body := httpapi.AzureErrorOf(err)
		rr.Writer.Header().Set("x-ms-error-code", body.Error.Code)
		return map[string]any{"error": body.Error}, status, nil
	}
	params := map[string]any{}
	for name, v := range p.compiled.params {
		entry := map[string]any{"type": p.compiled.paramType[name]}
		if !isSecure(p.compiled.paramType[name]) {
			entry["value"] = v
		}
		params[name] = entry
	}
	var validated []any
	for _, i := range p.compiled.order {
		r := p.compiled.resources[i]
		validated = append(validated, map[string]any{"id": r.ID})
	}
	sum := sha256.Sum256(p.text)
	return map[string]any{
		"id":   deploymentID(rr.Params),
		"name": rr.Params["deploymentName"],
		"type": ResourceType,
		"properties": map[string]any{
			"templateHash":       hex.EncodeToString(sum[:8]),
			"parameters":         params,
			"mode":               p.body.Properties.Mode,
			"provisioningState":  StateSucceeded,
			"timestamp":          s.now().UTC(),
			"duration":           "PT0S",
			"correlationId":      newUUID(),
			"validatedResources": validated,
			"validationLevel":    "Template",
		},
	}, http.StatusOK, nil
}

// cancel answers POST .../cancel: 204, and the deployment ends Canceled
// after the resource in flight.
func (s *Service) cancel(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	r, _, err := s.load(ctx, rr)
	if err != nil {
		return nil, 0, err
	}
	_, _, err = s.update(ctx, r.ID, false, func(rec *record) error {
		if !rec.active() {
			return keyhold.Errorc(keyhold.EConflict, "DeploymentCannotBeCancelled",
				"The deployment '%s' cannot be canceled: it has already ended (state: %s).", r.Name, rec.ProvisioningState)
		}
		rec.CancelRequested = true
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	s.cancelLocal(r.ID, errCanceled)
	return nil, http.StatusNoContent, nil
}

func (s *Service) exportTemplate(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	_, rec, err := s.load(ctx, rr)
	if err != nil {
		return nil, 0, err
	}
	return map[string]any{"template": rec.Template}, http.StatusOK, nil
}

// operationStatus answers the Azure-AsyncOperation poll.
func (s *Service) operationStatus(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	r, rec, err := s.load(ctx, rr)
	if err != nil {
		return nil, 0, err
	}
	if !strings.EqualFold(rec.RunID, rr.Params["operationId"]) {
		return nil, 0, keyhold.Errorc(keyhold.ENotFound, "OperationNotFound",
			"The operation '%s' of deployment '%s' could not be found; the deployment has been started again since.", rr.Params["operationId"], r.Name)
	}
	out := map[string]any{"status": rec.ProvisioningState}
	if rec.active() {
		rr.Writer.Header().Set("Retry-After", strconv.Itoa(max(1, int(s.cfg.RetryAfter.Seconds()))))
	}
	if rec.Error != nil {
		out["error"] = rec.Error
	}
	return out, http.StatusOK, nil
}

func (s *Service) renderOperation(depID string, op *operation) map[string]any {
	props := map[string]any{
		"provisioningOperation": "Create",
		"provisioningState":     op.State,
		"timestamp":             op.Timestamp,
		"duration":              durationISO(op.Timestamp.Sub(op.StartedAt)),
		"targetResource": map[string]any{
			"id": op.TargetID, "resourceType": op.TargetType, "resourceName": op.TargetName,
		},
	}
	if op.ServiceRequestID != "" {
		props["serviceRequestId"] = op.ServiceRequestID
	}
	if op.StatusCode != "" {
		props["statusCode"] = op.StatusCode
	}
	if op.Error != nil {
		props["statusMessage"] = map[string]any{"status": StateFailed, "error": op.Error}
	}
	return map[string]any{
		"id":          depID + "/operations/" + op.OperationID,
		"operationId": op.OperationID,
		"properties":  props,
	}
}

func (s *Service) listOperations(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	r, rec, err := s.load(ctx, rr)
	if err != nil {
		return nil, 0, err
	}
	out := []any{}
	for _, op := range rec.Operations {
		out = append(out, s.renderOperation(r.ID, op))
	}
	return map[string]any{"value": out}, http.StatusOK, nil
}

func (s *Service) getOperation(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	r, rec, err := s.load(ctx, rr)
	if err != nil {
		return nil, 0, err
	}
	for _, op := range rec.Operations {
		if strings.EqualFold(op.OperationID, rr.Params["operationId"]) {
			return s.renderOperation(r.ID, op), http.StatusOK, nil
		}
	}
	return nil, 0, keyhold.Errorc(keyhold.ENotFound, "DeploymentOperationNotFound",
		"The operation '%s' of deployment '%s' could not be found.", rr.Params["operationId"], r.Name)
}
