package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// version returns the nth version id: 32 lowercase hex characters, as the
// Key Vault makes them.
func version(n int) string { return fmt.Sprintf("%032x", 0xabc000+n) }

// keyVersion returns a complete RSA key version with every field set.
func keyVersion(vault, name string, n int) *keyhold.KeyVersion {
	at := t0.Add(time.Duration(n) * time.Minute)
	return &keyhold.KeyVersion{
		VaultName: vault, Name: name, Version: version(n), Kty: "RSA", KeySize: 2048,
		KeyOps:        []string{"wrapKey", "unwrapKey"},
		PublicJWK:     json.RawMessage(`{"kty":"RSA","n":"sXch","e":"AQAB"}`),
		SealedPrivate: []byte{0x00, 0x01, 0xfe, 0xff, 0x00, byte(n), 0x80, '\'', '"', '\\'},
		Enabled:       true, NotBefore: at, Expires: at.Add(365 * 24 * time.Hour),
		Tags: map[string]string{"n": fmt.Sprint(n)}, CreatedAt: at, UpdatedAt: at,
	}
}

// withNames returns a copy of v with the vault and key names a store
// reports: those the key was first created with.
func withNames(v *keyhold.KeyVersion, vault, name string) *keyhold.KeyVersion {
	c := *v
	c.VaultName, c.Name = vault, name
	return &c
}

func versions(list []*keyhold.KeyVersion) []string {
	out := []string{}
	for _, v := range list {
		out = append(out, v.Version)
	}
	return out
}

func testKeyVersions(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	v1 := keyVersion("Vault-One", "Key-A", 1)
	must(t, s.CreateKeyVersion(ctx, v1))
	// A later version in other case: the key keeps its first names.
	v2 := keyVersion("VAULT-ONE", "key-a", 2)
	v2.Kty, v2.KeySize, v2.Curve = "EC-HSM", 0, "P-256"
	v2.KeyOps, v2.Tags = nil, nil
	v2.NotBefore, v2.Expires = time.Time{}, time.Time{}
	v2.SealedPrivate = nil
	v2.Exportable, v2.Managed, v2.Enabled = true, true, false
	must(t, s.CreateKeyVersion(ctx, v2))
	// Same key name in another vault is another key.
	other := keyVersion("vault-two", "key-a", 3)
	must(t, s.CreateKeyVersion(ctx, other))

	tests := []struct {
		name, vault, key, version string
		want                      *keyhold.KeyVersion
	}{
		{"first version", "vault-one", "KEY-A", strings.ToUpper(v1.Version), v1},
		{"second version, zero times and nil slices", "Vault-One", "Key-A", v2.Version, withNames(v2, "Vault-One", "Key-A")},
		{"latest", "vault-one", "key-a", "", withNames(v2, "Vault-One", "Key-A")},
		{"other vault", "VAULT-TWO", "Key-A", "", other},
	}
	for _, tt := range tests {
		got, err := s.GetKeyVersion(ctx, tt.vault, tt.key, tt.version)
		must(t, err)
		same(t, "GetKeyVersion("+tt.name+")", got, tt.want)
	}
	got, err := s.GetKeyVersion(ctx, "vault-one", "key-a", v2.Version)
	must(t, err)
	if !got.NotBefore.IsZero() || !got.Expires.IsZero() || got.SealedPrivate != nil || got.KeyOps != nil || got.Tags != nil {
		t.Errorf("unset fields came back set: nbf %v exp %v sealed %v ops %v tags %v",
			got.NotBefore, got.Expires, got.SealedPrivate, got.KeyOps, got.Tags)
	}
	got, err = s.GetKeyVersion(ctx, "vault-one", "key-a", v1.Version)
	must(t, err)
	if string(got.SealedPrivate) != string(v1.SealedPrivate) {
		t.Errorf("sealed bytes: got %x, want %x", got.SealedPrivate, v1.SealedPrivate)
	}

	for _, tt := range []struct{ name, vault, key, version string }{
		{"missing key", "vault-one", "nope", ""},
		{"missing version", "vault-one", "key-a", version(99)},
		{"version of another key", "vault-one", "key-a", other.Version},
		{"missing vault", "vault-nine", "key-a", ""},
	} {
		_, err := s.GetKeyVersion(ctx, tt.vault, tt.key, tt.version)
		wantCode(t, "GetKeyVersion("+tt.name+")", err, keyhold.ENotFound)
	}

	dup := keyVersion("vault-one", "KEY-A", 1)
	dup.Version = strings.ToUpper(dup.Version)
	wantCode(t, "CreateKeyVersion(version taken, other case)", s.CreateKeyVersion(ctx, dup), keyhold.EConflict)
	bad := func(f func(v *keyhold.KeyVersion)) *keyhold.KeyVersion {
		v := keyVersion("vault-one", "key-b", 10)
		f(v)
		return v
	}
	for name, v := range map[string]*keyhold.KeyVersion{
		"no vault":     bad(func(v *keyhold.KeyVersion) { v.VaultName = "" }),
		"no name":      bad(func(v *keyhold.KeyVersion) { v.Name = "" }),
		"no version":   bad(func(v *keyhold.KeyVersion) { v.Version = "" }),
		"no kty":       bad(func(v *keyhold.KeyVersion) { v.Kty = "" }),
		"bad JWK":      bad(func(v *keyhold.KeyVersion) { v.PublicJWK = json.RawMessage(`{"kty":`) }),
		"time too far": bad(func(v *keyhold.KeyVersion) { v.Expires = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }),
	} {
		wantCode(t, "CreateKeyVersion("+name+")", s.CreateKeyVersion(ctx, v), keyhold.EInvalid)
	}
	_, err = s.GetKeyVersion(ctx, "vault-one", "key-b", "")
	wantCode(t, "GetKeyVersion(refused key)", err, keyhold.ENotFound)
}

func testUpdateKeyVersion(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	v1 := keyVersion("v", "Key", 1)
	v2 := keyVersion("v", "Key", 2)
	must(t, s.CreateKeyVersion(ctx, v1))
	must(t, s.CreateKeyVersion(ctx, v2))

	// Every mutable field changes; the others in the argument are ignored.
	upd := *v1
	upd.Name, upd.Version = "KEY", strings.ToUpper(v1.Version)
	upd.KeyOps = []string{"sign"}
	upd.Enabled, upd.Exportable = false, true
	upd.NotBefore, upd.Expires = time.Time{}, t0.Add(time.Hour)
	upd.Tags = map[string]string{"changed": "yes"}
	upd.UpdatedAt = t0.Add(2 * time.Hour)
	upd.Kty, upd.KeySize, upd.SealedPrivate, upd.Managed = "oct", 1, []byte("ignored"), true
	upd.CreatedAt = t0.Add(-time.Hour)
	must(t, s.UpdateKeyVersion(ctx, &upd))

	want := *v1
	want.KeyOps, want.Enabled, want.Exportable = upd.KeyOps, false, true
	want.NotBefore, want.Expires, want.Tags, want.UpdatedAt = time.Time{}, upd.Expires, upd.Tags, upd.UpdatedAt
	got, err := s.GetKeyVersion(ctx, "v", "key", v1.Version)
	must(t, err)
	same(t, "GetKeyVersion after update", got, &want)
	got, err = s.GetKeyVersion(ctx, "v", "key", v2.Version)
	must(t, err)
	same(t, "the other version", got, v2)

	missing := *v1
	missing.Version = version(99)
	wantCode(t, "UpdateKeyVersion(missing version)", s.UpdateKeyVersion(ctx, &missing), keyhold.ENotFound)
	missing = *v1
	missing.Name = "other"
	wantCode(t, "UpdateKeyVersion(missing key)", s.UpdateKeyVersion(ctx, &missing), keyhold.ENotFound)
	_, err = s.DeleteKey(ctx, "v", "key", t0, t0.Add(time.Hour))
	must(t, err)
	wantCode(t, "UpdateKeyVersion(deleted key)", s.UpdateKeyVersion(ctx, &upd), keyhold.ENotFound)
}

// testListKeys pages through 30 keys, a few deleted, in names of mixed case.
func testListKeys(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var want []*keyhold.KeyVersion
	for i := range 30 {
		name := fmt.Sprintf("key-%02d", i)
		if i%3 == 0 {
			name = strings.ToUpper(name)
		}
		must(t, s.CreateKeyVersion(ctx, keyVersion("vault", name, 100*i)))
		latest := keyVersion("vault", name, 100*i+1)
		must(t, s.CreateKeyVersion(ctx, latest))
		if i%7 == 3 {
			_, err := s.DeleteKey(ctx, "VAULT", name, t0, t0)
			must(t, err)
			continue
		}
		want = append(want, latest)
	}
	// Another vault's keys sort among these but are not listed.
	must(t, s.CreateKeyVersion(ctx, keyVersion("vault-2", "key-05a", 9999)))
	// Underscore sorts after the digits and the hyphen: order is by bytes of
	// the lowered name, in every engine.
	extra := keyVersion("vault", "key_z", 3000)
	must(t, s.CreateKeyVersion(ctx, extra))
	want = append(want, extra)
	sort.Slice(want, func(i, j int) bool { return strings.ToLower(want[i].Name) < strings.ToLower(want[j].Name) })

	all, err := s.ListKeys(ctx, "Vault", "", 0)
	must(t, err)
	same(t, "ListKeys(all)", all, want)

	for _, limit := range []int{1, 7, 25, 26, 100} {
		var got []*keyhold.KeyVersion
		after := ""
		for pages := 0; ; pages++ {
			if pages > 40 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			page, err := s.ListKeys(ctx, "vault", after, limit)
			must(t, err)
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			got = append(got, page...)
			if len(page) < limit {
				break
			}
			// Cursors compare case-insensitively.
			after = strings.ToUpper(page[len(page)-1].Name)
		}
		same(t, fmt.Sprintf("ListKeys paged by %d", limit), got, want)
	}
	var wantAfter []*keyhold.KeyVersion
	for _, v := range want {
		if strings.ToLower(v.Name) > "key-1" && len(wantAfter) < 2 {
			wantAfter = append(wantAfter, v)
		}
	}
	page, err := s.ListKeys(ctx, "vault", "KEY-1", 2)
	must(t, err)
	same(t, "ListKeys(after a name that is no key)", versions(page), versions(wantAfter))
	page, err = s.ListKeys(ctx, "no-vault", "", 0)
	must(t, err)
	same(t, "ListKeys(unknown vault)", len(page), 0)
	_, err = s.ListKeys(ctx, "vault", "", -1)
	wantCode(t, "ListKeys(negative limit)", err, keyhold.EInvalid)
}

func testListKeyVersions(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var want []*keyhold.KeyVersion
	// Version ids in falling order, so that creation order is not id order.
	for i := range 12 {
		v := keyVersion("vault", "Key", 50-i)
		must(t, s.CreateKeyVersion(ctx, v))
		want = append(want, v)
		// A neighbour key's versions interleave with these.
		must(t, s.CreateKeyVersion(ctx, keyVersion("vault", "key2", 100+i)))
	}
	all, err := s.ListKeyVersions(ctx, "VAULT", "KEY", "", 0)
	must(t, err)
	same(t, "ListKeyVersions(all)", all, want)

	for _, limit := range []int{1, 5, 12, 13} {
		var got []*keyhold.KeyVersion
		after := ""
		for pages := 0; ; pages++ {
			if pages > 20 {
				t.Fatalf("limit %d: paging does not end", limit)
			}
			page, err := s.ListKeyVersions(ctx, "vault", "key", after, limit)
			must(t, err)
			if len(page) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(page))
			}
			got = append(got, page...)
			if len(page) < limit {
				break
			}
			after = strings.ToUpper(page[len(page)-1].Version)
		}
		same(t, fmt.Sprintf("ListKeyVersions paged by %d", limit), versions(got), versions(want))
	}
	page, err := s.ListKeyVersions(ctx, "vault", "key", want[11].Version, 5)
	must(t, err)
	same(t, "ListKeyVersions(after the last)", len(page), 0)

	_, err = s.ListKeyVersions(ctx, "vault", "nope", "", 0)
	wantCode(t, "ListKeyVersions(missing key)", err, keyhold.ENotFound)
	_, err = s.ListKeyVersions(ctx, "vault", "key", version(100), 0)
	wantCode(t, "ListKeyVersions(cursor of another key)", err, keyhold.EInvalid)
	_, err = s.ListKeyVersions(ctx, "vault", "key", "", -5)
	wantCode(t, "ListKeyVersions(negative limit)", err, keyhold.EInvalid)
	_, err = s.DeleteKey(ctx, "vault", "key", t0, t0)
	must(t, err)
	_, err = s.ListKeyVersions(ctx, "vault", "key", "", 0)
	wantCode(t, "ListKeyVersions(deleted key)", err, keyhold.ENotFound)
}

// testDeleteRecoverPurge walks a key through soft delete, recovery, delete
// again and purge, and checks every method's view at each step.
func testDeleteRecoverPurge(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	v1, v2 := keyVersion("Vault", "Key", 1), keyVersion("Vault", "Key", 2)
	must(t, s.CreateKeyVersion(ctx, v1))
	must(t, s.CreateKeyVersion(ctx, v2))
	must(t, s.PutKeyRotationPolicy(ctx, &keyhold.KeyRotationPolicy{VaultName: "vault", Name: "key",
		Policy: json.RawMessage(`{"lifetimeActions":[]}`), CreatedAt: t0, UpdatedAt: t0}))
	neighbour := keyVersion("vault", "neighbour", 3)
	must(t, s.CreateKeyVersion(ctx, neighbour))

	_, err := s.DeleteKey(ctx, "vault", "key", time.Time{}, t0)
	wantCode(t, "DeleteKey(zero time)", err, keyhold.EInvalid)
	deletedAt, purgeAt := t0.Add(time.Hour), t0.Add(90*24*time.Hour)
	dk, err := s.DeleteKey(ctx, "VAULT", "KEY", deletedAt, purgeAt)
	must(t, err)
	wantDK := &keyhold.DeletedKey{Latest: v2, DeletedAt: deletedAt, ScheduledPurgeAt: purgeAt}
	same(t, "DeleteKey", dk, wantDK)

	_, err = s.GetKeyVersion(ctx, "vault", "key", "")
	wantCode(t, "GetKeyVersion(deleted, latest)", err, keyhold.ENotFound)
	_, err = s.GetKeyVersion(ctx, "vault", "key", v1.Version)
	wantCode(t, "GetKeyVersion(deleted, version)", err, keyhold.ENotFound)
	list, err := s.ListKeys(ctx, "vault", "", 0)
	must(t, err)
	same(t, "ListKeys without the deleted key", list, []*keyhold.KeyVersion{neighbour})
	got, err := s.GetDeletedKey(ctx, "vault", "key")
	must(t, err)
	same(t, "GetDeletedKey", got, wantDK)
	_, err = s.GetDeletedKey(ctx, "vault", "neighbour")
	wantCode(t, "GetDeletedKey(live key)", err, keyhold.ENotFound)
	_, err = s.GetKeyRotationPolicy(ctx, "vault", "key")
	wantCode(t, "GetKeyRotationPolicy(deleted key)", err, keyhold.ENotFound)

	err = s.CreateKeyVersion(ctx, keyVersion("vault", "KEY", 4))
	wantCode(t, "CreateKeyVersion(deleted key)", err, keyhold.EConflict)
	if got, want := keyhold.ErrorMessage(err), `sqlstore: key "KEY" is deleted but recoverable`; got != want {
		t.Errorf("CreateKeyVersion(deleted key) message: got %q, want %q", got, want)
	}
	_, err = s.DeleteKey(ctx, "vault", "key", deletedAt, purgeAt)
	wantCode(t, "DeleteKey(again)", err, keyhold.ENotFound)
	_, err = s.DeleteKey(ctx, "vault", "nope", deletedAt, purgeAt)
	wantCode(t, "DeleteKey(missing)", err, keyhold.ENotFound)
	wantCode(t, "PurgeKey(live key)", s.PurgeKey(ctx, "vault", "neighbour"), keyhold.EConflict)
	wantCode(t, "PurgeKey(missing)", s.PurgeKey(ctx, "vault", "nope"), keyhold.ENotFound)
	wantCode(t, "RecoverKey(live key)", s.RecoverKey(ctx, "vault", "neighbour"), keyhold.ENotFound)
	wantCode(t, "RecoverKey(missing)", s.RecoverKey(ctx, "vault", "nope"), keyhold.ENotFound)

	// Recovery brings back every version and the rotation policy.
	must(t, s.RecoverKey(ctx, "vault", "kEY"))
	all, err := s.ListKeyVersions(ctx, "vault", "key", "", 0)
	must(t, err)
	same(t, "ListKeyVersions after recovery", all, []*keyhold.KeyVersion{v1, v2})
	_, err = s.GetKeyRotationPolicy(ctx, "vault", "key")
	must(t, err)
	_, err = s.GetDeletedKey(ctx, "vault", "key")
	wantCode(t, "GetDeletedKey(recovered)", err, keyhold.ENotFound)
	wantCode(t, "RecoverKey(again)", s.RecoverKey(ctx, "vault", "key"), keyhold.ENotFound)

	_, err = s.DeleteKey(ctx, "vault", "key", deletedAt, purgeAt)
	must(t, err)
	must(t, s.PurgeKey(ctx, "Vault", "Key"))
	_, err = s.GetDeletedKey(ctx, "vault", "key")
	wantCode(t, "GetDeletedKey(purged)", err, keyhold.ENotFound)
	wantCode(t, "PurgeKey(again)", s.PurgeKey(ctx, "vault", "key"), keyhold.ENotFound)
	wantCode(t, "RecoverKey(purged)", s.RecoverKey(ctx, "vault", "key"), keyhold.ENotFound)
	deleted, err := s.ListDeletedKeys(ctx, "vault", "", 0)
	must(t, err)
	same(t, "ListDeletedKeys after purge", len(deleted), 0)

	// The name is free again: a new key, with none of the old versions or
	// the old policy, and the case of its new first version.
	fresh := keyVersion("vault", "KEY", 5)
	must(t, s.CreateKeyVersion(ctx, fresh))
	all, err = s.ListKeyVersions(ctx, "vault", "key", "", 0)
	must(t, err)
	same(t, "ListKeyVersions after purge and create", all, []*keyhold.KeyVersion{fresh})
	_, err = s.GetKeyRotationPolicy(ctx, "vault", "key")
	wantCode(t, "GetKeyRotationPolicy(purged key's)", err, keyhold.ENotFound)
	_, err = s.GetKeyVersion(ctx, "vault", "key", v1.Version)
	wantCode(t, "GetKeyVersion(purged version)", err, keyhold.ENotFound)
	// The old version id is free too.
	must(t, s.CreateKeyVersion(ctx, keyVersion("vault", "key", 1)))
	got2, err := s.GetKeyVersion(ctx, "vault", "neighbour", "")
	must(t, err)
	same(t, "neighbour untouched", got2, neighbour)
}

func testListDeletedKeys(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	var want []*keyhold.DeletedKey
	for i := range 30 {
		name := fmt.Sprintf("Key-%02d", i)
		if i%2 == 0 {
			name = strings.ToLower(name)
		}
		must(t, s.CreateKeyVersion(ctx, keyVersion("vault", name, 10*i)))
		latest := keyVersion("vault", name, 10*i+1)
		must(t, s.CreateKeyVersion(ctx, latest))
		if i%5 == 4 {
			continue // stays live
		}
		at := t0.Add(time.Duration(i) * time.Second)
		dk, err := s.DeleteKey(ctx, "vault", name, at, at.Add(time.Hour))
		must(t, err)
		want = append(want, dk)
	}
	// A recovered key is live again, and another vault's deleted keys are
	// not this vault's.
	_, err := s.DeleteKey(ctx, "vault", "key-04", t0, t0)
	must(t, err)
	must(t, s.RecoverKey(ctx, "vault", "key-04"))
	must(t, s.CreateKeyVersion(ctx, keyVersion("other", "key-01", 999)))
	_, err = s.DeleteKey(ctx, "other", "key-01", t0, t0)
	must(t, err)

	all, err := s.ListDeletedKeys(ctx, "VAULT", "", 0)
	must(t, err)
	same(t, "ListDeletedKeys(all)", all, want)
	var got []*keyhold.DeletedKey
	after := ""
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("paging does not end")
		}
		page, err := s.ListDeletedKeys(ctx, "vault", after, 4)
		must(t, err)
		got = append(got, page...)
		if len(page) < 4 {
			break
		}
		after = page[len(page)-1].Latest.Name
	}
	same(t, "ListDeletedKeys paged by 4", got, want)
	_, err = s.ListDeletedKeys(ctx, "vault", "", -1)
	wantCode(t, "ListDeletedKeys(negative limit)", err, keyhold.EInvalid)
}

func testPurgeVaultKeys(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	policy := json.RawMessage(`{"attributes":{"expiryTime":"P90D"}}`)
	for _, vault := range []string{"Doomed", "kept"} {
		for i, name := range []string{"a", "b", "c"} {
			must(t, s.CreateKeyVersion(ctx, keyVersion(vault, name, i)))
			must(t, s.PutKeyRotationPolicy(ctx, &keyhold.KeyRotationPolicy{VaultName: vault, Name: name,
				Policy: policy, CreatedAt: t0, UpdatedAt: t0}))
		}
		_, err := s.DeleteKey(ctx, vault, "c", t0, t0)
		must(t, err)
	}
	must(t, s.PurgeVaultKeys(ctx, "DOOMED"))
	must(t, s.PurgeVaultKeys(ctx, "never-had-keys"))

	list, err := s.ListKeys(ctx, "doomed", "", 0)
	must(t, err)
	same(t, "ListKeys(purged vault)", len(list), 0)
	deleted, err := s.ListDeletedKeys(ctx, "doomed", "", 0)
	must(t, err)
	same(t, "ListDeletedKeys(purged vault)", len(deleted), 0)
	policies, err := s.ListKeyRotationPolicies(ctx)
	must(t, err)
	var names []string
	for _, p := range policies {
		names = append(names, p.VaultName+"/"+p.Name)
	}
	same(t, "ListKeyRotationPolicies after vault purge", names, []string{"kept/a", "kept/b"})
	list, err = s.ListKeys(ctx, "kept", "", 0)
	must(t, err)
	same(t, "ListKeys(other vault)", len(list), 2)
	_, err = s.GetDeletedKey(ctx, "kept", "c")
	must(t, err)
	// The purged vault's names are free: the same version id is accepted.
	must(t, s.CreateKeyVersion(ctx, keyVersion("doomed", "c", 2)))
}

func testKeyRotationPolicies(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	p := &keyhold.KeyRotationPolicy{VaultName: "vault", Name: "key",
		Policy:    json.RawMessage(`{"lifetimeActions":[{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Rotate"}}]}`),
		CreatedAt: t0, UpdatedAt: t0}
	wantCode(t, "PutKeyRotationPolicy(missing key)", s.PutKeyRotationPolicy(ctx, p), keyhold.ENotFound)
	must(t, s.CreateKeyVersion(ctx, keyVersion("Vault", "Key", 1)))
	_, err := s.GetKeyRotationPolicy(ctx, "vault", "key")
	wantCode(t, "GetKeyRotationPolicy(none yet)", err, keyhold.ENotFound)
	must(t, s.PutKeyRotationPolicy(ctx, p))
	got, err := s.GetKeyRotationPolicy(ctx, "VAULT", "KEY")
	must(t, err)
	want := *p
	want.VaultName, want.Name = "Vault", "Key" // the key's stored names
	same(t, "GetKeyRotationPolicy", got, &want)

	// A second put replaces the policy and keeps the creation time.
	p2 := &keyhold.KeyRotationPolicy{VaultName: "vault", Name: "KEY", Policy: json.RawMessage(`{"lifetimeActions":[]}`),
		CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)}
	must(t, s.PutKeyRotationPolicy(ctx, p2))
	got, err = s.GetKeyRotationPolicy(ctx, "vault", "key")
	must(t, err)
	want = keyhold.KeyRotationPolicy{VaultName: "Vault", Name: "Key", Policy: p2.Policy, CreatedAt: t0, UpdatedAt: p2.UpdatedAt}
	same(t, "GetKeyRotationPolicy after replace", got, &want)

	for name, bad := range map[string]json.RawMessage{"empty": nil, "not JSON": json.RawMessage(`{"a":`)} {
		wantCode(t, "PutKeyRotationPolicy("+name+")", s.PutKeyRotationPolicy(ctx, &keyhold.KeyRotationPolicy{
			VaultName: "vault", Name: "key", Policy: bad}), keyhold.EInvalid)
	}

	must(t, s.CreateKeyVersion(ctx, keyVersion("a-vault", "z", 2)))
	must(t, s.PutKeyRotationPolicy(ctx, &keyhold.KeyRotationPolicy{VaultName: "a-vault", Name: "z", Policy: p.Policy,
		CreatedAt: t0, UpdatedAt: t0}))
	must(t, s.CreateKeyVersion(ctx, keyVersion("vault", "gone", 3)))
	must(t, s.PutKeyRotationPolicy(ctx, &keyhold.KeyRotationPolicy{VaultName: "vault", Name: "gone", Policy: p.Policy,
		CreatedAt: t0, UpdatedAt: t0}))
	_, err = s.DeleteKey(ctx, "vault", "gone", t0, t0)
	must(t, err)
	wantCode(t, "PutKeyRotationPolicy(deleted key)", s.PutKeyRotationPolicy(ctx, &keyhold.KeyRotationPolicy{
		VaultName: "vault", Name: "gone", Policy: p.Policy}), keyhold.ENotFound)

	list, err := s.ListKeyRotationPolicies(ctx)
	must(t, err)
	same(t, "ListKeyRotationPolicies", list, []*keyhold.KeyRotationPolicy{
		{VaultName: "a-vault", Name: "z", Policy: p.Policy, CreatedAt: t0, UpdatedAt: t0}, &want})
	must(t, s.RecoverKey(ctx, "vault", "gone"))
	list, err = s.ListKeyRotationPolicies(ctx)
	must(t, err)
	same(t, "ListKeyRotationPolicies after recovery", len(list), 3)
}

// testKeyVersionsConcurrent adds versions to one new key from several
// goroutines at once: each succeeds once, and the latest is the last listed.
func testKeyVersionsConcurrent(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateKeyVersion(ctx, keyVersion("vault", "Raced", i))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("CreateKeyVersion #%d: %v", i, err)
		}
	}
	all, err := s.ListKeyVersions(ctx, "vault", "raced", "", 0)
	must(t, err)
	if len(all) != n {
		t.Fatalf("got %d versions, want %d", len(all), n)
	}
	latest, err := s.GetKeyVersion(ctx, "vault", "raced", "")
	must(t, err)
	same(t, "latest is the last created", latest.Version, all[n-1].Version)
	list, err := s.ListKeys(ctx, "vault", "", 0)
	must(t, err)
	same(t, "ListKeys holds the key once", versions(list), []string{latest.Version})
}

// testKeysInTx creates a key and its policy in a transaction that fails:
// neither remains.
func testKeysInTx(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	err := s.InTx(ctx, func(tx keyhold.Store) error {
		must(t, tx.CreateKeyVersion(ctx, keyVersion("vault", "key", 1)))
		must(t, tx.PutKeyRotationPolicy(ctx, &keyhold.KeyRotationPolicy{VaultName: "vault", Name: "key",
			Policy: json.RawMessage(`{}`), CreatedAt: t0, UpdatedAt: t0}))
		if _, err := tx.GetKeyVersion(ctx, "vault", "key", ""); err != nil {
			return err
		}
		// A conflict inside the transaction does not spoil it.
		wantCode(t, "CreateKeyVersion(taken, in tx)", tx.CreateKeyVersion(ctx, keyVersion("vault", "key", 1)), keyhold.EConflict)
		if _, err := tx.GetKeyVersion(ctx, "vault", "key", ""); err != nil {
			return err
		}
		return keyhold.Errorf(keyhold.EInvalid, "stop")
	})
	wantCode(t, "InTx", err, keyhold.EInvalid)
	_, err = s.GetKeyVersion(ctx, "vault", "key", "")
	wantCode(t, "GetKeyVersion after rollback", err, keyhold.ENotFound)
	list, err := s.ListKeyRotationPolicies(ctx)
	must(t, err)
	same(t, "policies after rollback", len(list), 0)
}
