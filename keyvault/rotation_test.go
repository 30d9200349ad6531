package keyvault_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/keyvault"
)

func TestRotationPolicyValidation(t *testing.T) {
	e := newUnitEnv(t)
	putVault(t, e.store, "kv-policy", testTenant, nil)
	owner := caller(ownerOID)
	must(t, e.call(owner, "POST", "/vaults/kv-policy/keys/k/create", `{"kty":"RSA"}`), 200)
	rotate := func(trigger string) string {
		return `{"trigger":{` + trigger + `},"action":{"type":"Rotate"}}`
	}
	notify := `{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"notify"}}`
	tests := []struct {
		name, body string
		want       int
		phrase     string
	}{
		{"rotate after create", `{"lifetimeActions":[` + rotate(`"timeAfterCreate":"P90D"`) + `],"attributes":{"expiryTime":"P2Y"}}`, 200, ""},
		{"rotate and notify", `{"lifetimeActions":[` + rotate(`"timeBeforeExpiry":"P7D"`) + `,` + notify + `],"attributes":{"expiryTime":"P1Y"}}`, 200, ""},
		{"no actions", `{"lifetimeActions":[]}`, 200, ""},
		{"two rotates", `{"lifetimeActions":[` + rotate(`"timeAfterCreate":"P90D"`) + `,` + rotate(`"timeAfterCreate":"P30D"`) + `]}`, 400, "only one Rotate"},
		{"three actions", `{"lifetimeActions":[` + notify + `,` + notify + `,` + notify + `]}`, 400, "at most two"},
		{"notify after create", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"Notify"}}]}`, 400, "timeAfterCreate is allowed only for the Rotate action"},
		{"both triggers", `{"lifetimeActions":[` + rotate(`"timeAfterCreate":"P30D","timeBeforeExpiry":"P30D"`) + `]}`, 400, "exactly one"},
		{"no trigger", `{"lifetimeActions":[` + rotate(``) + `]}`, 400, "exactly one"},
		{"short expiry", `{"lifetimeActions":[],"attributes":{"expiryTime":"P27D"}}`, 400, "at least 28 days"},
		{"bad duration", `{"lifetimeActions":[` + rotate(`"timeAfterCreate":"90 days"`) + `]}`, 400, "ISO 8601"},
		{"zero duration", `{"lifetimeActions":[` + rotate(`"timeAfterCreate":"P0D"`) + `]}`, 400, "longer than zero"},
		{"trigger beyond expiry", `{"lifetimeActions":[` + rotate(`"timeAfterCreate":"P2Y"`) + `],"attributes":{"expiryTime":"P1Y"}}`, 400, "shorter than expiryTime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.call(owner, "PUT", "/vaults/kv-policy/keys/k/rotationpolicy", tt.body)
			if r.status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.status, tt.want, r.body)
			}
			if tt.want != 200 {
				if code, _ := r.errorCodes(t); code != "BadParameter" || !strings.Contains(string(r.body), tt.phrase) {
					t.Errorf("error %s, want BadParameter naming %q", r.body, tt.phrase)
				}
				return
			}
			got := must(t, e.call(owner, "GET", "/vaults/kv-policy/keys/k/rotationpolicy", nil), 200).json(t)
			if got["id"] != "https://"+testHost+"/vaults/kv-policy/keys/k/rotationpolicy" {
				t.Errorf("id = %v", got["id"])
			}
		})
	}
	// Action types come back in Key Vault's spelling.
	must(t, e.call(owner, "PUT", "/vaults/kv-policy/keys/k/rotationpolicy", `{"lifetimeActions":[`+notify+`]}`), 200)
	got := string(must(t, e.call(owner, "GET", "/vaults/kv-policy/keys/k/rotationpolicy", nil), 200).body)
	if !strings.Contains(got, `"type":"Notify"`) {
		t.Errorf("policy %s does not spell Notify", got)
	}
}

func TestBackgroundRotationExpiryAndPurge(t *testing.T) {
	e := newUnitEnv(t)
	ctx := t.Context()
	putVault(t, e.store, "kv-bg", testTenant, func(p *keyvault.Properties) {
		days := 7
		p.SoftDeleteRetentionInDays = &days
	})
	owner := caller(ownerOID)
	must(t, e.call(owner, "POST", "/vaults/kv-bg/keys/byage/create", `{"kty":"RSA","key_ops":["wrapKey","unwrapKey"]}`), 200)
	must(t, e.call(owner, "PUT", "/vaults/kv-bg/keys/byage/rotationpolicy",
		`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P90D"}}`), 200)
	exp := e.clock.Now().Add(60 * 24 * time.Hour).Unix()
	must(t, e.call(owner, "POST", "/vaults/kv-bg/keys/byexpiry/create", fmt.Sprintf(`{"kty":"EC","attributes":{"exp":%d}}`, exp)), 200)
	must(t, e.call(owner, "PUT", "/vaults/kv-bg/keys/byexpiry/rotationpolicy",
		`{"lifetimeActions":[{"trigger":{"timeBeforeExpiry":"P10D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P60D"}}`), 200)
	must(t, e.call(owner, "POST", "/vaults/kv-bg/keys/trash/create", `{"kty":"EC"}`), 200)
	must(t, e.call(owner, "DELETE", "/vaults/kv-bg/keys/trash", nil), 200)
	e.drain()

	versions := func(name string) int {
		var n int
		r := must(t, e.call(owner, "GET", "/vaults/kv-bg/keys/"+name+"/versions", nil), 200).json(t)
		n = len(r["value"].([]any))
		return n
	}
	kinds := func() string {
		var ks []string
		for _, ev := range e.drain() {
			ks = append(ks, ev.Kind+":"+lastSegment(ev.Scope))
		}
		return strings.Join(ks, ",")
	}

	since := e.clock.Now()
	// Day 6: nothing is due.
	e.clock.Add(6 * 24 * time.Hour)
	if err := e.svc.RunOnce(ctx, since); err != nil {
		t.Fatal(err)
	}
	if got := kinds(); got != "" || versions("byage") != 1 || versions("byexpiry") != 1 {
		t.Fatalf("day 6: events %q, versions %d/%d; want nothing done", got, versions("byage"), versions("byexpiry"))
	}
	// Day 8: the deleted key's retention has ended.
	since = e.clock.Now()
	e.clock.Add(2 * 24 * time.Hour)
	if err := e.svc.RunOnce(ctx, since); err != nil {
		t.Fatal(err)
	}
	if got := kinds(); got != "KeyPurged:trash" {
		t.Errorf("day 8 events = %q, want KeyPurged:trash", got)
	}
	must(t, e.call(owner, "GET", "/vaults/kv-bg/deletedkeys/trash", nil), 404)
	// Day 31: byage is 30 days old.
	since = e.clock.Now()
	e.clock.Add(23 * 24 * time.Hour)
	if err := e.svc.RunOnce(ctx, since); err != nil {
		t.Fatal(err)
	}
	if got := kinds(); got != "KeyRotated:byage" || versions("byage") != 2 || versions("byexpiry") != 1 {
		t.Errorf("day 31: events %q, versions %d/%d; want byage rotated", got, versions("byage"), versions("byexpiry"))
	}
	latest := must(t, e.call(owner, "GET", "/vaults/kv-bg/keys/byage/", nil), 200).json(t)
	attrs := latest["attributes"].(map[string]any)
	if want := float64(e.clock.Now().AddDate(0, 0, 90).Unix()); attrs["exp"] != want {
		t.Errorf("rotated version exp = %v, want now + P90D = %v", attrs["exp"], want)
	}
	if ops := latest["key"].(map[string]any)["key_ops"].([]any); len(ops) != 2 {
		t.Errorf("rotated version key_ops = %v, want the old version's", ops)
	}
	// Day 51: byexpiry is 10 days from its expiry.
	since = e.clock.Now()
	e.clock.Add(20 * 24 * time.Hour)
	if err := e.svc.RunOnce(ctx, since); err != nil {
		t.Fatal(err)
	}
	if got := kinds(); got != "KeyRotated:byexpiry" || versions("byexpiry") != 2 {
		t.Errorf("day 51: events %q, versions %d; want byexpiry rotated", got, versions("byexpiry"))
	}
	// Day 131: byage's second version expired at day 121; rotation at day
	// 61 made a third. Run once with since at day 51 so both show.
	e.clock.Add(80 * 24 * time.Hour)
	if err := e.svc.RunOnce(ctx, since); err != nil {
		t.Fatal(err)
	}
	got := kinds()
	if !strings.Contains(got, "KeyRotated:byage") || !strings.Contains(got, "KeyExpired:byexpiry") {
		t.Errorf("day 131 events = %q, want byage rotated again and byexpiry's newest version expired", got)
	}
	for _, ev := range e.drain() {
		if ev.Kind == events.KeyExpired && ev.TenantID != testTenant {
			t.Errorf("KeyExpired without the vault's tenant: %+v", ev)
		}
	}
}

// TestBackgroundRoundOneServerAtATime runs two services on one store, as
// two servers on one PostgreSQL: while one holds the background lease the
// other's round does nothing, so a due key is rotated once; once the holder
// stops renewing, the other takes the rounds over.
func TestBackgroundRoundOneServerAtATime(t *testing.T) {
	e := newUnitEnv(t)
	ctx := t.Context()
	cfg := e.cfg
	cfg.RotationInterval = 24 * time.Hour // the lease lasts three days
	cfg.NodeID = "server-a"
	a := keyvault.New(cfg)
	cfg.NodeID = "server-b"
	b := keyvault.New(cfg)

	putVault(t, e.store, "kv-two", testTenant, nil)
	owner := caller(ownerOID)
	must(t, e.call(owner, "POST", "/vaults/kv-two/keys/k/create", `{"kty":"RSA"}`), 200)
	must(t, e.call(owner, "PUT", "/vaults/kv-two/keys/k/rotationpolicy",
		`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P90D"}}`), 200)
	versions := func() int {
		r := must(t, e.call(owner, "GET", "/vaults/kv-two/keys/k/versions", nil), 200).json(t)
		return len(r["value"].([]any))
	}
	round := func(day string, s *keyvault.Service, want int) {
		t.Helper()
		if err := s.RunOnce(ctx, time.Time{}); err != nil {
			t.Fatalf("%s: %v", day, err)
		}
		if got := versions(); got != want {
			t.Fatalf("%s: %d versions, want %d", day, got, want)
		}
	}

	e.clock.Add(29 * 24 * time.Hour)
	round("day 29, a takes the lease, nothing is due", a, 1)
	e.clock.Add(2 * 24 * time.Hour)
	round("day 31, the key is due but a holds the lease", b, 1)
	round("day 31, a rotates", a, 2)
	round("day 31, nothing is due for a again", a, 2)
	e.clock.Add(31 * 24 * time.Hour)
	round("day 62, a stopped renewing three days ago: b takes over and rotates", b, 3)
	e.clock.Add(24 * time.Hour)
	round("day 63, b holds the lease", a, 3)
}
