// Package events is Keyhold's in-process stream of domain events: facts such
// as "access to this key may have changed" that one part publishes and others
// react to at once (the Key Vault publishes, enterprise-policy health and the
// environment lifecycle subscribe).
//
// Events are hints to look again, not the state itself: a subscriber reacts
// by re-reading the store. That is why a subscriber that falls behind loses
// events rather than slowing the publisher, and gets a Resync event telling
// it to re-read everything it watches.
//
// A Bus starts no goroutines. A later bridge (PostgreSQL LISTEN/NOTIFY) can
// carry events between processes: it installs a Forwarder, which sees every
// local Publish, and calls Inject for events that arrive from elsewhere,
// which are delivered locally but not forwarded again.
package events

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Event kinds. Scope is the resource the event is about; Subject, where set,
// is the principal whose access changed.
const (
	// AccessPolicyChanged: a vault's access policies were added, replaced or
	// removed. Scope is the vault id; Subject the object id, if one.
	AccessPolicyChanged = "AccessPolicyChanged"
	// RoleAssignmentChanged: a role assignment was created or deleted.
	// Scope is the assignment's scope; Subject its principal id.
	RoleAssignmentChanged = "RoleAssignmentChanged"
	// KeyCreated: a key was created or imported. Scope is the key id.
	KeyCreated = "KeyCreated"
	// KeyChanged: a key's attributes or key_ops were updated. Scope is the
	// key id (versioned if one version changed).
	KeyChanged = "KeyChanged"
	// KeyDisabled: a key or key version was disabled.
	KeyDisabled = "KeyDisabled"
	// KeyEnabled: a key or key version was enabled again.
	KeyEnabled = "KeyEnabled"
	// KeyDeleted: a key was soft-deleted.
	KeyDeleted = "KeyDeleted"
	// KeyRecovered: a soft-deleted key was recovered.
	KeyRecovered = "KeyRecovered"
	// KeyPurged: a deleted key was purged; it is gone for good.
	KeyPurged = "KeyPurged"
	// KeyExpired: a key version reached its exp time.
	KeyExpired = "KeyExpired"
	// KeyRotated: a key got a new version. Scope is the new versioned id.
	KeyRotated = "KeyRotated"
	// VaultChanged: a vault's properties changed (for example the switch
	// between access policies and RBAC).
	VaultChanged = "VaultChanged"
	// VaultDeleted: a vault was soft-deleted.
	VaultDeleted = "VaultDeleted"
	// VaultRecovered: a soft-deleted vault was recovered.
	VaultRecovered = "VaultRecovered"
	// VaultPurged: a deleted vault was purged.
	VaultPurged = "VaultPurged"
	// VaultNetworkChanged: a vault's network rules or public access changed.
	VaultNetworkChanged = "VaultNetworkChanged"
	// PrincipalChanged: a principal was disabled, deleted or changed groups.
	// Subject is its object id.
	PrincipalChanged = "PrincipalChanged"
	// PolicyChanged: an enterprise policy was created, changed or deleted.
	PolicyChanged = "PolicyChanged"
	// EnvironmentChanged: an environment's encryption state changed (locked,
	// unlocked, linked, unlinked).
	EnvironmentChanged = "EnvironmentChanged"

	// Resync is synthetic: the bus had to drop events for this subscriber,
	// which should now re-read everything it watches. It passes no filter;
	// every subscription gets it.
	Resync = "Resync"
)

// Event is one domain event.
type Event struct {
	Kind     string    // one of the kinds above
	TenantID string    // the tenant the affected resource belongs to
	Scope    string    // resource id, e.g. a vault or key id
	Subject  string    // e.g. a principal id; may be empty
	Time     time.Time // when it happened; Publish fills it in if zero
	Detail   string    // free text for logs; never a secret
}

// Forwarder receives every event published in this process, after local
// delivery, to carry it to other processes. It is called synchronously by
// Publish, so it must not block for long: a bridge should queue and send
// from its own goroutine. Events given to Inject do not reach it.
type Forwarder func(ctx context.Context, e Event)

// DefaultBuffer is the number of events a subscription holds before the bus
// starts dropping events for it.
const DefaultBuffer = 256

// Bus fans events out to subscriptions. Publish never blocks on a
// subscriber. Its zero value is not usable; call New. A Bus is safe for
// concurrent use.
type Bus struct {
	logger *slog.Logger
	now    func() time.Time
	buffer int

	// pubMu serializes delivery, so that every subscription sees events in
	// the same order. Delivery never blocks, so holding it is cheap.
	pubMu sync.Mutex

	mu      sync.RWMutex
	subs    map[*Subscription]struct{}
	forward Forwarder

	published atomic.Uint64
	dropped   atomic.Uint64
}

// Option configures a Bus.
type Option func(*Bus)

// WithBuffer sets the per-subscription buffer (at least 1; default
// DefaultBuffer).
func WithBuffer(n int) Option {
	return func(b *Bus) {
		if n >= 1 {
			b.buffer = n
		}
	}
}

// WithNow sets the clock used to stamp events without a Time.
func WithNow(now func() time.Time) Option {
	return func(b *Bus) {
		if now != nil {
			b.now = now
		}
	}
}

// New returns a Bus that logs to logger (nil means discard).
func New(logger *slog.Logger, opts ...Option) *Bus {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Bus{logger: logger, now: time.Now, buffer: DefaultBuffer, subs: map[*Subscription]struct{}{}}
	for _, o := range opts {
		o(b)
	}
	return b
}

// SetForwarder installs f to receive every locally published event; nil
// removes it.
func (b *Bus) SetForwarder(f Forwarder) {
	b.mu.Lock()
	b.forward = f
	b.mu.Unlock()
}

// Publish delivers e to every subscription whose filter accepts it, then
// hands it to the Forwarder. It never waits for a subscriber: one whose
// buffer is full loses e and gets a Resync instead. A zero e.Time is set to
// now. ctx is passed to the Forwarder only.
func (b *Bus) Publish(ctx context.Context, e Event) {
	e = b.deliver(e)
	b.mu.RLock()
	f := b.forward
	b.mu.RUnlock()
	if f != nil {
		f(ctx, e)
	}
}

// Inject delivers an event that came from another process, as Publish does,
// but does not hand it to the Forwarder, so that it is not sent back.
func (b *Bus) Inject(e Event) {
	b.deliver(e)
}

func (b *Bus) deliver(e Event) Event {
	if e.Time.IsZero() {
		e.Time = b.now()
	}
	b.pubMu.Lock()
	defer b.pubMu.Unlock()
	b.published.Add(1)
	b.mu.RLock()
	subs := make([]*Subscription, 0, len(b.subs))
	for s := range b.subs {
		subs = append(subs, s)
	}
	b.mu.RUnlock()
	for _, s := range subs {
		if !s.accepts(e) {
			continue
		}
		if !s.send(e) {
			b.dropped.Add(1)
		}
	}
	return e
}

// Subscribe returns a subscription to the events that filter accepts (nil
// accepts all). filter runs on the publisher's goroutine while deliveries are
// serialized: it must be quick and must not publish. The caller must Close
// the subscription when done.
func (b *Bus) Subscribe(filter func(Event) bool) *Subscription {
	s := &Subscription{
		bus:    b,
		filter: filter,
		size:   b.buffer,
		// One slot more than the buffer, so that a Resync always fits
		// after the regular events.
		ch: make(chan Event, b.buffer+1),
	}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Published returns how many events this bus has delivered (published and
// injected) since it was made, for metrics.
func (b *Bus) Published() uint64 { return b.published.Load() }

// Dropped returns how many deliveries the bus has dropped because a
// subscriber was behind, for metrics.
func (b *Bus) Dropped() uint64 { return b.dropped.Load() }

// Subscribers returns the number of open subscriptions.
func (b *Bus) Subscribers() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.subs)
}

// Subscription is one subscriber's view of a Bus. Receive from C.
type Subscription struct {
	bus    *Bus
	filter func(Event) bool
	size   int

	mu         sync.Mutex // guards the fields below and every send on ch
	ch         chan Event
	closed     bool
	lastResync bool // the last event put on ch was a Resync
	dropped    uint64
}

// C returns the channel events arrive on. It is closed by Close.
func (s *Subscription) C() <-chan Event { return s.ch }

// Dropped returns how many events this subscription has lost.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close ends the subscription: no event is delivered after it returns, and
// C is closed once drained. Close may be called more than once.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.ch)
	}
}

func (s *Subscription) accepts(e Event) (ok bool) {
	if s.filter == nil {
		return true
	}
	defer func() {
		// A broken filter must not take the publisher down with it; the
		// subscriber gets the event and can decide for itself.
		if r := recover(); r != nil {
			s.bus.logger.Error("events: subscription filter panicked", "kind", e.Kind, "panic", r)
			ok = true
		}
	}()
	return s.filter(e)
}

// send puts e on the channel without blocking and reports whether it did.
// Sends happen only under s.mu and only the subscriber receives, so the
// length seen here can only shrink before the send: a send when there is room
// never blocks.
func (s *Subscription) send(e Event) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	n := len(s.ch)
	if n < s.size {
		s.ch <- e
		s.lastResync = false
		return true
	}
	s.dropped++
	// A Resync still waiting in the channel is the last event in it, so it
	// will be read after this drop and covers it.
	if s.lastResync && n > 0 {
		return false
	}
	s.ch <- Event{Kind: Resync, Time: e.Time, Detail: "events: events were dropped because this subscriber fell behind; re-read the state"}
	s.lastResync = true
	s.bus.logger.Warn("events: subscriber fell behind; events dropped", "kind", e.Kind, "scope", e.Scope, "dropped", s.dropped)
	return false
}
