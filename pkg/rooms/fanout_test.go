package rooms

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// testJPEGBytes is the smallest payload frames.New accepts as a JPEG.
var testJPEGBytes = []byte{0xFF, 0xD8, 0xFF, 0xD9}

func shardFrame(t testing.TB, seq uint64) []byte {
	t.Helper()
	f, err := frames.New(frames.KindJPEG, seq, time.Unix(1700000000, 0), testJPEGBytes, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f.Binary()
}

// seqRecorder is a JoinNotify viewer that drains its slot in notify, as the
// gateway's writer does when a write completes at once.
type seqRecorder struct {
	mu   sync.Mutex
	seqs []uint64
}

func (r *seqRecorder) notify(v *Viewer) {
	if f := v.TryNext(); f != nil && !f.IsOffline() {
		r.mu.Lock()
		r.seqs = append(r.seqs, f.Seq)
		r.mu.Unlock()
	}
}

func (r *seqRecorder) snapshot() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seqs...)
}

// TestShardsKeepEachViewersOrder: with four shards, every viewer of a room
// that drains its slot at once receives every frame, in order, on one shard.
func TestShardsKeepEachViewersOrder(t *testing.T) {
	layer := NewMemoryLayer()
	t.Cleanup(func() { layer.Close() })
	hub := NewHub(layer, Options{FanoutShards: 4, Logger: slog.New(slog.DiscardHandler)})
	if len(hub.shards) != 4 {
		t.Fatalf("hub has %d shards, want 4", len(hub.shards))
	}
	recs := make([]*seqRecorder, 10)
	perShard := map[int]int{}
	for i := range recs {
		recs[i] = &seqRecorder{}
		v, err := hub.JoinNotify(context.Background(), "lobby", recs[i].notify)
		if err != nil {
			t.Fatal(err)
		}
		perShard[v.shard]++
	}
	if len(perShard) != 4 || perShard[0] != 3 || perShard[3] != 2 {
		t.Fatalf("viewers per shard %v, want 3,3,2,2 round-robin", perShard)
	}
	// Few enough frames that no shard queue overflows whatever the
	// scheduling: overflow is TestShardQueueIsBounded's subject.
	const n = maxShardQueue
	for seq := uint64(1); seq <= n; seq++ {
		if err := layer.Publish(context.Background(), "lobby", shardFrame(t, seq)); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("viewer %d's %d frames", i, n), func() error {
			if got := r.snapshot(); len(got) < n {
				return fmt.Errorf("%d frames: %v", len(got), got)
			}
			return nil
		})
		got := r.snapshot()
		if len(got) != n {
			t.Fatalf("viewer %d got %d of %d frames: %v", i, len(got), n, got)
		}
		for j, seq := range got {
			if seq != uint64(j+1) {
				t.Fatalf("viewer %d got frames %v, want 1..%d in order", i, got, n)
			}
		}
	}
	if s := hub.Stats(); s.Skipped != 0 {
		t.Fatalf("%d frames skipped by viewers that drain at once", s.Skipped)
	}
}

// TestShardQueueIsBounded: a shard whose goroutine cannot keep up (here, a
// notify that blocks, which real notifies never do) holds at most
// maxShardQueue frames; older image frames are dropped and counted as
// skipped, offline events are kept, and the viewer ends on the newest frame.
func TestShardQueueIsBounded(t *testing.T) {
	layer := NewMemoryLayer()
	t.Cleanup(func() { layer.Close() })
	hub := NewHub(layer, Options{FanoutShards: 2, Logger: slog.New(slog.DiscardHandler)})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var once sync.Once
	v, err := hub.JoinNotify(context.Background(), "lobby", func(*Viewer) {
		once.Do(func() {
			entered <- struct{}{}
			<-release
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(m []byte) {
		t.Helper()
		if err := layer.Publish(context.Background(), "lobby", m); err != nil {
			t.Fatal(err)
		}
	}
	publish(shardFrame(t, 1))
	select {
	case <-entered: // the shard's goroutine is now stuck in notify, holding frame 1's job
	case <-time.After(10 * time.Second):
		t.Fatal("the shard never offered frame 1")
	}
	const n = 3 * maxShardQueue
	publish(frames.Offline(1, time.Unix(1700000000, 0)).Binary()) // must survive the overflow
	for seq := uint64(2); seq <= n; seq++ {
		publish(shardFrame(t, seq))
	}
	sh := hub.shards[v.shard]
	sh.mu.Lock()
	queued, offline := len(sh.queue), 0
	for _, j := range sh.queue {
		if j.f.IsOffline() {
			offline++
		}
	}
	sh.mu.Unlock()
	if queued != maxShardQueue || offline != 1 {
		t.Fatalf("stuck shard queues %d frames (%d offline), want %d with the offline event", queued, offline, maxShardQueue)
	}
	// Frames 2..n are n-1 image frames; maxShardQueue-1 of them fit.
	wantDropped := uint64(n - 1 - (maxShardQueue - 1))
	if got := v.Skipped(); got != wantDropped {
		t.Fatalf("viewer skipped %d, want the %d frames dropped from the queue", got, wantDropped)
	}
	close(release)
	testenv.WaitFor(t, 10*time.Second, "the shard to drain its queue", func() error {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if sh.running {
			return fmt.Errorf("%d frames queued", len(sh.queue))
		}
		return nil
	})
	if f := v.TryNext(); f == nil || f.Seq != n {
		t.Fatalf("viewer's slot holds %v, want the newest frame %d", f, n)
	}
}
