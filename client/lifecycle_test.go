package client_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/client/clienttest"
	"github.com/keyhold/keyhold/internal/testenv"
)

// TestLifecycleClient links an environment to a policy, swaps it to a
// second one and unlinks it through the client against a real server,
// following each operation to Succeeded with its progress, and reads the
// CMK history; then the refusals: an unknown system id, a caller who is no
// platform administrator, a malformed id.
func TestLifecycleClient(t *testing.T) {
	ctx := context.Background()
	e := testenv.Start(t)
	b := e.Server.Bootstrap()
	owner := envClient(t, e, b.ServicePrincipalID)
	admin := envClient(t, e, b.AdminID)
	p1 := clienttest.SetupCMK(t, owner, b.SubscriptionID, b.TenantID, b.ServicePrincipalID, "rg-cmk", "kv-life-1", "ep-life-1", b.AdminID)
	p2 := clienttest.SetupCMK(t, owner, b.SubscriptionID, b.TenantID, b.ServicePrincipalID, "rg-cmk", "kv-life-2", "ep-life-2", b.AdminID)

	env, err := admin.CreateEnvironment(ctx, client.EnvironmentSpec{DisplayName: "Sales", Region: "unitedstates", Type: client.EnvironmentSandbox, Managed: true})
	if err != nil {
		t.Fatal(err)
	}
	id := env.Name

	steps := []struct {
		name, verb, systemID, wantAction, wantPolicy, wantManagedBy string
	}{
		{"link", "link", p1.Properties.SystemID, "Link", p1.ID, "Customer"},
		{"swap", "link", strings.ToUpper(p2.Properties.SystemID), "Swap", p2.ID, "Customer"},
		{"unlink", "unlink", p2.Properties.SystemID, "Unlink", "", "Microsoft"},
	}
	for _, s := range steps {
		var op *client.LifecycleOperation
		if s.verb == "link" {
			op, err = admin.LinkPolicy(ctx, id, s.systemID)
		} else {
			op, err = admin.UnlinkPolicy(ctx, id, s.systemID)
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !strings.Contains(op.Location, "/lifecycleOperations/"+op.ID) || !strings.HasPrefix(op.Location, "https://") || op.RetryAfter != time.Second {
			t.Errorf("%s: location %q retry-after %v, want the operation's absolute URL and 1s", s.name, op.Location, op.RetryAfter)
		}
		polls := 0
		final, err := admin.WaitOperation(ctx, op, func(o *client.EnvironmentOperation) {
			polls++
			if o.ID != op.ID {
				t.Errorf("%s: progress of operation %s, want %s", s.name, o.ID, op.ID)
			}
		})
		if err != nil || final.State.ID != client.OperationSucceeded || final.Percent() != 100 || !strings.EqualFold(final.Action, s.wantAction) {
			t.Fatalf("%s: final %+v, %v; want Succeeded %s", s.name, final, err, s.wantAction)
		}
		if polls < 1 {
			t.Errorf("%s: progress never called", s.name)
		}
		got, err := admin.GetOperation(ctx, op.ID)
		if err != nil || got.State.ID != client.OperationSucceeded {
			t.Errorf("%s: GetOperation = %+v, %v", s.name, got, err)
		}
		env, err := admin.GetEnvironment(ctx, id)
		if err != nil || !strings.EqualFold(env.Policy(), s.wantPolicy) || env.Properties.ProtectionStatus.KeyManagedBy != s.wantManagedBy {
			t.Fatalf("%s: environment %+v, %v; want policy %q, key managed by %s", s.name, env, err, s.wantPolicy, s.wantManagedBy)
		}
	}

	// The lifecycle history is the environment's whole history, newest
	// first: the three key operations, then the create.
	hist, err := admin.ListHistory(ctx, id)
	if err != nil || len(hist) != 4 {
		t.Fatalf("ListHistory = %+v, %v; want 4 entries", hist, err)
	}
	for i, want := range []string{"Unlink", "Swap", "Link"} {
		if !strings.EqualFold(hist[i].Action, want) || hist[i].State.ID != client.OperationSucceeded || hist[i].TypeDisplayName != "Update Customer Managed Key" {
			t.Errorf("history[%d] = %s %s %q, want %s Succeeded (newest first)", i, hist[i].Action, hist[i].State.ID, hist[i].TypeDisplayName, want)
		}
	}
	if hist[3].TypeDisplayName == "Update Customer Managed Key" {
		t.Errorf("history[3] = %+v, want the create", hist[3])
	}

	userID, _ := e.CreateUser("nobody", "Nobody-password-42!")
	user := envClient(t, e, userID)
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
	}{
		{"unknown system id", func() error {
			_, err := admin.LinkPolicy(ctx, id, "00000000-0000-0000-0000-00000000beef")
			return err
		}, http.StatusNotFound},
		{"not an administrator", func() error { _, err := user.LinkPolicy(ctx, id, p1.Properties.SystemID); return err }, http.StatusNotFound},
		{"unknown operation", func() error { _, err := admin.GetOperation(ctx, "00000000-0000-0000-0000-000000000000"); return err }, http.StatusNotFound},
		{"history for a non-administrator", func() error { _, err := user.ListHistory(ctx, id); return err }, http.StatusNotFound},
	} {
		err := tc.call()
		if got := client.StatusCode(err); got != tc.status {
			t.Errorf("%s: %v (status %d), want %d", tc.name, err, got, tc.status)
		}
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"empty system id", func() error { _, err := admin.LinkPolicy(ctx, id, " "); return err }},
		{"bad environment id", func() error { _, err := admin.UnlinkPolicy(ctx, "a/b", p1.Properties.SystemID); return err }},
		{"bad operation id", func() error { _, err := admin.GetOperation(ctx, "x?y"); return err }},
		{"nil operation", func() error { _, err := admin.WaitOperation(ctx, nil, nil); return err }},
	} {
		var ce *client.Error
		if err := tc.call(); err == nil || errors.As(err, &ce) {
			t.Errorf("%s: %v, want a client-side error before any request", tc.name, err)
		}
	}
}
