package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
)

// errCanceled is the cause of a run's end when its deployment is canceled.
var errCanceled = errors.New("deploy: the deployment was canceled")

// errStopping is the cause of a run's end when the process stops.
var errStopping = errors.New("deploy: the server is stopping")

// failedMessage is ARM's message for a deployment whose resource failed.
const failedMessage = "At least one resource deployment operation failed. Please list deployment operations for details. Please see https://aka.ms/arm-deployment-operations for usage details."

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// start runs the deployment id in the background. If this process is
// still finishing an earlier run of it, the new run starts right after.
func (s *Service) start(id string) {
	key := strings.ToLower(id)
	s.mu.Lock()
	if e, ok := s.running[key]; ok {
		e.again = true
		s.mu.Unlock()
		return
	}
	if s.base.Err() != nil {
		s.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancelCause(s.base)
	e := &runEntry{cancel: cancel}
	s.running[key] = e
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.run(ctx, id)
		cancel(nil)
		s.mu.Lock()
		again := e.again
		delete(s.running, key)
		s.mu.Unlock()
		if again {
			s.start(id)
		}
	}()
}

// runEntry is one run of this process.
type runEntry struct {
	cancel context.CancelCauseFunc
	again  bool // a new run of the same deployment was asked for meanwhile
}

// cancelLocal ends this process's run of id, if any, with cause.
func (s *Service) cancelLocal(id string, cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.running[strings.ToLower(id)]; ok {
		e.cancel(cause)
	}
}

// resume claims and starts the deployments that are still to be run and
// that no live process holds.
func (s *Service) resume(ctx context.Context) {
	list, err := s.cfg.Store.ListResources(ctx, keyhold.ResourceFilter{Type: ResourceType})
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("deploy: listing deployments to resume", "err", err.Error())
		}
		return
	}
	for _, r := range list {
		rec, err := decodeRecord(r)
		if err != nil || !rec.active() {
			continue
		}
		s.mu.Lock()
		_, mine := s.running[strings.ToLower(r.ID)]
		s.mu.Unlock()
		if mine || !s.claimable(rec) {
			continue
		}
		_, _, err = s.update(ctx, r.ID, false, func(rec *record) error {
			if !rec.active() || !s.claimable(rec) {
				return errNotOwner
			}
			rec.Owner, rec.Heartbeat = s.owner, s.now().UTC()
			return nil
		})
		if err != nil {
			continue
		}
		s.log.Info("resuming deployment", "deployment", r.ID, "state", rec.ProvisioningState)
		s.start(r.ID)
	}
}

// claimable reports whether this process may take rec over: nobody holds
// it, this process does, or its holder stopped renewing.
func (s *Service) claimable(rec *record) bool {
	return rec.Owner == "" || rec.Owner == s.owner || s.now().Sub(rec.Heartbeat) > s.cfg.LeaseTTL
}

// run executes a deployment, renewing this process's claim while it goes.
func (s *Service) run(ctx context.Context, id string) {
	hbDone := make(chan struct{})
	hbCtx, stopHB := context.WithCancel(ctx)
	go func() {
		defer close(hbDone)
		t := time.NewTicker(max(s.cfg.LeaseTTL/3, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				_, rec, err := s.update(hbCtx, id, true, func(*record) error { return nil })
				switch {
				case errors.Is(err, errNotOwner), errors.Is(err, errDeleted):
					s.cancelLocal(id, err)
				case err == nil && rec.CancelRequested:
					s.cancelLocal(id, errCanceled)
				}
			}
		}
	}()
	err := s.execute(ctx, id)
	stopHB()
	<-hbDone
	cause := context.Cause(ctx)
	// Writes after a cancellation need a context of their own.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	switch {
	case err == nil:
		return
	case errors.Is(cause, errCanceled) || errors.Is(err, errCanceled):
		s.finish(wctx, id, StateCanceled, nil)
	case errors.Is(err, errNotOwner), errors.Is(err, errDeleted), errors.Is(cause, errNotOwner), errors.Is(cause, errDeleted):
		s.log.Info("deployment left to another process or deleted", "deployment", id)
	case ctx.Err() != nil:
		// The process is stopping: leave the deployment Running and let go
		// of it, so that the next start resumes it at once.
		_, _, uerr := s.update(wctx, id, true, func(rec *record) error {
			rec.Owner, rec.Heartbeat = "", time.Time{}
			return nil
		})
		if uerr != nil && !errors.Is(uerr, errNotOwner) && !errors.Is(uerr, errDeleted) {
			s.log.Error("deploy: releasing a deployment at shutdown", "deployment", id, "err", uerr.Error())
		}
		s.log.Info("deployment paused until the next start", "deployment", id)
	default:
		var fe *failure
		if !errors.As(err, &fe) {
			s.log.Error("deployment failed", "deployment", id, "err", err.Error())
			fe = &failure{body: errorBody{Code: "DeploymentFailed", Message: failedMessage,
				Details: []errorBody{{Code: detailOf(err), Message: keyhold.ErrorMessage(err)}}}}
		}
		s.finish(wctx, id, StateFailed, &fe.body)
	}
}

// failure is a deployment's end with ARM's error.
type failure struct{ body errorBody }

func (f *failure) Error() string { return f.body.Message }

func detailOf(err error) string {
	if d := keyhold.ErrorDetail(err); d != "" {
		return d
	}
	switch keyhold.ErrorCode(err) {
	case keyhold.EInvalid:
		return "InvalidTemplate"
	case keyhold.EInternal:
		return "InternalServerError"
	}
	return "DeploymentFailed"
}

// finish records the end of a deployment.
func (s *Service) finish(ctx context.Context, id, state string, e *errorBody) {
	_, _, err := s.update(ctx, id, false, func(rec *record) error {
		if !rec.active() {
			return nil
		}
		rec.ProvisioningState, rec.Error = state, e
		rec.EndedAt = s.now().UTC()
		rec.Owner, rec.Heartbeat = "", time.Time{}
		for _, op := range rec.Operations {
			if op.State == StateRunning {
				op.State, op.Timestamp = state, rec.EndedAt
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDeleted) {
		s.log.Error("deploy: recording the end of a deployment", "deployment", id, "err", err.Error())
		return
	}
	s.log.Info("deployment ended", "deployment", id, "state", state)
}

// execute deploys the resources of a stored deployment in order, skipping
// those a previous run of the same deployment already deployed.
func (s *Service) execute(ctx context.Context, id string) error {
	res, rec, err := s.update(ctx, id, true, func(rec *record) error {
		if rec.ProvisioningState == StateAccepted {
			rec.ProvisioningState = StateRunning
		}
		return nil
	})
	if err != nil {
		return err
	}
	if rec.CancelRequested {
		return errCanceled
	}
	caller, err := s.callerOf(ctx, rec)
	if err != nil {
		return err
	}
	sub, err := s.cfg.Store.GetSubscription(ctx, res.SubscriptionID)
	if err != nil {
		return err
	}
	g, err := s.cfg.Store.GetResourceGroup(ctx, res.SubscriptionID, res.ResourceGroup)
	if keyhold.IsNotFound(err) {
		return keyhold.Errorc(keyhold.ENotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", res.ResourceGroup)
	}
	if err != nil {
		return err
	}
	raw, err := parseTemplateText(rec.Template)
	if err != nil {
		return err
	}
	given, err := s.givenParams(rec, res.ID)
	if err != nil {
		return err
	}
	c, err := compile(raw, given, site{subscriptionID: sub.ID, tenantID: sub.TenantID, subName: sub.DisplayName, group: g, deployment: res.Name})
	if err != nil {
		return err
	}
	results := map[int]map[string]any{} // resource index -> its body as deployed
	done := map[int]bool{}
	for _, op := range rec.Operations {
		if op.State == StateSucceeded {
			done[op.ResourceIndex] = true
			var body map[string]any
			if json.Unmarshal(op.Response, &body) == nil {
				results[op.ResourceIndex] = body
			}
		}
	}
	c.env.reference = func(target, apiVersion string, full bool) (any, error) {
		return s.reference(ctx, caller, res.ID, c, results, target, apiVersion, full)
	}
	for _, i := range c.order {
		if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
			return err
		}
		r := c.resources[i]
		if done[i] {
			continue
		}
		if r.Condition != nil {
			cv, err := c.env.evalValue(r.Condition)
			if err != nil {
				return resourceFailure(r, err)
			}
			b, ok := cv.(bool)
			if !ok {
				return resourceFailure(r, invalidTemplate("The condition of the template resource '%s' must be a Boolean.", r.Name))
			}
			if !b {
				continue
			}
		}
		body, err := c.env.evalValue(r.Body)
		if err != nil {
			return resourceFailure(r, invalidTemplate("The template resource '%s' is not valid: %s", r.Name, err.Error()))
		}
		if err := s.deployResource(ctx, caller, res.ID, r, body.(map[string]any), results); err != nil {
			return err
		}
	}
	outputs := map[string]any{}
	for name, o := range c.outputs {
		if o.Condition != nil {
			cv, err := c.env.evalValue(o.Condition)
			if err != nil {
				return keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate", "The output '%s' is not valid: %s", name, err.Error())
			}
			if b, ok := cv.(bool); ok && !b {
				continue
			}
		}
		v, err := c.env.evalValue(o.Value)
		if err != nil {
			return keyhold.Errorc(keyhold.EInvalid, "InvalidTemplate", "The output '%s' is not valid: %s", name, err.Error())
		}
		outputs[name] = map[string]any{"type": paramTypes[strings.ToLower(o.Type)], "value": v}
	}
	_, _, err = s.update(ctx, id, true, func(rec *record) error {
		rec.ProvisioningState = StateSucceeded
		rec.EndedAt = s.now().UTC()
		rec.Owner, rec.Heartbeat = "", time.Time{}
		if len(outputs) > 0 {
			rec.Outputs = outputs
		}
		return nil
	})
	if err == nil {
		s.log.Info("deployment succeeded", "deployment", id)
	}
	return err
}

// resourceFailure is the deployment's failure because of one resource.
func resourceFailure(r *templateResource, err error) error {
	return &failure{body: errorBody{Code: "DeploymentFailed", Message: failedMessage,
		Details: []errorBody{{Code: detailOf(err), Message: keyhold.ErrorMessage(err), Target: r.ID}}}}
}

// deployResource applies one resource and records it as an operation.
func (s *Service) deployResource(ctx context.Context, caller *keyhold.Caller, depID string, r *templateResource, body map[string]any, results map[int]map[string]any) error {
	opID := strings.ToUpper(strings.ReplaceAll(newUUID(), "-", "")[:16])
	var op *operation
	_, _, err := s.update(ctx, depID, true, func(rec *record) error {
		now := s.now().UTC()
		// A resource in flight when the last process stopped is tried again.
		for _, o := range rec.Operations {
			if o.ResourceIndex == r.Index && o.State == StateRunning {
				op = o
			}
		}
		if op == nil {
			op = &operation{OperationID: opID, ResourceIndex: r.Index}
			rec.Operations = append(rec.Operations, op)
		}
		*op = operation{OperationID: op.OperationID, ResourceIndex: r.Index, TargetID: r.ID, TargetType: r.Type,
			TargetName: r.Name, State: StateRunning, StartedAt: now, Timestamp: now}
		opID = op.OperationID
		return nil
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return keyhold.Internal("deploy: encoding a resource body", err)
	}
	resp := s.apply(ctx, caller, depID, http.MethodPut, r.ID, r.APIVersion, b)
	if resp.status == http.StatusAccepted {
		resp = s.await(ctx, caller, depID, r, resp)
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	ok := resp.status == http.StatusOK || resp.status == http.StatusCreated
	var stored json.RawMessage
	if ok {
		var m map[string]any
		if json.Unmarshal(resp.body, &m) == nil {
			results[r.Index] = m
			if len(resp.body) <= maxStoredResponse {
				stored = resp.body
			}
		}
	}
	var opErr *errorBody
	if !ok {
		opErr = errorOf(resp)
	}
	_, _, err = s.update(ctx, depID, true, func(rec *record) error {
		for _, o := range rec.Operations {
			if o.OperationID != opID {
				continue
			}
			o.Timestamp = s.now().UTC()
			o.StatusCode = statusText(resp.status)
			o.ServiceRequestID = resp.requestID
			o.Response = stored
			if ok {
				o.State = StateSucceeded
				if !containsFold(rec.OutputResources, r.ID) {
					rec.OutputResources = append(rec.OutputResources, r.ID)
				}
			} else {
				o.State, o.Error = StateFailed, opErr
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !ok {
		d := *opErr
		d.Target = r.ID
		return &failure{body: errorBody{Code: "DeploymentFailed", Message: failedMessage, Details: []errorBody{d}}}
	}
	return nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// statusText is how deployment operations spell an HTTP status: "OK",
// "Created", "BadRequest".
func statusText(code int) string {
	return strings.ReplaceAll(http.StatusText(code), " ", "")
}

// errorOf reads ARM's error body from a failed in-process response.
func errorOf(resp *response) *errorBody {
	var e struct {
		Error *errorBody `json:"error"`
	}
	if json.Unmarshal(resp.body, &e) == nil && e.Error != nil && e.Error.Code != "" {
		return e.Error
	}
	return &errorBody{Code: statusText(resp.status), Message: fmt.Sprintf("The resource manager answered %d %s.", resp.status, http.StatusText(resp.status))}
}

// await follows a resource that answered 202 until it settles, then reads
// the resource. A failed operation comes back as its error response.
func (s *Service) await(ctx context.Context, caller *keyhold.Caller, depID string, r *templateResource, resp *response) *response {
	for range 600 {
		loc := resp.header.Get("Azure-AsyncOperation")
		if loc == "" {
			loc = resp.header.Get("Location")
		}
		u, err := url.Parse(loc)
		if loc == "" || err != nil {
			break
		}
		wait := time.Second
		if n, err := strconv.Atoi(resp.header.Get("Retry-After")); err == nil && n >= 0 {
			wait = min(time.Duration(n)*time.Second, 30*time.Second)
		}
		select {
		case <-ctx.Done():
			return resp
		case <-time.After(wait):
		}
		next := s.apply(ctx, caller, depID, http.MethodGet, u.Path, u.Query().Get("api-version"), nil)
		if next.status >= 400 {
			return next
		}
		var st struct {
			Status string `json:"status"`
		}
		if next.status != http.StatusAccepted && (json.Unmarshal(next.body, &st) != nil || st.Status == "") {
			break // a Location poll that ended
		}
		switch strings.ToLower(st.Status) {
		case "succeeded":
			return s.apply(ctx, caller, depID, http.MethodGet, r.ID, r.APIVersion, nil)
		case "failed", "canceled":
			next.status = http.StatusConflict
			return next
		}
		if next.header.Get("Azure-AsyncOperation") == "" && next.header.Get("Location") == "" {
			next.header.Set("Azure-AsyncOperation", loc)
		}
		resp = next
	}
	return s.apply(ctx, caller, depID, http.MethodGet, r.ID, r.APIVersion, nil)
}

// reference resolves reference(target): a template resource deployed
// earlier in this run, or any resource by id (read as the caller).
func (s *Service) reference(ctx context.Context, caller *keyhold.Caller, depID string, c *compiled, results map[int]map[string]any, target, apiVersion string, full bool) (any, error) {
	pick := func(m map[string]any) any {
		if full {
			return m
		}
		if p, ok := lookup(m, "properties"); ok {
			return p
		}
		return map[string]any{}
	}
	if i := c.find(target); i >= 0 {
		m, ok := results[i]
		if !ok {
			return nil, evalErrorf("the resource '%s' is referenced before it is deployed; list it in dependsOn", target)
		}
		return pick(m), nil
	}
	id, err := armid.Parse(target)
	if err != nil || !id.IsResource() {
		return nil, evalErrorf("the resource '%s' is not defined in the template, and it is not a resource id", target)
	}
	if apiVersion == "" {
		return nil, evalErrorf("reference() of '%s', which this template does not deploy, needs its api-version: reference('%s', '<api-version>')", target, target)
	}
	m, err := s.referenceByID(ctx, caller, depID, id.String(), apiVersion)
	if err != nil {
		return nil, err
	}
	return pick(m), nil
}

// referenceByID reads a resource that the template does not deploy.
func (s *Service) referenceByID(ctx context.Context, caller *keyhold.Caller, depID, id, apiVersion string) (map[string]any, error) {
	resp := s.apply(ctx, caller, depID, http.MethodGet, id, apiVersion, nil)
	if resp.status != http.StatusOK {
		e := errorOf(resp)
		return nil, evalErrorf("the resource '%s' could not be read: %s (%s)", id, e.Message, e.Code)
	}
	var m map[string]any
	if err := json.Unmarshal(resp.body, &m); err != nil {
		return nil, evalErrorf("the resource '%s' is not a JSON object", id)
	}
	return m, nil
}

// response is what the resource manager answered an in-process request.
type response struct {
	status    int
	header    http.Header
	body      []byte
	requestID string
}

// recorder is the http.ResponseWriter of an in-process request.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.body.Len()+len(b) > 8<<20 {
		return 0, errors.New("deploy: response too large")
	}
	return r.body.Write(b)
}

// apply sends one request to the resource manager in-process, as caller:
// the request goes through the same authorization, validation and audit
// log as one from outside.
func (s *Service) apply(ctx context.Context, caller *keyhold.Caller, depID, method, path, apiVersion string, body []byte) (resp *response) {
	reqID := newUUID()
	ctx = keyhold.WithCaller(ctx, caller)
	ctx = httpapi.WithRequestID(ctx, reqID)
	ctx = httpapi.WithLogger(ctx, s.log.With("requestId", reqID, "deployment", depID))
	ctx, info := httpapi.WithInfo(ctx)
	info.Detail = "applied by deployment " + depID
	host := "keyhold.internal"
	if u, err := url.Parse(s.cfg.PublicURL); err == nil && u.Host != "" {
		host = u.Host
	}
	u := &url.URL{Scheme: "https", Host: host, Path: path, RawQuery: "api-version=" + url.QueryEscape(apiVersion)}
	var rd io.Reader = http.NoBody
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return &response{status: http.StatusBadRequest, header: http.Header{}, requestID: reqID,
			body: []byte(fmt.Sprintf(`{"error":{"code":"InvalidResourceId","message":%q}}`, "The resource id '"+path+"' cannot be requested."))}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("x-ms-request-id", reqID)
	req.Host = host
	req.RemoteAddr = "127.0.0.1:0"
	rec := &recorder{header: http.Header{}}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("deploy: the resource manager panicked on an in-process request", "panic", fmt.Sprint(p), "path", path)
			resp = &response{status: http.StatusInternalServerError, header: http.Header{}, requestID: reqID,
				body: []byte(`{"error":{"code":"InternalServerError","message":"internal error"}}`)}
		}
	}()
	s.cfg.ARM.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return &response{status: rec.status, header: rec.header, body: rec.body.Bytes(), requestID: reqID}
}

// callerOf rebuilds the caller who started a deployment, from the store,
// so that a resumed deployment acts with the principal's current groups
// and is refused if the principal is gone or disabled.
func (s *Service) callerOf(ctx context.Context, rec *record) (*keyhold.Caller, error) {
	p, err := s.cfg.Store.GetPrincipal(ctx, rec.Caller.PrincipalID)
	if keyhold.IsNotFound(err) || err == nil && (p.Disabled || !strings.EqualFold(p.TenantID, rec.Caller.TenantID)) {
		return nil, keyhold.Errorc(keyhold.EForbidden, "AuthorizationFailed",
			"The principal '%s' that started the deployment no longer exists or is disabled.", rec.Caller.PrincipalID)
	}
	if err != nil {
		return nil, err
	}
	groups, err := s.groupsOf(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return &keyhold.Caller{Principal: p, TenantID: rec.Caller.TenantID, GroupIDs: groups, Audience: rec.Caller.Audience, ClientID: rec.Caller.ClientID}, nil
}

// groupsOf returns the groups id belongs to, directly or through others.
func (s *Service) groupsOf(ctx context.Context, id string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	queue := []string{id}
	for len(queue) > 0 && len(out) < 1000 {
		next := queue[0]
		queue = queue[1:]
		gs, err := s.cfg.Store.ListMemberships(ctx, next)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			if !seen[g] {
				seen[g] = true
				out = append(out, g)
				queue = append(queue, g)
			}
		}
	}
	return out, nil
}
