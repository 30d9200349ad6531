package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/keyhold/keyhold"
)

// Tables are keyed by their name lowered in Go, and rows by that key: a row
// says which table it is in by table_key alone, so stores hand rows back
// with Table lower-cased. Every hot row operation (get, put, delete, reseal)
// is one statement on the primary key; the environment's existence is
// checked through the table, which belongs to it.

const tableCols = `environment_id, name, display_name, schema_json, created_at`

func scanTable(r interface{ Scan(...any) error }) (*keyhold.Table, error) {
	t := &keyhold.Table{}
	err := r.Scan(&t.EnvironmentID, &t.Name, &t.DisplayName, dbRaw{&t.Schema}, dbTime{&t.CreatedAt})
	return t, err
}

// CreateTable stores t; the name keeps its case for display and compares
// case-insensitively. It returns EInvalid without a name or with a schema
// that is not JSON, ENotFound if the environment does not exist and
// EConflict if the name is taken.
func (s *Store) CreateTable(ctx context.Context, t *keyhold.Table) error {
	if t.Name == "" {
		return invalid("table name is required")
	}
	schema, err := encRaw("table schema", t.Schema)
	if err != nil {
		return err
	}
	created, err := encTime(t.CreatedAt)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *Store) error {
		if err := tx.environmentExists(ctx, t.EnvironmentID); err != nil {
			return err
		}
		n, err := tx.execN(ctx, `INSERT INTO env_tables (environment_id, name_key, name, display_name, schema_json,
			created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			t.EnvironmentID, key(t.Name), t.Name, t.DisplayName, schema, created)
		if err != nil {
			return err
		}
		if n == 0 {
			return conflict("table %q", t.Name)
		}
		return nil
	})
}

// GetTable returns a table by name (case-insensitive), or ENotFound.
func (s *Store) GetTable(ctx context.Context, environmentID, name string) (*keyhold.Table, error) {
	t, err := scanTable(s.queryRow(ctx, `SELECT `+tableCols+` FROM env_tables WHERE environment_id = ? AND name_key = ?`,
		environmentID, key(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("table %q", name)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return t, nil
}

// ListTables returns an environment's tables ordered by lower-case name;
// none for an unknown environment.
func (s *Store) ListTables(ctx context.Context, environmentID string) ([]*keyhold.Table, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Table, error) { return scanTable(r) },
		`SELECT `+tableCols+` FROM env_tables WHERE environment_id = ? ORDER BY name_key`, environmentID)
}

// DeleteTable deletes a table with its rows and their files, in one
// transaction. It returns ENotFound if there is no such table.
func (s *Store) DeleteTable(ctx context.Context, environmentID, name string) error {
	tk := key(name)
	return s.inTx(ctx, func(tx *Store) error {
		for _, q := range []string{
			`DELETE FROM env_file_segments WHERE upload_id IN
				(SELECT upload_id FROM env_files WHERE environment_id = ? AND table_key = ?)`,
			`DELETE FROM env_files WHERE environment_id = ? AND table_key = ?`,
			`DELETE FROM env_rows WHERE environment_id = ? AND table_key = ?`,
		} {
			if _, err := tx.exec(ctx, q, environmentID, tk); err != nil {
				return err
			}
		}
		n, err := tx.execN(ctx, `DELETE FROM env_tables WHERE environment_id = ? AND name_key = ?`, environmentID, tk)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("table %q", name)
		}
		return nil
	})
}

// tableExists returns ENotFound unless the table exists.
func (s *Store) tableExists(ctx context.Context, environmentID, tk, name string) error {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM env_tables WHERE environment_id = ? AND name_key = ?`,
		environmentID, tk).Scan(&n); err != nil {
		return s.wrap(err)
	}
	if n == 0 {
		return notFound("table %q", name)
	}
	return nil
}

const rowCols = `environment_id, table_key, id, version, generation, sealed, created_at, updated_at`

const getRow = `SELECT ` + rowCols + ` FROM env_rows WHERE environment_id = ? AND table_key = ? AND id = ?`

func scanRow(r interface{ Scan(...any) error }) (*keyhold.SealedRow, error) {
	row := &keyhold.SealedRow{}
	err := r.Scan(&row.EnvironmentID, &row.Table, &row.ID, &row.Version, &row.Generation, &row.Sealed,
		dbTime{&row.CreatedAt}, dbTime{&row.UpdatedAt})
	return row, err
}

// checkSealed validates what every write of sealed content needs.
func checkSealed(what string, gen int64, sealed []byte) error {
	switch {
	case gen < 1:
		return invalid("%s has generation %d, below 1", what, gen)
	case len(sealed) == 0:
		return invalid("%s has no sealed content", what)
	}
	return nil
}

func checkRowName(environmentID, table, id string) error {
	switch {
	case environmentID == "":
		return invalid("environment id is required")
	case table == "":
		return invalid("table name is required")
	case id == "":
		return invalid("row id is required")
	}
	return nil
}

// Row writes, each one statement. The INSERTs select their values only if
// the table exists, so that a missing table inserts nothing rather than
// failing on the foreign key (which on PostgreSQL would abort a caller's
// transaction); the foreign key still guards a table deleted concurrently.
const (
	insertRow = `INSERT INTO env_rows (environment_id, table_key, id, version, generation, sealed, created_at, updated_at)
		SELECT ?, ?, ?, 1, ?, ?, ?, ? WHERE EXISTS
		(SELECT 1 FROM env_tables WHERE environment_id = ? AND name_key = ?)`
	createRow  = insertRow + ` ON CONFLICT DO NOTHING RETURNING version, created_at`
	replaceRow = insertRow + ` ON CONFLICT (environment_id, table_key, id) DO UPDATE SET
		version = env_rows.version + 1, generation = excluded.generation, sealed = excluded.sealed,
		updated_at = excluded.updated_at
		RETURNING version, created_at`
	updateRowAt = `UPDATE env_rows SET version = version + 1, generation = ?, sealed = ?, updated_at = ?
		WHERE environment_id = ? AND table_key = ? AND id = ? AND version = ?
		RETURNING version, created_at`
)

// PutRow writes r: ifVersion -1 creates it (EConflict if it exists), 0
// creates or replaces it, > 0 replaces it only at that version (EConflict
// at another version, ENotFound if there is no such row). A new row gets
// Version 1 and r.CreatedAt; a replaced one gets its version bumped and
// keeps its CreatedAt. PutRow sets r.Version, r.CreatedAt and r.Table (to
// the lowered name). It returns EInvalid for missing names, a generation
// below 1, no sealed content or an ifVersion below -1, and ENotFound if the
// table does not exist.
func (s *Store) PutRow(ctx context.Context, r *keyhold.SealedRow, ifVersion int64) error {
	if err := checkRowName(r.EnvironmentID, r.Table, r.ID); err != nil {
		return err
	}
	if err := checkSealed("row "+r.ID, r.Generation, r.Sealed); err != nil {
		return err
	}
	if ifVersion < -1 {
		return invalid("version %d is not a version", ifVersion)
	}
	ts, err := encTimes(r.CreatedAt, r.UpdatedAt)
	if err != nil {
		return err
	}
	tk := key(r.Table)
	var row *sql.Row
	switch {
	case ifVersion > 0:
		row = s.queryRow(ctx, updateRowAt, r.Generation, r.Sealed, ts[1], r.EnvironmentID, tk, r.ID, ifVersion)
	case ifVersion == 0:
		row = s.queryRow(ctx, replaceRow, r.EnvironmentID, tk, r.ID, r.Generation, r.Sealed, ts[0], ts[1],
			r.EnvironmentID, tk)
	default:
		row = s.queryRow(ctx, createRow, r.EnvironmentID, tk, r.ID, r.Generation, r.Sealed, ts[0], ts[1],
			r.EnvironmentID, tk)
	}
	var version int64
	var created string
	err = row.Scan(&version, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return s.rowWriteFailed(ctx, r.EnvironmentID, tk, r.Table, r.ID, ifVersion)
	}
	if err != nil {
		return s.wrap(err)
	}
	if err := (dbTime{&r.CreatedAt}).Scan(created); err != nil {
		return keyhold.Internal("sqlstore", err)
	}
	r.Version, r.Table = version, tk
	return nil
}

// rowWriteFailed says why a conditional row write changed nothing: no
// table, no row, or the row at another version or already there.
func (s *Store) rowWriteFailed(ctx context.Context, environmentID, tk, table, id string, ifVersion int64) error {
	var version int64
	err := s.queryRow(ctx, `SELECT version FROM env_rows WHERE environment_id = ? AND table_key = ? AND id = ?`,
		environmentID, tk, id).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := s.tableExists(ctx, environmentID, tk, table); err != nil {
			return err
		}
		return notFound("row %q", id)
	case err != nil:
		return s.wrap(err)
	case ifVersion == -1:
		return conflict("row %q", id)
	}
	return keyhold.Errorf(keyhold.EConflict, "sqlstore: row %q is at version %d, not %d", id, version, ifVersion)
}

// GetRow returns a row, or ENotFound.
func (s *Store) GetRow(ctx context.Context, environmentID, table, id string) (*keyhold.SealedRow, error) {
	r, err := scanRow(s.queryRow(ctx, getRow, environmentID, key(table), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("row %q", id)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return r, nil
}

// DeleteRow deletes a row with its files, whatever its version (ifVersion
// 0) or only at that version (ifVersion > 0). It returns ENotFound if there
// is no such row, EConflict if it is at another version and EInvalid for a
// negative ifVersion.
func (s *Store) DeleteRow(ctx context.Context, environmentID, table, id string, ifVersion int64) error {
	if ifVersion < 0 {
		return invalid("version %d is not a version", ifVersion)
	}
	tk := key(table)
	q := `DELETE FROM env_rows WHERE environment_id = ? AND table_key = ? AND id = ?`
	args := []any{environmentID, tk, id}
	if ifVersion > 0 {
		q += ` AND version = ?`
		args = append(args, ifVersion)
	}
	// The row's files go with it by the foreign keys' cascade, in this one
	// statement.
	n, err := s.execN(ctx, q, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return s.rowWriteFailed(ctx, environmentID, tk, table, id, ifVersion)
	}
	return nil
}

// ListRows returns a table's rows ordered by id, with ids after afterID (""
// from the start), at most limit of them (0: all). It returns ENotFound if
// the table does not exist and EInvalid for a negative limit.
func (s *Store) ListRows(ctx context.Context, environmentID, table, afterID string, limit int) ([]*keyhold.SealedRow, error) {
	lim, err := limitClause(limit)
	if err != nil {
		return nil, err
	}
	tk := key(table)
	rows, err := scanAll(ctx, s, func(r *sql.Rows) (*keyhold.SealedRow, error) { return scanRow(r) },
		`SELECT `+rowCols+` FROM env_rows WHERE environment_id = ? AND table_key = ? AND id > ? ORDER BY id`+lim,
		limitArgs([]any{environmentID, tk, afterID}, limit)...)
	if err != nil || len(rows) > 0 {
		return rows, err
	}
	// An empty page: the end of the table, or no such table.
	if err := s.tableExists(ctx, environmentID, tk, table); err != nil {
		return nil, err
	}
	return rows, nil
}

// ListRowsBelowGeneration returns an environment's rows sealed under a
// generation lower than gen, ordered by (lowered table, id) after
// (afterTable, afterID) ("", "" from the start), at most limit of them (0:
// all). The walk follows the primary key from the cursor, so each page
// costs the same however far the job has come. It returns EInvalid for a
// negative limit.
func (s *Store) ListRowsBelowGeneration(ctx context.Context, environmentID string, gen int64, afterTable, afterID string, limit int) ([]*keyhold.SealedRow, error) {
	lim, err := limitClause(limit)
	if err != nil {
		return nil, err
	}
	tk := key(afterTable)
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.SealedRow, error) { return scanRow(r) },
		`SELECT `+rowCols+` FROM env_rows WHERE environment_id = ? AND (table_key, id) > (?, ?) AND generation < ?
		ORDER BY table_key, id`+lim,
		limitArgs([]any{environmentID, tk, afterID, gen}, limit)...)
}

const resealRow = `UPDATE env_rows SET sealed = ?, generation = ?
	WHERE environment_id = ? AND table_key = ? AND id = ? AND version = ?`

func resealArgs(r *keyhold.SealedRow) ([]any, error) {
	if err := checkRowName(r.EnvironmentID, r.Table, r.ID); err != nil {
		return nil, err
	}
	if err := checkSealed("row "+r.ID, r.Generation, r.Sealed); err != nil {
		return nil, err
	}
	return []any{r.Sealed, r.Generation, r.EnvironmentID, key(r.Table), r.ID, r.Version}, nil
}

// ResealRow replaces a row's Sealed and Generation if its version is still
// r.Version, leaving the version and UpdatedAt alone (the content is the
// same), and reports whether it did: a row written or deleted since it was
// read is left to its writer. It returns EInvalid for missing names, a
// generation below 1 or no sealed content.
func (s *Store) ResealRow(ctx context.Context, r *keyhold.SealedRow) (bool, error) {
	args, err := resealArgs(r)
	if err != nil {
		return false, err
	}
	n, err := s.execN(ctx, resealRow, args...)
	return n > 0, err
}

// ResealRows is ResealRow for each of rows, in one transaction, and returns
// how many it replaced. It checks every row before it writes any, and
// returns EInvalid (writing nothing) if one is bad. Where the dialect sets
// BatchBlobType each chunk of rows is one statement; otherwise one prepared
// statement runs per row.
func (s *Store) ResealRows(ctx context.Context, rows []*keyhold.SealedRow) (int, error) {
	args := make([][]any, len(rows))
	for i, r := range rows {
		var err error
		if args[i], err = resealArgs(r); err != nil {
			return 0, err
		}
	}
	if len(rows) == 0 {
		return 0, nil
	}
	done := 0
	err := s.inTx(ctx, func(tx *Store) error {
		var err error
		if tx.d.BatchBlobType != "" {
			done, err = tx.resealBatches(ctx, args)
		} else {
			done, err = tx.resealEach(ctx, args)
		}
		return err
	})
	if err != nil {
		return 0, err
	}
	return done, nil
}

// resealEach runs resealRow once per row, on a transaction's connection.
func (s *Store) resealEach(ctx context.Context, args [][]any) (int, error) {
	stmt, err := s.tx.PrepareContext(ctx, s.d.Rebind(resealRow))
	if err != nil {
		return 0, s.wrap(err)
	}
	defer stmt.Close()
	done := 0
	for _, a := range args {
		res, err := stmt.ExecContext(ctx, a...)
		if err != nil {
			return 0, s.wrap(err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, keyhold.Internal("sqlstore", err)
		}
		done += int(n)
	}
	return done, nil
}

// resealChunk bounds the rows of one batch statement: 6 parameters a row
// stay far below PostgreSQL's 65535.
const resealChunk = 500

// resealBatches reseals rows in statements of resealChunk rows each, every
// row matched on its key and version as resealRow does.
func (s *Store) resealBatches(ctx context.Context, args [][]any) (int, error) {
	done := 0
	for start := 0; start < len(args); start += resealChunk {
		chunk := args[start:min(start+resealChunk, len(args))]
		var q strings.Builder
		q.WriteString(`UPDATE env_rows SET sealed = v.sealed, generation = v.generation FROM (VALUES `)
		flat := make([]any, 0, 6*len(chunk))
		for i, a := range chunk {
			if i > 0 {
				q.WriteString(", ")
			}
			// The casts type the VALUES columns, which PostgreSQL cannot
			// infer from the parameters.
			q.WriteString(`(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS ` +
				s.d.BatchBlobType + `))`)
			// resealArgs order: sealed, generation, environment, table, id, version.
			flat = append(flat, a[2], a[3], a[4], a[5], a[1], a[0])
		}
		q.WriteString(`) AS v (environment_id, table_key, id, version, generation, sealed)
			WHERE env_rows.environment_id = v.environment_id AND env_rows.table_key = v.table_key
			AND env_rows.id = v.id AND env_rows.version = v.version`)
		n, err := s.execN(ctx, q.String(), flat...)
		if err != nil {
			return 0, err
		}
		done += int(n)
	}
	return done, nil
}

// CountRows counts an environment's rows, and those sealed under a
// generation lower than gen, in one pass over the generation index.
func (s *Store) CountRows(ctx context.Context, environmentID string, gen int64) (total, below int64, err error) {
	err = s.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN generation < ? THEN 1 ELSE 0 END), 0)
		FROM env_rows WHERE environment_id = ?`, gen, environmentID).Scan(&total, &below)
	if err != nil {
		return 0, 0, s.wrap(err)
	}
	return total, below, nil
}
