package environment

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
)

// maxPasses bounds the passes of the re-encryption job over an environment:
// a pass finds the records still below the new generation (written by a
// writer that had not yet seen it, or uploads committed meanwhile), and
// writers pick the new generation up at once, so two passes are the norm.
const maxPasses = 8

// segmentPage is how many file segments the job holds at once (each up to
// keyhold.MaxSealedSegment), so that memory stays bounded whatever the
// file sizes.
const segmentPage = 2

// FileSegmentBinding binds segment n of the file ref as the data API
// (package dataverse) seals it: environment, table, row and the segment's
// index. The re-encryption job opens and reseals segments with it, so the
// two must stay the same.
func FileSegmentBinding(ref keyhold.FileRef, n int64) envelope.Binding {
	return envelope.SegmentBinding(ref.EnvironmentID, ref.Table, ref.RowID, n)
}

// Cursor prefixes: the job walks rows first, then files.
const (
	cursorRows  = "rows:"
	cursorFiles = "files:"
)

// reencrypt moves every row and file segment of the environment to the
// link's generation, a batch per transaction, saving the cursor and the
// progress in the operation after each batch so that a crash resumes where
// it stopped. A row written meanwhile is left to its writer (ResealRows
// replaces only rows still at the version read), which seals under the new
// generation anyway; a final count decides whether another pass is needed.
func (s *Service) reencrypt(ctx context.Context, r *run) error {
	p, err := r.params()
	if err != nil {
		return err
	}
	envID, gen := r.op.EnvironmentID, p.Generation
	if gen < 1 {
		return opFailure("the operation has no root-key generation to re-encrypt to; re-run it")
	}
	for {
		rowsTotal, rowsBelow, err := s.cfg.Store.CountRows(ctx, envID, gen)
		if err != nil {
			return err
		}
		segsTotal, segsBelow, err := s.cfg.Store.CountFileSegments(ctx, envID, gen)
		if err != nil {
			return err
		}
		if err := r.save(ctx, func(op *keyhold.Operation) {
			op.Total = rowsTotal + segsTotal
			op.Done = op.Total - rowsBelow - segsBelow
		}); err != nil {
			return err
		}
		if rowsBelow+segsBelow == 0 {
			return nil
		}
		if p.Passes >= maxPasses {
			return opFailure("%d records of environment %s are still under an older root-key generation after %d passes; re-run the operation to resume",
				rowsBelow+segsBelow, envID, p.Passes)
		}
		if err := s.reencryptPass(ctx, r, envID, gen); err != nil {
			return err
		}
		p.Passes++
		if err := r.save(ctx, func(op *keyhold.Operation) {
			op.Cursor = ""
			_ = setJSON(&op.Params, p)
		}); err != nil {
			return err
		}
	}
}

// reencryptPass walks the rows, then the files, below gen from the saved
// cursor.
func (s *Service) reencryptPass(ctx context.Context, r *run, envID string, gen int64) error {
	r.mu.Lock()
	cursor := r.op.Cursor
	r.mu.Unlock()
	if !strings.HasPrefix(cursor, cursorFiles) {
		var afterTable, afterID string
		if rest, ok := strings.CutPrefix(cursor, cursorRows); ok {
			var at [2]string
			if json.Unmarshal([]byte(rest), &at) == nil {
				afterTable, afterID = at[0], at[1]
			}
		}
		if err := s.reencryptRows(ctx, r, envID, gen, afterTable, afterID); err != nil {
			return err
		}
		cursor = cursorFiles
	}
	return s.reencryptFiles(ctx, r, envID, gen, strings.TrimPrefix(cursor, cursorFiles))
}

func (s *Service) reencryptRows(ctx context.Context, r *run, envID string, gen int64, afterTable, afterID string) error {
	batch := s.lcfg().BatchSize
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		rows, err := s.cfg.Store.ListRowsBelowGeneration(ctx, envID, gen, afterTable, afterID, batch)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		out := make([]*keyhold.SealedRow, 0, len(rows))
		for _, row := range rows {
			b := envelope.RowBinding(envID, row.Table, row.ID)
			pt, err := s.ring.Open(ctx, b, row.Sealed)
			if err != nil {
				return reencryptError(err, "row "+row.Table+"/"+row.ID)
			}
			sealed, err := s.ring.Seal(ctx, gen, b, pt)
			clear(pt)
			if err != nil {
				return reencryptError(err, "row "+row.Table+"/"+row.ID)
			}
			nr := *row
			nr.Sealed, nr.Generation = sealed, gen
			out = append(out, &nr)
		}
		if _, err := s.cfg.Store.ResealRows(ctx, out); err != nil {
			return err
		}
		last := rows[len(rows)-1]
		afterTable, afterID = last.Table, last.ID
		if err := r.save(ctx, func(op *keyhold.Operation) {
			at, _ := json.Marshal([2]string{afterTable, afterID})
			op.Cursor = cursorRows + string(at)
			op.Done = min(op.Done+int64(len(rows)), op.Total)
		}); err != nil {
			return err
		}
		if h := s.lc().afterBatch; h != nil {
			h(r.op)
		}
	}
}

func (s *Service) reencryptFiles(ctx context.Context, r *run, envID string, gen int64, afterUpload string) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		files, err := s.cfg.Store.ListFilesBelowGeneration(ctx, envID, gen, afterUpload, 16)
		if err != nil {
			return err
		}
		if len(files) == 0 {
			return nil
		}
		for _, f := range files {
			n, err := s.reencryptFile(ctx, f, gen)
			if err != nil {
				return err
			}
			afterUpload = f.UploadID
			if err := r.save(ctx, func(op *keyhold.Operation) {
				op.Cursor = cursorFiles + afterUpload
				op.Done = min(op.Done+n, op.Total)
			}); err != nil {
				return err
			}
		}
		if h := s.lc().afterBatch; h != nil {
			h(r.op)
		}
	}
}

// reencryptFile reseals the segments of f below gen, a page at a time, and
// returns how many it resealed. A file replaced or deleted meanwhile stops
// it quietly: the new content stands.
func (s *Service) reencryptFile(ctx context.Context, f *keyhold.File, gen int64) (int64, error) {
	var done int64
	after := int64(-1)
	for {
		segs, err := s.cfg.Store.ListFileSegments(ctx, f.UploadID, after, segmentPage)
		if keyhold.IsNotFound(err) {
			return done, nil
		}
		if err != nil {
			return done, err
		}
		if len(segs) == 0 {
			return done, nil
		}
		for _, sg := range segs {
			after = sg.Index
			if sg.Generation >= gen {
				continue
			}
			b := FileSegmentBinding(f.FileRef, sg.Index)
			pt, err := s.ring.Open(ctx, b, sg.Sealed)
			if err != nil {
				return done, reencryptError(err, "file segment "+f.Table+"/"+f.RowID+"/"+f.Column)
			}
			sealed, err := s.ring.Seal(ctx, gen, b, pt)
			clear(pt)
			if err != nil {
				return done, reencryptError(err, "file segment "+f.Table+"/"+f.RowID+"/"+f.Column)
			}
			ok, err := s.cfg.Store.ResealFileSegment(ctx, &keyhold.FileSegment{UploadID: sg.UploadID, Index: sg.Index, Generation: gen, Sealed: sealed})
			if err != nil {
				return done, err
			}
			if !ok {
				return done, nil // replaced or deleted meanwhile
			}
			done++
		}
	}
}

// reencryptError says which record the job could not move, keeping the
// cause's code (a denied key stays EForbidden, an unreachable vault
// EUnavailable) and its caller-safe message.
func reencryptError(err error, what string) error {
	code := keyhold.ErrorCode(err)
	if code == keyhold.EInternal {
		return err
	}
	return &keyhold.Error{Code: code, Detail: keyhold.ErrorDetail(err),
		Message: "re-encrypting " + what + ": " + keyhold.ErrorMessage(err), Err: err}
}
