package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyhold/keyhold"
)

// Keys of built-in vaults live in two tables: vault_keys holds one row per
// key with its soft-delete state, key_versions one row per version. A key's
// latest version is its version with the highest seq. Reads join the two on
// the key's primary key, so that reading a version (the hot path of every
// wrap and unwrap) is one indexed query that also sees the deletion.

// keyVersionCols reads a version, with the vault and key names as the key
// was first created.
const keyVersionCols = `k.vault_name, k.name, v.version, v.kty, v.key_size, v.crv, v.key_ops, v.public_jwk,
	v.sealed_private, v.enabled, v.nbf, v.exp, v.exportable, v.tags, v.managed, v.created_at, v.updated_at`

const keyVersionFrom = ` FROM key_versions v JOIN vault_keys k ON k.vault_key = v.vault_key AND k.name_key = v.name_key`

// latestVersion is the condition that v is its key's latest version.
const latestVersion = `v.seq = (SELECT MAX(w.seq) FROM key_versions w WHERE w.vault_key = k.vault_key AND w.name_key = k.name_key)`

func scanKeyVersion(r interface{ Scan(...any) error }, extra ...any) (*keyhold.KeyVersion, error) {
	v := &keyhold.KeyVersion{}
	dest := []any{&v.VaultName, &v.Name, &v.Version, &v.Kty, &v.KeySize, &v.Curve, dbJSON{&v.KeyOps},
		dbRaw{&v.PublicJWK}, &v.SealedPrivate, &v.Enabled, dbTime{&v.NotBefore}, dbTime{&v.Expires},
		&v.Exportable, dbJSON{&v.Tags}, &v.Managed, dbTime{&v.CreatedAt}, dbTime{&v.UpdatedAt}}
	err := r.Scan(append(dest, extra...)...)
	if len(v.SealedPrivate) == 0 {
		v.SealedPrivate = nil
	}
	return v, err
}

// nullTime encodes t, or NULL for the zero time, which for nbf and exp
// means "not set".
func nullTime(t time.Time) (any, error) {
	if t.IsZero() {
		return nil, nil
	}
	return encTime(t)
}

// nullBytes stores empty bytes as NULL, so that nil and empty read back
// alike (as nil) in both engines.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// limitClause returns " LIMIT n" for n > 0 and "" for 0 (no limit).
func limitClause(limit int) (string, error) {
	switch {
	case limit < 0:
		return "", invalid("limit %d is negative", limit)
	case limit == 0:
		return "", nil
	}
	return " LIMIT ?", nil
}

func limitArgs(args []any, limit int) []any {
	if limit > 0 {
		return append(args, limit)
	}
	return args
}

// keyVersionArgs encodes the mutable columns of v, in the order key_ops,
// enabled, nbf, exp, exportable, tags, updated_at.
func keyVersionArgs(v *keyhold.KeyVersion) ([]any, error) {
	ops, err := encJSON(v.KeyOps)
	if err != nil {
		return nil, err
	}
	tags, err := encJSON(v.Tags)
	if err != nil {
		return nil, err
	}
	nbf, err := nullTime(v.NotBefore)
	if err != nil {
		return nil, err
	}
	exp, err := nullTime(v.Expires)
	if err != nil {
		return nil, err
	}
	updated, err := encTime(v.UpdatedAt)
	if err != nil {
		return nil, err
	}
	return []any{ops, v.Enabled, nbf, exp, v.Exportable, tags, updated}, nil
}

// CreateKeyVersion stores v as a new version of the key v.Name in vault
// v.VaultName, creating the key if it is new; the key keeps the names' case
// of its first version. It returns EInvalid without a vault, name, version or
// kty or with a PublicJWK that is not JSON, EConflict if the key is
// soft-deleted or the version id (case-insensitive) is taken.
func (s *Store) CreateKeyVersion(ctx context.Context, v *keyhold.KeyVersion) error {
	switch {
	case v.VaultName == "":
		return invalid("key %q has no vault", v.Name)
	case v.Name == "":
		return invalid("key name is required")
	case v.Version == "":
		return invalid("key %q has no version", v.Name)
	case v.Kty == "":
		return invalid("key %q has no kty", v.Name)
	}
	jwk, err := encRaw("public JWK", v.PublicJWK)
	if err != nil {
		return err
	}
	mutable, err := keyVersionArgs(v)
	if err != nil {
		return err
	}
	created, err := encTime(v.CreatedAt)
	if err != nil {
		return err
	}
	vk, nk := key(v.VaultName), key(v.Name)
	return s.inTx(ctx, func(ts *Store) error {
		// The no-op update makes the statement take the key row's lock
		// whether it inserts or finds the row, so that a concurrent
		// DeleteKey either sees this version or makes it fail here.
		var deletedAt sql.NullString
		err := ts.queryRow(ctx, `INSERT INTO vault_keys (vault_key, name_key, vault_name, name, created_at)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (vault_key, name_key) DO UPDATE SET vault_key = excluded.vault_key
			RETURNING deleted_at`, vk, nk, v.VaultName, v.Name, created).Scan(&deletedAt)
		if err != nil {
			return ts.wrap(err)
		}
		if deletedAt.Valid {
			return keyhold.Errorf(keyhold.EConflict, "sqlstore: key %q is deleted but recoverable", v.Name)
		}
		args := append([]any{vk, nk, v.Version, key(v.Version), v.Kty, v.KeySize, v.Curve, jwk,
			nullBytes(v.SealedPrivate), v.Managed, created}, mutable...)
		n, err := ts.execN(ctx, `INSERT INTO key_versions (vault_key, name_key, version, version_key, kty, key_size,
			crv, public_jwk, sealed_private, managed, created_at,
			key_ops, enabled, nbf, exp, exportable, tags, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return err
		}
		if n == 0 {
			return conflict("version %q of key %q", v.Version, v.Name)
		}
		return nil
	})
}

// GetKeyVersion returns a version of a key that is not deleted, or its
// latest version for version "". Names and version compare
// case-insensitively. It returns ENotFound if the key or version does not
// exist or the key is soft-deleted.
func (s *Store) GetKeyVersion(ctx context.Context, vault, name, version string) (*keyhold.KeyVersion, error) {
	q := `SELECT ` + keyVersionCols + keyVersionFrom + ` WHERE v.vault_key = ? AND v.name_key = ? AND k.deleted_at IS NULL`
	args := []any{key(vault), key(name)}
	if version == "" {
		q += ` ORDER BY v.seq DESC LIMIT 1`
	} else {
		q += ` AND v.version_key = ?`
		args = append(args, key(version))
	}
	v, err := scanKeyVersion(s.queryRow(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		if version == "" {
			return nil, notFound("key %q", name)
		}
		return nil, notFound("version %q of key %q", version, name)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return v, nil
}

// UpdateKeyVersion replaces KeyOps, Enabled, NotBefore, Expires, Exportable,
// Tags and UpdatedAt of the version v.Version of a key that is not deleted.
// It returns ENotFound if there is no such version or the key is
// soft-deleted.
func (s *Store) UpdateKeyVersion(ctx context.Context, v *keyhold.KeyVersion) error {
	args, err := keyVersionArgs(v)
	if err != nil {
		return err
	}
	n, err := s.execN(ctx, `UPDATE key_versions SET key_ops = ?, enabled = ?, nbf = ?, exp = ?, exportable = ?,
		tags = ?, updated_at = ?
		WHERE vault_key = ? AND name_key = ? AND version_key = ? AND EXISTS (SELECT 1 FROM vault_keys k
		WHERE k.vault_key = key_versions.vault_key AND k.name_key = key_versions.name_key AND k.deleted_at IS NULL)`,
		append(args, key(v.VaultName), key(v.Name), key(v.Version))...)
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("version %q of key %q", v.Version, v.Name)
	}
	return nil
}

// ListKeys returns the latest version of each key of vault that is not
// deleted, ordered by lower-case name, with names after afterName
// (case-insensitive; "" from the start), at most limit of them (0: all). It
// returns EInvalid for a negative limit.
func (s *Store) ListKeys(ctx context.Context, vault, afterName string, limit int) ([]*keyhold.KeyVersion, error) {
	lim, err := limitClause(limit)
	if err != nil {
		return nil, err
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.KeyVersion, error) { return scanKeyVersion(r) },
		`SELECT `+keyVersionCols+keyVersionFrom+` WHERE k.vault_key = ? AND k.name_key > ? AND k.deleted_at IS NULL
		AND `+latestVersion+` ORDER BY k.name_key`+lim,
		limitArgs([]any{key(vault), key(afterName)}, limit)...)
}

// ListKeyVersions returns the versions of a key that is not deleted, in the
// order they were created, after the version afterVersion ("" from the
// start), at most limit of them (0: all). It returns ENotFound if the key
// does not exist or is soft-deleted, and EInvalid for a negative limit or an
// afterVersion that is not a version of the key.
func (s *Store) ListKeyVersions(ctx context.Context, vault, name, afterVersion string, limit int) ([]*keyhold.KeyVersion, error) {
	lim, err := limitClause(limit)
	if err != nil {
		return nil, err
	}
	vk, nk := key(vault), key(name)
	after := int64(0)
	if afterVersion != "" {
		err := s.queryRow(ctx, `SELECT seq FROM key_versions WHERE vault_key = ? AND name_key = ? AND version_key = ?`,
			vk, nk, key(afterVersion)).Scan(&after)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, invalid("%q is not a version of key %q", afterVersion, name)
		}
		if err != nil {
			return nil, s.wrap(err)
		}
	}
	list, err := scanAll(ctx, s, func(r *sql.Rows) (*keyhold.KeyVersion, error) { return scanKeyVersion(r) },
		`SELECT `+keyVersionCols+keyVersionFrom+` WHERE v.vault_key = ? AND v.name_key = ? AND k.deleted_at IS NULL
		AND v.seq > ? ORDER BY v.seq`+lim,
		limitArgs([]any{vk, nk, after}, limit)...)
	if err != nil || len(list) > 0 {
		return list, err
	}
	// An empty page: the end of the list, or no such key to list.
	if err := s.liveKeyExists(ctx, vk, nk, name); err != nil {
		return nil, err
	}
	return list, nil
}

// liveKeyExists returns ENotFound unless the key exists and is not deleted.
func (s *Store) liveKeyExists(ctx context.Context, vk, nk, name string) error {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM vault_keys WHERE vault_key = ? AND name_key = ? AND deleted_at IS NULL`,
		vk, nk).Scan(&n); err != nil {
		return s.wrap(err)
	}
	if n == 0 {
		return notFound("key %q", name)
	}
	return nil
}

// DeleteKey soft-deletes the key name of vault with every version, and
// returns it as a DeletedKey with its latest version. It returns ENotFound
// if the key does not exist or is already deleted, and EInvalid for a zero
// deletedAt (a zero deletion time could not be told from "not deleted").
func (s *Store) DeleteKey(ctx context.Context, vault, name string, deletedAt, purgeAt time.Time) (*keyhold.DeletedKey, error) {
	if deletedAt.IsZero() {
		return nil, invalid("key %q needs a deletion time", name)
	}
	ts, err := encTimes(deletedAt, purgeAt)
	if err != nil {
		return nil, err
	}
	var dk *keyhold.DeletedKey
	err = s.inTx(ctx, func(tx *Store) error {
		n, err := tx.execN(ctx, `UPDATE vault_keys SET deleted_at = ?, purge_at = ?
			WHERE vault_key = ? AND name_key = ? AND deleted_at IS NULL`, ts[0], ts[1], key(vault), key(name))
		if err != nil {
			return err
		}
		if n == 0 {
			return notFound("key %q", name)
		}
		dk, err = tx.GetDeletedKey(ctx, vault, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	return dk, nil
}

// deletedKeyCols follows keyVersionCols in reads of deleted keys.
const deletedKeyCols = `, k.deleted_at, k.purge_at`

func scanDeletedKey(r interface{ Scan(...any) error }) (*keyhold.DeletedKey, error) {
	dk := &keyhold.DeletedKey{}
	v, err := scanKeyVersion(r, dbTime{&dk.DeletedAt}, dbTime{&dk.ScheduledPurgeAt})
	dk.Latest = v
	return dk, err
}

// GetDeletedKey returns the soft-deleted key name of vault with its latest
// version. It returns ENotFound if there is no such key or it is not
// deleted.
func (s *Store) GetDeletedKey(ctx context.Context, vault, name string) (*keyhold.DeletedKey, error) {
	dk, err := scanDeletedKey(s.queryRow(ctx, `SELECT `+keyVersionCols+deletedKeyCols+keyVersionFrom+`
		WHERE k.vault_key = ? AND k.name_key = ? AND k.deleted_at IS NOT NULL AND `+latestVersion,
		key(vault), key(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("deleted key %q", name)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return dk, nil
}

// ListDeletedKeys returns the soft-deleted keys of vault, ordered by
// lower-case name, with names after afterName ("" from the start), at most
// limit of them (0: all). It returns EInvalid for a negative limit.
func (s *Store) ListDeletedKeys(ctx context.Context, vault, afterName string, limit int) ([]*keyhold.DeletedKey, error) {
	lim, err := limitClause(limit)
	if err != nil {
		return nil, err
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.DeletedKey, error) { return scanDeletedKey(r) },
		`SELECT `+keyVersionCols+deletedKeyCols+keyVersionFrom+` WHERE k.vault_key = ? AND k.name_key > ?
		AND k.deleted_at IS NOT NULL AND `+latestVersion+` ORDER BY k.name_key`+lim,
		limitArgs([]any{key(vault), key(afterName)}, limit)...)
}

// RecoverKey undoes DeleteKey: the key and all its versions are back as
// they were. It returns ENotFound if the key is not soft-deleted.
func (s *Store) RecoverKey(ctx context.Context, vault, name string) error {
	n, err := s.execN(ctx, `UPDATE vault_keys SET deleted_at = NULL, purge_at = NULL
		WHERE vault_key = ? AND name_key = ? AND deleted_at IS NOT NULL`, key(vault), key(name))
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("deleted key %q", name)
	}
	return nil
}

// PurgeKey removes a soft-deleted key, its versions and its rotation policy
// for good. It returns ENotFound if there is no such key and EConflict if the
// key is not deleted (a live key is deleted first, then purged).
func (s *Store) PurgeKey(ctx context.Context, vault, name string) error {
	vk, nk := key(vault), key(name)
	return s.inTx(ctx, func(tx *Store) error {
		// Checking deleted_at in the DELETE itself leaves no gap for a
		// concurrent RecoverKey between a check and the purge.
		n, err := tx.execN(ctx, `DELETE FROM vault_keys WHERE vault_key = ? AND name_key = ? AND deleted_at IS NOT NULL`, vk, nk)
		if err != nil {
			return err
		}
		if n == 0 {
			err := tx.liveKeyExists(ctx, vk, nk, name)
			if keyhold.ErrorCode(err) == keyhold.ENotFound {
				return notFound("deleted key %q", name)
			}
			if err != nil {
				return err
			}
			return keyhold.Errorf(keyhold.EConflict, "sqlstore: key %q is not deleted", name)
		}
		return tx.deleteKeyChildren(ctx, `vault_key = ? AND name_key = ?`, vk, nk)
	})
}

// PurgeVaultKeys removes every key of vault, deleted or not, with their
// versions and rotation policies. A vault without keys is no error.
func (s *Store) PurgeVaultKeys(ctx context.Context, vault string) error {
	return s.inTx(ctx, func(tx *Store) error {
		if _, err := tx.exec(ctx, `DELETE FROM vault_keys WHERE vault_key = ?`, key(vault)); err != nil {
			return err
		}
		return tx.deleteKeyChildren(ctx, `vault_key = ?`, key(vault))
	})
}

// deleteKeyChildren deletes the versions and rotation policies that cond
// selects. The foreign keys cascade from vault_keys already; deleting
// explicitly keeps a purge whole even on a connection that has them off.
func (s *Store) deleteKeyChildren(ctx context.Context, cond string, args ...any) error {
	for _, table := range []string{"key_versions", "key_rotation_policies"} {
		if _, err := s.exec(ctx, `DELETE FROM `+table+` WHERE `+cond, args...); err != nil {
			return err
		}
	}
	return nil
}

// PutKeyRotationPolicy creates or replaces the rotation policy of a key that
// is not deleted; CreatedAt keeps the value of the first put, and the names
// take the key's stored case. It returns EInvalid for a policy that is not
// JSON and ENotFound if the key does not exist or is soft-deleted.
func (s *Store) PutKeyRotationPolicy(ctx context.Context, p *keyhold.KeyRotationPolicy) error {
	if len(p.Policy) == 0 {
		return invalid("rotation policy of key %q is empty", p.Name)
	}
	policy, err := encRaw("rotation policy", p.Policy)
	if err != nil {
		return err
	}
	ts, err := encTimes(p.CreatedAt, p.UpdatedAt)
	if err != nil {
		return err
	}
	// The WHERE makes this insert nothing for a missing or deleted key. On
	// SQLite an upsert after INSERT ... SELECT needs that WHERE anyway, to
	// tell ON CONFLICT from a join constraint.
	n, err := s.execN(ctx, `INSERT INTO key_rotation_policies (vault_key, name_key, vault_name, name, policy,
		created_at, updated_at)
		SELECT vault_key, name_key, vault_name, name, ?, ?, ? FROM vault_keys
		WHERE vault_key = ? AND name_key = ? AND deleted_at IS NULL
		ON CONFLICT (vault_key, name_key) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at`,
		policy, ts[0], ts[1], key(p.VaultName), key(p.Name))
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound("key %q", p.Name)
	}
	return nil
}

const rotationPolicyCols = `p.vault_name, p.name, p.policy, p.created_at, p.updated_at`

const rotationPolicyFrom = ` FROM key_rotation_policies p JOIN vault_keys k
	ON k.vault_key = p.vault_key AND k.name_key = p.name_key AND k.deleted_at IS NULL`

func scanRotationPolicy(r interface{ Scan(...any) error }) (*keyhold.KeyRotationPolicy, error) {
	p := &keyhold.KeyRotationPolicy{}
	err := r.Scan(&p.VaultName, &p.Name, dbRaw{&p.Policy}, dbTime{&p.CreatedAt}, dbTime{&p.UpdatedAt})
	return p, err
}

// GetKeyRotationPolicy returns the rotation policy of a key that is not
// deleted. It returns ENotFound if the key has none, does not exist or is
// soft-deleted.
func (s *Store) GetKeyRotationPolicy(ctx context.Context, vault, name string) (*keyhold.KeyRotationPolicy, error) {
	p, err := scanRotationPolicy(s.queryRow(ctx, `SELECT `+rotationPolicyCols+rotationPolicyFrom+`
		WHERE p.vault_key = ? AND p.name_key = ?`, key(vault), key(name)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("rotation policy of key %q", name)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return p, nil
}

// ListKeyRotationPolicies returns the rotation policy of every key that is
// not deleted, in every vault, ordered by vault and key name.
func (s *Store) ListKeyRotationPolicies(ctx context.Context) ([]*keyhold.KeyRotationPolicy, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.KeyRotationPolicy, error) { return scanRotationPolicy(r) },
		`SELECT `+rotationPolicyCols+rotationPolicyFrom+` ORDER BY p.vault_key, p.name_key`)
}
