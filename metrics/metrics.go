// Package metrics holds the server's Prometheus metrics on a registry of its
// own, so that tests can start several servers in one process without
// colliding on the global registry.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's counters and histograms.
type Metrics struct {
	Registry *prometheus.Registry

	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	auditFailures prometheus.Counter
}

// New returns Metrics registered on a fresh registry, with the Go runtime and
// process collectors.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyhold_http_requests_total",
			Help: "HTTP requests by surface, method and status code.",
		}, []string{"surface", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyhold_http_request_duration_seconds",
			Help:    "HTTP request latency by surface and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"surface", "method"}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyhold_audit_append_failures_total",
			Help: "Audit records that could not be appended to the store.",
		}),
	}
	m.Registry.MustRegister(m.requests, m.latency, m.auditFailures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveRequest counts one finished request. Method is folded to the known
// HTTP methods so that a client cannot grow the label set without bound.
func (m *Metrics) ObserveRequest(surface, method string, code int, d time.Duration) {
	method = foldMethod(method)
	m.requests.WithLabelValues(surface, method, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(surface, method).Observe(d.Seconds())
}

// AuditAppendFailed counts one audit record that was lost.
func (m *Metrics) AuditAppendFailed() { m.auditFailures.Inc() }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

func foldMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}
