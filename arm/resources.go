package arm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
)

// ResourceType is a kind of resource the framework serves: it routes by id,
// checks the api-version, the provider registration, the resource group and
// RBAC (<type>/read, /write, /delete on the resource id), keeps systemData,
// tags and ETags, stores the resource and lists it. The type validates and
// interprets what only it understands.
//
// Optional interfaces add to it: Router for routes that are not plain CRUD
// on a resource id (sub-routes, actions, collections), Locator for the
// locations the provider metadata lists.
type ResourceType interface {
	// Type returns the full type, e.g. "Microsoft.KeyVault/vaults" or
	// "Microsoft.KeyVault/vaults/keys" for a child type.
	Type() string
	// APIVersions returns the api-versions the type accepts.
	APIVersions() []string
	// Put validates a PUT and returns the resource to store with status 200
	// or 201 (0 picks 201 for a new resource, 200 otherwise), or an error
	// (a keyhold.Error with ARM's detail code) to send instead.
	Put(ctx context.Context, req *PutRequest) (*keyhold.Resource, int, error)
	// Patch applies a PATCH to req.Existing and returns the resource to store.
	Patch(ctx context.Context, req *PutRequest) (*keyhold.Resource, error)
	// Delete is called before the framework removes r from the store, so
	// that the type can refuse or clean up. Inside a request, TxFrom(ctx)
	// is the transaction the removal runs in.
	Delete(ctx context.Context, r *keyhold.Resource) error
	// Render returns the JSON body for r in GET, PUT, PATCH and list
	// responses. DefaultRender gives ARM's usual shape.
	Render(r *keyhold.Resource) any
}

// PutRequest is what a ResourceType gets for a PUT or PATCH.
type PutRequest struct {
	// ID is the resource id from the path.
	ID armid.ID
	// APIVersion is the request's api-version.
	APIVersion string
	// Caller is the authenticated caller.
	Caller *keyhold.Caller
	// Subscription and Group are where the resource lives; Group is nil for
	// subscription-level resources.
	Subscription *keyhold.Subscription
	Group        *keyhold.ResourceGroup
	// Body is the raw request body.
	Body []byte
	// Resource is the body parsed into ARM's envelope (location normalized,
	// tags, kind, sku, identity, properties) with ID, Type, Name,
	// SubscriptionID and ResourceGroup filled in from the path. For PATCH,
	// fields absent from the body are zero.
	Resource *keyhold.Resource
	// Existing is the stored resource, nil when a PUT creates it.
	Existing *keyhold.Resource
	// Store is the transaction the write runs in; changes made through it
	// commit with the resource or not at all.
	Store keyhold.Store
	// Now is the request's time.
	Now time.Time
}

// Locator is implemented by resource types that exist only in some
// locations; others are listed in every Keyhold region.
type Locator interface {
	Locations() []string
}

// Router is implemented by resource types that serve routes beyond CRUD on
// their resource ids: sub-routes such as vaults/{name}/accessPolicies/{op},
// subscription-level collections such as deletedVaults, and actions such as
// checkNameAvailability or purge.
type Router interface {
	Routes() []Route
}

// Route is one extra route. The framework matches Method and Pattern, checks
// the api-version (APIVersions, or the type's), that the subscription belongs
// to the caller's tenant, and that the caller may perform Action at the
// route's scope, then calls Handle.
type Route struct {
	// Method is the HTTP method.
	Method string
	// Pattern is the path with {param} placeholders, each matching one
	// segment; literal segments match case-insensitively. A
	// {subscriptionId} placeholder names the subscription to check.
	Pattern string
	// Action is the ARM action checked and written to the audit log, such as
	// "Microsoft.KeyVault/vaults/accessPolicies/write". Empty means the
	// framework checks nothing: Handle authorizes itself with
	// RouteRequest.Allowed, as a query over many scopes must.
	Action string
	// Scope returns the scope Action is checked at; nil means the longest
	// prefix of the path that is a valid resource id or scope.
	Scope func(params map[string]string) string
	// APIVersions overrides the type's api-versions.
	APIVersions []string
	// Handle serves the request and returns the response body and status,
	// or an error to send in ARM's error shape. A nil body with status 0 means
	// Handle wrote the response itself.
	Handle func(ctx context.Context, req *RouteRequest) (any, int, error)
}

// RouteRequest is what a Route's Handle gets.
type RouteRequest struct {
	HTTP         *http.Request
	Writer       http.ResponseWriter
	Params       map[string]string // placeholder values, keyed by name as written in the pattern
	APIVersion   string
	Caller       *keyhold.Caller
	Subscription *keyhold.Subscription // nil for tenant-level routes
	Scope        armid.ID
	Store        keyhold.Store
	Now          time.Time
	// Allowed reports whether the caller may perform action at scope, from
	// grants loaded once per request.
	Allowed func(action string, scope armid.ID) (bool, error)
}

type boundRoute struct {
	Route
	rt   ResourceType
	segs []string
}

// Register adds a resource type, and its routes if it is a Router. A type
// registered twice replaces the first.
func (s *Server) Register(t ResourceType) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(t.Type())
	s.types[key] = t
	s.routes = slices.DeleteFunc(s.routes, func(b boundRoute) bool { return strings.EqualFold(b.rt.Type(), t.Type()) })
	if r, ok := t.(Router); ok {
		for _, rt := range r.Routes() {
			s.routes = append(s.routes, boundRoute{Route: rt, rt: t, segs: strings.Split(strings.Trim(rt.Pattern, "/"), "/")})
		}
	}
}

func (s *Server) typeFor(typ string) ResourceType {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.types[strings.ToLower(typ)]
}

func (s *Server) registeredTypes() []ResourceType {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]ResourceType, 0, len(s.types))
	for _, t := range s.types {
		out = append(out, t)
	}
	return out
}

// matchRoute finds the registered route for method and path. Routes whose
// patterns have fewer placeholders win, so that literal routes beat generic
// ones.
func (s *Server) matchRoute(method string, segs []string) (boundRoute, map[string]string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best boundRoute
	var bestParams map[string]string
	found := false
	for _, b := range s.routes {
		if b.Method != method || len(b.segs) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, p := range b.segs {
			if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
				params[p[1:len(p)-1]] = segs[i]
			} else if !strings.EqualFold(p, segs[i]) {
				ok = false
				break
			}
		}
		if ok && (!found || len(params) < len(bestParams)) {
			best, bestParams, found = b, params, true
		}
	}
	return best, bestParams, found
}

func (s *Server) serveRoute(q *request, b boundRoute, params map[string]string) error {
	versions := b.APIVersions
	if len(versions) == 0 {
		versions = b.rt.APIVersions()
	}
	if err := checkVersion(q, versions); err != nil {
		return err
	}
	rr := &RouteRequest{HTTP: q.r, Writer: q.w, Params: params, APIVersion: q.apiVersion, Caller: q.caller, Store: s.store, Now: s.now().UTC(),
		Allowed: func(action string, scope armid.ID) (bool, error) { return s.allows(q, action, scope) }}
	if eq(q.segs[0], "subscriptions") {
		sub, err := s.subscription(q, q.segs[1])
		if err != nil {
			return err
		}
		rr.Subscription = sub
	}
	var scope armid.ID
	if b.Scope != nil {
		id, err := armid.Parse(b.Scope(params))
		if err != nil {
			return err
		}
		scope = id
	} else {
		scope = longestScope(q.segs)
	}
	rr.Scope = scope
	if b.Action != "" {
		if err := s.authorize(q, b.Action, scope); err != nil {
			return err
		}
	}
	body, status, err := b.Handle(q.ctx, rr)
	if err != nil {
		return err
	}
	if body == nil && status == 0 {
		return nil
	}
	if status == 0 {
		status = http.StatusOK
	}
	if body == nil {
		q.w.WriteHeader(status)
		return nil
	}
	httpapi.WriteJSON(q.w, status, body)
	return nil
}

// longestScope returns the longest prefix of segs that parses as an id.
func longestScope(segs []string) armid.ID {
	for n := len(segs); n > 0; n-- {
		if id, err := armid.Parse("/" + strings.Join(segs[:n], "/")); err == nil {
			return id
		}
	}
	return armid.Root
}

type txKey struct{}

func withTx(ctx context.Context, tx keyhold.Store) context.Context {
	return context.WithValue(ctx, txKey{}, tx)
}

// TxFrom returns the store transaction a ResourceType.Delete runs in, or
// nil outside one.
func TxFrom(ctx context.Context) keyhold.Store {
	tx, _ := ctx.Value(txKey{}).(keyhold.Store)
	return tx
}

// envelope is ARM's common resource body.
type envelope struct {
	Location   *string           `json:"location"`
	Tags       map[string]string `json:"tags"`
	Kind       string            `json:"kind"`
	SKU        json.RawMessage   `json:"sku"`
	Identity   json.RawMessage   `json:"identity"`
	Properties json.RawMessage   `json:"properties"`
}

// resourceNotFound is ARM's 404 for a resource id.
func resourceNotFound(id armid.ID) error {
	typ := id.Type()
	if id.ResourceGroup() == "" {
		return keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound",
			"The Resource '%s/%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", typ, strings.Join(id.Names(), "/"))
	}
	return keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
		typ, strings.Join(id.Names(), "/"), id.ResourceGroup())
}

// lookupType returns the registered type for typ, or ARM's error for an
// unknown namespace or type, or for an api-version the type does not take.
func (s *Server) lookupType(q *request, typ string) (ResourceType, error) {
	ns, rest, _ := strings.Cut(typ, "/")
	rt := s.typeFor(typ)
	if rt == nil {
		if _, ok := s.catalogue()[strings.ToLower(ns)]; !ok {
			return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidResourceNamespace", "The resource namespace '%s' is invalid.", ns)
		}
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidResourceType",
			"The resource type '%s' could not be found in the namespace '%s' for api version '%s'.", rest, ns, q.apiVersion)
	}
	if !slices.ContainsFunc(rt.APIVersions(), func(v string) bool { return eq(v, q.apiVersion) }) {
		return nil, keyhold.Errorc(keyhold.EInvalid, "NoRegisteredProviderFound",
			"No registered resource provider found for location '%s' and API version '%s' for type '%s'. The supported api-versions are '%s'. The supported locations are '%s'.",
			"global", q.apiVersion, rest, strings.Join(rt.APIVersions(), ", "), strings.Join(locationsOf(rt), ", "))
	}
	return rt, nil
}

func locationsOf(rt ResourceType) []string {
	if l, ok := rt.(Locator); ok {
		return l.Locations()
	}
	return regionNames()
}

// serveGeneric serves resource ids and collections of registered types.
func (s *Server) serveGeneric(q *request) error {
	path := "/" + strings.Join(q.segs, "/")
	id, err := armid.Parse(path)
	if err == nil && id.IsResource() {
		if id.SubscriptionID() == "" {
			return keyhold.Errorc(keyhold.EInvalid, "InvalidResourceType",
				"The resource type '%s' is not available at the tenant level.", id.Type())
		}
		sub, err := s.subscription(q, id.SubscriptionID())
		if err != nil {
			return err
		}
		return s.serveResource(q, sub, id)
	}
	if len(q.segs)%2 == 1 {
		if coll, ok := s.parseCollection(q.segs); ok {
			return coll(q)
		}
	}
	if err != nil {
		return err
	}
	return notFoundPath(q)
}

// parseCollection recognises .../providers/{ns}/{type} and
// {resourceId}/{childType} and returns the handler for the list.
func (s *Server) parseCollection(segs []string) (func(*request) error, bool) {
	n := len(segs)
	last := segs[n-1]
	if n >= 3 && eq(segs[n-3], "providers") {
		scope, err := armid.Parse("/" + strings.Join(segs[:n-3], "/"))
		if err != nil && n > 3 {
			return nil, false
		}
		if n == 3 {
			scope = armid.Root
		}
		typ := segs[n-2] + "/" + last
		return func(q *request) error { return s.listCollection(q, scope, typ) }, true
	}
	parent, err := armid.Parse("/" + strings.Join(segs[:n-1], "/"))
	if err != nil || !parent.IsResource() {
		return nil, false
	}
	typ := parent.Type() + "/" + last
	return func(q *request) error { return s.listCollection(q, parent, typ) }, true
}

func (s *Server) serveResource(q *request, sub *keyhold.Subscription, id armid.ID) error {
	rt, err := s.lookupType(q, id.Type())
	if err != nil {
		return err
	}
	typ := rt.Type()
	switch q.method() {
	case http.MethodGet, http.MethodHead:
		if err := s.authorize(q, typ+"/read", id); err != nil {
			return err
		}
		r, err := s.store.GetResource(q.ctx, id.String())
		if q.method() == http.MethodHead {
			// armresources CheckExistenceByID reads 204 or 404.
			switch {
			case err == nil:
				q.w.WriteHeader(http.StatusNoContent)
			case keyhold.IsNotFound(err):
				q.w.WriteHeader(http.StatusNotFound)
			default:
				return err
			}
			return nil
		}
		if keyhold.IsNotFound(err) {
			return resourceNotFound(id)
		}
		if err != nil {
			return err
		}
		q.w.Header().Set("ETag", r.ETag)
		httpapi.WriteJSON(q.w, http.StatusOK, rt.Render(r))
		return nil
	case http.MethodPut, http.MethodPatch:
		return s.writeResource(q, sub, id, rt)
	case http.MethodDelete:
		if err := s.authorize(q, typ+"/delete", id); err != nil {
			return err
		}
		found := true
		hctx, hooks := withCommitHooks(q.ctx)
		var gone []*keyhold.RoleAssignment
		err := s.store.InTx(q.ctx, func(tx keyhold.Store) error {
			r, err := tx.GetResource(q.ctx, id.String())
			if keyhold.IsNotFound(err) {
				found = false
				return nil
			}
			if err != nil {
				return err
			}
			if err := checkIfMatch(q.r, r); err != nil {
				return err
			}
			ctx := withTx(hctx, tx)
			children, err := tx.ListResources(ctx, keyhold.ResourceFilter{SubscriptionID: sub.ID, ResourceGroup: id.ResourceGroup()})
			if err != nil {
				return err
			}
			for _, c := range children {
				cid, err := armid.Parse(c.ID)
				if err == nil && !cid.Equal(id) && cid.IsUnder(id) {
					if err := s.deleteResource(ctx, tx, c); err != nil {
						return err
					}
				}
			}
			if err := s.deleteResource(ctx, tx, r); err != nil {
				return err
			}
			gone, err = deleteAssignmentsUnder(ctx, tx, sub.TenantID, id)
			return err
		})
		if err != nil {
			return err
		}
		hooks.run()
		s.publishAssignments(q.ctx, gone, "deleted with its resource, the")
		if !found {
			q.w.WriteHeader(http.StatusNoContent)
			return nil
		}
		q.w.WriteHeader(http.StatusOK)
		return nil
	}
	return methodNotAllowed(q)
}

// deleteResource lets r's type clean up, then removes it.
func (s *Server) deleteResource(ctx context.Context, tx keyhold.Store, r *keyhold.Resource) error {
	if rt := s.typeFor(r.Type); rt != nil {
		if err := rt.Delete(ctx, r); err != nil {
			return err
		}
	}
	if err := tx.DeleteResource(ctx, r.ID); err != nil && !keyhold.IsNotFound(err) {
		return err
	}
	return nil
}

func (s *Server) writeResource(q *request, sub *keyhold.Subscription, id armid.ID, rt ResourceType) error {
	typ := rt.Type()
	if err := s.authorize(q, typ+"/write", id); err != nil {
		return err
	}
	if q.method() == http.MethodPut {
		st, err := s.providerState(q.ctx, sub.ID, id.Namespace())
		if err != nil {
			return err
		}
		if st != keyhold.StateRegistered {
			return keyhold.Errorc(keyhold.EConflict, "MissingSubscriptionRegistration",
				"The subscription is not registered to use namespace '%s'. See https://aka.ms/rps-not-found for how to register subscriptions.",
				s.canonicalNamespace(id.Namespace()))
		}
	}
	body, err := readBody(q.r)
	if err != nil {
		return err
	}
	var env envelope
	if err := httpapi.Unmarshal(body, &env, "InvalidRequestContent"); err != nil {
		return err
	}
	if err := validateTags(env.Tags); err != nil {
		return err
	}
	now := s.now().UTC()
	var out *keyhold.Resource
	status := http.StatusOK
	ctx, hooks := withCommitHooks(q.ctx)
	err = s.store.InTx(q.ctx, func(tx keyhold.Store) error {
		req := &PutRequest{ID: id, APIVersion: q.apiVersion, Caller: q.caller, Subscription: sub, Body: body, Store: tx, Now: now}
		if id.ResourceGroup() != "" {
			g, err := s.getGroup(q.ctx, tx, sub.ID, id.ResourceGroup())
			if err != nil {
				return err
			}
			req.Group = g
		}
		if parent := id.Parent(); parent.IsResource() && parent.Type() != "" && !id.Scope().Equal(parent) {
			if _, err := tx.GetResource(q.ctx, parent.String()); keyhold.IsNotFound(err) {
				return keyhold.Errorc(keyhold.ENotFound, "ParentResourceNotFound",
					"Can not perform requested operation on nested resource. Parent resource '%s' not found.", strings.Join(parent.Names(), "/"))
			} else if err != nil {
				return err
			}
		}
		existing, err := tx.GetResource(q.ctx, id.String())
		if keyhold.IsNotFound(err) {
			existing = nil
		} else if err != nil {
			return err
		}
		if err := checkIfMatch(q.r, existing); err != nil {
			return err
		}
		req.Existing = existing
		req.Resource = &keyhold.Resource{
			ID: id.String(), SubscriptionID: sub.ID, ResourceGroup: id.ResourceGroup(), Type: typ, Name: id.Name(),
			Kind: env.Kind, Tags: env.Tags, SKU: env.SKU, Identity: env.Identity, Properties: env.Properties,
		}
		if req.Group != nil {
			req.Resource.ResourceGroup = req.Group.Name
		}
		if env.Location != nil {
			req.Resource.Location = NormalizeLocation(*env.Location)
		}
		var res *keyhold.Resource
		if q.method() == http.MethodPut {
			var st int
			res, st, err = rt.Put(ctx, req)
			if err != nil {
				return err
			}
			switch {
			case st != 0:
				status = st
			case existing == nil:
				status = http.StatusCreated
			}
		} else {
			if existing == nil {
				return resourceNotFound(id)
			}
			res, err = rt.Patch(ctx, req)
			if err != nil {
				return err
			}
		}
		if res == nil {
			return keyhold.Internal("arm: "+typ, fmt.Errorf("the resource type returned no resource"))
		}
		// The framework owns identity and bookkeeping, whatever the type set.
		res.ID, res.SubscriptionID, res.ResourceGroup, res.Type, res.Name = req.Resource.ID, sub.ID, req.Resource.ResourceGroup, typ, id.Name()
		if existing != nil {
			res.ID, res.Name = existing.ID, existing.Name
			res.SystemData.CreatedBy, res.SystemData.CreatedByType, res.SystemData.CreatedAt =
				existing.SystemData.CreatedBy, existing.SystemData.CreatedByType, existing.SystemData.CreatedAt
		} else {
			res.SystemData.CreatedBy, res.SystemData.CreatedByType = actor(q.caller)
			res.SystemData.CreatedAt = now
		}
		res.SystemData.LastModifiedBy, res.SystemData.LastModifiedByType = actor(q.caller)
		res.SystemData.LastModifiedAt = now
		res.ETag = etag(res)
		if err := tx.PutResource(q.ctx, res); err != nil {
			return err
		}
		out = res
		return nil
	})
	if err != nil {
		return err
	}
	hooks.run()
	q.w.Header().Set("ETag", out.ETag)
	httpapi.WriteJSON(q.w, status, rt.Render(out))
	return nil
}

func readBody(r *http.Request) ([]byte, error) {
	var raw json.RawMessage
	if err := httpapi.DecodeJSON(r, &raw, "InvalidRequestContent"); err != nil {
		return nil, err
	}
	return raw, nil
}

// checkIfMatch applies If-Match and If-None-Match to the stored resource
// (nil if absent): 412 PreconditionFailed when they do not hold.
func checkIfMatch(r *http.Request, existing *keyhold.Resource) error {
	fail := keyhold.Errorc(keyhold.EConflict, "PreconditionFailed", "The condition specified using HTTP conditional header(s) is not met.")
	if m := r.Header.Get("If-Match"); m != "" {
		if existing == nil || (m != "*" && m != existing.ETag) {
			return fail
		}
	}
	if m := r.Header.Get("If-None-Match"); m != "" {
		if existing != nil && (m == "*" || m == existing.ETag) {
			return fail
		}
	}
	return nil
}

// etag derives a new ETag from the resource's content and change time.
func etag(r *keyhold.Resource) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// DefaultRender returns ARM's usual JSON for a resource: id, name, type,
// location, kind, tags, sku, identity, properties, systemData and etag.
func DefaultRender(r *keyhold.Resource) any {
	out := map[string]any{
		"id":         r.ID,
		"name":       r.Name,
		"type":       r.Type,
		"systemData": r.SystemData,
	}
	if r.Location != "" {
		out["location"] = r.Location
	}
	if r.Kind != "" {
		out["kind"] = r.Kind
	}
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	out["tags"] = tags
	if len(r.SKU) > 0 {
		out["sku"] = r.SKU
	}
	if len(r.Identity) > 0 {
		out["identity"] = r.Identity
	}
	out["properties"] = jsonOrNull(r.Properties)
	if r.ETag != "" {
		out["etag"] = r.ETag
	}
	return out
}

// listCollection answers GET on a collection of a type: top-level resources
// of a group or subscription, or children of a resource.
func (s *Server) listCollection(q *request, scope armid.ID, typ string) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	rt, err := s.lookupType(q, typ)
	if err != nil {
		return err
	}
	if scope.SubscriptionID() == "" {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidResourceType", "The resource type '%s' is not available at the tenant level.", typ)
	}
	sub, err := s.subscription(q, scope.SubscriptionID())
	if err != nil {
		return err
	}
	httpapi.Annotate(q.ctx, rt.Type()+"/read", scope.String())
	if scope.IsResourceGroup() {
		if _, err := s.getGroup(q.ctx, s.store, sub.ID, scope.ResourceGroup()); err != nil {
			return err
		}
	} else if scope.IsResource() {
		if _, err := s.store.GetResource(q.ctx, scope.String()); keyhold.IsNotFound(err) {
			return resourceNotFound(scope)
		} else if err != nil {
			return err
		}
	}
	list, err := s.store.ListResources(q.ctx, keyhold.ResourceFilter{SubscriptionID: sub.ID, ResourceGroup: scope.ResourceGroup(), Type: rt.Type()})
	if err != nil {
		return err
	}
	items := []any{}
	for _, r := range list {
		rid, err := armid.Parse(r.ID)
		if err != nil || !rid.IsUnder(scope) {
			continue
		}
		ok, err := s.allows(q, rt.Type()+"/read", rid)
		if err != nil {
			return err
		}
		if ok {
			items = append(items, rt.Render(r))
		}
	}
	return writePage(q, items)
}

// listResources answers GET /subscriptions/{s}/resources and
// /subscriptions/{s}/resourceGroups/{rg}/resources with every resource the
// caller may read, filtered by $filter resourceType, name, tagName and
// tagValue.
func (s *Server) listResources(q *request, sub *keyhold.Subscription, group string) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, resourcesVersions); err != nil {
		return err
	}
	scope, err := armid.NewSubscription(sub.ID)
	if err != nil {
		return err
	}
	if group != "" {
		if scope, err = armid.NewResourceGroup(sub.ID, group); err != nil {
			return err
		}
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/subscriptions/resources/read", scope.String())
	if group != "" {
		if _, err := s.getGroup(q.ctx, s.store, sub.ID, group); err != nil {
			return err
		}
	}
	clauses, err := parseFilter(q.r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	f := keyhold.ResourceFilter{SubscriptionID: sub.ID, ResourceGroup: group}
	var name string
	var tagClauses []clause
	for _, c := range clauses {
		switch {
		case !c.Func && c.Field == "resourcetype":
			f.Type = c.Value
		case !c.Func && c.Field == "name":
			name = c.Value
		case !c.Func && (c.Field == "tagname" || c.Field == "tagvalue"):
			tagClauses = append(tagClauses, c)
		default:
			return unsupportedFilter(c)
		}
	}
	matchTags, err := tagFilter(tagClauses)
	if err != nil {
		return err
	}
	list, err := s.store.ListResources(q.ctx, f)
	if err != nil {
		return err
	}
	items := []any{}
	for _, r := range list {
		if name != "" && !strings.EqualFold(r.Name, name) || !matchTags(r.Tags) {
			continue
		}
		rid, err := armid.Parse(r.ID)
		if err != nil {
			continue
		}
		ok, err := s.allows(q, r.Type+"/read", rid)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		item := map[string]any{"id": r.ID, "name": r.Name, "type": r.Type}
		if r.Location != "" {
			item["location"] = r.Location
		}
		if r.Kind != "" {
			item["kind"] = r.Kind
		}
		if len(r.SKU) > 0 {
			item["sku"] = r.SKU
		}
		if len(r.Identity) > 0 {
			item["identity"] = r.Identity
		}
		tags := r.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		item["tags"] = tags
		item["systemData"] = r.SystemData
		items = append(items, item)
	}
	return writePage(q, items)
}
