package arm

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
)

// ARM action names for resource groups.
const (
	actionGroupRead   = "Microsoft.Resources/subscriptions/resourceGroups/read"
	actionGroupWrite  = "Microsoft.Resources/subscriptions/resourceGroups/write"
	actionGroupDelete = "Microsoft.Resources/subscriptions/resourceGroups/delete"
)

type groupJSON struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		ProvisioningState string `json:"provisioningState"`
	} `json:"properties"`
}

func renderGroup(g *keyhold.ResourceGroup) groupJSON {
	out := groupJSON{
		ID:        "/subscriptions/" + g.SubscriptionID + "/resourceGroups/" + g.Name,
		Name:      g.Name,
		Type:      armid.TypeResourceGroup,
		Location:  g.Location,
		ManagedBy: g.ManagedBy,
		Tags:      g.Tags,
	}
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	out.Properties.ProvisioningState = g.ProvisioningState
	if out.Properties.ProvisioningState == "" {
		out.Properties.ProvisioningState = "Succeeded"
	}
	return out
}

func groupNotFound(name string) error {
	return keyhold.Errorc(keyhold.ENotFound, "ResourceGroupNotFound", "Resource group '%s' could not be found.", name)
}

// getGroup returns the group or a ResourceGroupNotFound error.
func (s *Server) getGroup(ctx context.Context, st keyhold.Store, sub, name string) (*keyhold.ResourceGroup, error) {
	g, err := st.GetResourceGroup(ctx, sub, name)
	if keyhold.IsNotFound(err) {
		return nil, groupNotFound(name)
	}
	return g, err
}

// serveGroup answers PUT, GET, HEAD, PATCH and DELETE on
// /subscriptions/{s}/resourceGroups/{name}.
func (s *Server) serveGroup(q *request, sub *keyhold.Subscription, name string) error {
	id, err := armid.NewResourceGroup(sub.ID, name)
	if err != nil {
		return err
	}
	if err := checkVersion(q, resourcesVersions); err != nil {
		return err
	}
	switch q.method() {
	case http.MethodGet, http.MethodHead:
		if err := s.authorize(q, actionGroupRead, id); err != nil {
			return err
		}
		g, err := s.getGroup(q.ctx, s.store, sub.ID, name)
		if q.method() == http.MethodHead {
			switch {
			case err == nil:
				q.w.WriteHeader(http.StatusNoContent)
				return nil
			case keyhold.IsNotFound(err):
				q.w.WriteHeader(http.StatusNotFound)
				return nil
			}
			return err
		}
		if err != nil {
			return err
		}
		httpapi.WriteJSON(q.w, http.StatusOK, renderGroup(g))
		return nil
	case http.MethodPut:
		return s.putGroup(q, sub, id)
	case http.MethodPatch:
		return s.patchGroup(q, sub, id)
	case http.MethodDelete:
		return s.deleteGroup(q, sub, id)
	}
	return methodNotAllowed(q)
}

type groupBody struct {
	Location  *string            `json:"location"`
	Tags      *map[string]string `json:"tags"`
	ManagedBy *string            `json:"managedBy"`
}

func (s *Server) putGroup(q *request, sub *keyhold.Subscription, id armid.ID) error {
	if err := s.authorize(q, actionGroupWrite, id); err != nil {
		return err
	}
	var body groupBody
	if err := httpapi.DecodeJSON(q.r, &body, "InvalidRequestContent"); err != nil {
		return err
	}
	if body.Location == nil || strings.TrimSpace(*body.Location) == "" {
		return keyhold.Errorc(keyhold.EInvalid, "LocationRequired", "The location property is required for this definition.")
	}
	loc := NormalizeLocation(*body.Location)
	var tags map[string]string
	if body.Tags != nil {
		tags = *body.Tags
	}
	if err := validateTags(tags); err != nil {
		return err
	}
	now := s.now().UTC()
	status := http.StatusOK
	var out *keyhold.ResourceGroup
	err := s.store.InTx(q.ctx, func(tx keyhold.Store) error {
		g, err := tx.GetResourceGroup(q.ctx, sub.ID, id.ResourceGroup())
		switch {
		case keyhold.IsNotFound(err):
			status = http.StatusCreated
			g = &keyhold.ResourceGroup{SubscriptionID: sub.ID, Name: id.ResourceGroup(), Location: loc}
			g.SystemData.CreatedBy, g.SystemData.CreatedByType = actor(q.caller)
			g.SystemData.CreatedAt = now
		case err != nil:
			return err
		case g.Location != loc:
			return keyhold.Errorc(keyhold.EConflict, "InvalidResourceGroupLocation",
				"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", loc, g.Location)
		}
		g.Tags = tags
		if body.ManagedBy != nil {
			g.ManagedBy = *body.ManagedBy
		}
		g.ProvisioningState = "Succeeded"
		g.SystemData.LastModifiedBy, g.SystemData.LastModifiedByType = actor(q.caller)
		g.SystemData.LastModifiedAt = now
		if err := tx.PutResourceGroup(q.ctx, g); err != nil {
			return err
		}
		out, err = tx.GetResourceGroup(q.ctx, sub.ID, id.ResourceGroup())
		return err
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, status, renderGroup(out))
	return nil
}

func (s *Server) patchGroup(q *request, sub *keyhold.Subscription, id armid.ID) error {
	if err := s.authorize(q, actionGroupWrite, id); err != nil {
		return err
	}
	var body groupBody
	if err := httpapi.DecodeJSON(q.r, &body, "InvalidRequestContent"); err != nil {
		return err
	}
	if body.Tags != nil {
		if err := validateTags(*body.Tags); err != nil {
			return err
		}
	}
	var out *keyhold.ResourceGroup
	err := s.store.InTx(q.ctx, func(tx keyhold.Store) error {
		g, err := s.getGroup(q.ctx, tx, sub.ID, id.ResourceGroup())
		if err != nil {
			return err
		}
		if body.Location != nil && NormalizeLocation(*body.Location) != g.Location {
			return keyhold.Errorc(keyhold.EInvalid, "InvalidResourceGroupLocation",
				"The location of resource group '%s' cannot be changed from '%s'.", g.Name, g.Location)
		}
		if body.Tags != nil {
			g.Tags = *body.Tags
		}
		if body.ManagedBy != nil {
			g.ManagedBy = *body.ManagedBy
		}
		g.SystemData.LastModifiedBy, g.SystemData.LastModifiedByType = actor(q.caller)
		g.SystemData.LastModifiedAt = s.now().UTC()
		if err := tx.PutResourceGroup(q.ctx, g); err != nil {
			return err
		}
		out, err = tx.GetResourceGroup(q.ctx, sub.ID, id.ResourceGroup())
		return err
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, renderGroup(out))
	return nil
}

// deleteGroup deletes the group with its resources (through their types'
// Delete) and the role assignments at or below it, in one transaction. It
// answers 202 with a Location to poll, as ARM does; the operation is already
// complete when the client polls.
func (s *Server) deleteGroup(q *request, sub *keyhold.Subscription, id armid.ID) error {
	if err := s.authorize(q, actionGroupDelete, id); err != nil {
		return err
	}
	hctx, hooks := withCommitHooks(q.ctx)
	var gone []*keyhold.RoleAssignment
	err := s.store.InTx(q.ctx, func(tx keyhold.Store) error {
		g, err := s.getGroup(q.ctx, tx, sub.ID, id.ResourceGroup())
		if err != nil {
			return err
		}
		ctx := withTx(hctx, tx)
		res, err := tx.ListResources(ctx, keyhold.ResourceFilter{SubscriptionID: sub.ID, ResourceGroup: g.Name})
		if err != nil {
			return err
		}
		// Children first, so that a parent's Delete never sees them gone
		// half-way.
		sort.SliceStable(res, func(i, j int) bool { return len(res[i].ID) > len(res[j].ID) })
		for _, r := range res {
			if err := s.deleteResource(ctx, tx, r); err != nil {
				return err
			}
		}
		if gone, err = deleteAssignmentsUnder(ctx, tx, sub.TenantID, id); err != nil {
			return err
		}
		return tx.DeleteResourceGroup(ctx, sub.ID, g.Name)
	})
	if err != nil {
		return err
	}
	hooks.run()
	s.publishAssignments(q.ctx, gone, "deleted with its resource group, the")
	op := "/subscriptions/" + sub.ID + "/operationresults/" + groupDeletionToken(id.ResourceGroup())
	q.w.Header().Set("Location", baseURL(q.r)+op+"?api-version="+url.QueryEscape(q.apiVersion))
	q.w.Header().Set("Retry-After", "0")
	q.w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteAssignmentsUnder removes the role assignments at or below scope, as
// ARM does when the scope goes away, and returns them so that the caller can
// publish their removal once the transaction commits.
func deleteAssignmentsUnder(ctx context.Context, tx keyhold.Store, tenantID string, scope armid.ID) ([]*keyhold.RoleAssignment, error) {
	as, err := tx.ListRoleAssignments(ctx, keyhold.RoleAssignmentFilter{TenantID: tenantID, ScopePrefix: scope.String()})
	if err != nil {
		return nil, err
	}
	var gone []*keyhold.RoleAssignment
	for _, a := range as {
		aid, err := armid.Parse(a.Scope)
		if err != nil || !aid.IsUnder(scope) {
			continue
		}
		if err := tx.DeleteRoleAssignment(ctx, a.Name); err != nil && !keyhold.IsNotFound(err) {
			return nil, err
		}
		gone = append(gone, a)
	}
	return gone, nil
}

const groupDeletionPrefix = "RGDELETE-"

func groupDeletionToken(group string) string {
	return groupDeletionPrefix + base64.RawURLEncoding.EncodeToString([]byte(strings.ToUpper(group)))
}

// operationResult answers the poll of an asynchronous operation: 202 while
// the group is still deleting, 200 once it is gone.
func (s *Server) operationResult(q *request, sub *keyhold.Subscription, token string) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	notFound := keyhold.Errorc(keyhold.ENotFound, "OperationNotFound", "The operation '%s' could not be found.", token)
	rest, ok := strings.CutPrefix(token, groupDeletionPrefix)
	if !ok {
		return notFound
	}
	name, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || armid.ValidateResourceGroupName(string(name)) != nil {
		return notFound
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/subscriptions/operationresults/read", "/subscriptions/"+sub.ID)
	g, err := s.store.GetResourceGroup(q.ctx, sub.ID, string(name))
	if err == nil && g.ProvisioningState == "Deleting" {
		q.w.Header().Set("Location", baseURL(q.r)+q.r.URL.RequestURI())
		q.w.Header().Set("Retry-After", "1")
		q.w.WriteHeader(http.StatusAccepted)
		return nil
	}
	if err != nil && !keyhold.IsNotFound(err) {
		return err
	}
	q.w.WriteHeader(http.StatusOK)
	return nil
}

// listGroups answers GET /subscriptions/{s}/resourceGroups with the groups
// the caller may read.
func (s *Server) listGroups(q *request, sub *keyhold.Subscription) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, resourcesVersions); err != nil {
		return err
	}
	subID, _ := armid.NewSubscription(sub.ID)
	httpapi.Annotate(q.ctx, actionGroupRead, subID.String())
	filter, err := parseFilter(q.r.URL.Query().Get("$filter"))
	if err != nil {
		return err
	}
	match, err := tagFilter(filter)
	if err != nil {
		return err
	}
	groups, err := s.store.ListResourceGroups(q.ctx, sub.ID)
	if err != nil {
		return err
	}
	items := []any{}
	for _, g := range groups {
		gid, err := armid.NewResourceGroup(sub.ID, g.Name)
		if err != nil {
			continue
		}
		ok, err := s.allows(q, actionGroupRead, gid)
		if err != nil {
			return err
		}
		if ok && match(g.Tags) {
			items = append(items, renderGroup(g))
		}
	}
	return writePage(q, items)
}

// tagFilter turns tagName/tagValue clauses into a predicate on tags.
func tagFilter(filter []clause) (func(map[string]string) bool, error) {
	var name, value string
	var hasName, hasValue bool
	for _, c := range filter {
		switch {
		case !c.Func && c.Field == "tagname":
			name, hasName = c.Value, true
		case !c.Func && c.Field == "tagvalue":
			value, hasValue = c.Value, true
		default:
			return nil, unsupportedFilter(c)
		}
	}
	if hasValue && !hasName {
		return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidFilterInQueryString", "The $filter term tagValue needs a tagName.")
	}
	return func(tags map[string]string) bool {
		if !hasName {
			return true
		}
		for k, v := range tags {
			if strings.EqualFold(k, name) && (!hasValue || v == value) {
				return true
			}
		}
		return false
	}, nil
}

// validateTags applies ARM's limits: at most 50 tags, names of 1 to 512
// characters without <>%&\?/, values of at most 256 characters.
func validateTags(tags map[string]string) error {
	if len(tags) > 50 {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidTagCount", "The number of tags (%d) exceeds the limit of 50.", len(tags))
	}
	for k, v := range tags {
		if k == "" || len(k) > 512 || strings.ContainsAny(k, `<>%&\?/`) {
			return keyhold.Errorc(keyhold.EInvalid, "InvalidTagNameCharacters",
				"The tag name '%s' is invalid: it must be 1 to 512 characters without any of <>%%&\\?/.", k)
		}
		if len(v) > 256 {
			return keyhold.Errorc(keyhold.EInvalid, "InvalidTagValueLength", "The value of tag '%s' is longer than 256 characters.", k)
		}
	}
	return nil
}

// actor returns how systemData names the caller and its kind.
func actor(c *keyhold.Caller) (string, string) {
	p := c.Principal
	switch p.Type {
	case keyhold.PrincipalUser:
		if p.UserPrincipalName != "" {
			return p.UserPrincipalName, "User"
		}
		return p.ID, "User"
	case keyhold.PrincipalManagedIdentity:
		return nonEmpty(p.AppID, p.ID), "ManagedIdentity"
	default:
		return nonEmpty(p.AppID, p.ID), "Application"
	}
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// jsonOrNull is raw JSON, or null for an empty value.
func jsonOrNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}
