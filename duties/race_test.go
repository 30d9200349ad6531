package duties_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/internal/testenv"
	"github.com/keyhold/keyhold/postgres"
	"github.com/keyhold/keyhold/rbac"
)

// TestRacingGrantsPostgres runs two grants that together would break the
// rule in two transactions on PostgreSQL, the second started while the
// first has checked and written but not committed. The second must wait
// for the first (seen in pg_stat_activity) and then be refused; without
// the tenant's lock it would finish at once, and both would pass.
func TestRacingGrantsPostgres(t *testing.T) {
	dsn, _, admin := testenv.PostgresSchema(t)
	b := make([]byte, 6)
	rand.Read(b)
	app := "duties_race_" + hex.EncodeToString(b)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	st, err := postgres.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := newFixtureOn(t, st)
	c := f.checker(true, false)
	ctx := f.ctx

	second := f.principal(plainID)
	second.ID, second.UserPrincipalName = "aaaaaaaa-0000-4000-8000-000000000099", "kvadmin2@contoso.keyhold"
	f.must(st.CreatePrincipal(ctx, second))
	// makePPA gives user the Power Platform Administrator role, checked.
	makePPA := func(user string) func(tx keyhold.Store) error {
		return func(tx keyhold.Store) error {
			p, err := tx.GetPrincipal(ctx, user)
			if err != nil {
				return err
			}
			p.DirectoryRoles = append(p.DirectoryRoles, keyhold.RolePowerPlatformAdministrator)
			if err := c.CheckDirectoryRole(ctx, tx, p, keyhold.RolePowerPlatformAdministrator); err != nil {
				return err
			}
			return tx.UpdatePrincipal(ctx, p)
		}
	}
	for _, tc := range []struct {
		name          string
		first, second func(tx keyhold.Store) error
		want          string
	}{
		{
			name: "Key Vault Administrator, then Power Platform Administrator",
			first: func(tx keyhold.Store) error {
				a := f.assignment(plainID, rbac.RoleKeyVaultAdministrator, vaultID, keyhold.PrincipalUser)
				if err := c.CheckRoleAssignment(ctx, tx, a); err != nil {
					return err
				}
				return tx.CreateRoleAssignment(ctx, a)
			},
			second: makePPA(plainID),
			want:   "kvadmin@contoso.keyhold holds Key Vault Administrator on " + vaultID,
		},
		{
			name: "member of the key vault group, then Power Platform Administrator",
			first: func(tx keyhold.Store) error {
				if err := c.CheckGroupMember(ctx, tx, f.principal(kvGrpID), second); err != nil {
					return err
				}
				return tx.AddGroupMember(ctx, kvGrpID, second.ID)
			},
			second: makePPA(second.ID),
			want:   "kvadmin2@contoso.keyhold holds Key Vault Administrator on " + vaultID + " through group 'Vault admins'",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checked, release := make(chan struct{}), make(chan struct{})
			firstDone := make(chan error, 1)
			go func() {
				firstDone <- st.InTx(ctx, func(tx keyhold.Store) error {
					if err := tc.first(tx); err != nil {
						return err
					}
					close(checked)
					<-release
					return nil
				})
			}()
			select {
			case <-checked:
			case err := <-firstDone:
				t.Fatalf("the first grant failed: %v", err)
			}
			secondDone := make(chan error, 1)
			go func() { secondDone <- st.InTx(ctx, tc.second) }()
			// Wait until the second transaction waits on a lock; the
			// bound only stops a broken run.
			deadline := time.Now().Add(time.Minute)
			for {
				select {
				case err := <-secondDone:
					close(release)
					t.Fatalf("the second grant finished (%v) while the first was not committed: it did not wait for the tenant's lock", err)
				default:
				}
				var n int
				if err := admin.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, app).Scan(&n); err != nil {
					close(release)
					t.Fatal(err)
				}
				if n > 0 {
					break
				}
				if time.Now().After(deadline) {
					close(release)
					t.Fatal("the second grant never waited for the first")
				}
				time.Sleep(10 * time.Millisecond)
			}
			close(release)
			if err := <-firstDone; err != nil {
				t.Fatalf("the first grant: %v", err)
			}
			wantRefusal(t, <-secondDone, tc.want)
		})
	}
}
