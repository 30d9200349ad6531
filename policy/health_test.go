package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/keyvault"
)

// Monitor tests drive the monitor's loop by hand with a fake clock: reload
// and runDue are what Run calls. A fake checker stands in for the vault, so
// that a test decides which identities can use their keys.

const (
	hmTenant = "6f1a3c1e-8c47-4b0c-9d1e-2b4a5c6d7e8f"
	hmSub    = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
)

var hmStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func hmVaultID(name string) string {
	return "/subscriptions/" + hmSub + "/resourceGroups/rg-kv/providers/Microsoft.KeyVault/vaults/" + name
}

func hmPolicyID(name string) string {
	return "/subscriptions/" + hmSub + "/resourceGroups/rg-ep/providers/Microsoft.PowerPlatform/enterprisePolicies/" + name
}

// hmChecker is a fake vault: an identity can use its key unless denied.
type hmChecker struct {
	mu     sync.Mutex
	denied map[string]string // principal id -> missing permission
	calls  map[string][]time.Time
	now    func() time.Time
}

func (c *hmChecker) deny(principalID, what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if what == "" {
		delete(c.denied, principalID)
		return
	}
	c.denied[principalID] = what
}

func (c *hmChecker) CheckKeyAccess(_ context.Context, vaultID, keyName, keyVersion string, p *keyhold.Principal) (*keyvault.AccessReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[p.ID] = append(c.calls[p.ID], c.now())
	name := vaultID[strings.LastIndex(vaultID, "/")+1:]
	rep := &keyvault.AccessReport{VaultID: vaultID, VaultName: name, KeyName: keyName, KeyVersion: keyVersion, PrincipalID: p.ID}
	if what, ok := c.denied[p.ID]; ok {
		rep.Add(keyvault.AccessCheck{Name: keyvault.CheckPermissions, Failure: keyvault.FailureDefinite,
			Message: fmt.Sprintf("identity %s lacks %s on vault %s", p.ID, what, name), Fix: "grant it"})
	} else {
		rep.Add(keyvault.AccessCheck{Name: keyvault.CheckPermissions, OK: true, Message: "fine"})
	}
	return rep, nil
}

func (c *hmChecker) callTimes(principalID string) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.calls[principalID]...)
}

// hmRecorder lists policies from the store and records health there, as
// the policy service does.
type hmRecorder struct {
	store keyhold.Store
	bus   *events.Bus
	mu    sync.Mutex
	sets  []hmSet
	ch    chan hmSet
}

type hmSet struct {
	id, status string
	detail     HealthDetail
}

func (r *hmRecorder) List(ctx context.Context) ([]*Policy, error) {
	rs, err := r.store.ListResources(ctx, keyhold.ResourceFilter{Type: ResourceType})
	if err != nil {
		return nil, err
	}
	var out []*Policy
	for _, res := range rs {
		if res.Kind != KindEncryption {
			continue
		}
		p, err := Decode(res)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (r *hmRecorder) SetHealth(ctx context.Context, id, status string, d HealthDetail) error {
	res, err := r.store.GetResource(ctx, id)
	if err != nil {
		return err
	}
	var props map[string]any
	json.Unmarshal(res.Properties, &props)
	props["healthStatus"], props["healthDetail"] = status, d
	res.Properties, _ = json.Marshal(props)
	if err := r.store.PutResource(ctx, res); err != nil {
		return err
	}
	r.mu.Lock()
	r.sets = append(r.sets, hmSet{id, status, d})
	r.mu.Unlock()
	if r.ch != nil {
		r.ch <- hmSet{id, status, d}
	}
	if r.bus != nil {
		r.bus.Publish(ctx, events.Event{Kind: events.PolicyChanged, Scope: id, Detail: "health"})
	}
	return nil
}

func (r *hmRecorder) recorded() []hmSet {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hmSet(nil), r.sets...)
}

type hmEnv struct {
	t       *testing.T
	ctx     context.Context
	store   keyhold.Store
	clock   *unitenv.Clock
	checker *hmChecker
	rec     *hmRecorder
	m       *Monitor
}

func newHMEnv(t *testing.T, cfg MonitorConfig) *hmEnv {
	t.Helper()
	ctx := context.Background()
	st := unitenv.SQLite(t, "health.db")
	seed := unitenv.Seeder{TB: t, Store: st, Now: hmStart}
	seed.Tenant(hmTenant, "Contoso", "contoso.test")
	seed.Subscription(hmSub, hmTenant, "Contoso")
	clk := unitenv.NewClock(hmStart)
	e := &hmEnv{t: t, ctx: ctx, store: st, clock: clk,
		checker: &hmChecker{denied: map[string]string{}, calls: map[string][]time.Time{}, now: clk.Now},
		rec:     &hmRecorder{store: st, bus: cfg.Events}}
	cfg.Store, cfg.Policies, cfg.Vault, cfg.Now = st, e.rec, e.checker, clk.Now
	e.m = NewMonitor(cfg)
	return e
}

// addPolicy stores a policy of kind with its managed identity; the
// identity's id is derived from the name.
func (e *hmEnv) addPolicy(name, kind, vault string) (id, principalID string) {
	e.t.Helper()
	id = hmPolicyID(name)
	principalID = fmt.Sprintf("%08x-0000-4000-8000-%012x", len(name), hashName(name))
	if err := e.store.CreatePrincipal(e.ctx, &keyhold.Principal{ID: principalID, TenantID: hmTenant, Type: keyhold.PrincipalManagedIdentity,
		DisplayName: name, AppID: "app-" + name, ResourceID: id, CreatedAt: hmStart}); err != nil {
		e.t.Fatal(err)
	}
	props := Properties{SystemID: SystemIDFor("europe", principalID), HealthStatus: HealthUndetermined}
	if kind == KindEncryption {
		props.Encryption = &Encryption{State: "Enabled", KeyVault: &KeyVaultRef{ID: hmVaultID(vault), Key: KeyRef{Name: "cmk"}}}
	}
	rawProps, _ := json.Marshal(props)
	rawIdentity, _ := json.Marshal(Identity{Type: "SystemAssigned", PrincipalID: principalID, SystemAssignedIdentityPrincipalID: principalID, TenantID: hmTenant})
	if err := e.store.PutResource(e.ctx, &keyhold.Resource{ID: id, SubscriptionID: hmSub, ResourceGroup: "rg-ep", Type: ResourceType,
		Name: name, Location: "europe", Kind: kind, Identity: rawIdentity, Properties: rawProps}); err != nil {
		e.t.Fatal(err)
	}
	return id, principalID
}

func hashName(s string) uint64 {
	var h uint64 = 1469598103934665603
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h & 0xffffffffffff
}

// at sets the clock and runs what is due.
func (e *hmEnv) at(d time.Duration) {
	e.clock.Set(hmStart.Add(d))
	e.m.runDue(e.ctx)
}

func (e *hmEnv) start() {
	e.t.Helper()
	if err := e.m.reload(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	e.m.runDue(e.ctx)
}

func fixedRand(v float64) func() float64 { return func() float64 { return v } }

func TestMonitorChecksEveryEncryptionPolicyOnStart(t *testing.T) {
	e := newHMEnv(t, MonitorConfig{Rand: fixedRand(0.5)})
	good, _ := e.addPolicy("ep-good", KindEncryption, "kv-a")
	bad, badMI := e.addPolicy("ep-bad", KindEncryption, "kv-a")
	_, lockboxMI := e.addPolicy("ep-lockbox", KindLockbox, "")
	e.checker.deny(badMI, "unwrapKey")
	e.start()

	got := map[string]string{}
	for _, s := range e.rec.recorded() {
		got[s.id] = s.status + ": " + s.detail.Reason
		if s.detail.CheckedAt.IsZero() {
			t.Errorf("%s: checkedAt not set", s.id)
		}
	}
	want := map[string]string{
		good: "Healthy: identity " + principalOf(e, good) + " can get, wrap and unwrap with key cmk in vault kv-a",
		bad:  "Unhealthy: identity " + badMI + " lacks unwrapKey on vault kv-a",
	}
	for id, w := range want {
		if got[id] != w {
			t.Errorf("health of %s = %q, want %q", id, got[id], w)
		}
	}
	if len(got) != 2 {
		t.Errorf("recorded %d policies, want only the 2 Encryption ones: %v", len(got), got)
	}
	if n := len(e.checker.callTimes(lockboxMI)); n != 0 {
		t.Errorf("the Lockbox policy was checked %d times", n)
	}
	stored, err := e.store.GetResource(e.ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Decode(stored)
	if p.Properties.HealthStatus != HealthUnhealthy || p.Properties.HealthDetail == nil || !p.Properties.HealthDetail.Definite {
		t.Errorf("stored health = %s %+v, want Unhealthy and definite", p.Properties.HealthStatus, p.Properties.HealthDetail)
	}

	// The same verdicts later are not written again.
	before := len(e.rec.recorded())
	e.at(2 * time.Minute)
	e.at(4 * time.Minute)
	if after := len(e.rec.recorded()); after != before {
		t.Errorf("unchanged health was written again: %d writes, want %d", after, before)
	}
	if e.m.Checks() <= 2 {
		t.Errorf("checks = %d, want the probes of the later minutes too", e.m.Checks())
	}
}

func principalOf(e *hmEnv, policyID string) string {
	r, err := e.store.GetResource(e.ctx, policyID)
	if err != nil {
		e.t.Fatal(err)
	}
	p, _ := Decode(r)
	return p.Identity.PrincipalID
}

func TestMonitorProbeIntervals(t *testing.T) {
	// Rand 0.5 means no jitter at all and a first probe half an interval
	// after the start.
	e := newHMEnv(t, MonitorConfig{Rand: fixedRand(0.5)})
	_, goodMI := e.addPolicy("ep-good", KindEncryption, "kv-a")
	_, badMI := e.addPolicy("ep-bad", KindEncryption, "kv-a")
	e.checker.deny(badMI, "get")
	e.start()
	for s := 1; s <= 200; s++ {
		if s == 45 {
			e.checker.deny(badMI, "") // access restored
		}
		e.at(time.Duration(s) * time.Second)
	}
	offsets := func(mi string) string {
		var out []string
		for _, t := range e.checker.callTimes(mi) {
			out = append(out, t.Sub(hmStart).String())
		}
		return strings.Join(out, " ")
	}
	tests := []struct{ name, mi, want string }{
		// Healthy: checked at the start, first probe half an interval
		// later (the spread), then every interval.
		{"healthy", goodMI, "0s 30s 1m30s 2m30s"},
		// Unhealthy: probed every 10 s until access returns at 45 s, then
		// on the healthy interval.
		{"unhealthy, then restored", badMI, "0s 10s 20s 30s 40s 50s 1m50s 2m50s"},
	}
	for _, tt := range tests {
		if got := offsets(tt.mi); got != tt.want {
			t.Errorf("%s: checks at %s, want %s", tt.name, got, tt.want)
		}
	}
	var statuses []string
	for _, s := range e.rec.recorded() {
		if strings.HasSuffix(s.id, "ep-bad") {
			statuses = append(statuses, s.status)
		}
	}
	if got, want := strings.Join(statuses, ","), "Unhealthy,Healthy"; got != want {
		t.Errorf("health of ep-bad went %s, want %s", got, want)
	}
}

func TestMonitorJitterSpreadsPolicies(t *testing.T) {
	const n = 100
	interval := time.Minute
	e := newHMEnv(t, MonitorConfig{Rand: rand.New(rand.NewPCG(1, 2)).Float64})
	mis := make([]string, n)
	for i := range n {
		_, mis[i] = e.addPolicy(fmt.Sprintf("ep-%03d", i), KindEncryption, "kv-a")
	}
	e.start()
	if got := e.m.Checks(); got != n {
		t.Fatalf("%d checks at the start, want %d", got, n)
	}
	// Step a second at a time through five intervals and count the probes
	// in each second and each tenth of an interval.
	perSecond := map[int]int{}
	perTenth := make([]int, 10)
	for s := 1; s <= 5*60; s++ {
		before := e.m.Checks()
		e.at(time.Duration(s) * time.Second)
		k := int(e.m.Checks() - before)
		perSecond[s] = k
		if s <= 60 {
			perTenth[(s-1)/6] += k
		}
	}
	// Spread: every tenth of the first interval gets some policies and
	// none gets a crowd (10 expected in each).
	for i, k := range perTenth {
		if k < 3 || k > 25 {
			t.Errorf("%d probes in seconds %d-%d of the first interval, want 3 to 25: %v", k, i*6+1, i*6+6, perTenth)
		}
	}
	maxSecond := 0
	for _, k := range perSecond {
		maxSecond = max(maxSecond, k)
	}
	if maxSecond > 10 {
		t.Errorf("%d probes in one second, want at most 10 of %d policies", maxSecond, n)
	}
	// Each policy keeps to its interval, give or take the jitter.
	for _, mi := range mis {
		times := e.checker.callTimes(mi)
		if len(times) < 5 || len(times) > 7 {
			t.Errorf("policy %s probed %d times in five intervals", mi, len(times))
			continue
		}
		for i := 2; i < len(times); i++ {
			gap := times[i].Sub(times[i-1])
			if gap < time.Duration(float64(interval)*0.9)-time.Second || gap > time.Duration(float64(interval)*1.1)+time.Second {
				t.Errorf("policy %s: %v between probes, want the interval ±10%%", mi, gap)
			}
		}
	}
}

func TestHealthOf(t *testing.T) {
	ok := keyvault.AccessCheck{Name: "a", OK: true, Message: "fine"}
	tests := []struct {
		name         string
		checks       []keyvault.AccessCheck
		want, reason string
		definite     bool
	}{
		{"all pass", []keyvault.AccessCheck{ok}, HealthHealthy, "can get, wrap and unwrap", false},
		{"definite", []keyvault.AccessCheck{ok, {Name: "b", Message: "key cmk is disabled", Failure: keyvault.FailureDefinite}}, HealthUnhealthy, "key cmk is disabled", true},
		{"unreachable", []keyvault.AccessCheck{{Name: "b", Message: "vault does not answer", Failure: keyvault.FailureUnreachable}}, HealthUnhealthy, "vault does not answer", false},
		{"purge protection off", []keyvault.AccessCheck{ok, {Name: "c", Message: "purge protection is off", Warning: true}}, HealthWarning, "purge protection is off", false},
		{"expires soon", []keyvault.AccessCheck{{Name: "d", OK: true, Message: "expires in 3 days", Warning: true}}, HealthWarning, "expires in 3 days", false},
		{"failure beats warning", []keyvault.AccessCheck{{Name: "c", Message: "purge protection is off", Warning: true}, {Name: "b", Message: "lacks get", Failure: keyvault.FailureDefinite}}, HealthUnhealthy, "lacks get", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d := HealthOf(&keyvault.AccessReport{Checks: tt.checks, PrincipalID: "p", KeyName: "cmk", VaultName: "kv"})
			if got != tt.want || !strings.Contains(d.Reason, tt.reason) || d.Definite != tt.definite {
				t.Errorf("HealthOf = %s %+v, want %s, reason with %q, definite %v", got, d, tt.want, tt.reason, tt.definite)
			}
		})
	}
}

func TestMonitorEventMatching(t *testing.T) {
	vault := hmVaultID("kv-a")
	w := &watch{id: hmPolicyID("ep"), vaultID: vault, keyName: "cmk", principalID: "3f2a0000-0000-4000-8000-000000000001"}
	tests := []struct {
		name string
		e    events.Event
		want bool
	}{
		{"access policy on the vault", events.Event{Kind: events.AccessPolicyChanged, Scope: vault, Subject: "someone"}, true},
		{"access policy, id case differs", events.Event{Kind: events.AccessPolicyChanged, Scope: strings.ToUpper(vault)}, true},
		{"access policy on another vault", events.Event{Kind: events.AccessPolicyChanged, Scope: hmVaultID("kv-b")}, false},
		{"access policy on a vault whose name extends ours", events.Event{Kind: events.AccessPolicyChanged, Scope: vault + "2"}, false},
		{"key disabled", events.Event{Kind: events.KeyDisabled, Scope: vault + "/keys/cmk"}, true},
		{"key version changed", events.Event{Kind: events.KeyChanged, Scope: vault + "/keys/CMK/0123456789abcdef0123456789abcdef"}, true},
		{"other key disabled", events.Event{Kind: events.KeyDisabled, Scope: vault + "/keys/cmk2"}, false},
		{"key deleted", events.Event{Kind: events.KeyDeleted, Scope: vault + "/keys/cmk"}, true},
		{"key recovered", events.Event{Kind: events.KeyRecovered, Scope: vault + "/keys/cmk"}, true},
		{"key rotated", events.Event{Kind: events.KeyRotated, Scope: vault + "/keys/cmk"}, true},
		{"key expired", events.Event{Kind: events.KeyExpired, Scope: vault + "/keys/cmk"}, true},
		{"vault deleted", events.Event{Kind: events.VaultDeleted, Scope: vault}, true},
		{"vault recovered", events.Event{Kind: events.VaultRecovered, Scope: vault}, true},
		{"vault network", events.Event{Kind: events.VaultNetworkChanged, Scope: vault}, true},
		{"vault rbac switch", events.Event{Kind: events.VaultChanged, Scope: vault}, true},
		{"role at the subscription", events.Event{Kind: events.RoleAssignmentChanged, Scope: "/subscriptions/" + hmSub, Subject: "a-group"}, true},
		{"role at the root", events.Event{Kind: events.RoleAssignmentChanged, Scope: "/", Subject: "a-group"}, true},
		{"role on the key", events.Event{Kind: events.RoleAssignmentChanged, Scope: vault + "/keys/cmk", Subject: "x"}, true},
		{"role on another vault", events.Event{Kind: events.RoleAssignmentChanged, Scope: hmVaultID("kv-b"), Subject: "x"}, false},
		{"role for the identity anywhere", events.Event{Kind: events.RoleAssignmentChanged, Scope: hmVaultID("kv-b"), Subject: w.principalID}, true},
		{"principal changed", events.Event{Kind: events.PrincipalChanged, Subject: w.principalID}, true},
		{"other principal changed", events.Event{Kind: events.PrincipalChanged, Subject: "other"}, false},
		{"environment changed", events.Event{Kind: events.EnvironmentChanged, Scope: vault}, false},
	}
	for _, tt := range tests {
		if got := w.concernedBy(tt.e); got != tt.want {
			t.Errorf("%s: concernedBy = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestMonitorEventsMakePoliciesDueAtOnce(t *testing.T) {
	e := newHMEnv(t, MonitorConfig{Rand: fixedRand(0.5), Interval: time.Hour, UnhealthyInterval: time.Hour})
	a, _ := e.addPolicy("ep-a", KindEncryption, "kv-a")
	b, _ := e.addPolicy("ep-b", KindEncryption, "kv-b")
	c, _ := e.addPolicy("ep-c", KindEncryption, "kv-a")
	e.start()
	e.at(time.Minute)
	due := func() string {
		e.m.mu.Lock()
		defer e.m.mu.Unlock()
		var out []string
		for _, w := range e.m.watches {
			if !w.due.After(e.clock.Now()) {
				out = append(out, w.id[strings.LastIndex(w.id, "/")+1:])
			}
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	if got := due(); got != "" {
		t.Fatalf("due before any event: %s", got)
	}
	tests := []struct {
		name string
		e    events.Event
		want string
	}{
		{"key of vault a", events.Event{Kind: events.KeyDisabled, Scope: hmVaultID("kv-a") + "/keys/cmk"}, "ep-a,ep-c"},
		{"access to vault b", events.Event{Kind: events.AccessPolicyChanged, Scope: hmVaultID("kv-b"), Subject: "x"}, "ep-b"},
		{"a principal that may be a group", events.Event{Kind: events.PrincipalChanged, Subject: "some-group"}, "ep-a,ep-b,ep-c"},
		{"the monitor's own health write", events.Event{Kind: events.PolicyChanged, Scope: a}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.m.handle(e.ctx, tt.e)
			if got := due(); got != tt.want {
				t.Errorf("due = %q, want %q", got, tt.want)
			}
			e.m.runDue(e.ctx)
		})
	}

	// A policy deleted is dropped; one whose key changed is due.
	if err := e.store.DeleteResource(e.ctx, b); err != nil {
		t.Fatal(err)
	}
	e.m.handle(e.ctx, events.Event{Kind: events.PolicyChanged, Scope: b})
	r, _ := e.store.GetResource(e.ctx, c)
	var props map[string]any
	json.Unmarshal(r.Properties, &props)
	props["encryption"] = map[string]any{"keyVault": map[string]any{"id": hmVaultID("kv-b"), "key": map[string]any{"name": "cmk2"}}}
	r.Properties, _ = json.Marshal(props)
	if err := e.store.PutResource(e.ctx, r); err != nil {
		t.Fatal(err)
	}
	e.m.handle(e.ctx, events.Event{Kind: events.PolicyChanged, Scope: c})
	if got := due(); got != "ep-c" {
		t.Errorf("due after the key change = %q, want ep-c", got)
	}
	e.m.mu.Lock()
	_, stillWatched := e.m.watches[strings.ToLower(b)]
	keyScope := e.m.watches[strings.ToLower(c)].keyScope()
	e.m.mu.Unlock()
	if stillWatched {
		t.Errorf("the deleted policy is still watched")
	}
	if want := hmVaultID("kv-b") + "/keys/cmk2"; keyScope != want {
		t.Errorf("ep-c watches %s, want %s", keyScope, want)
	}

	// Resync reloads every policy and checks it at once.
	e.at(2 * time.Minute)
	e.m.handle(e.ctx, events.Event{Kind: events.Resync})
	if got := due(); got != "ep-a,ep-c" {
		t.Errorf("due after a resync = %q, want ep-a,ep-c", got)
	}
}

func TestMonitorRunIsEventDriven(t *testing.T) {
	bus := events.New(nil)
	// Probes an hour apart: any change seen within the test came from an
	// event.
	e := newHMEnv(t, MonitorConfig{Events: bus, Interval: time.Hour, UnhealthyInterval: time.Hour})
	e.rec.ch = make(chan hmSet, 16)
	id, mi := e.addPolicy("ep-run", KindEncryption, "kv-a")
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.m.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	wait := func(want string) hmSet {
		t.Helper()
		select {
		case s := <-e.rec.ch:
			if s.id != id || s.status != want {
				t.Fatalf("recorded %s %s (%s), want %s", s.id, s.status, s.detail.Reason, want)
			}
			return s
		case <-time.After(10 * time.Second):
			t.Fatalf("no health %s recorded", want)
		}
		return hmSet{}
	}
	wait(HealthHealthy)
	steps := []struct {
		deny string
		e    events.Event
		want string
	}{
		{"unwrapKey", events.Event{Kind: events.AccessPolicyChanged, Scope: hmVaultID("kv-a"), Subject: mi}, HealthUnhealthy},
		{"", events.Event{Kind: events.AccessPolicyChanged, Scope: hmVaultID("kv-a"), Subject: mi}, HealthHealthy},
		{"get", events.Event{Kind: events.KeyDisabled, Scope: hmVaultID("kv-a") + "/keys/cmk"}, HealthUnhealthy},
		{"", events.Event{Kind: events.KeyEnabled, Scope: hmVaultID("kv-a") + "/keys/cmk"}, HealthHealthy},
	}
	for _, st := range steps {
		e.checker.deny(mi, st.deny)
		bus.Publish(e.ctx, st.e)
		s := wait(st.want)
		if st.want == HealthUnhealthy && !strings.Contains(s.detail.Reason, "lacks "+st.deny) {
			t.Errorf("reason %q does not say what is missing", s.detail.Reason)
		}
	}
}

func TestMonitorCheck(t *testing.T) {
	e := newHMEnv(t, MonitorConfig{})
	good, _ := e.addPolicy("ep-good", KindEncryption, "kv-a")
	lockbox, _ := e.addPolicy("ep-lockbox", KindLockbox, "")
	orphan, orphanMI := e.addPolicy("ep-orphan", KindEncryption, "kv-a")
	if err := e.store.DeletePrincipal(e.ctx, orphanMI); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		id     string
		failed string
		code   string
	}{
		{"good", good, "", ""},
		{"not encryption", lockbox, CheckPolicyKind + "," + CheckPolicyKeyVault, ""},
		{"identity gone", orphan, CheckPolicyIdentity, ""},
		{"no such policy", hmPolicyID("nope"), "", keyhold.ENotFound},
		{"a vault is not a policy", hmVaultID("kv-a"), "", keyhold.ENotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := e.m.Check(e.ctx, tt.id)
			if got := keyhold.ErrorCode(err); got != tt.code {
				t.Fatalf("error %v, want code %q", err, tt.code)
			}
			if err != nil {
				return
			}
			var failed []string
			for _, c := range rep.Checks {
				if !c.OK {
					failed = append(failed, c.Name)
				}
			}
			if got := strings.Join(failed, ","); got != tt.failed {
				t.Errorf("failed checks %s, want %s", got, tt.failed)
			}
			if rep.Checks[0].Name != CheckPolicyKind {
				t.Errorf("first check %s, want the policy's own checks first", rep.Checks[0].Name)
			}
		})
	}
	if len(e.rec.recorded()) != 0 {
		t.Errorf("Check recorded health; it must only report")
	}
}
