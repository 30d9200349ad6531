package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
)

// segmentBytes is the sealed content of segment i of an upload: distinct
// per upload and index, with bytes text handling would mangle.
func segmentBytes(upload string, i int64) []byte {
	return append([]byte(fmt.Sprintf("%s#%d", upload, i)), 0x00, 0xff, '\'', byte(i))
}

// commitFile uploads a file of n segments of 4 bytes (the last one 2) under
// gen to ref's row, creating the row if needed, and returns it committed.
func commitFile(t *testing.T, s keyhold.Store, ref keyhold.FileRef, upload string, n, gen int64) *keyhold.File {
	t.Helper()
	ctx := context.Background()
	if _, err := s.GetRow(ctx, ref.EnvironmentID, ref.Table, ref.RowID); keyhold.ErrorCode(err) == keyhold.ENotFound {
		must(t, s.PutRow(ctx, sealedRow(ref.EnvironmentID, ref.Table, ref.RowID, gen, "row"), -1))
	}
	f := &keyhold.File{FileRef: ref, UploadID: upload, FileName: "report.pdf", ContentType: "application/pdf",
		SegmentSize: 4, CreatedAt: t0}
	must(t, s.BeginFileUpload(ctx, f))
	for i := range n {
		must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: upload, Index: i, Generation: gen, Sealed: segmentBytes(upload, i)}))
	}
	size := int64(0)
	if n > 0 {
		size = 4*(n-1) + 2
	}
	got, err := s.CommitFileUpload(ctx, upload, size, 0, t0.Add(time.Minute))
	must(t, err)
	return got
}

// readAll reads an upload's segments by pages of two.
func readAll(t *testing.T, s keyhold.Store, upload string) []*keyhold.FileSegment {
	t.Helper()
	var out []*keyhold.FileSegment
	after := int64(-1)
	for {
		page, err := s.ListFileSegments(context.Background(), upload, after, 2)
		must(t, err)
		if len(page) == 0 {
			return out
		}
		if len(page) > 2 {
			t.Fatalf("page of %d segments, limit 2", len(page))
		}
		out = append(out, page...)
		after = page[len(page)-1].Index
	}
}

// testFiles writes a file of three segments, checks it round trips
// exactly, and that an upload is invisible until committed.
func testFiles(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "Account")
	must(t, s.PutRow(ctx, sealedRow("env-a", "account", "r1", 1, "row"), -1))
	ref := keyhold.FileRef{EnvironmentID: "env-a", Table: "ACCOUNT", RowID: "r1", Column: "Doc"}
	f := &keyhold.File{FileRef: ref, UploadID: "up-1", FileName: "report.pdf", ContentType: "application/pdf",
		SegmentSize: 4, CreatedAt: t0}
	must(t, s.BeginFileUpload(ctx, f))
	if f.Table != "account" || f.Column != "doc" || f.Committed || f.Version != 0 {
		t.Errorf("BeginFileUpload: Table %q Column %q Committed %v Version %d; want account, doc, false, 0",
			f.Table, f.Column, f.Committed, f.Version)
	}
	// Segments arrive in any order, and may be sent again.
	for _, i := range []int64{2, 0, 1, 1} {
		must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "up-1", Index: i, Generation: 1 + i%2,
			Sealed: segmentBytes("up-1", i)}))
	}
	_, err := s.GetFile(ctx, ref)
	wantCode(t, "GetFile(before commit)", err, keyhold.ENotFound)
	files, err := s.ListRowFiles(ctx, "env-a", "account", "r1")
	must(t, err)
	if len(files) != 0 {
		t.Errorf("ListRowFiles before commit: %d files, want none", len(files))
	}

	got, err := s.CommitFileUpload(ctx, "up-1", 10, -1, t0.Add(time.Minute))
	must(t, err)
	want := *f
	want.Committed, want.Version, want.Size, want.Segments, want.Generation = true, 1, 10, 3, 1
	want.UpdatedAt = t0.Add(time.Minute)
	same(t, "CommitFileUpload", got, &want)
	got, err = s.GetFile(ctx, keyhold.FileRef{EnvironmentID: "env-a", Table: "account", RowID: "r1", Column: "DOC"})
	must(t, err)
	same(t, "GetFile", got, &want)
	files, err = s.ListRowFiles(ctx, "env-a", "Account", "r1")
	must(t, err)
	same(t, "ListRowFiles", files, []*keyhold.File{&want})

	segs := readAll(t, s, "up-1")
	if len(segs) != 3 {
		t.Fatalf("read %d segments, want 3", len(segs))
	}
	for i, seg := range segs {
		if seg.Index != int64(i) || seg.UploadID != "up-1" || seg.Generation != 1+int64(i)%2 ||
			!bytes.Equal(seg.Sealed, segmentBytes("up-1", int64(i))) {
			t.Errorf("segment %d: %+v, want index %d gen %d bytes %x", i, seg, i, 1+i%2, segmentBytes("up-1", int64(i)))
		}
	}
	one, err := s.GetFileSegment(ctx, "up-1", 1)
	must(t, err)
	same(t, "GetFileSegment", one, segs[1])
	_, err = s.GetFileSegment(ctx, "up-1", 3)
	wantCode(t, "GetFileSegment(past the end)", err, keyhold.ENotFound)

	// A committed upload never changes in place.
	wantCode(t, "PutFileSegment(committed)", s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "up-1", Index: 0,
		Generation: 1, Sealed: []byte("x")}), keyhold.EConflict)
	_, err = s.CommitFileUpload(ctx, "up-1", 10, 0, t0)
	wantCode(t, "CommitFileUpload(again)", err, keyhold.EConflict)
	wantCode(t, "AbortFileUpload(committed)", s.AbortFileUpload(ctx, "up-1"), keyhold.EConflict)

	// A second upload, half written: the file is still the first one.
	must(t, s.BeginFileUpload(ctx, &keyhold.File{FileRef: ref, UploadID: "up-2", FileName: "v2.pdf", SegmentSize: 4, CreatedAt: t0}))
	for _, i := range []int64{0, 2} {
		must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "up-2", Index: i, Generation: 2, Sealed: segmentBytes("up-2", i)}))
	}
	for _, tt := range []struct {
		name      string
		size      int64
		ifVersion int64
		code      string
	}{
		{"missing segment", 10, 0, keyhold.EInvalid},
		{"size too small for its segments", 4, 0, keyhold.EInvalid},
		{"negative size", -1, 0, keyhold.EInvalid},
		{"bad ifVersion", 10, -2, keyhold.EInvalid},
	} {
		_, err := s.CommitFileUpload(ctx, "up-2", tt.size, tt.ifVersion, t0)
		wantCode(t, "CommitFileUpload("+tt.name+")", err, tt.code)
	}
	got, err = s.GetFile(ctx, ref)
	must(t, err)
	same(t, "GetFile during a second upload", got, &want)
	if segs := readAll(t, s, "up-1"); len(segs) != 3 {
		t.Errorf("first upload has %d segments during the second, want 3", len(segs))
	}

	must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "up-2", Index: 1, Generation: 2, Sealed: segmentBytes("up-2", 1)}))
	for _, tt := range []struct {
		name      string
		ifVersion int64
	}{{"create only", -1}, {"stale version", 2}} {
		_, err := s.CommitFileUpload(ctx, "up-2", 9, tt.ifVersion, t0)
		wantCode(t, "CommitFileUpload("+tt.name+")", err, keyhold.EConflict)
	}
	v2, err := s.CommitFileUpload(ctx, "up-2", 9, 1, t0.Add(2*time.Minute))
	must(t, err)
	if v2.Version != 2 || v2.UploadID != "up-2" || v2.Size != 9 || v2.FileName != "v2.pdf" || v2.Generation != 2 {
		t.Errorf("second commit: %+v, want version 2 of up-2, 9 bytes, v2.pdf, generation 2", v2)
	}
	// The first upload is gone, so a reader still on it stops rather than
	// mixing contents.
	_, err = s.GetFileSegment(ctx, "up-1", 0)
	wantCode(t, "GetFileSegment(replaced upload)", err, keyhold.ENotFound)
	_, err = s.ListFileSegments(ctx, "up-1", -1, 0)
	wantCode(t, "ListFileSegments(replaced upload)", err, keyhold.ENotFound)
	segs = readAll(t, s, "up-2")
	for i, seg := range segs {
		if !bytes.Equal(seg.Sealed, segmentBytes("up-2", int64(i))) {
			t.Errorf("second upload segment %d: %x", i, seg.Sealed)
		}
	}

	// Uploads to missing rows and bad segments.
	for _, tt := range []struct {
		name string
		f    *keyhold.File
		code string
	}{
		{"upload id taken", &keyhold.File{FileRef: ref, UploadID: "up-2", SegmentSize: 4}, keyhold.EConflict},
		{"missing row", &keyhold.File{FileRef: keyhold.FileRef{EnvironmentID: "env-a", Table: "account", RowID: "nope", Column: "doc"},
			UploadID: "up-9", SegmentSize: 4}, keyhold.ENotFound},
		{"no upload id", &keyhold.File{FileRef: ref, SegmentSize: 4}, keyhold.EInvalid},
		{"no column", &keyhold.File{FileRef: keyhold.FileRef{EnvironmentID: "env-a", Table: "account", RowID: "r1"},
			UploadID: "up-9", SegmentSize: 4}, keyhold.EInvalid},
		{"segment size 0", &keyhold.File{FileRef: ref, UploadID: "up-9"}, keyhold.EInvalid},
	} {
		wantCode(t, "BeginFileUpload("+tt.name+")", s.BeginFileUpload(ctx, tt.f), tt.code)
	}
	must(t, s.BeginFileUpload(ctx, &keyhold.File{FileRef: ref, UploadID: "up-3", SegmentSize: 4, CreatedAt: t0}))
	for _, tt := range []struct {
		name string
		seg  *keyhold.FileSegment
		code string
	}{
		{"no upload", &keyhold.FileSegment{UploadID: "up-9", Generation: 1, Sealed: []byte("x")}, keyhold.ENotFound},
		{"negative index", &keyhold.FileSegment{UploadID: "up-3", Index: -1, Generation: 1, Sealed: []byte("x")}, keyhold.EInvalid},
		{"empty", &keyhold.FileSegment{UploadID: "up-3", Generation: 1}, keyhold.EInvalid},
		{"generation 0", &keyhold.FileSegment{UploadID: "up-3", Sealed: []byte("x")}, keyhold.EInvalid},
		{"too large", &keyhold.FileSegment{UploadID: "up-3", Generation: 1, Sealed: make([]byte, keyhold.MaxSealedSegment+1)}, keyhold.EInvalid},
	} {
		wantCode(t, "PutFileSegment("+tt.name+")", s.PutFileSegment(ctx, tt.seg), tt.code)
	}
	_, err = s.CommitFileUpload(ctx, "up-9", 0, 0, t0)
	wantCode(t, "CommitFileUpload(missing)", err, keyhold.ENotFound)

	// Abort and stale uploads.
	must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "up-3", Index: 0, Generation: 1, Sealed: []byte("x")}))
	must(t, s.AbortFileUpload(ctx, "up-3"))
	_, err = s.GetFileSegment(ctx, "up-3", 0)
	wantCode(t, "GetFileSegment(aborted)", err, keyhold.ENotFound)
	wantCode(t, "AbortFileUpload(again)", s.AbortFileUpload(ctx, "up-3"), keyhold.ENotFound)
	must(t, s.BeginFileUpload(ctx, &keyhold.File{FileRef: ref, UploadID: "old", SegmentSize: 4, CreatedAt: t0}))
	must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "old", Index: 0, Generation: 1, Sealed: []byte("x")}))
	must(t, s.BeginFileUpload(ctx, &keyhold.File{FileRef: ref, UploadID: "new", SegmentSize: 4, CreatedAt: t0.Add(time.Hour)}))
	n, err := s.DeleteStaleUploads(ctx, t0.Add(time.Minute))
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteStaleUploads: %d, want 1 (old)", n)
	}
	_, err = s.GetFileSegment(ctx, "old", 0)
	wantCode(t, "GetFileSegment(stale upload)", err, keyhold.ENotFound)
	_, err = s.CommitFileUpload(ctx, "new", 0, 0, t0) // an empty file: no segments
	must(t, err)
	got, err = s.GetFile(ctx, ref)
	must(t, err)
	if got.UploadID != "new" || got.Size != 0 || got.Segments != 0 || got.Version != 3 || got.Generation != 0 {
		t.Errorf("empty file: %+v, want upload new, no bytes or segments, version 3, generation 0", got)
	}

	// Deletes.
	wantCode(t, "DeleteFile(stale)", s.DeleteFile(ctx, ref, 2), keyhold.EConflict)
	wantCode(t, "DeleteFile(negative)", s.DeleteFile(ctx, ref, -1), keyhold.EInvalid)
	must(t, s.DeleteFile(ctx, ref, 3))
	wantCode(t, "DeleteFile(again)", s.DeleteFile(ctx, ref, 0), keyhold.ENotFound)
	_, err = s.GetFile(ctx, ref)
	wantCode(t, "GetFile(deleted)", err, keyhold.ENotFound)

	// A row's files go with it.
	f2 := commitFile(t, s, ref, "up-4", 2, 1)
	must(t, s.DeleteRow(ctx, "env-a", "account", "r1", 0))
	_, err = s.GetFile(ctx, ref)
	wantCode(t, "GetFile(row deleted)", err, keyhold.ENotFound)
	_, err = s.GetFileSegment(ctx, f2.UploadID, 0)
	wantCode(t, "GetFileSegment(row deleted)", err, keyhold.ENotFound)
	total, _, err := s.CountFileSegments(ctx, "env-a", 1)
	must(t, err)
	if total != 0 {
		t.Errorf("%d segments left after the row went", total)
	}
}

func testFilesReseal(t *testing.T, s keyhold.Store) {
	ctx := context.Background()
	mustTables(t, s, "env-a", "account")
	mustTables(t, s, "env-b", "account")
	ref := func(env, row string) keyhold.FileRef {
		return keyhold.FileRef{EnvironmentID: env, Table: "account", RowID: row, Column: "doc"}
	}
	a := commitFile(t, s, ref("env-a", "r1"), "up-a", 3, 1)
	b := commitFile(t, s, ref("env-a", "r2"), "up-b", 2, 2)
	commitFile(t, s, ref("env-b", "r1"), "up-other", 2, 1)
	// A pending upload under generation 1 is not listed: it may still change.
	must(t, s.BeginFileUpload(ctx, &keyhold.File{FileRef: ref("env-a", "r2"), UploadID: "up-pending", SegmentSize: 4, CreatedAt: t0}))
	must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "up-pending", Index: 0, Generation: 1, Sealed: []byte("p")}))

	list, err := s.ListFilesBelowGeneration(ctx, "env-a", 2, "", 0)
	must(t, err)
	same(t, "ListFilesBelowGeneration(2)", list, []*keyhold.File{a})
	list, err = s.ListFilesBelowGeneration(ctx, "env-a", 3, "", 1)
	must(t, err)
	same(t, "ListFilesBelowGeneration(3) first page", list, []*keyhold.File{a})
	list, err = s.ListFilesBelowGeneration(ctx, "env-a", 3, "up-a", 1)
	must(t, err)
	same(t, "ListFilesBelowGeneration(3) second page", list, []*keyhold.File{b})
	total, below, err := s.CountFileSegments(ctx, "env-a", 2)
	must(t, err)
	if total != 5 || below != 3 {
		t.Errorf("CountFileSegments(2): %d, %d; want 5, 3", total, below)
	}

	reseal := func(upload string, i, gen int64) bool {
		t.Helper()
		ok, err := s.ResealFileSegment(ctx, &keyhold.FileSegment{UploadID: upload, Index: i, Generation: gen,
			Sealed: append([]byte("resealed "), segmentBytes(upload, i)...)})
		must(t, err)
		return ok
	}
	if !reseal("up-a", 0, 2) {
		t.Error("ResealFileSegment(up-a#0 to 2): false, want true")
	}
	for _, tt := range []struct {
		name   string
		upload string
		index  int64
		gen    int64
	}{
		{"already at 2", "up-a", 0, 2},
		{"downwards", "up-b", 0, 1},
		{"missing segment", "up-a", 7, 2},
		{"pending upload", "up-pending", 0, 2},
	} {
		if reseal(tt.upload, tt.index, tt.gen) {
			t.Errorf("ResealFileSegment(%s): true, want false", tt.name)
		}
	}
	got, err := s.GetFileSegment(ctx, "up-a", 0)
	must(t, err)
	if got.Generation != 2 || !bytes.Equal(got.Sealed, append([]byte("resealed "), segmentBytes("up-a", 0)...)) {
		t.Errorf("resealed segment: generation %d, %q", got.Generation, got.Sealed)
	}
	pending, err := s.GetFileSegment(ctx, "up-pending", 0)
	must(t, err)
	if string(pending.Sealed) != "p" || pending.Generation != 1 {
		t.Errorf("pending segment changed: %q under %d", pending.Sealed, pending.Generation)
	}
	// The file's generation is its lowest segment's.
	f, err := s.GetFile(ctx, ref("env-a", "r1"))
	must(t, err)
	if f.Generation != 1 {
		t.Errorf("file generation with one segment moved: %d, want 1", f.Generation)
	}
	for i := int64(1); i < 3; i++ {
		if !reseal("up-a", i, 2) {
			t.Errorf("ResealFileSegment(up-a#%d): false", i)
		}
	}
	f, err = s.GetFile(ctx, ref("env-a", "r1"))
	must(t, err)
	if f.Generation != 2 || f.Version != a.Version {
		t.Errorf("after resealing every segment: generation %d version %d, want 2 and %d", f.Generation, f.Version, a.Version)
	}
	list, err = s.ListFilesBelowGeneration(ctx, "env-a", 2, "", 0)
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListFilesBelowGeneration(2) after the job: %d files, want none", len(list))
	}
	_, below, err = s.CountFileSegments(ctx, "env-a", 2)
	must(t, err)
	if below != 0 {
		t.Errorf("CountFileSegments(2) below after the job: %d", below)
	}
	// Replaced meanwhile: the reseal finds nothing, the new content stands.
	commitFile(t, s, ref("env-a", "r2"), "up-b2", 1, 3)
	if reseal("up-b", 0, 3) {
		t.Error("ResealFileSegment of a replaced upload: true, want false")
	}
	_, err = s.ResealFileSegment(ctx, &keyhold.FileSegment{UploadID: "up-a", Index: 0, Generation: 0, Sealed: []byte("x")})
	wantCode(t, "ResealFileSegment(generation 0)", err, keyhold.EInvalid)
	_, err = s.ListFilesBelowGeneration(ctx, "env-a", 2, "", -1)
	wantCode(t, "ListFilesBelowGeneration(negative limit)", err, keyhold.EInvalid)
}

// LargeFile uploads a file of size bytes in segments of segmentSize
// through s and reads it back a few segments at a time, as the data API
// streams it: the content round trips exactly, and neither side ever holds
// more than a page of segments. Drivers run it with 100 MiB or more,
// skipping it under -short.
func LargeFile(t *testing.T, s keyhold.Store, size, segmentSize int64) {
	t.Helper()
	ctx := context.Background()
	mustTables(t, s, "env-a", "account")
	must(t, s.PutRow(ctx, sealedRow("env-a", "account", "r1", 1, "row"), -1))
	ref := keyhold.FileRef{EnvironmentID: "env-a", Table: "account", RowID: "r1", Column: "doc"}
	must(t, s.BeginFileUpload(ctx, &keyhold.File{FileRef: ref, UploadID: "big", SegmentSize: segmentSize, CreatedAt: t0}))
	segments := (size + segmentSize - 1) / segmentSize
	// One buffer, its head stamped with the index, stands for every segment.
	buf := make([]byte, segmentSize)
	if _, err := rand.Read(buf); err != nil {
		t.Fatal(err)
	}
	segment := func(i int64) []byte {
		n := min(segmentSize, size-i*segmentSize)
		binary.BigEndian.PutUint64(buf, uint64(i))
		return buf[:n]
	}
	wantSum := sha256.New()
	start := time.Now()
	for i := range segments {
		p := segment(i)
		wantSum.Write(p)
		must(t, s.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: "big", Index: i, Generation: 1, Sealed: p}))
	}
	f, err := s.CommitFileUpload(ctx, "big", size, -1, t0)
	must(t, err)
	wrote := time.Since(start)
	if f.Segments != segments || f.Size != size {
		t.Fatalf("committed %d segments of %d bytes, want %d of %d", f.Segments, f.Size, segments, size)
	}
	start = time.Now()
	gotSum := sha256.New()
	next := int64(0)
	for {
		page, err := s.ListFileSegments(ctx, f.UploadID, next-1, 4)
		must(t, err)
		if len(page) == 0 {
			break
		}
		for _, seg := range page {
			if seg.Index != next {
				t.Fatalf("segment %d where %d was due", seg.Index, next)
			}
			gotSum.Write(seg.Sealed)
			next++
		}
	}
	read := time.Since(start)
	if next != segments || !bytes.Equal(gotSum.Sum(nil), wantSum.Sum(nil)) {
		t.Fatalf("read %d segments back, want %d, and the content differs", next, segments)
	}
	t.Logf("%d MiB in %d segments: written in %v, read in %v", size>>20, segments, wrote.Round(time.Millisecond), read.Round(time.Millisecond))
	must(t, s.DeleteFile(ctx, ref, 0))
	total, _, err := s.CountFileSegments(ctx, "env-a", 2)
	must(t, err)
	if total != 0 {
		t.Errorf("%d segments left after DeleteFile", total)
	}
}
