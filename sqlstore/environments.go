package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyhold/keyhold"
)

// Environment ids and operation ids compare exactly: they are GUIDs the
// platform makes, and rows bind them into their sealed content. The linked
// policy id is a resource id, which ARM compares case-insensitively, so it is
// kept as a policy_key too.

const environmentCols = `id, tenant_id, display_name, region, type, managed, runtime_state, lock_reason, locked_at,
	key_managed_by, policy_id, policy_system_id, link_status, encryption_status, no_revert_until, created_by,
	created_at, updated_at, version`

func scanEnvironment(r interface{ Scan(...any) error }) (*keyhold.Environment, error) {
	e := &keyhold.Environment{}
	err := r.Scan(&e.ID, &e.TenantID, &e.DisplayName, &e.Region, &e.Type, &e.Managed, &e.RuntimeState,
		&e.LockReason, dbTime{&e.LockedAt}, &e.KeyManagedBy, &e.PolicyID, &e.PolicySystemID, &e.LinkStatus,
		&e.EncryptionStatus, dbTime{&e.NoRevertUntil}, &e.CreatedBy, dbTime{&e.CreatedAt}, dbTime{&e.UpdatedAt},
		&e.Version)
	return e, err
}

// environmentArgs encodes the mutable columns of e, in the order
// display_name, region, type, managed, runtime_state, lock_reason, locked_at,
// key_managed_by, policy_id, policy_key, policy_system_id, link_status,
// encryption_status, no_revert_until, updated_at.
func environmentArgs(e *keyhold.Environment) ([]any, error) {
	ts, err := encTimes(e.LockedAt, e.NoRevertUntil, e.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return []any{e.DisplayName, e.Region, e.Type, e.Managed, e.RuntimeState, e.LockReason, ts[0],
		e.KeyManagedBy, e.PolicyID, nullKey(e.PolicyID), e.PolicySystemID, e.LinkStatus, e.EncryptionStatus,
		ts[1], ts[2]}, nil
}

// CreateEnvironment stores e at Version 1 and sets e.Version. It returns
// EInvalid without an id or tenant and EConflict if the id is taken.
func (s *Store) CreateEnvironment(ctx context.Context, e *keyhold.Environment) error {
	switch {
	case e.ID == "":
		return invalid("environment id is required")
	case e.TenantID == "":
		return invalid("environment %q has no tenant", e.ID)
	}
	mutable, err := environmentArgs(e)
	if err != nil {
		return err
	}
	created, err := encTime(e.CreatedAt)
	if err != nil {
		return err
	}
	args := append([]any{e.ID, e.TenantID, e.CreatedBy, created}, mutable...)
	n, err := s.execN(ctx, `INSERT INTO environments (id, tenant_id, created_by, created_at,
		display_name, region, type, managed, runtime_state, lock_reason, locked_at, key_managed_by, policy_id,
		policy_key, policy_system_id, link_status, encryption_status, no_revert_until, updated_at, version)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO NOTHING`, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return conflict("environment %q", e.ID)
	}
	e.Version = 1
	return nil
}

// GetEnvironment returns the environment with id, or ENotFound.
func (s *Store) GetEnvironment(ctx context.Context, id string) (*keyhold.Environment, error) {
	e, err := scanEnvironment(s.queryRow(ctx, `SELECT `+environmentCols+` FROM environments WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("environment %q", id)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return e, nil
}

// ListEnvironments returns a tenant's environments ("" for every tenant),
// ordered by id.
func (s *Store) ListEnvironments(ctx context.Context, tenantID string) ([]*keyhold.Environment, error) {
	var w where
	if tenantID != "" {
		w.add(`tenant_id = ?`, tenantID)
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Environment, error) { return scanEnvironment(r) },
		`SELECT `+environmentCols+` FROM environments`+w.String()+` ORDER BY id`, w.args...)
}

// ListEnvironmentsByPolicy returns the environments whose PolicyID is
// policyID (case-insensitive), ordered by id. It returns EInvalid for an
// empty policyID, which would mean every environment without a policy.
func (s *Store) ListEnvironmentsByPolicy(ctx context.Context, policyID string) ([]*keyhold.Environment, error) {
	if policyID == "" {
		return nil, invalid("policy id is required")
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Environment, error) { return scanEnvironment(r) },
		`SELECT `+environmentCols+` FROM environments WHERE policy_key = ? ORDER BY id`, key(policyID))
}

// UpdateEnvironment replaces every field of the environment e.ID but ID,
// TenantID, CreatedBy and CreatedAt, if its stored version is e.Version, and
// bumps e.Version. It returns ENotFound if there is no such environment and
// EConflict if it is at another version (someone else updated it first).
func (s *Store) UpdateEnvironment(ctx context.Context, e *keyhold.Environment) error {
	args, err := environmentArgs(e)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `UPDATE environments SET display_name = ?, region = ?, type = ?, managed = ?,
		runtime_state = ?, lock_reason = ?, locked_at = ?, key_managed_by = ?, policy_id = ?, policy_key = ?,
		policy_system_id = ?, link_status = ?, encryption_status = ?, no_revert_until = ?, updated_at = ?,
		version = version + 1
		WHERE id = ? AND version = ?`, append(args, e.ID, e.Version)...)
	if err != nil {
		return err
	}
	if n == 0 {
		if _, err := s.GetEnvironment(ctx, e.ID); err != nil {
			return err
		}
		return keyhold.Errorf(keyhold.EConflict, "sqlstore: environment %q is not at version %d", e.ID, e.Version)
	}
	e.Version++
	return nil
}

// DeleteEnvironment deletes the environment with its generations,
// operations, tables, rows and files, in one transaction. It returns
// ENotFound if there is no such environment.
func (s *Store) DeleteEnvironment(ctx context.Context, id string) error {
	return s.inTx(ctx, func(tx *Store) error {
		// Children first, explicitly: the foreign keys cascade already, but a
		// delete this large is cheaper as a few set deletes than as a cascade
		// row by row, and stays whole on a connection with them off.
		for _, q := range []string{
			`DELETE FROM env_file_segments WHERE environment_id = ?`,
			`DELETE FROM env_files WHERE environment_id = ?`,
			`DELETE FROM env_rows WHERE environment_id = ?`,
			`DELETE FROM env_tables WHERE environment_id = ?`,
			`DELETE FROM env_operations WHERE environment_id = ?`,
			`DELETE FROM env_generations WHERE environment_id = ?`,
		} {
			if _, err := tx.exec(ctx, q, id); err != nil {
				return err
			}
		}
		n, err := tx.execN(ctx, `DELETE FROM environments WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("environment %q", id)
		}
		return nil
	})
}

// environmentExists returns ENotFound unless the environment exists.
func (s *Store) environmentExists(ctx context.Context, id string) error {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM environments WHERE id = ?`, id).Scan(&n); err != nil {
		return s.wrap(err)
	}
	if n == 0 {
		return notFound("environment %q", id)
	}
	return nil
}

const generationCols = `environment_id, generation, wrapped, wrapped_by, state, created_at, updated_at`

func scanGeneration(r interface{ Scan(...any) error }) (*keyhold.RootKeyGeneration, error) {
	g := &keyhold.RootKeyGeneration{}
	err := r.Scan(&g.EnvironmentID, &g.Generation, &g.Wrapped, dbJSON{&g.WrappedBy}, &g.State,
		dbTime{&g.CreatedAt}, dbTime{&g.UpdatedAt})
	if len(g.Wrapped) == 0 {
		g.Wrapped = nil
	}
	return g, err
}

// CreateGeneration stores g. It returns EInvalid for a generation below 1
// or without a state, ENotFound if the environment does not exist and
// EConflict if the generation is taken.
func (s *Store) CreateGeneration(ctx context.Context, g *keyhold.RootKeyGeneration) error {
	switch {
	case g.Generation < 1:
		return invalid("generation %d of environment %q is below 1", g.Generation, g.EnvironmentID)
	case g.State == "":
		return invalid("generation %d of environment %q has no state", g.Generation, g.EnvironmentID)
	}
	by, err := encJSON(g.WrappedBy)
	if err != nil {
		return err
	}
	ts, err := encTimes(g.CreatedAt, g.UpdatedAt)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *Store) error {
		if err := tx.environmentExists(ctx, g.EnvironmentID); err != nil {
			return err
		}
		n, err := tx.execN(ctx, `INSERT INTO env_generations (environment_id, generation, wrapped, wrapped_by, state,
			created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			g.EnvironmentID, g.Generation, nullBytes(g.Wrapped), by, g.State, ts[0], ts[1])
		if err != nil {
			return err
		}
		if n == 0 {
			return conflict("generation %d of environment %q", g.Generation, g.EnvironmentID)
		}
		return nil
	})
}

// ListGenerations returns an environment's generations, oldest first; none
// for an unknown environment.
func (s *Store) ListGenerations(ctx context.Context, environmentID string) ([]*keyhold.RootKeyGeneration, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.RootKeyGeneration, error) { return scanGeneration(r) },
		`SELECT `+generationCols+` FROM env_generations WHERE environment_id = ? ORDER BY generation`, environmentID)
}

// UpdateGeneration replaces Wrapped, WrappedBy, State and UpdatedAt of a
// generation. It returns ENotFound if there is no such generation.
func (s *Store) UpdateGeneration(ctx context.Context, g *keyhold.RootKeyGeneration) error {
	if g.State == "" {
		return invalid("generation %d of environment %q has no state", g.Generation, g.EnvironmentID)
	}
	by, err := encJSON(g.WrappedBy)
	if err != nil {
		return err
	}
	updated, err := encTime(g.UpdatedAt)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `UPDATE env_generations SET wrapped = ?, wrapped_by = ?, state = ?, updated_at = ?
		WHERE environment_id = ? AND generation = ?`,
		nullBytes(g.Wrapped), by, g.State, updated, g.EnvironmentID, g.Generation)
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("generation %d of environment %q", g.Generation, g.EnvironmentID)
	}
	return nil
}

const operationCols = `id, tenant_id, environment_id, type, action, state, stages, params, resume_cursor, done, total,
	error, requested_by, lease_owner, lease_until, created_at, updated_at`

func scanOperation(r interface{ Scan(...any) error }) (*keyhold.Operation, error) {
	op := &keyhold.Operation{}
	err := r.Scan(&op.ID, &op.TenantID, &op.EnvironmentID, &op.Type, &op.Action, &op.State, dbRaw{&op.Stages},
		dbRaw{&op.Params}, &op.Cursor, &op.Done, &op.Total, &op.Error, &op.RequestedBy, &op.LeaseOwner,
		dbTime{&op.LeaseUntil}, dbTime{&op.CreatedAt}, dbTime{&op.UpdatedAt})
	return op, err
}

// operationArgs encodes the mutable columns of op, in the order state,
// stages, params, resume_cursor, done, total, error, lease_owner,
// lease_until, updated_at.
func operationArgs(op *keyhold.Operation) ([]any, error) {
	if op.State == "" {
		return nil, invalid("operation %q has no state", op.ID)
	}
	stages, err := encRaw("operation stages", op.Stages)
	if err != nil {
		return nil, err
	}
	params, err := encRaw("operation params", op.Params)
	if err != nil {
		return nil, err
	}
	ts, err := encTimes(op.LeaseUntil, op.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return []any{op.State, stages, params, op.Cursor, op.Done, op.Total, op.Error, op.LeaseOwner, ts[0], ts[1]}, nil
}

// CreateOperation stores op; an empty State becomes NotStarted. It returns
// EInvalid without an id or with Stages or Params that are not JSON,
// ENotFound if the environment does not exist and EConflict if the id is
// taken.
func (s *Store) CreateOperation(ctx context.Context, op *keyhold.Operation) error {
	if op.ID == "" {
		return invalid("operation id is required")
	}
	if op.State == "" {
		op.State = keyhold.OpNotStarted
	}
	mutable, err := operationArgs(op)
	if err != nil {
		return err
	}
	created, err := encTime(op.CreatedAt)
	if err != nil {
		return err
	}
	args := append([]any{op.ID, op.TenantID, op.EnvironmentID, op.Type, op.Action, op.RequestedBy, created}, mutable...)
	return s.inTx(ctx, func(tx *Store) error {
		if err := tx.environmentExists(ctx, op.EnvironmentID); err != nil {
			return err
		}
		n, err := tx.execN(ctx, `INSERT INTO env_operations (id, tenant_id, environment_id, type, action, requested_by,
			created_at, state, stages, params, resume_cursor, done, total, error, lease_owner, lease_until, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return err
		}
		if n == 0 {
			return conflict("operation %q", op.ID)
		}
		return nil
	})
}

// GetOperation returns the operation with id, or ENotFound.
func (s *Store) GetOperation(ctx context.Context, id string) (*keyhold.Operation, error) {
	op, err := scanOperation(s.queryRow(ctx, `SELECT `+operationCols+` FROM env_operations WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("operation %q", id)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return op, nil
}

// ListOperations returns an environment's operations, newest first (by
// CreatedAt, then id); none for an unknown environment.
func (s *Store) ListOperations(ctx context.Context, environmentID string) ([]*keyhold.Operation, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.Operation, error) { return scanOperation(r) },
		`SELECT `+operationCols+` FROM env_operations WHERE environment_id = ? ORDER BY created_at DESC, id DESC`,
		environmentID)
}

// UpdateOperation replaces State, Stages, Params, Cursor, Done, Total,
// Error, LeaseOwner, LeaseUntil and UpdatedAt of an operation. It returns
// EInvalid without a state or with Stages or Params that are not JSON, and
// ENotFound if there is no such operation.
func (s *Store) UpdateOperation(ctx context.Context, op *keyhold.Operation) error {
	n, err := s.updateOperation(ctx, op, "")
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("operation %q", op.ID)
	}
	return nil
}

// UpdateOperationLeased is UpdateOperation only while owner holds the
// operation's lease. The owner is checked in the UPDATE itself, so a
// LeaseOperation by another worker commits either before it (the update
// matches nothing) or after it (and finds the lease renewed). It returns
// EInvalid without an owner, ENotFound if there is no such operation and
// EConflict with detail keyhold.DetailOperationLeaseLost if owner no longer
// holds the lease.
func (s *Store) UpdateOperationLeased(ctx context.Context, op *keyhold.Operation, owner string) error {
	if owner == "" {
		// An empty owner would match every operation nobody leased.
		return invalid("lease owner is required")
	}
	n, err := s.updateOperation(ctx, op, owner)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	cur, err := s.GetOperation(ctx, op.ID)
	if err != nil {
		return err
	}
	holder := "its lease was released"
	if cur.LeaseOwner != "" {
		holder = "worker " + cur.LeaseOwner + " holds it now"
	}
	return keyhold.Errorc(keyhold.EConflict, keyhold.DetailOperationLeaseLost,
		"sqlstore: operation %q is no longer leased to %s: %s", op.ID, owner, holder)
}

// updateOperation writes op's mutable columns, only while owner holds its
// lease unless owner is "", and returns how many rows it changed.
func (s *Store) updateOperation(ctx context.Context, op *keyhold.Operation, owner string) (int64, error) {
	args, err := operationArgs(op)
	if err != nil {
		return 0, err
	}
	q := `UPDATE env_operations SET state = ?, stages = ?, params = ?, resume_cursor = ?, done = ?,
		total = ?, error = ?, lease_owner = ?, lease_until = ?, updated_at = ? WHERE id = ?`
	args = append(args, op.ID)
	if owner != "" {
		q += ` AND lease_owner = ?`
		args = append(args, owner)
	}
	return s.execN(ctx, q, args...)
}

// LeaseOperation claims an operation that is NotStarted or Running and
// whose lease ran out by now, those never leased first, then those whose
// lease ran out earliest, then the oldest: it sets
// LeaseOwner to owner and LeaseUntil to until, and returns it. It returns
// ENotFound if there is none, and EInvalid without an owner or with until
// not after now. It is one statement: on PostgreSQL its subquery skips rows
// other workers are locking, so that concurrent callers in any process each
// get a different operation; on SQLite writers are serialised anyway.
func (s *Store) LeaseOperation(ctx context.Context, owner string, now, until time.Time) (*keyhold.Operation, error) {
	if owner == "" {
		return nil, invalid("lease owner is required")
	}
	if !until.After(now) {
		return nil, invalid("lease must end after it starts")
	}
	ts, err := encTimes(now, until)
	if err != nil {
		return nil, err
	}
	op, err := scanOperation(s.queryRow(ctx, `UPDATE env_operations SET lease_owner = ?, lease_until = ?
		WHERE id = (SELECT id FROM env_operations WHERE state IN (?, ?) AND lease_until <= ?
			ORDER BY lease_until, created_at, id LIMIT 1`+s.d.SkipLocked+`)
		RETURNING `+operationCols,
		owner, ts[1], keyhold.OpNotStarted, keyhold.OpRunning, ts[0]))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("runnable operation")
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return op, nil
}
