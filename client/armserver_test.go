package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/rbac"
	"github.com/keyhold/keyhold/sqlite"
)

// principalTokens hands out the principal id as the token; the test server
// maps it back.
type principalTokens string

func (p principalTokens) Token(context.Context, string) (string, error) { return string(p), nil }

// armFixture is the tenant, subscription and owner an armServer starts
// with.
type armFixture struct {
	tenant, sub, owner string
	assignment         string // the name of the owner's Owner assignment
	namespace          string // the provider the subscription is registered for
	groups             []string
}

// armServer runs the resource manager over TLS on a SQLite store with
// fx's tenant, its user owner, its subscription (registered for
// fx.namespace, with fx.groups in westeurope) and owner its Owner, plus the
// fixtures more adds (nil for none). register adds the resource types. The
// client it returns calls as the owner; a failure fails t.
func armServer(t *testing.T, fx armFixture, more func(ctx context.Context, st keyhold.Store, now time.Time) []error,
	register func(ctx context.Context, st keyhold.Store, a *arm.Server)) *client.Client {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Now().UTC()
	owner, _ := rbac.RoleByName(rbac.RoleOwner)
	errs := []error{
		st.CreateTenant(ctx, &keyhold.Tenant{ID: fx.tenant, DisplayName: "Contoso", DefaultDomain: "contoso.keyhold", CreatedAt: now}),
		st.CreatePrincipal(ctx, &keyhold.Principal{ID: fx.owner, TenantID: fx.tenant, Type: keyhold.PrincipalUser, UserPrincipalName: "owner@contoso.keyhold", CreatedAt: now}),
		st.CreateSubscription(ctx, &keyhold.Subscription{ID: fx.sub, TenantID: fx.tenant, State: "Enabled", CreatedAt: now}),
		st.PutProviderRegistration(ctx, &keyhold.ProviderRegistration{SubscriptionID: fx.sub, Namespace: fx.namespace, State: keyhold.StateRegistered, UpdatedAt: now}),
		st.CreateRoleAssignment(ctx, &keyhold.RoleAssignment{Name: fx.assignment, TenantID: fx.tenant, Scope: "/subscriptions/" + fx.sub,
			RoleDefinitionID: owner.ID, PrincipalID: fx.owner, PrincipalType: keyhold.PrincipalUser, CreatedAt: now, UpdatedAt: now}),
	}
	for _, g := range fx.groups {
		errs = append(errs, st.PutResourceGroup(ctx, &keyhold.ResourceGroup{SubscriptionID: fx.sub, Name: g, Location: "westeurope"}))
	}
	if more != nil {
		errs = append(errs, more(ctx, st, now)...)
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	a := arm.New(arm.Config{Store: st})
	register(ctx, st, a)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		p, err := st.GetPrincipal(r.Context(), id)
		if err != nil {
			http.Error(w, "unknown principal", http.StatusUnauthorized)
			return
		}
		a.Handler().ServeHTTP(w, r.WithContext(keyhold.WithCaller(r.Context(), &keyhold.Caller{Principal: p, TenantID: p.TenantID})))
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Server: srv.URL, HTTPClient: srv.Client(), Tokens: principalTokens(fx.owner), PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
