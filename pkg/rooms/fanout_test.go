package rooms

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// testJPEGBytes is the smallest payload frames.New accepts as a JPEG.
var testJPEGBytes = []byte{0xFF, 0xD8, 0xFF, 0xD9}

// shardEpoch is the capture time of frame 0 of the shard tests; frame seq
// is captured seq ms after it.
var shardEpoch = time.Unix(1700000000, 0)

func shardFrame(t testing.TB, seq uint64) []byte {
	t.Helper()
	f, err := frames.New(frames.KindJPEG, seq, shardEpoch.Add(time.Duration(seq)*time.Millisecond), testJPEGBytes, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f.Binary()
}

// seqRecorder is a JoinNotify viewer that drains its queue in notify, as the
// gateway's writer does when a write completes at once.
type seqRecorder struct {
	mu   sync.Mutex
	seqs []uint64
}

func (r *seqRecorder) notify(v *Viewer) {
	for f := v.TryNext(); f != nil; f = v.TryNext() {
		if !f.IsOffline() {
			r.mu.Lock()
			r.seqs = append(r.seqs, f.Seq)
			r.mu.Unlock()
		}
	}
}

func (r *seqRecorder) snapshot() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seqs...)
}

// TestShardsKeepEachViewersOrder: with four shards, every viewer of a room
// that drains its queue at once receives frames on one shard, in order,
// ending with the newest, and each frame it did not receive is counted as
// skipped.
func TestShardsKeepEachViewersOrder(t *testing.T) {
	layer := NewMemoryLayer()
	t.Cleanup(func() { layer.Close() })
	hub := NewHub(layer, Options{FanoutShards: 4, Logger: slog.New(slog.DiscardHandler)})
	if len(hub.shards) != 4 {
		t.Fatalf("hub has %d shards, want 4", len(hub.shards))
	}
	recs := make([]*seqRecorder, 10)
	viewers := make([]*Viewer, len(recs))
	perShard := map[int]int{}
	for i := range recs {
		recs[i] = &seqRecorder{}
		v, err := hub.JoinNotify(context.Background(), frames.Stream{Room: "lobby"}, recs[i].notify)
		if err != nil {
			t.Fatal(err)
		}
		viewers[i] = v
		perShard[v.shard.index]++
	}
	if len(perShard) != 4 || perShard[0] != 3 || perShard[3] != 2 {
		t.Fatalf("viewers per shard %v, want 3,3,2,2 round-robin", perShard)
	}
	const n = 500
	for seq := uint64(1); seq <= n; seq++ {
		if err := layer.Publish(context.Background(), "lobby", shardFrame(t, seq)); err != nil {
			t.Fatal(err)
		}
	}
	for i, r := range recs {
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("viewer %d's last frame", i), func() error {
			if got := r.snapshot(); len(got) == 0 || got[len(got)-1] != n {
				return fmt.Errorf("%d frames", len(got))
			}
			return nil
		})
		got := r.snapshot()
		for j := 1; j < len(got); j++ {
			if got[j] <= got[j-1] {
				t.Fatalf("viewer %d got frame %d after %d", i, got[j], got[j-1])
			}
		}
		if skipped := viewers[i].Skipped(); uint64(len(got))+skipped != n {
			t.Fatalf("viewer %d received %d and skipped %d of %d frames", i, len(got), skipped, n)
		}
	}
}

// TestShardKeepsOneFramePerRoom: a shard whose goroutine cannot keep up
// (here, a notify that blocks, which real notifies never do) holds one
// entry per room, however many frames arrive; the frames wait in the
// viewers' own bounded queues, so a busy room's flood costs only its own
// viewers skipped frames, never a quiet room's frame.
func TestShardKeepsOneFramePerRoom(t *testing.T) {
	layer := NewMemoryLayer()
	t.Cleanup(func() { layer.Close() })
	hub := NewHub(layer, Options{FanoutShards: 2, Logger: slog.New(slog.DiscardHandler)})
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var once sync.Once
	busy, err := hub.JoinNotify(context.Background(), frames.Stream{Room: "busy"}, func(v *Viewer) {
		once.Do(func() {
			v.TryNext()
			entered <- struct{}{}
			<-release
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	quietRec := &seqRecorder{}
	quiet, err := hub.JoinNotify(context.Background(), frames.Stream{Room: "quiet"}, quietRec.notify)
	if err != nil {
		t.Fatal(err)
	}
	if busy.shard != quiet.shard {
		t.Fatalf("the rooms' first viewers are on shards %d and %d, want the same", busy.shard.index, quiet.shard.index)
	}
	publish := func(room string, m []byte) {
		t.Helper()
		if err := layer.Publish(context.Background(), room, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("busy", shardFrame(t, 1))
	select {
	case <-entered: // the shard's goroutine is now stuck in notify
	case <-time.After(10 * time.Second):
		t.Fatal("the shard never offered frame 1")
	}
	publish("quiet", shardFrame(t, 7))
	const n = 100
	publish("busy", frames.Offline(1, time.Unix(1700000000, 0)).Binary())
	for seq := uint64(2); seq <= n; seq++ {
		publish("busy", shardFrame(t, seq))
	}
	sh := busy.shard
	sh.mu.Lock()
	waiting := len(sh.queue) - sh.head
	busyJob, quietJob := busy.stream.jobs[sh.index], quiet.stream.jobs[sh.index]
	sh.mu.Unlock()
	if waiting != 2 {
		t.Fatalf("stuck shard has %d rooms waiting, want 2", waiting)
	}
	if !busyJob.queued || !quietJob.queued {
		t.Fatalf("rooms waiting: busy %v, quiet %v; want both", busyJob.queued, quietJob.queued)
	}
	// The frames wait in the viewers' own queues, latest-frame-wins: the
	// busy viewer holds its newest few, the quiet one its only frame.
	if !quiet.Pending() {
		t.Fatal("the quiet room's frame was lost behind the busy room's flood")
	}
	close(release)
	testenv.WaitFor(t, 10*time.Second, "the quiet room's frame", func() error {
		if got := quietRec.snapshot(); len(got) != 1 || got[0] != 7 {
			return fmt.Errorf("quiet viewer got %v", got)
		}
		return nil
	})
	testenv.WaitFor(t, 10*time.Second, "the shard to drain its queue", func() error {
		sh.mu.Lock()
		defer sh.mu.Unlock()
		if sh.running {
			return fmt.Errorf("%d rooms waiting", len(sh.queue)-sh.head)
		}
		return nil
	})
	var held []uint64
	for f := busy.TryNext(); f != nil; f = busy.TryNext() {
		if !f.IsOffline() {
			held = append(held, f.Seq)
		}
	}
	if len(held) == 0 || len(held) > MaxBehindFrames || held[len(held)-1] != n {
		t.Fatalf("busy viewer's queue holds %v, want at most %d frames ending with %d", held, MaxBehindFrames, n)
	}
	// Frames 2..n: each held or counted as skipped (the offline event is
	// not an image and is not counted).
	if got := busy.Skipped() + uint64(len(held)); got != n-1 {
		t.Fatalf("busy viewer skipped %d and holds %d, want %d in all", busy.Skipped(), len(held), n-1)
	}
}

// TestFirstFrameNeverAfterANewerOne is the join race: the first frame a
// joining viewer gets from the room's memory (or the frame cache) was read
// before a newer frame reached the viewer through its shard. It must be
// dropped, not delivered after the newer one.
func TestFirstFrameNeverAfterANewerOne(t *testing.T) {
	for _, shards := range []int{1, 2} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			layer := NewMemoryLayer()
			t.Cleanup(func() { layer.Close() })
			hub := NewHub(layer, Options{FanoutShards: shards, Logger: slog.New(slog.DiscardHandler)})
			rec := &seqRecorder{}
			v, err := hub.JoinNotify(context.Background(), frames.Stream{Room: "lobby"}, rec.notify)
			if err != nil {
				t.Fatal(err)
			}
			stale, err := frames.ParseBinary(shardFrame(t, 5), 0, time.Time{}, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := layer.Publish(context.Background(), "lobby", shardFrame(t, 6)); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, 10*time.Second, "frame 6", func() error {
				if got := rec.snapshot(); len(got) != 1 {
					return fmt.Errorf("got %v", got)
				}
				return nil
			})
			v.offerFirst(stale, hub.monotonic()) // what Join does with the frame it read before 6 arrived
			if err := layer.Publish(context.Background(), "lobby", shardFrame(t, 7)); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, 10*time.Second, "frame 7", func() error {
				if got := rec.snapshot(); len(got) == 0 || got[len(got)-1] != 7 {
					return fmt.Errorf("got %v", got)
				}
				return nil
			})
			if got := rec.snapshot(); len(got) != 2 || got[0] != 6 || got[1] != 7 {
				t.Fatalf("viewer got %v, want [6 7]", got)
			}
		})
	}
}

// TestFirstFrameNotTwice: a joiner handed the stream's newest frame
// (offerFirst: on the publisher's replica, the newest sent) while the
// layer still delivers it and the frames before it gets that picture
// once and nothing older after it.
func TestFirstFrameNotTwice(t *testing.T) {
	layer := NewMemoryLayer()
	t.Cleanup(func() { layer.Close() })
	hub := NewHub(layer, Options{FanoutShards: 1, Logger: slog.New(slog.DiscardHandler)})
	rec := &seqRecorder{}
	v, err := hub.JoinNotify(context.Background(), frames.Stream{Room: "lobby"}, rec.notify)
	if err != nil {
		t.Fatal(err)
	}
	f, err := frames.ParseBinary(shardFrame(t, 16), 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The race, in the order that duplicated the frame: the delivery
	// recorded f as the newest, the join offered it first, then the
	// delivery's offer came.
	g, err := frames.ParseBinary(shardFrame(t, 16), 0, time.Time{}, 0) // the same picture as the delivery parses it
	if err != nil {
		t.Fatal(err)
	}
	older, err := frames.ParseBinary(shardFrame(t, 15), 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := frames.ParseBinary(shardFrame(t, 17), 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	v.offerFirst(f, hub.monotonic())
	for _, x := range []*frames.Frame{older, g, newer} {
		v.offer(x, hub.monotonic())
	}
	v.signal()
	if got := rec.snapshot(); !slices.Equal(got, []uint64{16, 17}) {
		t.Fatalf("viewer got %v, want [16 17]", got)
	}
	// A publisher that restarted counts from 1 again, later in time: its
	// frames follow a first frame (a cached one of the run before) at once.
	w, err := hub.JoinNotify(context.Background(), frames.Stream{Room: "hall"}, rec.notify)
	if err != nil {
		t.Fatal(err)
	}
	old, err := frames.New(frames.KindJPEG, 500, shardEpoch, testJPEGBytes, 0)
	if err != nil {
		t.Fatal(err)
	}
	restarted, err := frames.New(frames.KindJPEG, 1, shardEpoch.Add(10*time.Second), testJPEGBytes, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.offerFirst(old, hub.monotonic())
	w.offer(restarted, hub.monotonic())
	w.signal()
	if got := rec.snapshot(); !slices.Equal(got, []uint64{16, 17, 500, 1}) {
		t.Fatalf("viewer of a restarted publisher got %v, want [16 17 500 1]", got)
	}
}
