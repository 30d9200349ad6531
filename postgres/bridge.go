package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/events"
)

// EventChannel is the PostgreSQL notification channel that carries events
// between Keyhold processes sharing a database.
const EventChannel = "keyhold_events"

// maxPayload is the largest notification payload Bridge sends. PostgreSQL
// refuses payloads of 8000 bytes or more.
const maxPayload = 7999

// Bridge tuning. A var rather than const so that tests can shorten them.
var (
	// bridgeQueue is how many events wait to be sent before the bridge
	// starts dropping them (and owes the others a Resync).
	bridgeQueue = 1024
	// minBackoff and maxBackoff bound the wait between reconnects and send
	// retries; it doubles from min to max, with jitter.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 30 * time.Second
	// dialTimeout bounds one connection attempt.
	dialTimeout = 10 * time.Second
)

// wireEvent is an event as it travels in a notification payload.
type wireEvent struct {
	Origin   string    `json:"origin"`
	Kind     string    `json:"kind"`
	TenantID string    `json:"tenantId,omitempty"`
	Scope    string    `json:"scope,omitempty"`
	Subject  string    `json:"subject,omitempty"`
	Time     time.Time `json:"time"`
	Detail   string    `json:"detail,omitempty"`
}

// bridge is one process's end of the event channel.
type bridge struct {
	url    string
	bus    *events.Bus
	logger *slog.Logger
	origin string // this process's id; notifications carrying it are its own

	sendDB *sql.DB
	queue  chan events.Event
	// owed is set when an event could not be queued: the others missed it,
	// so the next thing sent is a Resync.
	owed atomic.Bool

	wg sync.WaitGroup
}

// Bridge carries events between the Keyhold processes that share the
// PostgreSQL database at url. Events published on bus are sent to the others
// with NOTIFY on EventChannel; notifications from the others are delivered on
// bus with Inject, so they are not sent back. Each process has its own
// random origin id and ignores its own notifications.
//
// A dedicated connection LISTENs; when it breaks, the bridge reconnects with
// backoff and then injects a Resync event, since notifications sent while it
// was away are lost. Sending never blocks Publish: events wait in a bounded
// queue and are sent, with retries, from their own goroutine; if the queue
// overflows the others get a Resync in place of the lost events. A payload
// too large for NOTIFY loses its Detail, or else becomes a Resync.
//
// Bridge returns once it listens, so that every notification sent after it
// returns reaches bus. It runs until stop is called or ctx ends; stop removes
// the forwarder from bus, closes the connections and waits for the
// goroutines. It returns EInvalid for a nil bus or an empty or unparsable
// url, and EUnavailable if the database cannot be reached. The url, which may
// hold a password, never appears in an error message.
func Bridge(ctx context.Context, url string, bus *events.Bus, logger *slog.Logger) (stop func(), err error) {
	if bus == nil {
		return nil, keyhold.Errorf(keyhold.EInvalid, "postgres: the event bridge needs a bus")
	}
	if url == "" {
		return nil, keyhold.Errorf(keyhold.EInvalid, "postgres: a database URL is required")
	}
	if _, err := pgx.ParseConfig(url); err != nil {
		return nil, &keyhold.Error{Code: keyhold.EInvalid, Message: "postgres: the database URL is not valid",
			Err: errors.New("cannot parse the database URL")}
	}
	id := make([]byte, 8)
	rand.Read(id)
	return startBridge(ctx, url, bus, logger, hex.EncodeToString(id))
}

// startBridge is Bridge with a given origin id, for tests.
func startBridge(ctx context.Context, url string, bus *events.Bus, logger *slog.Logger, origin string) (stop func(), err error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &bridge{url: url, bus: bus, origin: origin, queue: make(chan events.Event, bridgeQueue)}
	b.logger = logger.With("component", "events-bridge", "origin", b.origin)

	conn, err := b.listen(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	b.sendDB, err = sql.Open("pgx", url)
	if err != nil {
		conn.Close(context.Background())
		return nil, keyhold.Internal("postgres", err)
	}
	// One connection is enough: sends are sequential.
	b.sendDB.SetMaxOpenConns(1)
	b.sendDB.SetMaxIdleConns(1)
	if err := b.sendDB.PingContext(ctx); err != nil {
		conn.Close(context.Background())
		b.sendDB.Close()
		return nil, unavailable(err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	b.wg.Add(2)
	go b.receive(runCtx, conn)
	go b.send(runCtx)
	bus.SetForwarder(b.forward)
	b.logger.Info("events: bridge listening", "channel", EventChannel)

	var once sync.Once
	return func() {
		once.Do(func() {
			bus.SetForwarder(nil)
			cancel()
			b.wg.Wait()
			b.sendDB.Close()
		})
	}, nil
}

func unavailable(err error) error {
	return &keyhold.Error{Code: keyhold.EUnavailable, Message: "postgres: cannot reach the database for events", Err: err}
}

// listen opens the LISTEN connection. Its application_name carries the
// origin, so that an operator (or a test) can tell the bridges apart.
func (b *bridge) listen(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(b.url)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["application_name"] = "keyhold-events " + b.origin
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(dctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(dctx, "LISTEN "+EventChannel); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// forward is the bus's Forwarder: it queues e without blocking Publish.
func (b *bridge) forward(_ context.Context, e events.Event) {
	select {
	case b.queue <- e:
	default:
		if !b.owed.Swap(true) {
			b.logger.Warn("events: bridge queue full; other processes will be told to resync", "kind", e.Kind)
		}
	}
}

// send delivers queued events with NOTIFY, retrying each until it goes or
// the bridge stops.
func (b *bridge) send(ctx context.Context) {
	defer b.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-b.queue:
			if b.owed.Swap(false) {
				if !b.notify(ctx, events.Event{Kind: events.Resync, Time: e.Time,
					Detail: "events: a process dropped events it should have sent; re-read the state"}) {
					return
				}
			}
			if !b.notify(ctx, e) {
				return
			}
		}
	}
}

// notify sends one event, retrying with backoff; it returns false only when
// the bridge stops first.
func (b *bridge) notify(ctx context.Context, e events.Event) bool {
	payload := b.encode(e)
	for attempt := 0; ; attempt++ {
		_, err := b.sendDB.ExecContext(ctx, `SELECT pg_notify($1, $2)`, EventChannel, payload)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		b.logger.Warn("events: sending a notification failed; retrying", "kind", e.Kind, "attempt", attempt+1, "err", err)
		if !sleep(ctx, backoff(attempt)) {
			return false
		}
	}
}

// encode makes e's payload, shedding Detail and then everything but a
// Resync to stay under PostgreSQL's limit.
func (b *bridge) encode(e events.Event) string {
	w := wireEvent{Origin: b.origin, Kind: e.Kind, TenantID: e.TenantID, Scope: e.Scope, Subject: e.Subject,
		Time: e.Time, Detail: e.Detail}
	p, err := json.Marshal(w)
	if err == nil && len(p) <= maxPayload {
		return string(p)
	}
	w.Detail = ""
	if p, err = json.Marshal(w); err == nil && len(p) <= maxPayload {
		return string(p)
	}
	b.logger.Warn("events: event too large for a notification; sending a resync", "kind", e.Kind, "bytes", len(p))
	w = wireEvent{Origin: b.origin, Kind: events.Resync, TenantID: e.TenantID, Time: e.Time,
		Detail: "events: an event was too large to send; re-read the state"}
	p, _ = json.Marshal(w)
	return string(p)
}

// receive injects other processes' notifications into the bus, reconnecting
// when the connection breaks.
func (b *bridge) receive(ctx context.Context, conn *pgx.Conn) {
	defer b.wg.Done()
	defer func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(cctx)
			cancel()
		}
	}()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err == nil {
			b.inject(n)
			continue
		}
		if ctx.Err() != nil {
			return
		}
		b.logger.Warn("events: lost the listening connection; reconnecting", "err", err)
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
		conn = nil
		for attempt := 0; conn == nil; attempt++ {
			if !sleep(ctx, backoff(attempt)) {
				return
			}
			if conn, err = b.listen(ctx); err != nil {
				conn = nil
				if ctx.Err() != nil {
					return
				}
				b.logger.Warn("events: reconnecting failed", "attempt", attempt+1, "err", err)
			}
		}
		b.logger.Info("events: listening again; asking subscribers to resync")
		b.bus.Inject(events.Event{Kind: events.Resync,
			Detail: "events: the connection to other processes was lost; notifications may have been missed"})
	}
}

func (b *bridge) inject(n *pgconn.Notification) {
	if n.Channel != EventChannel {
		return
	}
	var w wireEvent
	if err := json.Unmarshal([]byte(n.Payload), &w); err != nil || w.Kind == "" {
		// Not ours to understand (another tool on the channel): logged
		// without the payload, which is not ours to print either.
		b.logger.Warn("events: ignoring a notification that is not an event", "bytes", len(n.Payload))
		return
	}
	if w.Origin == b.origin {
		return
	}
	b.bus.Inject(events.Event{Kind: w.Kind, TenantID: w.TenantID, Scope: w.Scope, Subject: w.Subject,
		Time: w.Time, Detail: w.Detail})
}

// backoff returns the wait before retry attempt (0-based): doubling from
// minBackoff up to maxBackoff, less up to a quarter at random so that
// processes that lost the database together do not return in step.
func backoff(attempt int) time.Duration {
	d := minBackoff
	for i := 0; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d - time.Duration(mrand.Int64N(int64(d)/4+1))
}

// sleep waits d or until ctx ends, and reports whether it waited the full d.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
