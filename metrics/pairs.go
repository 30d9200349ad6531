package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Pairs is a counter with two labels that its package also reads back (tests
// and benchmarks count vault calls and data requests by it). It is a
// prometheus.Collector; register it on the server's registry. The zero value
// is not usable; call NewPairs.
type Pairs struct {
	desc *prometheus.Desc
	mu   sync.Mutex
	n    map[[2]string]uint64
}

// NewPairs returns a counter named name with labels first and second, every
// count at zero.
func NewPairs(name, help, first, second string) *Pairs {
	return &Pairs{desc: prometheus.NewDesc(name, help, []string{first, second}, nil), n: map[[2]string]uint64{}}
}

// Inc counts one event labelled a, b.
func (p *Pairs) Inc(a, b string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n[[2]string{a, b}]++
}

// Sum returns the events whose labels are a and b; an empty label matches
// any value.
func (p *Pairs) Sum(a, b string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var total uint64
	for k, v := range p.n {
		if (a == "" || k[0] == a) && (b == "" || k[1] == b) {
			total += v
		}
	}
	return total
}

// Describe implements prometheus.Collector.
func (p *Pairs) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

// Collect implements prometheus.Collector.
func (p *Pairs) Collect(ch chan<- prometheus.Metric) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, v := range p.n {
		ch <- prometheus.MustNewConstMetric(p.desc, prometheus.CounterValue, float64(v), k[0], k[1])
	}
}
