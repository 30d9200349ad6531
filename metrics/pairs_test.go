package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPairs(t *testing.T) {
	p := NewPairs("test_events_total", "Events.", "kind", "outcome")
	for _, e := range [][2]string{{"wrap", "ok"}, {"wrap", "ok"}, {"wrap", "denied"}, {"unwrap", "ok"}} {
		p.Inc(e[0], e[1])
	}
	tests := []struct {
		a, b string
		want uint64
	}{
		{"wrap", "ok", 2}, {"wrap", "", 3}, {"", "ok", 3}, {"", "", 4}, {"check", "", 0}, {"unwrap", "denied", 0},
	}
	for _, tt := range tests {
		if got := p.Sum(tt.a, tt.b); got != tt.want {
			t.Errorf("Sum(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(p)
	want := `# HELP test_events_total Events.
# TYPE test_events_total counter
test_events_total{kind="unwrap",outcome="ok"} 1
test_events_total{kind="wrap",outcome="denied"} 1
test_events_total{kind="wrap",outcome="ok"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "test_events_total"); err != nil {
		t.Error(err)
	}
}
