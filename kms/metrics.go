package kms

import (
	"context"
	"sync"

	"github.com/keyhold/keyhold"
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a vault call, as the call counter labels them.
const (
	OutcomeOK          = "ok"
	OutcomeDenied      = "denied"      // EForbidden
	OutcomeUnavailable = "unavailable" // EUnavailable
	OutcomeInvalid     = "invalid"     // EInvalid
	OutcomeError       = "error"       // anything else
)

// Outcome names the outcome of a call that returned err.
func Outcome(err error) string {
	switch keyhold.ErrorCode(err) {
	case "":
		return OutcomeOK
	case keyhold.EForbidden:
		return OutcomeDenied
	case keyhold.EUnavailable:
		return OutcomeUnavailable
	case keyhold.EInvalid:
		return OutcomeInvalid
	}
	return OutcomeError
}

// Metrics counts vault calls by kind (CallWrap, CallUnwrap, CallCheck) and
// outcome. It is a prometheus.Collector of keyhold_kms_calls_total{kind,
// outcome}; register it on the server's registry. The zero value is not
// usable; call NewMetrics.
type Metrics struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	n    map[[2]string]uint64
}

// NewMetrics returns a counter with every count at zero.
func NewMetrics() *Metrics {
	return &Metrics{
		desc: prometheus.NewDesc("keyhold_kms_calls_total",
			"Calls to key vaults to wrap, unwrap or check root-key wrapping keys, by kind and outcome.",
			[]string{"kind", "outcome"}, nil),
		n: map[[2]string]uint64{},
	}
}

// Observe counts one call of kind that returned err.
func (m *Metrics) Observe(kind string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n[[2]string{kind, Outcome(err)}]++
}

// Calls returns the number of calls of kind, whatever their outcome.
func (m *Metrics) Calls(kind string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var total uint64
	for k, v := range m.n {
		if k[0] == kind {
			total += v
		}
	}
	return total
}

// CallsWith returns the number of calls of kind with outcome.
func (m *Metrics) CallsWith(kind, outcome string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n[[2]string{kind, outcome}]
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { ch <- m.desc }

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.n {
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.CounterValue, float64(v), k[0], k[1])
	}
}

// Counted returns a Wrapper that counts every call to w in m.
func Counted(w Wrapper, m *Metrics) Wrapper { return counted{w, m} }

type counted struct {
	w Wrapper
	m *Metrics
}

func (c counted) Wrap(ctx context.Context, ref keyhold.WrapRef, plaintext keyhold.Secret) ([]byte, keyhold.WrapRef, error) {
	wrapped, used, err := c.w.Wrap(ctx, ref, plaintext)
	c.m.Observe(CallWrap, err)
	return wrapped, used, err
}

func (c counted) Unwrap(ctx context.Context, ref keyhold.WrapRef, wrapped []byte) (keyhold.Secret, error) {
	s, err := c.w.Unwrap(ctx, ref, wrapped)
	c.m.Observe(CallUnwrap, err)
	return s, err
}

func (c counted) Check(ctx context.Context, ref keyhold.WrapRef) error {
	err := c.w.Check(ctx, ref)
	c.m.Observe(CallCheck, err)
	return err
}
