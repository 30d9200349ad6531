package keyvault

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
)

const (
	oidA = "9a5b6c7d-0000-4000-8000-0000000000a1"
	oidB = "9a5b6c7d-0000-4000-8000-0000000000b2"
)

func policy(oid string, keys ...string) map[string]any {
	return map[string]any{"tenantId": mgmtTenant, "objectId": oid, "permissions": map[string]any{"keys": keys}}
}

func TestPutValidation(t *testing.T) {
	e := newMgmtEnv(t)
	path := mgmtVaultPath(mgmtSub, mgmtGroup, "kv-valid")
	set := func(k string, v any) func(map[string]any) { return func(p map[string]any) { p[k] = v } }
	tests := []struct {
		name    string
		path    string
		body    any
		status  int
		code    string
		message string // a substring of the message
	}{
		{"no properties", path, map[string]any{"location": "westeurope"}, 400, "BadRequest", "must have properties"},
		{"not JSON", path, "{", 400, "InvalidRequestContent", ""},
		{"properties of the wrong type", path, map[string]any{"location": "westeurope", "properties": map[string]any{"softDeleteRetentionInDays": "ninety"}}, 400, "InvalidRequestContent", "softDeleteRetentionInDays"},
		{"no location", path, map[string]any{"properties": vaultJSON(nil)["properties"]}, 400, "LocationRequired", ""},
		{"no tenant", path, vaultJSON(set("tenantId", "")), 400, "BadRequest", `"tenantId" is required`},
		{"tenant not a GUID", path, vaultJSON(set("tenantId", "contoso")), 400, "BadRequest", "must be a GUID"},
		{"another tenant", path, vaultJSON(set("tenantId", mgmtOther)), 400, "BadRequest", "caller's own tenant"},
		{"no sku", path, vaultJSON(set("sku", nil)), 400, "BadRequest", `"sku" is required`},
		{"unknown sku", path, vaultJSON(set("sku", map[string]any{"family": "A", "name": "gold"})), 400, "BadRequest", "'gold'"},
		{"unknown sku family", path, vaultJSON(set("sku", map[string]any{"family": "B", "name": "standard"})), 400, "BadRequest", "family 'B'"},
		{"soft delete off", path, vaultJSON(set("enableSoftDelete", false)), 400, "BadRequest", `"enableSoftDelete" cannot be set to false`},
		{"purge protection off", path, vaultJSON(set("enablePurgeProtection", false)), 400, "BadRequest",
			`The property "enablePurgeProtection" cannot be set to false. Enabling the purge protection for a vault is an irreversible action.`},
		{"retention too short", path, vaultJSON(set("softDeleteRetentionInDays", 6)), 400, "BadRequest", "between 7 and 90"},
		{"retention too long", path, vaultJSON(set("softDeleteRetentionInDays", 91)), 400, "BadRequest", "between 7 and 90"},
		{"unknown key permission", path, vaultJSON(set("accessPolicies", []any{policy(oidA, "get", "fly")})), 400, "BadRequest", "'fly'"},
		{"unknown secret permission", path, vaultJSON(set("accessPolicies", []any{map[string]any{"tenantId": mgmtTenant, "objectId": oidA, "permissions": map[string]any{"secrets": []string{"wrapKey"}}}})), 400, "BadRequest", "secret permission 'wrapKey'"},
		{"object id not a GUID", path, vaultJSON(set("accessPolicies", []any{policy("alice", "get")})), 400, "BadRequest", "objectId"},
		{"too many policies", path, vaultJSON(set("accessPolicies", manyPolicies(1025))), 400, "BadRequest", "at most 1024"},
		{"bad public network access", path, vaultJSON(set("publicNetworkAccess", "Sometimes")), 400, "BadRequest", "publicNetworkAccess"},
		{"bad default action", path, vaultJSON(set("networkAcls", map[string]any{"defaultAction": "Block"})), 400, "BadRequest", "defaultAction"},
		{"bad bypass", path, vaultJSON(set("networkAcls", map[string]any{"bypass": "Everyone"})), 400, "BadRequest", "bypass"},
		{"bad ip rule", path, vaultJSON(set("networkAcls", map[string]any{"ipRules": []any{map[string]any{"value": "300.1.1.1"}}})), 400, "BadRequest", "'300.1.1.1'"},
		{"ip range with host bits", path, vaultJSON(set("networkAcls", map[string]any{"ipRules": []any{map[string]any{"value": "10.0.0.1/8"}}})), 400, "BadRequest", "10.0.0.0/8"},
		{"bad vnet rule", path, vaultJSON(set("networkAcls", map[string]any{"virtualNetworkRules": []any{map[string]any{"id": "/subscriptions/x"}}})), 400, "BadRequest", "subnet"},
		{"bad create mode", path, vaultJSON(set("createMode", "clone")), 400, "BadRequest", "createMode"},
		{"recover with nothing deleted", path, vaultJSON(set("createMode", "recover")), 404, "ResourceNotFound", "no deleted vault"},
		{"name too short", mgmtVaultPath(mgmtSub, mgmtGroup, "kv"), vaultJSON(nil), 400, "VaultNameNotValid", ""},
		{"name with double hyphen", mgmtVaultPath(mgmtSub, mgmtGroup, "kv--a"), vaultJSON(nil), 400, "VaultNameNotValid", ""},
		{"name starting with a digit", mgmtVaultPath(mgmtSub, mgmtGroup, "1kv"), vaultJSON(nil), 400, "VaultNameNotValid", ""},
		{"name ending with a hyphen", mgmtVaultPath(mgmtSub, mgmtGroup, "kva-"), vaultJSON(nil), 400, "VaultNameNotValid", ""},
		{"name too long", mgmtVaultPath(mgmtSub, mgmtGroup, "k"+strings.Repeat("v", 24)), vaultJSON(nil), 400, "VaultNameNotValid", ""},
		{"unknown api-version", path + "?api-version=2010-01-01", vaultJSON(nil), 400, "NoRegisteredProviderFound", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(mgmtOwner, http.MethodPut, tt.path, tt.body)
			code, msg := r.errCode(t)
			if r.Status != tt.status || code != tt.code || !strings.Contains(msg, tt.message) {
				t.Errorf("got %d %s %q, want %d %s containing %q", r.Status, code, msg, tt.status, tt.code, tt.message)
			}
		})
	}
	if got := e.drain(); len(got) != 0 {
		t.Errorf("refused PUTs published %+v", got)
	}
	e.must(e.do(mgmtOwner, http.MethodGet, path, nil), 404)
}

func manyPolicies(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = policy(oidA, "get")
	}
	return out
}

func TestPutDefaultsAndCanonicalForm(t *testing.T) {
	e := newMgmtEnv(t)
	path := mgmtVaultPath(mgmtSub, mgmtGroup, "kv-Defaults")
	r := e.must(e.do(mgmtOwner, http.MethodPut, path, vaultJSON(func(p map[string]any) {
		p["sku"] = map[string]any{"name": "Premium"}
		p["accessPolicies"] = []any{policy(strings.ToUpper(oidA), "WRAPKEY", "get"), policy(oidA, "unwrapkey", "get")}
		p["publicNetworkAccess"] = "disabled"
		p["networkAcls"] = map[string]any{"defaultAction": "deny", "ipRules": []any{map[string]any{"value": "203.0.113.0/24"}, map[string]any{"value": " 198.51.100.7 "}}}
	})), 201)
	got := r.json(t)["properties"].(map[string]any)
	want := map[string]any{
		"tenantId":                  mgmtTenant,
		"sku":                       map[string]any{"family": "A", "name": "premium"},
		"accessPolicies":            []any{map[string]any{"tenantId": mgmtTenant, "objectId": oidA, "permissions": map[string]any{"keys": []any{"get", "unwrapKey", "wrapKey"}}}},
		"vaultUri":                  mgmtBaseURL + "vaults/kv-Defaults/",
		"enableSoftDelete":          true,
		"softDeleteRetentionInDays": float64(90),
		"enableRbacAuthorization":   false,
		"publicNetworkAccess":       "Disabled",
		"networkAcls":               map[string]any{"bypass": "AzureServices", "defaultAction": "Deny", "ipRules": []any{map[string]any{"value": "203.0.113.0/24"}, map[string]any{"value": "198.51.100.7"}}},
		"provisioningState":         "Succeeded",
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("properties:\n%s\nwant\n%s", gj, wj)
	}
	evs := e.drain()
	kinds := map[string]int{}
	for _, ev := range evs {
		kinds[ev.Kind]++
		if ev.Scope != path || ev.TenantID != mgmtTenant {
			t.Errorf("event %+v: want scope %s", ev, path)
		}
	}
	if kinds[events.AccessPolicyChanged] != 1 || kinds[events.VaultNetworkChanged] != 1 || len(evs) != 2 {
		t.Errorf("creation events %+v, want one AccessPolicyChanged and one VaultNetworkChanged", evs)
	}
}

func TestUpdateRules(t *testing.T) {
	e := newMgmtEnv(t)
	path := mgmtVaultPath(mgmtSub, mgmtGroup, "kv-rules")
	e.must(e.do(mgmtOwner, http.MethodPut, path, vaultJSON(func(p map[string]any) {
		p["softDeleteRetentionInDays"] = 30
		p["enablePurgeProtection"] = true
	})), 201)
	e.drain()
	tests := []struct {
		name    string
		method  string
		body    any
		status  int
		message string
		events  []string
	}{
		{"retention cannot change by PUT", http.MethodPut, vaultJSON(func(p map[string]any) { p["softDeleteRetentionInDays"] = 90 }), 400, "cannot be changed", nil},
		{"retention cannot change by PATCH", http.MethodPatch, map[string]any{"properties": map[string]any{"softDeleteRetentionInDays": 31}}, 400, "it is 30 days", nil},
		{"the same retention is fine", http.MethodPatch, map[string]any{"properties": map[string]any{"softDeleteRetentionInDays": 30}}, 200, "", nil},
		{"purge protection cannot be turned off", http.MethodPatch, map[string]any{"properties": map[string]any{"enablePurgeProtection": false}}, 400, "irreversible", nil},
		{"soft delete cannot be turned off", http.MethodPatch, map[string]any{"properties": map[string]any{"enableSoftDelete": false}}, 400, "cannot be set to false", nil},
		{"location cannot change", http.MethodPut, map[string]any{"location": "eastus", "properties": vaultJSON(nil)["properties"]}, 400, "already exists in location", nil},
		{"PUT without purge protection keeps it", http.MethodPut, vaultJSON(nil), 200, "", nil},
		{"RBAC switch", http.MethodPatch, map[string]any{"properties": map[string]any{"enableRbacAuthorization": true}}, 200, "", []string{events.AccessPolicyChanged, events.VaultChanged}},
		{"firewall", http.MethodPatch, map[string]any{"properties": map[string]any{"networkAcls": map[string]any{"defaultAction": "Deny"}}}, 200, "", []string{events.VaultNetworkChanged}},
		{"tags only", http.MethodPatch, map[string]any{"tags": map[string]string{"env": "prod"}}, 200, "", nil},
		{"access policies by PATCH", http.MethodPatch, map[string]any{"properties": map[string]any{"accessPolicies": []any{policy(oidB, "get")}}}, 200, "", []string{events.AccessPolicyChanged}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(mgmtOwner, tt.method, path, tt.body)
			var msg string
			if r.Status >= 400 {
				_, msg = r.errCode(t)
			}
			if r.Status != tt.status || !strings.Contains(msg, tt.message) {
				t.Fatalf("got %d %s, want %d with %q", r.Status, r.Body, tt.status, tt.message)
			}
			var got []string
			for _, ev := range e.drain() {
				got = append(got, ev.Kind)
			}
			if !reflect.DeepEqual(got, tt.events) {
				t.Errorf("events %v, want %v", got, tt.events)
			}
		})
	}
	p := e.must(e.do(mgmtOwner, http.MethodGet, path, nil), 200).json(t)
	props := p["properties"].(map[string]any)
	if props["enablePurgeProtection"] != true || props["softDeleteRetentionInDays"] != float64(30) || props["enableRbacAuthorization"] != true ||
		p["tags"].(map[string]any)["env"] != "prod" || len(props["accessPolicies"].([]any)) != 1 {
		t.Errorf("after the updates: %v", p)
	}
}

func TestVaultNamesAreGlobal(t *testing.T) {
	e := newMgmtEnv(t)
	e.must(e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub, mgmtGroup, "kv-global"), vaultJSON(nil)), 201)
	for _, p := range []string{mgmtVaultPath(mgmtSub, mgmtGroup2, "kv-global"), mgmtVaultPath(mgmtSub2, mgmtGroup, "KV-GLOBAL")} {
		r := e.do(mgmtOwner, http.MethodPut, p, vaultJSON(nil))
		if code, _ := r.errCode(t); r.Status != 409 || code != "VaultAlreadyExists" {
			t.Errorf("PUT %s: %d %s", p, r.Status, r.Body)
		}
	}
	// The same vault again is an update, whatever the case of its name.
	e.must(e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub, mgmtGroup, "KV-Global"), vaultJSON(nil)), 200)
}

func TestAccessPolicyOperations(t *testing.T) {
	e := newMgmtEnv(t)
	path := mgmtVaultPath(mgmtSub, mgmtGroup, "kv-policies")
	e.must(e.do(mgmtOwner, http.MethodPut, path, vaultJSON(nil)), 201)
	e.drain()
	body := func(ps ...any) map[string]any {
		return map[string]any{"properties": map[string]any{"accessPolicies": ps}}
	}
	type pol struct {
		oid  string
		keys []string
	}
	tests := []struct {
		name   string
		op     string
		body   any
		status int
		want   []pol
		events []string // subjects
	}{
		{"add", "add", body(policy(oidA, "get", "wrapKey")), 200, []pol{{oidA, []string{"get", "wrapKey"}}}, []string{oidA}},
		{"add merges", "add", body(policy(oidA, "unwrapKey")), 200, []pol{{oidA, []string{"get", "unwrapKey", "wrapKey"}}}, []string{oidA}},
		{"add the same again changes nothing", "add", body(policy(oidA, "get")), 200, []pol{{oidA, []string{"get", "unwrapKey", "wrapKey"}}}, nil},
		{"add another principal", "ADD", body(policy(oidB, "list")), 200, []pol{{oidA, []string{"get", "unwrapKey", "wrapKey"}}, {oidB, []string{"list"}}}, []string{oidB}},
		{"remove subtracts", "remove", body(policy(oidA, "wrapKey")), 200, []pol{{oidA, []string{"get", "unwrapKey"}}, {oidB, []string{"list"}}}, []string{oidA}},
		{"remove everything drops the policy", "remove", body(policy(oidB, "all")), 200, []pol{{oidA, []string{"get", "unwrapKey"}}}, []string{oidB}},
		{"replace sets the list", "replace", body(policy(oidB, "get", "wrapKey", "unwrapKey")), 200, []pol{{oidB, []string{"get", "unwrapKey", "wrapKey"}}}, []string{oidA, oidB}},
		{"unknown permission", "add", body(policy(oidA, "teleport")), 400, []pol{{oidB, []string{"get", "unwrapKey", "wrapKey"}}}, nil},
		{"another tenant's principal", "add", body(map[string]any{"tenantId": mgmtOther, "objectId": oidA, "permissions": map[string]any{"keys": []string{"get"}}}), 400, []pol{{oidB, []string{"get", "unwrapKey", "wrapKey"}}}, nil},
		{"unknown operation", "merge", body(policy(oidA, "get")), 400, []pol{{oidB, []string{"get", "unwrapKey", "wrapKey"}}}, nil},
		{"no properties", "add", map[string]any{}, 400, []pol{{oidB, []string{"get", "unwrapKey", "wrapKey"}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(mgmtOwner, http.MethodPut, path+"/accessPolicies/"+tt.op, tt.body)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.status, r.Body)
			}
			v := e.must(e.do(mgmtOwner, http.MethodGet, path, nil), 200).json(t)
			var got []pol
			for _, ap := range v["properties"].(map[string]any)["accessPolicies"].([]any) {
				m := ap.(map[string]any)
				var keys []string
				for _, k := range m["permissions"].(map[string]any)["keys"].([]any) {
					keys = append(keys, k.(string))
				}
				got = append(got, pol{m["objectId"].(string), keys})
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("policies %v, want %v", got, tt.want)
			}
			var subjects []string
			for _, ev := range e.drain() {
				if ev.Kind != events.AccessPolicyChanged || ev.Scope != path {
					t.Errorf("unexpected event %+v", ev)
				}
				subjects = append(subjects, ev.Subject)
			}
			if !reflect.DeepEqual(subjects, tt.events) {
				t.Errorf("events for %v, want %v", subjects, tt.events)
			}
		})
	}
	r := e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub, mgmtGroup, "kv-nowhere")+"/accessPolicies/add", body(policy(oidA, "get")))
	if code, _ := r.errCode(t); r.Status != 404 || code != "ResourceNotFound" {
		t.Errorf("policy on a missing vault: %d %s", r.Status, r.Body)
	}
	r = e.do(mgmtReader, http.MethodPut, path+"/accessPolicies/add", body(policy(oidA, "get")))
	if code, _ := r.errCode(t); r.Status != 403 || code != "AuthorizationFailed" {
		t.Errorf("reader adding a policy: %d %s", r.Status, r.Body)
	}
}

func TestSoftDeleteRecoverPurge(t *testing.T) {
	e := newMgmtEnv(t)
	ctx := context.Background()
	path := mgmtVaultPath(mgmtSub, mgmtGroup, "kv-life")
	e.must(e.do(mgmtOwner, http.MethodPut, path, vaultJSON(func(p map[string]any) {
		p["softDeleteRetentionInDays"] = 7
		p["accessPolicies"] = []any{policy(oidA, "get", "wrapKey", "unwrapKey")}
	})), 201)
	if err := e.store.CreateKeyVersion(ctx, &keyhold.KeyVersion{VaultName: "kv-life", Name: "cmk", Version: strings.Repeat("ab", 16), Kty: "RSA", KeyOps: []string{"wrapKey"},
		PublicJWK: json.RawMessage(`{"kty":"RSA"}`), Enabled: true, CreatedAt: e.clock.Now(), UpdatedAt: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	e.drain()
	e.must(e.do(mgmtOwner, http.MethodDelete, path, nil), 200)
	if evs := e.drain(); len(evs) != 1 || evs[0].Kind != events.VaultDeleted || evs[0].Scope != path {
		t.Errorf("delete events %+v", evs)
	}
	e.must(e.do(mgmtOwner, http.MethodGet, path, nil), 404)
	if _, err := e.store.GetKeyVersion(ctx, "kv-life", "cmk", ""); err != nil {
		t.Errorf("the key of a soft-deleted vault must stay: %v", err)
	}

	deletedPath := "/subscriptions/" + mgmtSub + "/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/kv-life"
	d := e.must(e.do(mgmtReader, http.MethodGet, deletedPath, nil), 200).json(t)
	dp := d["properties"].(map[string]any)
	if d["id"] != deletedPath || d["name"] != "kv-life" || d["type"] != DeletedVaultType || dp["vaultId"] != path || dp["location"] != "westeurope" ||
		dp["deletionDate"] != "2026-04-01T09:00:00Z" || dp["scheduledPurgeDate"] != "2026-04-08T09:00:00Z" || dp["purgeProtectionEnabled"] != false {
		t.Errorf("deleted vault %s", mustJSON(d))
	}
	if _, leaked := dp["vault"]; leaked {
		t.Error("the deleted vault shows its stored original")
	}
	e.must(e.do(mgmtReader, http.MethodGet, strings.Replace(deletedPath, "westeurope", "eastus", 1), nil), 404)
	list := e.must(e.do(mgmtReader, http.MethodGet, "/subscriptions/"+mgmtSub+"/providers/Microsoft.KeyVault/deletedVaults", nil), 200).json(t)
	if v := list["value"].([]any); len(v) != 1 || v[0].(map[string]any)["name"] != "kv-life" {
		t.Errorf("deleted list %s", mustJSON(list))
	}
	other := e.must(e.do(mgmtOwner, http.MethodGet, "/subscriptions/"+mgmtSub2+"/providers/Microsoft.KeyVault/deletedVaults", nil), 200).json(t)
	if v := other["value"].([]any); len(v) != 0 {
		t.Errorf("another subscription lists %s", mustJSON(other))
	}

	// The name is held until recovery or purge.
	for _, p := range []string{path, mgmtVaultPath(mgmtSub2, mgmtGroup, "kv-life")} {
		r := e.do(mgmtOwner, http.MethodPut, p, vaultJSON(nil))
		code, msg := r.errCode(t)
		if r.Status != 409 || code != "ConflictError" || msg != "A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault." {
			t.Errorf("PUT %s over a deleted namesake: %d %s", p, r.Status, r.Body)
		}
	}
	r := e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub, mgmtGroup2, "kv-life"), vaultJSON(func(p map[string]any) { p["createMode"] = "recover" }))
	if code, msg := r.errCode(t); r.Status != 409 || code != "ConflictError" || !strings.Contains(msg, path) {
		t.Errorf("recover elsewhere: %d %s", r.Status, r.Body)
	}

	// Recovery brings back the properties; the body's others are ignored.
	v := e.must(e.do(mgmtOwner, http.MethodPut, path, vaultJSON(func(p map[string]any) { p["createMode"] = "recover" })), 201).json(t)
	vp := v["properties"].(map[string]any)
	if vp["softDeleteRetentionInDays"] != float64(7) || len(vp["accessPolicies"].([]any)) != 1 || vp["vaultUri"] != mgmtBaseURL+"vaults/kv-life/" {
		t.Errorf("recovered %s", mustJSON(v))
	}
	if evs := e.drain(); len(evs) != 1 || evs[0].Kind != events.VaultRecovered {
		t.Errorf("recover events %+v", evs)
	}
	e.must(e.do(mgmtOwner, http.MethodGet, deletedPath, nil), 404)
	if _, err := e.store.GetKeyVersion(ctx, "kv-life", "cmk", ""); err != nil {
		t.Errorf("the key of a recovered vault: %v", err)
	}

	// A Key Vault Contributor may delete but not purge.
	e.must(e.do(mgmtOwner, http.MethodDelete, path, nil), 200)
	r = e.do(mgmtKVC, http.MethodPost, deletedPath+"/purge", nil)
	if code, _ := r.errCode(t); r.Status != 403 || code != "AuthorizationFailed" {
		t.Errorf("contributor purge: %d %s", r.Status, r.Body)
	}
	e.drain()
	e.must(e.do(mgmtOwner, http.MethodPost, deletedPath+"/purge", nil), 200)
	if evs := e.drain(); len(evs) != 1 || evs[0].Kind != events.VaultPurged || evs[0].Scope != path || evs[0].TenantID != mgmtTenant {
		t.Errorf("purge events %+v", evs)
	}
	e.must(e.do(mgmtOwner, http.MethodGet, deletedPath, nil), 404)
	e.must(e.do(mgmtOwner, http.MethodPost, deletedPath+"/purge", nil), 404)
	if _, err := e.store.GetKeyVersion(ctx, "kv-life", "cmk", ""); !keyhold.IsNotFound(err) {
		t.Errorf("the key of a purged vault: %v, want not found", err)
	}
	// The name is free again.
	e.must(e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub2, mgmtGroup, "kv-life"), vaultJSON(nil)), 201)
}

func TestPurgeProtection(t *testing.T) {
	e := newMgmtEnv(t)
	path := mgmtVaultPath(mgmtSub, mgmtGroup, "kv-protected")
	e.must(e.do(mgmtOwner, http.MethodPut, path, vaultJSON(func(p map[string]any) { p["enablePurgeProtection"] = true })), 201)
	e.must(e.do(mgmtOwner, http.MethodDelete, path, nil), 200)
	deletedPath := "/subscriptions/" + mgmtSub + "/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/kv-protected"
	r := e.do(mgmtOwner, http.MethodPost, deletedPath+"/purge", nil)
	if code, msg := r.errCode(t); r.Status != 409 || code != "InvalidOperation" || msg != "Operation 'DeletedVaultPurge' is not allowed." {
		t.Errorf("purge under purge protection: %d %s", r.Status, r.Body)
	}
	d := e.must(e.do(mgmtOwner, http.MethodGet, deletedPath, nil), 200).json(t)
	if d["properties"].(map[string]any)["purgeProtectionEnabled"] != true {
		t.Errorf("deleted %s", mustJSON(d))
	}
}

func TestPurgeDueVaults(t *testing.T) {
	e := newMgmtEnv(t)
	ctx := context.Background()
	for _, v := range []struct {
		name string
		days int
	}{{"kv-week", 7}, {"kv-month", 30}} {
		e.must(e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub, mgmtGroup, v.name), vaultJSON(func(p map[string]any) {
			p["softDeleteRetentionInDays"] = v.days
			p["enablePurgeProtection"] = true
		})), 201)
		e.must(e.do(mgmtOwner, http.MethodDelete, mgmtVaultPath(mgmtSub, mgmtGroup, v.name), nil), 200)
	}
	e.drain()
	steps := []struct {
		after time.Duration
		left  []string
	}{
		{6 * 24 * time.Hour, []string{"kv-month", "kv-week"}},
		{24 * time.Hour, []string{"kv-month"}},
		{23 * 24 * time.Hour, nil},
	}
	for _, st := range steps {
		e.clock.Add(st.after)
		if err := e.kv.purgeDueVaults(ctx); err != nil {
			t.Fatal(err)
		}
		list, err := e.store.ListResources(ctx, keyhold.ResourceFilter{Type: DeletedVaultType})
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, r := range list {
			left = append(left, r.Name)
		}
		if !reflect.DeepEqual(left, st.left) {
			t.Errorf("at %s: deleted vaults %v, want %v", e.clock.Now(), left, st.left)
		}
	}
	if evs := e.drain(); len(evs) != 2 || evs[0].Kind != events.VaultPurged || evs[1].Kind != events.VaultPurged {
		t.Errorf("events %+v", evs)
	}
}

func TestCheckNameAvailability(t *testing.T) {
	e := newMgmtEnv(t)
	e.must(e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub, mgmtGroup, "kv-taken"), vaultJSON(nil)), 201)
	e.must(e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub, mgmtGroup, "kv-gone"), vaultJSON(nil)), 201)
	e.must(e.do(mgmtOwner, http.MethodDelete, mgmtVaultPath(mgmtSub, mgmtGroup, "kv-gone"), nil), 200)
	path := "/subscriptions/" + mgmtSub2 + "/providers/Microsoft.KeyVault/checkNameAvailability"
	tests := []struct {
		name, vault, typ string
		status           int
		available        bool
		reason           string
	}{
		{"free", "kv-free", ResourceType, 200, true, ""},
		{"taken in another subscription", "KV-TAKEN", ResourceType, 200, false, "AlreadyExists"},
		{"held by a deleted vault", "kv-gone", "microsoft.keyvault/vaults", 200, false, "AlreadyExists"},
		{"invalid", "k_v", ResourceType, 200, false, "AccountNameInvalid"},
		{"wrong type", "kv-free", "Microsoft.Storage/storageAccounts", 400, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.must(e.do(mgmtOwner, http.MethodPost, path, map[string]any{"name": tt.vault, "type": tt.typ}), tt.status)
			if tt.status != 200 {
				return
			}
			got := r.json(t)
			reason, _ := got["reason"].(string)
			if got["nameAvailable"] != tt.available || reason != tt.reason || !tt.available && got["message"] == "" {
				t.Errorf("got %s", r.Body)
			}
		})
	}
}

func TestReaderCannotWrite(t *testing.T) {
	e := newMgmtEnv(t)
	path := mgmtVaultPath(mgmtSub, mgmtGroup, "kv-read")
	r := e.do(mgmtReader, http.MethodPut, path, vaultJSON(nil))
	if code, _ := r.errCode(t); r.Status != 403 || code != "AuthorizationFailed" {
		t.Errorf("reader PUT: %d %s", r.Status, r.Body)
	}
	e.must(e.do(mgmtOwner, http.MethodPut, path, vaultJSON(nil)), 201)
	e.must(e.do(mgmtReader, http.MethodGet, path, nil), 200)
	for _, m := range []string{http.MethodPatch, http.MethodDelete} {
		if r := e.do(mgmtReader, m, path, map[string]any{"tags": map[string]string{}}); r.Status != 403 {
			t.Errorf("reader %s: %d", m, r.Status)
		}
	}
	// The tenant check belongs to the framework: an app of another tenant
	// sees no subscription. Our own app without a role is refused.
	if r := e.do(mgmtApp, http.MethodGet, path, nil); r.Status != 403 {
		t.Errorf("app without a role GET: %d", r.Status)
	}
}

func TestNetworkACLs(t *testing.T) {
	tests := []struct {
		name string
		in   *NetworkRuleSet
		want *NetworkRuleSet
		err  string
	}{
		{"nil", nil, nil, ""},
		{"defaults", &NetworkRuleSet{}, &NetworkRuleSet{Bypass: "AzureServices", DefaultAction: "Allow"}, ""},
		{"canonical case", &NetworkRuleSet{Bypass: "none", DefaultAction: "DENY"}, &NetworkRuleSet{Bypass: "None", DefaultAction: "Deny"}, ""},
		{"addresses", &NetworkRuleSet{IPRules: []IPRule{{"10.1.2.3"}, {"2001:db8::/32"}, {"2001:DB8::1"}}},
			&NetworkRuleSet{Bypass: "AzureServices", DefaultAction: "Allow", IPRules: []IPRule{{"10.1.2.3"}, {"2001:db8::/32"}, {"2001:db8::1"}}}, ""},
		{"not an address", &NetworkRuleSet{IPRules: []IPRule{{"example.com"}}}, nil, "example.com"},
		{"zone", &NetworkRuleSet{IPRules: []IPRule{{"fe80::1%eth0"}}}, nil, "fe80::1%eth0"},
		{"host bits", &NetworkRuleSet{IPRules: []IPRule{{"192.168.1.1/24"}}}, nil, "192.168.1.0/24"},
		{"subnet rule", &NetworkRuleSet{VirtualNetworkRules: []VirtualNetworkRule{{ID: "/subscriptions/" + mgmtSub + "/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s"}}},
			&NetworkRuleSet{Bypass: "AzureServices", DefaultAction: "Allow", VirtualNetworkRules: []VirtualNetworkRule{{ID: "/subscriptions/" + mgmtSub + "/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/s"}}}, ""},
		{"vnet is not a subnet", &NetworkRuleSet{VirtualNetworkRules: []VirtualNetworkRule{{ID: "/subscriptions/" + mgmtSub + "/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"}}}, nil, "subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkNetworkACLs(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(keyhold.ErrorMessage(err), tt.err) || keyhold.ErrorCode(err) != keyhold.EInvalid {
					t.Fatalf("error %v, want one naming %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tt.in, tt.want) {
				t.Errorf("got %+v, want %+v", tt.in, tt.want)
			}
		})
	}
}

func TestPolicyArithmetic(t *testing.T) {
	ap := func(oid string, keys ...string) AccessPolicy {
		return AccessPolicy{TenantID: mgmtTenant, ObjectID: oid, Permissions: Permissions{Keys: keys}}
	}
	tests := []struct {
		name string
		got  []AccessPolicy
		want []AccessPolicy
	}{
		{"add to nothing", addPolicy(nil, ap(oidA, "get")), []AccessPolicy{ap(oidA, "get")}},
		{"add merges in canonical order", addPolicy([]AccessPolicy{ap(oidA, "wrapKey")}, ap(oidA, "get")), []AccessPolicy{ap(oidA, "get", "wrapKey")}},
		{"add keeps others", addPolicy([]AccessPolicy{ap(oidA, "get")}, ap(oidB, "list")), []AccessPolicy{ap(oidA, "get"), ap(oidB, "list")}},
		{"remove some", removePolicy([]AccessPolicy{ap(oidA, "get", "wrapKey")}, ap(oidA, "wrapKey")), []AccessPolicy{ap(oidA, "get")}},
		{"remove all drops", removePolicy([]AccessPolicy{ap(oidA, "get"), ap(oidB, "get")}, ap(oidA, "get")), []AccessPolicy{ap(oidB, "get")}},
		{"remove of an absent principal", removePolicy([]AccessPolicy{ap(oidA, "get")}, ap(oidB, "get")), []AccessPolicy{ap(oidA, "get")}},
		{"remove 'all'", removePolicy([]AccessPolicy{ap(oidA, "get", "list")}, ap(oidA, "all")), []AccessPolicy{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %+v, want %+v", tt.got, tt.want)
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestGroupDeletionSoftDeletesItsVaults(t *testing.T) {
	e := newMgmtEnv(t)
	e.must(e.do(mgmtOwner, http.MethodPut, mgmtVaultPath(mgmtSub, mgmtGroup2, "kv-in-group"), vaultJSON(nil)), 201)
	e.drain()
	e.must(e.do(mgmtOwner, http.MethodDelete, "/subscriptions/"+mgmtSub+"/resourceGroups/"+mgmtGroup2+"?api-version=2021-04-01", nil), 202)
	d := e.must(e.do(mgmtOwner, http.MethodGet, "/subscriptions/"+mgmtSub+"/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/kv-in-group", nil), 200).json(t)
	if d["properties"].(map[string]any)["vaultId"] != mgmtVaultPath(mgmtSub, mgmtGroup2, "kv-in-group") {
		t.Errorf("deleted vault %s", mustJSON(d))
	}
	if evs := e.drain(); len(evs) != 1 || evs[0].Kind != events.VaultDeleted {
		t.Errorf("events %+v", evs)
	}
}
