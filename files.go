package keyhold

import (
	"context"
	"time"
)

// MaxSealedSegment bounds one sealed file segment, so that reading or
// writing a file of any size holds at most a segment or a page of segments
// in memory. Stores refuse larger segments with EInvalid.
const MaxSealedSegment = 8 << 20

// FileRef names a file: the value of one file column of one row. Stores
// return Table and Column lower-cased (both compare case-insensitively), so
// that sealing can bind them as a reader will see them.
type FileRef struct {
	EnvironmentID string `json:"environmentId"`
	Table         string `json:"table"`
	RowID         string `json:"rowId"`
	Column        string `json:"column"`
}

// File is a file column's value as stored: metadata in the clear, content
// sealed in segments of SegmentSize plaintext bytes each (the last may be
// shorter), each segment under its own root-key generation.
//
// A file is written as an upload: BeginFileUpload, PutFileSegment for each
// segment, then CommitFileUpload swaps the upload in as the file's content in
// one step. Until then readers see the previous content, or none; an upload
// never committed is invisible and removed by AbortFileUpload or
// DeleteStaleUploads.
type File struct {
	FileRef
	// UploadID names the upload that holds the content; it changes with
	// every committed write, so that a reader paging segments of one upload
	// never mixes two contents.
	UploadID    string `json:"uploadId"`
	FileName    string `json:"fileName,omitempty"`
	ContentType string `json:"contentType,omitempty"`
	Size        int64  `json:"size"`        // plaintext bytes
	SegmentSize int64  `json:"segmentSize"` // plaintext bytes per segment
	Segments    int64  `json:"segments"`    // how many segments: ceil(Size/SegmentSize)
	// Generation is the lowest generation any of its segments is sealed
	// under (0 without segments); the re-encryption job moves it up.
	Generation int64 `json:"generation"`
	// Version is the file's ETag: 1 for the first committed upload, then
	// bumped by every commit. 0 for an upload not yet committed.
	Version   int64     `json:"version"`
	Committed bool      `json:"committed"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// FileSegment is one sealed segment of an upload.
type FileSegment struct {
	UploadID   string `json:"uploadId"`
	Index      int64  `json:"index"`      // 0, 1, ...
	Generation int64  `json:"generation"` // the generation Sealed is under
	Sealed     []byte `json:"-"`
}

// FileStore keeps the files of file columns, sealed in segments so that
// files of any size (100 MiB and more) pass through bounded memory.
type FileStore interface {
	// BeginFileUpload records a new upload for f.FileRef with f.UploadID (a
	// random id the caller makes), f.FileName, f.ContentType, f.SegmentSize
	// and f.CreatedAt. It returns EInvalid for missing fields or a segment
	// size that is not positive, ENotFound if the row does not exist and
	// EConflict if the upload id is taken.
	BeginFileUpload(ctx context.Context, f *File) error
	// PutFileSegment stores or replaces segment s.Index of an upload not yet
	// committed. It returns EInvalid for a negative index, empty or oversized
	// (MaxSealedSegment) content or a generation below 1, ENotFound if there
	// is no such upload and EConflict if it is already committed (a
	// committed file's content never changes in place).
	PutFileSegment(ctx context.Context, s *FileSegment) error
	// CommitFileUpload makes upload uploadID, of size plaintext bytes, the
	// file's content, atomically replacing any previous content (whose
	// segments it deletes), if the file's version is ifVersion (-1: only if
	// there is no file, 0: whatever it is, > 0: only at that version). It
	// returns the committed file. It returns ENotFound if there is no such
	// upload, EInvalid if the upload does not hold exactly the segments 0 to
	// ceil(size/segment size)-1, and EConflict if it is already committed
	// or the file is not at ifVersion.
	CommitFileUpload(ctx context.Context, uploadID string, size, ifVersion int64, at time.Time) (*File, error)
	// AbortFileUpload deletes an upload not yet committed and its segments.
	// It returns ENotFound if there is no such upload and EConflict if it is
	// committed.
	AbortFileUpload(ctx context.Context, uploadID string) error
	// DeleteStaleUploads deletes the uploads not committed that began before
	// before, with their segments, and returns how many.
	DeleteStaleUploads(ctx context.Context, before time.Time) (int64, error)

	// GetFile returns the committed file of ref, or ENotFound.
	GetFile(ctx context.Context, ref FileRef) (*File, error)
	// ListRowFiles returns a row's committed files, ordered by column.
	ListRowFiles(ctx context.Context, environmentID, table, rowID string) ([]*File, error)
	// DeleteFile deletes the committed file of ref with its segments, if its
	// version is ifVersion (0: whatever it is). It returns ENotFound if there
	// is no file and EConflict if it is at another version.
	DeleteFile(ctx context.Context, ref FileRef, ifVersion int64) error

	// GetFileSegment returns segment index of an upload. It returns
	// ENotFound if there is no such segment, which is also what a reader of
	// a file that was replaced or deleted meanwhile gets.
	GetFileSegment(ctx context.Context, uploadID string, index int64) (*FileSegment, error)
	// ListFileSegments pages an upload's segments in index order, after
	// afterIndex (-1 from the start), at most limit of them (0: all; callers
	// reading large files should page).
	ListFileSegments(ctx context.Context, uploadID string, afterIndex int64, limit int) ([]*FileSegment, error)

	// ListFilesBelowGeneration pages an environment's committed files that
	// have a segment sealed under a generation lower than gen, ordered by
	// upload id after afterUploadID ("" from the start), at most limit of
	// them (0: all), for the re-encryption job. Uploads not yet committed
	// are left out: their content may still change, so they are resealed
	// only once committed. A job should therefore finish with
	// CountFileSegments and run again while any remain below gen.
	ListFilesBelowGeneration(ctx context.Context, environmentID string, gen int64, afterUploadID string, limit int) ([]*File, error)
	// ResealFileSegment replaces Sealed and Generation of segment s.Index of
	// the committed upload s.UploadID if the segment is under a generation
	// lower than s.Generation, and reports whether it did. A committed
	// file's content never changes in place, so this is exact: a file
	// replaced or deleted meanwhile makes it report false, and the new
	// content stands. It returns EInvalid as PutFileSegment does.
	ResealFileSegment(ctx context.Context, s *FileSegment) (bool, error)
	// CountFileSegments counts the segments of an environment's committed
	// files, and those under a generation lower than gen.
	CountFileSegments(ctx context.Context, environmentID string, gen int64) (total, below int64, err error)
}
