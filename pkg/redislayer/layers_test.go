package redislayer_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

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
