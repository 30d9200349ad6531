package sqlstore

import (
	"context"
	"database/sql"
	"errors"
)

// GetSetting returns the value stored under name, or ENotFound.
func (s *Store) GetSetting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := s.queryRow(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("setting %q", name)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// PutSetting stores value under name, replacing any value there. It returns
// EInvalid without a name.
func (s *Store) PutSetting(ctx context.Context, name string, value []byte) error {
	if name == "" {
		return invalid("setting name is required")
	}
	if value == nil {
		value = []byte{}
	}
	_, err := s.exec(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
	return err
}

// CreateSetting stores value under name only if name is unset. It returns
// EConflict otherwise, so that processes starting together agree on the first
// value, and EInvalid without a name.
func (s *Store) CreateSetting(ctx context.Context, name string, value []byte) error {
	if name == "" {
		return invalid("setting name is required")
	}
	if value == nil {
		value = []byte{}
	}
	n, err := s.execN(ctx, `INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT DO NOTHING`, name, value)
	if err != nil {
		return err
	}
	if n == 0 {
		return conflict("setting %q", name)
	}
	return nil
}
