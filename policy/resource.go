package policy

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/armid"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/keyvault"
	"github.com/keyhold/keyhold/rbac"
)

// APIVersions are the api-versions enterprise policies accept: the one
// Microsoft's docs and scripts deploy with, and the one the published spec
// and the Go SDK send.
var APIVersions = []string{"2020-10-30", "2020-10-30-preview"}

// ProfilePreview is the server profile that reproduces the seed's preview:
// the enterprisePoliciesPreview feature must be registered and a tenant may
// have at most PreviewPolicyLimit policies.
const ProfilePreview = "preview"

// PreviewFeature is the feature of Namespace that the preview profile
// requires, as the seed registers it.
const PreviewFeature = "enterprisePoliciesPreview"

// PreviewPolicyLimit is how many enterprise policies a tenant may have under
// the preview profile ("During preview, you can only create up to two
// enterprise policies").
const PreviewPolicyLimit = 2

// Identity types of a policy.
const (
	IdentitySystemAssigned = "SystemAssigned"
	IdentityNone           = "None"
)

// States of encryption.state and lockbox.state.
var States = []string{"Enabled", "Disabled", "NotConfigured"}

// Actions of enterprise policies, as RBAC and the audit log name them.
const (
	ActionRead   = ResourceType + "/read"
	ActionWrite  = ResourceType + "/write"
	ActionDelete = ResourceType + "/delete"
)

// actionVaultRead is what the caller must be allowed on the vault a policy
// names: a policy must not point at a vault its author cannot see.
const actionVaultRead = "Microsoft.KeyVault/vaults/read"

// maxVirtualNetworks is how many networks a NetworkInjection policy names:
// a primary and an optional secondary (failover) network.
const maxVirtualNetworks = 2

// FeatureReader reads a subscription's registration of a preview feature,
// settled the way the resource manager settles it. *arm.Server implements it.
type FeatureReader interface {
	FeatureState(ctx context.Context, st keyhold.Store, subscriptionID, namespace, name string) (string, error)
}

// Config configures the policy service.
type Config struct {
	// Store keeps policies as keyhold.Resource.
	Store keyhold.Store
	// Authz checks that a policy's author may read the vault it names; nil
	// means rbac.New(Store).
	Authz *rbac.Authorizer
	// Identity creates and deletes policies' managed identities.
	Identity *identity.Service
	// Vault is the built-in key vault.
	Vault *keyvault.Service
	// Events receives events.PolicyChanged after a policy is created,
	// changed, deleted or changes health; nil publishes nowhere.
	Events *events.Bus
	// Profile is the server profile; ProfilePreview turns on the preview's
	// feature requirement and policy limit.
	Profile string
	// Features reads feature registrations for the preview profile; nil
	// reads the store and counts only Registered.
	Features FeatureReader
	// Links reports the environments linked to a policy; nil means none ever are.
	Links LinkChecker
	// Logger receives the service's log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// NewID returns a new GUID for a policy's systemId; nil means a random
	// version 4 UUID.
	NewID func() string
}

// Service is the enterprise-policy resource: its resource-manager type, and
// what health checks and environments need from it.
type Service struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	newID func() string
}

// New returns the policy service for cfg.
func New(cfg Config) *Service {
	s := &Service{cfg: cfg, log: cfg.Logger, now: cfg.Now, newID: cfg.NewID}
	if s.cfg.Authz == nil {
		s.cfg.Authz = rbac.New(cfg.Store)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.newID == nil {
		s.newID = newGUID
	}
	return s
}

// newGUID returns a random version 4 UUID.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// policyType is Microsoft.PowerPlatform/enterprisePolicies as a
// resource-manager type. It keeps no state: every request reads the store.
type policyType struct{ s *Service }

// ResourceType returns Microsoft.PowerPlatform/enterprisePolicies for the
// resource manager, with GET /providers/Microsoft.PowerPlatform/operations:
// register it with arm.Server.Register.
func (s *Service) ResourceType() arm.ResourceType { return policyType{s} }

func (policyType) Type() string          { return ResourceType }
func (policyType) APIVersions() []string { return APIVersions }

// Locations returns the Power Platform regions, which the provider metadata
// lists for the type (GetSupportedEnterprisePolicyLocations.ps1 reads them).
func (policyType) Locations() []string { return slices.Clone(Regions) }

// badRequest is the 400 for a body the policy type refuses.
func badRequest(format string, args ...any) error {
	return keyhold.Errorc(keyhold.EInvalid, "BadRequest", format, args...)
}

// identityBody is the identity block of a request. The read-only fields are
// accepted because Microsoft's update script sends them back.
type identityBody struct {
	Type                              string          `json:"type"`
	PrincipalID                       string          `json:"principalId"`
	SystemAssignedIdentityPrincipalID string          `json:"systemAssignedIdentityPrincipalId"`
	TenantID                          string          `json:"tenantId"`
	UserAssignedIdentities            json.RawMessage `json:"userAssignedIdentities"`
}

// requestBody is the part of a PUT or PATCH body the policy type reads; the
// framework has read location and tags. Decoding the whole body keeps line
// and column of type errors right.
type requestBody struct {
	Kind       *string       `json:"kind"`
	Identity   *identityBody `json:"identity"`
	Properties *Properties   `json:"properties"`
	// propKeys records which keys properties has, null or not: in a PATCH,
	// an absent block stays as it was and a null one is cleared.
	propKeys map[string]bool
}

// propertyNames are the keys properties may have: the writable blocks, and
// the read-only ones a client may echo from a GET.
var propertyNames = []string{"encryption", "lockbox", "networkInjection", "systemId", "healthStatus", "healthDetail"}

func parseBody(raw []byte) (*requestBody, error) {
	var b requestBody
	if err := httpapi.Unmarshal(raw, &b, "InvalidRequestContent"); err != nil {
		return nil, err
	}
	var keys struct {
		Properties map[string]json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, badRequest("policy: properties must be a JSON object")
	}
	b.propKeys = map[string]bool{}
	for k := range keys.Properties {
		if !slices.Contains(propertyNames, k) {
			return nil, badRequest("policy: properties.%s is not a property of an enterprise policy; the properties are encryption, lockbox and networkInjection", k)
		}
		b.propKeys[k] = true
	}
	return &b, nil
}

// canonical returns the member of valid that s names case-insensitively.
func canonical(s string, valid []string) (string, bool) {
	for _, v := range valid {
		if strings.EqualFold(v, s) {
			return v, true
		}
	}
	return "", false
}

// Put validates a policy PUT, creating or fully replacing it. It returns
// EInvalid (400) for a body that breaks the schema, a location outside the
// Power Platform regions, or a key vault or key that does not exist;
// EForbidden (403) when the caller may not read the vault the policy names;
// and EConflict (409) when the preview profile's feature is not registered,
// its policy limit is reached, or environments linked to the policy forbid
// the change.
func (t policyType) Put(ctx context.Context, req *arm.PutRequest) (*keyhold.Resource, int, error) {
	b, err := parseBody(req.Body)
	if err != nil {
		return nil, 0, err
	}
	if err := armid.ValidateName(req.ID.Name()); err != nil {
		return nil, 0, err
	}
	if req.Resource.Location == "" {
		return nil, 0, keyhold.Errorc(keyhold.EInvalid, "LocationRequired", "The location property is required for this definition.")
	}
	if err := checkLocation(req.Resource.Location); err != nil {
		return nil, 0, err
	}
	if b.Kind == nil || *b.Kind == "" {
		return nil, 0, badRequest("policy: kind is required; use one of %s", strings.Join(Kinds, ", "))
	}
	var prev *Policy
	if req.Existing != nil {
		if prev, err = Decode(req.Existing); err != nil {
			return nil, 0, err
		}
	}
	next := &Policy{}
	if b.Properties != nil {
		next.Properties = *b.Properties
	}
	identityType := IdentityNone
	explicit := false
	if b.Identity != nil {
		identityType, explicit = b.Identity.Type, true
	}
	out, err := t.s.write(ctx, req, prev, next, *b.Kind, req.Resource.Location, identityType, explicit, b)
	if err != nil {
		return nil, 0, err
	}
	return out, 0, nil
}

// Patch applies a policy PATCH: blocks present in the body replace the
// stored ones, the rest stay. It returns the errors Put does.
func (t policyType) Patch(ctx context.Context, req *arm.PutRequest) (*keyhold.Resource, error) {
	b, err := parseBody(req.Body)
	if err != nil {
		return nil, err
	}
	prev, err := Decode(req.Existing)
	if err != nil {
		return nil, err
	}
	location := req.Existing.Location
	if req.Resource.Location != "" {
		location = req.Resource.Location
	}
	kind := req.Existing.Kind
	if b.Kind != nil && *b.Kind != "" {
		kind = *b.Kind
	}
	next := &Policy{Properties: prev.Properties}
	if b.Properties != nil {
		if b.propKeys["encryption"] {
			next.Properties.Encryption = b.Properties.Encryption
		}
		if b.propKeys["lockbox"] {
			next.Properties.Lockbox = b.Properties.Lockbox
		}
		if b.propKeys["networkInjection"] {
			next.Properties.NetworkInjection = b.Properties.NetworkInjection
		}
	}
	identityType, explicit := prev.Identity.Type, len(req.Existing.Identity) > 0
	if b.Identity != nil {
		identityType, explicit = b.Identity.Type, true
	}
	if identityType == "" {
		identityType = IdentityNone
	}
	out, err := t.s.write(ctx, req, prev, next, kind, location, identityType, explicit, b)
	if err != nil {
		return nil, err
	}
	if req.Resource.Tags != nil {
		out.Tags = req.Resource.Tags
	} else {
		out.Tags = req.Existing.Tags
	}
	return out, nil
}

// write validates next (the policy as the request wants it) against prev
// (the stored one, nil for a new policy), manages the managed identity and
// returns the resource to store.
func (s *Service) write(ctx context.Context, req *arm.PutRequest, prev, next *Policy, kind, location, identityType string, explicitIdentity bool, b *requestBody) (*keyhold.Resource, error) {
	id := req.ID.String()
	k, ok := canonical(kind, Kinds)
	if !ok {
		return nil, badRequest("policy: kind %q is not valid; use one of %s", kind, strings.Join(Kinds, ", "))
	}
	if err := checkLocation(location); err != nil {
		return nil, err
	}
	if prev != nil {
		if !strings.EqualFold(prev.Resource.Kind, k) {
			return nil, badRequest("policy: the kind of enterprise policy %s is %s and cannot change to %s; create a new policy instead", req.ID.Name(), prev.Resource.Kind, k)
		}
		if !strings.EqualFold(arm.NormalizeLocation(prev.Resource.Location), arm.NormalizeLocation(location)) {
			return nil, keyhold.Errorc(keyhold.EInvalid, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				req.ID.Name(), prev.Resource.Location, req.ID.ResourceGroup(), location)
		}
	}
	it, ok := canonical(identityType, []string{IdentitySystemAssigned, IdentityNone})
	if !ok {
		return nil, badRequest("policy: identity.type %q is not valid; an enterprise policy's identity is SystemAssigned or None", identityType)
	}
	if b.Identity != nil && len(b.Identity.UserAssignedIdentities) > 0 && string(b.Identity.UserAssignedIdentities) != "null" {
		return nil, badRequest("policy: an enterprise policy has no user-assigned identities; use identity.type SystemAssigned")
	}
	if k == KindIdentity && it != IdentitySystemAssigned {
		return nil, badRequest("policy: a policy of kind Identity needs identity.type SystemAssigned")
	}
	// Environments use the key and the identity of a linked policy: changing
	// either under them would lock them out. This comes
	// first: no other fix to the request would make it acceptable.
	if prev != nil {
		var what []string
		if !sameKeyVault(prev.Properties.Encryption, next.Properties.Encryption) {
			what = append(what, "change its key (encryption.keyVault)")
		}
		if prev.Identity.PrincipalID != "" && it == IdentityNone {
			what = append(what, "remove its identity")
		}
		if len(what) > 0 {
			if err := s.checkLinks(ctx, req.ID, strings.Join(what, " or ")); err != nil {
				return nil, err
			}
		}
	}

	if err := s.checkProperties(ctx, req, k, &next.Properties); err != nil {
		return nil, err
	}
	if err := s.checkPreview(ctx, req, prev == nil); err != nil {
		return nil, err
	}

	// systemId is the policy's identity for environments: kept across updates.
	next.Properties.SystemID = ""
	if prev != nil {
		next.Properties.SystemID = prev.Properties.SystemID
	}
	if next.Properties.SystemID == "" {
		next.Properties.SystemID = SystemIDFor(arm.NormalizeLocation(location), s.newID())
	}

	tenantID := req.Subscription.TenantID
	switch {
	case it == IdentitySystemAssigned && prev != nil && prev.Identity.PrincipalID != "":
		next.Identity = prev.Identity
		next.Identity.Type = IdentitySystemAssigned
	case it == IdentitySystemAssigned:
		if s.cfg.Identity == nil {
			return nil, keyhold.Internal("policy: creating a managed identity", fmt.Errorf("no identity service configured"))
		}
		p, err := s.cfg.Identity.CreateManagedIdentity(ctx, req.Store, tenantID, id, req.ID.Name())
		if err != nil {
			return nil, err
		}
		next.Identity = Identity{Type: IdentitySystemAssigned, PrincipalID: p.ID, SystemAssignedIdentityPrincipalID: p.ID, TenantID: p.TenantID}
	default:
		if prev != nil && prev.Identity.PrincipalID != "" {
			if err := s.deleteIdentity(ctx, req.Store, id); err != nil {
				return nil, err
			}
		}
		next.Identity = Identity{Type: IdentityNone}
	}

	// Health belongs to the health checker; a new key or identity makes the
	// last verdict meaningless until it looks again.
	next.Properties.HealthStatus, next.Properties.HealthDetail = HealthUndetermined, nil
	if prev != nil && sameKeyVault(prev.Properties.Encryption, next.Properties.Encryption) && prev.Identity.PrincipalID == next.Identity.PrincipalID {
		next.Properties.HealthStatus, next.Properties.HealthDetail = prev.Properties.HealthStatus, prev.Properties.HealthDetail
		if next.Properties.HealthStatus == "" {
			next.Properties.HealthStatus = HealthUndetermined
		}
	}

	out := *req.Resource
	out.Kind, out.Location, out.SKU = k, arm.NormalizeLocation(location), nil
	var err error
	if out.Properties, err = json.Marshal(next.Properties); err != nil {
		return nil, keyhold.Internal("policy: encoding properties", err)
	}
	out.Identity = nil
	if explicitIdentity || next.Identity.PrincipalID != "" {
		if out.Identity, err = json.Marshal(next.Identity); err != nil {
			return nil, keyhold.Internal("policy: encoding identity", err)
		}
	}
	verb := "created"
	if prev != nil {
		verb = "changed"
	}
	s.publishOnCommit(ctx, tenantID, id, next.Identity.PrincipalID, "policy: enterprise policy "+verb)
	return &out, nil
}

func (s *Service) deleteIdentity(ctx context.Context, tx keyhold.Store, resourceID string) error {
	if s.cfg.Identity == nil {
		return keyhold.Internal("policy: deleting a managed identity", fmt.Errorf("no identity service configured"))
	}
	return s.cfg.Identity.DeleteManagedIdentity(ctx, tx, resourceID)
}

// checkLocation refuses a location that is not a Power Platform region,
// naming the valid ones, as ARM does for a type's locations.
func checkLocation(location string) error {
	if IsRegion(arm.NormalizeLocation(location)) {
		return nil
	}
	return keyhold.Errorc(keyhold.EInvalid, "LocationNotAvailableForResourceType",
		"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.",
		location, ResourceType, strings.Join(Regions, ","))
}

// keyVersion returns the version a key reference names; "" means newest.
func keyVersion(k KeyRef) string {
	if k.Version == nil {
		return ""
	}
	return *k.Version
}

// sameKeyVault reports whether two encryption blocks name the same key.
func sameKeyVault(a, b *Encryption) bool {
	var ka, kb *KeyVaultRef
	if a != nil {
		ka = a.KeyVault
	}
	if b != nil {
		kb = b.KeyVault
	}
	if ka == nil || kb == nil {
		return ka == nil && kb == nil
	}
	return strings.EqualFold(ka.ID, kb.ID) && strings.EqualFold(ka.Key.Name, kb.Key.Name) && strings.EqualFold(keyVersion(ka.Key), keyVersion(kb.Key))
}

// checkProperties validates and canonicalizes the properties for kind.
func (s *Service) checkProperties(ctx context.Context, req *arm.PutRequest, kind string, p *Properties) error {
	if e := p.Encryption; e != nil {
		if e.State != "" {
			st, ok := canonical(e.State, States)
			if !ok {
				return badRequest("policy: encryption.state %q is not valid; use one of %s", e.State, strings.Join(States, ", "))
			}
			e.State = st
		}
		if e.KeyVault != nil && e.KeyVault.Key.Version != nil && strings.TrimSpace(*e.KeyVault.Key.Version) == "" {
			// An empty version, like null, follows the newest version.
			e.KeyVault.Key.Version = nil
		}
	}
	if l := p.Lockbox; l != nil && l.State != "" {
		st, ok := canonical(l.State, States)
		if !ok {
			return badRequest("policy: lockbox.state %q is not valid; use one of %s", l.State, strings.Join(States, ", "))
		}
		l.State = st
	}
	if n := p.NetworkInjection; n != nil || kind == KindNetworkInjection {
		if err := checkNetworks(n, kind); err != nil {
			return err
		}
	}
	if kind != KindEncryption {
		return nil
	}
	if p.Encryption == nil || p.Encryption.KeyVault == nil {
		return badRequest("policy: a policy of kind Encryption needs properties.encryption.keyVault with the vault's resource id and the key's name")
	}
	if p.Encryption.State == "" {
		p.Encryption.State = "Enabled"
	}
	return s.checkKey(ctx, req, p.Encryption.KeyVault)
}

// checkNetworks validates a networkInjection block.
func checkNetworks(n *NetworkInjection, kind string) error {
	if n == nil || len(n.VirtualNetworks) == 0 {
		if kind == KindNetworkInjection {
			return badRequest("policy: a policy of kind NetworkInjection needs properties.networkInjection.virtualNetworks, each with the network's resource id and a subnet name")
		}
		return nil
	}
	if len(n.VirtualNetworks) > maxVirtualNetworks {
		return badRequest("policy: properties.networkInjection.virtualNetworks has %d networks; name at most %d (a primary and a secondary)", len(n.VirtualNetworks), maxVirtualNetworks)
	}
	for i, v := range n.VirtualNetworks {
		id, err := armid.Parse(v.ID)
		if err != nil || !id.IsResource() || !strings.EqualFold(id.Type(), "Microsoft.Network/virtualNetworks") {
			return badRequest("policy: properties.networkInjection.virtualNetworks[%d].id %q is not a virtual network's resource id (/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.Network/virtualNetworks/{name})", i, v.ID)
		}
		if strings.TrimSpace(v.Subnet.Name) == "" {
			return badRequest("policy: properties.networkInjection.virtualNetworks[%d].subnet.name is required", i)
		}
	}
	return nil
}

// checkKey checks that the vault a policy names exists, that the caller may
// read it, and that the key exists in it.
func (s *Service) checkKey(ctx context.Context, req *arm.PutRequest, kv *KeyVaultRef) error {
	vid, err := armid.Parse(kv.ID)
	if err != nil || !vid.IsResource() || !strings.EqualFold(vid.Type(), keyvault.ResourceType) {
		return keyhold.Errorc(keyhold.EInvalid, "LinkedInvalidPropertyId",
			"policy: properties.encryption.keyVault.id %q is not a key vault's resource id; copy the vault's Resource ID (/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{name})", kv.ID)
	}
	if strings.TrimSpace(kv.Key.Name) == "" {
		return badRequest("policy: properties.encryption.keyVault.key.name is required")
	}
	// Checking access before existence keeps a caller from learning which
	// vaults exist where it may not look.
	readable, err := s.canRead(ctx, req.Store, req.Caller, vid)
	if err != nil {
		return err
	}
	if !readable {
		return keyhold.Errorc(keyhold.EForbidden, "LinkedAuthorizationFailed",
			"The client '%s' with object id '%s' has permission to perform action '%s' on scope '%s'; however, it does not have permission to perform action '%s' on the linked scope(s) '%s' or the linked scope(s) are invalid.",
			rbac.ClientName(req.Caller), req.Caller.Principal.ID, ActionWrite, req.ID.String(), actionVaultRead, vid.String())
	}
	v, err := req.Store.GetResource(ctx, vid.String())
	if keyhold.IsNotFound(err) || err == nil && !strings.EqualFold(v.Type, keyvault.ResourceType) {
		return keyhold.Errorc(keyhold.EInvalid, "KeyVaultNotFound",
			"policy: the key vault %s named by properties.encryption.keyVault.id does not exist", vid.String())
	}
	if err != nil {
		return err
	}
	kv.ID = v.ID
	_, err = req.Store.GetKeyVersion(ctx, v.Name, kv.Key.Name, keyVersion(kv.Key))
	if keyhold.IsNotFound(err) {
		if keyVersion(kv.Key) != "" {
			return keyhold.Errorc(keyhold.EInvalid, "KeyNotFound",
				"policy: version %s of key %s does not exist in key vault %s", keyVersion(kv.Key), kv.Key.Name, v.Name)
		}
		return keyhold.Errorc(keyhold.EInvalid, "KeyNotFound", "policy: key %s does not exist in key vault %s", kv.Key.Name, v.Name)
	}
	return err
}

// canRead reports whether the caller may read the vault vid: the vault's
// subscription must be in the caller's tenant and a role must allow it.
func (s *Service) canRead(ctx context.Context, st keyhold.Store, c *keyhold.Caller, vid armid.ID) (bool, error) {
	if c == nil || c.Principal == nil {
		return false, nil
	}
	sub, err := st.GetSubscription(ctx, vid.SubscriptionID())
	if keyhold.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !strings.EqualFold(sub.TenantID, c.TenantID) {
		return false, nil
	}
	return s.cfg.Authz.Check(ctx, c, actionVaultRead, vid.String())
}

// checkPreview applies the preview profile: the feature must be registered
// in the subscription, and a new policy must not take the tenant past the
// limit.
func (s *Service) checkPreview(ctx context.Context, req *arm.PutRequest, create bool) error {
	if s.cfg.Profile != ProfilePreview {
		return nil
	}
	state, err := s.featureState(ctx, req.Store, req.Subscription.ID)
	if err != nil {
		return err
	}
	if state != keyhold.StateRegistered {
		return keyhold.Errorc(keyhold.EConflict, "SubscriptionNotRegisteredForFeature",
			"Subscription %s is not registered for feature %s/%s required to carry out the requested operation (its state is %s). Register it: POST /subscriptions/%s/providers/Microsoft.Features/providers/%s/features/%s/register?api-version=2014-08-01-preview, or 'keyhold feature register'.",
			req.Subscription.ID, Namespace, PreviewFeature, state, req.Subscription.ID, Namespace, PreviewFeature)
	}
	if !create {
		return nil
	}
	names, err := tenantPolicies(ctx, req.Store, req.Subscription.TenantID)
	if err != nil {
		return err
	}
	if len(names) >= PreviewPolicyLimit {
		return keyhold.Errorc(keyhold.EConflict, "QuotaExceeded",
			"During preview, a tenant can have at most %d enterprise policies, and tenant %s already has %d (%s). Delete one before creating another.",
			PreviewPolicyLimit, req.Subscription.TenantID, len(names), strings.Join(names, ", "))
	}
	return nil
}

func (s *Service) featureState(ctx context.Context, st keyhold.Store, sub string) (string, error) {
	if s.cfg.Features != nil {
		return s.cfg.Features.FeatureState(ctx, st, sub, Namespace, PreviewFeature)
	}
	f, err := st.GetFeatureRegistration(ctx, sub, Namespace, PreviewFeature)
	if keyhold.IsNotFound(err) {
		return keyhold.StateNotRegistered, nil
	}
	if err != nil {
		return "", err
	}
	return f.State, nil
}

// tenantPolicies returns the ids of every policy in the tenant's subscriptions.
func tenantPolicies(ctx context.Context, st keyhold.Store, tenantID string) ([]string, error) {
	subs, err := st.ListSubscriptions(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, sub := range subs {
		rs, err := st.ListResources(ctx, keyhold.ResourceFilter{SubscriptionID: sub.ID, Type: ResourceType})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			names = append(names, r.Name)
		}
	}
	return names, nil
}

// Delete refuses to delete a policy that environments are linked to, and
// deletes its managed identity in the deletion's transaction.
func (t policyType) Delete(ctx context.Context, r *keyhold.Resource) error {
	id, err := armid.Parse(r.ID)
	if err != nil {
		return keyhold.Internal("policy: stored id", err)
	}
	if err := t.s.checkLinks(ctx, id, "delete it"); err != nil {
		return err
	}
	tx := arm.TxFrom(ctx)
	if tx == nil {
		tx = t.s.cfg.Store
	}
	if err := t.s.deleteIdentity(ctx, tx, r.ID); err != nil {
		return err
	}
	p, _ := Decode(r)
	tenant := ""
	principal := ""
	if p != nil {
		tenant, principal = p.Identity.TenantID, p.Identity.PrincipalID
	}
	if tenant == "" {
		if sub, err := tx.GetSubscription(ctx, r.SubscriptionID); err == nil {
			tenant = sub.TenantID
		}
	}
	t.s.publishOnCommit(ctx, tenant, r.ID, principal, "policy: enterprise policy deleted")
	return nil
}

// publishOnCommit publishes PolicyChanged once the request's transaction
// commits, so that a subscriber re-reading the store sees the change.
func (s *Service) publishOnCommit(ctx context.Context, tenantID, policyID, principalID, detail string) {
	if s.cfg.Events == nil {
		return
	}
	arm.OnCommit(ctx, func() {
		s.cfg.Events.Publish(context.WithoutCancel(ctx), events.Event{
			Kind: events.PolicyChanged, TenantID: tenantID, Scope: policyID, Subject: principalID, Detail: detail,
		})
	})
}

// Render returns a policy as armpowerplatform and Microsoft's scripts read
// it: healthStatus is always there, and the identity names its principal as
// both principalId and systemAssignedIdentityPrincipalId.
func (t policyType) Render(r *keyhold.Resource) any {
	out, _ := arm.DefaultRender(r).(map[string]any)
	if out == nil {
		return arm.DefaultRender(r)
	}
	p, err := Decode(r)
	if err != nil {
		return out
	}
	if p.Properties.HealthStatus == "" {
		p.Properties.HealthStatus = HealthUndetermined
	}
	out["properties"] = p.Properties
	if len(r.Identity) > 0 {
		out["identity"] = p.Identity
	}
	return out
}
