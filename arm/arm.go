// Package arm is Keyhold's resource manager: the Azure Resource Manager
// surface for subscriptions, resource groups, resource provider and feature
// registration, role definitions and role assignments, and a framework that
// serves any resource type registered with it (vaults, enterprise
// policies, ...) with ARM's routing, api-version checks, provider
// registration, RBAC, systemData, tags and ETags.
//
// Handler does no authentication: it trusts the *keyhold.Caller that the
// server put in the request context and answers 401 without one.
package arm

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/rbac"
)

// Config configures a Server.
type Config struct {
	Store keyhold.Store
	// Authz decides RBAC; nil means rbac.New(Store).
	Authz *rbac.Authorizer
	// Logger receives the server's own log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// RegistrationDelay is how long a provider or feature stays Registering
	// (or Unregistering) before it reads back Registered (Unregistered).
	RegistrationDelay time.Duration
	// Events receives events.RoleAssignmentChanged after a role assignment
	// is created or deleted, also when the deletion of its scope takes it
	// along; nil publishes nowhere.
	Events *events.Bus
	// Duties checks each role assignment before it is created, in the
	// same transaction; nil checks nothing.
	Duties *duties.Checker
}

// Server is the resource manager. Register resource types before serving;
// Register is safe to call concurrently with requests all the same.
type Server struct {
	store  keyhold.Store
	authz  *rbac.Authorizer
	log    *slog.Logger
	now    func() time.Time
	delay  time.Duration
	events *events.Bus
	duties *duties.Checker

	mu     sync.RWMutex
	types  map[string]ResourceType // by lower-case type
	routes []boundRoute
}

// New returns a Server for cfg.
func New(cfg Config) *Server {
	s := &Server{
		store:  cfg.Store,
		authz:  cfg.Authz,
		log:    cfg.Logger,
		now:    cfg.Now,
		delay:  cfg.RegistrationDelay,
		events: cfg.Events,
		duties: cfg.Duties,
		types:  map[string]ResourceType{},
	}
	if s.authz == nil {
		s.authz = rbac.New(cfg.Store)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// Handler returns the HTTP handler for the ARM URL space: /subscriptions/...
// and /providers/....
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

// request is one request on its way through the router.
type request struct {
	w          http.ResponseWriter
	r          *http.Request
	ctx        context.Context
	caller     *keyhold.Caller
	apiVersion string
	segs       []string
	grants     *rbac.Grants
}

func (q *request) method() string { return q.r.Method }

// Grants loads the caller's role grants once per request.
func (s *Server) grantsOf(q *request) (*rbac.Grants, error) {
	if q.grants == nil {
		g, err := s.authz.Grants(q.ctx, q.caller)
		if err != nil {
			return nil, err
		}
		q.grants = g
	}
	return q.grants, nil
}

// authorize records action and scope for the audit log and checks them
// against the caller's grants.
func (s *Server) authorize(q *request, action string, scope armid.ID) error {
	httpapi.Annotate(q.ctx, action, scope.String())
	g, err := s.grantsOf(q)
	if err != nil {
		return err
	}
	if !g.Allows(action, scope) {
		return rbac.Denied(q.caller, action, scope.String())
	}
	return nil
}

// allows is authorize without the audit note or error, for filtering lists.
func (s *Server) allows(q *request, action string, scope armid.ID) (bool, error) {
	g, err := s.grantsOf(q)
	if err != nil {
		return false, err
	}
	return g.Allows(action, scope), nil
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	c := keyhold.CallerFrom(r.Context())
	if c == nil || c.Principal == nil {
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EUnauthenticated, "AuthenticationFailed",
			"Authentication failed. The 'Authorization' header is missing."))
		return
	}
	path := r.URL.Path
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	var segs []string
	if path != "/" && path != "" {
		segs = strings.Split(strings.TrimPrefix(path, "/"), "/")
	}
	q := &request{w: w, r: r, ctx: r.Context(), caller: c, segs: segs, apiVersion: r.URL.Query().Get("api-version")}
	if q.apiVersion == "" {
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EInvalid, "MissingApiVersionParameter",
			"The api-version query parameter (?api-version=) is required for all requests."))
		return
	}
	if slices.Contains(segs, "") {
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.EInvalid, "InvalidResourceId", "The request path '%s' has an empty segment.", r.URL.Path))
		return
	}
	if err := s.route(q); err != nil {
		writeError(w, r, err)
	}
}

// writeError is httpapi.WriteError, except for the one ARM status that has
// no keyhold code: 412 for a failed If-Match or If-None-Match.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if keyhold.ErrorDetail(err) != "PreconditionFailed" {
		httpapi.WriteError(w, r, err)
		return
	}
	_, body := httpapi.AzureErrorOf(err)
	w.Header().Set("x-ms-error-code", body.Error.Code)
	httpapi.WriteJSON(w, http.StatusPreconditionFailed, body)
}

func eq(a, b string) bool { return strings.EqualFold(a, b) }

// route dispatches on the path. Handlers write their own success response
// and return errors for serve to write.
func (s *Server) route(q *request) error {
	segs := q.segs
	n := len(segs)
	if n == 0 {
		return notFoundPath(q)
	}
	if rt, params, ok := s.matchRoute(q.method(), segs); ok {
		return s.serveRoute(q, rt, params)
	}
	if i := authorizationIndex(segs); i >= 0 {
		return s.serveAuthorization(q, segs[:i], segs[i+2:])
	}
	switch {
	case eq(segs[0], "subscriptions"):
		if n == 1 {
			return s.listSubscriptions(q)
		}
		sub, err := s.subscription(q, segs[1])
		if err != nil {
			return err
		}
		if n == 2 {
			return s.getSubscription(q, sub)
		}
		switch strings.ToLower(segs[2]) {
		case "resourcegroups":
			switch {
			case n == 3:
				return s.listGroups(q, sub)
			case n == 4:
				return s.serveGroup(q, sub, segs[3])
			case n == 5 && eq(segs[4], "resources"):
				return s.listResources(q, sub, segs[3])
			case n >= 5 && eq(segs[4], "providers"):
				return s.serveGeneric(q)
			}
		case "resources":
			if n == 3 {
				return s.listResources(q, sub, "")
			}
		case "locations":
			if n == 3 {
				return s.listLocations(q, sub)
			}
		case "operationresults":
			if n == 4 {
				return s.operationResult(q, sub, segs[3])
			}
		case "providers":
			switch {
			case n == 3:
				return s.listProviders(q, sub)
			case n >= 5 && eq(segs[3], "Microsoft.Features"):
				return s.serveFeatures(q, sub, segs[4:])
			case n == 4:
				return s.getProvider(q, sub, segs[3])
			case n == 5 && (eq(segs[4], "register") || eq(segs[4], "unregister")):
				return s.registerProvider(q, sub, segs[3], eq(segs[4], "register"))
			default:
				return s.serveGeneric(q)
			}
		}
	case eq(segs[0], "tenants") && n == 1:
		return s.listTenants(q)
	case eq(segs[0], "providers"):
		switch n {
		case 1:
			return s.listTenantProviders(q)
		case 2:
			return s.getTenantProvider(q, segs[1])
		default:
			return s.serveGeneric(q)
		}
	}
	return notFoundPath(q)
}

func notFoundPath(q *request) error {
	return keyhold.Errorc(keyhold.ENotFound, "NotFound", "The requested path '%s' was not found.", q.r.URL.Path)
}

func methodNotAllowed(q *request) error {
	return keyhold.Errorc(keyhold.EInvalid, "MethodNotAllowed",
		"The requested resource does not support http method '%s'.", q.r.Method)
}

// authorizationIndex finds .../providers/Microsoft.Authorization/roleAssignments|roleDefinitions[/{name}]
// at the end of the path and returns the index of "providers", or -1.
func authorizationIndex(segs []string) int {
	for i := len(segs) - 3; i >= 0 && i >= len(segs)-4; i-- {
		if eq(segs[i], "providers") && eq(segs[i+1], "Microsoft.Authorization") &&
			(eq(segs[i+2], "roleAssignments") || eq(segs[i+2], "roleDefinitions")) {
			return i
		}
	}
	return -1
}

// subscription returns the subscription named in the path if it belongs to
// the caller's tenant. Another tenant's subscription is as absent as a
// missing one, so that callers cannot probe other tenants.
func (s *Server) subscription(q *request, id string) (*keyhold.Subscription, error) {
	if !armid.IsGUID(id) {
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidSubscriptionId",
			"The provided subscription identifier '%s' is malformed or invalid.", id)
	}
	sub, err := s.store.GetSubscription(q.ctx, id)
	if keyhold.IsNotFound(err) || err == nil && !eq(sub.TenantID, q.caller.TenantID) {
		return nil, keyhold.Errorc(keyhold.ENotFound, "SubscriptionNotFound", "The subscription '%s' could not be found.", id)
	}
	if err != nil {
		return nil, err
	}
	return sub, nil
}

// checkVersion returns an InvalidApiVersionParameter error unless the
// request's api-version is one of supported.
func checkVersion(q *request, supported []string) error {
	for _, v := range supported {
		if eq(v, q.apiVersion) {
			return nil
		}
	}
	return keyhold.Errorc(keyhold.EInvalid, "InvalidApiVersionParameter",
		"The api-version '%s' is invalid. The supported versions are '%s'.", q.apiVersion, strings.Join(supported, ","))
}

// baseURL is the scheme and host the client used, for nextLink and
// Location headers.
func baseURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}
