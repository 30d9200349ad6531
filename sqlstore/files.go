package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/keyhold/keyhold"
)

// Files live in two tables: env_files holds one row per upload (pending or
// committed) with the file's metadata, env_file_segments the sealed
// segments of each upload. At most one upload per file column is committed
// (a partial unique index); committing swaps a pending upload in and deletes
// the previous one in one transaction, so readers see the old content or the
// new, never a mix or a half-written upload. Deleting an upload's row
// cascades to its segments in the same statement, which is what makes the
// deletes of pending uploads safe against a concurrent commit: the row is
// the one place both touch.

// fileCols reads a file; its generation is the lowest of its segments', over
// the small (upload_id, generation) index.
const fileCols = `f.upload_id, f.environment_id, f.table_key, f.row_id, f.column_key, f.committed, f.file_name,
	f.content_type, f.size, f.segment_size, f.segments, f.version, f.created_at, f.updated_at,
	(SELECT COALESCE(MIN(g.generation), 0) FROM env_file_segments g WHERE g.upload_id = f.upload_id)`

func scanFile(r interface{ Scan(...any) error }) (*keyhold.File, error) {
	f := &keyhold.File{}
	err := r.Scan(&f.UploadID, &f.EnvironmentID, &f.Table, &f.RowID, &f.Column, &f.Committed, &f.FileName,
		&f.ContentType, &f.Size, &f.SegmentSize, &f.Segments, &f.Version, dbTime{&f.CreatedAt}, dbTime{&f.UpdatedAt},
		&f.Generation)
	return f, err
}

func checkFileRef(ref keyhold.FileRef) error {
	if err := checkRowName(ref.EnvironmentID, ref.Table, ref.RowID); err != nil {
		return err
	}
	if ref.Column == "" {
		return invalid("file column is required")
	}
	return nil
}

// BeginFileUpload records a pending upload of f.FileRef under f.UploadID,
// with f.FileName, f.ContentType, f.SegmentSize and f.CreatedAt (also its
// UpdatedAt). It sets f.Table and f.Column to their lowered keys and
// f.Committed, f.Version, f.Size and f.Segments to zero values. It returns
// EInvalid for missing names or a segment size that is not positive,
// ENotFound if the row does not exist and EConflict if the upload id is
// taken.
func (s *Store) BeginFileUpload(ctx context.Context, f *keyhold.File) error {
	if f.UploadID == "" {
		return invalid("upload id is required")
	}
	if err := checkFileRef(f.FileRef); err != nil {
		return err
	}
	if f.SegmentSize <= 0 {
		return invalid("segment size %d is not positive", f.SegmentSize)
	}
	created, err := encTime(f.CreatedAt)
	if err != nil {
		return err
	}
	tk, ck := key(f.Table), key(f.Column)
	return s.inTx(ctx, func(tx *Store) error {
		n, err := tx.execN(ctx, `INSERT INTO env_files (upload_id, environment_id, table_key, row_id, column_key,
			committed, file_name, content_type, size, segment_size, segments, version, created_at, updated_at)
			SELECT ?, ?, ?, ?, ?, FALSE, ?, ?, 0, ?, 0, 0, ?, ? WHERE EXISTS
			(SELECT 1 FROM env_rows WHERE environment_id = ? AND table_key = ? AND id = ?)
			ON CONFLICT DO NOTHING`,
			f.UploadID, f.EnvironmentID, tk, f.RowID, ck, f.FileName, f.ContentType, f.SegmentSize, created, created,
			f.EnvironmentID, tk, f.RowID)
		if err != nil {
			return err
		}
		if n == 0 {
			var rows int
			if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM env_rows WHERE environment_id = ? AND table_key = ? AND id = ?`,
				f.EnvironmentID, tk, f.RowID).Scan(&rows); err != nil {
				return tx.wrap(err)
			}
			if rows == 0 {
				return notFound("row %q", f.RowID)
			}
			return conflict("upload %q", f.UploadID)
		}
		f.Table, f.Column = tk, ck
		f.Committed, f.Version, f.Size, f.Segments, f.Generation = false, 0, 0, 0, 0
		f.UpdatedAt = f.CreatedAt
		return nil
	})
}

// lockUpload locks an upload's row until the transaction ends (a no-op
// update, so that it works alike in both engines) and returns it. It
// returns ENotFound if there is no such upload.
func (s *Store) lockUpload(ctx context.Context, uploadID string) (*keyhold.File, error) {
	f := &keyhold.File{UploadID: uploadID}
	err := s.queryRow(ctx, `UPDATE env_files SET updated_at = updated_at WHERE upload_id = ?
		RETURNING environment_id, table_key, row_id, column_key, committed, segment_size`, uploadID).
		Scan(&f.EnvironmentID, &f.Table, &f.RowID, &f.Column, &f.Committed, &f.SegmentSize)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("upload %q", uploadID)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return f, nil
}

func checkSegment(seg *keyhold.FileSegment) error {
	switch {
	case seg.UploadID == "":
		return invalid("upload id is required")
	case seg.Index < 0:
		return invalid("segment index %d is negative", seg.Index)
	case len(seg.Sealed) > keyhold.MaxSealedSegment:
		return invalid("segment %d is %d bytes, more than %d", seg.Index, len(seg.Sealed), keyhold.MaxSealedSegment)
	}
	return checkSealed("segment", seg.Generation, seg.Sealed)
}

// PutFileSegment stores or replaces a segment of a pending upload. It holds
// the upload's row lock while it writes, so that a concurrent commit either
// counts the segment or makes this fail with EConflict. It returns EInvalid
// for a negative index, empty or oversized content or a generation below 1,
// ENotFound if there is no such upload and EConflict if it is committed.
func (s *Store) PutFileSegment(ctx context.Context, seg *keyhold.FileSegment) error {
	if err := checkSegment(seg); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *Store) error {
		f, err := tx.lockUpload(ctx, seg.UploadID)
		if err != nil {
			return err
		}
		if f.Committed {
			return keyhold.Errorf(keyhold.EConflict, "sqlstore: upload %q is already committed", seg.UploadID)
		}
		_, err = tx.exec(ctx, `INSERT INTO env_file_segments (upload_id, seg_index, environment_id, generation, sealed)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (upload_id, seg_index) DO UPDATE SET generation = excluded.generation, sealed = excluded.sealed`,
			seg.UploadID, seg.Index, f.EnvironmentID, seg.Generation, seg.Sealed)
		return err
	})
}

// CommitFileUpload makes a pending upload of size plaintext bytes its
// file's content if the file is at ifVersion (-1: no file yet, 0: any, > 0:
// that version), deleting the previous content, in one transaction; the
// file's version becomes the previous one plus one (1 for a new file) and
// its UpdatedAt at. It returns the committed file. It returns ENotFound if
// there is no such upload, EInvalid for a negative size or if the upload
// does not hold exactly segments 0 to ceil(size/segment size)-1, and
// EConflict if the upload is already committed, the file is not at
// ifVersion, or another upload of the same file is committed concurrently.
func (s *Store) CommitFileUpload(ctx context.Context, uploadID string, size, ifVersion int64, at time.Time) (*keyhold.File, error) {
	switch {
	case size < 0:
		return nil, invalid("file size %d is negative", size)
	case ifVersion < -1:
		return nil, invalid("version %d is not a version", ifVersion)
	}
	updated, err := encTime(at)
	if err != nil {
		return nil, err
	}
	var out *keyhold.File
	err = s.inTx(ctx, func(tx *Store) error {
		// Locked first, so that no segment lands after the count below.
		f, err := tx.lockUpload(ctx, uploadID)
		if err != nil {
			return err
		}
		if f.Committed {
			return keyhold.Errorf(keyhold.EConflict, "sqlstore: upload %q is already committed", uploadID)
		}
		want := (size + f.SegmentSize - 1) / f.SegmentSize
		var count, last int64
		if err := tx.queryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(seg_index), -1) FROM env_file_segments
			WHERE upload_id = ?`, uploadID).Scan(&count, &last); err != nil {
			return tx.wrap(err)
		}
		if count != want || last != want-1 {
			return invalid("upload %q holds %d segments up to index %d; %d bytes need segments 0 to %d",
				uploadID, count, last, size, want-1)
		}
		var oldID string
		var oldVersion int64
		err = tx.queryRow(ctx, `SELECT upload_id, version FROM env_files WHERE environment_id = ? AND table_key = ?
			AND row_id = ? AND column_key = ? AND committed`, f.EnvironmentID, f.Table, f.RowID, f.Column).
			Scan(&oldID, &oldVersion)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if ifVersion > 0 {
				return keyhold.Errorf(keyhold.EConflict, "sqlstore: file %q of row %q is not at version %d",
					f.Column, f.RowID, ifVersion)
			}
		case err != nil:
			return tx.wrap(err)
		case ifVersion == -1:
			return conflict("file %q of row %q", f.Column, f.RowID)
		case ifVersion > 0 && oldVersion != ifVersion:
			return keyhold.Errorf(keyhold.EConflict, "sqlstore: file %q of row %q is at version %d, not %d",
				f.Column, f.RowID, oldVersion, ifVersion)
		}
		if oldID != "" {
			if _, err := tx.exec(ctx, `DELETE FROM env_file_segments WHERE upload_id = ?`, oldID); err != nil {
				return err
			}
			if _, err := tx.exec(ctx, `DELETE FROM env_files WHERE upload_id = ?`, oldID); err != nil {
				return err
			}
		}
		// A concurrent commit of another upload of this file that got in
		// first makes this a unique violation on env_files_current:
		// EConflict.
		if _, err := tx.exec(ctx, `UPDATE env_files SET committed = TRUE, size = ?, segments = ?, version = ?,
			updated_at = ? WHERE upload_id = ?`, size, want, oldVersion+1, updated, uploadID); err != nil {
			return err
		}
		out, err = scanFile(tx.queryRow(ctx, `SELECT `+fileCols+` FROM env_files f WHERE f.upload_id = ?`, uploadID))
		return tx.wrap(err)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// AbortFileUpload deletes a pending upload with its segments. It returns
// ENotFound if there is no such upload and EConflict if it is committed.
func (s *Store) AbortFileUpload(ctx context.Context, uploadID string) error {
	n, err := s.execN(ctx, `DELETE FROM env_files WHERE upload_id = ? AND NOT committed`, uploadID)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	var committed bool
	err = s.queryRow(ctx, `SELECT committed FROM env_files WHERE upload_id = ?`, uploadID).Scan(&committed)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("upload %q", uploadID)
	}
	if err != nil {
		return s.wrap(err)
	}
	return keyhold.Errorf(keyhold.EConflict, "sqlstore: upload %q is committed", uploadID)
}

// DeleteStaleUploads deletes the pending uploads that began before before,
// with their segments, and returns how many it deleted.
func (s *Store) DeleteStaleUploads(ctx context.Context, before time.Time) (int64, error) {
	b, err := encTime(before)
	if err != nil {
		return 0, err
	}
	return s.execN(ctx, `DELETE FROM env_files WHERE NOT committed AND created_at < ?`, b)
}

// GetFile returns the committed file of ref, or ENotFound.
func (s *Store) GetFile(ctx context.Context, ref keyhold.FileRef) (*keyhold.File, error) {
	f, err := scanFile(s.queryRow(ctx, `SELECT `+fileCols+` FROM env_files f WHERE f.environment_id = ?
		AND f.table_key = ? AND f.row_id = ? AND f.column_key = ? AND f.committed`,
		ref.EnvironmentID, key(ref.Table), ref.RowID, key(ref.Column)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("file %q of row %q", ref.Column, ref.RowID)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return f, nil
}

// ListRowFiles returns a row's committed files ordered by column; none for
// an unknown row.
func (s *Store) ListRowFiles(ctx context.Context, environmentID, table, rowID string) ([]*keyhold.File, error) {
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.File, error) { return scanFile(r) },
		`SELECT `+fileCols+` FROM env_files f WHERE f.environment_id = ? AND f.table_key = ? AND f.row_id = ?
		AND f.committed ORDER BY f.column_key`, environmentID, key(table), rowID)
}

// DeleteFile deletes the committed file of ref with its segments, whatever
// its version (ifVersion 0) or only at that version. It returns ENotFound if
// there is no file, EConflict if it is at another version and EInvalid for
// a negative ifVersion.
func (s *Store) DeleteFile(ctx context.Context, ref keyhold.FileRef, ifVersion int64) error {
	if ifVersion < 0 {
		return invalid("version %d is not a version", ifVersion)
	}
	q := `DELETE FROM env_files WHERE environment_id = ? AND table_key = ? AND row_id = ? AND column_key = ? AND committed`
	args := []any{ref.EnvironmentID, key(ref.Table), ref.RowID, key(ref.Column)}
	if ifVersion > 0 {
		q += ` AND version = ?`
		args = append(args, ifVersion)
	}
	n, err := s.execN(ctx, q, args...)
	if err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	f, err := s.GetFile(ctx, ref)
	if err != nil {
		return err
	}
	return keyhold.Errorf(keyhold.EConflict, "sqlstore: file %q of row %q is at version %d, not %d",
		ref.Column, ref.RowID, f.Version, ifVersion)
}

const segmentCols = `upload_id, seg_index, generation, sealed`

func scanSegment(r interface{ Scan(...any) error }) (*keyhold.FileSegment, error) {
	seg := &keyhold.FileSegment{}
	err := r.Scan(&seg.UploadID, &seg.Index, &seg.Generation, &seg.Sealed)
	return seg, err
}

// GetFileSegment returns segment index of an upload, or ENotFound.
func (s *Store) GetFileSegment(ctx context.Context, uploadID string, index int64) (*keyhold.FileSegment, error) {
	seg, err := scanSegment(s.queryRow(ctx, `SELECT `+segmentCols+` FROM env_file_segments
		WHERE upload_id = ? AND seg_index = ?`, uploadID, index))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("segment %d of upload %q", index, uploadID)
	}
	if err != nil {
		return nil, s.wrap(err)
	}
	return seg, nil
}

// ListFileSegments returns an upload's segments in index order after
// afterIndex (-1 from the start), at most limit of them (0: all). It
// returns ENotFound if there is no such upload (a file replaced or deleted
// since its upload id was read) and EInvalid for a negative limit.
func (s *Store) ListFileSegments(ctx context.Context, uploadID string, afterIndex int64, limit int) ([]*keyhold.FileSegment, error) {
	lim, err := limitClause(limit)
	if err != nil {
		return nil, err
	}
	segs, err := scanAll(ctx, s, func(r *sql.Rows) (*keyhold.FileSegment, error) { return scanSegment(r) },
		`SELECT `+segmentCols+` FROM env_file_segments WHERE upload_id = ? AND seg_index > ? ORDER BY seg_index`+lim,
		limitArgs([]any{uploadID, afterIndex}, limit)...)
	if err != nil || len(segs) > 0 {
		return segs, err
	}
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM env_files WHERE upload_id = ?`, uploadID).Scan(&n); err != nil {
		return nil, s.wrap(err)
	}
	if n == 0 {
		return nil, notFound("upload %q", uploadID)
	}
	return segs, nil
}

// ListFilesBelowGeneration returns an environment's committed files with a
// segment under a generation lower than gen, ordered by upload id after
// afterUploadID, at most limit of them (0: all). It returns EInvalid for a
// negative limit.
func (s *Store) ListFilesBelowGeneration(ctx context.Context, environmentID string, gen int64, afterUploadID string, limit int) ([]*keyhold.File, error) {
	lim, err := limitClause(limit)
	if err != nil {
		return nil, err
	}
	return scanAll(ctx, s, func(r *sql.Rows) (*keyhold.File, error) { return scanFile(r) },
		`SELECT `+fileCols+` FROM env_files f WHERE f.environment_id = ? AND f.upload_id > ? AND f.committed
		AND EXISTS (SELECT 1 FROM env_file_segments b WHERE b.upload_id = f.upload_id AND b.generation < ?)
		ORDER BY f.upload_id`+lim,
		limitArgs([]any{environmentID, afterUploadID, gen}, limit)...)
}

// ResealFileSegment replaces a segment of a committed upload if it is under
// a generation lower than seg.Generation, and reports whether it did. It
// returns EInvalid as PutFileSegment does.
func (s *Store) ResealFileSegment(ctx context.Context, seg *keyhold.FileSegment) (bool, error) {
	if err := checkSegment(seg); err != nil {
		return false, err
	}
	n, err := s.execN(ctx, `UPDATE env_file_segments SET sealed = ?, generation = ?
		WHERE upload_id = ? AND seg_index = ? AND generation < ?
		AND EXISTS (SELECT 1 FROM env_files f WHERE f.upload_id = env_file_segments.upload_id AND f.committed)`,
		seg.Sealed, seg.Generation, seg.UploadID, seg.Index, seg.Generation)
	return n > 0, err
}

// CountFileSegments counts the segments of an environment's committed
// files, and those under a generation lower than gen.
func (s *Store) CountFileSegments(ctx context.Context, environmentID string, gen int64) (total, below int64, err error) {
	err = s.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN b.generation < ? THEN 1 ELSE 0 END), 0)
		FROM env_file_segments b JOIN env_files f ON f.upload_id = b.upload_id AND f.committed
		WHERE b.environment_id = ?`, gen, environmentID).Scan(&total, &below)
	if err != nil {
		return 0, 0, s.wrap(err)
	}
	return total, below, nil
}
