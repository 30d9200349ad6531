package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/identity"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/seal"
)

// The harnesses over real services (graph, policy, vault, deploy) share
// these: a store with the fake tenant, its administrator and subscription,
// the administrator's token endpoint, and a TLS server the CLI trusts.

// seededStore opens a SQLite store for t with the fake tenant, the user
// adminID (adminUPN), the fake subscription with adminID its Owner under
// the assignment name, and the fixtures more adds (errors in order, nil for
// none). A failure fails t; the store closes when t ends.
func seededStore(t *testing.T, adminID, assignment string, more func(ctx context.Context, st keyhold.Store, now time.Time) []error) keyhold.Store {
	t.Helper()
	st := unitenv.SQLite(t, "k.db")
	s := unitenv.Seeder{TB: t, Store: st, Now: time.Now().UTC()}
	s.Tenant(fakeTenant, "Contoso", "contoso.keyhold.local")
	s.Principals(unitenv.User(adminID, fakeTenant, "Administrator", adminUPN))
	s.Subscription(fakeSub, fakeTenant, "Keyhold")
	s.Assign(assignment, fakeTenant, "/subscriptions/"+fakeSub, rbac.RoleOwner, adminID)
	if more != nil {
		for _, err := range more(context.Background(), st, s.Now) {
			s.Must(err)
		}
	}
	return st
}

// sealedIdentities returns a fresh master key and the managed identity
// service over st that seals with it.
func sealedIdentities(t *testing.T, st keyhold.Store) (*seal.Key, *identity.Service) {
	t.Helper()
	key, err := seal.NewKey(seal.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.New(context.Background(), st, key, identity.Config{PublicURL: "https://keyhold.test/"})
	if err != nil {
		t.Fatal(err)
	}
	return key, ids
}

// adminTokens serves the token endpoint: the password grant of adminUPN
// with adminPW, as keyhold login sends it, gets a numbered fake token for
// the audience it asks for; anything else gets invalid_grant.
func adminTokens(mux *http.ServeMux) {
	var mu sync.Mutex
	n := 0
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.PostForm.Get("grant_type") != "password" || r.PostForm.Get("client_id") != client.DefaultPublicClientID ||
			!strings.EqualFold(r.PostForm.Get("username"), adminUPN) || r.PostForm.Get("password") != adminPW {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "bad credentials"})
			return
		}
		mu.Lock()
		n++
		tok := fakeToken(strings.TrimSuffix(r.PostForm.Get("scope"), "/.default"), n)
		mu.Unlock()
		reply(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": tok})
	})
}

// armAsAdmin serves arm to requests with an ARM token, as the principal
// adminID of st; any other token gets 401.
func armAsAdmin(st keyhold.Store, adminID string, arm http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p, err := st.GetPrincipal(r.Context(), adminID)
		if audienceOf(tok) != client.AudienceARM || err != nil {
			azErr(w, 401, "InvalidAuthenticationToken", "wrong token")
			return
		}
		arm.ServeHTTP(w, r.WithContext(keyhold.WithCaller(r.Context(), &keyhold.Caller{Principal: p, TenantID: p.TenantID, Audience: client.AudienceARM})))
	}
}

// serveHarness starts mux over TLS until t ends and returns a harness that
// speaks to it and trusts its certificate.
func serveHarness(t *testing.T, mux *http.ServeMux) *harness {
	t.Helper()
	f := &fake{t: t, srv: httptest.NewTLSServer(mux)}
	t.Cleanup(f.srv.Close)
	h := newHarness(t)
	h.f = f
	writeCA(t, h, f)
	return h
}
