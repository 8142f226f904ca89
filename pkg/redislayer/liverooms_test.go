package redislayer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

// newBudgetReplica is a replica whose hub asks its presence which rooms
// other replicas publish (rooms.Options.Liveness), holding at most maxIdle
// rooms without a known publisher. Heartbeats run every second; tests
// call Beat to write one at once.
func newBudgetReplica(t *testing.T, r *testenv.Redis, id string, maxIdle int, cacheFor time.Duration) *presentReplica {
	t.Helper()
	opts := redislayer.PresenceOptions{ReplicaID: id, Interval: time.Second, TTL: 5 * time.Second, CacheFor: cacheFor, Logger: quietLogger()}
	return newPresentReplicaWith(t, r, opts, func(o *rooms.Options, p *redislayer.Presence) {
		o.Liveness, o.MaxIdleRooms = p, maxIdle
	})
}

// startCamera publishes stream on rp every 50 ms until the test ends, and
// writes rp's presence once the first frame is out.
func startCamera(t *testing.T, rp *presentReplica, stream frames.Stream) {
	t.Helper()
	p, err := rp.hub.NewPublisher(stream)
	if err != nil {
		t.Fatal(err)
	}
	send := func(seq uint64) {
		f, err := frames.New(frames.KindJPEG, seq, time.Now(), scJPEG, 0)
		if err != nil {
			t.Error(err)
			return
		}
		p.Send(f)
	}
	send(1)
	if err := rp.presence.Beat(context.Background()); err != nil {
		t.Fatal(err)
	}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(2); ; seq++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				send(seq)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done; p.Close() })
}

// TestLiveRoomsPassTheIdleBudget: replica A holds at most one room without
// a known publisher, and holds one. A room whose camera publishes through
// replica B still joins on A, as live, whether A's presence read is a
// minute old (the camera started since: A asks afresh before refusing) or
// not; a room nobody publishes is refused.
func TestLiveRoomsPassTheIdleBudget(t *testing.T) {
	r := testenv.StartRedis(t)
	// A reuses its presence reads for a minute, except before a refusal.
	a := newBudgetReplica(t, r, "a", 1, time.Minute)
	b := newBudgetReplica(t, r, "b", 0, time.Second)
	ctx := context.Background()
	join(t, a.hub, "x")
	if live, err := a.presence.LiveElsewhere(ctx, "cam", false); live || err != nil {
		t.Fatalf("LiveElsewhere(cam) before any camera: %v, %v", live, err)
	}
	began := time.Now()

	startCamera(t, b, frames.Stream{Room: "cam"})
	if live, _ := a.presence.LiveElsewhere(ctx, "cam", false); live {
		t.Fatal("A's presence read is a minute's: it cannot know of cam yet")
	}
	// A fresh answer may reuse a read begun 200 ms ago: let that pass.
	time.Sleep(time.Until(began.Add(250 * time.Millisecond)))
	if _, err := a.hub.Join(ctx, frames.Stream{Room: "cam"}); err != nil {
		t.Fatalf("Join of a room published through B, on A with its idle budget full: %v", err)
	}
	if a.hub.RoomIdle("cam") || a.hub.Stats().IdleRooms != 1 {
		t.Fatalf("cam idle %v, %d idle rooms; want live, 1", a.hub.RoomIdle("cam"), a.hub.Stats().IdleRooms)
	}
	if _, err := a.hub.Join(ctx, frames.Stream{Room: "y"}); !errors.Is(err, rooms.ErrTooManyIdleRooms) {
		t.Fatalf("Join of a second room nobody publishes: %v, want ErrTooManyIdleRooms", err)
	}
}

// TestIdleRoomPublishedElsewhereStopsCounting: A holds two rooms without
// a publisher, its whole idle budget. A camera starts on B in a stream of
// one of them that no viewer on A receives, so no picture of it reaches
// A. Before refusing a third room, A asks again about its idle rooms: the
// published one stops counting, and the third room joins.
func TestIdleRoomPublishedElsewhereStopsCounting(t *testing.T) {
	r := testenv.StartRedis(t)
	a := newBudgetReplica(t, r, "a", 2, time.Second)
	b := newBudgetReplica(t, r, "b", 0, time.Second)
	ctx := context.Background()
	join(t, a.hub, "x")
	join(t, a.hub, "h")
	startCamera(t, b, frames.Stream{Room: "h", Layer: 1})
	testenv.WaitFor(t, 5*time.Second, "A's presence to see h published on B", func() error {
		if live, err := a.presence.LiveElsewhere(ctx, "h", true); !live {
			return errors.Join(errors.New("not yet"), err)
		}
		return nil
	})
	if !a.hub.RoomIdle("h") || a.hub.Stats().IdleRooms != 2 {
		t.Fatal("A counts h as live before anything asked it again")
	}
	if _, err := a.hub.Join(ctx, frames.Stream{Room: "y"}); err != nil {
		t.Fatalf("Join of a third room nobody publishes, with h published on B: %v", err)
	}
	if a.hub.RoomIdle("h") || a.hub.Stats().IdleRooms != 2 {
		t.Fatalf("h idle %v, %d idle rooms; want live, 2 (x and y)", a.hub.RoomIdle("h"), a.hub.Stats().IdleRooms)
	}
}
