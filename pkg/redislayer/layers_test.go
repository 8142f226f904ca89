package redislayer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

// TestLayerCatalog: the replica that publishes a room's layers lists them
// in Redis, another replica's hub reads the list, and it goes when the
// publishers do.
func TestLayerCatalog(t *testing.T) {
	r := testenv.StartRedis(t)
	client := scClient(t, r)
	ctx := context.Background()
	var cacheErrs []string
	opts := redislayer.FrameCacheOptions{KeyPrefix: "t3:", Interval: 100 * time.Millisecond, TTL: 2 * time.Second,
		Logger: slog.New(slog.DiscardHandler)}
	ha := scHub(t, rooms.Options{})
	writer := redislayer.NewRedisFrameCache(client, opts)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { writer.Run(runCtx, ha); close(done) }()
	defer func() { stop(); <-done }()

	readerOpts := opts
	readerOpts.OnError = func(op string, err error) { cacheErrs = append(cacheErrs, err.Error()) }
	reader := redislayer.NewRedisFrameCache(scClient(t, r), readerOpts)
	hb := scHub(t, rooms.Options{Catalog: reader})

	var pubs []*rooms.Publisher
	want := []frames.LayerInfo{{Index: 0, Width: 1280, Height: 720}, {Index: 1, Width: 640, Height: 360}, {Index: 2, Width: 320, Height: 180}}
	for _, l := range want {
		p, err := ha.NewPublisher(frames.Stream{Room: "cam", Layer: l.Index})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pubs = append(pubs, p)
		f, err := frames.ParseBinary(frames.AppendLayered(nil, "cam", l.Index, l.Width, l.Height, 1, time.Now(), scJPEG), 0, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		p.Send(f)
	}
	testenv.WaitFor(t, 3*time.Second, "replica B to learn cam's layers", func() error {
		if got, _ := hb.Layers(ctx, "cam", frames.CodecJPEG); !slices.Equal(got, want) {
			return fmt.Errorf("layers %v", got)
		}
		return nil
	})
	// Layer 1's newest frame is cached under its stream's name too.
	testenv.WaitFor(t, 3*time.Second, "layer 1's frame cached", func() error {
		f, err := reader.Latest(ctx, frames.Stream{Room: "cam", Layer: 1})
		if err != nil || f == nil || f.Width != 640 || f.Layer != 1 || f.Room != "cam" {
			return fmt.Errorf("cached layer-1 frame: %+v, %v", f, err)
		}
		return nil
	})
	for _, p := range pubs {
		p.Close()
	}
	testenv.WaitFor(t, 3*time.Second, "the layer list deleted", func() error {
		if n, _ := client.Exists(ctx, writer.LayersKey("cam")).Result(); n != 0 {
			return fmt.Errorf("still listed")
		}
		return nil
	})

	// A list that is not what a replica writes is ignored, and reported.
	for i, bad := range []string{`nope`, `[]`, `[{"layer":0},{"layer":0}]`, `[{"layer":7,"width":10}]`, `[{"layer":0,"width":-1}]`} {
		room := fmt.Sprintf("bad%d", i)
		if err := client.Set(ctx, writer.LayersKey(room), bad, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if l, err := reader.Layers(ctx, room); err != nil || l != nil {
			t.Errorf("list %s: %v, %v; want none", bad, l, err)
		}
	}
	if len(cacheErrs) != 5 {
		t.Errorf("bad lists reported %d times, want 5: %q", len(cacheErrs), cacheErrs)
	}
}

// TestLayersOfManyRooms: the layer lists of many rooms are read in one
// pipelined round trip, not a GET each (the recorder asks for every live
// room each second); rooms nobody publishes, and a list no replica would
// write, are left out; a second call within Interval asks Redis nothing.
func TestLayersOfManyRooms(t *testing.T) {
	r := testenv.StartRedis(t)
	client := scClient(t, r)
	ctx := context.Background()
	opts := redislayer.FrameCacheOptions{KeyPrefix: "t4:", Interval: time.Minute, TTL: time.Minute,
		Logger: slog.New(slog.DiscardHandler), OnError: func(string, error) {}}
	writer := redislayer.NewRedisFrameCache(client, opts)
	const n = 200
	var names []string
	want := map[string][]frames.LayerInfo{}
	for i := range n {
		room := fmt.Sprintf("cam%d", i)
		names = append(names, room)
		switch i % 4 {
		case 0: // nobody publishes it
		case 1:
			if err := client.Set(ctx, writer.LayersKey(room), `nope`, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
		default:
			l := []frames.LayerInfo{{Index: 0, Width: 640 + i, Height: 360}}
			if i%4 == 3 {
				l = append(l, frames.LayerInfo{Index: 0, Codec: frames.CodecH264, Width: 1280, Height: 720})
			}
			b, _ := json.Marshal(l)
			if err := client.Set(ctx, writer.LayersKey(room), b, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			want[room] = l
		}
	}

	readClient := scClient(t, r)
	var calls calls
	readClient.AddHook(&calls)
	c0, p0 := calls.counts()
	reader := redislayer.NewRedisFrameCache(readClient, opts)
	got, err := reader.LayersOf(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("%d rooms listed, want %d", len(got), len(want))
	}
	for room, l := range want {
		if !slices.Equal(got[room], l) {
			t.Errorf("%s: %v, want %v", room, got[room], l)
		}
	}
	if c, p := calls.counts(); c != c0 || p != p0+1 {
		t.Errorf("%d rooms read with %d commands and %d pipelines, want one pipeline", n, c-c0, p-p0)
	}
	if again, err := reader.LayersOf(ctx, names); err != nil || len(again) != len(want) {
		t.Errorf("again: %d rooms, %v", len(again), err)
	}
	if c, p := calls.counts(); c != c0 || p != p0+1 {
		t.Errorf("a second call within Interval went to Redis: %d commands, %d pipelines in all", c-c0, p-p0)
	}

	// Redis gone: a clear error, not an empty answer.
	r.Kill()
	fresh := redislayer.NewRedisFrameCache(readClient, opts)
	if m, err := fresh.LayersOf(ctx, names[:3]); err == nil || m != nil {
		t.Errorf("with Redis down: %v, %v; want an error", m, err)
	}
}

// calls counts the GETs a go-redis client sends on their own, and the
// pipelines with GETs in them (a connection's handshake is neither).
type calls struct {
	mu          sync.Mutex
	cmds, pipes int
}

func (c *calls) counts() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cmds, c.pipes
}

func (c *calls) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *calls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "get" {
			c.mu.Lock()
			c.cmds++
			c.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (c *calls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, func(cmd redis.Cmder) bool { return cmd.Name() == "get" }) {
			c.mu.Lock()
			c.pipes++
			c.mu.Unlock()
		}
		return next(ctx, cmds)
	}
}
