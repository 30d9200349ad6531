package dataverse

import (
	"net/http"

	"github.com/keyhold/keyhold/metrics"
)

// Outcomes of a data request, as the request counter labels them.
const (
	OutcomeOK       = "ok"
	OutcomeInvalid  = "invalid"  // 4xx other than the ones below
	OutcomeDenied   = "denied"   // 401, 403 other than a lock
	OutcomeLocked   = "locked"   // 403 EnvironmentLocked
	OutcomeNotFound = "notfound" // 404
	OutcomeConflict = "conflict" // 409, 412
	OutcomeError    = "error"    // 5xx
)

// Metrics counts data requests by operation and outcome. It is a
// prometheus.Collector of keyhold_data_requests_total{operation, outcome};
// register it on the server's registry.
type Metrics struct{ *metrics.Pairs }

// NewMetrics returns a counter with every count at zero.
func NewMetrics() *Metrics {
	return &Metrics{metrics.NewPairs("keyhold_data_requests_total",
		"Requests to environment data APIs, by operation and outcome.", "operation", "outcome")}
}

// outcome names the outcome of a response with status; locked tells a lock
// from other refusals, which share 403.
func outcome(status int, locked bool) string {
	switch {
	case locked:
		return OutcomeLocked
	case status < 400:
		return OutcomeOK
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return OutcomeDenied
	case status == http.StatusNotFound:
		return OutcomeNotFound
	case status == http.StatusConflict || status == http.StatusPreconditionFailed:
		return OutcomeConflict
	case status >= 500:
		return OutcomeError
	}
	return OutcomeInvalid
}

func (m *Metrics) observe(op string, status int, locked bool) { m.Inc(op, outcome(status, locked)) }

// Count returns the number of requests with outcome, over every operation.
func (m *Metrics) Count(outcome string) uint64 { return m.Sum("", outcome) }
