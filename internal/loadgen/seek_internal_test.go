package loadgen

import (
	"math"
	"strings"
	"testing"
)

// TestHistogramDelta reads what a histogram gained between two scrapes
// and its quantiles' bucket bounds.
func TestHistogramDelta(t *testing.T) {
	scrape := func(text string) Metrics {
		t.Helper()
		m, err := ParseMetrics(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	before := scrape(`
framecast_seek_first_frame_seconds_bucket{le="0.005"} 1
framecast_seek_first_frame_seconds_bucket{le="0.05"} 2
framecast_seek_first_frame_seconds_bucket{le="0.15"} 2
framecast_seek_first_frame_seconds_bucket{le="+Inf"} 3
framecast_seek_first_frame_seconds_sum 2.5
framecast_seek_first_frame_seconds_count 3
`)
	after := scrape(`
framecast_seek_first_frame_seconds_bucket{le="0.005"} 1
framecast_seek_first_frame_seconds_bucket{le="0.05"} 11
framecast_seek_first_frame_seconds_bucket{le="0.15"} 21
framecast_seek_first_frame_seconds_bucket{le="+Inf"} 23
framecast_seek_first_frame_seconds_sum 4.5
framecast_seek_first_frame_seconds_count 23
`)
	d := histogramDelta(before, after, SeekHistogram)
	if d.Count != 20 || math.Abs(d.MeanMS-100) > 1e-9 || len(d.Buckets) != 3 || d.Buckets[0] != (Bucket{5, 0}) || d.Buckets[2] != (Bucket{150, 19}) {
		t.Fatalf("delta %+v", d)
	}
	for _, c := range []struct{ q, want float64 }{{0.1, 50}, {0.45, 50}, {0.5, 150}, {0.95, 150}, {0.99, math.Inf(1)}} {
		if got := d.Quantile(c.q); got != c.want {
			t.Errorf("quantile %v: %v ms, want %v", c.q, got, c.want)
		}
	}
	var sum HistogramDelta
	sum.add(d)
	sum.add(d)
	if sum.Count != 40 || math.Abs(sum.MeanMS-100) > 1e-9 || sum.Buckets[2].Count != 38 || d.Buckets[2].Count != 19 {
		t.Errorf("sum %+v of %+v", sum, d)
	}
	if (*HistogramDelta)(nil).Quantile(0.5) != 0 || (&HistogramDelta{}).Quantile(0.5) != 0 {
		t.Error("a histogram with no observation has quantile 0")
	}
}
