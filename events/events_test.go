package events_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/events"
)

// drain reads what is buffered on s without waiting for more.
func drain(s *events.Subscription) []events.Event {
	var out []events.Event
	for {
		select {
		case e, ok := <-s.C():
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

func kinds(es []events.Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Kind
		if e.Kind != events.Resync && e.Detail != "" {
			out[i] += ":" + e.Detail
		}
	}
	return out
}

func TestFanOutAndFilter(t *testing.T) {
	bus := events.New(nil)
	all := bus.Subscribe(nil)
	defer all.Close()
	keys := bus.Subscribe(func(e events.Event) bool { return strings.HasPrefix(e.Kind, "Key") })
	defer keys.Close()
	tenantB := bus.Subscribe(func(e events.Event) bool { return e.TenantID == "b" })
	defer tenantB.Close()

	ctx := context.Background()
	bus.Publish(ctx, events.Event{Kind: events.KeyDisabled, TenantID: "a", Detail: "1"})
	bus.Publish(ctx, events.Event{Kind: events.AccessPolicyChanged, TenantID: "b", Detail: "2"})
	bus.Publish(ctx, events.Event{Kind: events.KeyRotated, TenantID: "b", Detail: "3"})

	tests := []struct {
		name string
		sub  *events.Subscription
		want []string
	}{
		{"all", all, []string{"KeyDisabled:1", "AccessPolicyChanged:2", "KeyRotated:3"}},
		{"keys", keys, []string{"KeyDisabled:1", "KeyRotated:3"}},
		{"tenant b", tenantB, []string{"AccessPolicyChanged:2", "KeyRotated:3"}},
	}
	for _, tt := range tests {
		if got := kinds(drain(tt.sub)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	if got, want := bus.Published(), uint64(3); got != want {
		t.Errorf("Published() = %d, want %d", got, want)
	}
}

func TestTimeIsFilledIn(t *testing.T) {
	fixed := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	bus := events.New(nil, events.WithNow(func() time.Time { return fixed }))
	s := bus.Subscribe(nil)
	defer s.Close()
	given := fixed.Add(-time.Hour)
	bus.Publish(context.Background(), events.Event{Kind: events.KeyChanged})
	bus.Publish(context.Background(), events.Event{Kind: events.KeyChanged, Time: given})
	got := drain(s)
	if len(got) != 2 || !got[0].Time.Equal(fixed) || !got[1].Time.Equal(given) {
		t.Errorf("times = %v, want %v then %v", got, fixed, given)
	}
}

// TestOrdering publishes from several goroutines at once and checks that
// each publisher's events arrive in order, and that all subscribers see one
// and the same order.
func TestOrdering(t *testing.T) {
	const publishers, each = 8, 200
	bus := events.New(nil, events.WithBuffer(publishers*each))
	a := bus.Subscribe(nil)
	defer a.Close()
	b := bus.Subscribe(nil)
	defer b.Close()

	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				bus.Publish(context.Background(), events.Event{Kind: events.KeyChanged, Subject: strconv.Itoa(p), Detail: strconv.Itoa(i)})
			}
		})
	}
	wg.Wait()
	gotA, gotB := drain(a), drain(b)
	if len(gotA) != publishers*each {
		t.Fatalf("got %d events, want %d", len(gotA), publishers*each)
	}
	next := map[string]int{}
	for _, e := range gotA {
		if got, want := e.Detail, strconv.Itoa(next[e.Subject]); got != want {
			t.Fatalf("publisher %s: got event %s, want %s", e.Subject, got, want)
		}
		next[e.Subject]++
	}
	if !slices.Equal(gotA, gotB) {
		t.Error("two subscribers saw different orders")
	}
}

// TestSlowSubscriber checks that a subscriber that never reads neither
// blocks publishers nor starves a fast subscriber, and that it gets exactly
// one Resync after the events that fit.
func TestSlowSubscriber(t *testing.T) {
	const n = 1000
	var logs bytes.Buffer
	bus := events.New(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil)), events.WithBuffer(4))
	slow := bus.Subscribe(nil)
	defer slow.Close()
	fast := bus.Subscribe(nil)
	defer fast.Close()

	var got []events.Event
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for e := range fast.C() {
			got = append(got, e)
		}
	}()
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := range n {
			bus.Publish(context.Background(), events.Event{Kind: events.KeyChanged, Detail: strconv.Itoa(i)})
			if i%50 == 0 {
				// Give the fast reader a chance to keep up.
				runtime.Gosched()
			}
		}
	}()
	select {
	case <-published:
	case <-time.After(10 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	fast.Close() // C keeps what is buffered; the reader drains it and ends
	<-readerDone

	gotSlow := kinds(drain(slow))
	want := []string{"KeyChanged:0", "KeyChanged:1", "KeyChanged:2", "KeyChanged:3", events.Resync}
	if !slices.Equal(gotSlow, want) {
		t.Errorf("slow subscriber got %q, want %q", gotSlow, want)
	}
	// The fast subscriber (buffer 4 too) may have lost some when it was
	// descheduled; whatever it lost must be announced by a Resync.
	lostFast := fast.Dropped()
	resyncs, received := 0, 0
	for _, e := range got {
		if e.Kind == events.Resync {
			resyncs++
		} else {
			received++
		}
	}
	if (lostFast > 0) != (resyncs > 0) {
		t.Errorf("fast subscriber lost %d events but got %d Resyncs", lostFast, resyncs)
	}
	if uint64(received)+lostFast != n {
		t.Errorf("fast subscriber received %d and lost %d, want %d in all", received, lostFast, n)
	}
	if got, want := slow.Dropped(), uint64(n-4); got != want {
		t.Errorf("slow Dropped() = %d, want %d", got, want)
	}
	if got, want := bus.Dropped(), slow.Dropped()+lostFast; got != want {
		t.Errorf("bus Dropped() = %d, want %d", got, want)
	}
	if !strings.Contains(logs.String(), "fell behind") {
		t.Errorf("no log line about the slow subscriber: %s", logs.String())
	}
}

// TestResyncSequence walks the buffer through full, drained and full again.
func TestResyncSequence(t *testing.T) {
	bus := events.New(nil, events.WithBuffer(2))
	s := bus.Subscribe(nil)
	defer s.Close()
	pub := func(d string) { bus.Publish(context.Background(), events.Event{Kind: events.KeyChanged, Detail: d}) }
	recv := func() string {
		select {
		case e := <-s.C():
			return kinds([]events.Event{e})[0]
		default:
			return "(nothing)"
		}
	}
	pub("1")
	pub("2")
	pub("3") // dropped: Resync queued behind 1 and 2
	if got, want := recv(), "KeyChanged:1"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	pub("4") // dropped: the queued Resync still covers it
	steps := []string{"KeyChanged:2", events.Resync, "(nothing)"}
	for _, want := range steps {
		if got := recv(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	pub("5") // room again
	pub("6")
	pub("7") // dropped: the earlier Resync was read, so a new one comes
	for _, want := range []string{"KeyChanged:5", "KeyChanged:6", events.Resync, "(nothing)"} {
		if got := recv(); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	if got, want := s.Dropped(), uint64(3); got != want {
		t.Errorf("Dropped() = %d, want %d", got, want)
	}
}

func TestClose(t *testing.T) {
	bus := events.New(nil)
	s := bus.Subscribe(nil)
	other := bus.Subscribe(nil)
	defer other.Close()
	bus.Publish(context.Background(), events.Event{Kind: events.KeyDeleted})
	s.Close()
	s.Close() // twice is fine
	bus.Publish(context.Background(), events.Event{Kind: events.KeyPurged})

	var got []string
	for e := range s.C() { // ends: C is closed
		got = append(got, e.Kind)
	}
	if want := []string{events.KeyDeleted}; !slices.Equal(got, want) {
		t.Errorf("closed subscription got %q, want %q", got, want)
	}
	if got, want := bus.Subscribers(), 1; got != want {
		t.Errorf("Subscribers() = %d, want %d", got, want)
	}
	if got, want := kinds(drain(other)), []string{events.KeyDeleted, events.KeyPurged}; !slices.Equal(got, want) {
		t.Errorf("other subscription got %q, want %q", got, want)
	}
}

// TestCloseWhilePublishing races Close against Publish; run with -race.
func TestCloseWhilePublishing(t *testing.T) {
	bus := events.New(nil, events.WithBuffer(8))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					bus.Publish(context.Background(), events.Event{Kind: events.VaultNetworkChanged})
				}
			}
		})
	}
	for range 200 {
		s := bus.Subscribe(nil)
		go func() {
			for range s.C() {
			}
		}()
		s.Close()
	}
	close(stop)
	wg.Wait()
	if got := bus.Subscribers(); got != 0 {
		t.Errorf("Subscribers() = %d after closing all, want 0", got)
	}
}

func TestPanickingFilter(t *testing.T) {
	bus := events.New(nil)
	s := bus.Subscribe(func(e events.Event) bool { panic("broken filter") })
	defer s.Close()
	bus.Publish(context.Background(), events.Event{Kind: events.KeyExpired})
	if got, want := kinds(drain(s)), []string{events.KeyExpired}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestForwarderAndInject bridges two buses the way a LISTEN/NOTIFY bridge
// would, and checks that events cross once and do not come back.
func TestForwarderAndInject(t *testing.T) {
	a, b := events.New(nil), events.New(nil)
	var mu sync.Mutex
	forwarded := map[string][]string{}
	bridge := func(name string, to *events.Bus) events.Forwarder {
		return func(ctx context.Context, e events.Event) {
			mu.Lock()
			forwarded[name] = append(forwarded[name], e.Kind)
			mu.Unlock()
			if e.Time.IsZero() {
				t.Error("forwarded event has no time")
			}
			to.Inject(e)
		}
	}
	a.SetForwarder(bridge("a", b))
	b.SetForwarder(bridge("b", a))
	sa, sb := a.Subscribe(nil), b.Subscribe(nil)
	defer sa.Close()
	defer sb.Close()

	a.Publish(context.Background(), events.Event{Kind: events.KeyDisabled, Scope: "/keys/k1"})
	b.Publish(context.Background(), events.Event{Kind: events.VaultDeleted, Scope: "/vaults/v"})

	want := []string{events.KeyDisabled, events.VaultDeleted}
	for name, s := range map[string]*events.Subscription{"a": sa, "b": sb} {
		if got := kinds(drain(s)); !slices.Equal(got, want) {
			t.Errorf("bus %s delivered %q, want %q", name, got, want)
		}
	}
	if got, want := fmt.Sprint(forwarded), "map[a:[KeyDisabled] b:[VaultDeleted]]"; got != want {
		t.Errorf("forwarded %s, want %s", got, want)
	}
	a.SetForwarder(nil)
	a.Publish(context.Background(), events.Event{Kind: events.KeyPurged})
	if got := kinds(drain(sb)); len(got) != 0 {
		t.Errorf("without a forwarder bus b still got %q", got)
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	bus := events.New(nil, events.WithBuffer(2))
	var subs []*events.Subscription
	for range 50 {
		subs = append(subs, bus.Subscribe(nil))
	}
	for range 10 {
		bus.Publish(context.Background(), events.Event{Kind: events.KeyChanged})
	}
	for _, s := range subs {
		s.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines: %d before, %d after", before, after)
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
