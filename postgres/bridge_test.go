package postgres_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/postgres"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// node is one process's bus and bridge. Its subscription sees only events
// whose scope is under the test's own prefix, and every Resync, because the
// channel is shared by every test run on the database.
type node struct {
	bus    *events.Bus
	sub    *events.Subscription
	stop   func()
	origin string
}

func startNode(t *testing.T, url, prefix string) *node {
	t.Helper()
	n := &node{bus: events.New(nil), origin: randomHex(8)}
	n.sub = n.bus.Subscribe(func(e events.Event) bool {
		return e.Kind == events.Resync || strings.HasPrefix(e.Scope, prefix)
	})
	stop, err := postgres.StartBridge(t.Context(), url, n.bus, nil, n.origin)
	if err != nil {
		t.Fatalf("Bridge: %v", err)
	}
	n.stop = stop
	t.Cleanup(func() {
		stop()
		n.sub.Close()
	})
	return n
}

// next returns the next event within d that is not a Resync, or fails.
// Resyncs are skipped: another test run on the database may cause one.
func (n *node) next(t *testing.T, d time.Duration) events.Event {
	t.Helper()
	return n.await(t, d, func(e events.Event) bool { return e.Kind != events.Resync })
}

// await returns the first event within d that match accepts, or fails.
func (n *node) await(t *testing.T, d time.Duration, match func(events.Event) bool) events.Event {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-n.sub.C():
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no matching event within %v", d)
			return events.Event{}
		}
	}
}

func isResync(tenant, detail string) func(events.Event) bool {
	return func(e events.Event) bool {
		return e.Kind == events.Resync && e.TenantID == tenant && strings.Contains(e.Detail, detail)
	}
}

// none fails if an event other than a Resync arrives within d.
func (n *node) none(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e := <-n.sub.C():
			if e.Kind != events.Resync {
				t.Fatalf("unexpected event %+v", e)
			}
		case <-deadline:
			return
		}
	}
}

func TestBridge(t *testing.T) {
	url := unitenv.PostgresURL(t)
	prefix := "/test/" + randomHex(8)
	a, b := startNode(t, url, prefix), startNode(t, url, prefix)

	sent := events.Event{Kind: events.KeyDisabled, TenantID: "t1", Scope: prefix + "/keys/k1", Subject: "p1",
		Time: time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC), Detail: "disabled by ann"}
	a.bus.Publish(t.Context(), sent)
	if got := a.next(t, time.Second); got != sent {
		t.Errorf("local delivery: got %+v, want %+v", got, sent)
	}
	got := b.next(t, time.Second)
	if !got.Time.Equal(sent.Time) {
		t.Errorf("time: got %v, want %v", got.Time, sent.Time)
	}
	got.Time = sent.Time
	if got != sent {
		t.Errorf("on the other bus: got %+v, want %+v", got, sent)
	}

	// And back: B's event reaches A once; neither sees its own event twice,
	// and the event B injected is not sent on again.
	back := events.Event{Kind: events.KeyEnabled, Scope: prefix + "/keys/k2", Time: sent.Time}
	b.bus.Publish(t.Context(), back)
	if got := b.next(t, time.Second); got.Kind != events.KeyEnabled {
		t.Errorf("local delivery on B: got %+v", got)
	}
	if got := a.next(t, time.Second); got.Kind != events.KeyEnabled || got.Scope != back.Scope {
		t.Errorf("on A: got %+v, want %+v", got, back)
	}
	a.none(t, 500*time.Millisecond)
	b.none(t, 10*time.Millisecond)
}

func TestBridgeLargeEvents(t *testing.T) {
	url := unitenv.PostgresURL(t)
	prefix := "/test/" + randomHex(8)
	a, b := startNode(t, url, prefix), startNode(t, url, prefix)

	// Too long with its Detail: it goes without.
	long := events.Event{Kind: events.KeyChanged, Scope: prefix + "/keys/k", Detail: strings.Repeat("d", 9000)}
	a.bus.Publish(t.Context(), long)
	got := b.next(t, time.Second)
	if got.Kind != events.KeyChanged || got.Scope != long.Scope || got.Detail != "" {
		t.Errorf("long detail: got kind %q scope %q detail of %d bytes; want the event without detail", got.Kind, got.Scope, len(got.Detail))
	}
	// Too long even so: the others are told to resync.
	// The tenant stays, which lets this test tell its Resync from others'.
	a.bus.Publish(t.Context(), events.Event{Kind: events.KeyChanged, TenantID: prefix, Scope: prefix + strings.Repeat("/s", 5000)})
	b.await(t, time.Second, isResync(prefix, "too large"))
	a.next(t, time.Second)
	a.next(t, time.Second)
	a.none(t, 300*time.Millisecond)
	b.none(t, 10*time.Millisecond)
}

// TestBridgeReconnect kills B's listening connection: B reconnects, injects
// a Resync, and hears A again.
func TestBridgeReconnect(t *testing.T) {
	url := unitenv.PostgresURL(t)
	prefix := "/test/" + randomHex(8)
	a, b := startNode(t, url, prefix), startNode(t, url, prefix)

	admin, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var killed int
	if err := admin.QueryRowContext(t.Context(), `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, "keyhold-events "+b.origin).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d listening connections, want 1", killed)
	}
	b.await(t, 5*time.Second, isResync("", "connection to other processes was lost"))
	e := events.Event{Kind: events.VaultChanged, Scope: prefix + "/vaults/v"}
	a.bus.Publish(t.Context(), e)
	if got := b.next(t, time.Second); got.Kind != e.Kind || got.Scope != e.Scope {
		t.Errorf("after reconnecting: got %+v, want %+v", got, e)
	}
}

// TestBridgeStop stops B: it hears nothing more and A's events still flow
// locally. Stop may be called twice.
func TestBridgeStop(t *testing.T) {
	url := unitenv.PostgresURL(t)
	prefix := "/test/" + randomHex(8)
	a, b := startNode(t, url, prefix), startNode(t, url, prefix)
	b.stop()
	b.stop()
	a.bus.Publish(t.Context(), events.Event{Kind: events.KeyPurged, Scope: prefix + "/keys/k"})
	if got := a.next(t, time.Second); got.Kind != events.KeyPurged {
		t.Errorf("local delivery: got %+v", got)
	}
	b.none(t, 500*time.Millisecond)
	// B's bus no longer forwards: its events stay home.
	b.bus.Publish(t.Context(), events.Event{Kind: events.KeyPurged, Scope: prefix + "/keys/k2"})
	a.none(t, 500*time.Millisecond)
}

// TestBridgeErrors needs no database.
func TestBridgeErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	bus := events.New(nil)
	tests := []struct {
		name, url string
		bus       *events.Bus
		code      string
	}{
		{"no bus", "postgres://u:s3cret@127.0.0.1/x", nil, keyhold.EInvalid},
		{"empty url", "", bus, keyhold.EInvalid},
		{"unparsable", "postgres://u:s3cret@[::1/x", bus, keyhold.EInvalid},
		{"unreachable", "postgres://u:s3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", bus, keyhold.EUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop, err := postgres.Bridge(ctx, tt.url, tt.bus, nil)
			if stop != nil {
				stop()
				t.Error("got a stop func with an error")
			}
			if got := keyhold.ErrorCode(err); got != tt.code {
				t.Fatalf("got %v (code %q), want code %q", err, got, tt.code)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}
