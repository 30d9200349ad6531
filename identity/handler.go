package identity

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyhold/keyhold/httpapi"
)

// Handler returns the handler of the identity endpoints, which need no
// authentication:
//
//	POST /{tenant}/oauth2/v2.0/token
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	GET  /{tenant}/discovery/v2.0/keys (and /{tenant}/discovery/keys)
//	GET  /common/UserRealm/{username}?api-version=1.0 (any case of "UserRealm")
//	GET  /common/discovery/instance (AAD instance discovery, for clients that keep it on)
//
// {tenant} is a tenant id, a tenant's default domain, "common" or
// "organizations".
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.handleToken)
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleOpenIDConfig)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.handleKeys)
	mux.HandleFunc("GET /{tenant}/discovery/keys", s.handleKeys)
	mux.HandleFunc("GET /common/discovery/instance", s.handleInstanceDiscovery)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", s.handleAuthorize)
	// ServeMux matches case-sensitively; MSAL says "UserRealm", scripts often "userrealm".
	mux.HandleFunc("GET /{common}/{realm}/{username}", s.handleUserRealm)
	return mux
}

// handleOpenIDConfig serves the tenant's OpenID Connect metadata, with the
// fields MSAL checks (authorization_endpoint, token_endpoint, issuer) and
// those other OpenID clients read.
func (s *Service) handleOpenIDConfig(w http.ResponseWriter, r *http.Request) {
	seg := r.PathValue("tenant")
	t, err := s.resolveTenant(r.Context(), seg)
	if err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			oe.code = "invalid_tenant"
			s.writeOAuthError(w, r, oe)
			return
		}
		s.writeOAuthError(w, r, &oauthError{status: http.StatusInternalServerError, code: "server_error", aadsts: 90100, desc: "An error occurred while processing the request."})
		httpapi.Logger(r.Context()).Error("identity: openid configuration", "err", err.Error())
		return
	}
	name, issuerTenant := strings.ToLower(seg), "{tenantid}"
	if t != nil {
		name, issuerTenant = t.ID, t.ID
	}
	base := s.publicURL + url.PathEscape(name)
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s.publicURL, "https://"), "http://"), "/")
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.issuer(issuerTenant),
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post"},
		"grant_types_supported":                 []string{grantClientCredentials, grantPassword, grantRefreshToken},
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid",
			"preferred_username", "upn", "ver", "idtyp", "appid", "azp", "uti", "wids"},
		"request_uri_parameter_supported": false,
		"tenant_region_scope":             nil,
		"cloud_instance_name":             host,
		"cloud_graph_host_name":           host,
		"msgraph_host":                    host,
	})
}

// handleKeys serves the JSON Web Key Set that verifies Keyhold's tokens.
func (s *Service) handleKeys(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"keys": []jwk{publicJWK(&s.signer.PublicKey, s.kid)}})
}

// handleUserRealm answers MSAL's question before a password grant: is the
// account managed here or federated elsewhere? Every account is managed by
// Keyhold, and the answer depends only on the name's domain so that it says
// nothing about whether the user exists.
func (s *Service) handleUserRealm(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.PathValue("common"), "common") || !strings.EqualFold(r.PathValue("realm"), "userrealm") {
		http.NotFound(w, r)
		return
	}
	username := r.PathValue("username")
	domain := username
	if i := strings.LastIndex(username, "@"); i >= 0 && i < len(username)-1 {
		domain = username[i+1:]
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"ver":                 "1.0",
		"account_type":        "Managed",
		"domain_name":         safeParam(domain),
		"cloud_instance_name": "keyhold.internal",
		"cloud_audience_urn":  "urn:federation:Keyhold",
	})
}

// handleInstanceDiscovery answers AAD instance discovery, so that clients
// which do not turn it off find the tenant's metadata here too.
func (s *Service) handleInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := "common"
	if ae, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil {
		if seg, _, _ := strings.Cut(strings.TrimPrefix(ae.Path, "/"), "/"); seg != "" {
			tenant = seg
		}
	}
	host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(s.publicURL, "https://"), "http://"), "/")
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": s.publicURL + url.PathEscape(tenant) + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata": []map[string]any{{
			"preferred_network": host,
			"preferred_cache":   host,
			"aliases":           []string{host},
		}},
	})
}

// handleAuthorize exists because the metadata must name an authorization
// endpoint; Keyhold has no interactive sign-in.
func (s *Service) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	s.writeOAuthError(w, r, &oauthError{status: http.StatusBadRequest, code: "unsupported_response_type", aadsts: 70005,
		desc: "Keyhold has no interactive sign-in; use the client credentials or password grant at the token endpoint."})
}
