package keyvault

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/duties"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/httpapi"
)

// managementAPIVersions are the api-versions the vault resource type takes:
// what armkeyvault v1.5.0 (2024-11-01), the Azure CLI and common templates send.
var managementAPIVersions = []string{
	"2024-11-01", "2024-04-01-preview", "2023-07-01", "2023-02-01", "2022-11-01", "2022-07-01",
	"2022-02-01-preview", "2021-11-01-preview", "2021-10-01", "2021-06-01-preview", "2021-04-01-preview",
	"2020-04-01-preview", "2019-09-01", "2018-02-14", "2016-10-01",
}

// Management actions of the vault sub-routes, as Azure names them.
const (
	actionAccessPoliciesWrite = "Microsoft.KeyVault/vaults/accessPolicies/write"
	actionDeletedVaultsRead   = "Microsoft.KeyVault/deletedVaults/read"
	actionDeletedVaultPurge   = "Microsoft.KeyVault/locations/deletedVaults/purge/action"
	actionCheckName           = "Microsoft.KeyVault/checkNameAvailability/read"
)

// maxAccessPolicies is Azure's limit on access policies per vault.
const maxAccessPolicies = 1024

// maxIPRules bounds a vault firewall's address list.
const maxIPRules = 1000

// Retention bounds of soft delete, in days.
const (
	minRetentionDays     = 7
	maxRetentionDays     = 90
	defaultRetentionDays = 90
)

// Permission values an access policy may grant, per kind of object, spelled
// as the Key Vault resource provider spells them.
var (
	secretPermissions = []string{"all", "backup", "delete", "get", "list", "purge", "recover", "restore", "set"}
	certPermissions   = []string{"all", "backup", "create", "delete", "deleteissuers", "get", "getissuers", "import",
		"list", "listissuers", "managecontacts", "manageissuers", "purge", "recover", "restore", "setissuers", "update"}
	storagePermissions = []string{"all", "backup", "delete", "deletesas", "get", "getsas", "list", "listsas", "purge",
		"recover", "regeneratekey", "restore", "set", "setsas", "update"}
	keyPermissions = append([]string{"all"}, AllKeyPermissions...)
)

// vaultType is Microsoft.KeyVault/vaults as a resource-manager resource type.
// It keeps no state of its own: every request reads the vault from the
// store, so a change is visible to the next request on any server.
type vaultType struct{ s *Service }

// ResourceType returns Microsoft.KeyVault/vaults for the resource manager,
// with its sub-routes (access policies, deleted vaults, purge,
// checkNameAvailability): register it with arm.Server.Register.
func (s *Service) ResourceType() arm.ResourceType { return vaultType{s} }

func (vaultType) Type() string          { return ResourceType }
func (vaultType) APIVersions() []string { return managementAPIVersions }

// badRequest is the resource provider's 400 for a property it refuses.
func badRequest(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, "BadRequest", format, args...)
}

// vaultNameError returns the error for a name that cannot be a vault's, or nil.
func vaultNameError(name string) error {
	if validVaultName(name) {
		return nil
	}
	return keyhold.Errorc(keyhold.EInvalid, "VaultNameNotValid",
		"The vault name '%s' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens.", name)
}

// vaultBody is the part of a PUT or PATCH body the vault type reads; the
// framework has already read location and tags.
type vaultBody struct {
	Properties json.RawMessage `json:"properties"`
}

// Put validates a vault PUT: a new vault, a full update of an existing one,
// or (createMode recover) the recovery of a soft-deleted one. It returns
// EInvalid (400) for a property it refuses, EConflict (409) when another
// vault, live or soft-deleted, has the name or when separation of duties
// refuses an access policy (SeparationOfDutiesViolation), and ENotFound
// (404) for a recovery with nothing to recover.
func (t vaultType) Put(ctx context.Context, req *arm.PutRequest) (*keyhold.Resource, int, error) {
	name := req.ID.Name()
	if err := vaultNameError(name); err != nil {
		return nil, 0, err
	}
	p, _, err := parseBodyProperties(req.Body)
	if err != nil {
		return nil, 0, err
	}
	if p == nil {
		return nil, 0, badRequest("The request content must have properties, with at least tenantId and sku.")
	}
	recover := strings.EqualFold(p.CreateMode, "recover")
	if req.Existing == nil {
		if err := t.s.checkNameFree(ctx, req.Store, name, req.ID.String()); err != nil {
			return nil, 0, err
		}
		deleted, err := findDeletedVault(ctx, req.Store, name)
		if err != nil {
			return nil, 0, err
		}
		if deleted != nil {
			if !recover {
				return nil, 0, deletedNamesake()
			}
			return t.recoverVault(ctx, req, p, deleted)
		}
		if recover {
			return nil, 0, keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound",
				"The vault '%s' cannot be recovered because no deleted vault of that name exists. Create it with createMode 'default' instead.", name)
		}
	}
	if req.Resource.Location == "" {
		return nil, 0, keyhold.Errorc(keyhold.EInvalid, "LocationRequired", "The location property is required for this definition.")
	}
	var prev *Properties
	if req.Existing != nil {
		if !strings.EqualFold(arm.NormalizeLocation(req.Existing.Location), req.Resource.Location) {
			return nil, 0, keyhold.Errorc(keyhold.EInvalid, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				name, req.Existing.Location, req.ID.ResourceGroup(), req.Resource.Location)
		}
		if prev, err = ParseProperties(req.Existing); err != nil {
			return nil, 0, err
		}
	}
	if err := t.s.checkProperties(name, p, prev, req.Caller.TenantID); err != nil {
		return nil, 0, err
	}
	vaultID := req.ID.String()
	var prevPolicies []AccessPolicy
	if prev != nil {
		vaultID, prevPolicies = req.Existing.ID, prev.AccessPolicies
	}
	if err := t.s.checkDuties(ctx, req.Store, req.Caller.TenantID, vaultID, prevPolicies, p.AccessPolicies); err != nil {
		return nil, 0, err
	}
	out := *req.Resource
	out.SKU = nil // a vault's sku lives in its properties
	if out.Properties, err = json.Marshal(p); err != nil {
		return nil, 0, keyhold.Internal("keyvault: encoding vault properties", err)
	}
	t.s.publishChanges(ctx, req.Caller.TenantID, req.ID.String(), prev, p)
	return &out, 0, nil
}

// Patch applies a vault PATCH: properties present in the body replace the
// stored ones, the rest stay. It returns EInvalid (400) for a property it
// refuses, such as turning soft delete or purge protection off or changing
// the retention period, and EConflict (409, SeparationOfDutiesViolation)
// for an access policy that separation of duties refuses.
func (t vaultType) Patch(ctx context.Context, req *arm.PutRequest) (*keyhold.Resource, error) {
	prev, err := ParseProperties(req.Existing)
	if err != nil {
		return nil, err
	}
	patch, present, err := parseBodyProperties(req.Body)
	if err != nil {
		return nil, err
	}
	next := cloneProperties(prev)
	if patch != nil {
		applyPatch(next, patch, present)
	}
	if err := t.s.checkProperties(req.ID.Name(), next, prev, req.Caller.TenantID); err != nil {
		return nil, err
	}
	if err := t.s.checkDuties(ctx, req.Store, req.Caller.TenantID, req.Existing.ID, prev.AccessPolicies, next.AccessPolicies); err != nil {
		return nil, err
	}
	out := *req.Existing
	if req.Resource.Tags != nil {
		out.Tags = req.Resource.Tags
	}
	if out.Properties, err = json.Marshal(next); err != nil {
		return nil, keyhold.Internal("keyvault: encoding vault properties", err)
	}
	t.s.publishChanges(ctx, req.Caller.TenantID, req.ID.String(), prev, next)
	return &out, nil
}

// parseBodyProperties reads body.properties into Properties, and the set of
// property names present (for PATCH). A body without properties gives nil.
func parseBodyProperties(body []byte) (*Properties, map[string]bool, error) {
	var b vaultBody
	if err := httpapi.Unmarshal(body, &b, "InvalidRequestContent"); err != nil {
		return nil, nil, err
	}
	if len(b.Properties) == 0 || string(b.Properties) == "null" {
		return nil, nil, nil
	}
	var present map[string]json.RawMessage
	if err := httpapi.Unmarshal(b.Properties, &present, "InvalidRequestContent"); err != nil {
		return nil, nil, badRequest("The request content was invalid and could not be deserialized: properties must be an object.")
	}
	var p Properties
	if err := httpapi.Unmarshal(b.Properties, &p, "InvalidRequestContent"); err != nil {
		return nil, nil, keyhold.Errorc(keyhold.EInvalid, "InvalidRequestContent", "In properties: %s", keyhold.ErrorMessage(err))
	}
	keys := map[string]bool{}
	for k, v := range present {
		if string(v) != "null" {
			keys[k] = true
		}
	}
	return &p, keys, nil
}

// applyPatch copies into p the properties of patch that the body named.
func applyPatch(p, patch *Properties, present map[string]bool) {
	for k := range present {
		switch k {
		case "tenantId":
			p.TenantID = patch.TenantID
		case "sku":
			p.SKU = patch.SKU
		case "accessPolicies":
			p.AccessPolicies = patch.AccessPolicies
		case "enabledForDeployment":
			p.EnabledForDeployment = patch.EnabledForDeployment
		case "enabledForDiskEncryption":
			p.EnabledForDiskEncryption = patch.EnabledForDiskEncryption
		case "enabledForTemplateDeployment":
			p.EnabledForTemplateDeployment = patch.EnabledForTemplateDeployment
		case "enableSoftDelete":
			p.EnableSoftDelete = patch.EnableSoftDelete
		case "softDeleteRetentionInDays":
			p.SoftDeleteRetentionInDays = patch.SoftDeleteRetentionInDays
		case "enableRbacAuthorization":
			p.EnableRbacAuthorization = patch.EnableRbacAuthorization
		case "enablePurgeProtection":
			p.EnablePurgeProtection = patch.EnablePurgeProtection
		case "createMode":
			p.CreateMode = patch.CreateMode
		case "networkAcls":
			p.NetworkACLs = patch.NetworkACLs
		case "publicNetworkAccess":
			p.PublicNetworkAccess = patch.PublicNetworkAccess
		}
	}
}

// cloneProperties deep-copies p through JSON, which is what it is stored as.
func cloneProperties(p *Properties) *Properties {
	b, _ := json.Marshal(p)
	var out Properties
	_ = json.Unmarshal(b, &out)
	return &out
}

func ptr[T any](v T) *T { return &v }

// checkProperties validates the properties of vault name and puts them in
// their stored form: values in canonical case, defaults filled in, vaultUri
// and provisioningState set, createMode dropped. prev is what is stored for
// an existing vault (nil on create): the retention period cannot change and
// purge protection, once on, stays on. It returns an EInvalid error that
// names the offending property.
func (s *Service) checkProperties(name string, p, prev *Properties, callerTenant string) error {
	switch {
	case p.TenantID == "":
		return badRequest("The property \"tenantId\" is required: the id of the tenant that authenticates requests to the vault.")
	case !armid.IsGUID(p.TenantID):
		return badRequest("The property \"tenantId\" must be a GUID, not '%s'.", p.TenantID)
	case !strings.EqualFold(p.TenantID, callerTenant):
		return badRequest("The property \"tenantId\" must be the caller's own tenant '%s'; a vault cannot trust another tenant ('%s').", callerTenant, p.TenantID)
	}
	p.TenantID = strings.ToLower(p.TenantID)

	switch strings.ToLower(p.SKU.Name) {
	case "":
		return badRequest("The property \"sku\" is required, such as {\"family\": \"A\", \"name\": \"standard\"}.")
	case "standard", "premium":
		p.SKU.Name = strings.ToLower(p.SKU.Name)
	default:
		return badRequest("The sku name '%s' is not valid; use 'standard' or 'premium'.", p.SKU.Name)
	}
	switch p.SKU.Family {
	case "", "A", "a":
		p.SKU.Family = "A"
	default:
		return badRequest("The sku family '%s' is not valid; the only family is 'A'.", p.SKU.Family)
	}

	policies, err := checkAccessPolicies(p.AccessPolicies, "properties.accessPolicies")
	if err != nil {
		return err
	}
	p.AccessPolicies = policies

	if p.EnableSoftDelete != nil && !*p.EnableSoftDelete {
		return badRequest("The property \"enableSoftDelete\" cannot be set to false. Soft delete is always on for a vault and cannot be turned off; deleted vaults and keys stay recoverable for the retention period.")
	}
	p.EnableSoftDelete = ptr(true)

	days := defaultRetentionDays
	if prev != nil {
		days = prev.RetentionDays()
	}
	if p.SoftDeleteRetentionInDays != nil {
		if d := *p.SoftDeleteRetentionInDays; d < minRetentionDays || d > maxRetentionDays {
			return badRequest("The property \"softDeleteRetentionInDays\" must be between %d and %d days, not %d.", minRetentionDays, maxRetentionDays, d)
		}
		if prev != nil && *p.SoftDeleteRetentionInDays != days {
			return badRequest("The property \"softDeleteRetentionInDays\" cannot be changed once the vault is created: it is %d days for vault '%s'.", days, name)
		}
		days = *p.SoftDeleteRetentionInDays
	}
	p.SoftDeleteRetentionInDays = ptr(days)

	if p.EnablePurgeProtection != nil && !*p.EnablePurgeProtection {
		return badRequest("The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.")
	}
	if p.EnablePurgeProtection == nil && prev != nil && prev.PurgeProtected() {
		p.EnablePurgeProtection = ptr(true)
	}

	if p.EnableRbacAuthorization == nil {
		p.EnableRbacAuthorization = ptr(false)
	}

	switch strings.ToLower(p.PublicNetworkAccess) {
	case "", "enabled":
		p.PublicNetworkAccess = "Enabled"
	case "disabled":
		p.PublicNetworkAccess = "Disabled"
	default:
		return badRequest("The property \"publicNetworkAccess\" must be 'Enabled' or 'Disabled', not '%s'.", p.PublicNetworkAccess)
	}
	if err := checkNetworkACLs(p.NetworkACLs); err != nil {
		return err
	}

	switch strings.ToLower(p.CreateMode) {
	case "", "default", "recover":
		p.CreateMode = ""
	default:
		return badRequest("The property \"createMode\" must be 'default' or 'recover', not '%s'.", p.CreateMode)
	}
	p.VaultURI = s.VaultURI(name)
	p.ProvisioningState = "Succeeded"
	return nil
}

// checkAccessPolicies validates policies (at most maxAccessPolicies) and
// returns them with canonical permission names, policies of the same
// principal merged and never nil. where names the list in error messages.
func checkAccessPolicies(policies []AccessPolicy, where string) ([]AccessPolicy, error) {
	if len(policies) > maxAccessPolicies {
		return nil, badRequest("A vault can have at most %d access policies; %s has %d.", maxAccessPolicies, where, len(policies))
	}
	out := []AccessPolicy{}
	for i, ap := range policies {
		at := fmt.Sprintf("%s[%d]", where, i)
		n, err := checkAccessPolicy(ap, at)
		if err != nil {
			return nil, err
		}
		out = addPolicy(out, n)
	}
	return out, nil
}

// checkAccessPolicy validates one access policy and canonicalizes it.
func checkAccessPolicy(ap AccessPolicy, at string) (AccessPolicy, error) {
	if !armid.IsGUID(ap.TenantID) {
		return ap, badRequest("The access policy at %s needs a tenantId that is a GUID, not '%s'.", at, ap.TenantID)
	}
	if !armid.IsGUID(ap.ObjectID) {
		return ap, badRequest("The access policy at %s needs an objectId that is a GUID, not '%s'.", at, ap.ObjectID)
	}
	if ap.ApplicationID != "" && !armid.IsGUID(ap.ApplicationID) {
		return ap, badRequest("The access policy at %s has an applicationId that is not a GUID: '%s'.", at, ap.ApplicationID)
	}
	out := AccessPolicy{TenantID: strings.ToLower(ap.TenantID), ObjectID: strings.ToLower(ap.ObjectID), ApplicationID: strings.ToLower(ap.ApplicationID)}
	var err error
	if out.Permissions.Keys, err = canonicalPermissions(ap.Permissions.Keys, keyPermissions, "key", at+".permissions.keys"); err != nil {
		return ap, err
	}
	if out.Permissions.Secrets, err = canonicalPermissions(ap.Permissions.Secrets, secretPermissions, "secret", at+".permissions.secrets"); err != nil {
		return ap, err
	}
	if out.Permissions.Certificates, err = canonicalPermissions(ap.Permissions.Certificates, certPermissions, "certificate", at+".permissions.certificates"); err != nil {
		return ap, err
	}
	if out.Permissions.Storage, err = canonicalPermissions(ap.Permissions.Storage, storagePermissions, "storage", at+".permissions.storage"); err != nil {
		return ap, err
	}
	return out, nil
}

// canonicalPermissions maps each of perms to its spelling in valid
// (case-insensitively), dropping duplicates and keeping valid's order. An
// unknown value is an error that names it and lists the valid ones.
func canonicalPermissions(perms, valid []string, kind, at string) ([]string, error) {
	seen := map[string]bool{}
	for _, p := range perms {
		i := slices.IndexFunc(valid, func(v string) bool { return strings.EqualFold(v, p) })
		if i < 0 {
			return nil, badRequest("The %s permission '%s' at %s is not valid. Valid %s permissions are: %s.", kind, p, at, kind, strings.Join(valid, ", "))
		}
		seen[valid[i]] = true
	}
	var out []string
	for _, v := range valid {
		if seen[v] {
			out = append(out, v)
		}
	}
	return out, nil
}

// samePrincipal reports whether two policies are for the same principal
// (and application, for compound identities).
func samePrincipal(a, b AccessPolicy) bool {
	return strings.EqualFold(a.TenantID, b.TenantID) && strings.EqualFold(a.ObjectID, b.ObjectID) &&
		strings.EqualFold(a.ApplicationID, b.ApplicationID)
}

// union returns the permissions in a or b, in valid's order.
func union(a, b, valid []string) []string {
	out, _ := canonicalPermissions(append(append([]string{}, a...), b...), valid, "", "")
	return out
}

// subtract returns the permissions of a that are not in b; "all" in b
// removes everything.
func subtract(a, b []string) []string {
	if slices.ContainsFunc(b, func(v string) bool { return strings.EqualFold(v, "all") }) {
		return nil
	}
	var out []string
	for _, v := range a {
		if !slices.ContainsFunc(b, func(w string) bool { return strings.EqualFold(v, w) }) {
			out = append(out, v)
		}
	}
	return out
}

// addPolicy merges ap into list: its permissions join those of the same
// principal's policy, or it is appended.
func addPolicy(list []AccessPolicy, ap AccessPolicy) []AccessPolicy {
	for i := range list {
		if samePrincipal(list[i], ap) {
			p := &list[i].Permissions
			p.Keys = union(p.Keys, ap.Permissions.Keys, keyPermissions)
			p.Secrets = union(p.Secrets, ap.Permissions.Secrets, secretPermissions)
			p.Certificates = union(p.Certificates, ap.Permissions.Certificates, certPermissions)
			p.Storage = union(p.Storage, ap.Permissions.Storage, storagePermissions)
			return list
		}
	}
	return append(list, ap)
}

// removePolicy takes ap's permissions away from the same principal's policy
// in list, and drops that policy when nothing is left.
func removePolicy(list []AccessPolicy, ap AccessPolicy) []AccessPolicy {
	out := list[:0:0]
	for _, cur := range list {
		if samePrincipal(cur, ap) {
			p := &cur.Permissions
			p.Keys = subtract(p.Keys, ap.Permissions.Keys)
			p.Secrets = subtract(p.Secrets, ap.Permissions.Secrets)
			p.Certificates = subtract(p.Certificates, ap.Permissions.Certificates)
			p.Storage = subtract(p.Storage, ap.Permissions.Storage)
			if len(p.Keys)+len(p.Secrets)+len(p.Certificates)+len(p.Storage) == 0 {
				continue
			}
		}
		out = append(out, cur)
	}
	return out
}

// checkNetworkACLs validates a vault firewall and fills in its defaults.
func checkNetworkACLs(n *NetworkRuleSet) error {
	if n == nil {
		return nil
	}
	switch strings.ToLower(n.DefaultAction) {
	case "", "allow":
		n.DefaultAction = "Allow"
	case "deny":
		n.DefaultAction = "Deny"
	default:
		return badRequest("The property \"networkAcls.defaultAction\" must be 'Allow' or 'Deny', not '%s'.", n.DefaultAction)
	}
	switch strings.ToLower(n.Bypass) {
	case "", "azureservices":
		n.Bypass = "AzureServices"
	case "none":
		n.Bypass = "None"
	default:
		return badRequest("The property \"networkAcls.bypass\" must be 'AzureServices' or 'None', not '%s'.", n.Bypass)
	}
	if len(n.IPRules) > maxIPRules {
		return badRequest("The vault firewall can have at most %d IP rules, not %d.", maxIPRules, len(n.IPRules))
	}
	for i, r := range n.IPRules {
		v := strings.TrimSpace(r.Value)
		if pfx, err := netip.ParsePrefix(v); err == nil {
			if pfx != pfx.Masked() {
				return badRequest("The IP rule '%s' at networkAcls.ipRules[%d] has host bits set; the range is %s.", r.Value, i, pfx.Masked())
			}
			n.IPRules[i].Value = pfx.String()
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			return badRequest("The IP rule '%s' at networkAcls.ipRules[%d] is not an IP address or a CIDR range such as 203.0.113.0/24.", r.Value, i)
		}
		n.IPRules[i].Value = a.String()
	}
	for i, r := range n.VirtualNetworkRules {
		id, err := armid.Parse(r.ID)
		if err != nil || !id.IsResource() || !strings.EqualFold(id.Type(), "Microsoft.Network/virtualNetworks/subnets") {
			return badRequest("The virtual network rule at networkAcls.virtualNetworkRules[%d] must name a subnet id, /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}, not '%s'.", i, r.ID)
		}
	}
	return nil
}

// checkNameFree returns a VaultAlreadyExists conflict if a vault other than
// id already has name anywhere on the server: vault names are DNS names.
func (s *Service) checkNameFree(ctx context.Context, st keyhold.Store, name, id string) error {
	taken, err := vaultNameTaken(ctx, st, name, id)
	if err != nil {
		return err
	}
	if taken {
		return keyhold.Errorc(keyhold.EConflict, "VaultAlreadyExists",
			"The vault name '%s' is already in use. Vault names are globally unique, so another subscription or resource group may hold it; choose another name.", name)
	}
	return nil
}

// vaultNameTaken reports whether a live vault other than id is called name.
func vaultNameTaken(ctx context.Context, st keyhold.Store, name, id string) (bool, error) {
	list, err := st.ListResources(ctx, keyhold.ResourceFilter{Type: ResourceType, Name: name})
	if err != nil {
		return false, err
	}
	for _, r := range list {
		if strings.EqualFold(r.Name, name) && strings.EqualFold(r.Type, ResourceType) && !strings.EqualFold(r.ID, id) {
			return true, nil
		}
	}
	return false, nil
}

// deletedNamesake is the conflict for a name held by a soft-deleted vault.
func deletedNamesake() error {
	return keyhold.Errorc(keyhold.EConflict, "ConflictError",
		"A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault.")
}

// policyPrincipals returns the principals whose access policy differs
// between a and b.
func policyPrincipals(a, b []AccessPolicy) []string {
	key := func(ap AccessPolicy) string {
		j, _ := json.Marshal(ap.Permissions)
		return string(j)
	}
	changed := map[string]bool{}
	var out []string
	note := func(from, to []AccessPolicy) {
		for _, ap := range from {
			i := slices.IndexFunc(to, func(o AccessPolicy) bool { return samePrincipal(o, ap) })
			if (i < 0 || key(to[i]) != key(ap)) && !changed[strings.ToLower(ap.ObjectID)] {
				changed[strings.ToLower(ap.ObjectID)] = true
				out = append(out, strings.ToLower(ap.ObjectID))
			}
		}
	}
	note(a, b)
	note(b, a)
	return out
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// publishChanges publishes, once the request commits, what changed between
// prev (nil for a new vault) and next that can change access to keys.
func (s *Service) publishChanges(ctx context.Context, tenantID, vaultID string, prev, next *Properties) {
	if s.cfg.Events == nil {
		return
	}
	var evs []events.Event
	if prev == nil {
		prev = &Properties{EnableRbacAuthorization: ptr(false), PublicNetworkAccess: "Enabled"}
	}
	for _, oid := range policyPrincipals(prev.AccessPolicies, next.AccessPolicies) {
		evs = append(evs, events.Event{Kind: events.AccessPolicyChanged, TenantID: tenantID, Scope: vaultID, Subject: oid, Detail: "keyvault: access policy changed"})
	}
	if prev.RBAC() != next.RBAC() {
		evs = append(evs,
			events.Event{Kind: events.AccessPolicyChanged, TenantID: tenantID, Scope: vaultID, Detail: fmt.Sprintf("keyvault: enableRbacAuthorization is now %t", next.RBAC())},
			events.Event{Kind: events.VaultChanged, TenantID: tenantID, Scope: vaultID, Detail: fmt.Sprintf("keyvault: enableRbacAuthorization is now %t", next.RBAC())})
	}
	if !strings.EqualFold(prev.PublicNetworkAccess, next.PublicNetworkAccess) || !sameJSON(prev.NetworkACLs, next.NetworkACLs) {
		evs = append(evs, events.Event{Kind: events.VaultNetworkChanged, TenantID: tenantID, Scope: vaultID, Detail: "keyvault: public network access or firewall changed"})
	}
	s.publishOnCommit(ctx, evs...)
}

// publishOnCommit publishes evs after the request's transaction commits.
func (s *Service) publishOnCommit(ctx context.Context, evs ...events.Event) {
	if s.cfg.Events == nil || len(evs) == 0 {
		return
	}
	arm.OnCommit(ctx, func() {
		for _, e := range evs {
			s.cfg.Events.Publish(context.WithoutCancel(ctx), e)
		}
	})
}

// Render returns a vault as armkeyvault reads it. vaultUri is computed from
// the server's current public URL rather than trusted from the store.
func (t vaultType) Render(r *keyhold.Resource) any {
	out, _ := arm.DefaultRender(r).(map[string]any)
	if out == nil {
		return arm.DefaultRender(r)
	}
	if p, err := ParseProperties(r); err == nil {
		p.VaultURI = t.s.VaultURI(r.Name)
		if p.ProvisioningState == "" {
			p.ProvisioningState = "Succeeded"
		}
		if p.AccessPolicies == nil {
			p.AccessPolicies = []AccessPolicy{}
		}
		out["properties"] = p
	}
	return out
}

// Routes returns the vault type's routes beyond CRUD: access-policy
// updates, deleted vaults, purge and checkNameAvailability.
func (t vaultType) Routes() []arm.Route {
	const vaults = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.KeyVault/vaults/{vaultName}"
	const kv = "/subscriptions/{subscriptionId}/providers/Microsoft.KeyVault"
	subScope := func(p map[string]string) string { return "/subscriptions/" + p["subscriptionId"] }
	return []arm.Route{
		{
			Method: http.MethodPut, Pattern: vaults + "/accessPolicies/{operationKind}", Action: actionAccessPoliciesWrite,
			Scope: func(p map[string]string) string {
				return "/subscriptions/" + p["subscriptionId"] + "/resourceGroups/" + p["resourceGroupName"] + "/providers/Microsoft.KeyVault/vaults/" + p["vaultName"]
			},
			Handle: t.updateAccessPolicies,
		},
		{Method: http.MethodGet, Pattern: kv + "/deletedVaults", Action: actionDeletedVaultsRead, Scope: subScope, Handle: t.listDeleted},
		{Method: http.MethodGet, Pattern: kv + "/locations/{location}/deletedVaults/{vaultName}", Action: actionDeletedVaultsRead, Handle: t.getDeleted},
		{Method: http.MethodPost, Pattern: kv + "/locations/{location}/deletedVaults/{vaultName}/purge", Action: actionDeletedVaultPurge, Handle: t.purgeDeleted},
		{Method: http.MethodPost, Pattern: kv + "/checkNameAvailability", Action: actionCheckName, Scope: subScope, Handle: t.checkNameAvailability},
	}
}

// accessPolicyBody is the body of PUT .../accessPolicies/{operationKind}.
type accessPolicyBody struct {
	Properties *struct {
		AccessPolicies []AccessPolicy `json:"accessPolicies"`
	} `json:"properties"`
}

// updateAccessPolicies serves PUT .../vaults/{name}/accessPolicies/{add|replace|remove}:
// add merges the given permissions into each principal's policy, remove
// takes them away (dropping a policy left empty; "all" takes everything),
// replace sets the vault's whole list to the given one. It answers with the
// given policies, as Azure does, or 409 SeparationOfDutiesViolation when
// separation of duties refuses a principal's new key management rights.
func (t vaultType) updateAccessPolicies(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	kind := strings.ToLower(rr.Params["operationKind"])
	if kind != "add" && kind != "replace" && kind != "remove" {
		return nil, 0, badRequest("The access policy operation '%s' is not valid; use 'add', 'replace' or 'remove'.", rr.Params["operationKind"])
	}
	var body accessPolicyBody
	if err := httpapi.DecodeJSON(rr.HTTP, &body, "InvalidRequestContent"); err != nil {
		return nil, 0, err
	}
	if body.Properties == nil {
		return nil, 0, badRequest("The request content must have properties.accessPolicies.")
	}
	given, err := checkAccessPolicies(body.Properties.AccessPolicies, "properties.accessPolicies")
	if err != nil {
		return nil, 0, err
	}
	vaultID := rr.Scope.String()
	var prev, next *Properties
	var location string
	err = rr.Store.InTx(ctx, func(tx keyhold.Store) error {
		r, err := tx.GetResource(ctx, vaultID)
		if keyhold.IsNotFound(err) || err == nil && !strings.EqualFold(r.Type, ResourceType) {
			return vaultNotFound(rr.Scope)
		}
		if err != nil {
			return err
		}
		if prev, err = ParseProperties(r); err != nil {
			return err
		}
		for i, ap := range given {
			if !strings.EqualFold(ap.TenantID, prev.TenantID) {
				return badRequest("The access policy at properties.accessPolicies[%d] is for tenant '%s', but the vault trusts tenant '%s'.", i, ap.TenantID, prev.TenantID)
			}
		}
		next = cloneProperties(prev)
		switch kind {
		case "add":
			for _, ap := range given {
				next.AccessPolicies = addPolicy(next.AccessPolicies, ap)
			}
		case "remove":
			for _, ap := range given {
				next.AccessPolicies = removePolicy(next.AccessPolicies, ap)
			}
		case "replace":
			next.AccessPolicies = given
		}
		if next.AccessPolicies == nil {
			next.AccessPolicies = []AccessPolicy{}
		}
		if len(next.AccessPolicies) > maxAccessPolicies {
			return badRequest("A vault can have at most %d access policies; this change would make %d.", maxAccessPolicies, len(next.AccessPolicies))
		}
		if err := t.s.checkDuties(ctx, tx, rr.Caller.TenantID, r.ID, prev.AccessPolicies, next.AccessPolicies); err != nil {
			return err
		}
		if r.Properties, err = json.Marshal(next); err != nil {
			return keyhold.Internal("keyvault: encoding vault properties", err)
		}
		r.SystemData.LastModifiedBy, r.SystemData.LastModifiedByType = actor(rr.Caller)
		r.SystemData.LastModifiedAt = rr.Now
		r.ETag = etag(r)
		location = r.Location
		return tx.PutResource(ctx, r)
	})
	if err != nil {
		return nil, 0, err
	}
	if t.s.cfg.Events != nil {
		for _, oid := range policyPrincipals(prev.AccessPolicies, next.AccessPolicies) {
			t.s.cfg.Events.Publish(ctx, events.Event{Kind: events.AccessPolicyChanged, TenantID: prev.TenantID, Scope: vaultID, Subject: oid,
				Detail: "keyvault: access policy " + kind})
		}
	}
	return map[string]any{
		"id":         vaultID + "/accessPolicies/" + kind,
		"name":       kind,
		"type":       ResourceType + "/accessPolicies",
		"location":   location,
		"properties": map[string]any{"accessPolicies": given},
	}, http.StatusOK, nil
}

// checkDuties asks the separation-of-duties checker, in the write's
// transaction st, whether the change of vaultID's access policies from prev
// to next may go ahead; it returns its SeparationOfDutiesViolation conflict
// or the store's error.
func (s *Service) checkDuties(ctx context.Context, st keyhold.Store, tenantID, vaultID string, prev, next []AccessPolicy) error {
	if s.cfg.Duties == nil {
		return nil
	}
	conv := func(list []AccessPolicy) []duties.AccessPolicy {
		out := make([]duties.AccessPolicy, 0, len(list))
		for _, ap := range list {
			out = append(out, duties.AccessPolicy{TenantID: ap.TenantID, ObjectID: ap.ObjectID, Keys: ap.Permissions.Keys})
		}
		return out
	}
	return s.cfg.Duties.CheckAccessPolicies(ctx, st, tenantID, vaultID, conv(prev), conv(next))
}

// vaultNotFound is ARM's 404 for a vault id.
func vaultNotFound(id armid.ID) error {
	return keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound",
		"The Resource '%s/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
		ResourceType, id.Name(), id.ResourceGroup())
}

// actor returns how systemData names the caller.
func actor(c *keyhold.Caller) (string, string) {
	if c == nil || c.Principal == nil {
		return "", ""
	}
	p := c.Principal
	switch p.Type {
	case keyhold.PrincipalUser:
		return p.UserPrincipalName, "User"
	case keyhold.PrincipalManagedIdentity:
		return p.AppID, "ManagedIdentity"
	default:
		return p.AppID, "Application"
	}
}

// etag derives a new ETag from a resource's content.
func etag(r *keyhold.Resource) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

// checkNameRequest is the body of checkNameAvailability.
type checkNameRequest struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// checkNameAvailability serves POST .../providers/Microsoft.KeyVault/checkNameAvailability.
func (t vaultType) checkNameAvailability(ctx context.Context, rr *arm.RouteRequest) (any, int, error) {
	var body checkNameRequest
	if err := httpapi.DecodeJSON(rr.HTTP, &body, "InvalidRequestContent"); err != nil {
		return nil, 0, err
	}
	if !strings.EqualFold(body.Type, ResourceType) {
		return nil, 0, badRequest("The type '%s' is not valid; checkNameAvailability takes type 'Microsoft.KeyVault/vaults'.", body.Type)
	}
	type result struct {
		NameAvailable bool   `json:"nameAvailable"`
		Reason        string `json:"reason,omitempty"`
		Message       string `json:"message,omitempty"`
	}
	if err := vaultNameError(body.Name); err != nil {
		return result{Reason: "AccountNameInvalid", Message: keyhold.ErrorMessage(err)}, http.StatusOK, nil
	}
	taken, err := vaultNameTaken(ctx, rr.Store, body.Name, "")
	if err != nil {
		return nil, 0, err
	}
	if taken {
		return result{Reason: "AlreadyExists", Message: fmt.Sprintf("The vault name '%s' is already in use.", body.Name)}, http.StatusOK, nil
	}
	deleted, err := findDeletedVault(ctx, rr.Store, body.Name)
	if err != nil {
		return nil, 0, err
	}
	if deleted != nil {
		return result{Reason: "AlreadyExists", Message: fmt.Sprintf("The vault name '%s' is held by a vault in deleted state; recover or purge it to use the name.", body.Name)}, http.StatusOK, nil
	}
	return result{NameAvailable: true}, http.StatusOK, nil
}
