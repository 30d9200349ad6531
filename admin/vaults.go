package admin

import (
	"net/http"
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
var keyPermissions = []string{"get", "list", "create", "import", "update", "delete", "recover", "wrapKey", "unwrapKey", "encrypt", "decrypt", "sign", "verify"}

var (
	vaultNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	groupNameRE = regexp.MustCompile(`^[-\w._()]{1,90}$`)
	keyNameRE   = regexp.MustCompile(`^[a-zA-Z0-9-]{1,127}$`)
	guidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

func (a *Admin) vaultRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /admin/vaults", a.page(false, a.vaults))
	m.HandleFunc("POST /admin/vaults", a.page(false, a.createVault))
	m.HandleFunc("GET /admin/vaults/{sub}/{group}/{name}", a.page(false, a.vaultPage))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/keys", a.page(false, a.createKey))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/keys/{key}", a.page(false, a.keyAction))
	m.HandleFunc("POST /admin/vaults/{sub}/{group}/{name}/access", a.page(false, a.addAccess))
	m.HandleFunc("GET /admin/kv/policies", a.page(false, a.kvPolicies))
	m.HandleFunc("POST /admin/kv/policies/reader", a.page(false, a.grantReader))
}

// vaultRef is where a vault lives; pages address vaults by it.
type vaultRef struct{ Sub, Group, Name string }

func (v vaultRef) Path() string {
	return "/admin/vaults/" + url.PathEscape(v.Sub) + "/" + url.PathEscape(v.Group) + "/" + url.PathEscape(v.Name)
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
	Sub, Group, Name, Location, Network string
}

type vaultsView struct {
	Vaults        []vaultItem
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
	}
	sort.Slice(v.Vaults, func(i, j int) bool { return v.Vaults[i].Name < v.Vaults[j].Name })
	return v, nil
}

func (a *Admin) vaults(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := a.loadVaults(r, s)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	a.render(w, r, s, http.StatusOK, "vaults", v)
}

// createVault creates a vault with soft delete and purge protection on,
// which the CMK preconditions require, and the chosen network access.
func (a *Admin) createVault(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := a.loadVaults(r, s)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	f := vaultForm{Sub: r.PostFormValue("subscription"), Group: strings.TrimSpace(r.PostFormValue("group")),
		Name: strings.TrimSpace(r.PostFormValue("name")), Location: strings.TrimSpace(r.PostFormValue("location")), Network: r.PostFormValue("network")}
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
	if f.Network != "Enabled" && f.Network != "Disabled" {
		v.Errors["network"] = "Choose whether the vault is reachable from public networks."
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
		EnableSoftDelete: &on, EnablePurgeProtection: &on, PublicNetworkAccess: f.Network,
		// The creator can manage keys in the vault it made.
		AccessPolicies: []client.VaultAccessPolicy{{TenantID: s.tenantID, ObjectID: s.objectID,
			Permissions: client.VaultPermissions{Keys: keyPermissions}}},
	}})
	if err != nil {
		a.formErr(w, r, s, err, v, "name")
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
	Errors      map[string]string
	Permissions []string
	Preset      []string
}

func unixText(p *int64) string {
	if p == nil || *p == 0 {
		return ""
	}
	return time.Unix(*p, 0).UTC().Format("2006-01-02")
}

func (a *Admin) loadVault(r *http.Request, s *session) (vaultView, error) {
	ref := vaultRef{Sub: r.PathValue("sub"), Group: r.PathValue("group"), Name: r.PathValue("name")}
	ctx, c := r.Context(), a.client(s)
	vault, err := c.GetVault(ctx, ref.Sub, ref.Group, ref.Name)
	if err != nil {
		return vaultView{}, err
	}
	v := vaultView{Vault: *vault, Ref: ref, Errors: map[string]string{}, KeyForm: keyForm{Kty: "RSA", Size: "2048"},
		Permissions: keyPermissions, Preset: cmkPreset, Versions: map[string]int{}}
	keys, err := c.ListKeys(ctx, ref.Name)
	if err != nil && client.StatusCode(err) != http.StatusForbidden {
		return vaultView{}, err
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

func (a *Admin) vaultPage(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := a.loadVault(r, s)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	a.render(w, r, s, http.StatusOK, "vault", v)
}

// createKey creates an RSA key (2048, 3072 or 4096 bits), optionally
// with an expiry date.
func (a *Admin) createKey(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := a.loadVault(r, s)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
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
	ref := vaultRef{Sub: r.PathValue("sub"), Group: r.PathValue("group"), Name: r.PathValue("name")}
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
func (a *Admin) addAccess(w http.ResponseWriter, r *http.Request, s *session) {
	v, err := a.loadVault(r, s)
	if err != nil {
		a.fail(w, r, s, err)
		return
	}
	obj := strings.TrimSpace(r.PostFormValue("object"))
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
	a.render(w, r, s, http.StatusOK, "kvpolicies", kvPoliciesView{Policies: ps, Errors: map[string]string{}})
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
