package arm

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/httpapi"
)

type subscriptionJSON struct {
	ID                   string            `json:"id"`
	AuthorizationSource  string            `json:"authorizationSource"`
	ManagedByTenants     []any             `json:"managedByTenants"`
	SubscriptionID       string            `json:"subscriptionId"`
	TenantID             string            `json:"tenantId"`
	DisplayName          string            `json:"displayName"`
	State                string            `json:"state"`
	SubscriptionPolicies map[string]string `json:"subscriptionPolicies"`
	Tags                 map[string]string `json:"tags,omitempty"`
}

func renderSubscription(sub *keyhold.Subscription) subscriptionJSON {
	state := sub.State
	if state == "" {
		state = "Enabled"
	}
	return subscriptionJSON{
		ID:                  "/subscriptions/" + sub.ID,
		AuthorizationSource: "RoleBased",
		ManagedByTenants:    []any{},
		SubscriptionID:      sub.ID,
		TenantID:            sub.TenantID,
		DisplayName:         sub.DisplayName,
		State:               state,
		SubscriptionPolicies: map[string]string{
			"locationPlacementId": "Public_2014-09-01",
			"quotaId":             "PayAsYouGo_2014-09-01",
			"spendingLimit":       "Off",
		},
	}
}

// listSubscriptions answers GET /subscriptions with the caller's tenant's
// subscriptions.
func (s *Server) listSubscriptions(q *request) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, subscriptionsVersions); err != nil {
		return err
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/subscriptions/read", "/")
	subs, err := s.store.ListSubscriptions(q.ctx, q.caller.TenantID)
	if err != nil {
		return err
	}
	items := make([]any, 0, len(subs))
	for _, sub := range subs {
		items = append(items, renderSubscription(sub))
	}
	return writePage(q, items)
}

// getSubscription answers GET /subscriptions/{s}.
func (s *Server) getSubscription(q *request, sub *keyhold.Subscription) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, subscriptionsVersions); err != nil {
		return err
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/subscriptions/read", "/subscriptions/"+sub.ID)
	httpapi.WriteJSON(q.w, http.StatusOK, renderSubscription(sub))
	return nil
}

// listTenants answers GET /tenants with the caller's own tenant, as
// armsubscriptions' TenantsClient lists it.
func (s *Server) listTenants(q *request) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, subscriptionsVersions); err != nil {
		return err
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/tenants/read", "/")
	t, err := s.store.GetTenant(q.ctx, q.caller.TenantID)
	if err != nil {
		return err
	}
	item := map[string]any{
		"id":             "/tenants/" + t.ID,
		"tenantId":       t.ID,
		"tenantCategory": "Home",
		"displayName":    t.DisplayName,
		"defaultDomain":  t.DefaultDomain,
		"domains":        []string{t.DefaultDomain},
	}
	return writePage(q, []any{item})
}

// regions are the locations Keyhold offers, in ARM's name and display form.
var regions = []struct{ Name, Display, Geography string }{
	{"eastus", "East US", "United States"},
	{"eastus2", "East US 2", "United States"},
	{"westus", "West US", "United States"},
	{"westus2", "West US 2", "United States"},
	{"centralus", "Central US", "United States"},
	{"northeurope", "North Europe", "Europe"},
	{"westeurope", "West Europe", "Europe"},
	{"uksouth", "UK South", "United Kingdom"},
	{"francecentral", "France Central", "France"},
	{"germanywestcentral", "Germany West Central", "Germany"},
	{"swedencentral", "Sweden Central", "Sweden"},
	{"canadacentral", "Canada Central", "Canada"},
	{"australiaeast", "Australia East", "Australia"},
	{"japaneast", "Japan East", "Japan"},
	{"southeastasia", "Southeast Asia", "Asia Pacific"},
	{"centralindia", "Central India", "India"},
	{"brazilsouth", "Brazil South", "Brazil"},
}

// regionNames returns the display names, as provider resource types list
// their locations.
func regionNames() []string {
	out := make([]string, len(regions))
	for i, r := range regions {
		out[i] = r.Display
	}
	return out
}

// NormalizeLocation returns ARM's normal form of a location: "West Europe"
// becomes "westeurope".
func NormalizeLocation(loc string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(loc), " ", ""))
}

// listLocations answers GET /subscriptions/{s}/locations.
func (s *Server) listLocations(q *request, sub *keyhold.Subscription) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, subscriptionsVersions); err != nil {
		return err
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/subscriptions/locations/read", "/subscriptions/"+sub.ID)
	items := make([]any, 0, len(regions))
	for _, r := range regions {
		items = append(items, map[string]any{
			"id":                  "/subscriptions/" + sub.ID + "/locations/" + r.Name,
			"name":                r.Name,
			"type":                "Region",
			"displayName":         r.Display,
			"regionalDisplayName": r.Display,
			"metadata":            map[string]any{"regionType": "Physical", "regionCategory": "Recommended", "geography": r.Geography},
		})
	}
	return writePage(q, items)
}

// maxTop is the largest page ARM hands out.
const maxTop = 1000

// writePage writes items as {"value":[...],"nextLink":...}, honouring $top
// and the $skiptoken of a nextLink it made earlier.
func writePage(q *request, items []any) error {
	query := q.r.URL.Query()
	top := maxTop
	if t := query.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			return keyhold.Errorc(keyhold.EInvalid, "InvalidTopInQueryString",
				"The value '%s' of the $top query parameter is invalid. It must be a positive integer.", t)
		}
		top = min(n, maxTop)
	}
	skip := 0
	if t := query.Get("$skiptoken"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return keyhold.Errorc(keyhold.EInvalid, "InvalidSkipToken", "The $skiptoken '%s' is invalid.", t)
		}
		skip = n
	}
	if skip > len(items) {
		skip = len(items)
	}
	end := min(skip+top, len(items))
	body := struct {
		Value    []any  `json:"value"`
		NextLink string `json:"nextLink,omitempty"`
	}{Value: items[skip:end]}
	if body.Value == nil {
		body.Value = []any{}
	}
	if end < len(items) {
		query.Set("$skiptoken", strconv.Itoa(end))
		u := url.URL{Path: q.r.URL.Path, RawQuery: query.Encode()}
		body.NextLink = baseURL(q.r) + u.String()
	}
	httpapi.WriteJSON(q.w, http.StatusOK, body)
	return nil
}
