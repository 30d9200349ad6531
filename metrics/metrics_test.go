package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestMetrics(t *testing.T) {
	m := New()
	m.ObserveRequest("arm", "GET", 200, 10*time.Millisecond)
	m.ObserveRequest("arm", "GET", 200, 20*time.Millisecond)
	m.ObserveRequest("graph", "BREW", 404, time.Millisecond)
	m.AuditAppendFailed()

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`keyhold_http_requests_total{code="200",method="GET",surface="arm"} 2`,
		`keyhold_http_requests_total{code="404",method="OTHER",surface="graph"} 1`,
		`keyhold_http_request_duration_seconds_count{method="GET",surface="arm"} 2`,
		`keyhold_audit_append_failures_total 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics output lacks %q", want)
		}
	}
	// Two servers in one process must not collide.
	New()
}
