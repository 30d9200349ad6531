package identity

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

// Graph error codes.
const (
	graphBadRequest   = "Request_BadRequest"
	graphNotFound     = "Request_ResourceNotFound"
	graphDenied       = "Authorization_RequestDenied"
	graphInvalidToken = "InvalidAuthenticationToken"
)

// GraphHandler returns the handler of the directory API, a subset of
// Microsoft Graph v1.0 under /v1.0/: users, servicePrincipals, groups,
// directoryRoles, directoryObjects and me. It expects the server to have
// authenticated the request and put the *keyhold.Caller in its context. Any
// principal may read its own tenant's directory; only a Global Administrator
// may change it.
func (s *Service) GraphHandler() http.Handler {
	mux := http.NewServeMux()
	h := func(pattern string, fn func(*graphReq) error) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			s.serveGraph(w, r, fn)
		})
	}
	h("GET /v1.0/me", s.graphMe)
	h("GET /v1.0/users", s.graphListUsers)
	h("POST /v1.0/users", s.graphCreateUser)
	h("GET /v1.0/users/{id}", s.graphGetUser)
	h("PATCH /v1.0/users/{id}", s.graphUpdateUser)
	h("DELETE /v1.0/users/{id}", s.graphDeleteUser)
	h("GET /v1.0/users/{id}/memberOf", s.graphMemberOf)
	h("GET /v1.0/servicePrincipals", s.graphListSPs)
	h("POST /v1.0/servicePrincipals", s.graphCreateSP)
	h("GET /v1.0/servicePrincipals/{id}", s.graphGetSP)
	h("PATCH /v1.0/servicePrincipals/{id}", s.graphUpdateSP)
	h("DELETE /v1.0/servicePrincipals/{id}", s.graphDeleteObject("servicePrincipals", keyhold.PrincipalServicePrincipal))
	h("POST /v1.0/servicePrincipals/{id}/addPassword", s.graphAddPassword)
	h("POST /v1.0/servicePrincipals/{id}/removePassword", s.graphRemovePassword)
	h("GET /v1.0/servicePrincipals/{id}/memberOf", s.graphMemberOf)
	h("GET /v1.0/groups", s.graphListGroups)
	h("POST /v1.0/groups", s.graphCreateGroup)
	h("GET /v1.0/groups/{id}", s.graphGetGroup)
	h("DELETE /v1.0/groups/{id}", s.graphDeleteObject("groups", keyhold.PrincipalGroup))
	h("GET /v1.0/groups/{id}/members", s.graphGroupMembers)
	h("POST /v1.0/groups/{id}/members/$ref", s.graphAddGroupMember)
	h("DELETE /v1.0/groups/{id}/members/{member}/$ref", s.graphRemoveGroupMember)
	h("GET /v1.0/directoryRoles", s.graphListRoles)
	h("GET /v1.0/directoryRoles/{id}", s.graphGetRole)
	h("GET /v1.0/directoryRoles/{id}/members", s.graphRoleMembers)
	h("POST /v1.0/directoryRoles/{id}/members/$ref", s.graphAddRoleMember)
	h("DELETE /v1.0/directoryRoles/{id}/members/{member}/$ref", s.graphRemoveRoleMember)
	h("GET /v1.0/directoryObjects/{id}", s.graphGetObject)
	mux.HandleFunc("/v1.0/", func(w http.ResponseWriter, r *http.Request) {
		writeGraphError(w, r, keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: unsupported request: %s %s", r.Method, safeParam(r.URL.Path)))
	})
	return mux
}

// graphReq is one directory API request with its caller.
type graphReq struct {
	ctx    context.Context
	w      http.ResponseWriter
	r      *http.Request
	caller *keyhold.Caller
	tenant string
}

func (s *Service) serveGraph(w http.ResponseWriter, r *http.Request, fn func(*graphReq) error) {
	c := keyhold.CallerFrom(r.Context())
	if c == nil || c.Principal == nil {
		writeGraphError(w, r, keyhold.Errorc(keyhold.EUnauthenticated, graphInvalidToken, "Access token is empty."))
		return
	}
	g := &graphReq{ctx: r.Context(), w: w, r: r, caller: c, tenant: c.TenantID}
	if err := fn(g); err != nil {
		writeGraphError(w, r, err)
	}
}

// write annotates the request for the audit log and checks that the caller
// may change the directory. The annotation comes first so that refused
// attempts are audited too.
func (g *graphReq) write(action, path string) error {
	httpapi.Annotate(g.ctx, action, path)
	if !g.caller.Principal.HasDirectoryRole(keyhold.RoleGlobalAdministrator) {
		return keyhold.Errorc(keyhold.EForbidden, graphDenied, "Insufficient privileges to complete the operation.")
	}
	return nil
}

func (g *graphReq) json(status int, v any) error {
	httpapi.WriteJSON(g.w, status, v)
	return nil
}

func (g *graphReq) noContent() error {
	g.w.WriteHeader(http.StatusNoContent)
	return nil
}

// graphStatus maps keyhold codes to Graph's statuses: Graph answers 400, not
// 409, for a duplicate or a forbidden state change.
func graphStatus(code string) (int, string) {
	switch code {
	case keyhold.EInvalid, keyhold.EConflict:
		return http.StatusBadRequest, graphBadRequest
	case keyhold.EUnauthenticated:
		return http.StatusUnauthorized, graphInvalidToken
	case keyhold.EForbidden:
		return http.StatusForbidden, graphDenied
	case keyhold.ENotFound:
		return http.StatusNotFound, graphNotFound
	case keyhold.ETooManyRequests:
		return http.StatusTooManyRequests, "TooManyRequests"
	case keyhold.EUnavailable:
		return http.StatusServiceUnavailable, "serviceNotAvailable"
	}
	return http.StatusInternalServerError, "UnknownError"
}

// writeGraphError writes err in Graph's error shape. Internal causes go to
// the log only.
func writeGraphError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := graphStatus(keyhold.ErrorCode(err))
	if d := keyhold.ErrorDetail(err); d != "" {
		code = d
	}
	if status >= 500 {
		httpapi.Logger(r.Context()).Error("identity: graph request failed", "err", err.Error())
	}
	httpapi.WriteJSON(w, status, map[string]any{"error": map[string]any{
		"code":    code,
		"message": keyhold.ErrorMessage(err),
		"innerError": map[string]string{
			"date":              time.Now().UTC().Format(time.RFC3339),
			"request-id":        httpapi.RequestID(r.Context()),
			"client-request-id": safeParam(r.Header.Get("client-request-id")),
		},
	}})
}

// decodeGraph reads a JSON object body into v, refusing properties outside
// allowed (OData annotations aside), so that a misspelt property is an error
// rather than silently ignored.
func decodeGraph(r *http.Request, v any, allowed ...string) error {
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, 64<<10))
	if err != nil {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: the request body is too large or could not be read")
	}
	var m map[string]json.RawMessage
	if err := httpapi.Unmarshal(body, &m, graphBadRequest); err != nil {
		return err
	}
	for k := range m {
		if !strings.HasPrefix(k, "@odata.") && !slices.Contains(allowed, k) {
			return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: property '%s' does not exist on this type or cannot be set", safeParam(k))
		}
	}
	return httpapi.Unmarshal(body, v, graphBadRequest)
}

func notFound(id string) error {
	return keyhold.Errorc(keyhold.ENotFound, graphNotFound, "identity: resource '%s' does not exist or one of its queried reference-property objects are not present", safeParam(id))
}

// object returns the principal id of the caller's tenant, of type want
// ("" for any).
func (s *Service) object(g *graphReq, id string, want keyhold.PrincipalType) (*keyhold.Principal, error) {
	p, err := s.Principal(g.ctx, g.tenant, id)
	if keyhold.IsNotFound(err) || (err == nil && want != "" && p.Type != want &&
		!(want == keyhold.PrincipalServicePrincipal && p.Type == keyhold.PrincipalManagedIdentity)) {
		return nil, notFound(id)
	}
	return p, err
}

// Graph shapes of directory objects.

type graphUser struct {
	ODataType         string    `json:"@odata.type,omitempty"`
	ID                string    `json:"id"`
	DisplayName       string    `json:"displayName"`
	UserPrincipalName string    `json:"userPrincipalName"`
	AccountEnabled    bool      `json:"accountEnabled"`
	UserType          string    `json:"userType"`
	CreatedDateTime   time.Time `json:"createdDateTime"`
}

type graphPasswordCredential struct {
	KeyID               string     `json:"keyId"`
	DisplayName         *string    `json:"displayName"`
	Hint                string     `json:"hint"`
	StartDateTime       time.Time  `json:"startDateTime"`
	EndDateTime         *time.Time `json:"endDateTime"`
	CustomKeyIdentifier *string    `json:"customKeyIdentifier"`
	SecretText          *string    `json:"secretText"`
}

type graphSP struct {
	ODataType              string                    `json:"@odata.type,omitempty"`
	ID                     string                    `json:"id"`
	AppID                  string                    `json:"appId"`
	DisplayName            string                    `json:"displayName"`
	AccountEnabled         bool                      `json:"accountEnabled"`
	ServicePrincipalType   string                    `json:"servicePrincipalType"`
	AppOwnerOrganizationID string                    `json:"appOwnerOrganizationId"`
	AlternativeNames       []string                  `json:"alternativeNames"`
	PasswordCredentials    []graphPasswordCredential `json:"passwordCredentials"`
	CreatedDateTime        time.Time                 `json:"createdDateTime"`
}

type graphGroup struct {
	ODataType       string    `json:"@odata.type,omitempty"`
	ID              string    `json:"id"`
	DisplayName     string    `json:"displayName"`
	SecurityEnabled bool      `json:"securityEnabled"`
	MailEnabled     bool      `json:"mailEnabled"`
	CreatedDateTime time.Time `json:"createdDateTime"`
}

type graphRole struct {
	ID             string `json:"id"`
	RoleTemplateID string `json:"roleTemplateId"`
	DisplayName    string `json:"displayName"`
	Description    string `json:"description"`
	Members        []any  `json:"members"`
}

func toGraphUser(p *keyhold.Principal, typed bool) graphUser {
	u := graphUser{ID: p.ID, DisplayName: p.DisplayName, UserPrincipalName: p.UserPrincipalName,
		AccountEnabled: !p.Disabled, UserType: "Member", CreatedDateTime: p.CreatedAt}
	if typed {
		u.ODataType = "#microsoft.graph.user"
	}
	return u
}

func toGraphSP(p *keyhold.Principal, creds []*keyhold.Credential, typed bool) graphSP {
	sp := graphSP{ID: p.ID, AppID: p.AppID, DisplayName: p.DisplayName, AccountEnabled: !p.Disabled,
		ServicePrincipalType: "Application", AppOwnerOrganizationID: p.TenantID, AlternativeNames: []string{},
		PasswordCredentials: []graphPasswordCredential{}, CreatedDateTime: p.CreatedAt}
	if p.Type == keyhold.PrincipalManagedIdentity {
		sp.ServicePrincipalType = "ManagedIdentity"
		sp.AlternativeNames = []string{"isExplicit=False", p.ResourceID}
	}
	for _, c := range creds {
		sp.PasswordCredentials = append(sp.PasswordCredentials, toGraphCred(c))
	}
	if typed {
		sp.ODataType = "#microsoft.graph.servicePrincipal"
	}
	return sp
}

func toGraphCred(c *keyhold.Credential) graphPasswordCredential {
	gc := graphPasswordCredential{KeyID: c.ID, Hint: c.Hint, StartDateTime: c.CreatedAt}
	if !c.ExpiresAt.IsZero() {
		e := c.ExpiresAt
		gc.EndDateTime = &e
	}
	return gc
}

func toGraphGroup(p *keyhold.Principal, typed bool) graphGroup {
	g := graphGroup{ID: p.ID, DisplayName: p.DisplayName, SecurityEnabled: true, CreatedDateTime: p.CreatedAt}
	if typed {
		g.ODataType = "#microsoft.graph.group"
	}
	return g
}

// toGraphObject renders any principal as the directoryObject it is.
func (s *Service) toGraphObject(ctx context.Context, p *keyhold.Principal) (any, error) {
	switch p.Type {
	case keyhold.PrincipalUser:
		return toGraphUser(p, true), nil
	case keyhold.PrincipalGroup:
		return toGraphGroup(p, true), nil
	}
	creds, err := s.ClientSecrets(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	return toGraphSP(p, creds, true), nil
}

func list[T any](g *graphReq, items []T) error {
	if items == nil {
		items = []T{}
	}
	return g.json(http.StatusOK, map[string]any{"value": items})
}

// filterEq parses the one $filter form the API supports, "<property> eq
// '<value>'", for the given properties. An absent filter returns "", "".
func filterEq(r *http.Request, props ...string) (string, string, error) {
	f := strings.TrimSpace(r.URL.Query().Get("$filter"))
	if f == "" {
		return "", "", nil
	}
	bad := keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: unsupported $filter: only \"<property> eq '<value>'\" on %s is supported", strings.Join(props, ", "))
	prop, rest, ok := strings.Cut(f, " ")
	if !ok || !slices.Contains(props, prop) {
		return "", "", bad
	}
	rest = strings.TrimSpace(rest)
	val, ok := strings.CutPrefix(rest, "eq ")
	val = strings.TrimSpace(val)
	if !ok || len(val) < 2 || val[0] != '\'' || val[len(val)-1] != '\'' {
		return "", "", bad
	}
	return prop, strings.ReplaceAll(val[1:len(val)-1], "''", "'"), nil
}

func (s *Service) principals(g *graphReq, f keyhold.PrincipalFilter) ([]*keyhold.Principal, error) {
	f.TenantID = g.tenant
	ps, err := s.store.FindPrincipals(g.ctx, f)
	if err != nil {
		return nil, s.storeErr("list principals", err)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].DisplayName != ps[j].DisplayName {
			return ps[i].DisplayName < ps[j].DisplayName
		}
		return ps[i].ID < ps[j].ID
	})
	return ps, nil
}

// Users.

func (s *Service) graphMe(g *graphReq) error {
	p := g.caller.Principal
	if p.Type != keyhold.PrincipalUser {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "/me request is only valid with delegated authentication flow.")
	}
	return g.json(http.StatusOK, toGraphUser(p, false))
}

func (s *Service) graphListUsers(g *graphReq) error {
	prop, val, err := filterEq(g.r, "userPrincipalName", "displayName", "id")
	if err != nil {
		return err
	}
	f := keyhold.PrincipalFilter{Type: keyhold.PrincipalUser}
	if prop == "userPrincipalName" {
		f.UserPrincipalName = val
	}
	ps, err := s.principals(g, f)
	if err != nil {
		return err
	}
	var out []graphUser
	for _, p := range ps {
		if (prop == "displayName" && p.DisplayName != val) || (prop == "id" && p.ID != val) {
			continue
		}
		out = append(out, toGraphUser(p, false))
	}
	return list(g, out)
}

type passwordProfile struct {
	Password                      *string `json:"password"`
	ForceChangePasswordNextSignIn bool    `json:"forceChangePasswordNextSignIn"`
}

type userBody struct {
	AccountEnabled    *bool            `json:"accountEnabled"`
	DisplayName       *string          `json:"displayName"`
	MailNickname      string           `json:"mailNickname"`
	UserPrincipalName *string          `json:"userPrincipalName"`
	PasswordProfile   *passwordProfile `json:"passwordProfile"`
}

func (s *Service) graphCreateUser(g *graphReq) error {
	if err := g.write("microsoft.directory/users/create", "/v1.0/users"); err != nil {
		return err
	}
	var b userBody
	if err := decodeGraph(g.r, &b, "accountEnabled", "displayName", "mailNickname", "userPrincipalName", "passwordProfile"); err != nil {
		return err
	}
	switch {
	case b.DisplayName == nil:
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: invalid value specified for property 'displayName' of resource 'User'")
	case b.UserPrincipalName == nil:
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: invalid value specified for property 'userPrincipalName' of resource 'User'")
	case b.PasswordProfile == nil || b.PasswordProfile.Password == nil:
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: invalid value specified for property 'passwordProfile' of resource 'User'")
	}
	pw := keyhold.NewSecret([]byte(*b.PasswordProfile.Password))
	disabled := b.AccountEnabled != nil && !*b.AccountEnabled
	p, err := s.createUser(g.ctx, g.tenant, *b.UserPrincipalName, *b.DisplayName, pw, nil, disabled)
	if err != nil {
		return err
	}
	httpapi.Annotate(g.ctx, "microsoft.directory/users/create", "/v1.0/users/"+p.ID)
	g.w.Header().Set("Location", "/v1.0/users/"+p.ID)
	return g.json(http.StatusCreated, toGraphUser(p, false))
}

func (s *Service) graphGetUser(g *graphReq) error {
	p, err := s.UserByName(g.ctx, g.tenant, g.r.PathValue("id"))
	if keyhold.IsNotFound(err) {
		return notFound(g.r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	return g.json(http.StatusOK, toGraphUser(p, false))
}

// user resolves the {id} of a users/{id} path, an object id or a UPN.
func (s *Service) user(g *graphReq) (*keyhold.Principal, error) {
	id := g.r.PathValue("id")
	p, err := s.UserByName(g.ctx, g.tenant, id)
	if keyhold.IsNotFound(err) {
		return nil, notFound(id)
	}
	return p, err
}

func (s *Service) graphUpdateUser(g *graphReq) error {
	if err := g.write("microsoft.directory/users/basic/update", "/v1.0/users/"+g.r.PathValue("id")); err != nil {
		return err
	}
	var b userBody
	if err := decodeGraph(g.r, &b, "accountEnabled", "displayName", "passwordProfile"); err != nil {
		return err
	}
	p, err := s.user(g)
	if err != nil {
		return err
	}
	httpapi.Annotate(g.ctx, "microsoft.directory/users/basic/update", "/v1.0/users/"+p.ID)
	var u PrincipalUpdate
	u.DisplayName = b.DisplayName
	if b.AccountEnabled != nil {
		d := !*b.AccountEnabled
		u.Disabled = &d
	}
	if b.PasswordProfile != nil && b.PasswordProfile.Password != nil {
		httpapi.Annotate(g.ctx, "microsoft.directory/users/password/update", "/v1.0/users/"+p.ID)
		pw := keyhold.NewSecret([]byte(*b.PasswordProfile.Password))
		if err := checkPassword(pw); err != nil {
			return err
		}
		if u.DisplayName != nil || u.Disabled != nil {
			if _, err := s.UpdatePrincipal(g.ctx, p.ID, u); err != nil {
				return err
			}
		}
		if err := s.SetPassword(g.ctx, p.ID, pw); err != nil {
			return err
		}
		return g.noContent()
	}
	if _, err := s.UpdatePrincipal(g.ctx, p.ID, u); err != nil {
		return err
	}
	return g.noContent()
}

func (s *Service) graphDeleteUser(g *graphReq) error {
	if err := g.write("microsoft.directory/users/delete", "/v1.0/users/"+g.r.PathValue("id")); err != nil {
		return err
	}
	p, err := s.user(g)
	if err != nil {
		return err
	}
	httpapi.Annotate(g.ctx, "microsoft.directory/users/delete", "/v1.0/users/"+p.ID)
	if err := s.DeletePrincipal(g.ctx, p.ID); err != nil {
		return err
	}
	return g.noContent()
}

// graphDeleteObject deletes the service principal or group {id} of the
// collection ("servicePrincipals", "groups"): 403 without the directory
// role for it, 404 Request_ResourceNotFound when {id} is not one of typ.
func (s *Service) graphDeleteObject(collection string, typ keyhold.PrincipalType) func(*graphReq) error {
	action := "microsoft.directory/" + collection + "/delete"
	return func(g *graphReq) error {
		id := g.r.PathValue("id")
		if err := g.write(action, "/v1.0/"+collection+"/"+id); err != nil {
			return err
		}
		if _, err := s.object(g, id, typ); err != nil {
			return err
		}
		if err := s.DeletePrincipal(g.ctx, id); err != nil {
			return err
		}
		return g.noContent()
	}
}

func (s *Service) graphMemberOf(g *graphReq) error {
	id := g.r.PathValue("id")
	p, err := s.object(g, id, "")
	if err != nil {
		if !keyhold.IsNotFound(err) || isGUID(id) {
			return err
		}
		if p, err = s.user(g); err != nil {
			return err
		}
	}
	direct, err := s.store.ListMemberships(g.ctx, p.ID)
	if err != nil {
		return s.storeErr("list memberships", err)
	}
	var out []any
	for _, gid := range direct {
		grp, err := s.object(g, gid, keyhold.PrincipalGroup)
		if err != nil {
			continue
		}
		out = append(out, toGraphGroup(grp, true))
	}
	// Directory roles are memberships too, as Graph lists them.
	for _, r := range p.DirectoryRoles {
		if tid, ok := keyhold.DirectoryRoles[r]; ok {
			out = append(out, map[string]string{"@odata.type": "#microsoft.graph.directoryRole", "id": tid, "roleTemplateId": tid, "displayName": r})
		}
	}
	return list(g, out)
}

// Service principals.

func (s *Service) graphListSPs(g *graphReq) error {
	prop, val, err := filterEq(g.r, "appId", "displayName", "id", "servicePrincipalType")
	if err != nil {
		return err
	}
	var ps []*keyhold.Principal
	for _, t := range []keyhold.PrincipalType{keyhold.PrincipalServicePrincipal, keyhold.PrincipalManagedIdentity} {
		f := keyhold.PrincipalFilter{Type: t}
		if prop == "appId" {
			f.AppID = strings.ToLower(val)
		}
		more, err := s.principals(g, f)
		if err != nil {
			return err
		}
		ps = append(ps, more...)
	}
	var out []graphSP
	for _, p := range ps {
		creds, err := s.ClientSecrets(g.ctx, p.ID)
		if err != nil {
			return err
		}
		sp := toGraphSP(p, creds, false)
		if (prop == "displayName" && sp.DisplayName != val) || (prop == "id" && sp.ID != val) ||
			(prop == "servicePrincipalType" && sp.ServicePrincipalType != val) {
			continue
		}
		out = append(out, sp)
	}
	return list(g, out)
}

func (s *Service) graphCreateSP(g *graphReq) error {
	if err := g.write("microsoft.directory/servicePrincipals/create", "/v1.0/servicePrincipals"); err != nil {
		return err
	}
	var b struct {
		DisplayName *string `json:"displayName"`
		AppID       *string `json:"appId"`
	}
	if err := decodeGraph(g.r, &b, "displayName", "appId", "accountEnabled", "tags"); err != nil {
		return err
	}
	if b.AppID != nil {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: Keyhold creates the application with its service principal: give displayName, not appId")
	}
	if b.DisplayName == nil {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: invalid value specified for property 'displayName' of resource 'ServicePrincipal'")
	}
	p, _, err := s.createServicePrincipal(g.ctx, g.tenant, *b.DisplayName, false)
	if err != nil {
		return err
	}
	httpapi.Annotate(g.ctx, "microsoft.directory/servicePrincipals/create", "/v1.0/servicePrincipals/"+p.ID)
	g.w.Header().Set("Location", "/v1.0/servicePrincipals/"+p.ID)
	return g.json(http.StatusCreated, toGraphSP(p, nil, false))
}

func (s *Service) graphGetSP(g *graphReq) error {
	p, err := s.object(g, g.r.PathValue("id"), keyhold.PrincipalServicePrincipal)
	if err != nil {
		return err
	}
	creds, err := s.ClientSecrets(g.ctx, p.ID)
	if err != nil {
		return err
	}
	return g.json(http.StatusOK, toGraphSP(p, creds, false))
}

func (s *Service) graphUpdateSP(g *graphReq) error {
	id := g.r.PathValue("id")
	if err := g.write("microsoft.directory/servicePrincipals/basic/update", "/v1.0/servicePrincipals/"+id); err != nil {
		return err
	}
	var b struct {
		DisplayName    *string `json:"displayName"`
		AccountEnabled *bool   `json:"accountEnabled"`
	}
	if err := decodeGraph(g.r, &b, "displayName", "accountEnabled"); err != nil {
		return err
	}
	if _, err := s.object(g, id, keyhold.PrincipalServicePrincipal); err != nil {
		return err
	}
	u := PrincipalUpdate{DisplayName: b.DisplayName}
	if b.AccountEnabled != nil {
		d := !*b.AccountEnabled
		u.Disabled = &d
	}
	if _, err := s.UpdatePrincipal(g.ctx, id, u); err != nil {
		return err
	}
	return g.noContent()
}

// secretLifetime is how long a secret made by addPassword lives unless the
// request says otherwise; Entra ID's default is two years.
const secretLifetime = 2 * 365 * 24 * time.Hour

func (s *Service) graphAddPassword(g *graphReq) error {
	id := g.r.PathValue("id")
	if err := g.write("microsoft.directory/servicePrincipals/credentials/update", "/v1.0/servicePrincipals/"+id); err != nil {
		return err
	}
	var b struct {
		PasswordCredential *struct {
			DisplayName *string    `json:"displayName"`
			EndDateTime *time.Time `json:"endDateTime"`
		} `json:"passwordCredential"`
	}
	if g.r.ContentLength != 0 {
		if err := decodeGraph(g.r, &b, "passwordCredential"); err != nil {
			return err
		}
	}
	p, err := s.object(g, id, keyhold.PrincipalServicePrincipal)
	if err != nil {
		return err
	}
	if p.Type != keyhold.PrincipalServicePrincipal {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: a managed identity has no client secrets")
	}
	end := s.now().Add(secretLifetime).UTC()
	var name *string
	if pc := b.PasswordCredential; pc != nil {
		name = pc.DisplayName
		if pc.EndDateTime != nil {
			end = pc.EndDateTime.UTC()
		}
	}
	cred, secret, err := s.AddClientSecret(g.ctx, p.ID, end)
	if err != nil {
		return err
	}
	defer secret.Wipe()
	gc := toGraphCred(cred)
	gc.DisplayName = name
	text := string(secret.Reveal())
	gc.SecretText = &text
	// The one response that carries a secret: keep it out of every cache.
	g.w.Header().Set("Cache-Control", "no-store")
	return g.json(http.StatusOK, gc)
}

func (s *Service) graphRemovePassword(g *graphReq) error {
	id := g.r.PathValue("id")
	if err := g.write("microsoft.directory/servicePrincipals/credentials/update", "/v1.0/servicePrincipals/"+id); err != nil {
		return err
	}
	var b struct {
		KeyID string `json:"keyId"`
	}
	if err := decodeGraph(g.r, &b, "keyId"); err != nil {
		return err
	}
	if _, err := s.object(g, id, keyhold.PrincipalServicePrincipal); err != nil {
		return err
	}
	if err := s.RemoveClientSecret(g.ctx, id, b.KeyID); err != nil {
		return err
	}
	return g.noContent()
}

// Groups.

func (s *Service) graphListGroups(g *graphReq) error {
	prop, val, err := filterEq(g.r, "displayName", "id")
	if err != nil {
		return err
	}
	ps, err := s.principals(g, keyhold.PrincipalFilter{Type: keyhold.PrincipalGroup})
	if err != nil {
		return err
	}
	var out []graphGroup
	for _, p := range ps {
		if (prop == "displayName" && p.DisplayName != val) || (prop == "id" && p.ID != val) {
			continue
		}
		out = append(out, toGraphGroup(p, false))
	}
	return list(g, out)
}

func (s *Service) graphCreateGroup(g *graphReq) error {
	if err := g.write("microsoft.directory/groups/create", "/v1.0/groups"); err != nil {
		return err
	}
	var b struct {
		DisplayName     *string `json:"displayName"`
		SecurityEnabled *bool   `json:"securityEnabled"`
		MailEnabled     *bool   `json:"mailEnabled"`
	}
	if err := decodeGraph(g.r, &b, "displayName", "mailNickname", "securityEnabled", "mailEnabled", "description"); err != nil {
		return err
	}
	if b.DisplayName == nil {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: invalid value specified for property 'displayName' of resource 'Group'")
	}
	if (b.MailEnabled != nil && *b.MailEnabled) || (b.SecurityEnabled != nil && !*b.SecurityEnabled) {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: only security groups (securityEnabled true, mailEnabled false) are supported")
	}
	p, err := s.CreateGroup(g.ctx, g.tenant, *b.DisplayName)
	if err != nil {
		return err
	}
	httpapi.Annotate(g.ctx, "microsoft.directory/groups/create", "/v1.0/groups/"+p.ID)
	g.w.Header().Set("Location", "/v1.0/groups/"+p.ID)
	return g.json(http.StatusCreated, toGraphGroup(p, false))
}

func (s *Service) graphGetGroup(g *graphReq) error {
	p, err := s.object(g, g.r.PathValue("id"), keyhold.PrincipalGroup)
	if err != nil {
		return err
	}
	return g.json(http.StatusOK, toGraphGroup(p, false))
}

func (s *Service) graphGroupMembers(g *graphReq) error {
	grp, err := s.object(g, g.r.PathValue("id"), keyhold.PrincipalGroup)
	if err != nil {
		return err
	}
	ids, err := s.store.ListGroupMembers(g.ctx, grp.ID)
	if err != nil {
		return s.storeErr("list group members", err)
	}
	var out []any
	for _, id := range ids {
		p, err := s.object(g, id, "")
		if err != nil {
			continue
		}
		o, err := s.toGraphObject(g.ctx, p)
		if err != nil {
			return err
		}
		out = append(out, o)
	}
	return list(g, out)
}

// refID reads the body of a $ref request, {"@odata.id": ".../directoryObjects/{id}"},
// and returns the id.
func refID(r *http.Request) (string, error) {
	var b struct {
		ODataID string `json:"@odata.id"`
	}
	if err := decodeGraph(r, &b); err != nil {
		return "", err
	}
	ref := strings.TrimRight(b.ODataID, "/")
	id := ref[strings.LastIndex(ref, "/")+1:]
	if !isGUID(id) {
		return "", keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: invalid object identifier '%s': @odata.id must name a directory object", safeParam(b.ODataID))
	}
	return strings.ToLower(id), nil
}

func (s *Service) graphAddGroupMember(g *graphReq) error {
	id := g.r.PathValue("id")
	if err := g.write("microsoft.directory/groups/members/update", "/v1.0/groups/"+id); err != nil {
		return err
	}
	member, err := refID(g.r)
	if err != nil {
		return err
	}
	if _, err := s.object(g, id, keyhold.PrincipalGroup); err != nil {
		return err
	}
	if _, err := s.object(g, member, ""); err != nil {
		return err
	}
	if err := s.AddGroupMember(g.ctx, id, member); err != nil {
		return graphDuties(err)
	}
	return g.noContent()
}

// graphDuties puts a separation-of-duties refusal in Graph's terms: Graph
// answers 400 Request_BadRequest for a change the directory's state
// forbids, so the code SeparationOfDutiesViolation leads the message.
// Other errors pass unchanged.
func graphDuties(err error) error {
	if keyhold.ErrorDetail(err) != keyhold.DetailSeparationOfDuties {
		return err
	}
	return keyhold.Errorc(keyhold.EConflict, graphBadRequest, "%s: %s", keyhold.DetailSeparationOfDuties, keyhold.ErrorMessage(err))
}

func (s *Service) graphRemoveGroupMember(g *graphReq) error {
	id, member := g.r.PathValue("id"), g.r.PathValue("member")
	if err := g.write("microsoft.directory/groups/members/update", "/v1.0/groups/"+id); err != nil {
		return err
	}
	if _, err := s.object(g, id, keyhold.PrincipalGroup); err != nil {
		return err
	}
	if err := s.RemoveGroupMember(g.ctx, id, member); err != nil {
		if keyhold.IsNotFound(err) {
			return notFound(member)
		}
		return err
	}
	return g.noContent()
}

// Directory roles. Their id is the role template id, which Keyhold uses for
// both.

// roleByID resolves "{templateId}" or "roleTemplateId={templateId}".
func roleByID(id string) (name, templateID string, err error) {
	tid := strings.TrimPrefix(id, "roleTemplateId=")
	for n, t := range keyhold.DirectoryRoles {
		if strings.EqualFold(t, tid) {
			return n, t, nil
		}
	}
	return "", "", notFound(id)
}

func (s *Service) roleMembers(g *graphReq, role string) ([]any, error) {
	users, err := s.principals(g, keyhold.PrincipalFilter{Type: keyhold.PrincipalUser})
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, u := range users {
		if u.HasDirectoryRole(role) {
			out = append(out, toGraphUser(u, true))
		}
	}
	return out, nil
}

func (s *Service) graphRole(g *graphReq, name, tid string) (graphRole, error) {
	members, err := s.roleMembers(g, name)
	return graphRole{ID: tid, RoleTemplateID: tid, DisplayName: name, Description: roleDescriptions[name], Members: members}, err
}

var roleDescriptions = map[string]string{
	keyhold.RoleGlobalAdministrator:        "Can manage all aspects of the directory and the services that use it.",
	keyhold.RolePowerPlatformAdministrator: "Can create and manage all aspects of Power Platform environments and their encryption policies.",
	keyhold.RoleDynamics365Administrator:   "Can manage all aspects of Dynamics 365 environments.",
}

func (s *Service) graphListRoles(g *graphReq) error {
	names := make([]string, 0, len(keyhold.DirectoryRoles))
	for n := range keyhold.DirectoryRoles {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []graphRole
	for _, n := range names {
		r, err := s.graphRole(g, n, keyhold.DirectoryRoles[n])
		if err != nil {
			return err
		}
		out = append(out, r)
	}
	return list(g, out)
}

func (s *Service) graphGetRole(g *graphReq) error {
	name, tid, err := roleByID(g.r.PathValue("id"))
	if err != nil {
		return err
	}
	r, err := s.graphRole(g, name, tid)
	if err != nil {
		return err
	}
	return g.json(http.StatusOK, r)
}

func (s *Service) graphRoleMembers(g *graphReq) error {
	name, _, err := roleByID(g.r.PathValue("id"))
	if err != nil {
		return err
	}
	members, err := s.roleMembers(g, name)
	if err != nil {
		return err
	}
	return list(g, members)
}

func (s *Service) graphAddRoleMember(g *graphReq) error {
	id := g.r.PathValue("id")
	if err := g.write("microsoft.directory/directoryRoles/members/update", "/v1.0/directoryRoles/"+id); err != nil {
		return err
	}
	name, tid, err := roleByID(id)
	if err != nil {
		return err
	}
	httpapi.Annotate(g.ctx, "microsoft.directory/directoryRoles/members/update", "/v1.0/directoryRoles/"+tid)
	member, err := refID(g.r)
	if err != nil {
		return err
	}
	u, err := s.object(g, member, "")
	if err != nil {
		return err
	}
	if u.Type != keyhold.PrincipalUser {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: only users can hold directory roles in Keyhold")
	}
	if u.HasDirectoryRole(name) {
		return keyhold.Errorc(keyhold.EInvalid, graphBadRequest, "identity: one or more added object references already exist for the following modified properties: 'members'")
	}
	roles := append(slices.Clone(u.DirectoryRoles), name)
	if _, err := s.UpdatePrincipal(g.ctx, u.ID, PrincipalUpdate{DirectoryRoles: &roles}); err != nil {
		return graphDuties(err)
	}
	return g.noContent()
}

func (s *Service) graphRemoveRoleMember(g *graphReq) error {
	id, member := g.r.PathValue("id"), g.r.PathValue("member")
	if err := g.write("microsoft.directory/directoryRoles/members/update", "/v1.0/directoryRoles/"+id); err != nil {
		return err
	}
	name, tid, err := roleByID(id)
	if err != nil {
		return err
	}
	httpapi.Annotate(g.ctx, "microsoft.directory/directoryRoles/members/update", "/v1.0/directoryRoles/"+tid)
	u, err := s.object(g, member, keyhold.PrincipalUser)
	if err != nil {
		return err
	}
	if !u.HasDirectoryRole(name) {
		return notFound(member)
	}
	roles := slices.DeleteFunc(slices.Clone(u.DirectoryRoles), func(r string) bool { return r == name })
	if _, err := s.UpdatePrincipal(g.ctx, u.ID, PrincipalUpdate{DirectoryRoles: &roles}); err != nil {
		return err
	}
	return g.noContent()
}

func (s *Service) graphGetObject(g *graphReq) error {
	p, err := s.object(g, g.r.PathValue("id"), "")
	if err != nil {
		return err
	}
	o, err := s.toGraphObject(g.ctx, p)
	if err != nil {
		return err
	}
	return g.json(http.StatusOK, o)
}
