package policy_test

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/policy"
)

func TestPutValidation(t *testing.T) {
	e := newEnv(t, options{})
	with := func(mod func(b map[string]any)) map[string]any {
		b := encryptionBody(nil)
		mod(b)
		return b
	}
	props := func(b map[string]any) map[string]any { return b["properties"].(map[string]any) }
	keyVault := func(b map[string]any) map[string]any {
		return props(b)["encryption"].(map[string]any)["keyVault"].(map[string]any)
	}
	tests := []struct {
		name       string
		principal  string
		body       any
		wantStatus int
		wantCode   string
		wantInMsg  string
	}{
		{"seed template", ownerID, encryptionBody(nil), 201, "", ""},
		{"location with spaces and capitals", ownerID, with(func(b map[string]any) { b["location"] = "United States" }), 201, "", ""},
		{"no location", ownerID, with(func(b map[string]any) { delete(b, "location") }), 400, "LocationRequired", ""},
		{"azure region", ownerID, with(func(b map[string]any) { b["location"] = "westus" }), 400, "LocationNotAvailableForResourceType", "unitedstates,southafrica"},
		{"no kind", ownerID, with(func(b map[string]any) { delete(b, "kind") }), 400, "BadRequest", "kind is required"},
		{"unknown kind", ownerID, with(func(b map[string]any) { b["kind"] = "Firewall" }), 400, "BadRequest", "Encryption, Identity, NetworkInjection, Lockbox, PrivateEndpoint"},
		{"kind in lower case", ownerID, with(func(b map[string]any) { b["kind"] = "encryption" }), 201, "", ""},
		{"user-assigned identity", ownerID, with(func(b map[string]any) { b["identity"] = map[string]any{"type": "UserAssigned"} }), 400, "BadRequest", "SystemAssigned or None"},
		{"encryption without keyVault", ownerID, with(func(b map[string]any) { props(b)["encryption"] = map[string]any{"state": "Enabled"} }), 400, "BadRequest", "keyVault"},
		{"vault id not a vault", ownerID, with(func(b map[string]any) { keyVault(b)["id"] = "https://kv-contoso.vault.azure.net/" }), 400, "LinkedInvalidPropertyId", "Resource ID"},
		{"vault missing", ownerID, with(func(b map[string]any) { keyVault(b)["id"] = strings.Replace(vaultID, vaultName, "kv-gone", 1) }), 400, "KeyVaultNotFound", "kv-gone"},
		{"key missing", ownerID, with(func(b map[string]any) { keyVault(b)["key"] = map[string]any{"name": "nokey"} }), 400, "KeyNotFound", "key nokey does not exist in key vault kv-contoso"},
		{"key without name", ownerID, with(func(b map[string]any) { keyVault(b)["key"] = map[string]any{} }), 400, "BadRequest", "key.name"},
		{"key version missing", ownerID, encryptionBody("11111111111111111111111111111111"), 400, "KeyNotFound", "version 11111111111111111111111111111111"},
		{"key version present", ownerID, encryptionBody(keyV1), 201, "", ""},
		{"key version empty", ownerID, encryptionBody(""), 201, "", ""},
		{"bad encryption state", ownerID, with(func(b map[string]any) { props(b)["encryption"].(map[string]any)["state"] = "On" }), 400, "BadRequest", "Enabled, Disabled, NotConfigured"},
		{"unknown property", ownerID, with(func(b map[string]any) { props(b)["firewall"] = true }), 400, "BadRequest", "properties.firewall"},
		{"wrong type", ownerID, with(func(b map[string]any) { keyVault(b)["key"] = "cmk" }), 400, "InvalidRequestContent", "line 1"},
		{"not JSON", ownerID, `{"location": unitedstates}`, 400, "InvalidRequestContent", "line 1, column 14"},
		{"caller cannot read the vault", writerID, encryptionBody(nil), 403, "LinkedAuthorizationFailed", vaultID},
		{"network injection without networks", ownerID, map[string]any{"location": "europe", "kind": "NetworkInjection"}, 400, "BadRequest", "virtualNetworks"},
		{"network injection with a bad id", ownerID, map[string]any{"location": "europe", "kind": "NetworkInjection",
			"properties": map[string]any{"networkInjection": map[string]any{"virtualNetworks": []any{map[string]any{"id": "vnet1", "subnet": map[string]any{"name": "s"}}}}}}, 400, "BadRequest", "virtualNetworks[0].id"},
		{"network injection without a subnet", ownerID, map[string]any{"location": "europe", "kind": "NetworkInjection",
			"properties": map[string]any{"networkInjection": map[string]any{"virtualNetworks": []any{map[string]any{"id": "/subscriptions/" + subA + "/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v1"}}}}}, 400, "BadRequest", "subnet.name"},
		{"network injection", ownerID, map[string]any{"location": "europe", "kind": "NetworkInjection",
			"properties": map[string]any{"networkInjection": map[string]any{"virtualNetworks": []any{
				map[string]any{"id": "/subscriptions/" + subA + "/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v1", "subnet": map[string]any{"name": "s1"}},
				map[string]any{"id": "/subscriptions/" + subA + "/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v2", "subnet": map[string]any{"name": "s2"}},
			}}}}, 201, "", ""},
		{"identity kind without identity", ownerID, map[string]any{"location": "europe", "kind": "Identity"}, 400, "BadRequest", "SystemAssigned"},
		{"identity kind", ownerID, map[string]any{"location": "europe", "kind": "Identity", "identity": map[string]any{"type": "SystemAssigned"}}, 201, "", ""},
		{"lockbox", ownerID, map[string]any{"location": "europe", "kind": "Lockbox", "properties": map[string]any{"lockbox": map[string]any{"state": "enabled"}}}, 201, "", ""},
		{"lockbox with a bad state", ownerID, map[string]any{"location": "europe", "kind": "Lockbox", "properties": map[string]any{"lockbox": map[string]any{"state": "succeeded"}}}, 400, "BadRequest", "lockbox.state"},
		{"private endpoint", ownerID, map[string]any{"location": "europe", "kind": "PrivateEndpoint"}, 201, "", ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := policyID(subA, "ep-"+strings.ReplaceAll(strings.ToLower(tt.name), " ", "-"))
			if i == 0 {
				id = policyID(subA, "ep-seed")
			}
			r := e.do(tt.principal, "PUT", id, tt.body)
			if r.Status != tt.wantStatus || r.errorCode() != tt.wantCode {
				t.Fatalf("PUT = %d %q, want %d %q; body %s", r.Status, r.errorCode(), tt.wantStatus, tt.wantCode, r.Body)
			}
			if !strings.Contains(string(r.Body), tt.wantInMsg) {
				t.Errorf("body %s does not say %q", r.Body, tt.wantInMsg)
			}
			if tt.wantStatus >= 400 {
				if got := e.do(ownerID, "GET", id, nil); got.Status != http.StatusNotFound {
					t.Errorf("a refused PUT left a policy behind: GET = %d", got.Status)
				}
			}
		})
	}
	// A refused PUT must not leave a managed identity behind either.
	ps, err := e.store.FindPrincipals(context.Background(), keyhold.PrincipalFilter{TenantID: tenantA, Type: keyhold.PrincipalManagedIdentity})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if r := e.do(ownerID, "GET", p.ResourceID, nil); r.Status != http.StatusOK {
			t.Errorf("managed identity %s of %s outlived its refused policy (GET = %d)", p.ID, p.ResourceID, r.Status)
		}
	}
}

func TestCreateRendersTheSpecShape(t *testing.T) {
	e := newEnv(t, options{})
	id := policyID(subA, "ep-contoso")
	r := e.do(ownerID, "PUT", id, encryptionBody(nil))
	if r.Status != http.StatusCreated {
		t.Fatalf("PUT = %d %s", r.Status, r.Body)
	}
	m := r.json(t)
	for path, want := range map[string]string{
		"id":                                id,
		"name":                              "ep-contoso",
		"type":                              policy.ResourceType,
		"kind":                              "Encryption",
		"location":                          "unitedstates",
		"identity.type":                     "SystemAssigned",
		"identity.tenantId":                 tenantA,
		"properties.healthStatus":           "Undetermined",
		"properties.encryption.state":       "Enabled",
		"properties.encryption.keyVault.id": vaultID,
		"properties.encryption.keyVault.key.name": keyName,
		"properties.systemId":                     "/regions/unitedstates/providers/Microsoft.PowerPlatform/enterprisePolicies/00000000-0000-4000-8000-000000000001",
		"systemData.createdBy":                    "owner@contoso.keyhold",
	} {
		if got := str(m, path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	pid := str(m, "identity.principalId")
	if pid == "" || str(m, "identity.systemAssignedIdentityPrincipalId") != pid {
		t.Errorf("identity = %v: principalId and systemAssignedIdentityPrincipalId must be the same principal", m["identity"])
	}
	if r.Header.Get("ETag") == "" || str(m, "etag") != r.Header.Get("ETag") {
		t.Errorf("etag %q, header %q", str(m, "etag"), r.Header.Get("ETag"))
	}
	// Reads, lists by group and by subscription show the same policy.
	if g := e.do(ownerID, "GET", id, nil); g.Status != 200 || str(g.json(t), "identity.principalId") != pid {
		t.Errorf("GET = %d %s", g.Status, g.Body)
	}
	for _, path := range []string{
		"/subscriptions/" + subA + "/resourceGroups/rg-pol/providers/Microsoft.PowerPlatform/enterprisePolicies",
		"/subscriptions/" + subA + "/providers/Microsoft.PowerPlatform/enterprisePolicies",
	} {
		l := e.do(ownerID, "GET", path, nil)
		vals, _ := l.json(t)["value"].([]any)
		if l.Status != 200 || len(vals) != 1 || str(vals[0].(map[string]any), "identity.principalId") != pid {
			t.Errorf("GET %s = %d %s", path, l.Status, l.Body)
		}
	}
	// The other api-version is accepted; an unknown one is not.
	if g := e.do(ownerID, "GET", id+"?api-version=2020-10-30-preview", nil); g.Status != 200 {
		t.Errorf("GET with 2020-10-30-preview = %d", g.Status)
	}
	if g := e.do(ownerID, "GET", id+"?api-version=2021-04-01", nil); g.Status != 400 {
		t.Errorf("GET with 2021-04-01 = %d", g.Status)
	}
}

func TestIdentityLifecycle(t *testing.T) {
	e := newEnv(t, options{})
	ctx := context.Background()
	id := policyID(subA, "ep-ident")
	principalOf := func() []*keyhold.Principal {
		t.Helper()
		ps, err := e.store.FindPrincipals(ctx, keyhold.PrincipalFilter{Type: keyhold.PrincipalManagedIdentity, ResourceID: id})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}

	m := e.put(id, encryptionBody(nil))
	first := str(m, "identity.principalId")
	ps := principalOf()
	if len(ps) != 1 || ps[0].ID != first || ps[0].DisplayName != "ep-ident" || ps[0].TenantID != tenantA || ps[0].AppID == "" {
		t.Fatalf("managed identities of the policy = %+v, want one %s named ep-ident", ps, first)
	}

	// A full update that keeps SystemAssigned keeps the principal, even if
	// the client echoes the read-only fields back (UpdateCMKEnterprisePolicy.ps1 does).
	b := encryptionBody(nil)
	b["identity"] = map[string]any{"type": "SystemAssigned", "principalId": first, "tenantId": tenantA}
	b["tags"] = map[string]any{"env": "prod"}
	if got := str(e.put(id, b), "identity.principalId"); got != first {
		t.Errorf("update gave principal %s, want %s", got, first)
	}

	// PATCH to None deletes it, PATCH to SystemAssigned makes a new one.
	r := e.do(ownerID, "PATCH", id, map[string]any{"identity": map[string]any{"type": "None"}})
	if r.Status != 200 || str(r.json(t), "identity.type") != "None" || str(r.json(t), "identity.principalId") != "" {
		t.Fatalf("PATCH None = %d %s", r.Status, r.Body)
	}
	if ps := principalOf(); len(ps) != 0 {
		t.Errorf("identity None left %d managed identities", len(ps))
	}
	if _, err := e.store.GetPrincipal(ctx, first); !keyhold.IsNotFound(err) {
		t.Errorf("principal %s after identity None: %v", first, err)
	}
	if got := r.json(t)["tags"].(map[string]any)["env"]; got != "prod" {
		t.Errorf("PATCH without tags lost them: %v", r.json(t)["tags"])
	}
	r = e.do(ownerID, "PATCH", id, map[string]any{"identity": map[string]any{"type": "SystemAssigned"}})
	second := str(r.json(t), "identity.principalId")
	if r.Status != 200 || second == "" || second == first {
		t.Fatalf("PATCH SystemAssigned = %d %s", r.Status, r.Body)
	}
	// A PATCH that does not mention the identity leaves it alone.
	r = e.do(ownerID, "PATCH", id, map[string]any{"tags": map[string]any{"env": "test"}})
	if r.Status != 200 || str(r.json(t), "identity.principalId") != second {
		t.Fatalf("PATCH of tags = %d %s", r.Status, r.Body)
	}

	// DELETE takes the identity along.
	if r := e.do(ownerID, "DELETE", id, nil); r.Status != 200 {
		t.Fatalf("DELETE = %d %s", r.Status, r.Body)
	}
	if ps := principalOf(); len(ps) != 0 {
		t.Errorf("deleted policy left %d managed identities", len(ps))
	}
	if r := e.do(ownerID, "DELETE", id, nil); r.Status != 204 {
		t.Errorf("second DELETE = %d", r.Status)
	}

	// Deleting the resource group deletes policies and their identities.
	e.put(id, encryptionBody(nil))
	if len(principalOf()) != 1 {
		t.Fatal("no identity after re-creating the policy")
	}
	if r := e.do(ownerID, "DELETE", "/subscriptions/"+subA+"/resourceGroups/rg-pol?api-version=2021-04-01", nil); r.Status >= 300 {
		t.Fatalf("DELETE group = %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(principalOf()) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if ps := principalOf(); len(ps) != 0 {
		t.Errorf("deleting the group left %d managed identities", len(ps))
	}
}

var systemIDRE = regexp.MustCompile(`^/regions/[a-z]+/providers/Microsoft\.PowerPlatform/enterprisePolicies/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSystemIDStableAcrossUpdates(t *testing.T) {
	e := newEnv(t, options{})
	id := policyID(subA, "ep-sys")
	sys := str(e.put(id, encryptionBody(nil)), "properties.systemId")
	if !systemIDRE.MatchString(sys) {
		t.Fatalf("systemId %q does not have the documented shape", sys)
	}
	b := encryptionBody(keyV1)
	b["properties"].(map[string]any)["systemId"] = "/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/forged"
	if got := str(e.put(id, b), "properties.systemId"); got != sys {
		t.Errorf("after PUT systemId = %q, want %q", got, sys)
	}
	r := e.do(ownerID, "PATCH", id, map[string]any{"tags": map[string]any{"a": "b"}})
	if got := str(r.json(t), "properties.systemId"); got != sys {
		t.Errorf("after PATCH systemId = %q, want %q", got, sys)
	}
	other := str(e.put(policyID(subA, "ep-other"), encryptionBody(nil)), "properties.systemId")
	if other == sys {
		t.Errorf("two policies share systemId %s", sys)
	}
	if got := policy.PolicyIDOf(sys); got != "00000000-0000-4000-8000-000000000001" {
		t.Errorf("PolicyIDOf(%s) = %s", sys, got)
	}
	// The region in systemId is the normalized location, whatever the body said.
	spaced := encryptionBody(nil)
	spaced["location"] = "United States"
	if got := str(e.put(policyID(subA, "ep-spaced"), spaced), "properties.systemId"); !systemIDRE.MatchString(got) || !strings.HasPrefix(got, "/regions/unitedstates/") {
		t.Errorf("systemId for location 'United States' = %q", got)
	}
	// The default generator makes random version 4 GUIDs.
	e2 := newEnv(t, options{})
	svc := policy.New(policy.Config{Store: e2.store, Identity: e2.ids})
	e2.arm.Register(svc.ResourceType())
	sys2 := str(e2.put(id, encryptionBody(nil)), "properties.systemId")
	if !systemIDRE.MatchString(sys2) || strings.HasSuffix(sys2, "000000000001") {
		t.Errorf("random systemId %q", sys2)
	}
}

func TestUpdateRules(t *testing.T) {
	e := newEnv(t, options{})
	id := policyID(subA, "ep-upd")
	e.put(id, encryptionBody(nil))
	tests := []struct {
		name   string
		method string
		body   any
		status int
		code   string
		inMsg  string
	}{
		{"move", "PUT", func() any { b := encryptionBody(nil); b["location"] = "europe"; return b }(), 400, "InvalidResourceLocation", "unitedstates"},
		{"change kind", "PUT", map[string]any{"location": "unitedstates", "kind": "Lockbox"}, 400, "BadRequest", "cannot change to Lockbox"},
		{"change kind by patch", "PATCH", map[string]any{"kind": "Identity"}, 400, "BadRequest", "cannot change"},
		{"move by patch", "PATCH", map[string]any{"location": "westus"}, 400, "LocationNotAvailableForResourceType", ""},
		{"drop the key by patch", "PATCH", map[string]any{"properties": map[string]any{"encryption": nil}}, 400, "BadRequest", "keyVault"},
		{"missing key by patch", "PATCH", map[string]any{"properties": map[string]any{"encryption": map[string]any{"keyVault": map[string]any{"id": vaultID, "key": map[string]any{"name": "other"}}}}}, 400, "KeyNotFound", ""},
		{"new key version by patch", "PATCH", map[string]any{"properties": map[string]any{"encryption": map[string]any{"keyVault": map[string]any{"id": vaultID, "key": map[string]any{"name": keyName, "version": keyV2}}}}}, 200, "", keyV2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(ownerID, tt.method, id, tt.body)
			if r.Status != tt.status || r.errorCode() != tt.code || !strings.Contains(string(r.Body), tt.inMsg) {
				t.Errorf("%s = %d %s, want %d %s containing %q", tt.method, r.Status, r.Body, tt.status, tt.code, tt.inMsg)
			}
		})
	}
}

func TestHealthResetWhenTheKeyChanges(t *testing.T) {
	e := newEnv(t, options{})
	ctx := context.Background()
	id := policyID(subA, "ep-h")
	e.put(id, encryptionBody(nil))
	if err := e.svc.SetHealth(ctx, id, policy.HealthHealthy, policy.HealthDetail{Reason: "all checks passed"}); err != nil {
		t.Fatal(err)
	}
	// Tags do not touch the verdict...
	b := encryptionBody(nil)
	b["tags"] = map[string]any{"a": "b"}
	if got := str(e.put(id, b), "properties.healthStatus"); got != policy.HealthHealthy {
		t.Errorf("after a tag change health = %s, want Healthy", got)
	}
	// ...a new key does: the checker has not looked at it yet.
	m := e.put(id, encryptionBody(keyV1))
	if got := str(m, "properties.healthStatus"); got != policy.HealthUndetermined || get(m, "properties.healthDetail") != nil {
		t.Errorf("after a key change health = %s, detail %v; want Undetermined and none", got, get(m, "properties.healthDetail"))
	}
}

func TestSetHealth(t *testing.T) {
	e := newEnv(t, options{})
	ctx := context.Background()
	id := policyID(subA, "ep-health")
	created := e.do(ownerID, "PUT", id, encryptionBody(nil))
	etag := created.Header.Get("ETag")
	e.events()

	reason := "identity 3f2a lacks unwrapKey on vault kv-contoso"
	if err := e.svc.SetHealth(ctx, id, "unhealthy", policy.HealthDetail{Reason: reason, Definite: true}); err != nil {
		t.Fatal(err)
	}
	r := e.do(ownerID, "GET", id, nil)
	m := r.json(t)
	if got := str(m, "properties.healthStatus"); got != policy.HealthUnhealthy {
		t.Errorf("healthStatus = %s, want Unhealthy", got)
	}
	if got := str(m, "properties.healthDetail.reason"); got != reason {
		t.Errorf("healthDetail.reason = %q", got)
	}
	if get(m, "properties.healthDetail.definite") != true || str(m, "properties.healthDetail.checkedAt") == "" {
		t.Errorf("healthDetail = %v", get(m, "properties.healthDetail"))
	}
	if r.Header.Get("ETag") != etag {
		t.Errorf("SetHealth changed the ETag from %s to %s", etag, r.Header.Get("ETag"))
	}
	if str(m, "systemData.lastModifiedAt") != str(created.json(t), "systemData.lastModifiedAt") {
		t.Errorf("SetHealth changed systemData")
	}
	if str(m, "properties.encryption.keyVault.key.name") != keyName || str(m, "properties.systemId") == "" {
		t.Errorf("SetHealth lost other properties: %v", m["properties"])
	}
	evs := e.events()
	if len(evs) != 1 || evs[0].Kind != events.PolicyChanged || evs[0].Scope != id || evs[0].TenantID != tenantA || evs[0].Subject != str(m, "identity.principalId") {
		t.Errorf("events after SetHealth = %+v", evs)
	}
	// A tag PATCH publishes once; the same verdict again publishes nothing,
	// a new reason does.
	if r := e.do(ownerID, "PATCH", id, map[string]any{"tags": map[string]any{"k": "v"}}); r.Status != 200 {
		t.Fatalf("PATCH = %d %s", r.Status, r.Body)
	}
	if err := e.svc.SetHealth(ctx, id, policy.HealthUnhealthy, policy.HealthDetail{Reason: reason, Definite: true}); err != nil {
		t.Fatal(err)
	}
	if evs := e.events(); len(evs) != 1 {
		t.Errorf("the tag PATCH published %d events, want 1", len(evs))
	}
	if err := e.svc.SetHealth(ctx, id, policy.HealthUnhealthy, policy.HealthDetail{Reason: "key cmk is disabled", Definite: true}); err != nil {
		t.Fatal(err)
	}
	if evs := e.events(); len(evs) != 1 {
		t.Errorf("a new reason published %d events, want 1", len(evs))
	}

	tests := []struct {
		name, id, status, code string
	}{
		{"bad status", id, "Sick", keyhold.EInvalid},
		{"missing policy", policyID(subA, "nope"), policy.HealthHealthy, keyhold.ENotFound},
		{"not a policy", vaultID, policy.HealthHealthy, keyhold.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.svc.SetHealth(ctx, tt.id, tt.status, policy.HealthDetail{})
			if got := keyhold.ErrorCode(err); got != tt.code {
				t.Errorf("SetHealth = %v (%s), want %s", err, got, tt.code)
			}
		})
	}
}

func TestSetHealthKeepsIfMatch(t *testing.T) {
	e := newEnv(t, options{})
	id := policyID(subA, "ep-etag")
	etag := e.do(ownerID, "PUT", id, encryptionBody(nil)).Header.Get("ETag")
	if err := e.svc.SetHealth(context.Background(), id, policy.HealthWarning, policy.HealthDetail{Reason: "vault unreachable"}); err != nil {
		t.Fatal(err)
	}
	req := encryptionBody(nil)
	r := e.doIfMatch(id, etag, req)
	if r.Status != http.StatusOK {
		t.Errorf("PUT with If-Match %s after a probe = %d %s", etag, r.Status, r.Body)
	}
	if r := e.doIfMatch(id, etag, req); r.Status != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale If-Match = %d, want 412", r.Status)
	}
}

func TestListAndGet(t *testing.T) {
	e := newEnv(t, options{})
	ctx := context.Background()
	e.put(policyID(subA, "ep-b"), encryptionBody(nil))
	e.put(policyID(subA, "ep-a"), encryptionBody(keyV2))
	e.put(policyID(subA, "lockbox"), map[string]any{"location": "europe", "kind": "Lockbox"})
	list, err := e.svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range list {
		names = append(names, p.Resource.Name)
		if p.Identity.PrincipalID == "" || p.Properties.Encryption == nil || p.Properties.Encryption.KeyVault == nil {
			t.Errorf("listed policy %s lacks identity or key: %+v", p.Resource.Name, p)
		}
	}
	if !slices.Equal(names, []string{"ep-a", "ep-b"}) {
		t.Errorf("List = %v, want the two Encryption policies", names)
	}
	p, err := e.svc.Get(ctx, policyID(subA, "EP-A"))
	if err != nil || p.Properties.Encryption.KeyVault.Key.Version == nil || *p.Properties.Encryption.KeyVault.Key.Version != keyV2 {
		t.Errorf("Get = %+v, %v", p, err)
	}
	if _, err := e.svc.Get(ctx, vaultID); !keyhold.IsNotFound(err) {
		t.Errorf("Get(vault) = %v, want not found", err)
	}
}

func TestEventsAfterCommit(t *testing.T) {
	e := newEnv(t, options{})
	id := policyID(subA, "ep-ev")
	e.put(id, encryptionBody(nil))
	evs := e.events()
	if len(evs) != 1 || evs[0].Kind != events.PolicyChanged || evs[0].Scope != id || evs[0].TenantID != tenantA || !strings.Contains(evs[0].Detail, "created") {
		t.Fatalf("events after create = %+v", evs)
	}
	if r := e.do(ownerID, "PUT", id, encryptionBody("nope")); r.Status != 400 {
		t.Fatalf("bad PUT = %d", r.Status)
	}
	if evs := e.events(); len(evs) != 0 {
		t.Errorf("a refused PUT published %+v", evs)
	}
	e.do(ownerID, "DELETE", id, nil)
	if evs := e.events(); len(evs) != 1 || !strings.Contains(evs[0].Detail, "deleted") || evs[0].TenantID != tenantA {
		t.Errorf("events after delete = %+v", evs)
	}
}

func TestProviderMustBeRegistered(t *testing.T) {
	e := newEnv(t, options{})
	ctx := context.Background()
	if err := e.store.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: subA, Namespace: policy.Namespace, State: keyhold.StateNotRegistered, UpdatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	r := e.do(ownerID, "PUT", policyID(subA, "ep"), encryptionBody(nil))
	if r.Status != http.StatusConflict || r.errorCode() != "MissingSubscriptionRegistration" {
		t.Errorf("PUT unregistered = %d %s", r.Status, r.Body)
	}
}

func TestOtherTenantCannotPointAtOurVault(t *testing.T) {
	e := newEnv(t, options{})
	r := e.do(strangerID, "PUT", policyID(subB, "ep"), encryptionBody(nil))
	if r.Status != http.StatusForbidden || r.errorCode() != "LinkedAuthorizationFailed" {
		t.Errorf("PUT by another tenant = %d %s", r.Status, r.Body)
	}
}

func TestPreviewProfile(t *testing.T) {
	e := newEnv(t, options{profile: policy.ProfilePreview, delay: time.Minute})
	ctx := context.Background()
	r := e.do(ownerID, "PUT", policyID(subA, "ep1"), encryptionBody(nil))
	if r.Status != http.StatusConflict || r.errorCode() != "SubscriptionNotRegisteredForFeature" || !strings.Contains(r.errorMessage(), "enterprisePoliciesPreview") {
		t.Fatalf("PUT before the feature = %d %s", r.Status, r.Body)
	}
	// Registering, not yet settled, is not enough; once the delay passed it is.
	for _, sub := range []string{subA, subA2} {
		if err := e.store.PutFeatureRegistration(ctx, &keyhold.FeatureRegistration{SubscriptionID: sub, Namespace: policy.Namespace, Name: policy.PreviewFeature,
			State: keyhold.StateRegistering, UpdatedAt: e.clock.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.do(ownerID, "PUT", policyID(subA, "ep1"), encryptionBody(nil)); r.Status != http.StatusConflict || !strings.Contains(r.errorMessage(), "Registering") {
		t.Fatalf("PUT while Registering = %d %s", r.Status, r.Body)
	}
	e.clock.Add(2 * time.Minute)
	e.put(policyID(subA, "ep1"), encryptionBody(nil))
	e.put(policyID(subA2, "ep2"), map[string]any{"location": "europe", "kind": "Lockbox"})

	// The third policy of the tenant is refused, in any of its subscriptions.
	for _, sub := range []string{subA, subA2} {
		r := e.do(ownerID, "PUT", policyID(sub, "ep3"), encryptionBody(nil))
		if r.Status != http.StatusConflict || r.errorCode() != "QuotaExceeded" || !strings.Contains(r.errorMessage(), "ep1, ep2") {
			t.Errorf("third policy in %s = %d %s", sub, r.Status, r.Body)
		}
	}
	if ps, _ := e.store.FindPrincipals(ctx, keyhold.PrincipalFilter{ResourceID: policyID(subA, "ep3")}); len(ps) != 0 {
		t.Errorf("the refused policy left a managed identity")
	}
	// Updating one of the two is fine, and deleting one makes room.
	e.put(policyID(subA, "ep1"), encryptionBody(keyV1))
	if r := e.do(ownerID, "DELETE", policyID(subA2, "ep2"), nil); r.Status != 200 {
		t.Fatalf("DELETE = %d", r.Status)
	}
	e.put(policyID(subA, "ep3"), encryptionBody(nil))

	// The default profile has neither limit.
	d := newEnv(t, options{})
	for i := range 3 {
		d.put(policyID(subA, "ep"+string(rune('1'+i))), encryptionBody(nil))
	}
}

func TestLinkedEnvironmentsRefuseChanges(t *testing.T) {
	e := newEnv(t, options{})
	id := policyID(subA, "ep-linked")
	e.put(id, encryptionBody(keyV1))
	e.links.set(id, "env-sales", "env-hr")
	tests := []struct {
		name   string
		method string
		body   any
		status int
	}{
		{"new key version", "PUT", encryptionBody(keyV2), 409},
		{"newest version instead of a pinned one", "PUT", encryptionBody(nil), 409},
		{"other key name", "PATCH", map[string]any{"properties": map[string]any{"encryption": map[string]any{"keyVault": map[string]any{"id": vaultID, "key": map[string]any{"name": "cmk2"}}}}}, 409},
		{"remove the identity", "PATCH", map[string]any{"identity": map[string]any{"type": "None"}}, 409},
		{"delete", "DELETE", nil, 409},
		{"same key with tags", "PUT", func() any { b := encryptionBody(keyV1); b["tags"] = map[string]any{"a": "b"}; return b }(), 200},
		{"same key, vault id in other case", "PATCH", map[string]any{"properties": map[string]any{"encryption": map[string]any{"keyVault": map[string]any{"id": strings.ToUpper(vaultID), "key": map[string]any{"name": "CMK", "version": keyV1}}}}}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(ownerID, tt.method, id, tt.body)
			if r.Status != tt.status {
				t.Fatalf("%s = %d %s, want %d", tt.method, r.Status, r.Body, tt.status)
			}
			if tt.status == 409 {
				msg := r.errorMessage()
				if r.errorCode() != "EnterprisePolicyLinkedToEnvironments" || !strings.Contains(msg, "env-sales, env-hr") || !strings.Contains(msg, "Remove them from the policy first") {
					t.Errorf("refusal = %s %q", r.errorCode(), msg)
				}
			}
		})
	}
	// The group cannot be deleted from under the environments either.
	if r := e.do(ownerID, "DELETE", "/subscriptions/"+subA+"/resourceGroups/rg-pol?api-version=2021-04-01", nil); r.Status < 300 {
		if g := e.do(ownerID, "GET", id, nil); g.Status != 200 {
			t.Errorf("deleting the group removed a linked policy")
		}
	}
	e.links.set(id)
	if r := e.do(ownerID, "DELETE", id, nil); r.Status != 200 {
		t.Errorf("DELETE once unlinked = %d %s", r.Status, r.Body)
	}
}

func TestOperationsAndProviderMetadata(t *testing.T) {
	e := newEnv(t, options{})
	r := e.do(ownerID, "GET", "/providers/Microsoft.PowerPlatform/operations?api-version=2020-10-30-preview", nil)
	if r.Status != 200 {
		t.Fatalf("operations = %d %s", r.Status, r.Body)
	}
	var names []string
	for _, v := range r.json(t)["value"].([]any) {
		op := v.(map[string]any)
		names = append(names, op["name"].(string))
		if str(op, "display.provider") == "" || str(op, "display.operation") == "" || op["isDataAction"] != false {
			t.Errorf("operation %v lacks display fields", op)
		}
	}
	for _, want := range []string{policy.ActionRead, policy.ActionWrite, policy.ActionDelete} {
		if !slices.Contains(names, want) {
			t.Errorf("operations %v lack %s", names, want)
		}
	}
	if r := e.do(ownerID, "GET", "/providers/Microsoft.PowerPlatform/operations?api-version=", nil); r.Status != 400 {
		t.Errorf("operations without api-version = %d", r.Status)
	}

	r = e.do(ownerID, "GET", "/subscriptions/"+subA+"/providers/Microsoft.PowerPlatform?api-version=2021-04-01", nil)
	if r.Status != 200 {
		t.Fatalf("provider = %d %s", r.Status, r.Body)
	}
	found := false
	for _, v := range r.json(t)["resourceTypes"].([]any) {
		rt := v.(map[string]any)
		if rt["resourceType"] != "enterprisePolicies" {
			continue
		}
		found = true
		var locs, versions []string
		for _, l := range rt["locations"].([]any) {
			locs = append(locs, l.(string))
		}
		for _, l := range rt["apiVersions"].([]any) {
			versions = append(versions, l.(string))
		}
		if !slices.Equal(locs, policy.Regions) || !slices.Equal(versions, policy.APIVersions) {
			t.Errorf("enterprisePolicies locations %v, api-versions %v", locs, versions)
		}
	}
	if !found {
		t.Errorf("provider metadata lacks enterprisePolicies: %s", r.Body)
	}
}
