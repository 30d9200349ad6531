package keyvault_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/identity"
)

// azkeysClient returns the real azkeys client for the vault at vaultURL,
// authenticating with the bootstrap service principal's client secret
// through azidentity against the server's own token endpoint, and the
// counter its vault requests go through.
func (e *e2eEnv) azkeysClient(t *testing.T, vaultURL string) (*azkeys.Client, *counter) {
	t.Helper()
	cnt := &counter{next: e.HTTP.Transport}
	opts := azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.Server.URL()},
		Transport: cnt,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
	cred, err := azidentity.NewClientSecretCredential(e.Boot.TenantID, e.Boot.ClientID, e.Boot.ClientSecret,
		&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	// The challenge's resource is the vault audience, whose host is not the
	// vault URL's (127.0.0.1), so resource verification is off (recipe A).
	c, err := azkeys.NewClient(vaultURL, cred, &azkeys.ClientOptions{ClientOptions: opts, DisableChallengeResourceVerification: true})
	if err != nil {
		t.Fatal(err)
	}
	return c, cnt
}

// kidName and kidVersion parse a kid of this server's path-style vault
// URLs (https://host/vaults/{vault}/keys/{name}[/{version}]). azkeys' own
// ID.Name and ID.Version expect the key collection as the first path
// segment, as on *.vault.azure.net, and misread them.
func kidName(kid azkeys.ID) string {
	parts := strings.Split(strings.SplitN(string(kid), "/vaults/", 2)[1], "/")
	return parts[2]
}

func kidVersion(kid azkeys.ID) string {
	parts := strings.Split(strings.SplitN(string(kid), "/vaults/", 2)[1], "/")
	if len(parts) < 4 {
		return ""
	}
	return parts[3]
}

func statusOf(err error) (int, string) {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode, re.ErrorCode
	}
	return 0, ""
}

func wantStatus(t *testing.T, err error, status int, code string) {
	t.Helper()
	if got, gotCode := statusOf(err); got != status || gotCode != code {
		t.Fatalf("error = %v; want %d %s", err, status, code)
	}
}

func TestAzkeysConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and generates many RSA keys")
	}
	e := newE2E(t)
	ctx := context.Background()
	vaultURL := e.createVault(t, "kv-conform", nil)
	c, cnt := e.azkeysClient(t, vaultURL)

	// Create, and count: the first call costs one challenge, later calls
	// one request each.
	created, err := c.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048),
		Tags: map[string]*string{"purpose": to.Ptr("conformance")}}, nil)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	kid := *created.Key.KID
	if !strings.HasPrefix(string(kid), vaultURL+"/keys/cmk/") || kidVersion(kid) == "" {
		t.Errorf("kid = %s, want under %s with a version", kid, vaultURL)
	}
	if created.Attributes.Created == nil || !*created.Attributes.Enabled || *created.Attributes.RecoveryLevel != "Recoverable" {
		t.Errorf("attributes = %+v", created.Attributes)
	}
	for i := 0; i < 3; i++ {
		if _, err := c.GetKey(ctx, "cmk", "", nil); err != nil {
			t.Fatalf("GetKey: %v", err)
		}
	}
	if got, want := cnt.vault.Load(), int64(5); got != want {
		t.Errorf("4 calls made %d vault requests, want %d (one challenge)", got, want)
	}
	if got := cnt.challenges.Load(); got != 1 {
		t.Errorf("%d challenges, want 1", got)
	}
	got, err := c.GetKey(ctx, "cmk", kidVersion(kid), nil)
	if err != nil || *got.Key.KID != kid {
		t.Fatalf("GetKey by version: %v %v", err, got.Key)
	}

	// List with paging over 30 keys.
	for i := range 30 {
		if _, err := c.CreateKey(ctx, fmt.Sprintf("page-%02d", i), azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC),
			Curve: to.Ptr(azkeys.CurveNameP256)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	names, pages := map[string]bool{}, 0
	pager := c.NewListKeyPropertiesPager(nil)
	for pager.More() {
		p, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("list page %d: %v", pages, err)
		}
		pages++
		for _, k := range p.Value {
			if kidVersion(*k.KID) != "" {
				t.Errorf("list item kid %s is versioned", *k.KID)
			}
			names[kidName(*k.KID)] = true
		}
	}
	if len(names) != 31 || pages != 2 {
		t.Errorf("listed %d keys in %d pages, want 31 in 2", len(names), pages)
	}

	// Update, then disable: operations are refused.
	upd, err := c.UpdateKey(ctx, "cmk", "", azkeys.UpdateKeyParameters{Tags: map[string]*string{"env": to.Ptr("test")},
		KeyAttributes: &azkeys.KeyAttributes{Expires: to.Ptr(time.Now().Add(48 * time.Hour).Truncate(time.Second))}}, nil)
	if err != nil || *upd.Tags["env"] != "test" || upd.Attributes.Expires == nil {
		t.Fatalf("UpdateKey: %v %+v", err, upd)
	}
	if _, err := c.UpdateKey(ctx, "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	cek := bytes.Repeat([]byte{7}, 32)
	_, err = c.WrapKey(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: cek}, nil)
	wantStatus(t, err, 403, "Forbidden")
	if _, err := c.UpdateKey(ctx, "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}

	// key_ops enforcement.
	if _, err := c.CreateKey(ctx, "wrap-only", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationWrapKey)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Encrypt(ctx, "wrap-only", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: cek}, nil)
	wantStatus(t, err, 403, "Forbidden")

	// Round trips for each algorithm.
	for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmRSAOAEP, azkeys.EncryptionAlgorithmRSAOAEP256, azkeys.EncryptionAlgorithmRSA15} {
		w, err := c.WrapKey(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: cek}, nil)
		if err != nil {
			t.Fatalf("WrapKey %s: %v", alg, err)
		}
		u, err := c.UnwrapKey(ctx, "cmk", kidVersion(*w.KID), azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: w.Result}, nil)
		if err != nil || !bytes.Equal(u.Result, cek) {
			t.Errorf("UnwrapKey %s: %v", alg, err)
		}
		en, err := c.Encrypt(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: []byte("plain text")}, nil)
		if err != nil {
			t.Fatalf("Encrypt %s: %v", alg, err)
		}
		de, err := c.Decrypt(ctx, "cmk", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(alg), Value: en.Result}, nil)
		if err != nil || string(de.Result) != "plain text" {
			t.Errorf("Decrypt %s: %v %q", alg, err, de.Result)
		}
	}

	// Sign and verify with RSA and EC.
	if _, err := c.CreateKey(ctx, "signer", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP384)}, nil); err != nil {
		t.Fatal(err)
	}
	d256, d384 := sha256.Sum256([]byte("msg")), sha512.Sum384([]byte("msg"))
	for _, tc := range []struct {
		key    string
		alg    azkeys.SignatureAlgorithm
		digest []byte
	}{{"cmk", azkeys.SignatureAlgorithmRS256, d256[:]}, {"cmk", azkeys.SignatureAlgorithmPS256, d256[:]}, {"signer", azkeys.SignatureAlgorithmES384, d384[:]}} {
		s, err := c.Sign(ctx, tc.key, "", azkeys.SignParameters{Algorithm: to.Ptr(tc.alg), Value: tc.digest}, nil)
		if err != nil {
			t.Fatalf("Sign %s: %v", tc.alg, err)
		}
		v, err := c.Verify(ctx, tc.key, "", azkeys.VerifyParameters{Algorithm: to.Ptr(tc.alg), Digest: tc.digest, Signature: s.Result}, nil)
		if err != nil || !*v.Value {
			t.Errorf("Verify %s: %v", tc.alg, err)
		}
	}

	// Rotate.
	rot, err := c.RotateKey(ctx, "cmk", nil)
	if err != nil || kidVersion(*rot.Key.KID) == kidVersion(kid) {
		t.Fatalf("RotateKey: %v", err)
	}
	vp := c.NewListKeyPropertiesVersionsPager("cmk", nil)
	nv := 0
	for vp.More() {
		p, err := vp.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		nv += len(p.Value)
	}
	if nv != 2 {
		t.Errorf("%d versions after rotate, want 2", nv)
	}

	// Soft delete, recover; delete then create the same name; purge refused.
	del, err := c.DeleteKey(ctx, "cmk", nil)
	if err != nil || del.RecoveryID == nil || del.ScheduledPurgeDate == nil {
		t.Fatalf("DeleteKey: %v %+v", err, del)
	}
	_, err = c.GetKey(ctx, "cmk", "", nil)
	wantStatus(t, err, 404, "KeyNotFound")
	if _, err := c.GetDeletedKey(ctx, "cmk", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecoverDeletedKey(ctx, "cmk", nil); err != nil {
		t.Fatalf("RecoverDeletedKey: %v", err)
	}
	if _, err := c.GetKey(ctx, "cmk", "", nil); err != nil {
		t.Fatalf("GetKey after recover: %v", err)
	}
	if _, err := c.DeleteKey(ctx, "cmk", nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	wantStatus(t, err, 409, "Conflict")
	_, err = c.PurgeDeletedKey(ctx, "cmk", nil)
	wantStatus(t, err, 403, "Forbidden")

	// Random bytes.
	rb, err := c.GetRandomBytes(ctx, azkeys.GetRandomBytesParameters{Count: to.Ptr[int32](32)}, nil)
	if err != nil || len(rb.Value) != 32 {
		t.Errorf("GetRandomBytes: %v %d", err, len(rb.Value))
	}
}

func TestChallengeAndRefusals(t *testing.T) {
	e := newE2E(t)
	vaultURL := e.createVault(t, "kv-challenge", nil)

	// The challenge comes before the body is read: the body here never
	// arrives, yet the 401 does.
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest("POST", vaultURL+"/keys/k/create?api-version=7.6", pr)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan *http.Response, 1)
	go func() {
		res, err := e.HTTP.Do(req)
		if err != nil {
			t.Errorf("challenge request: %v", err)
			done <- nil
			return
		}
		done <- res
	}()
	var res *http.Response
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("no answer without the body: the server waits for it")
	}
	if res == nil {
		return
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 401 {
		t.Fatalf("status %d, want 401", res.StatusCode)
	}
	wantHdr := `Bearer authorization="` + e.Server.URL() + e.Boot.TenantID + `", resource="` + identity.AudienceVault + `"`
	if got := res.Header.Get("WWW-Authenticate"); got != wantHdr {
		t.Errorf("WWW-Authenticate = %s, want %s", got, wantHdr)
	}
	if want := `{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}`; strings.TrimSpace(string(body)) != want {
		t.Errorf("body = %s, want %s", body, want)
	}
	// An unknown vault still names a tenant, with at least four '/' parts.
	r := e.do(t, "GET", e.Server.URL()+"vaults/nosuchvault/keys?api-version=7.6", "", nil)
	if h := r.header.Get("WWW-Authenticate"); r.status != 401 || !strings.Contains(h, `authorization="`+e.Server.URL()+e.Boot.TenantID+`"`) {
		t.Errorf("unknown vault: %d %s", r.status, h)
	}
	// A token for another audience is refused with the challenge.
	r = e.do(t, "GET", vaultURL+"/keys?api-version=7.6", e.token(t, e.sp, identity.AudienceManagement), nil)
	if r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("management token on the vault: %d %s", r.status, r.body)
	}

	// A principal without an access policy is refused.
	other, _, err := e.Server.Identity().CreateServicePrincipal(context.Background(), e.Boot.TenantID, "outsider")
	if err != nil {
		t.Fatal(err)
	}
	r = e.do(t, "GET", vaultURL+"/keys?api-version=7.6", e.token(t, other, identity.AudienceVault), nil)
	if code, inner := r.errorCodes(t); r.status != 403 || code != "Forbidden" || inner != "ForbiddenByPolicy" {
		t.Errorf("outsider: %d %s", r.status, r.body)
	}
	// The owner gets through, and kids use the address the client used.
	tok := e.token(t, e.sp, identity.AudienceVault)
	r = must(t, e.do(t, "POST", vaultURL+"/keys/k1/create?api-version=2025-07-01", tok, `{"kty":"EC"}`), 200)
	if kid := r.json(t)["key"].(map[string]any)["kid"].(string); !strings.HasPrefix(kid, vaultURL+"/keys/k1/") {
		t.Errorf("kid %s does not start with %s", kid, vaultURL)
	}
	_ = keyhold.ENotFound
}
