package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
)

// TestBYOKMigration: an environment under a tenant-uploaded key (legacy
// BYOK) moves to a customer-managed key with no downtime, then shows
// CustomerViaMicrosoft and cannot be reverted during the no-revert window.
func TestBYOKMigration(t *testing.T) {
	e := start(t, "")
	e.createGroup(t, "rg-byok")
	e.registerPowerPlatform(t)
	policy := e.setupCMK(t, "rg-byok", "kv-byok", "ep-byok")
	ppID, ppUPN := e.CreateUser("ppadmin", "Pp-admin-password-42!", keyhold.RolePowerPlatformAdministrator)
	e.assignRole(t, policy.policyID, readerRoleID, ppID)
	bap := e.Token(e.User(ppUPN, "Pp-admin-password-42!"), identity.AudiencePlatform)

	envID := e.createEnvironment(t, bap, "Legacy BYOK", "Production")
	data := "/environments/" + envID + "/api/data/v9.2/"
	if resp, b := e.Do("POST", data+"tables", bap, map[string]any{"name": "contact", "columns": []map[string]any{{"name": "name", "type": "String"}}}, nil); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create table: %d %s", resp.StatusCode, b)
	}
	var row map[string]any
	if resp, b := e.Do("POST", data+"contact", bap, map[string]any{"name": "Ada"}, &row); resp.StatusCode != http.StatusCreated {
		t.Fatalf("create row: %d %s", resp.StatusCode, b)
	}

	// The tenant uploads its protection key; only an administrator may.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(i *big.Int) string { return base64.RawURLEncoding.EncodeToString(i.Bytes()) }
	jwk := map[string]any{"kty": "RSA", "n": b64(key.N), "e": b64(big.NewInt(int64(key.E))), "d": b64(key.D),
		"p": b64(key.Primes[0]), "q": b64(key.Primes[1])}
	_, plainUPN := e.CreateUser("plain", "Plain-user-password-42!")
	plain := e.Token(e.User(plainUPN, "Plain-user-password-42!"), identity.AudiencePlatform)
	if resp, b := e.Do("POST", "/keyhold/v1/tenantProtectionKeys", plain, map[string]any{"key": jwk}, nil); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upload by a plain user: %d %s, want 403", resp.StatusCode, b)
	}
	var uploaded struct {
		Ref keyhold.WrapRef `json:"ref"`
	}
	resp, b := e.Do("POST", "/keyhold/v1/tenantProtectionKeys", bap, map[string]any{"key": jwk}, &uploaded)
	if resp.StatusCode != http.StatusCreated || uploaded.Ref.Kind != keyhold.WrapBYOK || strings.Contains(string(b), b64(key.D)) {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.Do("POST", "/keyhold/v1/environments/"+envID+"/byok", bap, map[string]any{"ref": uploaded.Ref}, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("put the environment under BYOK: %d %s", resp.StatusCode, b)
	}

	// Migrate: link to the policy. CustomerViaMicrosoft, the row intact.
	e.lifecycle(t, bap, envID, "link", policy.systemID)
	var view struct {
		Properties struct {
			ProtectionStatus struct{ KeyManagedBy string } `json:"protectionStatus"`
		} `json:"properties"`
	}
	e.Do("GET", bapEnvs+"/"+envID+"?api-version=2021-04-01", bap, nil, &view)
	if got := view.Properties.ProtectionStatus.KeyManagedBy; got != keyhold.KeyManagedByCustomerViaMicrosoft {
		t.Fatalf("keyManagedBy after migration = %q, want CustomerViaMicrosoft", got)
	}
	var got map[string]any
	if resp, b := e.Do("GET", data+"contact("+row["contactid"].(string)+")", bap, nil, &got); resp.StatusCode != http.StatusOK || got["name"] != "Ada" {
		t.Fatalf("row after migration: %d %s", resp.StatusCode, b)
	}

	// No revert during the no-revert window.
	resp, b = e.Do("POST", bapEnvs+"/"+envID+"/enterprisePolicies/Encryption/unlink?api-version=2019-10-01", bap,
		map[string]string{"SystemId": policy.systemID}, nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "BYOKMigrationRevertNotAllowed") {
		t.Fatalf("unlink during the no-revert window: %d %s, want 409 BYOKMigrationRevertNotAllowed", resp.StatusCode, b)
	}
}
