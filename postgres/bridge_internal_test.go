package postgres

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/events"
)

// TestForwardNeverBlocks fills the queue: Publish's forwarder returns at
// once and the bridge owes the others a Resync.
func TestForwardNeverBlocks(t *testing.T) {
	b := &bridge{queue: make(chan events.Event, 2), logger: slog.New(slog.DiscardHandler)}
	done := make(chan struct{})
	go func() {
		for range 5 {
			b.forward(context.Background(), events.Event{Kind: events.KeyChanged})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("forward blocked on a full queue")
	}
	if got, want := len(b.queue), 2; got != want {
		t.Errorf("queued %d, want %d", got, want)
	}
	if !b.owed.Load() {
		t.Error("dropped events did not make the bridge owe a Resync")
	}
}

func TestEncode(t *testing.T) {
	b := &bridge{origin: "o1", logger: slog.New(slog.DiscardHandler)}
	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	tests := []struct {
		name string
		in   events.Event
		want wireEvent
	}{
		{"small", events.Event{Kind: events.KeyDeleted, TenantID: "t", Scope: "/k", Subject: "p", Time: at, Detail: "d"},
			wireEvent{Origin: "o1", Kind: events.KeyDeleted, TenantID: "t", Scope: "/k", Subject: "p", Time: at, Detail: "d"}},
		{"detail dropped", events.Event{Kind: events.KeyDeleted, Scope: "/k", Time: at, Detail: strings.Repeat("é", 5000)},
			wireEvent{Origin: "o1", Kind: events.KeyDeleted, Scope: "/k", Time: at}},
		{"resync instead", events.Event{Kind: events.KeyDeleted, TenantID: "t", Scope: strings.Repeat("/k", 4000), Time: at},
			wireEvent{Origin: "o1", Kind: events.Resync, TenantID: "t", Time: at,
				Detail: "events: an event was too large to send; re-read the state"}},
	}
	for _, tt := range tests {
		p := b.encode(tt.in)
		if len(p) > maxPayload {
			t.Errorf("%s: payload of %d bytes, over %d", tt.name, len(p), maxPayload)
		}
		var got wireEvent
		if err := json.Unmarshal([]byte(p), &got); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, got, tt.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	for attempt := range 30 {
		d := backoff(attempt)
		ceil := min(minBackoff<<min(attempt, 20), maxBackoff)
		if d > ceil || d < ceil-ceil/4 {
			t.Errorf("backoff(%d) = %v, want within [%v, %v]", attempt, d, ceil-ceil/4, ceil)
		}
	}
}
