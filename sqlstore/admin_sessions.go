package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyhold/keyhold"
)

// CreateAdminSession stores a new session at version 1 and sets a.Version.
// It returns EConflict if a.IDHash is taken and EInvalid without IDHash or
// Sealed.
func (s *Store) CreateAdminSession(ctx context.Context, a *keyhold.AdminSession) error {
	if a.IDHash == "" || len(a.Sealed) == 0 {
		return invalid("a session needs its id hash and sealed contents")
	}
	ts, err := encTimes(a.ExpiresAt, a.CreatedAt)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `INSERT INTO admin_sessions (id_hash, sealed, expires_at, created_at, version)
		VALUES (?, ?, ?, ?, 1) ON CONFLICT DO NOTHING`, a.IDHash, a.Sealed, ts[0], ts[1])
	if err != nil {
		return err
	}
	if n == 0 {
		// The hash is not named: it identifies a live session.
		return conflict("session")
	}
	a.Version = 1
	return nil
}

// GetAdminSession returns the session whose id hashes to idHash, expired or
// not, or ENotFound.
func (s *Store) GetAdminSession(ctx context.Context, idHash string) (*keyhold.AdminSession, error) {
	a := &keyhold.AdminSession{IDHash: idHash}
	err := s.queryRow(ctx, `SELECT sealed, expires_at, created_at, version FROM admin_sessions WHERE id_hash = ?`, idHash).
		Scan(&a.Sealed, dbTime{&a.ExpiresAt}, dbTime{&a.CreatedAt}, &a.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("session")
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return a, nil
}

// UpdateAdminSession replaces Sealed and ExpiresAt if the stored version is
// a.Version, and bumps a.Version. It returns ENotFound if the session is gone
// (signed out, perhaps through another process) and EConflict if another
// request updated it first.
func (s *Store) UpdateAdminSession(ctx context.Context, a *keyhold.AdminSession) error {
	if len(a.Sealed) == 0 {
		return invalid("a session needs its sealed contents")
	}
	exp, err := encTime(a.ExpiresAt)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `UPDATE admin_sessions SET sealed = ?, expires_at = ?, version = version + 1
		WHERE id_hash = ? AND version = ?`, a.Sealed, exp, a.IDHash, a.Version)
	if err != nil {
		return err
	}
	if n == 0 {
		if _, err := s.GetAdminSession(ctx, a.IDHash); err != nil {
			return err
		}
		return keyhold.Errorf(keyhold.EConflict, "sqlstore: session is not at version %d", a.Version)
	}
	a.Version++
	return nil
}

// DeleteAdminSession deletes the session whose id hashes to idHash, or
// returns ENotFound.
func (s *Store) DeleteAdminSession(ctx context.Context, idHash string) error {
	n, err := s.execN(ctx, `DELETE FROM admin_sessions WHERE id_hash = ?`, idHash)
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("session")
	}
	return nil
}

// DeleteExpiredAdminSessions deletes the sessions whose expiry is not after
// now, through the expiry index, and returns how many it deleted.
func (s *Store) DeleteExpiredAdminSessions(ctx context.Context, now time.Time) (int64, error) {
	t, err := encTime(now)
	if err != nil {
		return 0, err
	}
	return s.execN(ctx, `DELETE FROM admin_sessions WHERE expires_at <= ?`, t)
}
