package admin

import (
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold/client"
)

// cmkPreset is the "Power Platform CMK" access-policy preset: what an
// enterprise policy's identity needs and nothing more.
var cmkPreset = []string{"get", "wrapKey", "unwrapKey"}

// keyPermissions are the key permissions an access policy may grant.
var keyPermissions = []string{"get", "list", "create", "import", "update", "delete", "recover", "rotate", "wrapKey", "unwrapKey", "encrypt", "decrypt", "sign", "verify"}

var (
	vaultNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	groupNameRE = regexp.MustCompile(`^[-\w._()]{1,90}$`)
	keyNameRE   = regexp.MustCompile(`^[a-zA-Z0-9-]{1,127}$`)
	guidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

func (a *Admin) vaultRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /admin/vaults", a.page(false, show(a, "vaults", a.loadVaults)))
	m.HandleFunc("POST /admin/vaults", a.page(false, withView(a, a.loadVaults, a.createVault)))
	m.HandleFunc("POST /admin/vaults/recover", a.page(false, a.recoverVault))
	m.HandleFunc("GET /admin/vaults/{sub}/{group}/{name}", a.page(false, show(a, "vault", a.loadVaultPage)))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/delete", a.page(false, a.deleteVault))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/network", a.page(false, withView(a, a.loadVault, a.updateNetwork)))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/keys", a.page(false, withView(a, a.loadVault, a.createKey)))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/import", a.page(false, withView(a, a.loadVault, a.importKey)))
	m.HandleFunc("GET /admin/vaults/{sub}/{group}/{name}/keys/{key}", a.page(false, show(a, "key", a.loadKey)))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/keys/{key}", a.page(false, a.keyAction))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/keys/{key}/rotate", a.page(false, a.rotateKey))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/keys/{key}/versions/{version}", a.page(false, a.versionAction))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/access", a.page(false, withView(a, a.loadVault, a.addAccess)))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/access/remove", a.page(false, withView(a, a.loadVault, a.removeAccess)))
	m.HandleFunc("GET /admin/kv/policies", a.page(false, a.kvPolicies))
	m.HandleFunc("POST /admin/kv/policies/reader", a.page(false, a.grantReader))
}

// vaultRef is where a vault lives; pages address vaults by it.
type vaultRef struct{ Sub, Group, Name string }

func (v vaultRef) Path() string {
	return "/admin/vaults/" + url.PathEscape(v.Sub) + "/" + url.PathEscape(v.Group) + "/" + url.PathEscape(v.Name)
}

// KeyPath returns the key page of key name in the vault.
func (v vaultRef) KeyPath(name string) string { return v.Path() + "/keys/" + url.PathEscape(name) }

// refFromRequest returns the vault the request's path names.
func refFromRequest(r *http.Request) vaultRef {
	return vaultRef{Sub: r.PathValue("sub"), Group: r.PathValue("group"), Name: r.PathValue("name")}
}

func refFromID(id string) vaultRef {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	if len(segs) < 8 {
		return vaultRef{}
	}
	return vaultRef{Sub: segs[1], Group: segs[3], Name: segs[7]}
}

type vaultItem struct {
	client.Vault
	Ref vaultRef
}

type vaultForm struct {
	Sub, Group, Name, Location string
	// Network is Enabled, Selected (from the IP rules only) or Disabled.
	Network, IPRules string
}

// deletedVaultItem is a soft-deleted vault on the vaults page.
type deletedVaultItem struct {
	client.DeletedVault
	Sub string
}

type vaultsView struct {
	Vaults        []vaultItem
	Deleted       []deletedVaultItem
	Subscriptions []client.Subscription
	Form          vaultForm
	Errors        map[string]string
}

func (a *Admin) loadVaults(r *http.Request, s *session) (vaultsView, error) {
	ctx, c := r.Context(), a.client(s)
	subs, err := c.ListSubscriptions(ctx)
	if err != nil {
		return vaultsView{}, err
	}
	v := vaultsView{Subscriptions: subs, Errors: map[string]string{}, Form: vaultForm{Location: "westus", Network: "Enabled"}}
	for _, sub := range subs {
		vs, err := c.ListVaults(ctx, sub.SubscriptionID, "")
		if err != nil {
			if st := client.StatusCode(err); st == http.StatusForbidden || st == http.StatusNotFound {
				continue
			}
			return vaultsView{}, err
		}
		for _, vault := range vs {
			v.Vaults = append(v.Vaults, vaultItem{Vault: vault, Ref: refFromID(vault.ID)})
		}
		// Reading deleted vaults takes rights on the subscription that a
		// user with access to one vault may lack; they just see none.
		if ds, err := c.ListDeletedVaults(ctx, sub.SubscriptionID); err == nil {
			for _, d := range ds {
				v.Deleted = append(v.Deleted, deletedVaultItem{DeletedVault: d, Sub: sub.SubscriptionID})
			}
		}
	}
	sort.Slice(v.Vaults, func(i, j int) bool { return v.Vaults[i].Name < v.Vaults[j].Name })
	sort.Slice(v.Deleted, func(i, j int) bool { return v.Deleted[i].Name < v.Deleted[j].Name })
	return v, nil
}

// createVault creates a vault with soft delete and purge protection on,
// which the CMK preconditions require, and the chosen network access.
func (a *Admin) createVault(w http.ResponseWriter, r *http.Request, s *session, v vaultsView) {
	f := vaultForm{Sub: r.PostFormValue("subscription"), Group: strings.TrimSpace(r.PostFormValue("group")),
		Name: strings.TrimSpace(r.PostFormValue("name")), Location: strings.TrimSpace(r.PostFormValue("location")),
		Network: r.PostFormValue("network"), IPRules: r.PostFormValue("iprules")}
	v.Form = f
	if !guidRE.MatchString(f.Sub) {
		v.Errors["subscription"] = "Choose a subscription."
	}
	if !groupNameRE.MatchString(f.Group) {
		v.Errors["group"] = "Enter a resource group name: letters, digits, '-', '_', '.', '(' or ')', at most 90."
	}
	if !vaultNameRE.MatchString(f.Name) || strings.Contains(f.Name, "--") {
		v.Errors["name"] = "A vault name is 3 to 24 letters, digits and single hyphens, starting with a letter."
	}
	if f.Location == "" {
		v.Errors["location"] = "Enter a region, such as westus."
	}
	net, netErrs := parseNetwork(f.Network, f.IPRules, true, nil)
	for k, msg := range netErrs {
		v.Errors[k] = msg
	}
	if len(v.Errors) > 0 {
		a.render(w, r, s, http.StatusBadRequest, "vaults", v)
		return
	}
	ctx, c := r.Context(), a.client(s)
	if _, err := c.GetResourceGroup(ctx, f.Sub, f.Group); client.IsNotFound(err) {
		_, err = c.CreateResourceGroup(ctx, f.Sub, f.Group, f.Location, nil)
		if err != nil {
			a.formErr(w, r, s, err, v, "group")
			return
		}
	}
	on := true
	vault, err := c.CreateVault(ctx, f.Sub, f.Group, f.Name, client.Vault{Location: f.Location, Properties: client.VaultProperties{
		TenantID: s.tenantID, SKU: client.VaultSKU{Family: "A", Name: "standard"},
		EnableSoftDelete: &on, EnablePurgeProtection: &on, PublicNetworkAccess: net.PublicNetworkAccess, NetworkACLs: net.NetworkACLs,
		// The creator can manage keys in the vault it made.
		AccessPolicies: []client.VaultAccessPolicy{{TenantID: s.tenantID, ObjectID: s.objectID,
			Permissions: client.VaultPermissions{Keys: keyPermissions}}},
	}})
	if err != nil {
		field := "name"
		if strings.Contains(apiMessage(err), "networkAcls") {
			field = "iprules"
		}
		a.formErr(w, r, s, err, v, field)
		return
	}
	a.flash(s, "Vault "+vault.Name+" was created with soft delete and purge protection on.")
	http.Redirect(w, r, refFromID(vault.ID).Path(), http.StatusSeeOther)
}

// formErr shows a refused API call next to a form field.
func (a *Admin) formErr(w http.ResponseWriter, r *http.Request, s *session, err error, v vaultsView, field string) {
	var ce *client.Error
	if st := client.StatusCode(err); st >= 400 && st < 500 && asClientError(err, &ce) {
		v.Errors[field] = ce.Message
		a.render(w, r, s, st, "vaults", v)
		return
	}
	a.fail(w, r, s, err)
}

type keyRow struct {
	Name    string
	Enabled bool
	Expires string
	Created string
	Deleted bool
}

type keyForm struct {
	Name, Kty, Size, Expires string
}

type vaultView struct {
	Vault       client.Vault
	Ref         vaultRef
	Keys        []keyRow
	Deleted     []keyRow
	Versions    map[string]int
	KeyForm     keyForm
	ImportForm  importForm
	Network     networkForm
	Access      []accessRow
	Errors      map[string]string
	Permissions []string
	Preset      []string
	// Object fills the access-policy form's principal: what was typed, or
	// the policy identity the deployment page links here with.
	Object string
	// KeysError is why the keys could not be listed (the vault's firewall,
	// or no list permission), shown in place of the list.
	KeysError string
}

// accessRow is an access policy with what the pages know of its principal.
type accessRow struct {
	client.VaultAccessPolicy
	Who string
}

func unixText(p *int64) string {
	if p == nil || *p == 0 {
		return ""
	}
	return time.Unix(*p, 0).UTC().Format("2006-01-02")
}

func (a *Admin) loadVault(r *http.Request, s *session) (vaultView, error) {
	ref := refFromRequest(r)
	ctx, c := r.Context(), a.client(s)
	vault, err := c.GetVault(ctx, ref.Sub, ref.Group, ref.Name)
	if err != nil {
		return vaultView{}, err
	}
	v := vaultView{Vault: *vault, Ref: ref, Errors: map[string]string{}, KeyForm: keyForm{Kty: "RSA", Size: "2048"},
		ImportForm: importForm{Kty: "RSA"}, Network: currentNetwork(vault.Properties),
		Permissions: keyPermissions, Preset: cmkPreset, Versions: map[string]int{}}
	v.Access = a.accessRows(r, s, c, vault.Properties.AccessPolicies)
	keys, err := c.ListKeys(ctx, ref.Name)
	if err != nil {
		if client.StatusCode(err) != http.StatusForbidden {
			return vaultView{}, err
		}
		v.KeysError = apiMessage(err)
	}
	for _, k := range keys {
		row := keyRow{Name: k.Name(), Enabled: k.Attributes.Enabled == nil || *k.Attributes.Enabled,
			Expires: unixText(k.Attributes.Expires), Created: unixText(k.Attributes.Created)}
		if vs, err := c.ListKeyVersions(ctx, ref.Name, row.Name); err == nil {
			v.Versions[row.Name] = len(vs)
		}
		v.Keys = append(v.Keys, row)
	}
	if deleted, err := c.ListDeletedKeys(ctx, ref.Name); err == nil {
		for _, k := range deleted {
			v.Deleted = append(v.Deleted, keyRow{Name: k.Name(), Deleted: true})
		}
	}
	return v, nil
}

// loadVaultPage is loadVault for the vault page, whose access form takes
// the principal from a link (the deployment page's, with the new policy's
// identity).
func (a *Admin) loadVaultPage(r *http.Request, s *session) (vaultView, error) {
	v, err := a.loadVault(r, s)
	if obj := r.URL.Query().Get("object"); err == nil && guidRE.MatchString(obj) {
		v.Object = obj
	}
	return v, err
}

// createKey creates an RSA key (2048, 3072 or 4096 bits), optionally
// with an expiry date.
func (a *Admin) createKey(w http.ResponseWriter, r *http.Request, s *session, v vaultView) {
	f := keyForm{Name: strings.TrimSpace(r.PostFormValue("key")), Kty: r.PostFormValue("kty"), Size: r.PostFormValue("size"), Expires: strings.TrimSpace(r.PostFormValue("expires"))}
	v.KeyForm = f
	if !keyNameRE.MatchString(f.Name) {
		v.Errors["key"] = "A key name is 1 to 127 letters, digits and hyphens."
	}
	if f.Kty != "RSA" && f.Kty != "RSA-HSM" {
		v.Errors["kty"] = "Choose RSA or RSA-HSM."
	}
	size, _ := strconv.Atoi(f.Size)
	if size != 2048 && size != 3072 && size != 4096 {
		v.Errors["size"] = "Choose 2048, 3072 or 4096 bits."
	}
	var expires time.Time
	if f.Expires != "" {
		var err error
		expires, err = time.Parse("2006-01-02", f.Expires)
		if err != nil {
			v.Errors["expires"] = "Enter the expiry date as YYYY-MM-DD."
		} else if !expires.After(a.cfg.Now()) {
			v.Errors["expires"] = "The expiry date must be in the future."
		}
	}
	if len(v.Errors) > 0 {
		a.render(w, r, s, http.StatusBadRequest, "vault", v)
		return
	}
	if _, err := a.client(s).CreateKey(r.Context(), v.Ref.Name, f.Name, client.KeyCreate{Kty: f.Kty, KeySize: size, Expires: expires}); err != nil {
		var ce *client.Error
		if asClientError(err, &ce) && ce.StatusCode < 500 {
			v.Errors["key"] = ce.Message
			a.render(w, r, s, ce.StatusCode, "vault", v)
			return
		}
		a.fail(w, r, s, err)
		return
	}
	a.flash(s, "Key "+f.Name+" was created.")
	http.Redirect(w, r, v.Ref.Path(), http.StatusSeeOther)
}

// keyAction enables, disables or deletes (both after confirmation: either
// locks the environments whose policy uses the key) or recovers a key.
func (a *Admin) keyAction(w http.ResponseWriter, r *http.Request, s *session) {
	ref := refFromRequest(r)
	key, action := r.PathValue("key"), r.PostFormValue("action")
	ctx, c := r.Context(), a.client(s)
	var err error
	switch action {
	case "enable", "disable":
		on := action == "enable"
		if !on && r.PostFormValue("confirm") != "yes" {
			a.render(w, r, s, http.StatusOK, "confirm", confirmView{Title: "Disable key " + key,
				Message: "Environments whose policy uses this key are disabled at once, until the key is enabled again and an administrator re-enables them.",
				Action:  ref.Path() + "/keys/" + url.PathEscape(key), Button: "Disable key", Back: ref.Path(),
				Fields: map[string][]string{"action": {"disable"}}})
			return
		}
		_, err = c.UpdateKey(ctx, ref.Name, key, "", client.KeyUpdate{Enabled: &on})
	case "delete":
		if r.PostFormValue("confirm") != "yes" {
			a.render(w, r, s, http.StatusOK, "confirm", confirmView{Title: "Delete key " + key,
				Message: "Environments whose policy uses this key are disabled until it is recovered. The key stays recoverable for the vault's retention period.",
				Action:  ref.Path() + "/keys/" + url.PathEscape(key), Button: "Delete key", Back: ref.Path(),
				Fields: map[string][]string{"action": {"delete"}}})
			return
		}
		_, err = c.DeleteKey(ctx, ref.Name, key)
	case "recover":
		_, err = c.RecoverKey(ctx, ref.Name, key)
	default:
		a.render(w, r, s, http.StatusBadRequest, "error", errorView{Title: "Unknown action", Message: "Choose enable, disable, delete or recover."})
		return
	}
	if err != nil {
		a.flashErr(w, r, s, err, ref.Path())
		return
	}
	a.flash(s, "Key "+key+": "+action+" done.")
	http.Redirect(w, r, ref.Path(), http.StatusSeeOther)
}

// addAccess adds an access policy; the preset fills in the CMK permissions.
func (a *Admin) addAccess(w http.ResponseWriter, r *http.Request, s *session, v vaultView) {
	obj := strings.TrimSpace(r.PostFormValue("object"))
	v.Object = obj
	perms := r.PostForm["perm"]
	if r.PostFormValue("preset") == "cmk" {
		perms = cmkPreset
	}
	allowed := map[string]bool{}
	for _, p := range keyPermissions {
		allowed[p] = true
	}
	if !guidRE.MatchString(obj) {
		v.Errors["object"] = "Enter the object id (a GUID) of the user, service principal or policy identity."
	}
	if len(perms) == 0 {
		v.Errors["perm"] = "Choose at least one key permission, or the Power Platform CMK preset."
	}
	for _, p := range perms {
		if !allowed[p] {
			v.Errors["perm"] = "Unknown permission " + p + "."
		}
	}
	if len(v.Errors) > 0 {
		a.render(w, r, s, http.StatusBadRequest, "vault", v)
		return
	}
	if err := a.client(s).UpdateAccessPolicies(r.Context(), v.Ref.Sub, v.Ref.Group, v.Ref.Name, client.AccessPolicyAdd,
		[]client.VaultAccessPolicy{{TenantID: s.tenantID, ObjectID: obj, Permissions: client.VaultPermissions{Keys: perms}}}); err != nil {
		var ce *client.Error
		if asClientError(err, &ce) && ce.StatusCode < 500 {
			v.Errors["object"] = ce.Message
			a.render(w, r, s, ce.StatusCode, "vault", v)
			return
		}
		a.fail(w, r, s, err)
		return
	}
	a.flash(s, "Access policy saved: "+strings.Join(perms, ", ")+".")
	http.Redirect(w, r, v.Ref.Path(), http.StatusSeeOther)
}

type kvPoliciesView struct {
	Policies []client.EnterprisePolicy
	Errors   map[string]string
	Object   string
	Policy   string
}

func (a *Admin) kvPolicies(w http.ResponseWriter, r *http.Request, s *session) {
	ps, err := a.listPolicies(r.Context(), a.client(s))
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	v := kvPoliciesView{Policies: ps, Errors: map[string]string{}}
	// The deployment page links here with the new policy chosen.
	if p := r.URL.Query().Get("policy"); client.IsPolicyID(p) {
		v.Policy = p
	}
	a.render(w, r, s, http.StatusOK, "kvpolicies", v)
}

// readerRoleID is the built-in Reader role, which a platform administrator
// needs on a policy to add environments to it.
const readerRoleID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"

func (a *Admin) grantReader(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, c := r.Context(), a.client(s)
	ps, err := a.listPolicies(ctx, c)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	v := kvPoliciesView{Policies: ps, Errors: map[string]string{}, Object: strings.TrimSpace(r.PostFormValue("object")), Policy: r.PostFormValue("policy")}
	if !client.IsPolicyID(v.Policy) {
		v.Errors["policy"] = "Choose a policy."
	}
	if !guidRE.MatchString(v.Object) {
		v.Errors["object"] = "Enter the object id (a GUID) of the platform administrator."
	}
	if len(v.Errors) > 0 {
		a.render(w, r, s, http.StatusBadRequest, "kvpolicies", v)
		return
	}
	sub := strings.Split(strings.Trim(v.Policy, "/"), "/")[1]
	if _, err := c.CreateRoleAssignment(ctx, v.Policy, "/subscriptions/"+sub+"/providers/Microsoft.Authorization/roleDefinitions/"+readerRoleID, v.Object, "User"); err != nil {
		var ce *client.Error
		if asClientError(err, &ce) && ce.StatusCode < 500 {
			v.Errors["object"] = ce.Message
			a.render(w, r, s, ce.StatusCode, "kvpolicies", v)
			return
		}
		a.fail(w, r, s, err)
		return
	}
	a.flash(s, "Reader granted on "+policyName(v.Policy)+".")
	http.Redirect(w, r, "/admin/kv/policies", http.StatusSeeOther)
}

// apiMessage returns the message of an API refusal, or "" for any other
// error, whose detail belongs in the log only.
func apiMessage(err error) string {
	var ce *client.Error
	if asClientError(err, &ce) && ce.StatusCode < 500 {
		return ce.Message
	}
	return ""
}

// accessRows names the principals of a vault's access policies where the
// pages can do so cheaply: the signed-in user, and the identities of the
// enterprise policies the user can read. Others show their object id only.
func (a *Admin) accessRows(r *http.Request, s *session, c *client.Client, aps []client.VaultAccessPolicy) []accessRow {
	names := map[string]string{strings.ToLower(s.objectID): "You (" + s.upn + ")"}
	if len(aps) > 1 || len(aps) == 1 && !strings.EqualFold(aps[0].ObjectID, s.objectID) {
		if ps, err := a.listPolicies(r.Context(), c); err == nil {
			for _, p := range ps {
				if id := p.PrincipalID(); id != "" {
					names[strings.ToLower(id)] = "Identity of enterprise policy " + p.Name
				}
			}
		}
	}
	rows := make([]accessRow, 0, len(aps))
	for _, ap := range aps {
		rows = append(rows, accessRow{VaultAccessPolicy: ap, Who: names[strings.ToLower(ap.ObjectID)]})
	}
	return rows
}

// networkForm is the Networking card: Network is Enabled, Selected (the
// IP rules only) or Disabled; Bypass lets trusted services (enterprise
// policy identities) through the firewall.
type networkForm struct {
	Network, IPRules string
	Bypass           bool
}

// currentNetwork reads a vault's networking into the form.
func currentNetwork(p client.VaultProperties) networkForm {
	f := networkForm{Network: "Enabled", Bypass: true}
	if acl := p.NetworkACLs; acl != nil {
		f.Bypass = acl.Bypass == "" || strings.Contains(strings.ToLower(acl.Bypass), "azureservices")
		rules := make([]string, 0, len(acl.IPRules))
		for _, r := range acl.IPRules {
			rules = append(rules, r.Value)
		}
		f.IPRules = strings.Join(rules, "\n")
		if strings.EqualFold(acl.DefaultAction, "Deny") {
			f.Network = "Selected"
		}
	}
	if strings.EqualFold(p.PublicNetworkAccess, "Disabled") {
		f.Network = "Disabled"
	}
	return f
}

// maxIPRules is the vault firewall's limit.
const maxIPRules = 1000

// parseIPRules reads IPv4 addresses and CIDR ranges, one a line (commas
// and spaces also separate them), drops repeats and returns them in
// canonical form, or a message about the first bad one.
func parseIPRules(text string) ([]client.VaultIPRule, string) {
	fields := strings.FieldsFunc(text, func(r rune) bool {
		return r == '\n' || r == '\r' || r == ',' || r == ';' || r == ' ' || r == '\t'
	})
	seen := map[string]bool{}
	var out []client.VaultIPRule
	for _, f := range fields {
		shown := f
		if len(shown) > 50 {
			shown = shown[:50] + "…"
		}
		var canon string
		if strings.Contains(f, "/") {
			pfx, err := netip.ParsePrefix(f)
			switch {
			case err != nil:
				return nil, fmt.Sprintf("%q is not an IPv4 address or CIDR range such as 203.0.113.0/24.", shown)
			case !pfx.Addr().Is4():
				return nil, fmt.Sprintf("%q is an IPv6 range; the vault firewall takes IPv4 addresses and ranges only.", shown)
			case pfx != pfx.Masked():
				return nil, fmt.Sprintf("%q has host bits set; the range is %s.", shown, pfx.Masked())
			}
			canon = pfx.String()
		} else {
			addr, err := netip.ParseAddr(f)
			switch {
			case err != nil:
				return nil, fmt.Sprintf("%q is not an IPv4 address or CIDR range such as 203.0.113.0/24.", shown)
			case !addr.Is4():
				return nil, fmt.Sprintf("%q is an IPv6 address; the vault firewall takes IPv4 addresses and ranges only.", shown)
			}
			canon = addr.String()
		}
		if !seen[canon] {
			seen[canon] = true
			out = append(out, client.VaultIPRule{Value: canon})
		}
	}
	if len(out) > maxIPRules {
		return nil, fmt.Sprintf("The vault firewall takes at most %d rules; this list has %d.", maxIPRules, len(out))
	}
	return out, ""
}

// networkSettings is what a Networking choice sets on a vault.
type networkSettings struct {
	PublicNetworkAccess string
	NetworkACLs         *client.VaultNetworkACLs
	Rules               []string
}

// parseNetwork turns a Networking choice into vault settings. Enabled opens
// the vault to every network and clears the rules; Selected lets only the
// rules through; Disabled closes it to public networks, keeping the rules
// for later. Trusted services pass when bypass is on. prev carries the
// firewall's virtual network rules, which the pages do not edit, over. The
// map holds messages by field (network, iprules).
func parseNetwork(mode, rulesText string, bypass bool, prev *client.VaultNetworkACLs) (networkSettings, map[string]string) {
	errs := map[string]string{}
	rules, msg := parseIPRules(rulesText)
	acl := &client.VaultNetworkACLs{Bypass: "None", DefaultAction: "Deny", IPRules: rules}
	if bypass {
		acl.Bypass = "AzureServices"
	}
	if prev != nil {
		acl.VirtualNetworkRules = prev.VirtualNetworkRules
	}
	out := networkSettings{PublicNetworkAccess: "Enabled", NetworkACLs: acl}
	switch mode {
	case "Enabled":
		acl.DefaultAction, acl.IPRules = "Allow", nil
		return out, errs
	case "Selected":
		if msg == "" && len(rules) == 0 {
			msg = "Enter at least one IPv4 address or range, or choose Disabled."
		}
	case "Disabled":
		out.PublicNetworkAccess = "Disabled"
	default:
		errs["network"] = "Choose Enabled, Enabled from selected IP addresses, or Disabled."
		return out, errs
	}
	if msg != "" {
		errs["iprules"] = msg
	}
	for _, r := range rules {
		out.Rules = append(out.Rules, r.Value)
	}
	return out, errs
}

// updateNetwork saves the Networking card. Closing the vault to public
// networks or to all but some addresses asks first: it can lock every
// environment whose policy uses the vault.
func (a *Admin) updateNetwork(w http.ResponseWriter, r *http.Request, s *session, v vaultView) {
	f := networkForm{Network: r.PostFormValue("network"), IPRules: r.PostFormValue("iprules"), Bypass: r.PostFormValue("bypass") == "on"}
	v.Network = f
	net, errs := parseNetwork(f.Network, f.IPRules, f.Bypass, v.Vault.Properties.NetworkACLs)
	if len(errs) > 0 {
		v.Errors = errs
		a.render(w, r, s, http.StatusBadRequest, "vault", v)
		return
	}
	if f.Network != "Enabled" && r.PostFormValue("confirm") != "yes" {
		cv := confirmView{Title: "Restrict network access to " + v.Vault.Name, Action: v.Ref.Path() + "/network", Button: "Save networking", Back: v.Ref.Path(),
			Fields: map[string][]string{"network": {f.Network}, "iprules": {strings.Join(net.Rules, ",")}}}
		if f.Bypass {
			cv.Fields["bypass"] = []string{"on"}
		}
		who := "Trusted services, such as an enterprise policy's identity, may still pass."
		if !f.Bypass {
			who = "Trusted services may not pass either, so every environment whose policy uses this vault is disabled at once."
		}
		if f.Network == "Disabled" {
			cv.Message = "The vault is closed to public networks: no address can reach its keys, these pages included. " + who
		} else {
			cv.Message = "Only the addresses below can reach the vault's keys; these pages reach them from the Keyhold server's own address. " + who
			cv.Items = net.Rules
		}
		for _, p := range a.policiesUsing(r, s, v.Vault.ID, "") {
			cv.Items = append(cv.Items, "Used by enterprise policy "+p)
		}
		a.render(w, r, s, http.StatusOK, "confirm", cv)
		return
	}
	if _, err := a.client(s).UpdateVault(r.Context(), v.Ref.Sub, v.Ref.Group, v.Ref.Name, client.VaultPatch{
		PublicNetworkAccess: net.PublicNetworkAccess, NetworkACLs: net.NetworkACLs}); err != nil {
		if msg := apiMessage(err); msg != "" {
			v.Errors["iprules"] = msg
			a.render(w, r, s, client.StatusCode(err), "vault", v)
			return
		}
		a.fail(w, r, s, err)
		return
	}
	a.flash(s, "Networking saved.")
	http.Redirect(w, r, v.Ref.Path(), http.StatusSeeOther)
}

// policiesUsing names the enterprise policies the user can read that use
// the vault vaultID (and key, when not ""); a failed lookup names none,
// since the list only informs a confirmation.
func (a *Admin) policiesUsing(r *http.Request, s *session, vaultID, key string) []string {
	ps, err := a.listPolicies(r.Context(), a.client(s))
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range ps {
		enc := p.Properties.Encryption
		if enc == nil || enc.KeyVault == nil || !strings.EqualFold(enc.KeyVault.ID, vaultID) {
			continue
		}
		if key != "" && !strings.EqualFold(enc.KeyVault.Key.Name, key) {
			continue
		}
		out = append(out, p.Name)
	}
	return out
}

// deleteVault soft-deletes the vault after confirmation.
func (a *Admin) deleteVault(w http.ResponseWriter, r *http.Request, s *session) {
	ref := refFromRequest(r)
	c := a.client(s)
	vault, err := c.GetVault(r.Context(), ref.Sub, ref.Group, ref.Name)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	days := 90
	if d := vault.Properties.SoftDeleteRetentionInDays; d != nil {
		days = *d
	}
	purge := "Without purge protection it could be purged for good before then."
	if p := vault.Properties.EnablePurgeProtection; p != nil && *p {
		purge = "Purge protection is on, so nobody can purge it before then."
	}
	if r.PostFormValue("confirm") != "yes" {
		cv := confirmView{Title: "Delete vault " + vault.Name, Action: ref.Path() + "/delete", Button: "Delete vault", Back: ref.Path(),
			Message: fmt.Sprintf("The vault and its keys are soft-deleted: they stay recoverable from the Key vaults page for %d days. %s "+
				"Every environment whose policy uses a key in this vault is disabled until the vault is recovered and an administrator re-enables it.", days, purge)}
		for _, p := range a.policiesUsing(r, s, vault.ID, "") {
			cv.Items = append(cv.Items, "Used by enterprise policy "+p)
		}
		a.render(w, r, s, http.StatusOK, "confirm", cv)
		return
	}
	if err := c.DeleteVault(r.Context(), ref.Sub, ref.Group, ref.Name); err != nil {
		a.flashErr(w, r, s, err, ref.Path())
		return
	}
	a.flash(s, fmt.Sprintf("Vault %s was deleted. It can be recovered below for %d days.", vault.Name, days))
	http.Redirect(w, r, "/admin/vaults", http.StatusSeeOther)
}

// recoverVault recovers a soft-deleted vault with its keys and access
// policies, where it was.
func (a *Admin) recoverVault(w http.ResponseWriter, r *http.Request, s *session) {
	sub, name := r.PostFormValue("subscription"), r.PostFormValue("name")
	if !guidRE.MatchString(sub) || !vaultNameRE.MatchString(name) {
		a.render(w, r, s, http.StatusBadRequest, "error", errorView{Title: "Nothing to recover", Message: "The form does not name a deleted vault."})
		return
	}
	vault, err := a.client(s).RecoverVault(r.Context(), sub, s.tenantID, name)
	if err != nil {
		a.flashErr(w, r, s, err, "/admin/vaults")
		return
	}
	a.flash(s, "Vault "+vault.Name+" was recovered with its keys and access policies. Re-enable any environment it locked.")
	http.Redirect(w, r, refFromID(vault.ID).Path(), http.StatusSeeOther)
}

// removeAccess removes a principal's access policy after confirmation.
func (a *Admin) removeAccess(w http.ResponseWriter, r *http.Request, s *session, v vaultView) {
	obj := strings.TrimSpace(r.PostFormValue("object"))
	var row *accessRow
	for i := range v.Access {
		if strings.EqualFold(v.Access[i].ObjectID, obj) {
			row = &v.Access[i]
		}
	}
	if row == nil {
		a.flash(s, "Refused: there is no access policy for "+obj+" on this vault.")
		http.Redirect(w, r, v.Ref.Path(), http.StatusSeeOther)
		return
	}
	if r.PostFormValue("confirm") != "yes" {
		who := row.ObjectID
		if row.Who != "" {
			who = row.Who + " (" + row.ObjectID + ")"
		}
		msg := who + " loses every permission on this vault. If it is an enterprise policy's identity, every environment under that policy is disabled until access is granted again and an administrator re-enables it."
		if strings.EqualFold(row.ObjectID, s.objectID) {
			msg = "You lose every permission on this vault's keys: you can no longer list, create or change them here. " + msg
		}
		a.render(w, r, s, http.StatusOK, "confirm", confirmView{Title: "Remove access policy", Message: msg,
			Action: v.Ref.Path() + "/access/remove", Button: "Remove access policy", Back: v.Ref.Path(),
			Fields: map[string][]string{"object": {row.ObjectID}},
			Items:  []string{"Key permissions: " + strings.Join(row.Permissions.Keys, ", ")}})
		return
	}
	all := []string{"all"}
	if err := a.client(s).UpdateAccessPolicies(r.Context(), v.Ref.Sub, v.Ref.Group, v.Ref.Name, client.AccessPolicyRemove,
		[]client.VaultAccessPolicy{{TenantID: row.TenantID, ObjectID: row.ObjectID, ApplicationID: row.ApplicationID,
			Permissions: client.VaultPermissions{Keys: all, Secrets: all, Certificates: all, Storage: all}}}); err != nil {
		a.flashErr(w, r, s, err, v.Ref.Path())
		return
	}
	a.flash(s, "Access policy of "+row.ObjectID+" removed.")
	http.Redirect(w, r, v.Ref.Path(), http.StatusSeeOther)
}
