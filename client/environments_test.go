package client_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/testenv"
)

// issuedTokens hands out tokens the server's identity service issues for p.
type issuedTokens struct {
	e *testenv.Env
	p *keyhold.Principal
}

func (s issuedTokens) Token(_ context.Context, aud string) (string, error) {
	return s.e.IssueToken(s.p, aud), nil
}

// envClient is a client of the real server signed in as the principal with
// object id id.
func envClient(t *testing.T, e *testenv.Env, id string) *client.Client {
	t.Helper()
	p, err := e.Server.Store().GetPrincipal(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(client.Config{Server: e.Server.URL(), HTTPClient: e.HTTP, Tokens: issuedTokens{e, p}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wantClientError(t *testing.T, what string, err error, status int, code, words string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.StatusCode != status || (code != "" && ce.Code != code) || !strings.Contains(ce.Message, words) {
		t.Errorf("%s: got %v, want %d %s with %q", what, err, status, code, words)
	}
}

// TestEnvironmentsClient drives the platform admin API's environment routes
// through a real server as the Global Administrator and as a user without
// directory roles.
func TestEnvironmentsClient(t *testing.T) {
	ctx := context.Background()
	e := testenv.Start(t)
	admin := envClient(t, e, e.Server.Bootstrap().AdminID)
	userID, _ := e.CreateUser("nobody", "Nobody-password-42!")
	user := envClient(t, e, userID)

	env, err := admin.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Sales", Region: "unitedstates", Type: client.EnvironmentSandbox, Managed: true})
	if err != nil {
		t.Fatal(err)
	}
	p := env.Properties
	if env.Name == "" || p.DisplayName != "Sales" || env.Location != "unitedstates" || p.EnvironmentSku != "Sandbox" || !env.Managed() ||
		p.ProtectionStatus.KeyManagedBy != "Microsoft" || p.States.Runtime.ID != "Enabled" || env.Locked() || env.Policy() != "" {
		t.Errorf("created = %+v", env)
	}
	id := env.Name

	_, err = admin.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Bad", Region: "unitedstates", Type: "Galactic"})
	wantClientError(t, "unknown type", err, http.StatusBadRequest, "", "Galactic")

	got, err := admin.GetEnvironment(ctx, id)
	if err != nil || got.Name != id || got.Properties.DisplayName != "Sales" {
		t.Errorf("GetEnvironment = %+v, %v", got, err)
	}
	list, err := admin.ListEnvironments(ctx)
	if err != nil || !slices.ContainsFunc(list, func(x client.Environment) bool { return x.Name == id }) {
		t.Errorf("ListEnvironments = %+v, %v; want %s in it", list, err, id)
	}

	// Anyone but a platform administrator is told it does not exist.
	_, err = user.GetEnvironment(ctx, id)
	wantClientError(t, "user's get", err, http.StatusNotFound, "", "could not be found in the tenant")
	if list, err := user.ListEnvironments(ctx); err != nil || len(list) != 0 {
		t.Errorf("user's list = %+v, %v; want empty", list, err)
	}
	if _, err := admin.GetEnvironment(ctx, "a/b"); err == nil || client.StatusCode(err) != 0 {
		t.Errorf("an id with a slash: %v, want the client to refuse it", err)
	}

	// Roles.
	ra, err := admin.GrantEnvironmentRole(ctx, id, userID, client.EnvironmentRoleUser)
	if err != nil || ra.Properties.PrincipalID != userID || ra.Properties.Role != client.EnvironmentRoleUser {
		t.Errorf("GrantEnvironmentRole = %+v, %v", ra, err)
	}
	_, err = admin.GrantEnvironmentRole(ctx, id, userID, "Emperor")
	wantClientError(t, "unknown role", err, http.StatusBadRequest, "", "Emperor")
	roles, err := admin.ListEnvironmentRoles(ctx, id)
	if err != nil || len(roles) != 1 || roles[0].Name != userID {
		t.Errorf("ListEnvironmentRoles = %+v, %v", roles, err)
	}
	if err := admin.RevokeEnvironmentRole(ctx, id, userID); err != nil {
		t.Error(err)
	}
	if roles, err := admin.ListEnvironmentRoles(ctx, id); err != nil || len(roles) != 0 {
		t.Errorf("roles after revoke = %+v, %v", roles, err)
	}

	// Settings.
	if s, err := admin.GetEnvironmentSettings(ctx); err != nil || s.AutoReenable || s.Retention {
		t.Errorf("default settings = %+v, %v", s, err)
	}
	if s, err := admin.SetEnvironmentSettings(ctx, client.EnvironmentSettings{AutoReenable: true}); err != nil || !s.AutoReenable || s.Retention {
		t.Errorf("SetEnvironmentSettings = %+v, %v", s, err)
	}
	_, err = user.SetEnvironmentSettings(ctx, client.EnvironmentSettings{Retention: true})
	wantClientError(t, "user's settings", err, http.StatusForbidden, "", "administrators")

	// Lock, see why, re-enable.
	_, err = admin.ReenableEnvironment(ctx, id)
	wantClientError(t, "re-enable an enabled environment", err, http.StatusConflict, "", "nothing to re-enable")
	if err := e.Server.Environments().Lock(ctx, id, "the key was disabled"); err != nil {
		t.Fatal(err)
	}
	got, err = admin.GetEnvironment(ctx, id)
	if err != nil || !got.Locked() || !strings.Contains(got.Properties.States.Runtime.Reason, "the key was disabled") {
		t.Errorf("locked = %+v, %v", got, err)
	}
	got, err = admin.ReenableEnvironment(ctx, id)
	if err != nil || got.Locked() {
		t.Errorf("ReenableEnvironment = %+v, %v", got, err)
	}
	hist, err := admin.EnvironmentHistory(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, op := range hist {
		types = append(types, op.TypeDisplayName)
	}
	if len(hist) != 3 || !strings.HasPrefix(types[0], "Re-enable") || !strings.HasPrefix(types[1], "Disable") || !hist[0].Ended() {
		t.Errorf("history = %v", types)
	}

	if err := admin.DeleteEnvironment(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.GetEnvironment(ctx, id); !client.IsNotFound(err) {
		t.Errorf("deleted environment: %v", err)
	}
}
