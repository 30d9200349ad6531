package policy

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/keyvault"
)

// Defaults of the health monitor.
const (
	DefaultHealthInterval    = 60 * time.Second
	DefaultUnhealthyInterval = 10 * time.Second
	DefaultHealthJitter      = 0.1
)

// Names of the checks the monitor makes of the policy itself, before those
// of the key (keyvault.CheckKeyAccess).
const (
	CheckPolicyKind     = "PolicyKind"
	CheckPolicyIdentity = "PolicyIdentity"
	CheckPolicyKeyVault = "PolicyKeyVault"
)

// HealthRecorder lists the Encryption policies to watch and records their
// health. *Service implements it.
type HealthRecorder interface {
	List(ctx context.Context) ([]*Policy, error)
	SetHealth(ctx context.Context, policyID, status string, detail HealthDetail) error
}

// KeyAccessChecker decides whether an identity can use a key right now.
// *keyvault.Service implements it for built-in vaults.
type KeyAccessChecker interface {
	CheckKeyAccess(ctx context.Context, vaultID, keyName, keyVersion string, principal *keyhold.Principal) (*keyvault.AccessReport, error)
}

// The server hands the monitor its policy service and built-in vault.
var (
	_ HealthRecorder   = (*Service)(nil)
	_ KeyAccessChecker = (*keyvault.Service)(nil)
)

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	// Store is read for single policies (on PolicyChanged) and for the
	// policies' managed identities.
	Store keyhold.Store
	// Policies lists the policies and records their health.
	Policies HealthRecorder
	// Vault checks key access.
	Vault KeyAccessChecker
	// Events is where key, vault, access and policy changes arrive; nil
	// means the monitor only probes.
	Events *events.Bus
	// Logger receives health changes and failures; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Interval is the time between probes of a policy that is not
	// Unhealthy; 0 means DefaultHealthInterval.
	Interval time.Duration
	// UnhealthyInterval is the time between probes of an Unhealthy
	// policy, so that restored access is noticed soon even without an
	// event; 0 means DefaultUnhealthyInterval.
	UnhealthyInterval time.Duration
	// Jitter is the fraction of an interval by which each probe moves at
	// random, so that policies checked together drift apart; 0 means
	// DefaultHealthJitter, a negative value none. Independently of it, the
	// first probe after the monitor loads a policy falls anywhere in the
	// first interval, so that policies loaded together spread out at once.
	Jitter float64
	// Rand returns a random number in [0, 1); nil means math/rand/v2.
	Rand func() float64
}

// Monitor watches whether each Encryption policy's identity can use its key
// right now and records the verdict as the policy's healthStatus and
// healthDetail. It re-checks a policy at once when an event says something
// it depends on changed (its key, its vault, access to the vault, the
// policy itself) and otherwise probes it on an interval. One goroutine (Run)
// does all of it, with one timer for the policy due next.
type Monitor struct {
	cfg      MonitorConfig
	log      *slog.Logger
	now      func() time.Time
	rand     func() float64
	interval time.Duration
	sick     time.Duration
	jitter   float64

	mu      sync.Mutex
	watches map[string]*watch // by lower-case policy id
	queue   watchQueue

	checks atomic.Int64
}

// watch is one policy the monitor watches: what it depends on, the health
// last recorded, and when it is due for a check.
type watch struct {
	id          string // the policy's resource id
	vaultID     string
	keyName     string
	keyVersion  string
	principalID string
	status      string
	detail      HealthDetail
	due         time.Time
	spread      bool // the first probe after loading is spread over an interval
	index       int  // in the queue; -1 when not queued
}

// NewMonitor returns a health monitor; Run starts it.
func NewMonitor(cfg MonitorConfig) *Monitor {
	m := &Monitor{cfg: cfg, log: cfg.Logger, now: cfg.Now, rand: cfg.Rand, interval: cfg.Interval,
		sick: cfg.UnhealthyInterval, jitter: cfg.Jitter, watches: map[string]*watch{}}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rand == nil {
		m.rand = rand.Float64
	}
	if m.interval <= 0 {
		m.interval = DefaultHealthInterval
	}
	if m.sick <= 0 {
		m.sick = DefaultUnhealthyInterval
	}
	switch {
	case m.jitter == 0:
		m.jitter = DefaultHealthJitter
	case m.jitter < 0:
		m.jitter = 0
	case m.jitter > 1:
		m.jitter = 1
	}
	return m
}

// watchedKinds are the events that can change a policy's health.
var watchedKinds = map[string]bool{
	events.AccessPolicyChanged: true, events.RoleAssignmentChanged: true,
	events.KeyCreated: true, events.KeyChanged: true, events.KeyDisabled: true, events.KeyEnabled: true,
	events.KeyDeleted: true, events.KeyRecovered: true, events.KeyPurged: true, events.KeyExpired: true, events.KeyRotated: true,
	events.VaultChanged: true, events.VaultDeleted: true, events.VaultRecovered: true, events.VaultPurged: true,
	events.VaultNetworkChanged: true, events.PrincipalChanged: true, events.PolicyChanged: true,
}

// Run checks every Encryption policy, then keeps their health current until
// ctx ends: at once on events, and on each policy's probe interval. It
// returns nil when ctx ends; a failed check is logged and retried, never
// fatal.
func (m *Monitor) Run(ctx context.Context) error {
	var evc <-chan events.Event
	if m.cfg.Events != nil {
		// Subscribing before the first load means no change falls between
		// the load and the first event.
		sub := m.cfg.Events.Subscribe(func(e events.Event) bool { return watchedKinds[e.Kind] })
		defer sub.Close()
		evc = sub.C()
	}
	if err := m.reload(ctx); err != nil && ctx.Err() == nil {
		m.log.Warn("policy health: cannot list policies; will retry", "err", err.Error())
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		m.runDue(ctx)
		if ctx.Err() != nil {
			return nil
		}
		timer.Reset(m.untilNext())
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case e, ok := <-evc:
			if !ok {
				evc = nil
				continue
			}
			m.handle(ctx, e)
			// Take whatever else has arrived, so that a burst of events
			// about one vault costs one check per policy.
			for more := true; more; {
				select {
				case e, ok := <-evc:
					if !ok {
						evc, more = nil, false
						break
					}
					m.handle(ctx, e)
				default:
					more = false
				}
			}
		}
	}
}

// Checks returns how many policy checks the monitor has made, for metrics
// and tests.
func (m *Monitor) Checks() int64 { return m.checks.Load() }

// untilNext is the wait until the next policy is due, at most a minute so
// that a policy list that failed to load is retried.
func (m *Monitor) untilNext() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	wait := time.Minute
	if len(m.queue) > 0 {
		if d := m.queue[0].due.Sub(m.now()); d < wait {
			wait = d
		}
	}
	if wait < 0 {
		wait = 0
	}
	return wait
}

// reload re-reads every policy: new ones are watched, gone ones dropped, and
// all are due at once.
func (m *Monitor) reload(ctx context.Context) error {
	list, err := m.cfg.Policies.List(ctx)
	if err != nil {
		return err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := map[string]bool{}
	for _, p := range list {
		if !strings.EqualFold(p.Resource.Kind, KindEncryption) {
			continue
		}
		key := strings.ToLower(p.Resource.ID)
		seen[key] = true
		w := m.upsert(p)
		w.spread = true
		m.schedule(w, now)
	}
	for key, w := range m.watches {
		if !seen[key] {
			m.drop(w)
		}
	}
	return nil
}

// upsert records what policy p depends on; the caller holds m.mu.
func (m *Monitor) upsert(p *Policy) *watch {
	key := strings.ToLower(p.Resource.ID)
	w := m.watches[key]
	if w == nil {
		w = &watch{index: -1}
		m.watches[key] = w
	}
	w.id = p.Resource.ID
	w.vaultID, w.keyName, w.keyVersion = "", "", ""
	if e := p.Properties.Encryption; e != nil && e.KeyVault != nil {
		w.vaultID, w.keyName = e.KeyVault.ID, e.KeyVault.Key.Name
		if v := e.KeyVault.Key.Version; v != nil {
			w.keyVersion = *v
		}
	}
	w.principalID = p.Identity.PrincipalID
	w.status = p.Properties.HealthStatus
	w.detail = HealthDetail{}
	if d := p.Properties.HealthDetail; d != nil {
		w.detail = *d
	}
	return w
}

// schedule makes w due at t; the caller holds m.mu.
func (m *Monitor) schedule(w *watch, t time.Time) {
	w.due = t
	if w.index < 0 {
		heap.Push(&m.queue, w)
		return
	}
	heap.Fix(&m.queue, w.index)
}

// drop stops watching w; the caller holds m.mu.
func (m *Monitor) drop(w *watch) {
	if w.index >= 0 {
		heap.Remove(&m.queue, w.index)
	}
	delete(m.watches, strings.ToLower(w.id))
}

// runDue checks every policy that is due now. Events wait while it runs:
// Run handles them on the same goroutine, so nothing else changes a watch
// during its check.
func (m *Monitor) runDue(ctx context.Context) {
	for ctx.Err() == nil {
		m.mu.Lock()
		if len(m.queue) == 0 || m.queue[0].due.After(m.now()) {
			m.mu.Unlock()
			return
		}
		w := heap.Pop(&m.queue).(*watch)
		snapshot := *w
		m.mu.Unlock()
		status, detail, err := m.checkOne(ctx, &snapshot)
		m.mu.Lock()
		m.reschedule(ctx, w, status, detail, err)
		m.mu.Unlock()
	}
}

// checkOne checks the policy of w (a copy, so that the check runs without
// the lock) and records its health if it changed. It returns the health
// now recorded.
func (m *Monitor) checkOne(ctx context.Context, w *watch) (string, HealthDetail, error) {
	m.checks.Add(1)
	rep, err := m.evaluateWatch(ctx, w)
	if err != nil {
		return "", HealthDetail{}, err
	}
	status, detail := HealthOf(rep)
	if status == w.status && detail.Reason == w.detail.Reason && detail.Definite == w.detail.Definite {
		return w.status, w.detail, nil
	}
	detail.CheckedAt = m.now().UTC()
	if err := m.cfg.Policies.SetHealth(ctx, w.id, status, detail); err != nil {
		return "", HealthDetail{}, err
	}
	m.log.Info("policy health changed", "policy", w.id, "from", w.status, "to", status, "reason", detail.Reason)
	return status, detail, nil
}

// reschedule records the outcome of w's check and queues its next probe:
// soon after a failure or while Unhealthy, anywhere in the first interval
// after loading, an interval later otherwise. The caller holds m.mu.
func (m *Monitor) reschedule(ctx context.Context, w *watch, status string, detail HealthDetail, err error) {
	if m.watches[strings.ToLower(w.id)] != w {
		return // dropped or replaced meanwhile
	}
	now := m.now()
	if keyhold.IsNotFound(err) && ctx.Err() == nil {
		m.drop(w)
		return
	}
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("policy health: check failed; will retry", "policy", w.id, "err", err.Error())
		}
		m.schedule(w, now.Add(m.jittered(m.sick)))
		return
	}
	w.status, w.detail = status, detail
	next := m.jittered(m.interval)
	switch {
	case status == HealthUnhealthy:
		next = m.jittered(m.sick)
	case w.spread:
		next = time.Duration(m.rand() * float64(m.interval))
	}
	w.spread = false
	m.schedule(w, now.Add(next))
}

// jittered returns d moved at random by up to the jitter fraction.
func (m *Monitor) jittered(d time.Duration) time.Duration {
	if m.jitter == 0 {
		return d
	}
	return time.Duration(float64(d) * (1 + m.jitter*(2*m.rand()-1)))
}

// handle makes the policies an event may concern due at once.
func (m *Monitor) handle(ctx context.Context, e events.Event) {
	switch e.Kind {
	case events.Resync:
		if err := m.reload(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("policy health: cannot list policies after a resync; will retry", "err", err.Error())
		}
		return
	case events.PolicyChanged:
		m.policyChanged(ctx, e.Scope)
		return
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.affected(e) {
		m.schedule(w, now)
	}
}

// affected returns the watched policies that e may concern; the caller
// holds m.mu. When an event cannot be narrowed down for sure (a change of
// some principal that may be a group), every policy at the vault, or every
// policy, is checked: a spare check is cheap, a missed one is not.
func (m *Monitor) affected(e events.Event) []*watch {
	var out []*watch
	for _, w := range m.watches {
		if w.concernedBy(e) {
			out = append(out, w)
		}
	}
	if len(out) == 0 && e.Kind == events.PrincipalChanged {
		// Not one of the identities: maybe a group one of them is in.
		for _, w := range m.watches {
			out = append(out, w)
		}
	}
	return out
}

// concernedBy reports whether event e may change w's health.
func (w *watch) concernedBy(e events.Event) bool {
	switch e.Kind {
	case events.AccessPolicyChanged, events.VaultChanged, events.VaultDeleted, events.VaultRecovered,
		events.VaultPurged, events.VaultNetworkChanged:
		return w.vaultID != "" && strings.EqualFold(trimID(e.Scope), trimID(w.vaultID))
	case events.KeyCreated, events.KeyChanged, events.KeyDisabled, events.KeyEnabled, events.KeyDeleted,
		events.KeyRecovered, events.KeyPurged, events.KeyExpired, events.KeyRotated:
		return w.vaultID != "" && (isAtOrUnder(e.Scope, w.keyScope()) || isAtOrUnder(w.keyScope(), e.Scope))
	case events.RoleAssignmentChanged:
		// An assignment at the key or above it may grant or take access,
		// to the identity or to a group it is in.
		return w.vaultID != "" && (isAtOrUnder(w.keyScope(), e.Scope) || strings.EqualFold(e.Subject, w.principalID) && w.principalID != "")
	case events.PrincipalChanged:
		return w.principalID != "" && strings.EqualFold(e.Subject, w.principalID)
	}
	return false
}

// keyScope is the resource-style id of the policy's key.
func (w *watch) keyScope() string { return trimID(w.vaultID) + "/keys/" + w.keyName }

func trimID(id string) string { return strings.TrimRight(id, "/") }

// isAtOrUnder reports whether id is scope or below it, case-insensitively.
func isAtOrUnder(id, scope string) bool {
	id, scope = strings.ToLower(trimID(id)), strings.ToLower(trimID(scope))
	return scope == "" || id == scope || strings.HasPrefix(id, scope+"/")
}

// policyChanged re-reads one policy after PolicyChanged: a new one is
// watched, a deleted one dropped, and a changed one checked at once. A change
// that leaves the key, identity and health as the monitor last saw them (the
// monitor's own SetHealth, a change of tags) needs no check.
func (m *Monitor) policyChanged(ctx context.Context, id string) {
	r, err := m.cfg.Store.GetResource(ctx, id)
	var p *Policy
	if err == nil && strings.EqualFold(r.Type, ResourceType) && strings.EqualFold(r.Kind, KindEncryption) {
		p, err = Decode(r)
	}
	if err != nil && !keyhold.IsNotFound(err) {
		if ctx.Err() == nil {
			m.log.Warn("policy health: cannot read a changed policy; checking all", "policy", id, "err", err.Error())
		}
		m.mu.Lock()
		for _, w := range m.watches {
			m.schedule(w, m.now())
		}
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.watches[strings.ToLower(id)]
	if p == nil {
		if old != nil {
			m.drop(old)
		}
		return
	}
	if old != nil {
		before := *old
		w := m.upsert(p)
		if w.vaultID == before.vaultID && w.keyName == before.keyName && w.keyVersion == before.keyVersion &&
			w.principalID == before.principalID && w.status == before.status && w.detail.Reason == before.detail.Reason {
			return
		}
		m.schedule(w, m.now())
		return
	}
	m.schedule(m.upsert(p), m.now())
}

// evaluateWatch checks the policy of w as it is stored now.
func (m *Monitor) evaluateWatch(ctx context.Context, w *watch) (*keyvault.AccessReport, error) {
	r, err := m.cfg.Store.GetResource(ctx, w.id)
	if err != nil {
		return nil, err
	}
	p, err := Decode(r)
	if err != nil {
		return nil, err
	}
	return m.evaluate(ctx, p)
}

// Check runs every check of the policy with resource id policyID, the way
// Microsoft's ValidateKeyVaultForCMK script does, and returns the report
// without recording anything. It returns ENotFound (ResourceNotFound) when
// there is no such policy, and the store's error if it fails.
func (m *Monitor) Check(ctx context.Context, policyID string) (*keyvault.AccessReport, error) {
	r, err := m.cfg.Store.GetResource(ctx, policyID)
	if err == nil && !strings.EqualFold(r.Type, ResourceType) {
		err = keyhold.Errorf(keyhold.ENotFound, "not a policy")
	}
	if keyhold.IsNotFound(err) {
		return nil, keyhold.Errorc(keyhold.ENotFound, "ResourceNotFound", "policy: enterprise policy %s was not found", policyID)
	}
	if err != nil {
		return nil, err
	}
	p, err := Decode(r)
	if err != nil {
		return nil, err
	}
	return m.evaluate(ctx, p)
}

// evaluate checks policy p: first that it is an Encryption policy with a
// managed identity and a key, then the identity's access to the key.
func (m *Monitor) evaluate(ctx context.Context, p *Policy) (*keyvault.AccessReport, error) {
	var pre []keyvault.AccessCheck
	name := p.Resource.Name
	fail := func(check, msg, fix string) {
		pre = append(pre, keyvault.AccessCheck{Name: check, Message: msg, Fix: fix, Failure: keyvault.FailureDefinite})
	}
	if strings.EqualFold(p.Resource.Kind, KindEncryption) {
		pre = append(pre, keyvault.AccessCheck{Name: CheckPolicyKind, OK: true, Message: fmt.Sprintf("policy %s is of kind Encryption", name)})
	} else {
		fail(CheckPolicyKind, fmt.Sprintf("policy %s is of kind %s, not Encryption", name, p.Resource.Kind),
			"create a policy of kind Encryption for customer-managed keys")
	}

	var principal *keyhold.Principal
	switch {
	case !strings.EqualFold(p.Identity.Type, "SystemAssigned") || p.Identity.PrincipalID == "":
		fail(CheckPolicyIdentity, fmt.Sprintf("policy %s has no system-assigned managed identity", name),
			"give the policy identity.type SystemAssigned, so that it has an identity the vault can grant access to")
	default:
		pr, err := m.cfg.Store.GetPrincipal(ctx, p.Identity.PrincipalID)
		switch {
		case keyhold.IsNotFound(err):
			fail(CheckPolicyIdentity, fmt.Sprintf("the managed identity %s of policy %s no longer exists", p.Identity.PrincipalID, name),
				"create the policy again: a deleted managed identity cannot be restored")
		case err != nil:
			return nil, err
		default:
			principal = pr
			pre = append(pre, keyvault.AccessCheck{Name: CheckPolicyIdentity, OK: true,
				Message: fmt.Sprintf("policy %s has the system-assigned identity %s", name, pr.ID)})
		}
	}

	var ref *KeyVaultRef
	if e := p.Properties.Encryption; e != nil && e.KeyVault != nil && e.KeyVault.ID != "" && e.KeyVault.Key.Name != "" {
		ref = e.KeyVault
		pre = append(pre, keyvault.AccessCheck{Name: CheckPolicyKeyVault, OK: true,
			Message: fmt.Sprintf("policy %s names key %s in vault %s", name, ref.Key.Name, ref.ID)})
	} else {
		fail(CheckPolicyKeyVault, fmt.Sprintf("policy %s names no key vault and key", name),
			"set properties.encryption.keyVault.id and keyVault.key.name on the policy")
	}

	if principal == nil || ref == nil {
		rep := &keyvault.AccessReport{PrincipalID: p.Identity.PrincipalID, CheckedAt: m.now(), Checks: pre}
		if ref != nil {
			rep.VaultID, rep.KeyName = ref.ID, ref.Key.Name
		}
		return rep, nil
	}
	version := ""
	if ref.Key.Version != nil {
		version = *ref.Key.Version
	}
	rep, err := m.cfg.Vault.CheckKeyAccess(ctx, ref.ID, ref.Key.Name, version, principal)
	if keyhold.ErrorCode(err) == keyhold.EInvalid {
		// The policy names something that is not a vault: that is the
		// policy's fault, not a failure of the check.
		fail(CheckPolicyKeyVault, keyhold.ErrorMessage(err), "set properties.encryption.keyVault.id to the resource id of a key vault")
		return &keyvault.AccessReport{VaultID: ref.ID, KeyName: ref.Key.Name, PrincipalID: principal.ID, CheckedAt: m.now(), Checks: pre}, nil
	}
	if err != nil {
		return nil, err
	}
	rep.Checks = append(pre, rep.Checks...)
	return rep, nil
}

// HealthOf turns a report into a health status and its detail: Unhealthy
// when a check blocks the use of the key, Warning when one needs attention,
// Healthy otherwise. CheckedAt is left for the caller to set.
func HealthOf(rep *keyvault.AccessReport) (string, HealthDetail) {
	d := HealthDetail{Reason: rep.Reason()}
	switch {
	case !rep.Usable():
		d.Definite = rep.Definite()
		return HealthUnhealthy, d
	case len(rep.Warnings()) > 0:
		return HealthWarning, d
	}
	return HealthHealthy, d
}

// watchQueue is a min-heap of watches by due time.
type watchQueue []*watch

func (q watchQueue) Len() int           { return len(q) }
func (q watchQueue) Less(i, j int) bool { return q[i].due.Before(q[j].due) }
func (q watchQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *watchQueue) Push(x any) {
	w := x.(*watch)
	w.index = len(*q)
	*q = append(*q, w)
}
func (q *watchQueue) Pop() any {
	old := *q
	w := old[len(old)-1]
	old[len(old)-1] = nil
	w.index = -1
	*q = old[:len(old)-1]
	return w
}
