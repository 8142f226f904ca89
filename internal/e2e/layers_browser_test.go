package e2e_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/internal/testenv/gatewaytest"
	"github.com/framecast/framecast/pkg/frames"
)

// Browser tests of quality layers (issue 13): the viewer page choosing its
// layer, and the camera wall (/grid/) on one multi-room WebSocket. The
// gateway runs in this test process, so the tests can ask its hub which
// layer's stream each viewer is on. Helpers are prefixed "lb".

const lbWait = 15 * time.Second // -race builds of Chromium's peer on a shared machine

// lbSecret signs the tokens of the authorization test.
const lbSecret = "framecast-e2e-secret-0123456789abcdefghij"

// lbGateway runs a gateway on the in-process channel layer in this test
// process, changed by mutate.
func lbGateway(t *testing.T, mutate func(*gateway.Config)) (*gateway.Server, string) {
	t.Helper()
	g := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.WriteTimeout, c.MaxRooms, c.Auth = 5*time.Second, 200, "off"
		c.PublishRate, c.PublishBurst, c.RoomRate, c.RoomBurst = 60, 30, 120, 60
		c.MaxConnections, c.MaxConnectionsPerIP, c.MessageTimeout = 1000, 500, 10*time.Second
		if mutate != nil {
			mutate(c)
		}
	}})
	return g.Server, g.URL()
}

// lbPublish publishes layers to room on the gateway at base, with a
// publish token in the Authorization header when token is not empty.
func lbPublish(t *testing.T, base, room, token string, every time.Duration, layers []testenv.TestLayer) *testenv.Publisher {
	t.Helper()
	var hdr http.Header
	if token != "" {
		hdr = http.Header{"Authorization": {"Bearer " + token}}
	}
	c := testenv.Dial(t, "ws"+strings.TrimPrefix(base, "http")+"/ws/video/"+room+"/?role=publish", hdr)
	c.ReadUntilClosed()
	return c.PublishLayers(t, every, layers)
}

// lbViewersOn returns how many local viewers the hub has on each of
// room's layers: what the gateway sends, by layer.
func lbViewersOn(srv *gateway.Server, room string) map[int]int {
	out := map[int]int{}
	for _, r := range srv.Hub().Streams() {
		if r.Stream.Room == room && r.Stream.Codec == frames.CodecJPEG && r.Viewers > 0 {
			out[r.Stream.Layer] = r.Viewers
		}
	}
	return out
}

// lbViewer is the viewer page's window.framecast, and the overlay.
type lbViewer struct {
	State        string  `json:"state"`
	Drawn        int     `json:"drawn"`
	Width        int     `json:"width"`
	AskedWidth   int     `json:"askedWidth"`
	Wanted       int     `json:"wanted"` // FramecastWire.wantedWidth of the canvas now
	Selects      int     `json:"selects"`
	Layer        *int    `json:"layer"`
	LayerWidth   int     `json:"layerWidth"`
	LayerHeight  int     `json:"layerHeight"`
	GatewayLayer *lbSaid `json:"gatewayLayer"`
	Bytes        int     `json:"bytes"`
	Overlay      string  `json:"overlay"`
}

// lbSaid is a `layer` message from the gateway.
type lbSaid struct {
	Layer  int    `json:"layer"`
	Width  int    `json:"width"`
	Reason string `json:"reason"`
}

func (v lbViewer) String() string {
	layer, said := "none", "nothing"
	if v.Layer != nil {
		layer = strconv.Itoa(*v.Layer)
	}
	if v.GatewayLayer != nil {
		said = fmt.Sprintf("layer %d (%d wide, %s)", v.GatewayLayer.Layer, v.GatewayLayer.Width, v.GatewayLayer.Reason)
	}
	return fmt.Sprintf("state=%s drawn=%d size=%d asked=%d wanted=%d selects=%d layer=%s %dx%d gateway said %s bytes=%d overlay=%q",
		v.State, v.Drawn, v.Width, v.AskedWidth, v.Wanted, v.Selects, layer, v.LayerWidth, v.LayerHeight, said, v.Bytes, v.Overlay)
}

const lbViewerJS = `(() => {
	const f = window.framecast || {};
	return {
		state: f.state || "", drawn: f.drawn || 0, width: f.width || 0,
		askedWidth: f.askedWidth || 0, selects: f.selects || 0,
		wanted: window.FramecastWire.wantedWidth(document.getElementById("screen")),
		layer: f.layer === undefined ? null : f.layer, layerWidth: f.layerWidth || 0, layerHeight: f.layerHeight || 0,
		gatewayLayer: f.gatewayLayer || null, bytes: f.bytes || 0,
		overlay: document.getElementById("overlay").textContent,
	};
})()`

// lbOverlay matches the viewer's overlay and captures the layer shown and
// the kB/s, whichever the codec.
var lbOverlay = regexp.MustCompile(`^fps \d+ · latency (?:\d+ ms|–) · skipped \d+ · (?:jpeg|h264) · layer (\d+) (\d+)×(\d+) · ([\d.]+) kB/s$`)

// lbWaitViewer polls the viewer page until cond accepts it.
func lbWaitViewer(t *testing.T, page *browser, what string, cond func(lbViewer) error) lbViewer {
	t.Helper()
	var got lbViewer
	testenv.WaitFor(t, lbWait, what, func() error {
		v, err := evaluate[lbViewer](page, lbViewerJS)
		if err != nil {
			return fmt.Errorf("failed to read the page: %w", err)
		}
		if err := cond(v); err != nil {
			return fmt.Errorf("%w; page: %s", err, v)
		}
		got = v
		return nil
	})
	return got
}

// lbResize sets the page's viewport, as a window resize does (resize
// events included).
func lbResize(t *testing.T, page *browser, w, h int64, scale float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(page.Ctx, 5*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(w, h, chromedp.EmulateScale(scale))); err != nil {
		t.Fatalf("failed to resize the viewport to %dx%d: %v", w, h, err)
	}
}

// lbOn returns a viewer condition: the page shows layer (width × height)
// in its overlay, the frames say so, the gateway said so, and the hub has
// this one viewer on that layer's stream and none on the others.
func lbOn(srv *gateway.Server, room string, layer, width, height int) func(lbViewer) error {
	return func(v lbViewer) error {
		m := lbOverlay.FindStringSubmatch(v.Overlay)
		if m == nil {
			return fmt.Errorf("overlay does not show a layer and kB/s")
		}
		if want := []string{strconv.Itoa(layer), strconv.Itoa(width), strconv.Itoa(height)}; m[1] != want[0] || m[2] != want[1] || m[3] != want[2] {
			return fmt.Errorf("overlay shows layer %s %s×%s, want %d %d×%d", m[1], m[2], m[3], layer, width, height)
		}
		if v.Layer == nil || *v.Layer != layer || v.Width != width {
			return fmt.Errorf("frames are not of layer %d", layer)
		}
		if v.GatewayLayer == nil || v.GatewayLayer.Layer != layer || v.GatewayLayer.Width != width {
			return fmt.Errorf("the gateway's last layer message is not layer %d", layer)
		}
		if on := lbViewersOn(srv, room); len(on) != 1 || on[layer] != 1 {
			return fmt.Errorf("the hub's viewers of %s by layer: %v, want one on layer %d", room, on, layer)
		}
		return nil
	}
}

// TestViewerPageChoosesItsLayer: against a room with layers 1280, 640 and
// 320 pixels wide, the viewer page asks for the width its canvas shows ×
// devicePixelRatio, gets the layer the rule picks (overlay, frames, the
// gateway's layer message and the hub's stream agree), counts a rising
// kB/s, and switches layer without reconnecting when the window is
// resized, or when devicePixelRatio changes.
func TestViewerPageChoosesItsLayer(t *testing.T) {
	testenv.RequireTool(t, "chromium")
	srv, base := lbGateway(t, nil)
	lbPublish(t, base, "cam", "", 100*time.Millisecond, testenv.TestLayers(t, 1280, 640, 320))
	page := startBrowser(t)

	lbResize(t, page, 340, 500, 1) // a phone: the canvas shows ~300 pixels
	page.Navigate(t, base+"/video/cam/")
	first := lbWaitViewer(t, page, "the 320-pixel layer", func(v lbViewer) error {
		if v.AskedWidth != v.Wanted || v.AskedWidth > 320 || v.AskedWidth < 200 {
			return fmt.Errorf("asked for %d pixels, the canvas shows %d", v.AskedWidth, v.Wanted)
		}
		return lbOn(srv, "cam", 2, 320, 180)(v)
	})
	t.Logf("narrow window: %s", first)
	// kB/s: bytes keep coming and the overlay shows a rate above 0.
	lbWaitViewer(t, page, "a rising kB/s", func(v lbViewer) error {
		m := lbOverlay.FindStringSubmatch(v.Overlay)
		if rate, _ := strconv.ParseFloat(m[4], 64); rate <= 0 || v.Bytes <= first.Bytes {
			return fmt.Errorf("bytes %d (were %d), overlay rate %s", v.Bytes, first.Bytes, m[4])
		}
		return nil
	})

	for _, step := range []struct {
		name          string
		w, h          int64
		scale         float64
		layer, lw, lh int
	}{
		{"wide window", 1100, 900, 1, 0, 1280, 720},
		{"medium window", 600, 600, 1, 1, 640, 360},
		{"narrow window on a 2x screen", 340, 500, 2, 1, 640, 360}, // ~300 CSS pixels × 2
		{"narrow window", 340, 500, 1, 2, 320, 180},
	} {
		before, _ := evaluate[lbViewer](page, lbViewerJS)
		lbResize(t, page, step.w, step.h, step.scale)
		got := lbWaitViewer(t, page, step.name, func(v lbViewer) error {
			if v.AskedWidth != v.Wanted || v.Selects <= before.Selects {
				return fmt.Errorf("no select for the canvas's %d pixels (asked %d)", v.Wanted, v.AskedWidth)
			}
			if v.Drawn <= before.Drawn {
				return fmt.Errorf("nothing drawn since the resize")
			}
			return lbOn(srv, "cam", step.layer, step.lw, step.lh)(v)
		})
		t.Logf("%s: %s", step.name, got)
	}
	if v, _ := evaluate[lbViewer](page, lbViewerJS); v.State != "live" {
		t.Errorf("state %q after the resizes, want live", v.State)
	}
	if n, _ := evaluate[int](page, "window.framecast.connects"); n != 1 {
		t.Errorf("the page connected %d times; layer changes must not reconnect", n)
	}
	page.RequireCleanConsole(t)
}

// TestViewerPageOneLayerRoom: a room whose publisher sends version-1
// frames (one layer) plays as before on the v=2 page: layer 0 at the
// publisher's size, whatever the window's size; a resize asks again and
// frames keep coming on the same connection.
func TestViewerPageOneLayerRoom(t *testing.T) {
	testenv.RequireTool(t, "chromium")
	srv, base := lbGateway(t, nil)
	c := testenv.Dial(t, "ws"+strings.TrimPrefix(base, "http")+"/ws/video/solo/?role=publish", nil)
	c.ReadUntilClosed()
	jpg := testenv.JPEG(t, 320, 240, 3, 0)
	c.Publish(t, 100*time.Millisecond, false, func(uint64) []byte { return jpg })
	page := startBrowser(t)
	page.Navigate(t, base+"/video/solo/")
	first := lbWaitViewer(t, page, "layer 0 of a one-layer room", lbOn(srv, "solo", 0, 320, 240))
	lbResize(t, page, 340, 500, 1)
	got := lbWaitViewer(t, page, "frames after a resize", func(v lbViewer) error {
		if v.Selects == 0 || v.Drawn <= first.Drawn+3 {
			return fmt.Errorf("selects %d, drawn %d (was %d)", v.Selects, v.Drawn, first.Drawn)
		}
		return lbOn(srv, "solo", 0, 320, 240)(v)
	})
	t.Logf("one-layer room: %s", got)
	page.RequireCleanConsole(t)
}

// lbTile is one tile of window.framecastGrid, with its DOM's texts.
type lbTile struct {
	State      string `json:"state"`
	Drawn      int    `json:"drawn"`
	FPS        int    `json:"fps"`
	Width      int    `json:"width"`
	AskedWidth int    `json:"askedWidth"`
	Reason     string `json:"reason"`
	Info       string `json:"info"`       // the tile's fps line
	ReasonText string `json:"reasonText"` // the refusal shown in the tile, "" when hidden
	Href       string `json:"href"`
}

type lbGrid struct {
	State    string            `json:"state"`
	Connects int               `json:"connects"`
	Tiles    map[string]lbTile `json:"tiles"`
}

const lbGridJS = `(() => {
	const g = window.framecastGrid || {tiles: {}};
	const tiles = {};
	for (const [room, s] of Object.entries(g.tiles)) {
		const a = document.querySelector('a.tile[data-room="' + room + '"]');
		const reason = a && a.querySelector(".tile-reason");
		tiles[room] = Object.assign({}, s, {
			info: a ? a.querySelector(".tile-info").textContent : "",
			reasonText: reason && !reason.hidden ? reason.textContent : "",
			href: a ? a.getAttribute("href") : "",
		});
	}
	return {state: g.state || "", connects: g.connects || 0, tiles};
})()`

func lbWaitGrid(t *testing.T, page *browser, what string, cond func(lbGrid) error) lbGrid {
	t.Helper()
	var got lbGrid
	testenv.WaitFor(t, lbWait, what, func() error {
		g, err := evaluate[lbGrid](page, lbGridJS)
		if err != nil {
			return fmt.Errorf("failed to read the page: %w", err)
		}
		if err := cond(g); err != nil {
			return fmt.Errorf("%w; tiles: %+v", err, g.Tiles)
		}
		got = g
		return nil
	})
	return got
}

// lbSockets counts the WebSockets the page opens, from the DevTools
// protocol's Network.webSocketCreated events.
type lbSockets struct {
	mu   sync.Mutex
	urls []string
}

func lbWatchSockets(t *testing.T, page *browser) *lbSockets {
	t.Helper()
	s := &lbSockets{}
	if err := chromedp.Listen(page.Ctx, func(ev any) {
		if e, ok := ev.(*network.EventWebSocketCreated); ok {
			s.mu.Lock()
			s.urls = append(s.urls, e.URL)
			s.mu.Unlock()
		}
	}); err != nil {
		t.Fatalf("failed to listen to the page's network events: %v", err)
	}
	return s
}

func (s *lbSockets) URLs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.urls...)
}

// TestGridDrawsTwelveRoomsOverOneSocket: /grid/ shows every live room: 11
// live when the page opens (in the socket's URL) and a 12th that starts
// later (a subscribe message). Every tile draws frames (its counter rises)
// of the smallest layer that fills it, shows its fps, and all of it comes
// over exactly one WebSocket, counted with the DevTools protocol. Clicking
// a tile opens the room's viewer page.
func TestGridDrawsTwelveRoomsOverOneSocket(t *testing.T) {
	testenv.RequireTool(t, "chromium")
	srv, base := lbGateway(t, nil)
	layers := testenv.TestLayers(t, 640, 320)
	var names []string
	for i := range 12 {
		names = append(names, fmt.Sprintf("cam%02d", i))
	}
	for _, room := range names[:11] {
		lbPublish(t, base, room, "", 200*time.Millisecond, layers)
	}
	page := startBrowser(t) // 800×600: 4 columns of ~190 pixels
	sockets := lbWatchSockets(t, page)
	page.Navigate(t, base+"/grid/")
	lbWaitGrid(t, page, "11 live tiles", func(g lbGrid) error {
		if n := len(g.Tiles); n != 11 {
			return fmt.Errorf("%d tiles", n)
		}
		return nil
	})
	lbPublish(t, base, names[11], "", 200*time.Millisecond, layers)

	first := lbWaitGrid(t, page, "12 tiles drawing", func(g lbGrid) error {
		if len(g.Tiles) != 12 {
			return fmt.Errorf("%d tiles, want 12", len(g.Tiles))
		}
		for _, room := range names {
			tile := g.Tiles[room]
			if tile.State != "live" || tile.Drawn == 0 {
				return fmt.Errorf("tile %s is %s with %d frames drawn", room, tile.State, tile.Drawn)
			}
		}
		return nil
	})
	lbWaitGrid(t, page, "every tile's frame counter to rise, fps shown", func(g lbGrid) error {
		for _, room := range names {
			tile := g.Tiles[room]
			if tile.Drawn <= first.Tiles[room].Drawn {
				return fmt.Errorf("tile %s drew nothing more (%d)", room, tile.Drawn)
			}
			if tile.FPS == 0 || !strings.HasPrefix(tile.Info, "fps ") || strings.HasPrefix(tile.Info, "fps 0") {
				return fmt.Errorf("tile %s shows %q (fps %d)", room, tile.Info, tile.FPS)
			}
			// ~190-pixel tiles fit the 320 layer: smallest at least as wide.
			if tile.AskedWidth > 320 || tile.Width != 320 {
				return fmt.Errorf("tile %s asked for %d pixels and gets %d", room, tile.AskedWidth, tile.Width)
			}
			if on := lbViewersOn(srv, room); len(on) != 1 || on[1] != 1 {
				return fmt.Errorf("the hub's viewers of %s by layer: %v, want one on layer 1", room, on)
			}
		}
		return nil
	})
	urls := sockets.URLs()
	if len(urls) != 1 || !strings.Contains(urls[0], "/ws/multi/") {
		t.Fatalf("the grid opened %d WebSockets (%q), want exactly one to /ws/multi/", len(urls), urls)
	}
	t.Logf("12 tiles over one WebSocket: %s", urls[0])
	if path, err := page.Screenshot(artifactDir(t), "grid.png"); err == nil {
		t.Logf("screenshot of the grid: %s", path)
	}
	page.RequireCleanConsole(t)

	ctx, cancel := context.WithTimeout(page.Ctx, 5*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(`a.tile[data-room="cam03"]`)); err != nil {
		t.Fatalf("failed to click a tile: %v", err)
	}
	testenv.WaitFor(t, lbWait, "the tile's viewer page", func() error {
		path, err := evaluate[string](page, "window.location.pathname")
		if err != nil || path != "/video/cam03/" {
			return fmt.Errorf("at %q (%v), want /video/cam03/", path, err)
		}
		return nil
	})
}

// TestGridTokenForOneRoom: with GATEWAY_AUTH=all and a view token for
// camA only, /grid/?rooms=camA,camB&token=… shows camA live and camB
// refused, the gateway's reason in its tile; the one connection carries on.
func TestGridTokenForOneRoom(t *testing.T) {
	testenv.RequireTool(t, "chromium")
	_, base := lbGateway(t, func(c *gateway.Config) {
		c.Auth = "all"
		c.JWTSecret = auth.Secret(lbSecret)
	})
	signer, err := auth.NewHMACSigner([]byte(lbSecret))
	if err != nil {
		t.Fatal(err)
	}
	mint := func(room, role string) string {
		tok, err := signer.Mint(auth.Grant{Room: room, Role: role, TTL: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	layers := testenv.TestLayers(t, 640, 320)
	for _, room := range []string{"camA", "camB"} {
		lbPublish(t, base, room, mint(room, "publish"), 200*time.Millisecond, layers)
	}
	page := startBrowser(t)
	sockets := lbWatchSockets(t, page)
	page.Navigate(t, base+"/grid/?rooms=camA,camB&token="+mint("camA", "view"))
	got := lbWaitGrid(t, page, "camA live, camB refused", func(g lbGrid) error {
		a, b := g.Tiles["camA"], g.Tiles["camB"]
		if a.State != "live" || a.Drawn < 2 {
			return fmt.Errorf("camA is %s with %d frames drawn", a.State, a.Drawn)
		}
		if b.State != "refused" || !strings.Contains(b.ReasonText, "does not grant") || b.Drawn != 0 {
			return fmt.Errorf("camB is %s showing %q with %d frames drawn", b.State, b.ReasonText, b.Drawn)
		}
		return nil
	})
	t.Logf("camB's tile says: %q", got.Tiles["camB"].ReasonText)
	if !strings.Contains(got.Tiles["camA"].Href, "token=") {
		t.Errorf("camA's tile links to %q: the viewer page would lack the token", got.Tiles["camA"].Href)
	}
	if urls := sockets.URLs(); len(urls) != 1 || !strings.Contains(urls[0], "token=") {
		t.Errorf("WebSockets %q: want one, carrying the page's token", urls)
	}
	if got.Connects != 1 {
		t.Errorf("the grid connected %d times; a refused room must not cost the connection", got.Connects)
	}
}
