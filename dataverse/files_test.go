package dataverse_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/dataverse"
)

func withSegmentSize(n int) fixtureOption { return func(c *dataverse.Config) { c.SegmentSize = n } }

func withMaxFileSize(n int64) fixtureOption { return func(c *dataverse.Config) { c.MaxFileSize = n } }

func TestFiles(t *testing.T) {
	f := newFixture(t, withSegmentSize(1000), withMaxFileSize(10_000))
	f.addEnv(envA, keyhold.WrapPlatform)
	f.accountsTable(envA)
	f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+row1+`","name":"Contoso"}`)
	file := api(envA) + "accounts(" + row1 + ")/logo"

	for _, size := range []int{0, 1, 999, 1000, 1001, 3500, 10_000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			content := bytes.Repeat([]byte("0123456789abcdefghij"), size/20+1)[:size]
			w := f.do("PUT", file, bytes.NewReader(content), "x-ms-file-name", "logo.png", "Content-Type", "image/png")
			if w.Code != 200 {
				t.Fatalf("upload: %d %s", w.Code, w.Body.String())
			}
			w = f.do("GET", file+"/$value", nil)
			if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), content) {
				t.Fatalf("download: %d, %d bytes, want %d", w.Code, w.Body.Len(), size)
			}
			if got := w.Header().Get("Content-Type"); got != "image/png" {
				t.Errorf("Content-Type %q", got)
			}
			if got := w.Header().Get("x-ms-file-name"); got != "logo.png" {
				t.Errorf("x-ms-file-name %q", got)
			}
			if got := w.Header().Get("Content-Length"); got != strconv.Itoa(size) {
				t.Errorf("Content-Length %q", got)
			}
		})
	}
	fi, err := f.store.GetFile(context.Background(), keyhold.FileRef{EnvironmentID: envA, Table: "accounts", RowID: row1, Column: "logo"})
	if err != nil || fi.Segments != 10 || fi.Version != 7 {
		t.Fatalf("stored file: %+v, %v; want 10 segments at version 7", fi, err)
	}

	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		hdr    []string
		status int
		code   string
	}{
		{"stale If-Match", "PUT", file, "x", []string{"If-Match", `W/"1"`}, 412, dataverse.CodeVersionMismatch},
		{"If-None-Match on existing", "PUT", file, "x", []string{"If-None-Match", "*"}, 412, dataverse.CodeVersionMismatch},
		{"too large", "PUT", file, strings.Repeat("x", 10_001), nil, 413, dataverse.CodeFileTooLarge},
		{"not a file column", "PUT", api(envA) + "accounts(" + row1 + ")/name", "x", nil, 400, dataverse.CodeBadRequest},
		{"unknown column", "PUT", api(envA) + "accounts(" + row1 + ")/photo", "x", nil, 404, dataverse.CodeResourceNotFound},
		{"missing row", "PUT", api(envA) + "accounts(22222222-2222-4222-8222-222222222222)/logo", "x", nil, 404, dataverse.CodeRecordNotFound},
		{"bad file name", "PUT", file, "x", []string{"x-ms-file-name", "../etc/passwd"}, 400, dataverse.CodeBadRequest},
		{"PUT $value", "PUT", file + "/$value", "x", nil, 405, "0x8006088a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := f.do(tc.method, tc.path, strings.NewReader(tc.body), tc.hdr...)
			code, msg := errorOf(t, w)
			if w.Code != tc.status || code != tc.code {
				t.Errorf("got %d %s (%s), want %d %s", w.Code, code, msg, tc.status, tc.code)
			}
		})
	}
	// A refused upload leaves nothing behind and the file as it was.
	if n, err := f.store.DeleteStaleUploads(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("uploads left behind: %d, %v", n, err)
	}
	if w := f.do("GET", file, nil); w.Code != 200 || w.Body.Len() != 10_000 {
		t.Errorf("file after refused uploads: %d, %d bytes", w.Code, w.Body.Len())
	}
	f.must(200, "PUT", file, "new", "If-Match", `W/"7"`)
	if w := f.do("DELETE", file, nil, "If-Match", `W/"7"`); w.Code != 412 {
		t.Errorf("stale delete: %d", w.Code)
	}
	if w := f.do("DELETE", file, nil); w.Code != 204 {
		t.Errorf("delete: %d %s", w.Code, w.Body.String())
	}
	w := f.do("GET", file, nil)
	if code, _ := errorOf(t, w); w.Code != 404 || code != dataverse.CodeRecordNotFound {
		t.Errorf("deleted file: %d %s", w.Code, code)
	}
	// If-None-Match: * creates a first file only; deleting the row deletes it.
	f.must(200, "PUT", file, "first", "If-None-Match", "*")
	f.must(204, "DELETE", api(envA)+"accounts("+row1+")", "")
	if _, err := f.store.GetFile(context.Background(), keyhold.FileRef{EnvironmentID: envA, Table: "accounts", RowID: row1, Column: "logo"}); !keyhold.IsNotFound(err) {
		t.Errorf("file of a deleted row: %v", err)
	}
}

// pattern is a reader of n deterministic bytes that holds none of them.
type pattern struct{ off, n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x*7 + x>>11)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// hashWriter is a ResponseWriter that keeps only a hash of the body, so that
// downloading 100 MiB holds none of it.
type hashWriter struct {
	h      http.Header
	status int
	n      int64
	sum    io.Writer
}

func (w *hashWriter) Header() http.Header { return w.h }
func (w *hashWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *hashWriter) Write(b []byte) (int, error) {
	w.WriteHeader(200)
	w.n += int64(len(b))
	return w.sum.Write(b)
}

// heapPeak samples the live heap until stopped and returns its peak.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// TestLargeFileBoundedMemory uploads and downloads 100 MiB through the
// handler and checks that the heap never grows by more than a bound far
// below the file's size: the file passes through in segments.
func TestLargeFileBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB through SQLite")
	}
	const size = 100 << 20
	const bound = 32 << 20
	f := newFixture(t)
	f.addEnv(envA, keyhold.WrapCustomer)
	f.accountsTable(envA)
	f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+row1+`","name":"Contoso"}`)
	file := api(envA) + "accounts(" + row1 + ")/logo"

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapAlloc
	stop := heapPeak()
	r, _ := http.NewRequest("PUT", file, &pattern{n: size})
	r = r.WithContext(keyhold.WithCaller(context.Background(), f.caller))
	up := &hashWriter{h: http.Header{}, sum: io.Discard}
	f.h.ServeHTTP(up, r)
	upPeak := stop()
	if up.status != 200 {
		t.Fatalf("upload: %d", up.status)
	}

	want := sha256.New()
	io.Copy(want, &pattern{n: size})
	runtime.GC()
	stop = heapPeak()
	sum := sha256.New()
	down := &hashWriter{h: http.Header{}, sum: sum}
	r, _ = http.NewRequest("GET", file, nil)
	f.h.ServeHTTP(down, r.WithContext(keyhold.WithCaller(context.Background(), f.caller)))
	downPeak := stop()
	if down.status != 200 || down.n != size || !bytes.Equal(sum.Sum(nil), want.Sum(nil)) {
		t.Fatalf("download: %d, %d bytes, equal %v", down.status, down.n, bytes.Equal(sum.Sum(nil), want.Sum(nil)))
	}
	for _, tc := range []struct {
		name string
		peak uint64
	}{{"upload", upPeak}, {"download", downPeak}} {
		grew := int64(tc.peak) - int64(baseline)
		t.Logf("%s of %d MiB: heap peak %.1f MiB above the baseline", tc.name, size>>20, float64(grew)/(1<<20))
		if grew > bound {
			t.Errorf("%s: the heap grew by %d bytes, more than %d", tc.name, grew, bound)
		}
	}
}

// TestUploadCutShort: a body that fails midway leaves the old file and no
// upload behind.
func TestUploadCutShort(t *testing.T) {
	f := newFixture(t, withSegmentSize(100))
	f.addEnv(envA, keyhold.WrapPlatform)
	f.accountsTable(envA)
	f.must(201, "POST", api(envA)+"accounts", `{"accountsid":"`+row1+`","name":"Contoso"}`)
	file := api(envA) + "accounts(" + row1 + ")/logo"
	f.must(200, "PUT", file, "old content")
	w := f.do("PUT", file, io.MultiReader(strings.NewReader(strings.Repeat("x", 350)), failingReader{}))
	if code, _ := errorOf(t, w); w.Code != 400 || code != dataverse.CodeBadRequest {
		t.Errorf("cut upload: %d %s", w.Code, code)
	}
	if w := f.do("GET", file, nil); w.Body.String() != "old content" {
		t.Errorf("file after a cut upload: %q", w.Body.String())
	}
	if n, _ := f.store.DeleteStaleUploads(context.Background(), time.Now().Add(time.Hour)); n != 0 {
		t.Errorf("%d uploads left behind", n)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, fmt.Errorf("connection reset") }
