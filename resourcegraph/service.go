// Package resourcegraph is Keyhold's Azure Resource Graph: POST
// /providers/Microsoft.ResourceGraph/resources runs a query, in a subset of
// the Kusto query language, over the resources (table resources) and the
// subscriptions and resource groups (table resourcecontainers) that the
// caller may read in its tenant. It is what the seed's "Resource Graph
// Explorer" step and Terraform's lookup of a policy's identity.principalId
// use; the real armresourcegraph client works against it.
//
// The query subset: a table, then operators piped after it — where (==, !=,
// =~, !~, <, <=, >, >=, contains, has, startswith, endswith with their _cs
// and ! forms, in, in~, !in, and, or, not()), project, project-away,
// extend, order by / sort by, limit / take, top N by, count, distinct and
// summarize with count(), countif() and dcount() — over columns and
// dotted or bracketed paths into them (properties.encryption.keyVault.id,
// tags['env']), with the functions tostring, tolower, toupper, strlen,
// isempty, isnotempty, isnull, isnotnull, strcat, iff, coalesce, toint,
// tolong, tobool and array_length.
package resourcegraph

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
)

// Type is the resource type the query endpoint hangs under.
const Type = "Microsoft.ResourceGraph/resources"

// APIVersions are the api-versions the query endpoint accepts. Before
// 2021-03-01 the default result format is table; from it on, objectArray.
var APIVersions = []string{"2019-04-01", "2021-03-01", "2022-10-01", "2024-04-01"}

// Paging limits, as Resource Graph's: 100 rows a page unless $top asks for
// up to 1000.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// Result formats of a query response.
const (
	FormatObjectArray = "objectArray"
	FormatTable       = "table"
)

// Actions checked per row, and written to the audit log for the query.
const (
	actionQuery         = "Microsoft.ResourceGraph/resources/read"
	actionSubscription  = "Microsoft.Resources/subscriptions/read"
	actionResourceGroup = "Microsoft.Resources/subscriptions/resourceGroups/read"
)

// Config configures a Service.
type Config struct {
	// Store holds the subscriptions, groups and resources queried.
	Store keyhold.Store
	// Types are resource types whose Render shapes their rows, so that a
	// row's properties read as a GET of the resource gives them (a vault's
	// vaultUri, say). Rows of other types show what the store keeps.
	Types []arm.ResourceType
	// Logger receives the service's own log lines; nil discards them.
	Logger *slog.Logger
}

// Service answers Resource Graph queries.
type Service struct {
	store  keyhold.Store
	render map[string]arm.ResourceType // by lower-case type
	log    *slog.Logger
}

// New returns a Service for cfg.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, log: cfg.Logger, render: map[string]arm.ResourceType{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, t := range cfg.Types {
		s.render[strings.ToLower(t.Type())] = t
	}
	return s
}

// ResourceType returns the arm.ResourceType to register with the resource
// manager: it serves POST /providers/Microsoft.ResourceGraph/resources and
// GET /providers/Microsoft.ResourceGraph/operations, and refuses to create
// anything of its type.
func (s *Service) ResourceType() arm.ResourceType { return graphType{s} }

type graphType struct{ s *Service }

func (graphType) Type() string                   { return Type }
func (graphType) APIVersions() []string          { return APIVersions }
func (graphType) Render(r *keyhold.Resource) any { return arm.DefaultRender(r) }

func notCreatable() error {
	return keyhold.Errorc(keyhold.EInvalid, "InvalidResourceType",
		"Microsoft.ResourceGraph/resources is a query, not a resource: POST /providers/Microsoft.ResourceGraph/resources with a body {\"query\": \"...\"}.")
}

func (graphType) Put(context.Context, *arm.PutRequest) (*keyhold.Resource, int, error) {
	return nil, 0, notCreatable()
}

func (graphType) Patch(context.Context, *arm.PutRequest) (*keyhold.Resource, error) {
	return nil, notCreatable()
}

func (graphType) Delete(context.Context, *keyhold.Resource) error { return nil }

// Routes returns the query and operations routes. The query authorizes each
// row itself, so its route names no action.
func (t graphType) Routes() []arm.Route {
	return []arm.Route{
		{Method: http.MethodPost, Pattern: "/providers/Microsoft.ResourceGraph/resources", Handle: t.s.serveQuery},
		{Method: http.MethodGet, Pattern: "/providers/Microsoft.ResourceGraph/operations", Handle: serveOperations},
	}
}

// QueryRequest is the body of a query, as armresourcegraph sends it.
type QueryRequest struct {
	Subscriptions    []string      `json:"subscriptions,omitempty"`
	ManagementGroups []string      `json:"managementGroups,omitempty"`
	Query            *string       `json:"query"`
	Options          *QueryOptions `json:"options,omitempty"`
	Facets           []any         `json:"facets,omitempty"`
}

// QueryOptions are a query's paging and format options.
type QueryOptions struct {
	Top                      *int   `json:"$top,omitempty"`
	Skip                     *int   `json:"$skip,omitempty"`
	SkipToken                string `json:"$skipToken,omitempty"`
	ResultFormat             string `json:"resultFormat,omitempty"`
	AllowPartialScopes       *bool  `json:"allowPartialScopes,omitempty"`
	AuthorizationScopeFilter string `json:"authorizationScopeFilter,omitempty"`
}

// QueryResponse is the answer to a query. Data is an array of objects for
// objectArray, or a Table.
type QueryResponse struct {
	TotalRecords    int64  `json:"totalRecords"`
	Count           int64  `json:"count"`
	ResultTruncated string `json:"resultTruncated"` // "true" or "false"
	SkipToken       string `json:"$skipToken,omitempty"`
	Data            any    `json:"data"`
	Facets          []any  `json:"facets"`
}

// Table is the table result format.
type Table struct {
	Columns []Column `json:"columns"`
	Rows    [][]any  `json:"rows"`
}

// Column is a column of a Table.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

func badRequest(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, "BadRequest", format, args...)
}

func (s *Service) serveQuery(ctx context.Context, req *arm.RouteRequest) (any, int, error) {
	httpapi.Annotate(ctx, actionQuery, "/")
	var body QueryRequest
	if err := httpapi.DecodeJSON(req.HTTP, &body, "InvalidRequestContent"); err != nil {
		return nil, 0, err
	}
	if body.Query == nil || strings.TrimSpace(*body.Query) == "" {
		return nil, 0, badRequest("The request has no query: send {\"query\": \"resources | ...\"}.")
	}
	format := FormatObjectArray
	if req.APIVersion < "2021-03-01" {
		format = FormatTable
	}
	opts := QueryOptions{}
	if body.Options != nil {
		opts = *body.Options
	}
	switch {
	case opts.ResultFormat == "":
	case strings.EqualFold(opts.ResultFormat, FormatObjectArray):
		format = FormatObjectArray
	case strings.EqualFold(opts.ResultFormat, FormatTable):
		format = FormatTable
	default:
		return nil, 0, badRequest("The resultFormat '%s' is invalid. The valid values are objectArray and table.", opts.ResultFormat)
	}
	top := DefaultPageSize
	if opts.Top != nil {
		if *opts.Top < 1 || *opts.Top > MaxPageSize {
			return nil, 0, badRequest("The $top value %d is invalid: it must be between 1 and %d.", *opts.Top, MaxPageSize)
		}
		top = *opts.Top
	}
	if len(body.Facets) > 0 {
		return nil, 0, badRequest("Facets are not supported by this Resource Graph; summarize in the query instead (| summarize count() by type).")
	}

	q, err := Parse(*body.Query)
	if err != nil {
		if pe, ok := err.(*ParseError); ok {
			writeParseError(req.Writer, pe)
			return nil, 0, nil
		}
		return nil, 0, err
	}
	offset := 0
	if opts.SkipToken != "" {
		offset, err = decodeSkipToken(opts.SkipToken, *body.Query)
		if err != nil {
			return nil, 0, err
		}
	}
	if opts.Skip != nil {
		// $skip overrides the offset of a skip token, as Resource Graph's does.
		if *opts.Skip < 0 {
			return nil, 0, badRequest("The $skip value %d is invalid: it must not be negative.", *opts.Skip)
		}
		offset = *opts.Skip
	}

	subs, err := s.scope(ctx, req, body)
	if err != nil {
		return nil, 0, err
	}
	rows, err := s.tableRows(ctx, req, q, subs)
	if err != nil {
		return nil, 0, err
	}
	result := q.Run(rows)

	resp := QueryResponse{TotalRecords: int64(len(result)), ResultTruncated: "false", Facets: []any{}}
	page := result[min(offset, len(result)):]
	if len(page) > top {
		page = page[:top]
		resp.SkipToken = encodeSkipToken(offset+top, *body.Query)
	}
	resp.Count = int64(len(page))
	if format == FormatTable {
		resp.Data = tableOf(q, page)
	} else {
		objs := make([]orderedRow, len(page))
		for i, r := range page {
			objs[i] = orderedRow{cols: q.columns, row: r}
		}
		resp.Data = objs
	}
	return resp, http.StatusOK, nil
}

// scope returns the subscriptions a query runs over: the caller's tenant's,
// narrowed to the ones the request names. Subscriptions of other tenants
// and unknown ones are left out, as Resource Graph leaves out those the
// caller cannot see.
func (s *Service) scope(ctx context.Context, req *arm.RouteRequest, body QueryRequest) ([]*keyhold.Subscription, error) {
	tenant := req.Caller.TenantID
	for _, mg := range body.ManagementGroups {
		// Keyhold has no management groups but the tenant root group, whose
		// name is the tenant id.
		if !strings.EqualFold(mg, tenant) {
			return nil, keyhold.Errorc(keyhold.EInvalid, "BadRequest",
				"The management group '%s' was not found. The only management group is the tenant root group '%s'.", mg, tenant)
		}
	}
	all, err := s.store.ListSubscriptions(ctx, tenant)
	if err != nil {
		return nil, err
	}
	if len(body.Subscriptions) == 0 {
		return all, nil
	}
	var out []*keyhold.Subscription
	for _, id := range body.Subscriptions {
		if !armid.IsGUID(id) {
			return nil, keyhold.Errorc(keyhold.EInvalid, "BadRequest", "The subscription '%s' is not a valid subscription id (a GUID).", id)
		}
		for _, sub := range all {
			if strings.EqualFold(sub.ID, id) && !slices.Contains(out, sub) {
				out = append(out, sub)
			}
		}
	}
	return out, nil
}

// tableRows returns the rows of q's table that the caller may read in subs.
func (s *Service) tableRows(ctx context.Context, req *arm.RouteRequest, q *Query, subs []*keyhold.Subscription) ([]Row, error) {
	var rows []Row
	tenant := req.Caller.TenantID
	for _, sub := range subs {
		if q.Table == TableResourceContainers {
			sid, err := armid.NewSubscription(sub.ID)
			if err != nil {
				continue
			}
			if ok, err := req.Allowed(actionSubscription, sid); err != nil {
				return nil, err
			} else if ok {
				rows = append(rows, subscriptionRow(sub))
			}
			groups, err := s.store.ListResourceGroups(ctx, sub.ID)
			if err != nil {
				return nil, err
			}
			for _, g := range groups {
				gid, err := armid.NewResourceGroup(sub.ID, g.Name)
				if err != nil {
					continue
				}
				if ok, err := req.Allowed(actionResourceGroup, gid); err != nil {
					return nil, err
				} else if ok {
					rows = append(rows, groupRow(g, sub.TenantID))
				}
			}
			continue
		}
		list, err := s.store.ListResources(ctx, keyhold.ResourceFilter{SubscriptionID: sub.ID, Type: q.typeHint()})
		if err != nil {
			return nil, err
		}
		for _, r := range list {
			if !listed(r) {
				continue
			}
			id, err := armid.Parse(r.ID)
			if err != nil {
				continue
			}
			if ok, err := req.Allowed(r.Type+"/read", id); err != nil {
				return nil, err
			} else if ok {
				rows = append(rows, s.resourceRow(r, tenant))
			}
		}
	}
	return rows, nil
}

// unlisted are types the store keeps as resources that Resource Graph does
// not list: deployment records, which hold templates and parameters, and
// soft-deleted vaults.
var unlisted = map[string]bool{
	"microsoft.resources/deployments":            true,
	"microsoft.keyvault/locations/deletedvaults": true,
}

// listed reports whether r is a row of the resources table: a tracked
// resource, which lives in a resource group and has a location, and not
// one of the unlisted types.
func listed(r *keyhold.Resource) bool {
	return r.ResourceGroup != "" && r.Location != "" && !unlisted[strings.ToLower(r.Type)]
}

// typeHint returns the type a query's first where pins with type == or =~
// 'literal', so that only resources of that type are read; the where still
// runs on them. "" means every type.
func (q *Query) typeHint() string {
	if q.Table != TableResources || len(q.stages) == 0 {
		return ""
	}
	w, ok := q.stages[0].(whereStage)
	if !ok {
		return ""
	}
	var find func(e Expr) string
	find = func(e Expr) string {
		b, ok := e.(*binary)
		if !ok {
			return ""
		}
		switch b.op {
		case "and":
			if t := find(b.l); t != "" {
				return t
			}
			return find(b.r)
		case "==", "=~":
			c, okc := b.l.(*columnRef)
			l, okl := b.r.(*literal)
			if !okc {
				c, okc = b.r.(*columnRef)
				l, okl = b.l.(*literal)
			}
			if okc && okl && c.name == "type" {
				if s, ok := l.v.(string); ok {
					return s
				}
			}
		}
		return ""
	}
	return find(w.pred)
}

// decodeJSON turns stored JSON into a row value; empty is null.
func decodeJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil
	}
	return v
}

func tagsValue(tags map[string]string) map[string]any {
	out := make(map[string]any, len(tags))
	for k, v := range tags {
		out[k] = v
	}
	return out
}

// resourceRow is r as a row of the resources table. Types and group names
// are lower-case, as Resource Graph gives them.
func (s *Service) resourceRow(r *keyhold.Resource, tenantID string) Row {
	row := Row{
		"id": r.ID, "name": r.Name, "type": strings.ToLower(r.Type), "tenantId": tenantID, "kind": r.Kind,
		"location": r.Location, "resourceGroup": strings.ToLower(r.ResourceGroup), "subscriptionId": r.SubscriptionID,
		"managedBy": "", "sku": decodeJSON(r.SKU), "plan": nil, "properties": decodeJSON(r.Properties),
		"tags": tagsValue(r.Tags), "identity": decodeJSON(r.Identity), "zones": nil, "extendedLocation": nil,
	}
	if rt := s.render[strings.ToLower(r.Type)]; rt != nil {
		s.applyRender(row, rt, r)
	}
	return row
}

// applyRender takes properties, identity, sku and kind from what the type
// renders for a GET.
func (s *Service) applyRender(row Row, rt arm.ResourceType, r *keyhold.Resource) {
	b, err := json.Marshal(rt.Render(r))
	if err != nil {
		s.log.Warn("resourcegraph: rendering a resource failed; its row shows the stored properties", "id", r.ID, "err", err.Error())
		return
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return
	}
	for _, k := range []string{"properties", "identity", "sku", "kind"} {
		if v, ok := m[k]; ok {
			row[k] = v
		}
	}
}

func subscriptionRow(sub *keyhold.Subscription) Row {
	return Row{
		"id": "/subscriptions/" + sub.ID, "name": sub.DisplayName, "type": "microsoft.resources/subscriptions",
		"tenantId": sub.TenantID, "kind": "", "location": "", "resourceGroup": "", "subscriptionId": sub.ID,
		"managedBy": "", "sku": nil, "plan": nil, "properties": map[string]any{"state": sub.State},
		"tags": map[string]any{}, "identity": nil, "zones": nil, "extendedLocation": nil,
	}
}

func groupRow(g *keyhold.ResourceGroup, tenantID string) Row {
	state := g.ProvisioningState
	if state == "" {
		state = "Succeeded"
	}
	return Row{
		"id": "/subscriptions/" + g.SubscriptionID + "/resourceGroups/" + g.Name, "name": g.Name,
		"type": "microsoft.resources/subscriptions/resourcegroups", "tenantId": tenantID, "kind": "",
		"location": g.Location, "resourceGroup": strings.ToLower(g.Name), "subscriptionId": g.SubscriptionID,
		"managedBy": g.ManagedBy, "sku": nil, "plan": nil, "properties": map[string]any{"provisioningState": state},
		"tags": tagsValue(g.Tags), "identity": nil, "zones": nil, "extendedLocation": nil,
	}
}

// orderedRow marshals a row with its columns in the query's order.
type orderedRow struct {
	cols []string
	row  Row
}

func (o orderedRow) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, c := range o.cols {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(c)
		v, err := json.Marshal(o.row[c])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// baseTypes are the types of the tables' own columns.
var baseTypes = map[string]string{
	"id": "string", "name": "string", "type": "string", "tenantId": "string", "kind": "string", "location": "string",
	"resourceGroup": "string", "subscriptionId": "string", "managedBy": "string", "sku": "object", "plan": "object",
	"properties": "object", "tags": "object", "identity": "object", "zones": "object", "extendedLocation": "object",
}

func tableOf(q *Query, rows []Row) Table {
	t := Table{Columns: make([]Column, len(q.columns)), Rows: make([][]any, len(rows))}
	for i, c := range q.columns {
		t.Columns[i] = Column{Name: c, Type: columnType(c, rows)}
	}
	for i, r := range rows {
		vals := make([]any, len(q.columns))
		for j, c := range q.columns {
			vals[j] = r[c]
		}
		t.Rows[i] = vals
	}
	return t
}

// columnType names a column's type from its first non-null value, or from
// the table's schema for a column kept as it was.
func columnType(name string, rows []Row) string {
	for _, r := range rows {
		switch r[name].(type) {
		case nil:
			continue
		case string:
			return "string"
		case int64:
			return "integer"
		case float64:
			return "real"
		case bool:
			return "boolean"
		default:
			return "object"
		}
	}
	if t, ok := baseTypes[name]; ok {
		return t
	}
	return "string"
}

// A skip token carries the offset of the next page and a digest of the
// query, so that a token is not used with another query by mistake.
type skipToken struct {
	Offset int    `json:"o"`
	Query  string `json:"q"`
}

func queryDigest(q string) string {
	sum := sha256.Sum256([]byte(q))
	return hex.EncodeToString(sum[:8])
}

func encodeSkipToken(offset int, query string) string {
	b, _ := json.Marshal(skipToken{Offset: offset, Query: queryDigest(query)})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeSkipToken(tok, query string) (int, error) {
	bad := badRequest("The $skipToken is invalid: send the one the previous page returned, with the same query.")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, bad
	}
	var st skipToken
	if err := json.Unmarshal(b, &st); err != nil || st.Offset < 0 || st.Query != queryDigest(query) {
		return 0, bad
	}
	return st.Offset, nil
}

// queryErrorMessage is Resource Graph's own words for an invalid query.
const queryErrorMessage = "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying."

// errorDetail is an entry of details in a query error; parser failures
// point at their token.
type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty"`
	// CharacterPositionInLine counts from 0, as Kusto's does; Column is
	// the same place counted from 1, as editors count.
	CharacterPositionInLine *int   `json:"characterPositionInLine,omitempty"`
	Column                  int    `json:"column,omitempty"`
	Token                   string `json:"token,omitempty"`
}

type queryError struct {
	Error struct {
		Code    string        `json:"code"`
		Message string        `json:"message"`
		Details []errorDetail `json:"details"`
	} `json:"error"`
}

// writeParseError answers 400 in ARM's shape, with details that name the
// offending token and where it is.
func writeParseError(w http.ResponseWriter, pe *ParseError) {
	var body queryError
	body.Error.Code = "BadRequest"
	where := fmt.Sprintf("line %d, column %d", pe.Pos.Line, pe.Pos.Column+1)
	if pe.Token != "" {
		where += fmt.Sprintf(", at '%s'", pe.Token)
	}
	body.Error.Message = fmt.Sprintf("Query is invalid: %s (%s).", pe.Message, where)
	col := pe.Pos.Column
	body.Error.Details = []errorDetail{
		{Code: "InvalidQuery", Message: queryErrorMessage},
		{Code: pe.Code, Message: pe.Message, Line: pe.Pos.Line, CharacterPositionInLine: &col, Column: pe.Pos.Column + 1, Token: pe.Token},
	}
	w.Header().Set("x-ms-error-code", body.Error.Code)
	httpapi.WriteJSON(w, http.StatusBadRequest, body)
}

// serveOperations lists the provider's operations.
func serveOperations(ctx context.Context, req *arm.RouteRequest) (any, int, error) {
	type display struct {
		Provider    string `json:"provider"`
		Resource    string `json:"resource"`
		Operation   string `json:"operation"`
		Description string `json:"description"`
	}
	type op struct {
		Name    string  `json:"name"`
		Display display `json:"display"`
		Origin  string  `json:"origin"`
	}
	return map[string]any{"value": []op{
		{Name: actionQuery, Origin: "user,system", Display: display{Provider: "Microsoft Resource Graph", Resource: "Resources",
			Operation: "Query resources", Description: "Submits a query on resources within the specified subscriptions, management groups or tenant."}},
		{Name: "Microsoft.ResourceGraph/operations/read", Origin: "user,system", Display: display{Provider: "Microsoft Resource Graph", Resource: "Operations",
			Operation: "List operations", Description: "Lists the operations of the Microsoft.ResourceGraph provider."}},
	}}, http.StatusOK, nil
}
