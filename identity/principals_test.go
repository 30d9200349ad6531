package identity

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/seal"
)

func TestCreateUserValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.user("taken@" + testDomain)
	pw := keyhold.NewSecret([]byte(testPass))
	tests := []struct {
		name     string
		tenant   string
		upn      string
		display  string
		password keyhold.Secret
		roles    []string
		wantCode string
	}{
		{"ok", testTenant, "new.user@" + testDomain, "New User", pw, []string{keyhold.RoleGlobalAdministrator}, ""},
		{"domain compares case-insensitively", testTenant, "other@CONTOSO.keyhold.internal", "Other", pw, nil, ""},
		{"taken, other case", testTenant, "TAKEN@" + testDomain, "Dup", pw, nil, keyhold.EConflict},
		{"no domain", testTenant, "nodomain", "x", pw, nil, keyhold.EInvalid},
		{"two ats", testTenant, "a@b@" + testDomain, "x", pw, nil, keyhold.EInvalid},
		{"other domain", testTenant, "x@fabrikam.example", "x", pw, nil, keyhold.EInvalid},
		{"bad character", testTenant, "a b@" + testDomain, "x", pw, nil, keyhold.EInvalid},
		{"leading dot", testTenant, ".a@" + testDomain, "x", pw, nil, keyhold.EInvalid},
		{"empty display name", testTenant, "y@" + testDomain, "  ", pw, nil, keyhold.EInvalid},
		{"control character in name", testTenant, "y@" + testDomain, "a\x00b", pw, nil, keyhold.EInvalid},
		{"short password", testTenant, "y@" + testDomain, "y", keyhold.NewSecret([]byte("short")), nil, keyhold.EInvalid},
		{"long password", testTenant, "y@" + testDomain, "y", keyhold.NewSecret([]byte(strings.Repeat("a", 257))), nil, keyhold.EInvalid},
		{"unknown role", testTenant, "y@" + testDomain, "y", pw, []string{"Root"}, keyhold.EInvalid},
		{"unknown tenant", "0b0b0b0b-0000-4000-8000-000000000000", "y@" + testDomain, "y", pw, nil, keyhold.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := e.svc.CreateUser(ctx, tt.tenant, tt.upn, tt.display, tt.password, tt.roles)
			if got := keyhold.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("code = %q, want %q (%v)", got, tt.wantCode, err)
			}
			if err != nil {
				if !strings.HasPrefix(keyhold.ErrorMessage(err), "identity: ") {
					t.Errorf("message %q lacks the package prefix", keyhold.ErrorMessage(err))
				}
				if strings.Contains(err.Error(), testPass) {
					t.Error("error contains the password")
				}
				return
			}
			creds, err := e.store.ListCredentials(ctx, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(creds) != 1 || !strings.HasPrefix(creds[0].Hash, "$argon2id$v=19$") || strings.Contains(creds[0].Hash, testPass) {
				t.Errorf("credentials = %+v", creds)
			}
		})
	}
}

func TestServicePrincipalSecrets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sp, secret := e.sp("app")
	if len(secret) != secretLen {
		t.Errorf("secret has %d characters, want %d", len(secret), secretLen)
	}
	if !isGUID(sp.AppID) || sp.AppID == sp.ID {
		t.Errorf("app id %q", sp.AppID)
	}
	creds, err := e.svc.ClientSecrets(ctx, sp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 || creds[0].Hint != secret[:3] || !strings.HasPrefix(creds[0].Hash, "$hmac-sha256$v=1$") || strings.Contains(creds[0].Hash, secret) {
		t.Fatalf("credentials = %+v", creds)
	}
	if !e.svc.verifySecret(creds[0].Hash, keyhold.NewSecret([]byte(secret))) {
		t.Error("the secret does not verify")
	}
	if e.svc.verifySecret(creds[0].Hash, keyhold.NewSecret([]byte(secret+"x"))) {
		t.Error("another secret verifies")
	}
	// The hash key is the service's, from the store: a restarted service verifies too.
	if !e.newService().verifySecret(creds[0].Hash, keyhold.NewSecret([]byte(secret))) {
		t.Error("the secret does not verify after a restart")
	}
	u := e.user("u@" + testDomain)
	if _, _, err := e.svc.AddClientSecret(ctx, u.ID, e.clock.Now().AddDate(1, 0, 0)); keyhold.ErrorCode(err) != keyhold.ENotFound {
		t.Errorf("secret for a user: err = %v, want ENotFound", err)
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	pw := keyhold.NewSecret([]byte("whatever-it-is"))
	for _, h := range []string{
		"",
		"$argon2id$v=19$m=1024,t=1,p=1$c2FsdA$",
		"$argon2id$v=18$m=1024,t=1,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=99999999,t=1,p=1$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=1024,t=1,p=0$c2FsdA$aGFzaA",
		"$argon2id$v=19$m=1024,x=1,p=1$c2FsdA$aGFzaA",
		"$argon2i$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA",
		"$hmac-sha256$v=1$c2FsdA$aGFzaA",
	} {
		if verifyPassword(h, pw) {
			t.Errorf("%q matched", h)
		}
	}
}

func TestConcurrentFirstStart(t *testing.T) {
	ctx := context.Background()
	st := unitenv.SQLite(t, "fresh.db")
	key, _ := seal.NewKey(seal.GenerateMasterKey())
	// Several processes start on one empty store at once: they must agree on
	// one signing key, or each would refuse the others' tokens.
	var wg sync.WaitGroup
	kids := make([]string, 6)
	for i := range kids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc, err := New(ctx, st, key, Config{PublicURL: "https://127.0.0.1:8443/"})
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = svc.kid
		}()
	}
	wg.Wait()
	for _, k := range kids[1:] {
		if k != kids[0] || k == "" {
			t.Fatalf("kids = %v, want all equal", kids)
		}
	}
}
