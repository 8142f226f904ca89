package promtext_test

import (
	"strings"
	"testing"

	"github.com/framecast/framecast/internal/promtext"
)

// TestParse: samples are read with and without labels and timestamps, and
// chosen by name and labels, given as matches or in the name itself; absent
// series sum to 0, and a reply without samples is an error.
func TestParse(t *testing.T) {
	text := `# HELP framecast_connections Open WebSocket connections by role.
# TYPE framecast_connections gauge
framecast_connections{role="publish"} 1
framecast_connections{role="view"} 100
framecast_frames_out_total{format="binary"} 2.5e+06
framecast_frames_out_total{format="json"} 10
framecast_rejected_total{reason="origin"} 2
framecast_rejected_total{reason="token_expired"} 3
go_memstats_heap_inuse_bytes 1.234e+07 1700000000000
`
	m, err := promtext.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		match []string
		want  float64
	}{
		{"framecast_connections", nil, 101},
		{"framecast_connections", []string{`role="view"`}, 100},
		{"framecast_frames_out_total", nil, 2500010},
		{"go_memstats_heap_inuse_bytes", nil, 12340000},
		{"missing", nil, 0},
		{`framecast_rejected_total{reason="origin"}`, nil, 2},
		{`framecast_rejected_total{reason="slow"}`, nil, 0},
		{`framecast_connections{role="view"}`, []string{`role="publish"`}, 0},
	} {
		if got := m.Sum(tc.name, tc.match...); got != tc.want {
			t.Errorf("Sum(%s, %v) = %v, want %v", tc.name, tc.match, got, tc.want)
		}
	}
	if _, err := promtext.Parse(strings.NewReader("# nothing\n")); err == nil {
		t.Error("want an error for a reply without samples")
	}
}
