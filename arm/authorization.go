package arm

import (
	"net/http"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/rbac"
)

// ARM action names for role assignments and definitions.
const (
	actionAssignmentRead   = "Microsoft.Authorization/roleAssignments/read"
	actionAssignmentWrite  = "Microsoft.Authorization/roleAssignments/write"
	actionAssignmentDelete = "Microsoft.Authorization/roleAssignments/delete"
	actionDefinitionRead   = "Microsoft.Authorization/roleDefinitions/read"
)

// builtInRolesDate is when Azure's built-in roles say they were created.
var builtInRolesDate = time.Date(2015, 2, 2, 21, 55, 9, 0, time.UTC)

// RoleDefinitionID returns the full id of a role definition as seen from
// scope: /subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}
// below a subscription, /providers/... at the tenant root.
func RoleDefinitionID(scope armid.ID, guid string) string {
	if sub := scope.SubscriptionID(); sub != "" {
		return "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/" + guid
	}
	return "/providers/Microsoft.Authorization/roleDefinitions/" + guid
}

// RoleAssignmentID returns the full id of a role assignment.
func RoleAssignmentID(scope, name string) string {
	return strings.TrimSuffix(scope, "/") + "/providers/Microsoft.Authorization/roleAssignments/" + name
}

// serveAuthorization serves {scope}/providers/Microsoft.Authorization/...;
// rest starts at roleAssignments or roleDefinitions.
func (s *Server) serveAuthorization(q *request, scopeSegs, rest []string) error {
	if err := checkVersion(q, authorizationVersions); err != nil {
		return err
	}
	scope, err := armid.Parse("/" + strings.Join(scopeSegs, "/"))
	if len(scopeSegs) == 0 {
		scope, err = armid.Root, nil
	}
	if err != nil {
		return err
	}
	if scope.SubscriptionID() != "" {
		if _, err := s.subscription(q, scope.SubscriptionID()); err != nil {
			return err
		}
	}
	if eq(rest[0], "roleDefinitions") {
		if len(rest) == 1 {
			return s.listRoleDefinitions(q, scope)
		}
		return s.getRoleDefinition(q, scope, rest[1])
	}
	if len(rest) == 1 {
		return s.listRoleAssignments(q, scope)
	}
	name := rest[1]
	if !armid.IsGUID(name) {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", name)
	}
	switch q.method() {
	case http.MethodGet:
		return s.getRoleAssignment(q, scope, name)
	case http.MethodPut:
		return s.putRoleAssignment(q, scope, name)
	case http.MethodDelete:
		return s.deleteRoleAssignment(q, scope, name)
	}
	return methodNotAllowed(q)
}

type roleDefinitionJSON struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name"`
	Type       string                   `json:"type"`
	Properties roleDefinitionProperties `json:"properties"`
}

type roleDefinitionProperties struct {
	RoleName         string           `json:"roleName"`
	Type             string           `json:"type"`
	Description      string           `json:"description"`
	AssignableScopes []string         `json:"assignableScopes"`
	Permissions      []permissionJSON `json:"permissions"`
	CreatedOn        time.Time        `json:"createdOn"`
	UpdatedOn        time.Time        `json:"updatedOn"`
	CreatedBy        *string          `json:"createdBy"`
	UpdatedBy        *string          `json:"updatedBy"`
}

type permissionJSON struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

func renderRoleDefinition(scope armid.ID, r rbac.RoleDefinition) roleDefinitionJSON {
	out := roleDefinitionJSON{
		ID:   RoleDefinitionID(scope, r.ID),
		Name: r.ID,
		Type: "Microsoft.Authorization/roleDefinitions",
		Properties: roleDefinitionProperties{
			RoleName: r.Name, Type: r.Type, Description: r.Description, AssignableScopes: r.AssignableScopes,
			CreatedOn: builtInRolesDate, UpdatedOn: builtInRolesDate,
		},
	}
	for _, p := range r.Permissions {
		out.Properties.Permissions = append(out.Properties.Permissions, permissionJSON{
			Actions: p.Actions, NotActions: p.NotActions, DataActions: p.DataActions, NotDataActions: p.NotDataActions,
		})
	}
	return out
}

func (s *Server) listRoleDefinitions(q *request, scope armid.ID) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	httpapi.Annotate(q.ctx, actionDefinitionRead, scope.String())
	clauses, err := parseFilter(q.r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	var roleName, roleType string
	for _, c := range clauses {
		switch {
		case !c.Func && c.Field == "rolename":
			roleName = c.Value
		case !c.Func && c.Field == "type":
			roleType = c.Value
		default:
			return unsupportedFilter(c)
		}
	}
	items := []any{}
	for _, r := range rbac.BuiltInRoles() {
		if roleName != "" && !strings.EqualFold(r.Name, roleName) || roleType != "" && !strings.EqualFold(r.Type, roleType) {
			continue
		}
		items = append(items, renderRoleDefinition(scope, r))
	}
	return writePage(q, items)
}

func (s *Server) getRoleDefinition(q *request, scope armid.ID, guid string) error {
	if q.method() != http.MethodGet {
		if q.method() == http.MethodPut || q.method() == http.MethodDelete {
			httpapi.Annotate(q.ctx, "Microsoft.Authorization/roleDefinitions/write", scope.String())
			return keyhold.Errorc(keyhold.EInvalid, "CustomRoleDefinitionsNotSupported",
				"Custom role definitions are not supported; use one of the built-in roles.")
		}
		return methodNotAllowed(q)
	}
	httpapi.Annotate(q.ctx, actionDefinitionRead, scope.String())
	r, ok := rbac.RoleByID(guid)
	if !ok {
		return keyhold.Errorc(keyhold.ENotFound, "RoleDefinitionDoesNotExist",
			"The specified role definition with ID '%s' does not exist.", guid)
	}
	httpapi.WriteJSON(q.w, http.StatusOK, renderRoleDefinition(scope, r))
	return nil
}

type roleAssignmentJSON struct {
	ID         string                   `json:"id"`
	Name       string                   `json:"name"`
	Type       string                   `json:"type"`
	Properties roleAssignmentProperties `json:"properties"`
}

type roleAssignmentProperties struct {
	RoleDefinitionID                   string    `json:"roleDefinitionId"`
	PrincipalID                        string    `json:"principalId"`
	PrincipalType                      string    `json:"principalType"`
	Scope                              string    `json:"scope"`
	Description                        *string   `json:"description"`
	Condition                          *string   `json:"condition"`
	ConditionVersion                   *string   `json:"conditionVersion"`
	DelegatedManagedIdentityResourceID *string   `json:"delegatedManagedIdentityResourceId"`
	CreatedOn                          time.Time `json:"createdOn"`
	UpdatedOn                          time.Time `json:"updatedOn"`
	CreatedBy                          string    `json:"createdBy"`
	UpdatedBy                          string    `json:"updatedBy"`
}

func renderRoleAssignment(a *keyhold.RoleAssignment) roleAssignmentJSON {
	scope, err := armid.Parse(a.Scope)
	if err != nil {
		scope = armid.Root
	}
	ptype := string(a.PrincipalType)
	if a.PrincipalType == keyhold.PrincipalManagedIdentity {
		ptype = string(keyhold.PrincipalServicePrincipal)
	}
	out := roleAssignmentJSON{
		ID:   RoleAssignmentID(a.Scope, a.Name),
		Name: a.Name,
		Type: "Microsoft.Authorization/roleAssignments",
		Properties: roleAssignmentProperties{
			RoleDefinitionID: RoleDefinitionID(scope, a.RoleDefinitionID),
			PrincipalID:      a.PrincipalID,
			PrincipalType:    ptype,
			Scope:            a.Scope,
			CreatedOn:        a.CreatedAt,
			UpdatedOn:        a.UpdatedAt,
			CreatedBy:        a.CreatedBy,
			UpdatedBy:        a.CreatedBy,
		},
	}
	if a.Description != "" {
		d := a.Description
		out.Properties.Description = &d
	}
	return out
}

// assignment returns the named assignment if it lies at scope in the
// caller's tenant, else RoleAssignmentNotFound.
func (s *Server) assignment(q *request, scope armid.ID, name string) (*keyhold.RoleAssignment, error) {
	a, err := s.store.GetRoleAssignment(q.ctx, name)
	if keyhold.IsNotFound(err) || err == nil && (!eq(a.TenantID, q.caller.TenantID) || !eq(a.Scope, scope.String())) {
		return nil, keyhold.Errorc(keyhold.ENotFound, "RoleAssignmentNotFound", "The role assignment '%s' is not found.", name)
	}
	return a, err
}

func (s *Server) getRoleAssignment(q *request, scope armid.ID, name string) error {
	if err := s.authorize(q, actionAssignmentRead, scope); err != nil {
		return err
	}
	a, err := s.assignment(q, scope, name)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, renderRoleAssignment(a))
	return nil
}

func (s *Server) deleteRoleAssignment(q *request, scope armid.ID, name string) error {
	if err := s.authorize(q, actionAssignmentDelete, scope); err != nil {
		return err
	}
	a, err := s.assignment(q, scope, name)
	if keyhold.IsNotFound(err) {
		q.w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.store.DeleteRoleAssignment(q.ctx, a.Name); err != nil && !keyhold.IsNotFound(err) {
		return err
	}
	s.publishAssignments(q.ctx, []*keyhold.RoleAssignment{a}, "deleted")
	httpapi.WriteJSON(q.w, http.StatusOK, renderRoleAssignment(a))
	return nil
}

type roleAssignmentBody struct {
	Properties *struct {
		RoleDefinitionID string  `json:"roleDefinitionId"`
		PrincipalID      string  `json:"principalId"`
		PrincipalType    string  `json:"principalType"`
		Description      string  `json:"description"`
		Condition        *string `json:"condition"`
	} `json:"properties"`
}

// roleGUID takes a role definition id, full or bare, and returns its GUID.
func roleGUID(id string) (string, bool) {
	guid := id
	if i := strings.LastIndex(id, "/"); i >= 0 {
		prefix := strings.ToLower(id[:i])
		if !strings.HasSuffix(prefix, "/providers/microsoft.authorization/roledefinitions") {
			return "", false
		}
		guid = id[i+1:]
	}
	return strings.ToLower(guid), armid.IsGUID(guid)
}

func (s *Server) putRoleAssignment(q *request, scope armid.ID, name string) error {
	if err := s.authorize(q, actionAssignmentWrite, scope); err != nil {
		return err
	}
	var body roleAssignmentBody
	if err := httpapi.DecodeJSON(q.r, &body, "InvalidRequestContent"); err != nil {
		return err
	}
	p := body.Properties
	if p == nil || p.RoleDefinitionID == "" || p.PrincipalID == "" {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidRequestContent",
			"The role assignment needs properties.roleDefinitionId and properties.principalId.")
	}
	if p.Condition != nil && *p.Condition != "" {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidRoleAssignmentCondition",
			"Conditions on role assignments are not supported by this server.")
	}
	guid, ok := roleGUID(p.RoleDefinitionID)
	role, known := rbac.RoleByID(guid)
	if !ok || !known {
		return keyhold.Errorc(keyhold.EInvalid, "RoleDefinitionDoesNotExist",
			"The specified role definition with ID '%s' does not exist.", guid)
	}
	if err := s.scopeExists(q, scope); err != nil {
		return err
	}
	principal, err := s.store.GetPrincipal(q.ctx, p.PrincipalID)
	if keyhold.IsNotFound(err) || err == nil && !eq(principal.TenantID, q.caller.TenantID) {
		return keyhold.Errorc(keyhold.EInvalid, "PrincipalNotFound",
			"Principal %s does not exist in the directory %s. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
			strings.ReplaceAll(p.PrincipalID, "-", ""), q.caller.TenantID)
	}
	if err != nil {
		return err
	}
	now := s.now().UTC()
	a := &keyhold.RoleAssignment{
		Name: strings.ToLower(name), TenantID: q.caller.TenantID, Scope: scope.String(), RoleDefinitionID: role.ID,
		PrincipalID: principal.ID, PrincipalType: principal.Type, Description: p.Description,
		CreatedBy: q.caller.Principal.ID, CreatedAt: now, UpdatedAt: now,
	}
	var out *keyhold.RoleAssignment
	created := false
	err = s.store.InTx(q.ctx, func(tx keyhold.Store) error {
		existing, err := tx.GetRoleAssignment(q.ctx, a.Name)
		switch {
		case err == nil:
			if eq(existing.TenantID, a.TenantID) && eq(existing.Scope, a.Scope) &&
				eq(existing.PrincipalID, a.PrincipalID) && eq(existing.RoleDefinitionID, a.RoleDefinitionID) {
				out = existing
				return nil
			}
			return keyhold.Errorc(keyhold.EConflict, "RoleAssignmentUpdateNotPermitted",
				"Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
		case !keyhold.IsNotFound(err):
			return err
		}
		same, err := tx.ListRoleAssignments(q.ctx, keyhold.RoleAssignmentFilter{TenantID: a.TenantID, PrincipalID: a.PrincipalID, Scope: a.Scope})
		if err != nil {
			return err
		}
		for _, o := range same {
			if eq(o.RoleDefinitionID, a.RoleDefinitionID) && eq(o.Scope, a.Scope) {
				return keyhold.Errorc(keyhold.EConflict, "RoleAssignmentExists", "The role assignment already exists.")
			}
		}
		if err := s.duties.CheckRoleAssignment(q.ctx, tx, a); err != nil {
			return err
		}
		if err := tx.CreateRoleAssignment(q.ctx, a); err != nil {
			if keyhold.IsConflict(err) {
				return keyhold.Errorc(keyhold.EConflict, "RoleAssignmentExists", "The role assignment already exists.")
			}
			return err
		}
		out, created = a, true
		return nil
	})
	if err != nil {
		return err
	}
	if created {
		s.publishAssignments(q.ctx, []*keyhold.RoleAssignment{out}, "created")
	}
	httpapi.WriteJSON(q.w, http.StatusCreated, renderRoleAssignment(out))
	return nil
}

// scopeExists checks that a group or resource scope exists, as ARM does
// before it assigns a role there.
func (s *Server) scopeExists(q *request, scope armid.ID) error {
	switch {
	case scope.IsResourceGroup():
		_, err := s.getGroup(q.ctx, s.store, scope.SubscriptionID(), scope.ResourceGroup())
		return err
	case scope.IsResource() && scope.SubscriptionID() != "":
		_, err := s.store.GetResource(q.ctx, scope.String())
		if keyhold.IsNotFound(err) {
			return resourceNotFound(scope)
		}
		return err
	}
	return nil
}

// listRoleAssignments answers GET {scope}/providers/Microsoft.Authorization/roleAssignments.
// As in Azure: no filter lists assignments at, above and below the scope;
// atScope() those at and above it; principalId eq '{id}' one principal's at,
// above and below; assignedTo('{id}') those of a principal and its groups.
func (s *Server) listRoleAssignments(q *request, scope armid.ID) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := s.authorize(q, actionAssignmentRead, scope); err != nil {
		return err
	}
	clauses, err := parseFilter(q.r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	atScope := false
	var principals map[string]bool
	for _, c := range clauses {
		switch {
		case c.Func && c.Field == "atscope":
			atScope = true
		case !c.Func && c.Field == "principalid":
			principals = map[string]bool{strings.ToLower(c.Value): true}
		case c.Func && c.Field == "assignedto":
			principals, err = s.principalAndGroups(q, c.Value)
			if err != nil {
				return err
			}
		default:
			return unsupportedFilter(c)
		}
	}
	all, err := s.store.ListRoleAssignments(q.ctx, keyhold.RoleAssignmentFilter{TenantID: q.caller.TenantID})
	if err != nil {
		return err
	}
	items := []any{}
	for _, a := range all {
		as, err := armid.Parse(a.Scope)
		if err != nil {
			continue
		}
		above := scope.IsUnder(as)
		below := as.IsUnder(scope)
		if atScope && !above || !above && !below {
			continue
		}
		if principals != nil && !principals[strings.ToLower(a.PrincipalID)] {
			continue
		}
		items = append(items, renderRoleAssignment(a))
	}
	return writePage(q, items)
}

// principalAndGroups returns the ids of a principal and of every group it is
// in, directly or through other groups.
func (s *Server) principalAndGroups(q *request, id string) (map[string]bool, error) {
	out := map[string]bool{strings.ToLower(id): true}
	queue := []string{id}
	for len(queue) > 0 && len(out) < 1000 {
		cur := queue[0]
		queue = queue[1:]
		groups, err := s.store.ListMemberships(q.ctx, cur)
		if err != nil && !keyhold.IsNotFound(err) {
			return nil, err
		}
		for _, g := range groups {
			if !out[strings.ToLower(g)] {
				out[strings.ToLower(g)] = true
				queue = append(queue, g)
			}
		}
	}
	return out, nil
}
