package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketRangeHoldsItsValues(t *testing.T) {
	check := func(v uint64) {
		t.Helper()
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if i == histBuckets-1 && v > hi {
			return // clamped into the last bucket
		}
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if v >= 64 && float64(hi-lo+1)/float64(lo) > 1.0/32+1e-9 {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/32 of its values", i, lo, hi)
		}
	}
	for v := range uint64(5000) {
		check(v)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		check(r.Uint64N(1 << 40))
	}
	check(1<<63 + 12345)
	// Buckets are contiguous: each starts right after the previous ends.
	prevHi := uint64(0)
	for i := 1; i < histBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d = [%d, %d] does not follow %d", i, lo, hi, prevHi)
		}
		prevHi = hi
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	// 1..10000 µs, shuffled: the q-quantile is 10000·q µs.
	vals := make([]int64, 10000)
	for i := range vals {
		vals[i] = int64(i + 1)
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	for _, v := range vals {
		h.Record(v)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5000 * time.Microsecond},
		{0.9, 9000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{0.001, 10 * time.Microsecond},
	} {
		got := h.Quantile(tc.q)
		if diff := got - tc.want; diff < -tc.want/32 || diff > tc.want/32 {
			t.Errorf("q%.3f = %v, want %v ± 3%%", tc.q, got, tc.want)
		}
	}
	if h.Quantile(1) != 10*time.Millisecond || h.Max() != 10*time.Millisecond {
		t.Errorf("max = %v / q1 = %v, want exactly 10ms", h.Max(), h.Quantile(1))
	}
	if h.Count() != 10000 {
		t.Errorf("count = %d", h.Count())
	}
	if m := h.Mean(); m < 5000*time.Microsecond || m > 5001*time.Microsecond {
		t.Errorf("mean = %v, want 5000.5µs", m)
	}
}

func TestHistogramSmallExactAndNegative(t *testing.T) {
	var h Histogram
	for _, v := range []int64{-5, 3, 3, 7, 40} {
		h.Record(v)
	}
	// Below 64 µs every value has its own bucket: exact ranks.
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.2, 0}, {0.4, 3 * time.Microsecond}, {0.6, 3 * time.Microsecond}, {0.8, 7 * time.Microsecond}, {1, 40 * time.Microsecond}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("q%.1f = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := int64(1); i <= 2000; i++ {
		v := i * 37 % 5000
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m != all {
		t.Fatalf("merged histogram differs from the one that saw every sample")
	}
}
