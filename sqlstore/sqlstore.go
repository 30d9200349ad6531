// Package sqlstore implements keyhold.Store over database/sql. The logic lives
// here once; the sqlite and postgres packages are thin drivers that open a
// *sql.DB, run their own migrations and hand this package a Dialect that says
// how their SQL differs.
//
// Every name that ARM compares case-insensitively (resource ids, resource
// group, provider and feature names, subscription ids, scopes, role
// assignment names, user principal names) is stored twice: as given, and as a
// key lowered in Go. Lowering in Go rather than with SQL lower() keeps the
// comparison identical across engines (SQLite's lower() folds ASCII only) and
// lets plain indexes serve every lookup.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold"
)

// Dialect says how one SQL engine differs from the SQL this package writes.
// Queries are written with ? placeholders and ANSI SQL that SQLite and
// PostgreSQL share (INSERT ... ON CONFLICT, partial indexes).
type Dialect struct {
	// Name names the engine in logs and errors, e.g. "sqlite".
	Name string
	// Rebind rewrites a query's ? placeholders into the engine's own; nil
	// leaves the query as written.
	Rebind func(query string) string
	// IsUniqueViolation reports whether err is a unique or primary key
	// violation. Inserts avoid raising them (ON CONFLICT DO NOTHING), so this
	// classifies only the races that slip past that.
	IsUniqueViolation func(err error) bool
	// IsForeignKeyViolation reports whether err is a foreign key violation,
	// which the store reports as ENotFound (the referenced row is gone).
	IsForeignKeyViolation func(err error) bool
	// LockAuditHead is appended to the query that reads the audit chain head
	// inside AppendAudit's transaction, e.g. " FOR UPDATE". Engines whose
	// write transactions are already serialised (SQLite with BEGIN IMMEDIATE)
	// leave it empty.
	LockAuditHead string
	// SkipLocked is appended to the subquery that picks an operation to
	// lease, e.g. " FOR UPDATE SKIP LOCKED", so that concurrent workers
	// each pass over the rows others are claiming. Engines that serialise
	// writers (SQLite) leave it empty: the one UPDATE is atomic there.
	SkipLocked string
	// PrepareHot makes the store prepare each statement once and reuse it
	// outside transactions: on SQLite, parsing a query costs as much as
	// running it, on every request's principal, vault, key and row lookup.
	// Drivers that cache statements themselves (pgx does) leave it off.
	PrepareHot bool
	// BatchBlobType, when set, makes batch updates (ResealRows) one
	// UPDATE ... FROM (VALUES ...) statement per chunk of rows, with each
	// sealed value cast to this type, e.g. "BYTEA". Engines where every
	// statement is a network round trip want it; in-process engines (SQLite)
	// leave it empty and run one prepared statement per row, as fast there.
	BatchBlobType string
	// MigrateLock and MigrateUnlock, when set, are run on one connection
	// around the migrations, so that processes starting together migrate
	// once (PostgreSQL advisory locks).
	MigrateLock, MigrateUnlock string
}

// RebindDollar rewrites ? placeholders outside quoted strings into $1, $2, ...
// as PostgreSQL expects.
func RebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// querier is what *sql.DB, *sql.Tx and *sql.Conn have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Store is keyhold.Store over a *sql.DB, or bound to one *sql.Tx inside
// InTx.
type Store struct {
	db    *sql.DB
	tx    *sql.Tx // non-nil inside InTx
	d     Dialect
	stmts *stmtCache // shared by a Store and the ones InTx binds
}

// stmtCache holds the hot statements prepared on the database, which
// database/sql prepares again on each pooled connection as it needs.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	closed bool
}

// get returns the statement for query, preparing it the first time.
func (c *stmtCache) get(ctx context.Context, db *sql.DB, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st, nil
	}
	if c.closed {
		return nil, errors.New("sqlstore: store is closed")
	}
	st, err := db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.m[query] = st
	return st, nil
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m, c.closed = nil, true
}

var _ keyhold.Store = (*Store)(nil)

// New returns a Store over db, which must already hold the schema (see
// Migrate). The Store owns db: Close closes it.
func New(db *sql.DB, d Dialect) *Store {
	if d.Rebind == nil {
		d.Rebind = func(q string) string { return q }
	}
	if d.IsUniqueViolation == nil {
		d.IsUniqueViolation = func(error) bool { return false }
	}
	if d.IsForeignKeyViolation == nil {
		d.IsForeignKeyViolation = func(error) bool { return false }
	}
	return &Store{db: db, d: d, stmts: &stmtCache{m: map[string]*sql.Stmt{}}}
}

// DB returns the underlying database, for drivers' own tests and tools.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database. On a Store bound to a transaction (the one InTx
// hands to fn) it does nothing: the transaction belongs to InTx.
func (s *Store) Close() error {
	if s.tx != nil {
		return nil
	}
	s.stmts.close()
	if err := s.db.Close(); err != nil {
		return keyhold.Internal("sqlstore", err)
	}
	return nil
}

// InTx runs fn with a Store bound to one transaction, and commits if fn
// returns nil. If fn returns an error the transaction is rolled back and that
// error is returned as it is; if fn panics the transaction is rolled back and
// the panic goes on. On a Store already bound to a transaction, InTx runs fn
// in that same transaction, so that helpers can nest freely.
func (s *Store) InTx(ctx context.Context, fn func(tx keyhold.Store) error) error {
	return s.inTx(ctx, func(ts *Store) error { return fn(ts) })
}

func (s *Store) inTx(ctx context.Context, fn func(ts *Store) error) (err error) {
	if s.tx != nil {
		return fn(s)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	done := false
	defer func() {
		if !done {
			// A panic is on its way up: undo, then let it go on.
			_ = tx.Rollback()
		}
	}()
	ts := &Store{db: s.db, tx: tx, d: s.d, stmts: s.stmts}
	if err := fn(ts); err != nil {
		done = true
		_ = tx.Rollback()
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return s.wrap(err)
	}
	return nil
}

func (s *Store) q() querier {
	if s.tx != nil {
		return s.tx
	}
	return s.db
}

func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	var err error
	if st := s.hot(ctx, query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = s.q().ExecContext(ctx, s.d.Rebind(query), args...)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return res, nil
}

// execN runs a statement and returns how many rows it changed.
func (s *Store) execN(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, keyhold.Internal("sqlstore", err)
	}
	return n, nil
}

// query runs a query, through a prepared statement outside transactions
// where the dialect wants them (see hot): every query string the store
// builds is one of a small, fixed set, so the cache stays small.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	var rows *sql.Rows
	var err error
	if st := s.hot(ctx, query); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = s.q().QueryContext(ctx, s.d.Rebind(query), args...)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return rows, nil
}

// queryRow is query for one row.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.hot(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.q().QueryRowContext(ctx, s.d.Rebind(query), args...)
}

// hot returns the prepared statement for query when the dialect asks for
// them and s is not in a transaction (where a statement prepared on the
// database would have to be prepared again on the transaction's
// connection), or nil to run the query as usual. A statement that fails to
// prepare is run as usual too, which reports the error.
func (s *Store) hot(ctx context.Context, query string) *sql.Stmt {
	if !s.d.PrepareHot || s.tx != nil {
		return nil
	}
	st, err := s.stmts.get(ctx, s.db, s.d.Rebind(query))
	if err != nil {
		return nil
	}
	return st
}

// wrap turns a driver error into a *keyhold.Error that never carries SQL text
// in its Message. Errors that already are *keyhold.Error pass through.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	var ke *keyhold.Error
	switch {
	case errors.As(err, &ke):
		return err
	case s.d.IsUniqueViolation(err):
		return &keyhold.Error{Code: keyhold.EConflict, Message: "sqlstore: already exists", Err: err}
	case s.d.IsForeignKeyViolation(err):
		return &keyhold.Error{Code: keyhold.ENotFound, Message: "sqlstore: a referenced record does not exist", Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &keyhold.Error{Code: keyhold.EUnavailable, Message: "sqlstore: request cancelled or timed out", Err: err}
	}
	return keyhold.Internal("sqlstore", err)
}

func notFound(format string, args ...any) error {
	return keyhold.Errorf(keyhold.ENotFound, "sqlstore: "+format+" not found", args...)
}

func conflict(format string, args ...any) error {
	return keyhold.Errorf(keyhold.EConflict, "sqlstore: "+format+" already exists", args...)
}

func invalid(format string, args ...any) error {
	return keyhold.Errorf(keyhold.EInvalid, "sqlstore: "+format, args...)
}

// key lowers a name for case-insensitive comparison.
func key(s string) string { return strings.ToLower(s) }

// nullKey is key(s), or NULL for "" so that unique indexes ignore absent
// values in both engines.
func nullKey(s string) any {
	if s == "" {
		return nil
	}
	return strings.ToLower(s)
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// scopeKey normalises a scope for comparison: lowered, without a trailing
// slash, so that the root scope "/" becomes "".
func scopeKey(scope string) string {
	return strings.TrimRight(strings.ToLower(scope), "/")
}

// scopeUnder returns the condition and arguments that select rows whose
// column (a scopeKey) is prefix or below it at a segment boundary. Keys below
// p start with p+"/", so they lie in [p+"/", p+"0"), '0' being the byte after
// '/'. The condition is written as the one index range [p, p+"0") and a
// filter that drops the siblings inside it ("/subscriptions/a-b" sorts between
// "/subscriptions/a" and "/subscriptions/a/"). Unlike LIKE it needs no
// escaping; PostgreSQL columns are COLLATE "C" so that both engines order by
// bytes. It returns "" when prefix is the root, which is above everything.
func scopeUnder(column, prefix string) (string, []any) {
	p := scopeKey(prefix)
	if p == "" {
		return "", nil
	}
	return "(" + column + " >= ? AND " + column + " < ? AND (" + column + " = ? OR " + column + " >= ?))",
		[]any{p, p + "0", p, p + "/"}
}

// timeLayout is fixed width, so that stored times sort as text, and keeps
// nanoseconds, which PostgreSQL's timestamptz would round to microseconds.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func encTime(t time.Time) (string, error) {
	u := t.UTC()
	if u.Year() < 0 || u.Year() > 9999 {
		return "", invalid("time %s is out of range", t.Format(time.RFC3339))
	}
	return u.Format(timeLayout), nil
}

// encTimes encodes several times, stopping at the first bad one.
func encTimes(ts ...time.Time) ([]string, error) {
	out := make([]string, len(ts))
	for i, t := range ts {
		var err error
		if out[i], err = encTime(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dbTime scans a stored time.
type dbTime struct{ t *time.Time }

func (d dbTime) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
		*d.t = time.Time{}
		return nil
	default:
		return fmt.Errorf("sqlstore: cannot scan %T into a time", src)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("sqlstore: bad stored time: %w", err)
	}
	*d.t = t
	return nil
}

// dbJSON scans a JSON text column into a value.
type dbJSON struct{ v any }

func (d dbJSON) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	case nil:
		return nil
	default:
		return fmt.Errorf("sqlstore: cannot scan %T as JSON", src)
	}
	return json.Unmarshal(b, d.v)
}

// dbRaw scans a nullable text column into a json.RawMessage.
type dbRaw struct{ m *json.RawMessage }

func (d dbRaw) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*d.m = json.RawMessage(v)
	case []byte:
		*d.m = append(json.RawMessage(nil), v...)
	case nil:
		*d.m = nil
	default:
		return fmt.Errorf("sqlstore: cannot scan %T as JSON", src)
	}
	return nil
}

// dbString scans a nullable text column, NULL becoming "".
type dbString struct{ s *string }

func (d dbString) Scan(src any) error {
	switch v := src.(type) {
	case string:
		*d.s = v
	case []byte:
		*d.s = string(v)
	case nil:
		*d.s = ""
	default:
		return fmt.Errorf("sqlstore: cannot scan %T as text", src)
	}
	return nil
}

func encJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", invalid("cannot encode value as JSON")
	}
	return string(b), nil
}

// encRaw stores a json.RawMessage as text, NULL when empty. Invalid JSON is
// refused here, where the caller can still be told, rather than later when the
// resource is marshalled into a response.
func encRaw(field string, m json.RawMessage) (any, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if !json.Valid(m) {
		return nil, invalid("%s is not valid JSON", field)
	}
	return string(m), nil
}

// scanAll runs a query and collects one value per row with scan.
func scanAll[T any](ctx context.Context, s *Store, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// Empty, not nil, so that callers encoding a list get [] rather than null.
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	return out, nil
}

// where joins conditions with AND into a WHERE clause.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}
