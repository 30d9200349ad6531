package client_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/arm"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/rbac"
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
	st := unitenv.SQLite(t, "k.db")
	s := unitenv.Seeder{TB: t, Store: st, Now: time.Now().UTC()}
	s.Tenant(fx.tenant, "Contoso", "contoso.keyhold")
	s.Principals(unitenv.User(fx.owner, fx.tenant, "", "owner@contoso.keyhold"))
	s.Subscription(fx.sub, fx.tenant, "")
	s.Register(fx.sub, fx.namespace)
	s.Assign(fx.assignment, fx.tenant, "/subscriptions/"+fx.sub, rbac.RoleOwner, fx.owner)
	s.ResourceGroups(fx.sub, "westeurope", fx.groups...)
	if more != nil {
		for _, err := range more(ctx, st, s.Now) {
			s.Must(err)
		}
	}
	a := arm.New(arm.Config{Store: st})
	register(ctx, st, a)
	srv := httptest.NewTLSServer(unitenv.Auth{Store: st, PrincipalOf: unitenv.Bearer}.Handler(a.Handler()))
	t.Cleanup(srv.Close)
	c, err := client.New(client.Config{Server: srv.URL, HTTPClient: srv.Client(), Tokens: principalTokens(fx.owner), PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
