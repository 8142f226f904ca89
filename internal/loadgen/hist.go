package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram counts durations in log-linear buckets of microseconds: exact
// below 64 µs, then 32 buckets per power of two, so a reported percentile
// is within about 3% of the true value. Memory is fixed (under 10 KB)
// whatever the number of samples.
//
// A Histogram is not safe for concurrent use: each viewer records into its
// own, and they are merged once the viewers have stopped.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	max    uint64 // µs
	min    uint64 // µs, valid when n > 0
	sum    float64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	// histBuckets covers values up to 2^41 µs (about 25 days).
	histBuckets = (41-histSubBits)*histSub + 2*histSub
)

// bucketOf returns the bucket index of v µs.
func bucketOf(v uint64) int {
	l := bits.Len64(v)
	if l <= histSubBits+1 {
		return int(v) // v < 64: one bucket per microsecond
	}
	shift := l - histSubBits - 1
	i := shift*histSub + int(v>>shift)
	if i >= histBuckets {
		return histBuckets - 1
	}
	return i
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*histSub {
		return uint64(i), uint64(i)
	}
	shift := i/histSub - 1
	top := uint64(i - shift*histSub)
	return top << shift, (top+1)<<shift - 1
}

// Record adds one sample of us microseconds; negative values count as 0.
func (h *Histogram) Record(us int64) {
	if us < 0 {
		us = 0
	}
	v := uint64(us)
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max returns the largest sample exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Mean returns the mean of the samples.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/float64(h.n)) * time.Microsecond
}

// Quantile returns the q-quantile (0 < q <= 1) of the samples: the value
// below or at which a fraction q of them fall, by the nearest-rank method,
// reported as the middle of its bucket and clamped to the exact min and max.
// It returns 0 when there are no samples.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	if rank > h.n {
		rank = h.n
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v) * time.Microsecond
		}
	}
	return h.Max()
}
