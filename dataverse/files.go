package dataverse

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/envelope"
	"github.com/keyhold/keyhold/httpapi"
)

// segmentsPerPage is how many sealed segments a download reads from the
// store at once: what bounds its memory with the segment size.
const segmentsPerPage = 2

// fileTransferTimeout is how long one file upload or download may take. The
// server's own read and write timeouts are sized for JSON requests; a large
// file at a modest line rate needs far longer.
const fileTransferTimeout = time.Hour

// FileInfo is a file column's value as the API describes it.
type FileInfo struct {
	FileName    string    `json:"fileName"`
	ContentType string    `json:"contentType,omitempty"`
	Size        int64     `json:"fileSizeInBytes"`
	ETag        string    `json:"@odata.etag"`
	Version     int64     `json:"versionnumber"`
	ModifiedOn  time.Time `json:"modifiedon,omitzero"`
}

func fileInfo(f *keyhold.File) FileInfo {
	return FileInfo{FileName: f.FileName, ContentType: f.ContentType, Size: f.Size, ETag: etag(f.Version), Version: f.Version, ModifiedOn: f.UpdatedAt}
}

func (s *Service) serveFile(w http.ResponseWriter, r *http.Request, p request) (int, error) {
	sc, err := s.table(r, p.envID, p.table)
	if err != nil {
		return 0, err
	}
	if !guidRE.MatchString(p.rowID) {
		return 0, badRequest("the row id %q is not a GUID", truncate(p.rowID, 40))
	}
	col, ok := sc.cols[p.column]
	if !ok {
		return 0, keyhold.Errorc(keyhold.ENotFound, CodeResourceNotFound, "Resource not found for the segment '%s': table %q has no such column", truncate(p.column, 80), sc.table)
	}
	if col.Type != TypeFile {
		return 0, badRequest("the column '%s' is of type %s, not File; set it in the row's JSON", col.Name, col.Type)
	}
	ref := keyhold.FileRef{EnvironmentID: p.envID, Table: sc.table, RowID: p.rowID, Column: col.Name}
	scope := s.rowScope(p, sc.table, p.rowID) + "/files/" + col.Name
	ctx := r.Context()
	switch {
	case (r.Method == http.MethodPut || r.Method == http.MethodPatch) && !p.value:
		httpapi.Annotate(ctx, "Keyhold.Data/files/write", scope)
		return s.upload(w, r, sc, ref)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		httpapi.Annotate(ctx, "Keyhold.Data/files/read", scope)
		return s.download(w, r, ref)
	case r.Method == http.MethodDelete && !p.value:
		httpapi.Annotate(ctx, "Keyhold.Data/files/delete", scope)
		pre, err := parsePrecondition(r)
		if err != nil {
			return 0, err
		}
		err = s.cfg.Store.DeleteFile(ctx, ref, pre.version)
		switch {
		case keyhold.IsNotFound(err):
			return 0, fileNotFound(ref)
		case keyhold.IsConflict(err):
			return 0, versionMismatch("file", pre.version, 0)
		case err != nil:
			return 0, err
		}
		w.WriteHeader(http.StatusNoContent)
		return http.StatusNoContent, nil
	}
	if p.value {
		return 0, methodNotAllowed(w, "GET, HEAD")
	}
	return 0, methodNotAllowed(w, "GET, HEAD, PUT, PATCH, DELETE")
}

func fileNotFound(ref keyhold.FileRef) error {
	return keyhold.Errorc(keyhold.ENotFound, CodeRecordNotFound, "the column '%s' of %s %s holds no file", ref.Column, ref.Table, ref.RowID)
}

// fileName reads x-ms-file-name, as Dataverse's upload takes it.
func fileName(r *http.Request, def string) (string, error) {
	n := strings.TrimSpace(r.Header.Get("x-ms-file-name"))
	if n == "" {
		return def, nil
	}
	if len(n) > 255 || strings.ContainsAny(n, `/\`) || strings.ContainsFunc(n, unicode.IsControl) {
		return "", badRequest("x-ms-file-name must be a file name of at most 255 characters, without slashes or control characters")
	}
	return n, nil
}

func tooLarge(max int64) error {
	return keyhold.Errorc(keyhold.EInvalid, CodeFileTooLarge, "the file is larger than %d bytes, the largest this server takes", max)
}

// upload streams the request body into sealed segments of an upload and
// commits it, so that memory holds one segment whatever the file's size. A
// failed upload is aborted; readers see the previous content throughout.
func (s *Service) upload(w http.ResponseWriter, r *http.Request, sc *schema, ref keyhold.FileRef) (int, error) {
	ctx := r.Context()
	pre, err := parsePrecondition(r)
	if err != nil {
		return 0, err
	}
	ifVersion := pre.version
	if pre.notExist {
		ifVersion = -1
	}
	if pre.exists && pre.version == 0 {
		if _, err := s.cfg.Store.GetFile(ctx, ref); keyhold.IsNotFound(err) {
			return 0, fileNotFound(ref)
		} else if err != nil {
			return 0, err
		}
	}
	if r.ContentLength > s.cfg.MaxFileSize {
		return 0, tooLarge(s.cfg.MaxFileSize)
	}
	name, err := fileName(r, ref.Column)
	if err != nil {
		return 0, err
	}
	ctype := r.Header.Get("Content-Type")
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(fileTransferTimeout))
	uploadID, err := s.newID()
	if err != nil {
		return 0, err
	}
	f := &keyhold.File{FileRef: ref, UploadID: uploadID, FileName: name, ContentType: truncate(ctype, 200),
		SegmentSize: int64(s.cfg.SegmentSize), CreatedAt: s.now().UTC()}
	if err := s.cfg.Store.BeginFileUpload(ctx, f); err != nil {
		if keyhold.IsNotFound(err) {
			return 0, keyhold.Errorc(keyhold.ENotFound, CodeRecordNotFound, "%s with id = %s does not exist; create the row before uploading its files", ref.Table, ref.RowID)
		}
		return 0, err
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// The caller's context may be gone (a client that hung up); the
		// abort must still run, or DeleteStaleUploads has to find it.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := s.cfg.Store.AbortFileUpload(actx, uploadID); err != nil && !keyhold.IsNotFound(err) {
			s.log.Warn("dataverse: abort a failed upload", "uploadId", uploadID, "err", err.Error())
		}
	}()

	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxFileSize)
	buf := make([]byte, s.cfg.SegmentSize)
	defer clear(buf)
	var size, idx int64
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			sealed, gen, err := s.sealSegment(ctx, envelope.SegmentBinding(ref.EnvironmentID, ref.Table, ref.RowID, idx), buf[:n])
			if err != nil {
				return 0, err
			}
			if err := s.cfg.Store.PutFileSegment(ctx, &keyhold.FileSegment{UploadID: uploadID, Index: idx, Generation: gen, Sealed: sealed}); err != nil {
				return 0, err
			}
			size += int64(n)
			idx++
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			var mbe *http.MaxBytesError
			if errors.As(rerr, &mbe) {
				return 0, tooLarge(s.cfg.MaxFileSize)
			}
			return 0, badRequest("the file's content could not be read to its end: the upload was cut short")
		}
	}
	done, err := s.cfg.Store.CommitFileUpload(ctx, uploadID, size, ifVersion, s.now().UTC())
	switch {
	case keyhold.IsConflict(err) && ifVersion < 0:
		return 0, keyhold.Errorc(keyhold.EConflict, detailVersionMismatch, "the column '%s' of %s %s already holds a file and If-None-Match: * allows only a first upload", ref.Column, ref.Table, ref.RowID)
	case keyhold.IsConflict(err):
		return 0, versionMismatch("file", ifVersion, 0)
	case keyhold.IsNotFound(err):
		return 0, keyhold.Errorc(keyhold.ENotFound, CodeRecordNotFound, "%s with id = %s was deleted during the upload", ref.Table, ref.RowID)
	case err != nil:
		return 0, err
	}
	committed = true
	w.Header().Set("ETag", etag(done.Version))
	httpapi.WriteJSON(w, http.StatusOK, fileInfo(done))
	return http.StatusOK, nil
}

func (s *Service) sealSegment(ctx context.Context, b envelope.Binding, pt []byte) ([]byte, int64, error) {
	if s.cfg.Plaintext {
		return append([]byte(nil), pt...), 1, nil
	}
	return handleFrom(ctx).Seal(ctx, b, pt)
}

// download streams a file's segments in order, opening a page of them at a
// time. The first page is opened before the status is sent, so that a
// locked environment or a damaged segment gets a proper error; a failure
// after that can only cut the response, which the client sees as broken.
func (s *Service) download(w http.ResponseWriter, r *http.Request, ref keyhold.FileRef) (int, error) {
	ctx := r.Context()
	f, err := s.cfg.Store.GetFile(ctx, ref)
	if keyhold.IsNotFound(err) {
		return 0, fileNotFound(ref)
	}
	if err != nil {
		return 0, err
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(fileTransferTimeout))
	h := w.Header()
	h.Set("Content-Type", f.ContentType)
	if f.ContentType == "" {
		h.Set("Content-Type", "application/octet-stream")
	}
	h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	h.Set("ETag", etag(f.Version))
	h.Set("x-ms-file-name", f.FileName)
	h.Set("x-ms-file-size", strconv.FormatInt(f.Size, 10))
	h.Set("Content-Disposition", `attachment; filename="`+strings.NewReplacer(`"`, "", `\`, "").Replace(f.FileName)+`"`)
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, nil
	}
	started := 0
	var sent, next int64
	for next < f.Segments {
		segs, err := s.cfg.Store.ListFileSegments(ctx, f.UploadID, next-1, segmentsPerPage)
		if err == nil && len(segs) == 0 {
			err = keyhold.Errorf(keyhold.EConflict, "the file was replaced or deleted while it was being read; read it again")
		}
		if err != nil {
			return started, err
		}
		for _, seg := range segs {
			if seg.Index != next {
				return started, keyhold.Errorf(keyhold.EConflict, "the file was replaced or deleted while it was being read; read it again")
			}
			pt, err := s.openSegment(ctx, envelope.SegmentBinding(ref.EnvironmentID, ref.Table, ref.RowID, seg.Index), seg.Sealed)
			if err != nil {
				return started, err
			}
			want := min(f.SegmentSize, f.Size-sent)
			if int64(len(pt)) != want {
				return started, keyhold.Internal("dataverse: file segment", errors.New("dataverse: a segment's size disagrees with the file's"))
			}
			if started == 0 {
				w.WriteHeader(http.StatusOK)
				started = http.StatusOK
			}
			if _, err := w.Write(pt); err != nil {
				return started, keyhold.Errorf(keyhold.EUnavailable, "the client stopped reading")
			}
			clear(pt)
			sent += int64(len(pt))
			next++
		}
	}
	if started == 0 {
		w.WriteHeader(http.StatusOK)
		started = http.StatusOK
	}
	return started, nil
}

func (s *Service) openSegment(ctx context.Context, b envelope.Binding, sealed []byte) ([]byte, error) {
	if s.cfg.Plaintext {
		return append([]byte(nil), sealed...), nil
	}
	return handleFrom(ctx).Open(ctx, b, sealed)
}
