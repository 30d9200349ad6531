package arm

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/httpapi"
)

// providerType is one resource type in a provider's metadata.
type providerType struct {
	Name        string // "vaults", "locations/deletedVaults"
	APIVersions []string
	Locations   []string // nil: every region
}

type providerInfo struct {
	Namespace string
	Types     []providerType
}

// builtinProviders are the namespaces Keyhold knows whether or not a type of
// theirs is registered, with the types the built-in surfaces serve.
var builtinProviders = []providerInfo{
	{Namespace: "Microsoft.Resources", Types: []providerType{
		{Name: "subscriptions", APIVersions: subscriptionsVersions},
		{Name: "resourceGroups", APIVersions: resourcesVersions},
		{Name: "subscriptions/resourceGroups", APIVersions: resourcesVersions},
		{Name: "subscriptions/resources", APIVersions: resourcesVersions},
		{Name: "subscriptions/providers", APIVersions: resourcesVersions},
		{Name: "subscriptions/locations", APIVersions: subscriptionsVersions},
		{Name: "subscriptions/operationresults", APIVersions: resourcesVersions},
		{Name: "providers", APIVersions: resourcesVersions},
	}},
	{Namespace: "Microsoft.Authorization", Types: []providerType{
		{Name: "roleAssignments", APIVersions: authorizationVersions},
		{Name: "roleDefinitions", APIVersions: authorizationVersions},
	}},
	{Namespace: "Microsoft.Features", Types: []providerType{
		{Name: "features", APIVersions: featuresVersions},
		{Name: "providers", APIVersions: featuresVersions},
	}},
	{Namespace: "Microsoft.KeyVault"},
	{Namespace: "Microsoft.ResourceGraph"},
	{Namespace: "Microsoft.PowerPlatform"},
	{Namespace: "Microsoft.ManagedIdentity"},
}

// registeredByDefault are the namespaces a new subscription can use without
// registering, as in a fresh Azure subscription.
var registeredByDefault = map[string]bool{
	"microsoft.keyvault":      true,
	"microsoft.resources":     true,
	"microsoft.authorization": true,
	"microsoft.features":      true,
	"microsoft.resourcegraph": true,
}

// catalogue merges the built-in providers with the namespaces and types of
// registered resource types, keyed by lower-case namespace.
func (s *Server) catalogue() map[string]*providerInfo {
	out := map[string]*providerInfo{}
	for _, p := range builtinProviders {
		p := p
		p.Types = append([]providerType(nil), p.Types...)
		out[strings.ToLower(p.Namespace)] = &p
	}
	for _, rt := range s.registeredTypes() {
		ns, name, ok := strings.Cut(rt.Type(), "/")
		if !ok {
			continue
		}
		p := out[strings.ToLower(ns)]
		if p == nil {
			p = &providerInfo{Namespace: ns}
			out[strings.ToLower(ns)] = p
		}
		pt := providerType{Name: name, APIVersions: rt.APIVersions()}
		if l, ok := rt.(Locator); ok {
			pt.Locations = l.Locations()
		}
		p.Types = append(p.Types, pt)
	}
	for _, p := range out {
		sort.Slice(p.Types, func(i, j int) bool { return p.Types[i].Name < p.Types[j].Name })
	}
	return out
}

// canonicalNamespace returns the known spelling of ns.
func (s *Server) canonicalNamespace(ns string) string {
	if p, ok := s.catalogue()[strings.ToLower(ns)]; ok {
		return p.Namespace
	}
	return ns
}

// settle returns the state a registration reads as now: Registering turns
// Registered, and Unregistering turns into done, once the delay has passed
// since it changed.
func (s *Server) settle(state string, updated time.Time, done string) (string, bool) {
	if s.now().Sub(updated) < s.delay {
		return state, false
	}
	switch state {
	case keyhold.StateRegistering:
		return keyhold.StateRegistered, true
	case keyhold.StateUnregistering:
		return done, true
	}
	return state, false
}

// providerRegistration returns the subscription's registration of ns,
// settled: a namespace never registered reads as the default, and a finished
// Registering or Unregistering is persisted (lazily, so that no goroutine is
// needed and a restart loses nothing).
func (s *Server) providerRegistration(ctx context.Context, st keyhold.Store, sub, ns string) (*keyhold.ProviderRegistration, error) {
	ns = s.canonicalNamespace(ns)
	r, err := st.GetProviderRegistration(ctx, sub, ns)
	if keyhold.IsNotFound(err) {
		state := keyhold.StateNotRegistered
		if registeredByDefault[strings.ToLower(ns)] {
			state = keyhold.StateRegistered
		}
		return &keyhold.ProviderRegistration{SubscriptionID: sub, Namespace: ns, State: state}, nil
	}
	if err != nil {
		return nil, err
	}
	if state, changed := s.settle(r.State, r.UpdatedAt, keyhold.StateUnregistered); changed {
		r.State, r.UpdatedAt = state, s.now().UTC()
		if err := st.PutProviderRegistration(ctx, r); err != nil {
			// The next read settles it again; the answer is right either way.
			s.log.Warn("arm: persisting a settled provider registration failed", "namespace", ns, "err", err.Error())
		}
	}
	return r, nil
}

func (s *Server) providerState(ctx context.Context, sub, ns string) (string, error) {
	r, err := s.providerRegistration(ctx, s.store, sub, ns)
	if err != nil {
		return "", err
	}
	return r.State, nil
}

func unknownNamespace(ns string) error {
	return keyhold.Errorc(keyhold.ENotFound, "InvalidResourceNamespace", "The resource namespace '%s' is invalid.", ns)
}

type providerJSON struct {
	ID                 string             `json:"id,omitempty"`
	Namespace          string             `json:"namespace"`
	RegistrationState  string             `json:"registrationState,omitempty"`
	RegistrationPolicy string             `json:"registrationPolicy,omitempty"`
	ResourceTypes      []providerTypeJSON `json:"resourceTypes"`
}

type providerTypeJSON struct {
	ResourceType string   `json:"resourceType"`
	Locations    []string `json:"locations"`
	APIVersions  []string `json:"apiVersions"`
	Capabilities string   `json:"capabilities,omitempty"`
}

func renderProvider(p *providerInfo, sub string, reg *keyhold.ProviderRegistration) providerJSON {
	out := providerJSON{Namespace: p.Namespace, ResourceTypes: []providerTypeJSON{}}
	if sub != "" {
		out.ID = "/subscriptions/" + sub + "/providers/" + p.Namespace
		out.RegistrationPolicy = "RegistrationRequired"
		out.RegistrationState = reg.State
	}
	for _, t := range p.Types {
		locs := t.Locations
		if locs == nil {
			locs = regionNames()
		}
		out.ResourceTypes = append(out.ResourceTypes, providerTypeJSON{
			ResourceType: t.Name, Locations: locs, APIVersions: t.APIVersions,
			Capabilities: "SupportsTags, SupportsLocation",
		})
	}
	return out
}

// listProviders answers GET /subscriptions/{s}/providers.
func (s *Server) listProviders(q *request, sub *keyhold.Subscription) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, resourcesVersions); err != nil {
		return err
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/subscriptions/providers/read", "/subscriptions/"+sub.ID)
	cat := s.catalogue()
	keys := sortedKeys(cat)
	items := make([]any, 0, len(keys))
	for _, k := range keys {
		reg, err := s.providerRegistration(q.ctx, s.store, sub.ID, cat[k].Namespace)
		if err != nil {
			return err
		}
		items = append(items, renderProvider(cat[k], sub.ID, reg))
	}
	return writePage(q, items)
}

// getProvider answers GET /subscriptions/{s}/providers/{ns}.
func (s *Server) getProvider(q *request, sub *keyhold.Subscription, ns string) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, resourcesVersions); err != nil {
		return err
	}
	p, ok := s.catalogue()[strings.ToLower(ns)]
	if !ok {
		return unknownNamespace(ns)
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/subscriptions/providers/read", "/subscriptions/"+sub.ID)
	reg, err := s.providerRegistration(q.ctx, s.store, sub.ID, p.Namespace)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, renderProvider(p, sub.ID, reg))
	return nil
}

// registerProvider answers POST /subscriptions/{s}/providers/{ns}/register
// and /unregister, which need {ns}/register/action (unregister/action) on
// the subscription.
func (s *Server) registerProvider(q *request, sub *keyhold.Subscription, ns string, register bool) error {
	if q.method() != http.MethodPost {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, resourcesVersions); err != nil {
		return err
	}
	p, ok := s.catalogue()[strings.ToLower(ns)]
	if !ok {
		return unknownNamespace(ns)
	}
	scope, err := armid.NewSubscription(sub.ID)
	if err != nil {
		return err
	}
	verb := "register"
	if !register {
		verb = "unregister"
	}
	if err := s.authorize(q, p.Namespace+"/"+verb+"/action", scope); err != nil {
		return err
	}
	var reg *keyhold.ProviderRegistration
	err = s.store.InTx(q.ctx, func(tx keyhold.Store) error {
		cur, err := s.providerRegistration(q.ctx, tx, sub.ID, p.Namespace)
		if err != nil {
			return err
		}
		next, final := keyhold.StateRegistering, keyhold.StateRegistered
		if !register {
			next, final = keyhold.StateUnregistering, keyhold.StateUnregistered
			if registeredByDefault[strings.ToLower(p.Namespace)] {
				return keyhold.Errorc(keyhold.EConflict, "ProviderCannotBeUnregistered",
					"The resource provider '%s' cannot be unregistered: it is always registered.", p.Namespace)
			}
			if n, err := tx.ListResources(q.ctx, keyhold.ResourceFilter{SubscriptionID: sub.ID}); err != nil {
				return err
			} else if hasNamespace(n, p.Namespace) {
				return keyhold.Errorc(keyhold.EConflict, "ResourceProviderCannotBeUnregistered",
					"The resource provider '%s' cannot be unregistered because the subscription still has resources of it.", p.Namespace)
			}
		}
		if cur.State == final || cur.State == next {
			reg = cur
			return nil
		}
		reg = &keyhold.ProviderRegistration{SubscriptionID: sub.ID, Namespace: p.Namespace, State: next, UpdatedAt: s.now().UTC()}
		if s.delay <= 0 {
			reg.State = final
		}
		return tx.PutProviderRegistration(q.ctx, reg)
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, renderProvider(p, sub.ID, reg))
	return nil
}

func hasNamespace(rs []*keyhold.Resource, ns string) bool {
	for _, r := range rs {
		if strings.HasPrefix(strings.ToLower(r.Type), strings.ToLower(ns)+"/") {
			return true
		}
	}
	return false
}

// listTenantProviders answers GET /providers: the metadata of every
// namespace, without registration state.
func (s *Server) listTenantProviders(q *request) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, resourcesVersions); err != nil {
		return err
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/providers/read", "/")
	cat := s.catalogue()
	items := []any{}
	for _, k := range sortedKeys(cat) {
		items = append(items, renderProvider(cat[k], "", nil))
	}
	return writePage(q, items)
}

// getTenantProvider answers GET /providers/{ns}.
func (s *Server) getTenantProvider(q *request, ns string) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if err := checkVersion(q, resourcesVersions); err != nil {
		return err
	}
	p, ok := s.catalogue()[strings.ToLower(ns)]
	if !ok {
		return unknownNamespace(ns)
	}
	httpapi.Annotate(q.ctx, "Microsoft.Resources/providers/read", "/")
	httpapi.WriteJSON(q.w, http.StatusOK, renderProvider(p, "", nil))
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Feature registration.

const (
	actionFeatureRegister   = "Microsoft.Features/providers/features/register/action"
	actionFeatureUnregister = "Microsoft.Features/providers/features/unregister/action"
	actionFeatureRead       = "Microsoft.Features/providers/features/read"
)

type featureJSON struct {
	Properties struct {
		State string `json:"state"`
	} `json:"properties"`
	ID   string `json:"id"`
	Type string `json:"type"`
	Name string `json:"name"`
}

func renderFeature(f *keyhold.FeatureRegistration) featureJSON {
	out := featureJSON{
		ID:   "/subscriptions/" + f.SubscriptionID + "/providers/Microsoft.Features/providers/" + f.Namespace + "/features/" + f.Name,
		Type: "Microsoft.Features/providers/features",
		Name: f.Namespace + "/" + f.Name,
	}
	out.Properties.State = f.State
	return out
}

// feature returns the subscription's registration of a feature, settled
// like providers; a feature never registered reads NotRegistered.
func (s *Server) feature(ctx context.Context, st keyhold.Store, sub, ns, name string) (*keyhold.FeatureRegistration, error) {
	f, err := st.GetFeatureRegistration(ctx, sub, ns, name)
	if keyhold.IsNotFound(err) {
		return &keyhold.FeatureRegistration{SubscriptionID: sub, Namespace: ns, Name: name, State: keyhold.StateNotRegistered}, nil
	}
	if err != nil {
		return nil, err
	}
	s.settleFeature(ctx, st, f)
	return f, nil
}

func (s *Server) settleFeature(ctx context.Context, st keyhold.Store, f *keyhold.FeatureRegistration) {
	if state, changed := s.settle(f.State, f.UpdatedAt, keyhold.StateUnregistered); changed {
		f.State, f.UpdatedAt = state, s.now().UTC()
		if err := st.PutFeatureRegistration(ctx, f); err != nil {
			s.log.Warn("arm: persisting a settled feature registration failed", "feature", f.Namespace+"/"+f.Name, "err", err.Error())
		}
	}
}

// serveFeatures answers the Microsoft.Features routes below
// /subscriptions/{s}/providers/Microsoft.Features; rest starts after the
// namespace.
func (s *Server) serveFeatures(q *request, sub *keyhold.Subscription, rest []string) error {
	if err := checkVersion(q, featuresVersions); err != nil {
		return err
	}
	scope, err := armid.NewSubscription(sub.ID)
	if err != nil {
		return err
	}
	switch {
	case len(rest) == 1 && eq(rest[0], "features"):
		return s.listFeatures(q, sub, "")
	case len(rest) == 3 && eq(rest[0], "providers") && eq(rest[2], "features"):
		return s.listFeatures(q, sub, rest[1])
	case len(rest) < 4 || len(rest) > 5 || !eq(rest[0], "providers") || !eq(rest[2], "features"):
		return notFoundPath(q)
	}
	ns, name := rest[1], rest[3]
	if err := armid.ValidateNamespace(ns); err != nil {
		return err
	}
	if err := armid.ValidateName(name); err != nil {
		return keyhold.Errorc(keyhold.EInvalid, "InvalidFeatureName", "The feature name '%s' is invalid.", name)
	}
	ns = s.canonicalNamespace(ns)
	if len(rest) == 4 {
		if q.method() != http.MethodGet {
			return methodNotAllowed(q)
		}
		httpapi.Annotate(q.ctx, actionFeatureRead, scope.String())
		f, err := s.feature(q.ctx, s.store, sub.ID, ns, name)
		if err != nil {
			return err
		}
		httpapi.WriteJSON(q.w, http.StatusOK, renderFeature(f))
		return nil
	}
	if q.method() != http.MethodPost || !(eq(rest[4], "register") || eq(rest[4], "unregister")) {
		return notFoundPath(q)
	}
	register := eq(rest[4], "register")
	action := actionFeatureRegister
	if !register {
		action = actionFeatureUnregister
	}
	if err := s.authorize(q, action, scope); err != nil {
		return err
	}
	var out *keyhold.FeatureRegistration
	err = s.store.InTx(q.ctx, func(tx keyhold.Store) error {
		cur, err := s.feature(q.ctx, tx, sub.ID, ns, name)
		if err != nil {
			return err
		}
		next, final := keyhold.StateRegistering, keyhold.StateRegistered
		if !register {
			next, final = keyhold.StateUnregistering, keyhold.StateUnregistered
			if cur.State == keyhold.StateNotRegistered {
				out = cur
				return nil
			}
		}
		if cur.State == next || cur.State == final {
			out = cur
			return nil
		}
		// Keep the name as first registered, so ids stay stable.
		out = &keyhold.FeatureRegistration{SubscriptionID: sub.ID, Namespace: ns, Name: name, State: next, UpdatedAt: s.now().UTC()}
		if cur.Name != "" && cur.State != keyhold.StateNotRegistered {
			out.Name = cur.Name
		}
		if s.delay <= 0 {
			out.State = final
		}
		return tx.PutFeatureRegistration(q.ctx, out)
	})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(q.w, http.StatusOK, renderFeature(out))
	return nil
}

func (s *Server) listFeatures(q *request, sub *keyhold.Subscription, ns string) error {
	if q.method() != http.MethodGet {
		return methodNotAllowed(q)
	}
	if ns != "" {
		if err := armid.ValidateNamespace(ns); err != nil {
			return err
		}
		ns = s.canonicalNamespace(ns)
	}
	httpapi.Annotate(q.ctx, actionFeatureRead, "/subscriptions/"+sub.ID)
	fs, err := s.store.ListFeatureRegistrations(q.ctx, sub.ID, ns)
	if err != nil {
		return err
	}
	items := []any{}
	for _, f := range fs {
		s.settleFeature(q.ctx, s.store, f)
		items = append(items, renderFeature(f))
	}
	return writePage(q, items)
}
