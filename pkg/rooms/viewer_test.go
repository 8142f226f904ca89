package rooms

import (
	"slices"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// TestViewerQueueBounds: a viewer's queue holds up to MaxBehindFrames
// frames spanning at most MaxBehind; past either bound it skips to the
// newest frame.
func TestViewerQueueBounds(t *testing.T) {
	frame := func(seq uint64) *frames.Frame {
		f, err := frames.ParseBinary(shardFrame(t, seq), 0, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	drain := func(v *Viewer) (seqs []uint64) {
		for f := v.TryNext(); f != nil; f = v.TryNext() {
			seqs = append(seqs, f.Seq)
		}
		return seqs
	}
	for _, tc := range []struct {
		name    string
		at      []int64 // arrival of frames 1, 2, ...
		want    []uint64
		skipped uint64
	}{
		{"within both bounds", []int64{0, ms(30), ms(60)}, []uint64{1, 2, 3}, 0},
		{"one frame too many", []int64{0, ms(1), ms(2), ms(3)}, []uint64{4}, 3},
		{"oldest too old", []int64{0, ms(40), ms(101)}, []uint64{3}, 2},
		{"exactly MaxBehind is still in", []int64{0, ms(100)}, []uint64{1, 2}, 0},
		{"a slow room: one frame, then the next too late", []int64{0, ms(1000)}, []uint64{2}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := NewViewer(frames.CodecJPEG, nil)
			for i, at := range tc.at {
				v.offer(frame(uint64(i+1)), at)
			}
			if got := drain(v); !slices.Equal(got, tc.want) {
				t.Fatalf("queue holds %v, want %v", got, tc.want)
			}
			if v.Skipped() != tc.skipped {
				t.Fatalf("skipped %d, want %d", v.Skipped(), tc.skipped)
			}
		})
	}
}
