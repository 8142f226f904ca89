package redislayer_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

// oneWayDelay is the latency each way between the publishing replica and
// Redis in the tests below: a round trip of about 10 ms, so a publisher
// that waits for each PUBLISH passes at most ~100 frames/s.
const oneWayDelay = 5 * time.Millisecond

// slowRedisRoom is a publishing replica oneWayDelay from Redis, and a
// subscription on Redis itself that records what reaches the channel.
type slowRedisRoom struct {
	hub  *rooms.Hub
	msgs <-chan *redis.Message
}

func newSlowRedisRoom(tb testing.TB) *slowRedisRoom {
	tb.Helper()
	r := testenv.StartRedis(tb)
	px := testenv.StartProxy(tb, r.Addr(), oneWayDelay)
	client := redis.NewClient(&redis.Options{Addr: px.Addr()})
	layer := redislayer.NewRedisLayer(client, redislayer.RedisOptions{Logger: quietLogger()})
	tb.Cleanup(func() {
		layer.Close()
		client.Close()
	})
	return &slowRedisRoom{
		hub:  rooms.NewHub(layer, rooms.Options{Logger: quietLogger(), PublishTimeout: 2 * time.Second}),
		msgs: channelWatch(tb, r, "video_room"),
	}
}

// sendPaced sends frames 1..n through p, one every interval.
func sendPaced(tb testing.TB, p *rooms.Publisher, n int, interval time.Duration) time.Duration {
	tb.Helper()
	fs := make([]*frames.Frame, n)
	for i := range fs {
		fs[i] = scFrame(tb, uint64(i+1))
	}
	start := time.Now()
	for i, f := range fs {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // the camera's frame clock
		}
		p.Send(f)
	}
	return time.Since(start)
}

// receiveSeqs returns the sequence numbers of the next n messages on the
// channel, failing after timeout.
func receiveSeqs(tb testing.TB, msgs <-chan *redis.Message, n int, timeout time.Duration) []uint64 {
	tb.Helper()
	out := make([]uint64, 0, n)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case m := <-msgs:
			h, err := frames.ParseHeader([]byte(m.Payload))
			if err != nil {
				tb.Fatalf("bad message on the channel: %v", err)
			}
			out = append(out, h.Seq)
		case <-deadline:
			tb.Fatalf("%d of %d frames reached Redis within %v", len(out), n, timeout)
		}
	}
	return out
}

// TestPipelinedPublishesOverSlowRedis: with Redis a 10 ms round trip away,
// a room sustains 500 frames/s (5 × 1/RTT): every frame reaches Redis, in
// order, and none is dropped.
func TestPipelinedPublishesOverSlowRedis(t *testing.T) {
	room := newSlowRedisRoom(t)
	p, err := room.hub.NewPublisher(frames.Stream{Room: "room"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n, interval = 500, 2 * time.Millisecond
	took := sendPaced(t, p, n, interval)
	seqs := receiveSeqs(t, room.msgs, n, 5*time.Second)
	for i, seq := range seqs {
		if seq != uint64(i+1) {
			t.Fatalf("message %d reached Redis as frame %d: frames lost or out of order", i+1, seq)
		}
	}
	t.Logf("%d frames sent in %v (%.0f/s)", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	// The publisher counts a pipeline once its replies are back.
	testenv.WaitFor(t, 2*time.Second, "the publisher's counts", func() error {
		if st := room.hub.Stats(); st.PublishDropped != 0 || st.PublishErrors != 0 || st.Published != n {
			return fmt.Errorf("stats %+v: want %d published, none dropped or failed", st, n)
		}
		return nil
	})
}

// BenchmarkPublishOverDelayedRedis offers a room's frames at 2,000/s to a
// Redis a 10 ms round trip away, and reports how many reach it per second
// and what share is dropped before it. Run it with a fixed count:
//
//	go test -run '^$' -bench PublishOverDelayedRedis -benchtime 2000x ./pkg/redislayer/
func BenchmarkPublishOverDelayedRedis(b *testing.B) {
	room := newSlowRedisRoom(b)
	p, err := room.hub.NewPublisher(frames.Stream{Room: "room"})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	// Warm up: the publisher's connection to Redis is open, and counted.
	p.Send(scFrame(b, 1<<40))
	receiveSeqs(b, room.msgs, 1, 10*time.Second)
	testenv.WaitFor(b, 10*time.Second, "the warm-up frame counted", func() error {
		if st := room.hub.Stats(); st.Published != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	b.ResetTimer()
	start := time.Now()
	sendPaced(b, p, b.N, 500*time.Microsecond)
	// Every frame is either dropped, failed, or reaches Redis: wait for
	// the ones that do.
	var st rooms.Stats
	testenv.WaitFor(b, 10*time.Second, "every frame accounted for", func() error {
		st = room.hub.Stats()
		st.Published-- // the warm-up
		if got := st.Published + st.PublishDropped + st.PublishErrors; got != uint64(b.N) {
			return fmt.Errorf("%d of %d", got, b.N)
		}
		return nil
	})
	receiveSeqs(b, room.msgs, int(st.Published), 10*time.Second)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(st.Published)/elapsed.Seconds(), "published/s")
	b.ReportMetric(100*float64(st.PublishDropped)/float64(b.N), "%dropped")
}
