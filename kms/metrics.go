package kms

import (
	"context"

	"github.com/keyhold/keyhold"
	"github.com/keyhold/keyhold/metrics"
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
type Metrics struct{ *metrics.Pairs }

// NewMetrics returns a counter with every count at zero.
func NewMetrics() *Metrics {
	return &Metrics{metrics.NewPairs("keyhold_kms_calls_total",
		"Calls to key vaults to wrap, unwrap or check root-key wrapping keys, by kind and outcome.", "kind", "outcome")}
}

// Observe counts one call of kind that returned err.
func (m *Metrics) Observe(kind string, err error) { m.Inc(kind, Outcome(err)) }

// Calls returns the number of calls of kind, whatever their outcome.
func (m *Metrics) Calls(kind string) uint64 { return m.Sum(kind, "") }

// CallsWith returns the number of calls of kind with outcome.
func (m *Metrics) CallsWith(kind, outcome string) uint64 { return m.Sum(kind, outcome) }

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
