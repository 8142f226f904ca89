package redislayer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

// scJPEG passes frames.CheckJPEG; nothing here decodes images.
var scJPEG = []byte{0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x02, 's', 'c', 0xFF, 0xD9}

func scFrame(t testing.TB, seq uint64) *frames.Frame {
	t.Helper()
	f, err := frames.New(frames.KindJPEG, seq, time.Now(), scJPEG, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func scClient(t testing.TB, r *testenv.Redis) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// scHub is one replica's hub on its own in-process layer: presence and the
// frame cache need only Redis, not a shared channel layer.
func scHub(t testing.TB, opts rooms.Options) *rooms.Hub {
	t.Helper()
	opts.Logger = slog.New(slog.DiscardHandler)
	l := rooms.NewMemoryLayer()
	t.Cleanup(func() { l.Close() })
	return rooms.NewHub(l, opts)
}

func scCommandCalls(t testing.TB, c *redis.Client, cmd string) int {
	t.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
			n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
			return n
		}
	}
	return 0
}

func TestPresenceAcrossReplicas(t *testing.T) {
	r := testenv.StartRedis(t)
	client := scClient(t, r)
	ctx := context.Background()
	opts := redislayer.PresenceOptions{KeyPrefix: "t1:", Interval: 100 * time.Millisecond, TTL: 500 * time.Millisecond,
		CacheFor: time.Millisecond, Logger: slog.New(slog.DiscardHandler)}

	// Replica A: a publisher and a viewer of lobby. Replica B: two viewers
	// of lobby and one of hall.
	ha, hb := scHub(t, rooms.Options{}), scHub(t, rooms.Options{})
	pub, err := ha.NewPublisher(frames.Stream{Room: "lobby"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.Send(scFrame(t, 1))
	for _, j := range []struct {
		h    *rooms.Hub
		room string
	}{{ha, "lobby"}, {hb, "lobby"}, {hb, "lobby"}, {hb, "hall"}} {
		v, err := j.h.Join(ctx, frames.Stream{Room: j.room})
		if err != nil {
			t.Fatal(err)
		}
		defer j.h.Leave(v)
	}

	oa, ob := opts, opts
	oa.ReplicaID, ob.ReplicaID = "replica-a", "replica-b"
	pa, pb := redislayer.NewPresence(client, ha, oa), redislayer.NewPresence(client, hb, ob)
	ctxA, stopA := context.WithCancel(ctx)
	ctxB, stopB := context.WithCancel(ctx)
	doneA, doneB := make(chan struct{}), make(chan struct{})
	go func() { pa.Run(ctxA); close(doneA) }()
	go func() { pb.Run(ctxB); close(doneB) }()
	defer func() { stopA(); stopB(); <-doneA; <-doneB }()

	want := []rooms.RoomSummary{
		{Name: "hall", Viewers: 1, Replicas: 1},
		{Name: "lobby", Viewers: 3, Publishers: 1, Live: true, Replicas: 2},
	}
	same := func(got []rooms.RoomSummary) error {
		if len(got) != len(want) {
			return fmt.Errorf("got %+v, want %+v", got, want)
		}
		for i := range want {
			g := got[i]
			g.LastFrame = time.Time{}
			if !reflect.DeepEqual(g, want[i]) {
				return fmt.Errorf("got %+v, want %+v", got, want)
			}
		}
		return nil
	}
	for _, p := range []*redislayer.Presence{pa, pb} {
		testenv.WaitFor(t, 5*time.Second, "both replicas' rooms summed on "+p.ReplicaID(), func() error {
			got, err := p.Rooms(ctx)
			if err != nil {
				return err
			}
			return same(got)
		})
	}
	if got, _ := pb.Rooms(ctx); got[1].LastFrame.IsZero() {
		t.Fatalf("lobby has no last frame time: %+v", got)
	}

	// Replica B stops beating without a word (as if killed): its rooms
	// drop out once its TTL passes. Rooms reuses what it read for CacheFor,
	// which this test sets tiny.
	opts2 := ob
	opts2.Interval = time.Hour // beats once, at start; then silent
	silent := redislayer.NewPresence(client, hb, opts2)
	stopB()
	<-doneB
	if err := silent.Beat(ctx); err != nil { // B's last word, then silence
		t.Fatal(err)
	}
	lastBeat := time.Now()
	want = []rooms.RoomSummary{{Name: "lobby", Viewers: 1, Publishers: 1, Live: true, Replicas: 1}}
	testenv.WaitFor(t, 5*time.Second, "the silent replica's rooms to expire", func() error {
		got, err := pa.Rooms(ctx)
		if err != nil {
			return err
		}
		return same(got)
	})
	if gone := time.Since(lastBeat); gone < opts.TTL-50*time.Millisecond {
		t.Fatalf("the silent replica dropped out %v after its last beat, before its TTL %v", gone, opts.TTL)
	}
	// The index of replicas is pruned by the live replica's heartbeats.
	testenv.WaitFor(t, 5*time.Second, "the dead replica pruned from the index", func() error {
		ids, err := client.ZRange(ctx, "t1:replicas", 0, -1).Result()
		if err != nil {
			return err
		}
		if len(ids) != 1 || ids[0] != "replica-a" {
			return fmt.Errorf("index holds %v", ids)
		}
		return nil
	})

	// A clean stop removes the presence at once.
	stopA()
	<-doneA
	if n, err := client.Exists(ctx, "t1:presence:replica-a").Result(); err != nil || n != 0 {
		t.Fatalf("presence key after a clean stop: %d, %v", n, err)
	}
}

func TestPresenceWithoutRedisListsLocalRooms(t *testing.T) {
	port := testenv.FreePort(t)
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	defer client.Close()
	h := scHub(t, rooms.Options{})
	v, err := h.Join(context.Background(), frames.Stream{Room: "alone"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Leave(v)
	p := redislayer.NewPresence(client, h, redislayer.PresenceOptions{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got, err := p.Rooms(ctx)
	if err == nil {
		t.Fatal("Rooms reported no error with Redis down")
	}
	if len(got) != 1 || got[0].Name != "alone" || got[0].Viewers != 1 {
		t.Fatalf("Rooms with Redis down = %+v, want the local room", got)
	}
}

func TestFrameCache(t *testing.T) {
	r := testenv.StartRedis(t)
	client := scClient(t, r)
	ctx := context.Background()
	opts := redislayer.FrameCacheOptions{KeyPrefix: "t2:", Interval: 200 * time.Millisecond, TTL: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}

	// Replica A has the publisher and writes the cache.
	ha := scHub(t, rooms.Options{})
	writer := redislayer.NewRedisFrameCache(client, opts)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { writer.Run(runCtx, ha); close(done) }()
	defer func() { stop(); <-done }()

	// Replica B reads it at Join (with its own reader: reads are reused
	// for Interval, and this test's polling must not warm B's).
	reader := redislayer.NewRedisFrameCache(scClient(t, r), opts)
	hb := scHub(t, rooms.Options{Cache: redislayer.NewRedisFrameCache(scClient(t, r), opts)})

	if f, err := reader.Latest(ctx, frames.Stream{Room: "cam"}); err != nil || f != nil {
		t.Fatalf("Latest of a room never published: %v, %v", f, err)
	}

	pub, err := ha.NewPublisher(frames.Stream{Room: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	sets := scCommandCalls(t, client, "set")
	start := time.Now()
	// 100 frames/s for 1 s: the cache must take at most one write per Interval.
	var seq uint64
	for time.Since(start) < time.Second {
		seq++
		pub.Send(scFrame(t, seq))
		time.Sleep(10 * time.Millisecond) // the camera's pace: what is measured is writes per Interval at this rate
	}
	elapsed := time.Since(start)
	writes := scCommandCalls(t, client, "set") - sets
	maxWrites := int(elapsed/opts.Interval) + 1
	t.Logf("%d frames in %v, %d cache writes (limit %d)", seq, elapsed.Round(time.Millisecond), writes, maxWrites)
	if writes < 2 || writes > maxWrites {
		t.Fatalf("%d cache writes for %d frames in %v; want 2..%d", writes, seq, elapsed, maxWrites)
	}

	// A viewer joining on B, which holds nothing of cam, has a frame when
	// Join returns.
	testenv.WaitFor(t, 2*time.Second, "the newest frame in the cache", func() error {
		f, err := reader.Latest(ctx, frames.Stream{Room: "cam"})
		if err != nil {
			return err
		}
		if f == nil || f.Seq != seq {
			return fmt.Errorf("cached %v, want seq %d", f, seq)
		}
		return nil
	})
	joined := time.Now()
	v, err := hb.Join(ctx, frames.Stream{Room: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(joined)
	f := v.TryNext()
	if f == nil || f.Seq != seq || f.Room != "cam" || string(f.Payload) != string(scJPEG) {
		t.Fatalf("first frame at Join = %+v, want frame %d of cam", f, seq)
	}
	t.Logf("Join with a cached first frame took %v", took)
	hb.Leave(v)

	// The TTL is refreshed while the publisher stays, even without frames.
	// Not a wait for a condition: the key must outlive its TTL, and only
	// letting the TTL pass shows it.
	time.Sleep(opts.TTL * 3 / 2)
	if n, _ := client.Exists(ctx, "t2:last:cam").Result(); n != 1 {
		t.Fatal("the cached frame expired while its publisher was connected")
	}

	// The publisher leaves: the cache forgets the room.
	pub.Close()
	testenv.WaitFor(t, 2*time.Second, "the cached frame deleted", func() error {
		if n, _ := client.Exists(ctx, "t2:last:cam").Result(); n != 0 {
			return fmt.Errorf("still cached")
		}
		return nil
	})
	// hb reuses a read for Interval: this outlives the last one, made
	// before this line. A clock, not a condition to poll for.
	time.Sleep(opts.Interval)
	v, err = hb.Join(ctx, frames.Stream{Room: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Leave(v)
	if f := v.TryNext(); f != nil {
		t.Fatalf("viewer of an offline room got cached frame %d", f.Seq)
	}
}

func TestFrameCacheDownDoesNotDelayJoin(t *testing.T) {
	// A cache that cannot answer costs Join at most CacheTimeout.
	port := testenv.FreePort(t)
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1})
	defer client.Close()
	cache := redislayer.NewRedisFrameCache(client, redislayer.FrameCacheOptions{Logger: slog.New(slog.DiscardHandler)})
	h := scHub(t, rooms.Options{Cache: cache, CacheTimeout: 100 * time.Millisecond})
	start := time.Now()
	v, err := h.Join(context.Background(), frames.Stream{Room: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Leave(v)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Join took %v with the cache down", took)
	}
	if f := v.TryNext(); f != nil {
		t.Fatalf("got frame %d from a cache that is down", f.Seq)
	}
}

// TestFrameCacheRetriesDeleteAfterFailedWrite: the DEL of a room whose
// publisher left while Redis was unreachable is sent once Redis is back,
// rather than lost with the failed write round (the stale frame would
// otherwise be served as the room's first frame for the whole TTL).
func TestFrameCacheRetriesDeleteAfterFailedWrite(t *testing.T) {
	r := testenv.StartRedis(t)
	direct := scClient(t, r)
	px := testenv.StartProxy(t, r.Addr(), 0)
	client := redis.NewClient(&redis.Options{Addr: px.Addr(), MaxRetries: -1, ContextTimeoutEnabled: true,
		DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { client.Close() })
	var failures atomic.Int64
	opts := redislayer.FrameCacheOptions{KeyPrefix: "t3:", Interval: 50 * time.Millisecond, TTL: time.Minute,
		Logger: quietLogger(), OnError: func(string, error) { failures.Add(1) }}
	h := scHub(t, rooms.Options{})
	writer := redislayer.NewRedisFrameCache(client, opts)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { writer.Run(ctx, h); close(done) }()
	defer func() { stop(); <-done }()

	pub, err := h.NewPublisher(frames.Stream{Room: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	pub.Send(scFrame(t, 1))
	exists := func() int64 {
		n, err := direct.Exists(context.Background(), "t3:last:cam").Result()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	testenv.WaitFor(t, 2*time.Second, "the frame cached", func() error {
		if exists() != 1 {
			return errors.New("not cached yet")
		}
		return nil
	})

	px.Cut()
	pub.Close()
	before := failures.Load()
	testenv.WaitFor(t, 2*time.Second, "a write round to fail", func() error {
		if failures.Load() <= before {
			return errors.New("no failed write yet")
		}
		return nil
	})
	if exists() != 1 {
		t.Fatal("the key was deleted while the proxy was cut: the test proves nothing")
	}
	px.Restore()
	testenv.WaitFor(t, 2*time.Second, "the cached frame deleted after Redis came back", func() error {
		if exists() != 0 {
			return errors.New("still cached")
		}
		return nil
	})
}
