package server

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/admin"
	"github.com/keyhold/keyhold/audit"
	"github.com/keyhold/keyhold/dataverse"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/environment"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/identity"
)

// surface is one public API of the server: the paths it owns, the token
// audience it accepts ("" for none: the request is not authenticated), and
// its handler. Adding a surface is one entry in Server.surfaces.
type surface struct {
	name  string // label for metrics and the access log
	match func(path string) bool
	// host, when set, matches on the request's Host instead of its path:
	// every path of a matching host is the surface's.
	host     func(host string) bool
	audience string
	// moreAudiences are audiences it accepts besides audience.
	moreAudiences []string
	handler       http.Handler
	// challenge answers a failed authentication; nil means the resource
	// manager's 401 (Key Vault, for one, words its challenge differently).
	challenge func(w http.ResponseWriter, r *http.Request, err error)
}

// prefix matches p itself and everything below it.
func prefix(p string) func(string) bool {
	p = strings.TrimSuffix(p, "/")
	return func(path string) bool {
		return path == p || strings.HasPrefix(path, p+"/")
	}
}

// anyOf matches what any of matchers matches.
func anyOf(matchers ...func(string) bool) func(string) bool {
	return func(path string) bool {
		for _, m := range matchers {
			if m(path) {
				return true
			}
		}
		return false
	}
}

// prefixFold is prefix compared case-insensitively, as ARM compares paths.
func prefixFold(p string) func(string) bool {
	p = strings.ToLower(strings.TrimSuffix(p, "/"))
	return func(path string) bool {
		path = strings.ToLower(path)
		return path == p || strings.HasPrefix(path, p+"/")
	}
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// isIdentityPath reports whether the first segment of path names a tenant
// the way the identity platform does: a GUID, "common", "organizations", or
// a tenant's domain (which has a dot no other first segment has).
func isIdentityPath(path string) bool {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch strings.ToLower(first) {
	case "common", "organizations", "consumers":
		return true
	}
	return guidRE.MatchString(first) || isDomain(first)
}

// isDomain reports whether s looks like a DNS name: dotted, with a top
// label of letters ("v1.0" is not one).
func isDomain(s string) bool {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || len(s)-i-1 < 2 {
		return false
	}
	for _, c := range s[i+1:] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// surfaces lists the server's surfaces, most specific first.
//
// Later surfaces slot in here:
//
//	{name: "bap", match: prefixFold("/providers/Microsoft.BusinessAppPlatform"), audience: identity.AudiencePlatform, handler: bap.Handler()},
//	{name: "environment", match: prefix("/environments"), audience: identity.AudiencePlatform, handler: env.Handler()},
//	{name: "admin", match: prefix("/admin"), handler: admin.Handler()}, // pages authenticate with their own session cookie
//
// with the BAP entry above the resource manager's /providers entry.
func (s *Server) surfaces() []surface {
	// A token for a host-style vault's resource is good for path-style
	// vault URLs too, and the vault audience for host-style ones.
	var vaultAudiences []string
	if a := s.vault.HostAudience(); a != "" {
		vaultAudiences = []string{a}
	}
	return []surface{
		// Host-style vault URLs (--vault-domain) own every path of their
		// host, so that an unknown vault never reaches another surface.
		{name: "vault", host: func(h string) bool { _, ok := s.vault.VaultHost(h); return ok },
			audience: identity.AudienceVault, moreAudiences: vaultAudiences, handler: s.vault.Handler(), challenge: s.vault.Challenge},
		{name: "health", match: func(p string) bool { return p == "/healthz" }, handler: http.HandlerFunc(s.serveHealth)},
		{name: "metrics", match: func(p string) bool { return p == "/metrics" }, handler: s.metrics.Handler()},
		{name: "identity", match: isIdentityPath, handler: s.identity.Handler()},
		{name: "vault", match: prefix("/vaults"), audience: identity.AudienceVault, moreAudiences: vaultAudiences,
			handler: s.vault.Handler(), challenge: s.vault.Challenge},
		{name: "audit", match: prefix(audit.ListPath), audience: identity.AudienceManagement, handler: s.audit.Handler()},
		{name: "policy", match: prefix("/keyhold/v1/policies"), audience: identity.AudienceManagement, handler: s.health.ValidateHandler(s.authz)},
		// Legacy BYOK: a tenant's uploaded protection key, and putting an
		// environment under it (the starting point of a BYOK migration).
		{name: "environment", match: anyOf(prefix("/keyhold/v1/environments"), prefix(environment.TenantKeysPath)), audience: identity.AudiencePlatform, handler: s.environments.LifecycleHandler()},
		{name: "duties", match: prefix(duties.Path), audience: identity.AudienceManagement, handler: s.duties.Handler()},
		{name: "keyhold", match: prefix("/keyhold/v1"), audience: identity.AudienceManagement, handler: notFound("the Keyhold management API")},
		{name: "graph", match: prefix("/v1.0"), audience: identity.AudienceGraph, handler: s.identity.GraphHandler()},
		{name: "arm", match: prefixFold("/subscriptions"), audience: identity.AudienceManagement, handler: s.arm.Handler()},
		// The platform admin API shares /providers with the resource
		// manager, so it comes first.
		{name: "bap", match: prefixFold(environment.BAPPrefix), audience: identity.AudiencePlatform, handler: s.environments.Handler()},
		{name: "data", match: prefix("/environments"), audience: identity.AudiencePlatform, handler: s.data.Handler()},
		{name: "arm", match: prefixFold("/providers"), audience: identity.AudienceManagement, handler: s.arm.Handler()},
		{name: "arm", match: prefixFold("/tenants"), audience: identity.AudienceManagement, handler: s.arm.Handler()},
		// Pages authenticate with their own session cookie.
		{name: "admin", match: prefix(admin.Prefix), handler: s.admin.Handler()},
	}
}

// dataOpen adapts the environment service's Open, the data path's gate, to
// the data API.
func dataOpen(envs *environment.Service) dataverse.OpenFunc {
	return func(ctx context.Context, c *keyhold.Caller, id string, write bool) (dataverse.Handle, error) {
		e, err := envs.Open(ctx, c, id, write)
		if err != nil {
			return dataverse.Handle{}, err
		}
		return dataverse.Handle{ID: e.Environment.ID, Sealer: e}, nil
	}
}

// dispatch routes a request to its surface, authenticating it first when
// the surface asks for an audience. Unknown paths get 404 in the Azure shape.
func (s *Server) dispatch() http.Handler {
	surfaces := s.surfaces()
	unknown := notFound("")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sf := route(surfaces, r)
		if sf == nil {
			unknown.ServeHTTP(w, r)
			return
		}
		if st := stateFrom(r.Context()); st != nil {
			st.surface = sf.name
		}
		if sf.audience == "" {
			sf.handler.ServeHTTP(w, r)
			return
		}
		c, err := s.identity.Authenticate(r.Context(), r, append([]string{sf.audience}, sf.moreAudiences...)...)
		if err != nil {
			if sf.challenge != nil {
				sf.challenge(w, r, err)
			} else {
				s.challenge(w, r, err)
			}
			return
		}
		ctx := r.Context()
		audit.SetCaller(ctx, c)
		if st := stateFrom(ctx); st != nil && c.Principal != nil {
			st.principalID = c.Principal.ID
		}
		sf.handler.ServeHTTP(w, r.WithContext(keyhold.WithCaller(ctx, c)))
	})
}

// route returns the surface of r: the first whose host matcher takes r's
// Host, else the first whose path matcher takes its path.
func route(surfaces []surface, r *http.Request) *surface {
	for i := range surfaces {
		if surfaces[i].host != nil && surfaces[i].host(r.Host) {
			return &surfaces[i]
		}
	}
	for i := range surfaces {
		if surfaces[i].match != nil && surfaces[i].match(r.URL.Path) {
			return &surfaces[i]
		}
	}
	return nil
}

// challenge answers a failed authentication the way ARM does: 401, a
// WWW-Authenticate header pointing at the authority of the tenant that owns
// the subscription in the path (or "common"), and the Azure error body.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, err error) {
	if keyhold.ErrorCode(err) != keyhold.EUnauthenticated {
		// Authenticate failed for another reason (the store is down, say);
		// that is not the caller's fault and gets its own status.
		httpapi.WriteError(w, r, err)
		return
	}
	tenant := s.tenantForPath(r.Context(), r.URL.Path)
	desc := strings.NewReplacer(`"`, "'", "\\", "/", "\r", " ", "\n", " ").Replace(keyhold.ErrorMessage(err))
	w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+s.publicURL+tenant+`/oauth2/authorize", error="invalid_token", error_description="`+desc+`"`)
	httpapi.WriteError(w, r, err)
}

var subscriptionPath = regexp.MustCompile(`(?i)^/subscriptions/([0-9a-f-]{36})(?:/|$)`)

// tenantForPath names the tenant whose authority a client should ask for a
// token: the subscription's, when the path names one that exists.
func (s *Server) tenantForPath(ctx context.Context, path string) string {
	m := subscriptionPath.FindStringSubmatch(path)
	if m == nil {
		return "common"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	sub, err := s.store.GetSubscription(ctx, strings.ToLower(m[1]))
	if err != nil {
		return "common"
	}
	return sub.TenantID
}

// notFound answers 404 in the Azure shape; what names the API for the message.
func notFound(what string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg := "the path '%s' does not exist on this server"
		if what != "" {
			msg = "the path '%s' does not exist in " + what
		}
		httpapi.WriteError(w, r, keyhold.Errorc(keyhold.ENotFound, "NotFound", msg, r.URL.Path))
	})
}

// serveHealth reports whether the store answers. It reads a setting that
// every started server has, so a 200 means reads work end to end.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		httpapi.WriteJSON(w, http.StatusMethodNotAllowed, httpapi.AzureError{Error: httpapi.AzureErrorBody{Code: "MethodNotAllowed", Message: "use GET"}})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.GetSetting(ctx, healthSetting); err != nil && !keyhold.IsNotFound(err) {
		httpapi.Logger(r.Context()).Error("health check: the store does not answer", "err", err.Error())
		httpapi.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "the store does not answer"})
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
