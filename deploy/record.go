package deploy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
)

// record is a deployment as the store keeps it, in the resource's
// properties. Fields tagged with a leading "x" are Keyhold's own and are
// never rendered.
type record struct {
	ProvisioningState string          `json:"provisioningState"`
	Mode              string          `json:"mode"`
	CorrelationID     string          `json:"correlationId"`
	Timestamp         time.Time       `json:"timestamp"`
	StartedAt         time.Time       `json:"startedAt"`
	EndedAt           time.Time       `json:"endedAt,omitzero"`
	TemplateHash      string          `json:"templateHash"`
	ContentVersion    string          `json:"contentVersion,omitempty"`
	Outputs           map[string]any  `json:"outputs,omitempty"`
	OutputResources   []string        `json:"outputResources,omitempty"`
	Error             *errorBody      `json:"error,omitempty"`
	Template          json.RawMessage `json:"xTemplate"`
	// Parameters holds the given parameter values; secure ones are in
	// SecureParameters, sealed when the service has a key.
	Parameters       map[string]any    `json:"xParameters,omitempty"`
	SecureParameters map[string]string `json:"xSecureParameters,omitempty"`
	ParameterTypes   map[string]string `json:"xParameterTypes,omitempty"`
	Caller           callerRef         `json:"xCaller"`
	RunID            string            `json:"xRunId"`
	Owner            string            `json:"xOwner,omitempty"`
	Heartbeat        time.Time         `json:"xHeartbeat,omitzero"`
	CancelRequested  bool              `json:"xCancelRequested,omitempty"`
	Operations       []*operation      `json:"xOperations,omitempty"`
}

// callerRef is who started a deployment: enough to act as them again after
// a restart.
type callerRef struct {
	PrincipalID string `json:"principalId"`
	TenantID    string `json:"tenantId"`
	Audience    string `json:"audience,omitempty"`
	ClientID    string `json:"clientId,omitempty"`
}

// errorBody is ARM's error object, with details.
type errorBody struct {
	Code    string      `json:"code"`
	Message string      `json:"message"`
	Target  string      `json:"target,omitempty"`
	Details []errorBody `json:"details,omitempty"`
}

// operation is one resource applied by a deployment.
type operation struct {
	OperationID      string          `json:"operationId"`
	ResourceIndex    int             `json:"resourceIndex"`
	TargetID         string          `json:"targetId"`
	TargetType       string          `json:"targetType"`
	TargetName       string          `json:"targetName"`
	State            string          `json:"provisioningState"`
	StartedAt        time.Time       `json:"startedAt"`
	Timestamp        time.Time       `json:"timestamp"`
	StatusCode       string          `json:"statusCode,omitempty"`
	Error            *errorBody      `json:"error,omitempty"`
	ServiceRequestID string          `json:"serviceRequestId,omitempty"`
	Response         json.RawMessage `json:"xResponse,omitempty"`
}

// maxStoredResponse bounds the copy of a resource's body kept for
// reference() after a restart.
const maxStoredResponse = 256 << 10

func decodeRecord(r *keyhold.Resource) (*record, error) {
	var rec record
	if err := json.Unmarshal(r.Properties, &rec); err != nil {
		return nil, keyhold.Internal("deploy: stored deployment "+r.ID, err)
	}
	return &rec, nil
}

func encodeRecord(r *keyhold.Resource, rec *record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return keyhold.Internal("deploy: encoding deployment "+r.ID, err)
	}
	r.Properties = b
	return nil
}

// active reports whether the deployment has not ended.
func (rec *record) active() bool {
	return rec.ProvisioningState == StateAccepted || rec.ProvisioningState == StateRunning
}

// durationISO formats d as ARM's ISO 8601 duration, e.g. PT1.5S.
func durationISO(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return fmt.Sprintf("PT%sS", strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.7f", d.Seconds()), "0"), "."))
}

func (s *Service) duration(rec *record) string {
	end := rec.EndedAt
	if end.IsZero() {
		end = s.now()
	}
	return durationISO(end.Sub(rec.StartedAt))
}

// render returns ARM's DeploymentExtended for a stored deployment.
func (s *Service) render(r *keyhold.Resource, rec *record) map[string]any {
	params := map[string]any{}
	for name, v := range rec.Parameters {
		params[name] = map[string]any{"type": rec.ParameterTypes[name], "value": v}
	}
	for name := range rec.SecureParameters {
		params[name] = map[string]any{"type": rec.ParameterTypes[name]}
	}
	outRes := []any{}
	for _, id := range rec.OutputResources {
		outRes = append(outRes, map[string]any{"id": id})
	}
	props := map[string]any{
		"templateHash":      rec.TemplateHash,
		"parameters":        params,
		"mode":              rec.Mode,
		"provisioningState": rec.ProvisioningState,
		"timestamp":         rec.Timestamp,
		"duration":          s.duration(rec),
		"correlationId":     rec.CorrelationID,
		"outputResources":   outRes,
		"providers":         providersOf(rec),
		"dependencies":      dependenciesOf(rec),
		"validationLevel":   "Template",
	}
	if rec.Outputs != nil {
		props["outputs"] = rec.Outputs
	}
	if rec.Error != nil {
		props["error"] = rec.Error
	}
	out := map[string]any{
		"id":         r.ID,
		"name":       r.Name,
		"type":       ResourceType,
		"properties": props,
	}
	if r.Location != "" {
		out["location"] = r.Location
	}
	if len(r.Tags) > 0 {
		out["tags"] = r.Tags
	}
	return out
}

// providersOf lists the namespaces and types the deployment's operations
// touched, as ARM's providers property does.
func providersOf(rec *record) []any {
	byNS := map[string][]string{}
	var order []string
	for _, op := range rec.Operations {
		ns, typ, ok := strings.Cut(op.TargetType, "/")
		if !ok {
			continue
		}
		if _, seen := byNS[ns]; !seen {
			order = append(order, ns)
		}
		dup := false
		for _, t := range byNS[ns] {
			dup = dup || strings.EqualFold(t, typ)
		}
		if !dup {
			byNS[ns] = append(byNS[ns], typ)
		}
	}
	out := []any{}
	for _, ns := range order {
		var types []any
		for _, t := range byNS[ns] {
			types = append(types, map[string]any{"resourceType": t})
		}
		out = append(out, map[string]any{"namespace": ns, "resourceTypes": types})
	}
	return out
}

// dependenciesOf is ARM's dependencies property; the dependsOn graph is
// not kept once run, so it lists none.
func dependenciesOf(*record) []any { return []any{} }

// errNotOwner means another process has taken the deployment over.
var errNotOwner = errors.New("deploy: the deployment is run by another process now")

// errDeleted means the deployment record is gone.
var errDeleted = errors.New("deploy: the deployment was deleted")

// update changes a stored deployment in one transaction. With owned, it
// fails with errNotOwner when another process has claimed the deployment.
func (s *Service) update(ctx context.Context, id string, owned bool, fn func(rec *record) error) (*keyhold.Resource, *record, error) {
	var out *keyhold.Resource
	var outRec *record
	err := s.cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
		r, err := tx.GetResource(ctx, id)
		if keyhold.IsNotFound(err) {
			return errDeleted
		}
		if err != nil {
			return err
		}
		rec, err := decodeRecord(r)
		if err != nil {
			return err
		}
		if owned && rec.Owner != s.owner {
			return errNotOwner
		}
		if err := fn(rec); err != nil {
			return err
		}
		if owned {
			rec.Heartbeat = s.now().UTC()
		}
		if err := encodeRecord(r, rec); err != nil {
			return err
		}
		if err := tx.PutResource(ctx, r); err != nil {
			return err
		}
		out, outRec = r, rec
		return nil
	})
	return out, outRec, err
}

// sealParams keeps secure parameter values apart, sealed if there is a key.
func (s *Service) sealParams(rec *record, id string, given map[string]any, types map[string]string) error {
	rec.Parameters = map[string]any{}
	for name, v := range given {
		if !isSecure(types[name]) {
			rec.Parameters[name] = v
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return keyhold.Internal("deploy: encoding a secure parameter", err)
		}
		if rec.SecureParameters == nil {
			rec.SecureParameters = map[string]string{}
		}
		if s.cfg.Seal != nil {
			b = s.cfg.Seal.Seal(sealLabel(id, name), b)
			rec.SecureParameters[name] = "sealed:" + base64.StdEncoding.EncodeToString(b)
		} else {
			rec.SecureParameters[name] = "plain:" + base64.StdEncoding.EncodeToString(b)
		}
	}
	return nil
}

func sealLabel(id, name string) string {
	return "deploy/parameter/" + strings.ToLower(id) + "/" + strings.ToLower(name)
}

// givenParams returns every given parameter value, secure ones opened.
func (s *Service) givenParams(rec *record, id string) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range rec.Parameters {
		out[k] = v
	}
	for name, enc := range rec.SecureParameters {
		kind, b64, _ := strings.Cut(enc, ":")
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			return nil, keyhold.Internal("deploy: stored secure parameter", err)
		}
		if kind == "sealed" {
			if s.cfg.Seal == nil {
				return nil, keyhold.Internal("deploy: stored secure parameter", errors.New("sealed without a key"))
			}
			sec, err := s.cfg.Seal.Open(sealLabel(id, name), b)
			if err != nil {
				return nil, keyhold.Internal("deploy: opening a secure parameter", err)
			}
			b = sec.Reveal()
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, keyhold.Internal("deploy: stored secure parameter", err)
		}
		out[name] = v
	}
	return out, nil
}
