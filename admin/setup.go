package admin

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
)

// cmkProviders are the resource providers a subscription needs for
// customer-managed keys: enterprise policies' and key vaults'.
var cmkProviders = []string{"Microsoft.PowerPlatform", "Microsoft.KeyVault"}

// The preview feature the documentation registers before creating a policy.
const (
	previewNamespace = "Microsoft.PowerPlatform"
	previewFeature   = "enterprisePoliciesPreview"
)

// defaultRegion is the region the policy form starts with.
const defaultRegion = "unitedstates"

var (
	// policyNameRE keeps a policy name short enough that its deployment,
	// EPDeployment-{name}, is a valid deployment name (at most 64).
	policyNameRE     = regexp.MustCompile(`^[a-zA-Z0-9][-\w.()]{0,50}$`)
	keyVersionRE     = regexp.MustCompile(`^[a-zA-Z0-9]{1,64}$`)
	deploymentNameRE = regexp.MustCompile(`^[-\w.()]{1,64}$`)
)

// setupRoutes registers the pages that prepare a subscription for
// customer-managed keys: resource provider and feature registration, and
// enterprise policies created through a template deployment.
func (a *Admin) setupRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /admin/kv/providers", a.page(false, a.providersPage))
	m.HandleFunc("POST /admin/kv/providers", a.page(false, a.providerAction))
	m.HandleFunc("GET /admin/kv/providers/status", a.page(false, a.providerStatus))
	m.HandleFunc("GET /admin/kv/policies/new", a.page(false, a.newPolicyPage))
	m.HandleFunc("POST /admin/kv/policies/new", a.page(false, a.createPolicy))
	m.HandleFunc("GET /admin/kv/policies/new/keys", a.page(false, a.vaultKeys))
	m.HandleFunc("GET /admin/kv/deployments/{sub}/{group}/{name}", a.page(false, a.deploymentPage))
	m.HandleFunc("GET /admin/kv/deployments/{sub}/{group}/{name}/status", a.page(false, a.deploymentStatus))
}

// registration is a subscription's registration of a provider, or of a
// feature when Feature is set.
type registration struct {
	Sub       string
	Namespace string
	Feature   string
	State     string
	// Error is the API's refusal to read or change it.
	Error string
}

// Label names the provider, or the feature as Namespace/Feature.
func (r registration) Label() string {
	if r.Feature != "" {
		return r.Namespace + "/" + r.Feature
	}
	return r.Namespace
}

// Busy reports whether the state is still changing on its own.
func (r registration) Busy() bool { return busyRegistration(r.State) }

func busyRegistration(state string) bool {
	return state == keyhold.StateRegistering || state == keyhold.StateUnregistering || strings.EqualFold(state, "Pending")
}

// Shows reports whether the action's button fits the state; the page's
// script applies the same rule through data-show-when as the state changes.
func (r registration) Shows(action string) bool {
	return slices.Contains(strings.Fields(showWhen(action)), r.State)
}

func showWhen(action string) string {
	if action == "unregister" {
		return keyhold.StateRegistered
	}
	return keyhold.StateNotRegistered + " " + keyhold.StateUnregistered
}

// ShowWhen is the data-show-when list of an action's button.
func (registration) ShowWhen(action string) string { return showWhen(action) }

// StatusURL is where the page's script follows the state.
func (r registration) StatusURL() string {
	q := url.Values{"subscription": {r.Sub}, "namespace": {r.Namespace}}
	if r.Feature != "" {
		q.Set("feature", r.Feature)
	}
	return "/admin/kv/providers/status?" + q.Encode()
}

type subscriptionSetup struct {
	Sub  client.Subscription
	Rows []registration
}

type providersView struct {
	Subs []subscriptionSetup
}

// refused returns the API's message when err is a refusal (a status below
// 500), for showing next to what was refused.
func refused(err error) (string, int, bool) {
	var ce *client.Error
	if asClientError(err, &ce) && ce.StatusCode >= 400 && ce.StatusCode < 500 {
		return ce.Message, ce.StatusCode, true
	}
	return "", 0, false
}

// readRegistration reads one registration; a refusal is kept in the row.
func readRegistration(ctx context.Context, c *client.Client, r registration) (registration, error) {
	var err error
	if r.Feature != "" {
		var f *client.Feature
		if f, err = c.GetFeature(ctx, r.Sub, r.Namespace, r.Feature); err == nil {
			r.State = f.Properties.State
		}
	} else {
		var p *client.Provider
		if p, err = c.GetProvider(ctx, r.Sub, r.Namespace); err == nil {
			r.State = p.RegistrationState
		}
	}
	if err != nil {
		msg, _, ok := refused(err)
		if !ok {
			return r, err
		}
		r.State, r.Error = "Unknown", msg
	}
	return r, nil
}

// loadProviders reads, for every subscription the caller can see, the
// registrations customer-managed keys need.
func (a *Admin) loadProviders(ctx context.Context, c *client.Client) (providersView, error) {
	subs, err := c.ListSubscriptions(ctx)
	if err != nil {
		return providersView{}, err
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].DisplayName < subs[j].DisplayName })
	var v providersView
	for _, sub := range subs {
		ss := subscriptionSetup{Sub: sub}
		want := make([]registration, 0, len(cmkProviders)+1)
		for _, ns := range cmkProviders {
			want = append(want, registration{Sub: sub.SubscriptionID, Namespace: ns})
		}
		want = append(want, registration{Sub: sub.SubscriptionID, Namespace: previewNamespace, Feature: previewFeature})
		for _, r := range want {
			r, err := readRegistration(ctx, c, r)
			if err != nil {
				return providersView{}, err
			}
			ss.Rows = append(ss.Rows, r)
		}
		v.Subs = append(v.Subs, ss)
	}
	return v, nil
}

func (a *Admin) providersPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := a.loadProviders(r.Context(), a.client(s))
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	a.render(w, r, s, http.StatusOK, "providers", v)
}

// registrationFrom reads the registration a form or query names; ok is
// false when it is not one the pages manage.
func registrationFrom(sub, ns, feature string) (registration, bool) {
	r := registration{Sub: sub, Namespace: ns, Feature: feature}
	if !guidRE.MatchString(sub) {
		return r, false
	}
	if feature != "" {
		return r, ns == previewNamespace && feature == previewFeature
	}
	return r, slices.Contains(cmkProviders, ns)
}

// providerAction registers a provider or the preview feature, or
// unregisters a provider after confirmation. A refusal is shown on the
// providers page next to the row it concerns.
func (a *Admin) providerAction(w http.ResponseWriter, r *http.Request, s *session) {
	reg, ok := registrationFrom(r.PostFormValue("subscription"), r.PostFormValue("namespace"), r.PostFormValue("feature"))
	action := r.PostFormValue("action")
	if !ok || (action != "register" && action != "unregister") || (action == "unregister" && reg.Feature != "") {
		a.render(w, r, s, http.StatusBadRequest, "error", errorView{Title: "Unknown action",
			Message: "Register or unregister one of the providers on the Providers page, or register the preview feature."})
		return
	}
	if action == "unregister" && r.PostFormValue("confirm") != "yes" {
		a.render(w, r, s, http.StatusOK, "confirm", confirmView{Title: "Unregister " + reg.Namespace,
			Message: "The subscription can no longer create or change " + reg.Namespace + " resources, such as enterprise policies or key vaults, until it is registered again. The resource manager refuses while the subscription still has resources of the provider.",
			Action:  "/admin/kv/providers", Button: "Unregister " + reg.Namespace, Back: "/admin/kv/providers",
			Fields: map[string][]string{"subscription": {reg.Sub}, "namespace": {reg.Namespace}, "action": {"unregister"}}})
		return
	}
	ctx, c := r.Context(), a.client(s)
	var err error
	switch {
	case reg.Feature != "":
		_, err = c.RegisterFeature(ctx, reg.Sub, reg.Namespace, reg.Feature)
	case action == "register":
		_, err = c.RegisterProvider(ctx, reg.Sub, reg.Namespace, false, nil)
	default:
		_, err = c.UnregisterProvider(ctx, reg.Sub, reg.Namespace, false, nil)
	}
	if err != nil {
		msg, status, ok := refused(err)
		if !ok {
			a.fail(w, r, s, err)
			return
		}
		v, lerr := a.loadProviders(ctx, c)
		if lerr != nil {
			a.fail(w, r, s, lerr)
			return
		}
		for i := range v.Subs {
			for j, row := range v.Subs[i].Rows {
				if row.Sub == reg.Sub && row.Namespace == reg.Namespace && row.Feature == reg.Feature {
					v.Subs[i].Rows[j].Error = msg
				}
			}
		}
		a.render(w, r, s, status, "providers", v)
		return
	}
	word := "Registration"
	if action == "unregister" {
		word = "Unregistration"
	}
	a.flash(s, word+" of "+reg.Label()+" requested; the state below follows it.")
	http.Redirect(w, r, "/admin/kv/providers", http.StatusSeeOther)
}

// stateJSON is what the pages' script polls while a state changes.
type stateJSON struct {
	State string `json:"state"`
	Class string `json:"class"`
	Done  bool   `json:"done"`
	Error string `json:"error,omitempty"`
}

func stateOf(state string, done bool) stateJSON {
	return stateJSON{State: state, Class: funcs["stateClass"].(func(string) string)(state), Done: done}
}

func writeStateError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	writeJSON(w, stateJSON{Error: msg})
}

func (a *Admin) providerStatus(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	reg, ok := registrationFrom(q.Get("subscription"), q.Get("namespace"), q.Get("feature"))
	if !ok {
		writeStateError(w, http.StatusBadRequest, "not a registration the pages follow")
		return
	}
	reg, err := readRegistration(r.Context(), a.client(s), reg)
	if err != nil {
		a.cfg.Logger.Error("admin: reading a registration failed", "namespace", reg.Namespace, "err", err.Error())
		writeStateError(w, http.StatusBadGateway, "unavailable")
		return
	}
	v := stateOf(reg.State, !reg.Busy())
	v.Error = reg.Error
	writeJSON(w, v)
}

// policyForm is what the key vault administrator fills in to create an
// enterprise policy: the documentation's template parameters, and where
// to deploy it.
type policyForm struct {
	Sub, Group, Name, Region, Vault, Key, Version string
}

// vaultChoice is a vault offered on the form.
type vaultChoice struct {
	ID, Name, Group, Location string
}

type policyNewView struct {
	Form          policyForm
	Errors        map[string]string
	Subscriptions []client.Subscription
	Groups        []string
	Regions       []string
	Vaults        []vaultChoice
	// Keys are the chosen vault's keys; KeysListed is false when they
	// could not be listed, and the form asks for a name instead.
	Keys       []string
	KeysListed bool
	KeysNote   string
	// Failed is the page of the failed deployment whose errors the form
	// shows, and FailedName its name.
	Failed, FailedName string
}

// VaultPath is the page of the chosen vault, where keys are created.
func (v policyNewView) VaultPath() string { return vaultPagePath(v.Form.Vault) }

// vaultPagePath is the vault page of a vault's resource id.
func vaultPagePath(id string) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) != 8 {
		return "/admin/vaults"
	}
	return "/admin/vaults/" + url.PathEscape(segs[1]) + "/" + url.PathEscape(segs[3]) + "/" + url.PathEscape(segs[7])
}

// isVaultID reports whether id looks like a key vault's resource id.
func isVaultID(id string) bool {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	return len(segs) == 8 && strings.EqualFold(segs[0], "subscriptions") && strings.EqualFold(segs[2], "resourceGroups") &&
		strings.EqualFold(segs[4], "providers") && strings.EqualFold(segs[5]+"/"+segs[6], "Microsoft.KeyVault/vaults") && segs[7] != ""
}

// loadPolicyForm fills in the choices of the policy form for f, and f's
// defaults: the first subscription and vault, and the default region.
func (a *Admin) loadPolicyForm(ctx context.Context, c *client.Client, f policyForm) (policyNewView, error) {
	v := policyNewView{Form: f, Errors: map[string]string{}}
	subs, err := c.ListSubscriptions(ctx)
	if err != nil {
		return v, err
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].DisplayName < subs[j].DisplayName })
	v.Subscriptions = subs
	groups := map[string]bool{}
	for _, sub := range subs {
		gs, err := c.ListResourceGroups(ctx, sub.SubscriptionID)
		if _, _, ok := refused(err); err != nil && !ok {
			return v, err
		}
		for _, g := range gs {
			groups[g.Name] = true
		}
		vs, err := c.ListVaults(ctx, sub.SubscriptionID, "")
		if _, _, ok := refused(err); err != nil && !ok {
			return v, err
		}
		for _, vault := range vs {
			segs := strings.Split(strings.Trim(vault.ID, "/"), "/")
			group := ""
			if len(segs) > 3 {
				group = segs[3]
			}
			v.Vaults = append(v.Vaults, vaultChoice{ID: vault.ID, Name: vault.Name, Group: group, Location: vault.Location})
		}
	}
	for g := range groups {
		v.Groups = append(v.Groups, g)
	}
	sort.Strings(v.Groups)
	sort.Slice(v.Vaults, func(i, j int) bool { return v.Vaults[i].Name < v.Vaults[j].Name })
	if v.Form.Sub == "" && len(subs) > 0 {
		v.Form.Sub = subs[0].SubscriptionID
	}
	// The regions are those the policy type's provider metadata lists, as
	// GetSupportedEnterprisePolicyLocations.ps1 reads them; any subscription
	// the caller sees will do when the form names none of them.
	regionSub := ""
	for _, sub := range subs {
		if regionSub == "" || sub.SubscriptionID == v.Form.Sub {
			regionSub = sub.SubscriptionID
		}
	}
	if regionSub != "" {
		if p, err := c.GetProvider(ctx, regionSub, previewNamespace); err == nil {
			for _, t := range p.ResourceTypes {
				if strings.EqualFold(t.ResourceType, "enterprisePolicies") {
					v.Regions = t.Locations
				}
			}
		}
	}
	if v.Form.Region == "" && slices.Contains(v.Regions, defaultRegion) {
		v.Form.Region = defaultRegion
	}
	if v.Form.Vault == "" && len(v.Vaults) > 0 {
		v.Form.Vault = v.Vaults[0].ID
	}
	if v.chosenVault() != nil {
		keys, err := vaultKeyNames(ctx, c, v.Form.Vault)
		if msg, _, ok := refused(err); ok {
			v.KeysNote = "The keys of this vault could not be listed: " + msg + " Type the key's name."
		} else if err != nil {
			return v, err
		} else {
			v.Keys, v.KeysListed = keys, true
			if v.Form.Key == "" && len(keys) > 0 {
				v.Form.Key = keys[0]
			}
		}
	}
	return v, nil
}

// chosenVault returns the vault the form names, if it is one offered.
func (v policyNewView) chosenVault() *vaultChoice {
	for i := range v.Vaults {
		if strings.EqualFold(v.Vaults[i].ID, v.Form.Vault) {
			return &v.Vaults[i]
		}
	}
	return nil
}

// vaultKeyNames lists the names of the keys of the vault with resource id
// id, sorted.
func vaultKeyNames(ctx context.Context, c *client.Client, id string) ([]string, error) {
	items, err := c.ListKeys(ctx, policyName(id))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(items))
	for _, it := range items {
		names = append(names, it.Name())
	}
	sort.Strings(names)
	return names, nil
}

// newPolicyPage shows the policy form; with ?subscription, group and
// deployment naming a policy deployment it is filled in from that
// deployment, and a failed one's errors are shown next to the fields they
// concern.
func (a *Admin) newPolicyPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, c := r.Context(), a.client(s)
	q := r.URL.Query()
	var f policyForm
	var failure []client.DeploymentError
	ref := deploymentRef{Sub: q.Get("subscription"), Group: q.Get("group"), Name: q.Get("deployment")}
	if ref.Name == "" && guidRE.MatchString(ref.Sub) {
		f.Sub = ref.Sub
	}
	if ref.Name != "" {
		if !ref.valid() {
			a.render(w, r, s, http.StatusNotFound, "error", errorView{Title: "Not found", Message: "The link does not name a deployment."})
			return
		}
		d, err := c.GetDeployment(ctx, ref.Sub, ref.Group, ref.Name)
		if err != nil {
			a.fail(w, r, s, err)
			return
		}
		f = formFromDeployment(ref, d)
		if d.Properties.ProvisioningState == "Failed" {
			failure = flattenFailure(d, nil)
		}
	}
	v, err := a.loadPolicyForm(ctx, c, f)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	if failure != nil {
		v.Failed, v.FailedName = ref.Path(), ref.Name
		for _, e := range failure {
			field := failureField(e, v.Form)
			if v.Errors[field] == "" {
				v.Errors[field] = e.Message + " (" + e.Code + ")"
			}
		}
	}
	a.render(w, r, s, http.StatusOK, "policynew", v)
}

// formFromDeployment fills the form from a policy deployment's parameters.
func formFromDeployment(ref deploymentRef, d *client.Deployment) policyForm {
	param := func(name string) string {
		if p, ok := d.Properties.Parameters[name]; ok {
			if s, ok := p.Value.(string); ok {
				return s
			}
		}
		return ""
	}
	return policyForm{Sub: ref.Sub, Group: ref.Group, Name: param("enterprisePolicyName"), Region: param("location"),
		Vault: param("keyVaultId"), Key: param("keyName"), Version: param("keyVersion")}
}

// failureField is the form field a deployment error concerns; "form" is
// the form as a whole.
func failureField(e client.DeploymentError, f policyForm) string {
	switch e.Code {
	case "ResourceGroupNotFound", "AuthorizationFailed":
		return "group"
	case "InvalidResourceName", "QuotaExceeded", "InvalidDeploymentName", "DeploymentActive":
		return "name"
	case "LocationNotAvailableForResourceType", "LocationRequired", "InvalidResourceLocation":
		return "region"
	case "KeyVaultNotFound", "LinkedAuthorizationFailed", "LinkedInvalidPropertyId":
		return "vault"
	case "KeyNotFound":
		if f.Version != "" && strings.Contains(e.Message, f.Version) {
			return "version"
		}
		return "key"
	case "MissingSubscriptionRegistration", "SubscriptionNotRegisteredForFeature":
		return "subscription"
	}
	return "form"
}

// createPolicy checks the form and deploys the documentation's template
// with its values, as the seed's custom deployment does; the deployment
// page follows it. With step=keys it only shows the chosen vault's keys,
// for browsers without script.
func (a *Admin) createPolicy(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, c := r.Context(), a.client(s)
	f := policyForm{Sub: r.PostFormValue("subscription"), Group: strings.TrimSpace(r.PostFormValue("group")),
		Name: strings.TrimSpace(r.PostFormValue("name")), Region: r.PostFormValue("region"), Vault: r.PostFormValue("vault"),
		Key: strings.TrimSpace(r.PostFormValue("key")), Version: strings.TrimSpace(r.PostFormValue("version"))}
	v, err := a.loadPolicyForm(ctx, c, f)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	if r.PostFormValue("step") == "keys" {
		if v.KeysListed && !slices.Contains(v.Keys, v.Form.Key) {
			v.Form.Key = ""
		}
		a.render(w, r, s, http.StatusOK, "policynew", v)
		return
	}
	if !slices.ContainsFunc(v.Subscriptions, func(sub client.Subscription) bool { return sub.SubscriptionID == f.Sub }) {
		v.Errors["subscription"] = "Choose a subscription."
	}
	if !groupNameRE.MatchString(f.Group) {
		v.Errors["group"] = "Enter the resource group to create the policy in: letters, digits, '-', '_', '.', '(' or ')', at most 90."
	}
	if !policyNameRE.MatchString(f.Name) || strings.HasSuffix(f.Name, ".") {
		v.Errors["name"] = "A policy name is 1 to 51 letters, digits, '-', '_', '.', '(' or ')', starting with a letter or digit and not ending in a period."
	}
	switch {
	case len(v.Regions) > 0 && !slices.Contains(v.Regions, f.Region):
		v.Errors["region"] = "Choose a Power Platform region: the region of the environments that will use the policy."
	case f.Region == "":
		v.Errors["region"] = "Enter a Power Platform region, such as unitedstates: the region of the environments that will use the policy."
	}
	vault := v.chosenVault()
	switch {
	case vault == nil:
		v.Errors["vault"] = "Choose the key vault that holds the key."
	case !keyNameRE.MatchString(f.Key):
		v.Errors["key"] = "Choose the key the policy uses."
	case v.KeysListed && !slices.Contains(v.Keys, f.Key):
		v.Errors["key"] = "Key vault " + vault.Name + " has no key named " + f.Key + "; choose one of its keys."
	}
	if f.Version != "" && !keyVersionRE.MatchString(f.Version) {
		v.Errors["version"] = "A key version is the letters and digits at the end of the key's identifier; leave it empty to follow the newest version."
	}
	if len(v.Errors) > 0 {
		a.render(w, r, s, http.StatusBadRequest, "policynew", v)
		return
	}
	ref := deploymentRef{Sub: f.Sub, Group: f.Group, Name: "EPDeployment-" + f.Name}
	params := client.PolicyTemplateParameters(f.Name, f.Region, vault.ID, f.Key, f.Version)
	if _, err := c.CreateDeployment(ctx, ref.Sub, ref.Group, ref.Name, []byte(client.PolicyTemplate), params); err != nil {
		var ce *client.Error
		if !asClientError(err, &ce) || ce.StatusCode >= 500 {
			a.fail(w, r, s, err)
			return
		}
		v.Errors[failureField(client.DeploymentError{Code: ce.Code, Message: ce.Message}, f)] = ce.Message + " (" + ce.Code + ")"
		a.render(w, r, s, ce.StatusCode, "policynew", v)
		return
	}
	a.flash(s, "Deployment "+ref.Name+" started: it creates enterprise policy "+f.Name+".")
	http.Redirect(w, r, ref.Path(), http.StatusSeeOther)
}

// vaultKeys answers the policy form's script with the keys of a vault.
func (a *Admin) vaultKeys(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.URL.Query().Get("vault")
	if !isVaultID(id) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		writeJSON(w, map[string]string{"error": "not a key vault's resource id"})
		return
	}
	keys, err := vaultKeyNames(r.Context(), a.client(s), id)
	if err != nil {
		msg, status, ok := refused(err)
		if !ok {
			a.cfg.Logger.Error("admin: listing a vault's keys failed", "vault", policyName(id), "err", err.Error())
			msg, status = "unavailable", http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		writeJSON(w, map[string]string{"error": msg})
		return
	}
	writeJSON(w, map[string][]string{"keys": keys})
}

// deploymentRef is where a deployment lives; pages address deployments by
// it.
type deploymentRef struct{ Sub, Group, Name string }

func (d deploymentRef) valid() bool {
	return guidRE.MatchString(d.Sub) && groupNameRE.MatchString(d.Group) && deploymentNameRE.MatchString(d.Name)
}

func (d deploymentRef) Path() string {
	return "/admin/kv/deployments/" + url.PathEscape(d.Sub) + "/" + url.PathEscape(d.Group) + "/" + url.PathEscape(d.Name)
}

// RetryPath is the policy form filled in from the deployment.
func (d deploymentRef) RetryPath() string {
	return "/admin/kv/policies/new?" + url.Values{"subscription": {d.Sub}, "group": {d.Group}, "deployment": {d.Name}}.Encode()
}

type deploymentView struct {
	Ref        deploymentRef
	Deployment *client.Deployment
	Operations []client.DeploymentOperation
	// Failure is the deployment's error and its details, and the
	// operations' errors.
	Failure []client.DeploymentError
	// IsPolicy is set for a deployment of the policy template, which the
	// policy form can correct and deploy again.
	IsPolicy bool
	// On success: the policy, its identity, and where to grant it access.
	PolicyID, PolicyName, PrincipalID, VaultAccess, ReaderPath string
}

func deploymentRefFrom(r *http.Request) deploymentRef {
	return deploymentRef{Sub: r.PathValue("sub"), Group: r.PathValue("group"), Name: r.PathValue("name")}
}

// flattenFailure returns a failed deployment's error details (or the error
// itself when it has none) and its operations' errors, without repeats.
func flattenFailure(d *client.Deployment, ops []client.DeploymentOperation) []client.DeploymentError {
	var out []client.DeploymentError
	seen := map[string]bool{}
	add := func(e client.DeploymentError) {
		if k := e.Code + "\x00" + e.Message; !seen[k] {
			seen[k] = true
			out = append(out, client.DeploymentError{Code: e.Code, Message: e.Message, Target: e.Target})
		}
	}
	if e := d.Properties.Error; e != nil {
		if len(e.Details) == 0 {
			add(*e)
		}
		for _, det := range e.Details {
			add(det)
		}
	}
	for _, op := range ops {
		if sm := op.Properties.StatusMessage; sm != nil && sm.Error != nil {
			add(*sm.Error)
		}
	}
	if out == nil {
		out = []client.DeploymentError{{Code: "DeploymentFailed", Message: "The deployment failed without a reason."}}
	}
	return out
}

func (a *Admin) deploymentPage(w http.ResponseWriter, r *http.Request, s *session) {
	ref := deploymentRefFrom(r)
	if !ref.valid() {
		a.render(w, r, s, http.StatusNotFound, "error", errorView{Title: "Not found", Message: "There is no deployment at " + r.URL.Path + "."})
		return
	}
	ctx, c := r.Context(), a.client(s)
	d, err := c.GetDeployment(ctx, ref.Sub, ref.Group, ref.Name)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	ops, err := c.ListDeploymentOperations(ctx, ref.Sub, ref.Group, ref.Name)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	_, isPolicy := d.Properties.Parameters["enterprisePolicyName"]
	v := deploymentView{Ref: ref, Deployment: d, Operations: ops, IsPolicy: isPolicy}
	switch d.Properties.ProvisioningState {
	case "Failed":
		v.Failure = flattenFailure(d, ops)
	case "Succeeded":
		if out, ok := d.Properties.Outputs["principalId"]; ok {
			v.PrincipalID, _ = out.Value.(string)
		}
		for _, res := range d.Properties.OutputResources {
			if !client.IsPolicyID(res.ID) {
				continue
			}
			v.PolicyID, v.PolicyName = res.ID, policyName(res.ID)
			v.ReaderPath = "/admin/kv/policies?" + url.Values{"policy": {res.ID}}.Encode()
			p, err := c.GetPolicy(ctx, res.ID)
			if err != nil {
				// The deployment's own outputs still name the identity.
				a.cfg.Logger.Warn("admin: reading a deployed policy failed", "policy", res.ID, "err", err.Error())
				continue
			}
			if id := p.PrincipalID(); id != "" {
				v.PrincipalID = id
			}
			if enc := p.Properties.Encryption; enc != nil && enc.KeyVault != nil && isVaultID(enc.KeyVault.ID) && v.PrincipalID != "" {
				v.VaultAccess = vaultPagePath(enc.KeyVault.ID) + "?" + url.Values{"object": {v.PrincipalID}}.Encode()
			}
		}
	}
	a.render(w, r, s, http.StatusOK, "deployment", v)
}

func (a *Admin) deploymentStatus(w http.ResponseWriter, r *http.Request, s *session) {
	ref := deploymentRefFrom(r)
	if !ref.valid() {
		writeStateError(w, http.StatusNotFound, "not found")
		return
	}
	d, err := a.client(s).GetDeployment(r.Context(), ref.Sub, ref.Group, ref.Name)
	if err != nil {
		msg, status, ok := refused(err)
		if !ok {
			a.cfg.Logger.Error("admin: reading a deployment failed", "deployment", ref.Name, "err", err.Error())
			msg, status = "unavailable", http.StatusBadGateway
		}
		writeStateError(w, status, msg)
		return
	}
	writeJSON(w, stateOf(d.Properties.ProvisioningState, d.Done()))
}
