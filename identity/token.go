package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// maxFormBytes bounds a token request body. Real ones are well under 2 KB.
const maxFormBytes = 16 << 10

// Grant types of the token endpoint.
const (
	grantClientCredentials = "client_credentials"
	grantPassword          = "password"
	grantRefreshToken      = "refresh_token"
)

// oidcScopes are the OpenID Connect scopes MSAL adds to user flows; they ask
// for an ID token and a refresh token, not for a resource.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "offline_access": true, "email": true}

// oauthError is a token endpoint error in the shape of the Microsoft
// identity platform: an OAuth error code, an AADSTS number and a description.
type oauthError struct {
	status     int
	code       string // invalid_request, invalid_client, ...
	aadsts     int
	desc       string
	retryAfter time.Duration
}

func (e *oauthError) Error() string {
	return fmt.Sprintf("identity: %s: AADSTS%d: %s", e.code, e.aadsts, e.desc)
}

func errRequest(aadsts int, format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", aadsts: aadsts, desc: fmt.Sprintf(format, args...)}
}

func errMissing(param string) *oauthError {
	return errRequest(900144, "The request body must contain the following parameter: '%s'.", param)
}

var errBadCredentials = &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50126,
	desc: "Error validating credentials due to invalid username or password."}

// tokenResponse is the token endpoint's success body.
type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

// handleToken serves POST /{tenant}/oauth2/v2.0/token.
func (s *Service) handleToken(w http.ResponseWriter, r *http.Request) {
	resp, err := s.token(r.Context(), r)
	if err != nil {
		var oe *oauthError
		if !errors.As(err, &oe) {
			httpapi.Logger(r.Context()).Error("identity: token request failed", "err", err.Error())
			oe = &oauthError{status: http.StatusInternalServerError, code: "server_error", aadsts: 90100, desc: "An error occurred while processing the request."}
		}
		s.writeOAuthError(w, r, oe)
		return
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("Pragma", "no-cache")
	httpapi.WriteJSON(w, http.StatusOK, resp)
}

func (s *Service) writeOAuthError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	trace := httpapi.RequestID(r.Context())
	if !isGUID(trace) {
		trace, _ = s.newID()
	}
	corr := r.Header.Get("client-request-id")
	if !isGUID(corr) {
		corr, _ = s.newID()
	}
	ts := s.now().UTC().Format("2006-01-02 15:04:05Z")
	desc := fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", e.aadsts, e.desc, trace, corr, ts)
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(int64((e.retryAfter+time.Second-1)/time.Second)))
	}
	w.Header().Set("Cache-Control", "no-store, no-cache")
	w.Header().Set("x-ms-error-code", e.code)
	httpapi.WriteJSON(w, e.status, map[string]any{
		"error":             e.code,
		"error_description": desc,
		"error_codes":       []int{e.aadsts},
		"timestamp":         ts,
		"trace_id":          trace,
		"correlation_id":    corr,
	})
}

// parseTokenForm reads the form of a token request: form-encoded, at most
// maxFormBytes, each parameter once.
func parseTokenForm(r *http.Request) (url.Values, *oauthError) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errRequest(900144, "The request body must be application/x-www-form-urlencoded.")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBytes+1))
	if err != nil {
		return nil, errRequest(900144, "The request body could not be read.")
	}
	if len(body) > maxFormBytes {
		return nil, errRequest(90015, "The request body is larger than %d bytes.", maxFormBytes)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errRequest(900144, "The request body is not valid form data.")
	}
	for k, v := range form {
		if len(v) > 1 {
			// Two values for one name let a proxy and the server disagree on which counts.
			return nil, errRequest(90017, "The parameter '%s' is given more than once.", safeParam(k))
		}
	}
	return form, nil
}

// safeParam trims a caller-chosen parameter name before it is echoed.
func safeParam(k string) string {
	var b strings.Builder
	for _, c := range k {
		if b.Len() >= 64 {
			break
		}
		if c >= 0x20 && c < 0x7f {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func (s *Service) token(ctx context.Context, r *http.Request) (*tokenResponse, error) {
	form, oe := parseTokenForm(r)
	if oe != nil {
		return nil, oe
	}
	grant := form.Get("grant_type")
	if grant == "" {
		return nil, errMissing("grant_type")
	}
	if form.Get("client_id") == "" {
		return nil, errMissing("client_id")
	}
	tenantSeg := r.PathValue("tenant")
	switch grant {
	case grantClientCredentials:
		return s.clientCredentials(ctx, tenantSeg, form)
	case grantPassword:
		return s.passwordGrant(ctx, tenantSeg, form)
	case grantRefreshToken:
		return s.refreshGrant(ctx, tenantSeg, form)
	}
	return nil, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", aadsts: 70003,
		desc: fmt.Sprintf("The app requested an unsupported grant type '%s'.", safeParam(grant))}
}

// resolveTenant maps the {tenant} path segment to a tenant: a tenant id or
// its default domain. "common" and "organizations" return nil, so that the
// user decides; other names are unknown tenants.
func (s *Service) resolveTenant(ctx context.Context, seg string) (*keyhold.Tenant, error) {
	low := strings.ToLower(seg)
	if low == "common" || low == "organizations" {
		return nil, nil
	}
	notFound := errRequest(90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", safeParam(seg))
	if isGUID(seg) {
		t, err := s.store.GetTenant(ctx, low)
		if keyhold.IsNotFound(err) {
			t, err = s.store.GetTenant(ctx, seg)
		}
		if keyhold.IsNotFound(err) {
			return nil, notFound
		}
		return t, err
	}
	if !strings.Contains(seg, ".") {
		return nil, notFound
	}
	ts, err := s.store.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.DefaultDomain != "" && strings.EqualFold(t.DefaultDomain, seg) {
			return t, nil
		}
	}
	return nil, notFound
}

// resourceScope reads the scope parameter: one resource (as "<resource>/.default"
// or "<resource>/<permission>") and any OpenID scopes. It returns the
// audience, the resource scopes as requested (for the response), and whether
// only ".default" was asked, which client credentials require.
func (s *Service) resourceScope(scope string, tenant string) (aud string, granted []string, dflt bool, err error) {
	dflt = true
	for _, sc := range strings.Fields(scope) {
		if oidcScopes[strings.ToLower(sc)] {
			continue
		}
		var res string
		switch {
		case strings.HasSuffix(sc, "/.default"):
			res = strings.TrimSuffix(sc, "/.default")
		case strings.LastIndex(sc, "/") > len("https://"):
			res = sc[:strings.LastIndex(sc, "/")]
			dflt = false
		default:
			return "", nil, false, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", aadsts: 70011,
				desc: fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", safeParam(sc))}
		}
		a, ok := s.audience(res)
		if !ok {
			return "", nil, false, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", aadsts: 500011,
				desc: fmt.Sprintf("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", safeParam(res), safeParam(tenant))}
		}
		if aud != "" && aud != a {
			return "", nil, false, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", aadsts: 28000,
				desc: "Provided value for the input parameter scope is not valid because it contains more than one resource."}
		}
		aud = a
		granted = append(granted, sc)
	}
	return aud, granted, dflt, nil
}

// clientCredentials serves the client credentials grant of a service
// principal with a client secret.
func (s *Service) clientCredentials(ctx context.Context, tenantSeg string, form url.Values) (*tokenResponse, error) {
	clientID := form.Get("client_id")
	t, err := s.resolveTenant(ctx, tenantSeg)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errRequest(50059, "No tenant-identifying information found in either the request or implied by any provided credentials.")
	}
	scope := form.Get("scope")
	if scope == "" {
		return nil, errMissing("scope")
	}
	aud, granted, dflt, err := s.resourceScope(scope, t.ID)
	if err != nil {
		return nil, err
	}
	if aud == "" || !dflt {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_scope", aadsts: 1002012,
			desc: fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", safeParam(scope))}
	}
	if form.Get("client_assertion") != "" {
		return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000219,
			desc: "Client assertions are not supported by Keyhold; use a client secret."}
	}
	secretStr := form.Get("client_secret")
	if secretStr == "" {
		return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000218,
			desc: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
	}
	secret := keyhold.NewSecret([]byte(secretStr))

	p, err := s.appByClientID(ctx, t.ID, clientID)
	if err != nil {
		return nil, err
	}
	key := "app:" + strings.ToLower(clientID)
	now := s.now()
	if wait, locked := s.limiter.locked(key, now); locked {
		return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 50053, retryAfter: wait,
			desc: fmt.Sprintf("Too many sign-in attempts with a wrong client secret for app '%s'. Try again in %d seconds.", clientID, int(wait.Seconds()+0.5))}
	}
	creds, err := s.store.ListCredentials(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	matched, expired := false, false
	for _, c := range creds {
		if c.Kind != keyhold.CredentialClientSecret || !s.verifySecret(c.Hash, secret) {
			continue
		}
		if !c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt) {
			expired = true
			continue
		}
		matched = true
		break
	}
	if !matched {
		s.limiter.fail(key, now)
		s.log.Warn("identity: client secret refused", "tenant", t.ID, "appId", clientID, "expired", expired)
		if expired {
			return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000222,
				desc: fmt.Sprintf("The provided client secret keys for app '%s' are expired. Create new keys for your app, or consider using certificate credentials for added security.", clientID)}
		}
		return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000215,
			desc: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}
	}
	s.limiter.succeed(key)
	if p.Disabled {
		return nil, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", aadsts: 7000112,
			desc: fmt.Sprintf("Application '%s'(%s) is disabled.", clientID, p.DisplayName)}
	}
	at, exp, err := s.accessToken(p, aud, clientID, now)
	if err != nil {
		return nil, err
	}
	s.log.Info("identity: token issued", "grant", grantClientCredentials, "tenant", t.ID, "principal", p.ID, "aud", aud)
	return &tokenResponse{
		TokenType:    "Bearer",
		Scope:        strings.Join(granted, " "),
		ExpiresIn:    int64(exp.Sub(now) / time.Second),
		ExtExpiresIn: int64(exp.Sub(now) / time.Second),
		AccessToken:  at,
	}, nil
}

// appByClientID returns the service principal (or managed identity) of
// tenantID with the client id, or unauthorized_client as Entra ID answers
// for an application it does not know.
func (s *Service) appByClientID(ctx context.Context, tenantID, clientID string) (*keyhold.Principal, error) {
	notFound := &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", aadsts: 700016,
		desc: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", safeParam(clientID), tenantID)}
	if !isGUID(clientID) {
		return nil, notFound
	}
	ps, err := s.store.FindPrincipals(ctx, keyhold.PrincipalFilter{TenantID: tenantID, AppID: strings.ToLower(clientID)})
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 && clientID != strings.ToLower(clientID) {
		ps, err = s.store.FindPrincipals(ctx, keyhold.PrincipalFilter{TenantID: tenantID, AppID: clientID})
		if err != nil {
			return nil, err
		}
	}
	for _, p := range ps {
		if p.Type == keyhold.PrincipalServicePrincipal || p.Type == keyhold.PrincipalManagedIdentity {
			return p, nil
		}
	}
	return nil, notFound
}

// checkPublicClient checks the client_id of a user flow: a first-party
// public client, or an enabled service principal of the user's tenant.
func (s *Service) checkPublicClient(ctx context.Context, tenantID, clientID string) error {
	if _, ok := PublicClientIDs[strings.ToLower(clientID)]; ok {
		return nil
	}
	p, err := s.appByClientID(ctx, tenantID, clientID)
	if err != nil {
		return err
	}
	if p.Type != keyhold.PrincipalServicePrincipal {
		return &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", aadsts: 700016,
			desc: fmt.Sprintf("Application with identifier '%s' cannot be used to sign in users.", clientID)}
	}
	if p.Disabled {
		return &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", aadsts: 7000112,
			desc: fmt.Sprintf("Application '%s'(%s) is disabled.", clientID, p.DisplayName)}
	}
	return nil
}

// userKey names a user in the limiter by the name it signs in with, so that
// a name that does not exist is limited exactly like one that does.
func userKey(upn string) string { return "user:" + strings.ToLower(upn) }

// passwordGrant serves the resource owner password grant of a user.
func (s *Service) passwordGrant(ctx context.Context, tenantSeg string, form url.Values) (*tokenResponse, error) {
	clientID := form.Get("client_id")
	username, password := form.Get("username"), form.Get("password")
	switch {
	case username == "":
		return nil, errMissing("username")
	case password == "":
		return nil, errMissing("password")
	case form.Get("scope") == "":
		return nil, errMissing("scope")
	}
	t, err := s.resolveTenant(ctx, tenantSeg)
	if err != nil {
		return nil, err
	}
	tenantName := tenantSeg
	if t != nil {
		tenantName = t.ID
	}
	aud, granted, _, err := s.resourceScope(form.Get("scope"), tenantName)
	if err != nil {
		return nil, err
	}
	if aud == "" {
		// Only OpenID scopes: Entra ID answers with a token for its directory API.
		aud, granted = AudienceGraph, []string{AudienceGraph + "/.default"}
	}
	if t != nil {
		if err := s.checkPublicClient(ctx, t.ID, clientID); err != nil {
			return nil, err
		}
	}

	key := userKey(username)
	now := s.now()
	if wait, locked := s.limiter.locked(key, now); locked {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50053, retryAfter: wait,
			desc: fmt.Sprintf("The account is locked because of too many sign-in attempts with a wrong password. Try again in %d seconds.", int(wait.Seconds()+0.5))}
	}
	sec := keyhold.NewSecret([]byte(password))
	u, cred, err := s.checkUserPassword(ctx, t, username, sec)
	if err != nil {
		return nil, err
	}
	if u == nil {
		s.limiter.fail(key, now)
		s.log.Warn("identity: password refused", "tenant", tenantName)
		return nil, errBadCredentials
	}
	s.limiter.succeed(key)
	if t == nil {
		// The user decided the tenant; now the client must belong to it too.
		if err := s.checkPublicClient(ctx, u.TenantID, clientID); err != nil {
			return nil, err
		}
	}
	if u.Disabled {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50057,
			desc: "The user account is disabled."}
	}
	return s.userTokens(u, cred, aud, granted, clientID, form.Get("client_info") == "1", now)
}

// checkUserPassword finds the user named username (in t, or in any tenant if
// t is nil) and checks the password. It returns a nil user, and spends the
// same time, whether the user does not exist or the password is wrong.
func (s *Service) checkUserPassword(ctx context.Context, t *keyhold.Tenant, username string, password keyhold.Secret) (*keyhold.Principal, string, error) {
	f := keyhold.PrincipalFilter{Type: keyhold.PrincipalUser, UserPrincipalName: username}
	if t != nil {
		f.TenantID = t.ID
	}
	var users []*keyhold.Principal
	if checkUPN(username, "") == nil {
		var err error
		if users, err = s.store.FindPrincipals(ctx, f); err != nil {
			return nil, "", err
		}
	}
	if len(users) != 1 {
		// No such user (or, across tenants, no single one): burn the time a
		// real check takes so that the answer's delay says nothing.
		verifyPassword(s.dummy(), password)
		return nil, "", nil
	}
	u := users[0]
	creds, err := s.store.ListCredentials(ctx, u.ID)
	if err != nil {
		return nil, "", err
	}
	now := s.now()
	checked := false
	for _, c := range creds {
		if c.Kind != keyhold.CredentialPassword || (!c.ExpiresAt.IsZero() && !now.Before(c.ExpiresAt)) {
			continue
		}
		checked = true
		if verifyPassword(c.Hash, password) {
			return u, c.ID, nil
		}
	}
	if !checked {
		verifyPassword(s.dummy(), password)
	}
	return nil, "", nil
}

// dummy returns a password hash that nothing matches, made once.
func (s *Service) dummy() string {
	s.dummyOnce.Do(func() {
		b := make([]byte, 32)
		io.ReadFull(s.rand, b)
		s.dummyHash, _ = s.hashPassword(keyhold.NewSecret(b))
	})
	return s.dummyHash
}

// userTokens issues the access, ID and refresh tokens of a user flow.
func (s *Service) userTokens(u *keyhold.Principal, credID, aud string, granted []string, clientID string, clientInfo bool, now time.Time) (*tokenResponse, error) {
	at, exp, err := s.accessToken(u, aud, clientID, now)
	if err != nil {
		return nil, err
	}
	idt, err := s.sign(&claims{
		Aud: clientID, Iss: s.issuer(u.TenantID), Iat: now.Unix(), Nbf: now.Unix(), Exp: exp.Unix(),
		Name: u.DisplayName, Oid: u.ID, PreferredUsername: u.UserPrincipalName, Sub: u.ID, Tid: u.TenantID, Ver: "2.0",
	})
	if err != nil {
		return nil, err
	}
	rt, err := s.newRefreshToken(u, credID, clientID, now)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{
		TokenType:    "Bearer",
		Scope:        strings.Join(granted, " "),
		ExpiresIn:    int64(exp.Sub(now) / time.Second),
		ExtExpiresIn: int64(exp.Sub(now) / time.Second),
		AccessToken:  at,
		RefreshToken: rt,
		IDToken:      idt,
	}
	if clientInfo {
		ci, _ := json.Marshal(map[string]string{"uid": u.ID, "utid": u.TenantID})
		resp.ClientInfo = b64.EncodeToString(ci)
	}
	s.log.Info("identity: token issued", "tenant", u.TenantID, "principal", u.ID, "aud", aud)
	return resp, nil
}

// accessToken signs an access token of p for aud, requested by clientID.
func (s *Service) accessToken(p *keyhold.Principal, aud, clientID string, now time.Time) (string, time.Time, error) {
	uti, err := s.newID()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(s.lifetime)
	c := &claims{
		Aud: aud, Iss: s.issuer(p.TenantID), Iat: now.Unix(), Nbf: now.Unix(), Exp: exp.Unix(),
		AppID: clientID, Azp: clientID, Oid: p.ID, Sub: p.ID, Tid: p.TenantID,
		Uti: strings.ReplaceAll(uti, "-", ""), Ver: "2.0", Name: p.DisplayName,
	}
	switch p.Type {
	case keyhold.PrincipalUser:
		c.Idtyp = "user"
		c.UPN, c.PreferredUsername = p.UserPrincipalName, p.UserPrincipalName
		c.Scp = "user_impersonation"
		for _, r := range p.DirectoryRoles {
			if id, ok := keyhold.DirectoryRoles[r]; ok {
				c.Wids = append(c.Wids, id)
			}
		}
	case keyhold.PrincipalServicePrincipal, keyhold.PrincipalManagedIdentity:
		c.Idtyp = "app"
		c.MIResourceID = p.ResourceID
	default:
		return "", time.Time{}, keyhold.Errorf(keyhold.EInvalid, "identity: a %s cannot hold a token", p.Type)
	}
	tok, err := s.sign(c)
	if err != nil {
		return "", time.Time{}, keyhold.Internal("identity: sign token", err)
	}
	return tok, exp, nil
}

// IssueToken issues an access token of p for audience without a credential:
// for managed identities, whose resource asks on their behalf, and for
// Keyhold's own use. It returns EInvalid for an unknown audience or a group,
// ENotFound if p no longer exists and EForbidden if it is disabled.
func (s *Service) IssueToken(ctx context.Context, p *keyhold.Principal, audience string) (string, time.Time, error) {
	if p == nil {
		return "", time.Time{}, keyhold.Errorf(keyhold.EInvalid, "identity: no principal to issue a token for")
	}
	aud, ok := s.audience(strings.TrimSuffix(audience, "/.default"))
	if !ok {
		return "", time.Time{}, keyhold.Errorf(keyhold.EInvalid, "identity: %q is not an audience Keyhold issues tokens for", audience)
	}
	cur, err := s.store.GetPrincipal(ctx, p.ID)
	if err != nil {
		return "", time.Time{}, s.storeErr("issue token", err)
	}
	if cur.Disabled {
		return "", time.Time{}, keyhold.Errorf(keyhold.EForbidden, "identity: principal %q is disabled", cur.ID)
	}
	clientID := cur.AppID
	if clientID == "" {
		clientID = cur.ID
	}
	return s.accessToken(cur, aud, clientID, s.now())
}

// refreshClaims is the sealed content of a refresh token. Sealing rather
// than signing keeps it opaque, as Entra ID's are, and ties it to the master
// key.
type refreshClaims struct {
	V        int    `json:"v"`
	Oid      string `json:"oid"`
	Tid      string `json:"tid"`
	ClientID string `json:"cid"`
	CredID   string `json:"crd"` // the password it was issued under
	Iat      int64  `json:"iat"`
	Exp      int64  `json:"exp"`
}

func (s *Service) newRefreshToken(u *keyhold.Principal, credID, clientID string, now time.Time) (string, error) {
	b, err := json.Marshal(refreshClaims{V: 1, Oid: u.ID, Tid: u.TenantID, ClientID: strings.ToLower(clientID), CredID: credID,
		Iat: now.Unix(), Exp: now.Add(s.rtLife).Unix()})
	if err != nil {
		return "", err
	}
	return "KH1." + base64.RawURLEncoding.EncodeToString(s.seal.Seal(labelRefreshToken, b)), nil
}

// refreshGrant serves the refresh token grant that MSAL uses to get a token
// for another resource, or a new one, without the password.
func (s *Service) refreshGrant(ctx context.Context, tenantSeg string, form url.Values) (*tokenResponse, error) {
	clientID := form.Get("client_id")
	raw := form.Get("refresh_token")
	if raw == "" {
		return nil, errMissing("refresh_token")
	}
	bad := &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 9002313, desc: "Invalid request. Request is malformed or invalid."}
	t, err := s.resolveTenant(ctx, tenantSeg)
	if err != nil {
		return nil, err
	}
	enc, ok := strings.CutPrefix(raw, "KH1.")
	if !ok || len(enc) > 4096 {
		return nil, bad
	}
	sealed, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, bad
	}
	plain, err := s.seal.Open(labelRefreshToken, sealed)
	if err != nil {
		return nil, bad
	}
	var rc refreshClaims
	err = json.Unmarshal(plain.Reveal(), &rc)
	plain.Wipe()
	if err != nil || rc.V != 1 {
		return nil, bad
	}
	now := s.now()
	if !now.Before(time.Unix(rc.Exp, 0)) {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 70008,
			desc: "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."}
	}
	if rc.ClientID != strings.ToLower(clientID) || (t != nil && t.ID != rc.Tid) {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 70000,
			desc: "Provided grant is invalid or malformed: the refresh token was issued to another client or tenant."}
	}
	revoked := &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50173,
		desc: "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password."}
	u, err := s.store.GetPrincipal(ctx, rc.Oid)
	if keyhold.IsNotFound(err) {
		return nil, revoked
	}
	if err != nil {
		return nil, err
	}
	creds, err := s.store.ListCredentials(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	current := false
	for _, c := range creds {
		if c.ID == rc.CredID && c.Kind == keyhold.CredentialPassword {
			current = true
		}
	}
	if !current {
		return nil, revoked
	}
	if u.Disabled {
		return nil, &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: 50057, desc: "The user account is disabled."}
	}
	aud, granted, _, err := s.resourceScope(form.Get("scope"), u.TenantID)
	if err != nil {
		return nil, err
	}
	if aud == "" {
		aud, granted = AudienceGraph, []string{AudienceGraph + "/.default"}
	}
	return s.userTokens(u, rc.CredID, aud, granted, clientID, form.Get("client_info") == "1", now)
}
