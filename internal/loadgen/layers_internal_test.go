package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

func TestParseLayers(t *testing.T) {
	got, err := ParseLayers("1280x720:60000, 640x360:20000,320x180:6000")
	if err != nil {
		t.Fatal(err)
	}
	want := []Layer{{1280, 720, 60000}, {640, 360, 20000}, {320, 180, 6000}}
	if len(got) != len(want) {
		t.Fatalf("ParseLayers = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("ParseLayers = %v, want %v", got, want)
		}
	}
	if l, err := ParseLayers(""); err != nil || l != nil {
		t.Fatalf("ParseLayers(\"\") = %v, %v; want none", l, err)
	}
	for _, bad := range []string{"1280", "1280x720", "1280x720:", "1280:60000", "1280x720:6e4", "1280x720:60000x", "a,b", "640x360:1000,"} {
		if _, err := ParseLayers(bad); err == nil || !strings.Contains(err.Error(), "WIDTHxHEIGHT:BYTES") {
			t.Errorf("ParseLayers(%q) = %v, want an error showing the form", bad, err)
		}
	}
}

func TestValidateLayers(t *testing.T) {
	for _, tt := range []struct {
		layers []Layer
		want   string
	}{
		{[]Layer{{1280, 720, 60000}, {640, 360, 20000}}, ""},
		{[]Layer{{1, 1, 50}, {2, 2, 50}, {3, 3, 50}, {4, 4, 50}, {5, 5, 50}}, "at most 4"},
		{[]Layer{{640, 360, 4}}, "below 5"},
		{[]Layer{{1280, 720, 6000}, {640, 360, 20}}, "below 23"},
		{[]Layer{{0, 360, 1000}}, "1-65535"},
		{[]Layer{{640, 70000, 1000}}, "1-65535"},
	} {
		c := Config{Gateways: []string{"ws://127.0.0.1:1"}, Layers: tt.layers}.WithDefaults()
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v", tt.layers, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: error %v, want %q", tt.layers, err, tt.want)
		}
		if tt.want == "" && c.Size != tt.layers[0].Size {
			t.Errorf("Size %d, want the main layer's %d", c.Size, tt.layers[0].Size)
		}
	}
}

// TestLayeredPublisher runs the layered publisher against a real WebSocket
// server: each picture arrives as one version-2 message per layer, layers
// in order, all with the picture's sequence number and capture time, each
// with its advertised size and payload bytes.
func TestLayeredPublisher(t *testing.T) {
	var mu sync.Mutex
	var got [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		for {
			_, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			mu.Lock()
			got = append(got, b)
			mu.Unlock()
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	layers := []Layer{{1280, 720, 6000}, {640, 360, 2000}, {320, 180, 600}}
	var payloads [][]byte
	for i, l := range layers {
		p, err := MakeJPEG(l.Size, uint64(i+1))
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, p)
	}
	room := &roomState{name: "bench"}
	p := newLayeredPublisher(conn, room, layers, payloads, 100)
	start := time.Now()
	p.run(ctx, start, start.Add(300*time.Millisecond))
	if p.err != nil {
		t.Fatal(p.err)
	}
	want := int(p.sentTotal) * len(layers)
	testenv.WaitFor(t, 10*time.Second, "every message at the server", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < want {
			return fmt.Errorf("server got %d messages, want %d", len(got), want)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if p.sentTotal < 5 || len(got) != want {
		t.Fatalf("%d pictures sent, %d messages received", p.sentTotal, len(got))
	}
	for i, b := range got {
		f, err := frames.ParseBinary(b, 0, time.Time{}, 0)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		l, first := i%len(layers), got[i-i%len(layers)]
		f0, _ := frames.ParseBinary(first, 0, time.Time{}, 0)
		switch {
		case b[0] != frames.VersionLayered || f.Layer != l || f.Room != "bench":
			t.Fatalf("message %d: version %d layer %d room %q, want 2, %d, bench", i, b[0], f.Layer, f.Room, l)
		case f.Width != layers[l].Width || f.Height != layers[l].Height || len(f.Payload) != layers[l].Size:
			t.Fatalf("message %d: %d×%d, %d bytes; want %+v", i, f.Width, f.Height, len(f.Payload), layers[l])
		case f.Seq != uint64(i/len(layers)+1) || !f.Captured.Equal(f0.Captured):
			t.Fatalf("message %d: seq %d at %v; layer 0 of its picture: seq %d at %v", i, f.Seq, f.Captured, f0.Seq, f0.Captured)
		}
	}
}
