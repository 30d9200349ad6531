package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/httpapi"
	"github.com/keyhold/keyhold/internal/unitenv"
	"github.com/keyhold/keyhold/metrics"
)

func TestRecoverPanics(t *testing.T) {
	logs := &unitenv.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	m := metrics.New()
	h := requestIDs(logger, accessLog(m, time.Now, recoverPanics(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret-bearing panic value")
	}))))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/boom", nil))

	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	var body httpapi.AzureError
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body, err)
	}
	if body.Error.Code != "InternalServerError" || strings.Contains(rec.Body.String(), "secret-bearing") || strings.Contains(rec.Body.String(), "goroutine") {
		t.Errorf("body = %s, want a bare InternalServerError", rec.Body)
	}
	if rec.Header().Get("x-ms-request-id") == "" {
		t.Error("no request id on the 500")
	}
	out := logs.String()
	if !strings.Contains(out, "secret-bearing panic value") || !strings.Contains(out, "middleware_test.go") {
		t.Errorf("the log lacks the panic and its stack: %s", out)
	}
	if !strings.Contains(out, `"status":500`) {
		t.Errorf("the access log lacks the 500: %s", out)
	}
}

func TestRecoverPanicsAfterHeaders(t *testing.T) {
	h := recoverPanics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		panic("late")
	}))
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler so the response is cut short", p)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
}

func TestRequestIDs(t *testing.T) {
	var seen string
	h := requestIDs(slog.New(slog.DiscardHandler), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = httpapi.RequestID(r.Context())
		if httpapi.InfoFrom(r.Context()) == nil || stateFrom(r.Context()) == nil {
			t.Error("no Info or request state in the context")
		}
	}))
	tests := []struct {
		name               string
		clientID, corrID   string
		wantClient         string
		wantCorrFromClient bool
	}{
		{"none", "", "", "", false},
		{"both", "abc-123", "corr-9", "abc-123", true},
		{"header injection refused", "bad\r\nX-Evil: 1", "bad value", "", false},
		{"too long refused", strings.Repeat("a", 200), "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header["X-Ms-Client-Request-Id"] = []string{tt.clientID}
			req.Header["X-Ms-Correlation-Request-Id"] = []string{tt.corrID}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			id := rec.Header().Get("x-ms-request-id")
			if len(id) != 36 || id != seen {
				t.Errorf("x-ms-request-id = %q, context id %q, want one GUID", id, seen)
			}
			if got := rec.Header().Get("x-ms-client-request-id"); got != tt.wantClient {
				t.Errorf("x-ms-client-request-id = %q, want %q", got, tt.wantClient)
			}
			corr := rec.Header().Get("x-ms-correlation-request-id")
			if tt.wantCorrFromClient && corr != tt.corrID || !tt.wantCorrFromClient && corr != id {
				t.Errorf("x-ms-correlation-request-id = %q", corr)
			}
		})
	}
}

func TestLimitBody(t *testing.T) {
	h := limitBody(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			httpapi.WriteJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"read": err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	big := strings.Repeat("x", httpapi.MaxBodyBytes+1)
	tests := []struct {
		name    string
		body    io.Reader
		chunked bool
		want    int
	}{
		{"small", strings.NewReader("{}"), false, http.StatusNoContent},
		{"declared too large", strings.NewReader(big), false, http.StatusRequestEntityTooLarge},
		{"undeclared too large", strings.NewReader(big), true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("PUT", "/", tt.body)
			if tt.chunked {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status = %d, want %d", rec.Code, tt.want)
			}
		})
	}
}

func TestAccessLogHasNoQueryOrHeaders(t *testing.T) {
	logs := &unitenv.Buffer{}
	h := requestIDs(slog.New(slog.NewJSONHandler(logs, nil)), accessLog(metrics.New(), time.Now,
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })))
	req := httptest.NewRequest("GET", "/things?sig=query-secret", nil)
	req.Header.Set("Authorization", "Bearer header-secret")
	h.ServeHTTP(httptest.NewRecorder(), req)
	out := logs.String()
	if strings.Contains(out, "query-secret") || strings.Contains(out, "header-secret") {
		t.Errorf("access log leaks: %s", out)
	}
	for _, want := range []string{`"method":"GET"`, `"path":"/things"`, `"status":418`, `"requestId"`, `"durationMs"`} {
		if !strings.Contains(out, want) {
			t.Errorf("access log lacks %s: %s", want, out)
		}
	}
}
