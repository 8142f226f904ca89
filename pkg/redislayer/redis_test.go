package redislayer_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

// replica is one gateway replica's part of the relay: its own go-redis
// client, RedisLayer and Hub, like a gateway process.
type replica struct {
	client *redis.Client
	layer  *redislayer.RedisLayer
	hub    *rooms.Hub
}

func newReplica(t testing.TB, r *testenv.Redis) *replica {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: r.Addr()})
	layer := redislayer.NewRedisLayer(client, redislayer.RedisOptions{Logger: quietLogger()})
	t.Cleanup(func() {
		layer.Close()
		client.Close()
	})
	return &replica{
		client: client,
		layer:  layer,
		hub:    rooms.NewHub(layer, rooms.Options{Logger: quietLogger(), PublishTimeout: 500 * time.Millisecond}),
	}
}

// numSub returns how many subscription connections Redis has for channel.
func numSub(t testing.TB, c *redis.Client, channel string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	m, err := c.PubSubNumSub(ctx, channel).Result()
	if err != nil {
		t.Fatalf("PUBSUB NUMSUB %s: %v", channel, err)
	}
	return m[channel]
}

func waitNumSub(t testing.TB, c *redis.Client, channel string, want int64) {
	t.Helper()
	testenv.WaitFor(t, 3*time.Second, fmt.Sprintf("PUBSUB NUMSUB %s == %d", channel, want), func() error {
		if got := numSub(t, c, channel); got != want {
			return fmt.Errorf("NUMSUB %d", got)
		}
		return nil
	})
}

// publishCalls returns how many PUBLISH commands Redis has executed.
func publishCalls(t testing.TB, c *redis.Client) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatalf("INFO commandstats: %v", err)
	}
	for line := range strings.SplitSeq(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_publish:calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("cmdstat_publish: %q: %v", line, err)
		}
		return n
	}
	return 0
}

// sender sends numbered frames through a publisher.
type sender struct {
	t   testing.TB
	p   *rooms.Publisher
	seq atomic.Uint64
}

func (s *sender) send() uint64 {
	seq := s.seq.Add(1)
	s.p.Send(scFrame(s.t, seq))
	return seq
}

// sendUntilReceived sends frames until v receives one sent at or after
// minSeq: subscriptions are asynchronous, so the first frames may reach
// nobody.
func (s *sender) sendUntilReceived(v *rooms.Viewer, minSeq uint64, timeout time.Duration) *frames.Frame {
	s.t.Helper()
	var got *frames.Frame
	testenv.WaitFor(s.t, timeout, "a frame to cross Redis", func() error {
		s.send()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		for {
			f, err := v.Next(ctx)
			if err != nil {
				return fmt.Errorf("no frame >= %d yet: %w", minSeq, err)
			}
			if !f.IsOffline() && f.Seq >= minSeq {
				got = f
				return nil
			}
		}
	})
	return got
}

// receive waits for frame seq on v, skipping older ones.
func receive(t testing.TB, v *rooms.Viewer, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		f, err := v.Next(ctx)
		if err != nil {
			t.Fatalf("viewer never got frame %d: %v", seq, err)
		}
		if f.Seq == seq {
			return
		}
		if f.Seq > seq {
			t.Fatalf("viewer got frame %d, skipping %d", f.Seq, seq)
		}
	}
}

func TestRedisRelayBetweenHubs(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := newReplica(t, r), newReplica(t, r)
	const ch = "video_room"

	b1, b2 := join(t, b.hub, "room"), join(t, b.hub, "room")
	waitNumSub(t, a.client, ch, 1) // one subscription for B, not one per viewer

	p, err := a.hub.NewPublisher(frames.Stream{Room: "room"})
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{t: t, p: p}
	f := s.sendUntilReceived(b1, 1, 3*time.Second)
	if f.Room != "room" || string(f.Payload) != string(scJPEG) {
		t.Fatalf("frame from A arrived at B as room %q with %d JPEG bytes", f.Room, len(f.Payload))
	}
	receive(t, b2, f.Seq)
	if got := numSub(t, a.client, ch); got != 1 {
		t.Fatalf("a publisher subscribed its replica: NUMSUB %d, want 1", got)
	}

	a1, a2 := join(t, a.hub, "room"), join(t, a.hub, "room")
	waitNumSub(t, a.client, ch, 2)

	// Settle: every frame sent so far has been published (or replaced in
	// the publisher's slot) and relayed, so the counters below are exact.
	sent := s.seq.Load()
	testenv.WaitFor(t, 3*time.Second, "frames in flight to settle", func() error {
		st := a.hub.Stats()
		if st.Published+st.PublishDropped+st.PublishErrors != sent {
			return fmt.Errorf("A: %+v, %d sent", st, sent)
		}
		if rb := b.hub.Stats().Relayed; rb != st.Published {
			return fmt.Errorf("B relayed %d of %d published", rb, st.Published)
		}
		return nil
	})
	calls0, relayedA0, relayedB0 := publishCalls(t, a.client), a.hub.Stats().Relayed, b.hub.Stats().Relayed

	const k = 5
	for range k {
		seq := s.send()
		for _, v := range []*rooms.Viewer{a1, a2, b1, b2} {
			receive(t, v, seq)
		}
	}
	if got := publishCalls(t, a.client) - calls0; got != k {
		t.Errorf("%d frames to 4 viewers on 2 replicas took %d PUBLISH commands, want %d", k, got, k)
	}
	if got := a.hub.Stats().Relayed - relayedA0; got != k {
		t.Errorf("replica A relayed %d messages for %d frames", got, k)
	}
	if got := b.hub.Stats().Relayed - relayedB0; got != k {
		t.Errorf("replica B relayed %d messages for %d frames", got, k)
	}

	a.hub.Leave(a1)
	b.hub.Leave(b1)
	waitNumSub(t, a.client, ch, 2) // each replica still has a viewer
	a.hub.Leave(a2)
	waitNumSub(t, a.client, ch, 1)
	b.hub.Leave(b2)
	waitNumSub(t, a.client, ch, 0)
	if names := roomNames(b.hub); len(names) != 0 {
		t.Fatalf("B still holds rooms %v", names)
	}
	if names := roomNames(a.hub); len(names) != 1 {
		t.Fatalf("A holds rooms %v, want the publisher's room", names)
	}
	p.Close()
	if names := roomNames(a.hub); len(names) != 0 {
		t.Fatalf("A still holds rooms %v after its publisher closed", names)
	}
}

func TestRedisOfflineCrossesReplicas(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := newReplica(t, r), newReplica(t, r)
	v := join(t, b.hub, "room")
	waitNumSub(t, b.client, "video_room", 1)
	p, err := a.hub.NewPublisher(frames.Stream{Room: "room"})
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{t: t, p: p}
	last := s.sendUntilReceived(v, 1, 3*time.Second)
	p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		f, err := v.Next(ctx)
		if err != nil {
			t.Fatalf("viewer on B never got the offline event: %v", err)
		}
		if f.IsOffline() {
			if f.Seq < last.Seq {
				t.Fatalf("offline event carries seq %d, before the last frame received, %d", f.Seq, last.Seq)
			}
			break
		}
	}
	if b.hub.Latest(frames.Stream{Room: "room"}) != nil {
		t.Fatal("B still reports the room live")
	}
}

func TestRedisRestart(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := newReplica(t, r), newReplica(t, r)
	v := join(t, b.hub, "room")
	p, err := a.hub.NewPublisher(frames.Stream{Room: "room"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	s := &sender{t: t, p: p}
	s.sendUntilReceived(v, 1, 3*time.Second)
	for _, x := range []*replica{a, b} {
		if err := x.layer.Ready(context.Background()); err != nil {
			t.Fatalf("Ready() before the restart: %v", err)
		}
	}

	r.Kill()
	for i, x := range []*replica{a, b} {
		testenv.WaitFor(t, 3*time.Second, fmt.Sprintf("replica %d's layer to report Redis down", i), func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if x.layer.Ready(ctx) == nil {
				return errors.New("Ready() is nil with Redis killed")
			}
			return nil
		})
	}
	// Frames sent while Redis is down are dropped, without blocking.
	for range 10 {
		s.send()
	}
	beforeRestart := s.seq.Load()

	r.Restart()
	restarted := time.Now()
	f := s.sendUntilReceived(v, beforeRestart+1, 2*time.Second)
	t.Logf("frame %d arrived %v after the restart", f.Seq, time.Since(restarted))
	for i, x := range []*replica{a, b} {
		testenv.WaitFor(t, 2*time.Second, fmt.Sprintf("replica %d's layer to report ready", i), func() error {
			return x.layer.Ready(context.Background())
		})
	}
}

func TestRedisLayerCloseLeavesNoGoroutines(t *testing.T) {
	r := testenv.StartRedis(t)
	before := runtime.NumGoroutine()

	client := redis.NewClient(&redis.Options{Addr: r.Addr()})
	layer := redislayer.NewRedisLayer(client, redislayer.RedisOptions{Logger: quietLogger()})
	hub := rooms.NewHub(layer, rooms.Options{Logger: quietLogger()})
	v := join(t, hub, "room")
	p, err := hub.NewPublisher(frames.Stream{Room: "room"})
	if err != nil {
		t.Fatal(err)
	}
	s := &sender{t: t, p: p}
	s.sendUntilReceived(v, 1, 3*time.Second)
	p.Close()
	hub.Leave(v)

	if err := layer.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := layer.Ready(context.Background()); !errors.Is(err, rooms.ErrLayerClosed) {
		t.Errorf("Ready() after Close = %v, want ErrLayerClosed", err)
	}
	if err := layer.Publish(context.Background(), "room", scFrame(t, 1).Binary()); !errors.Is(err, rooms.ErrLayerClosed) {
		t.Errorf("Publish() after Close = %v, want ErrLayerClosed", err)
	}
	if err := layer.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	client.Close()
	testenv.WaitFor(t, 3*time.Second, "goroutines to exit", func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before the layer started", n, before)
		}
		return nil
	})
}

// TestRedisLayerCloseWhileDown: Close returns promptly when Redis is gone
// and the read loop is backing off.
func TestRedisLayerCloseWhileDown(t *testing.T) {
	r := testenv.StartRedis(t)
	before := runtime.NumGoroutine()
	client := redis.NewClient(&redis.Options{Addr: r.Addr()})
	layer := redislayer.NewRedisLayer(client, redislayer.RedisOptions{Logger: quietLogger()})
	hub := rooms.NewHub(layer, rooms.Options{Logger: quietLogger()})
	join(t, hub, "room")
	waitNumSub(t, client, "video_room", 1)
	r.Kill()
	testenv.WaitFor(t, 3*time.Second, "the layer to notice", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if layer.Ready(ctx) == nil {
			return errors.New("still ready")
		}
		return nil
	})
	closing := time.Now()
	done := make(chan struct{})
	go func() {
		layer.Close()
		client.Close()
		close(done)
	}()
	select {
	case <-done:
		t.Logf("Close took %v", time.Since(closing))
	case <-time.After(3 * time.Second):
		t.Fatal("Close hung with Redis down")
	}
	testenv.WaitFor(t, 3*time.Second, "goroutines to exit", func() error {
		if n := runtime.NumGoroutine(); n > before {
			return fmt.Errorf("%d goroutines, %d before the layer started", n, before)
		}
		return nil
	})
}

// freeze stops r with SIGSTOP and returns the function that resumes it
// (SIGCONT), which also runs when the test ends; it is idempotent.
func freeze(t *testing.T, r *testenv.Redis) (thaw func()) {
	t.Helper()
	if err := r.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("failed to freeze redis-server: %v", err)
	}
	var once sync.Once
	thaw = func() { once.Do(func() { _ = r.Proc.Signal(syscall.SIGCONT) }) }
	t.Cleanup(thaw)
	return thaw
}

// TestFrozenRedisDoesNotDelayJoinsAndLeaves: while Redis is frozen
// (SIGSTOP) and the layer's subscription connection is being replaced (a
// dial that waits for the frozen server), joins to new rooms may wait for
// the layer, but a join to a room already subscribed and any leave return
// at once.
func TestFrozenRedisDoesNotDelayJoinsAndLeaves(t *testing.T) {
	r := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr(), ReadTimeout: 3 * time.Second, MaxRetries: -1})
	layer := redislayer.NewRedisLayer(client, redislayer.RedisOptions{Logger: quietLogger(), IdleTimeout: 100 * time.Millisecond})
	t.Cleanup(func() {
		layer.Close()
		client.Close()
	})
	hub := rooms.NewHub(layer, rooms.Options{Logger: quietLogger(), PublishTimeout: 2 * time.Second})
	direct := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { direct.Close() })

	keep := join(t, hub, "a") // room a stays subscribed throughout
	const nLast = 8
	last := make([]*rooms.Viewer, nLast) // the only viewers of rooms c0..c7
	for i := range last {
		last[i] = join(t, hub, fmt.Sprintf("c%d", i))
	}
	waitNumSub(t, direct, "video_a", 1)
	waitNumSub(t, direct, "video_c7", 1)

	thaw := freeze(t, r)

	// Joins to new rooms keep the layer busy: one of them soon waits for
	// the new subscription connection to the frozen server.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var newViewers []*rooms.Viewer
	var newMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := hub.Join(context.Background(), frames.Stream{Room: fmt.Sprintf("b%d", i)})
				if err == nil {
					newMu.Lock()
					newViewers = append(newViewers, v)
					newMu.Unlock()
				}
			}()
		}
	}()

	const bound = 200 * time.Millisecond
	timed := func(what string, f func()) {
		t.Helper()
		start := time.Now()
		f()
		if d := time.Since(start); d > bound {
			t.Errorf("%s took %v with Redis frozen, want < %v", what, d, bound)
		}
	}
	// Over 1.5 s: the read loop gives up on the frozen connection after
	// 2 × IdleTimeout and starts replacing it well within that.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for i := 0; time.Now().Before(deadline) && !t.Failed(); i++ {
		var v *rooms.Viewer
		timed("a join to a subscribed room", func() { v = join(t, hub, "a") })
		timed("a leave of a room with viewers left", func() { hub.Leave(v) })
		if i < nLast {
			timed("the last viewer's leave", func() { hub.Leave(last[i]) })
		}
		time.Sleep(50 * time.Millisecond) // paces the probes over the freeze; each is timed, none waits for a condition
	}
	close(stop)

	// Once Redis answers again, every room is subscribed as its viewers say.
	thaw()
	wg.Wait()
	for i := range nLast {
		hub.Leave(last[i]) // idempotent: the loop may have ended early
	}
	waitNumSub(t, direct, "video_a", 1)
	for i := range nLast {
		waitNumSub(t, direct, fmt.Sprintf("video_c%d", i), 0)
	}
	waitNumSub(t, direct, "video_b0", 1)
	newMu.Lock()
	for _, v := range newViewers {
		hub.Leave(v)
	}
	newMu.Unlock()
	hub.Leave(keep)
	waitNumSub(t, direct, "video_a", 0)
}

// TestRedisLayerReconnectRacingSubscriptions: rooms subscribed and
// unsubscribed while the subscription connection is being replaced end up
// subscribed exactly as asked. (replace used to list the channels before
// taking the mutex that Subscribe holds, so a room subscribed in between
// was left on the closed connection until the next replacement.)
func TestRedisLayerReconnectRacingSubscriptions(t *testing.T) {
	r := testenv.StartRedis(t)
	client := redis.NewClient(&redis.Options{Addr: r.Addr()})
	layer := redislayer.NewRedisLayer(client, redislayer.RedisOptions{Logger: quietLogger()})
	direct := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() {
		layer.Close()
		client.Close()
		direct.Close()
	})
	ctx := context.Background()
	const rounds, perRound = 30, 20
	var chans []string
	for k := range rounds {
		done := make(chan struct{})
		go func() {
			defer close(done)
			layer.Reconnect()
		}()
		for i := range perRound {
			room := fmt.Sprintf("r%d_%d", k, i)
			_ = layer.Subscribe(ctx, room, func(string, []byte) {}) // on a closed connection: logged, the layer restores it
			if i%2 == 1 {
				_ = layer.Unsubscribe(ctx, room)
			}
			chans = append(chans, "video_"+room)
		}
		<-done
	}
	testenv.WaitFor(t, 5*time.Second, "every room subscribed as asked", func() error {
		m, err := direct.PubSubNumSub(ctx, chans...).Result()
		if err != nil {
			return err
		}
		var wrong []string
		for i, ch := range chans {
			if want := int64(1 - i%2); m[ch] != want {
				wrong = append(wrong, fmt.Sprintf("%s=%d", ch, m[ch]))
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%d rooms wrong: %v", len(wrong), wrong[:min(len(wrong), 5)])
		}
		return nil
	})
}
