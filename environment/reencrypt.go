package environment

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"runtime"
	"strings"
	"sync"

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

// reencryptRows moves the rows below gen, after the cursor, to gen. Listing
// and sealing the next batch overlaps writing the current one (one batch
// ahead, so memory stays bounded); the cursor is still saved only after a
// batch is written, so a crash resumes at the first batch not committed.
func (s *Service) reencryptRows(ctx context.Context, r *run, envID string, gen int64, afterTable, afterID string) error {
	batch := s.lcfg().BatchSize
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: no store call outlives the pass
	defer cancel()
	type sealedBatch struct {
		rows []*keyhold.SealedRow
		err  error
	}
	ahead := make(chan sealedBatch, 1)
	wg.Go(func() {
		defer close(ahead)
		at, aid := afterTable, afterID
		for {
			rows, err := s.cfg.Store.ListRowsBelowGeneration(ctx, envID, gen, at, aid, batch)
			if err == nil && len(rows) > 0 {
				at, aid = rows[len(rows)-1].Table, rows[len(rows)-1].ID
				rows, err = s.resealBatch(ctx, envID, gen, rows)
			}
			select {
			case ahead <- sealedBatch{rows, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(rows) == 0 {
				return
			}
		}
	})
	for {
		var b sealedBatch
		var ok bool
		select {
		case b, ok = <-ahead:
			if !ok {
				// The lister stops without a last batch only when ctx ended.
				return ctx.Err()
			}
		case <-ctx.Done():
			return ctx.Err()
		}
		if b.err != nil {
			return b.err
		}
		if len(b.rows) == 0 {
			return nil
		}
		last := b.rows[len(b.rows)-1]
		// The batch and the cursor past it commit together: one commit
		// (one fsync on SQLite) per batch, and no cursor ahead of the rows.
		if err := r.saveWith(ctx, func(tx keyhold.Store) error {
			_, err := tx.ResealRows(ctx, b.rows)
			return err
		}, func(op *keyhold.Operation) {
			at, _ := json.Marshal([2]string{last.Table, last.ID})
			op.Cursor = cursorRows + string(at)
			op.Done = min(op.Done+int64(len(b.rows)), op.Total)
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

// resealBatch opens every row of a batch and seals it again under gen,
// spread over GOMAXPROCS workers; out[i] is rows[i] resealed, so that
// ResealRows sees the batch in the order it was listed. The root keys the
// batch needs are fetched from the keyring once, not once per row, and
// wiped when the batch is done. It returns the first failing row's error
// (reencryptError), with the keyring's code for a generation that cannot
// be unwrapped.
func (s *Service) resealBatch(ctx context.Context, envID string, gen int64, rows []*keyhold.SealedRow) ([]*keyhold.SealedRow, error) {
	keys := map[int64]keyhold.Secret{}
	defer func() {
		for _, k := range keys {
			k.Wipe()
		}
	}()
	need := func(g int64, what string) error {
		if _, ok := keys[g]; ok {
			return nil
		}
		k, err := s.ring.Get(ctx, envID, g)
		if err != nil {
			return reencryptError(err, what)
		}
		keys[g] = k
		return nil
	}
	if err := need(gen, "rows of "+envID); err != nil {
		return nil, err
	}
	for _, row := range rows {
		// A header that does not parse is left to Open, which names the row.
		if g, err := envelope.GenerationOf(row.Sealed); err == nil {
			if err := need(g, "row "+row.Table+"/"+row.ID); err != nil {
				return nil, err
			}
		}
	}
	lookup := func(g int64) (keyhold.Secret, error) {
		if k, ok := keys[g]; ok {
			return k, nil
		}
		return keyhold.Secret{}, keyhold.Errorc(keyhold.EConflict, envelope.DetailIntegrity, "the record names root-key generation %d, which its header did not", g)
	}
	target := keys[gen]
	out := make([]*keyhold.SealedRow, len(rows))
	errs := make([]error, len(rows))
	reseal := func(i int) {
		row := rows[i]
		b := envelope.RowBinding(envID, row.Table, row.ID)
		pt, err := envelope.Open(lookup, b, row.Sealed)
		if err != nil {
			errs[i] = reencryptError(err, "row "+row.Table+"/"+row.ID)
			return
		}
		sealed, err := envelope.SealRand(rand.Reader, target, gen, b, pt)
		clear(pt)
		if err != nil {
			errs[i] = reencryptError(err, "row "+row.Table+"/"+row.ID)
			return
		}
		nr := *row
		nr.Sealed, nr.Generation = sealed, gen
		out[i] = &nr
	}
	// Contiguous chunks, one per worker: the keys are only read meanwhile.
	workers := min(runtime.GOMAXPROCS(0), (len(rows)+minRowsPerWorker-1)/minRowsPerWorker)
	if workers <= 1 {
		for i := range rows {
			reseal(i)
		}
	} else {
		var wg sync.WaitGroup
		chunk := (len(rows) + workers - 1) / workers
		for lo := 0; lo < len(rows); lo += chunk {
			hi := min(lo+chunk, len(rows))
			wg.Go(func() {
				for i := lo; i < hi; i++ {
					reseal(i)
				}
			})
		}
		wg.Wait()
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// minRowsPerWorker keeps small batches on one goroutine, where starting
// workers would cost more than the cryptography.
const minRowsPerWorker = 32

// saveWith runs work (if not nil) and saves the operation changed by change
// in one transaction, renewing the lease as save does. The change reaches
// the in-memory operation only once committed, so that a failed batch is
// never recorded as done. The save is fenced by the run's lease: once
// another worker has leased the operation, it is refused (EConflict with
// detail keyhold.DetailOperationLeaseLost), work rolls back with it, and
// every later save of this run is refused without a write.
func (r *run) saveWith(ctx context.Context, work func(tx keyhold.Store) error, change func(op *keyhold.Operation)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost != nil {
		return r.lost
	}
	next := *r.op
	if change != nil {
		change(&next)
	}
	r.renew(&next)
	var err error
	if work == nil {
		err = r.s.cfg.Store.UpdateOperationLeased(ctx, &next, r.owner)
	} else {
		err = r.s.cfg.Store.InTx(ctx, func(tx keyhold.Store) error {
			if err := work(tx); err != nil {
				return err
			}
			return tx.UpdateOperationLeased(ctx, &next, r.owner)
		})
	}
	if leaseLost(err) {
		r.lost = err
	}
	if err != nil {
		return err
	}
	*r.op = next
	return nil
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
