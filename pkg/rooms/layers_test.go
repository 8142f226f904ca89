package rooms_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

func TestPickLayer(t *testing.T) {
	l := []frames.LayerInfo{li(0, 1280, 720), li(1, 640, 360), li(2, 320, 180)}
	for _, c := range []struct{ width, want int }{
		{0, 0}, {-5, 0}, {1, 2}, {320, 2}, {321, 1}, {640, 1}, {641, 0}, {1280, 0}, {5000, 0},
	} {
		if got := rooms.PickLayer(l, c.width); got != c.want {
			t.Errorf("PickLayer(width %d) = %d, want %d", c.width, got, c.want)
		}
	}
	// Layers listed in any order, and one of unknown width.
	odd := []frames.LayerInfo{li(0, 0, 0), li(1, 320, 240), li(3, 800, 600)}
	if got := rooms.PickLayer(odd, 400); got != 3 {
		t.Errorf("PickLayer(odd, 400) = %d, want 3", got)
	}
	if got := rooms.PickLayer(odd, 1000); got != 3 {
		t.Errorf("PickLayer(odd, 1000) = %d, want the widest, 3", got)
	}
	if got := rooms.PickLayer(nil, 100); got != 0 {
		t.Errorf("PickLayer(nil) = %d", got)
	}
	if got := rooms.BySize(odd); !slices.Equal(got, []frames.LayerInfo{li(3, 800, 600), li(1, 320, 240), li(0, 0, 0)}) {
		t.Errorf("BySize = %v", got)
	}
}

func layerFrame(t testing.TB, layer, w, h int, seq uint64) *frames.Frame {
	t.Helper()
	f, err := frames.ParseBinary(frames.AppendLayered(nil, "", layer, w, h, seq, epoch, testJPEG), 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// catalog is a LayerCatalog answering from a map, standing in for another
// replica's list in Redis (pkg/redislayer tests the Redis one).
type catalog map[string][]frames.LayerInfo

func (c catalog) Layers(ctx context.Context, room string) ([]frames.LayerInfo, error) {
	if room == "broken" {
		return nil, errors.New("catalog down")
	}
	return c[room], nil
}

func (c catalog) LayersOf(ctx context.Context, rooms []string) (map[string][]frames.LayerInfo, error) {
	out := map[string][]frames.LayerInfo{}
	for _, room := range rooms {
		l, err := c.Layers(ctx, room)
		if err != nil {
			return nil, err
		}
		if len(l) > 0 {
			out[room] = l
		}
	}
	return out, nil
}

// remoteLayers are the layers of a room published on another replica.
var remoteLayers = []frames.LayerInfo{li(0, 1920, 1080), li(1, 480, 270)}

func TestLayersOfAPublishedRoom(t *testing.T) {
	h, _ := newMemoryHub(t, rooms.Options{Catalog: catalog{"remote": remoteLayers}})
	ctx := context.Background()
	var pubs []*rooms.Publisher
	for i, w := range []int{1280, 640, 320} {
		p, err := h.NewPublisher(frames.Stream{Room: "cam", Layer: i})
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, p)
		p.Send(layerFrame(t, i, w, w*9/16, 1))
	}
	want := []frames.LayerInfo{li(0, 1280, 720), li(1, 640, 360), li(2, 320, 180)}
	if got, err := h.Layers(ctx, "cam", frames.CodecJPEG); err != nil || !slices.Equal(got, want) {
		t.Fatalf("Layers = %v, want %v", got, want)
	}
	if got := h.Latest(frames.Stream{Room: "cam", Layer: 2}); got == nil || got.Layer != 2 || got.Room != "cam" {
		t.Fatalf("Latest of layer 2: %+v", got)
	}
	// The room's summary counts its layers as one room.
	sum := rooms.Summarize(h.Streams())
	if len(sum) != 1 || sum[0].Name != "cam" || sum[0].Publishers != 1 || !sum[0].Live {
		t.Fatalf("Summarize = %+v", sum)
	}
	pubs[2].Close()
	if got, _ := h.Layers(ctx, "cam", frames.CodecJPEG); !slices.Equal(got, want[:2]) {
		t.Fatalf("after layer 2's publisher left: %v", got)
	}
	// A room published elsewhere: the catalog; a broken catalog or an
	// unknown room: the main layer alone, and for the broken one the
	// catalog's error, so that a caller who knew better keeps its list.
	if got, _ := h.Layers(ctx, "remote", frames.CodecJPEG); len(got) != 2 || got[1].Width != 480 {
		t.Fatalf("remote: %v", got)
	}
	for _, room := range []string{"broken", "nobody"} {
		got, err := h.Layers(ctx, room, frames.CodecJPEG)
		if !slices.Equal(got, []frames.LayerInfo{{}}) || (err != nil) != (room == "broken") {
			t.Fatalf("%s: %v, %v", room, got, err)
		}
	}

	// Many rooms at once: the local ones from the hub, the others from
	// the catalog, nobody's left out; a broken catalog is an error, not
	// an answer that leaves its rooms out.
	all, err := h.AllLayersOf(ctx, []string{"cam", "remote", "nobody"})
	if err != nil || len(all) != 2 || !slices.Equal(all["cam"], want[:2]) || !slices.Equal(all["remote"], remoteLayers) {
		t.Fatalf("AllLayersOf = %v, %v", all, err)
	}
	if all, err := h.AllLayersOf(ctx, []string{"cam", "broken"}); err == nil || all != nil {
		t.Fatalf("AllLayersOf with a broken catalog = %v, %v; want an error", all, err)
	}
}

func TestLayerStreamsAreSeparateChannels(t *testing.T) {
	h, _ := newMemoryHub(t, rooms.Options{})
	main := join(t, h, st("cam"))
	small := join(t, h, frames.Stream{Room: "cam", Layer: 2})
	p0, _ := h.NewPublisher(st("cam"))
	p2, _ := h.NewPublisher(frames.Stream{Room: "cam", Layer: 2})
	p0.Send(layerFrame(t, 0, 1280, 720, 7))
	p2.Send(layerFrame(t, 2, 320, 180, 7))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f, err := main.Next(ctx)
	// The main layer travels as version 1, which has no size: a v2 form
	// built from it reads the size from the JPEG.
	if err != nil || f.Layer != 0 || f.Width != 0 {
		t.Fatalf("main viewer got %+v, %v", f, err)
	}
	g, err := small.Next(ctx)
	if err != nil || g.Layer != 2 || g.Width != 320 || g.Room != "cam" {
		t.Fatalf("layer-2 viewer got %+v, %v", g, err)
	}
	// What travelled: version 1 on the main layer, version 2 naming the
	// room on the others.
	if b := f.Binary(); b[0] != frames.Version {
		t.Fatalf("main layer message version %d", b[0])
	}
	if lb, err := frames.ParseLayerBlock(g.BinaryV2()); err != nil || lb.Room != "cam" || lb.Layer != 2 {
		t.Fatalf("layer-2 message: %+v, %v", lb, err)
	}
	// Offline is per layer.
	p2.Close()
	off, err := small.Next(ctx)
	if err != nil || !off.IsOffline() || off.Layer != 2 {
		t.Fatalf("after layer 2's publisher left: %+v, %v", off, err)
	}
	if main.Pending() {
		t.Fatal("the main layer's viewer got something when layer 2 went offline")
	}
}

func li(index, w, h int) frames.LayerInfo { return frames.LayerInfo{Index: index, Width: w, Height: h} }
