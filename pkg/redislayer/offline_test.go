package redislayer_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

// hubRef lists the rooms of a hub made after the presence that lists them
// (the hub asks the presence about other replicas' publishers).
type hubRef struct{ h *rooms.Hub }

func (r *hubRef) Streams() []rooms.StreamInfo { return r.h.Streams() }

// presentReplica is a gateway replica with presence: its own client,
// RedisLayer, Presence (heartbeats running) and Hub.
type presentReplica struct {
	hub      *rooms.Hub
	presence *redislayer.Presence
}

func newPresentReplica(t *testing.T, r *testenv.Redis, opts redislayer.PresenceOptions) *presentReplica {
	t.Helper()
	return newPresentReplicaWith(t, r, opts, nil)
}

// newPresentReplicaWith is newPresentReplica with the hub's options
// changed by mutate (if not nil), which is handed the replica's presence.
func newPresentReplicaWith(t *testing.T, r *testenv.Redis, opts redislayer.PresenceOptions,
	mutate func(*rooms.Options, *redislayer.Presence)) *presentReplica {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: r.Addr()})
	layer := redislayer.NewRedisLayer(client, redislayer.RedisOptions{Logger: quietLogger()})
	ref := &hubRef{}
	presence := redislayer.NewPresence(client, ref, opts)
	hubOpts := rooms.Options{Logger: quietLogger(), PublishTimeout: 500 * time.Millisecond, Presence: presence}
	if mutate != nil {
		mutate(&hubOpts, presence)
	}
	ref.h = rooms.NewHub(layer, hubOpts)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { presence.Run(ctx); close(done) }()
	t.Cleanup(func() {
		stop()
		<-done
		layer.Close()
		client.Close()
	})
	return &presentReplica{hub: ref.h, presence: presence}
}

// channelWatch records every message on one room's channel, read on Redis
// itself.
func channelWatch(t testing.TB, r *testenv.Redis, channel string) <-chan *redis.Message {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	ps := c.Subscribe(context.Background(), channel)
	t.Cleanup(func() {
		ps.Close()
		c.Close()
	})
	if _, err := ps.Receive(context.Background()); err != nil {
		t.Fatalf("SUBSCRIBE %s: %v", channel, err)
	}
	return ps.ChannelSize(1 << 16)
}

// nextKind waits for the next message on msgs and returns its kind and seq.
func nextKind(t *testing.T, msgs <-chan *redis.Message, timeout time.Duration) (frames.Kind, uint64) {
	t.Helper()
	select {
	case m := <-msgs:
		h, err := frames.ParseHeader([]byte(m.Payload))
		if err != nil {
			t.Fatalf("bad message: %v", err)
		}
		return h.Kind, h.Seq
	case <-time.After(timeout):
		t.Fatalf("no message on the channel within %v", timeout)
		return 0, 0
	}
}

// TestOfflineOnlyWhenNoReplicaPublishes: a camera that reconnected to
// replica B while its old connection on replica A times out: when A's
// publisher finally closes, B's publisher is live, so nobody is told the
// room went offline. When B's goes too, no replica publishes: offline.
func TestOfflineOnlyWhenNoReplicaPublishes(t *testing.T) {
	r := testenv.StartRedis(t)
	opts := redislayer.PresenceOptions{KeyPrefix: "t5:", Interval: 100 * time.Millisecond, TTL: time.Second,
		CacheFor: time.Millisecond, Logger: quietLogger()}
	optsA, optsB := opts, opts
	optsA.ReplicaID, optsB.ReplicaID = "a", "b"
	a, b := newPresentReplica(t, r, optsA), newPresentReplica(t, r, optsB)
	msgs := channelWatch(t, r, "video_cam")
	v := join(t, a.hub, "cam") // a viewer on A, which sees the room through Redis
	defer a.hub.Leave(v)

	old, err := a.hub.NewPublisher(frames.Stream{Room: "cam"}) // the camera's old connection
	if err != nil {
		t.Fatal(err)
	}
	old.Send(scFrame(t, 1))
	if kind, _ := nextKind(t, msgs, 2*time.Second); kind != frames.KindJPEG {
		t.Fatalf("first message has kind %d", kind)
	}

	// The camera reconnects through nginx to B and streams there.
	moved, err := b.hub.NewPublisher(frames.Stream{Room: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	streaming := make(chan struct{})
	go func() {
		defer close(streaming)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for seq := uint64(2); ; seq++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			f, _ := frames.New(frames.KindJPEG, seq, time.Now(), scJPEG, 0)
			moved.Send(f)
		}
	}()
	testenv.WaitFor(t, 3*time.Second, "A to learn that B publishes cam", func() error {
		yes, err := a.presence.PublishedElsewhere(context.Background(), frames.Stream{Room: "cam"})
		if err != nil {
			return err
		}
		if !yes {
			return errors.New("not yet")
		}
		return nil
	})

	old.Close() // the old connection times out at last
	// The next 30 messages (300 ms of B's stream) hold no offline event.
	for i := range 30 {
		if kind, seq := nextKind(t, msgs, 2*time.Second); kind == frames.KindOffline {
			t.Fatalf("message %d after A's publisher closed: offline (seq %d), while B's publisher streams", i, seq)
		}
	}
	if a.hub.Latest(frames.Stream{Room: "cam"}) == nil {
		t.Error("A reports cam offline while B's publisher streams")
	}

	close(stop)
	<-streaming
	moved.Close() // now no replica publishes cam
	deadline := time.After(3 * time.Second)
	for {
		select {
		case <-deadline:
			t.Fatal("no offline event after the last publisher anywhere left")
		default:
		}
		if kind, _ := nextKind(t, msgs, 3*time.Second); kind == frames.KindOffline {
			break
		}
	}
	if b.hub.Latest(frames.Stream{Room: "cam"}) != nil {
		t.Error("B still reports cam live")
	}
}

// TestOfflineAfterStaleConnectionElsewhere: the camera's last connection
// closes on B while A still holds its old, silent one (not timed out yet):
// A's publisher sends nothing, so it counts as live only for the presence
// TTL, and B announces offline once that passes, without waiting for A's
// connection to time out.
func TestOfflineAfterStaleConnectionElsewhere(t *testing.T) {
	r := testenv.StartRedis(t)
	opts := redislayer.PresenceOptions{KeyPrefix: "t6:", Interval: 100 * time.Millisecond, TTL: 500 * time.Millisecond,
		CacheFor: time.Millisecond, Logger: quietLogger()}
	optsA, optsB := opts, opts
	optsA.ReplicaID, optsB.ReplicaID = "a", "b"
	a, b := newPresentReplica(t, r, optsA), newPresentReplica(t, r, optsB)
	msgs := channelWatch(t, r, "video_cam")

	stale, err := a.hub.NewPublisher(frames.Stream{Room: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	defer stale.Close()
	stale.Send(scFrame(t, 1)) // then silence: the camera moved to B
	moved, err := b.hub.NewPublisher(frames.Stream{Room: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	moved.Send(scFrame(t, 2))
	for range 2 {
		nextKind(t, msgs, 2*time.Second)
	}
	closed := time.Now()
	moved.Close()
	if kind, _ := nextKind(t, msgs, 5*time.Second); kind != frames.KindOffline {
		t.Fatalf("got kind %d after the last live publisher left, want offline", kind)
	}
	t.Logf("offline %v after the close", time.Since(closed).Round(10*time.Millisecond))
	if b.hub.Latest(frames.Stream{Room: "cam"}) != nil {
		t.Error("B still reports cam live")
	}
}
