package rooms_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// deliverRoom returns a MemoryLayer whose hub has n viewers of room
// "bench", none of which ever reads: each delivery replaces the frame in
// every viewer's slot, the steady state of a fan-out to slow viewers.
func deliverRoom(tb testing.TB, n int) *rooms.MemoryLayer {
	tb.Helper()
	hub, layer := newMemoryHub(tb, rooms.Options{FanoutShards: 1}) // the offers themselves, on Publish's goroutine
	for range n {
		join(tb, hub, st("bench"))
	}
	return layer
}

// BenchmarkDeliver measures one frame's fan-out from the channel layer to
// every local viewer. allocs/op must not grow with the viewer count: the
// frame is parsed once and the same *Frame goes into every slot.
func BenchmarkDeliver(b *testing.B) {
	m := frames.AppendBinary(nil, 1, epoch, jpegLike(50<<10))
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			layer := deliverRoom(b, n)
			ctx := context.Background()
			b.SetBytes(int64(len(m)))
			b.ReportAllocs()
			for b.Loop() {
				if err := layer.Publish(ctx, "bench", m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestDeliverAllocsDoNotScale(t *testing.T) {
	m := frames.AppendBinary(nil, 1, epoch, jpegLike(50<<10))
	allocs := func(n int) float64 {
		layer := deliverRoom(t, n)
		ctx := context.Background()
		return testing.AllocsPerRun(200, func() {
			if err := layer.Publish(ctx, "bench", m); err != nil {
				t.Fatal(err)
			}
		})
	}
	few, many := allocs(10), allocs(1000)
	if few != many {
		t.Fatalf("a delivery allocates %v times with 10 viewers and %v with 1000", few, many)
	}
	if few > 2 {
		t.Errorf("a delivery allocates %v times, want at most 2 (the parsed frame)", few)
	}
	t.Logf("%v allocations per delivered frame", few)
}

// jpegLike returns n bytes that pass frames.CheckJPEG.
func jpegLike(n int) []byte {
	b := make([]byte, n)
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0})
	b[n-2], b[n-1] = 0xFF, 0xD9
	return b
}
