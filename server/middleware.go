package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/dataverse"
	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/metrics"
)

// reqState is what the layers of one request tell each other: the surface
// the router chose and the principal the authentication layer found, for the
// access log and the metrics.
type reqState struct {
	surface     string
	principalID string
}

type reqStateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	s, _ := ctx.Value(reqStateKey{}).(*reqState)
	return s
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("server: no randomness: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// cleanClientID returns a client-supplied id if it is short and made of
// characters that cannot break a header or a log line, else "".
func cleanClientID(s string) string {
	if s == "" || len(s) > 128 {
		return ""
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.:", c)) {
			return ""
		}
	}
	return s
}

// requestIDs gives every request an id of the server's own, returned as
// x-ms-request-id, and echoes the client's x-ms-client-request-id and
// x-ms-correlation-request-id (a fresh one if absent), as ARM does. It also
// puts the request state, the audit Info and a logger that carries the ids
// in the context.
func requestIDs(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := newUUID()
		h := w.Header()
		h.Set("x-ms-request-id", id)
		corr := cleanClientID(r.Header.Get("x-ms-correlation-request-id"))
		if corr == "" {
			corr = id
		}
		h.Set("x-ms-correlation-request-id", corr)
		attrs := []any{"requestId", id, "correlationId", corr}
		if cid := cleanClientID(r.Header.Get("x-ms-client-request-id")); cid != "" {
			h.Set("x-ms-client-request-id", cid)
			attrs = append(attrs, "clientRequestId", cid)
		}
		ctx := httpapi.WithRequestID(r.Context(), id)
		ctx = httpapi.WithLogger(ctx, logger.With(attrs...))
		ctx = context.WithValue(ctx, reqStateKey{}, &reqState{surface: "unknown"})
		ctx, _ = httpapi.WithInfo(ctx)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// responseWriter remembers the status and the size of the response.
type responseWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *responseWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// accessLog writes one JSON line per request and feeds the metrics. It logs
// the method, the path without its query, the status, the duration, the ids
// and the principal; never a header, a body or the query, which can carry
// secrets.
func accessLog(m *metrics.Metrics, now func() time.Time, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := now()
		rw := &responseWriter{ResponseWriter: w}
		defer func() {
			// Runs on a panic as well, after recovery has answered 500.
			d := now().Sub(start)
			st := stateFrom(r.Context())
			m.ObserveRequest(st.surface, r.Method, rw.code(), d)
			level := slog.LevelInfo
			if rw.code() >= 500 {
				level = slog.LevelError
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", rw.code()),
				slog.Float64("durationMs", float64(d.Microseconds())/1000),
				slog.Int64("bytes", rw.bytes),
				slog.String("surface", st.surface),
			}
			if st.principalID != "" {
				attrs = append(attrs, slog.String("principalId", st.principalID))
			}
			if i := httpapi.InfoFrom(r.Context()); i != nil && i.Action != "" {
				attrs = append(attrs, slog.String("action", i.Action))
			}
			httpapi.Logger(r.Context()).LogAttrs(context.WithoutCancel(r.Context()), level, "request", attrs...)
		}()
		next.ServeHTTP(rw, r)
	})
}

// recoverPanics turns a panic into a 500 in the Azure error shape; the panic
// value and the stack go to the log only. http.ErrAbortHandler passes
// through, as net/http uses it to abort a response on purpose.
func recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rw := &responseWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			httpapi.Logger(r.Context()).Error("panic serving request", "panic", fmt.Sprint(p), "stack", string(debug.Stack()),
				"method", r.Method, "path", r.URL.Path)
			if rw.status != 0 {
				// Headers are gone; all that can be done is to cut the
				// response short so the client sees it is broken.
				panic(http.ErrAbortHandler)
			}
			httpapi.WriteError(rw, r, keyhold.Internal("server", fmt.Errorf("panic: %v", p)))
		}()
		next.ServeHTTP(rw, r)
	})
}

// limitBody refuses a declared body over httpapi.MaxBodyBytes at once and
// caps the reading of an undeclared one. File columns of the data API are
// left to their handler, which streams them under its own, far larger limit.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dataverse.IsFileRequest(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > httpapi.MaxBodyBytes {
			w.Header().Set("x-ms-error-code", "RequestEntityTooLarge")
			httpapi.WriteJSON(w, http.StatusRequestEntityTooLarge, httpapi.AzureError{Error: httpapi.AzureErrorBody{
				Code:    "RequestEntityTooLarge",
				Message: fmt.Sprintf("the request body is larger than %d bytes", httpapi.MaxBodyBytes),
			}})
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, httpapi.MaxBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// securityHeaders sets headers that cost nothing and keep browsers from
// sniffing JSON as HTML or caching tokens.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Strict-Transport-Security", "max-age=31536000")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
