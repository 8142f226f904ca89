package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// Helpers of the layer tests, prefixed "ly".

// lyWidths are the test publisher's layers: 16:9 pictures.
var lyWidths = []int{1280, 640, 320}

// lyPictures encodes the layers of n distinct pictures once (a 1280-pixel
// JPEG takes a while under -race), each layer padded to size[i] bytes
// (0: as encoded).
func lyPictures(t testing.TB, n int, size []int) [][][]byte {
	t.Helper()
	pics := make([][][]byte, n)
	for p := range pics {
		for i, w := range lyWidths {
			s := 0
			if size != nil {
				s = size[i]
			}
			pics[p] = append(pics[p], testenv.JPEG(t, w, w*9/16, p*13, s))
		}
	}
	return pics
}

// lyPublisher sends every layer of a picture per period, as version-2
// messages numbered 1, 2, 3..., until the test ends.
type lyPublisher struct {
	seq  atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func lyPublish(t testing.TB, url, room string, every time.Duration, pics [][][]byte) *lyPublisher {
	t.Helper()
	return lyPublishWith(t, url, nil, room, every, pics)
}

// lyPublishWith is lyPublish with request headers (a publish token).
func lyPublishWith(t testing.TB, url string, hdr http.Header, room string, every time.Duration, pics [][][]byte) *lyPublisher {
	t.Helper()
	c := testenv.Dial(t, url, hdr)
	c.ReadUntilClosed()
	p := &lyPublisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var msg []byte
		for seq := uint64(1); ; seq++ {
			pic := pics[int(seq)%len(pics)]
			now := time.Now()
			for i, jpg := range pic {
				msg = frames.AppendLayered(msg[:0], room, i, lyWidths[i], lyWidths[i]*9/16, seq, now, jpg)
				if err := c.SendBinary(msg); err != nil {
					return
				}
			}
			p.seq.Store(seq)
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { close(p.stop); <-p.done })
	return p
}

// lyMsg is one message a v=2 viewer received: a control message (Type
// set) or a frame (Frame set, with its layer block).
type lyMsg struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	Layer  int    `json:"layer"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Reason string `json:"reason"`
	Layers []frames.LayerInfo

	Frame *frames.Frame
	Block frames.LayerBlock
	At    time.Time
	Size  int // bytes of the message
}

// lyRead reads one message of a v=2 connection within timeout.
func lyRead(c *testenv.Client, timeout time.Duration) (lyMsg, error) {
	typ, b, err := c.ReadMessage(timeout)
	if err != nil {
		return lyMsg{}, err
	}
	m := lyMsg{At: time.Now(), Size: len(b)}
	if typ == websocket.MessageText {
		err := json.Unmarshal(b, &m)
		if err == nil && m.Type == "" {
			err = fmt.Errorf("control message without a type: %s", b)
		}
		return m, err
	}
	if m.Block, err = frames.ParseLayerBlock(b); err != nil {
		return m, err
	}
	m.Frame, err = frames.ParseBinary(b, 0, time.Time{}, 0)
	return m, err
}

// lyUntil reads until a message satisfies ok, within timeout; frames and
// control messages before it are passed to seen (may be nil).
func lyUntil(t testing.TB, c *testenv.Client, timeout time.Duration, what string, ok func(lyMsg) bool) lyMsg {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		m, err := lyRead(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(m) {
			return m
		}
	}
}

// lyImageWidth decodes a JPEG's header and returns its width.
func lyImageWidth(t testing.TB, jpg []byte) int {
	t.Helper()
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(jpg))
	if err != nil {
		t.Fatalf("frame is not a decodable JPEG: %v", err)
	}
	return cfg.Width
}

// lyV2 is the query of a v=2 viewer.
func lyV2(extra string) string { return "role=view&format=binary&v=2&" + extra }

// lyWaitLayers waits until base's /api/rooms lists room's 3 layers.
func lyWaitLayers(t testing.TB, base, room string) {
	t.Helper()
	testenv.WaitFor(t, 15*time.Second, room+"'s layers on "+base, func() error {
		r, err := soRoom(base, room)
		if err != nil {
			return err
		}
		if len(r.Layers) != len(lyWidths) {
			return fmt.Errorf("layers %+v", r.Layers)
		}
		return nil
	})
}

// TestLayersAcrossReplicas: a publisher sends 3 layers of real JPEGs on
// replica A; viewers on replica B asking for each width get JPEGs that
// decode at the width the rule picks, in version-2 messages naming the
// room and the layer; version-1 and JSON viewers without parameters get
// the main layer, as before.
func TestLayersAcrossReplicas(t *testing.T) {
	r := testenv.StartRedis(t)
	a := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	b := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	lyPublish(t, soWS(a.URL(), "cam", "role=publish"), "cam", 50*time.Millisecond, lyPictures(t, 3, nil))
	lyWaitLayers(t, b.URL(), "cam")

	for _, tc := range []struct {
		query        string
		layer, width int
	}{
		{"width=1280", 0, 1280},
		{"width=600", 1, 640},
		{"width=320", 2, 320},
		{"width=100", 2, 320},
		{"width=5000", 0, 1280},
		{"layer=2", 2, 320},
		{"layer=1", 1, 640},
		{"", 0, 1280},
	} {
		t.Run(tc.query, func(t *testing.T) {
			c := testenv.Dial(t, soWS(b.URL(), "cam", lyV2(tc.query)), nil)
			layers := lyUntil(t, c, 10*time.Second, "layers", func(m lyMsg) bool { return m.Type == "layers" })
			if len(layers.Layers) != 3 || layers.Room != "cam" {
				t.Fatalf("layers message %+v", layers)
			}
			l := lyUntil(t, c, 10*time.Second, "layer", func(m lyMsg) bool { return m.Type == "layer" })
			if l.Layer != tc.layer || l.Width != tc.width || l.Reason != "asked" || l.Room != "cam" {
				t.Fatalf("layer message %+v, want layer %d, width %d, reason asked", l, tc.layer, tc.width)
			}
			for range 3 {
				m := lyUntil(t, c, 10*time.Second, "a frame", func(m lyMsg) bool { return m.Frame != nil && !m.Frame.IsOffline() })
				if m.Block.Room != "cam" || m.Block.Layer != tc.layer || m.Block.Width != tc.width {
					t.Fatalf("layer block %+v, want room cam, layer %d, width %d", m.Block, tc.layer, tc.width)
				}
				if w := lyImageWidth(t, m.Frame.Payload); w != tc.width {
					t.Fatalf("JPEG %d pixels wide, want %d", w, tc.width)
				}
			}
		})
	}
	for _, q := range []string{"role=view&format=binary", "role=view&format=json", ""} {
		c := testenv.Dial(t, soWS(b.URL(), "cam", q), nil)
		for range 3 {
			f, err := c.ReadFrame(10 * time.Second)
			if err != nil {
				t.Fatalf("%q viewer: %v", q, err)
			}
			if w := lyImageWidth(t, f.Payload); w != 1280 {
				t.Fatalf("%q viewer got a %d-pixel JPEG, want the main layer's 1280", q, w)
			}
		}
	}
	// Layer choice works with the older formats too, without telling.
	c := testenv.Dial(t, soWS(b.URL(), "cam", "role=view&format=json&width=320"), nil)
	f, err := c.ReadFrame(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if w := lyImageWidth(t, f.Payload); w != 320 {
		t.Fatalf("json width=320 viewer got a %d-pixel JPEG", w)
	}
}

// TestSelectChangesLayer: a select moves a v=2 viewer to another layer
// without reconnecting; sequence numbers never go backwards across the
// switch, and the `layer` message comes before the new layer's frames.
func TestSelectChangesLayer(t *testing.T) {
	_, ts := startInProcess(t, nil)
	lyPublish(t, wsURL(ts.URL, "sel", "role=publish"), "", 20*time.Millisecond, lyPictures(t, 2, nil))
	lyWaitLayers(t, ts.URL, "sel")
	c := testenv.Dial(t, wsURL(ts.URL, "sel", lyV2("width=1280")), nil)
	lyUntil(t, c, 10*time.Second, "a main-layer frame", func(m lyMsg) bool { return m.Frame != nil && m.Block.Layer == 0 })

	var last uint64
	layer := 0
	var history []string
	for i, want := range []struct {
		msg   string
		layer int
	}{
		{`{"type":"select","width":320}`, 2},
		{`{"type":"select","layer":1}`, 1},
		{`{"type":"select","room":"sel","width":2000}`, 0},
		{`{"type":"select","layer":2}`, 2},
	} {
		if err := c.SendText(want.msg); err != nil {
			t.Fatal(err)
		}
		sawLayer := false
		deadline := time.Now().Add(10 * time.Second)
		for n := 0; n < 10; {
			m, err := lyRead(c, time.Until(deadline))
			if err != nil {
				t.Fatalf("select %d: %v", i, err)
			}
			if m.Frame != nil {
				history = append(history, fmt.Sprintf("L%d#%d", m.Block.Layer, m.Frame.Seq))
			} else {
				history = append(history, fmt.Sprintf("%s:%d", m.Type, m.Layer))
			}
			switch {
			case m.Type == "layer":
				if m.Layer != want.layer || m.Reason != "asked" {
					t.Fatalf("select %s: layer message %+v", want.msg, m)
				}
				sawLayer, layer = true, m.Layer
			case m.Frame != nil:
				if m.Frame.Seq <= last {
					t.Fatalf("frame %d after frame %d: went backwards; history %v", m.Frame.Seq, last, history[max(0, len(history)-12):])
				}
				last = m.Frame.Seq
				if m.Block.Layer != layer {
					t.Fatalf("frame of layer %d while on layer %d (layer message seen: %v)", m.Block.Layer, layer, sawLayer)
				}
				if sawLayer {
					if w := lyImageWidth(t, m.Frame.Payload); w != lyWidths[want.layer] {
						t.Fatalf("frame %d pixels wide on layer %d", w, want.layer)
					}
					n++
				}
			}
		}
	}
}

// TestLayerQueryErrors: bad layer parameters are refused before the
// upgrade, each with a reason that says what is wrong.
func TestLayerQueryErrors(t *testing.T) {
	_, ts := startInProcess(t, nil)
	for _, tc := range []struct{ path, want string }{
		{"/ws/video/r/?role=view&width=abc", "width must be a whole number"},
		{"/ws/video/r/?role=view&width=0", "width must be a whole number"},
		{"/ws/video/r/?role=view&width=70000", "width must be a whole number"},
		{"/ws/video/r/?role=view&layer=4", "layer must be a layer index from 0 to 3"},
		{"/ws/video/r/?role=view&layer=-1", "layer must be a layer index"},
		{"/ws/video/r/?role=view&width=320&layer=1", "give width or layer, not both"},
		{"/ws/video/r/?role=view&v=3&format=binary", "v must be 1 or 2"},
		{"/ws/video/r/?role=view&v=2", "v=2 needs role=view and format=binary"},
		{"/ws/video/r/?role=view&v=2&format=json", "v=2 needs role=view and format=binary"},
		{"/ws/video/r/?v=2&format=binary", "v=2 needs role=view and format=binary"},
		{"/ws/video/r/?role=view&adapt=yes", "adapt must be 0 or 1"},
		{"/ws/video/r/?role=publish&width=320", "width, layer and adapt are for viewers"},
		{"/ws/multi/?rooms=a,b-c", `rooms: item 2 is not a room name`},
		{"/ws/multi/?role=publish", "role must be view"},
		{"/ws/multi/?format=json", "format must be binary"},
		{"/ws/multi/?v=1", "v must be 2"},
		{"/ws/multi/?width=x", "width must be a whole number"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			_, status, body, err := testenv.TryDial(t, "ws"+strings.TrimPrefix(ts.URL, "http")+tc.path, nil)
			if err == nil || status != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d, body %q, err %v; want 400 with %q", status, body, err, tc.want)
			}
		})
	}
}

// lySend writes a control message, failing the test if it cannot.
func lySend(t testing.TB, c *testenv.Client, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("failed to send %s: %v", msg, err)
	}
}
