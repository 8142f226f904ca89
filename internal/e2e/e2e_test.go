package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

const (
	// room is the room the sender publishes to, as in docker-compose.yml.
	room = "demo"
	// senderWidth is the width of the sender's test pattern; its height is
	// 3/4 of it. Small frames keep the -race build of every part quick.
	senderWidth  = 320
	senderHeight = senderWidth * 3 / 4
	senderFPS    = 15
	// recoveryBound is how long the page may take to show frames, when it
	// opens and after its gateway dies (issue 4).
	recoveryBound = 5 * time.Second
)

// TestEndToEnd runs the deployment of docker-compose.yml on loopback:
// redis-server, three gateways, nginx with the shared config in front of
// them, and the real sender publishing its test pattern through nginx. Then
// a browser, the seed's protocol, and the loss of a replica, in that order:
// the last step needs the page the first one opened.
func TestEndToEnd(t *testing.T) {
	for _, tool := range []string{"redis-server", "nginx", "chromium"} {
		testenv.RequireTool(t, tool) // skip before building anything
	}
	start := time.Now()
	testenv.Binary(t, "sender") // build it before starting anything that waits
	redis := testenv.StartRedis(t)
	gateways := make([]*testenv.Gateway, 3)
	for i := range gateways {
		gateways[i] = testenv.StartGateway(t,
			"GATEWAY_REDIS_URL="+redis.URL(),
			"GATEWAY_PING_INTERVAL=5s",
			"GATEWAY_TRUSTED_PROXIES=127.0.0.1", // nginx, as in docker-compose.yml
			// GATEWAY_AUTH stays off, unlike docker-compose.yml: with auth on,
			// the seed's no-role connection needs a publish token, which the
			// seed's page cannot send. Auth is tested in internal/gateway.
		)
	}
	for _, g := range gateways {
		g.WaitReady(t, 10*time.Second)
	}
	proxy := startNginx(t, gateways)
	sender := startSender(t, proxy)
	testenv.WaitFor(t, 10*time.Second, "the sender to connect to a gateway through nginx", func() error {
		return wantTotal(gateways, "publish", 1)
	})
	page := startBrowser(t)
	t.Logf("set up in %v: redis :%d, gateways %s, nginx :%d", time.Since(start).Round(time.Millisecond),
		redis.Port, ports(gateways), proxy.Port)

	if !t.Run("browser", func(t *testing.T) { testViewerPage(t, page, proxy) }) {
		return // the last step needs a live page
	}
	t.Run("seed_protocol", func(t *testing.T) {
		t.Run("viewer", func(t *testing.T) { testSeedViewer(t, proxy) })
		t.Run("publisher", func(t *testing.T) { testSeedPublisher(t, proxy) })
	})
	t.Run("mjpeg_img", func(t *testing.T) { testMJPEGImage(t, page) })
	t.Run("replica_killed", func(t *testing.T) { testReplicaKilled(t, page, proxy, gateways, sender) })
}

// mjpegStateJS adds (once) an <img> of the room's MJPEG stream to the page,
// as a camera dashboard would, and reads its size and a hash of its pixels.
const mjpegStateJS = `(() => {
	let img = document.getElementById("mjpeg");
	if (!img) {
		img = document.createElement("img");
		img.id = "mjpeg";
		img.src = "/video/` + room + `/stream.mjpg";
		document.body.append(img);
	}
	if (!img.naturalWidth) return {width: 0, height: 0, pixelHash: 0};
	const c = new OffscreenCanvas(img.naturalWidth, img.naturalHeight).getContext("2d", {willReadFrequently: true});
	c.drawImage(img, 0, 0);
	const px = c.getImageData(0, 0, img.naturalWidth, img.naturalHeight).data;
	let h = 0x811c9dc5;
	for (let i = 0; i < px.length; i += 4) {
		h = Math.imul(h ^ px[i] ^ (px[i + 1] << 8) ^ (px[i + 2] << 16), 0x01000193);
	}
	return {width: img.naturalWidth, height: img.naturalHeight, pixelHash: h >>> 0};
})()`

// testMJPEGImage: Chromium shows the room's MJPEG stream
// (multipart/x-mixed-replace, through nginx) in a plain <img> under the
// page's Content-Security-Policy, at the sender's size, and the picture
// changes as frames arrive.
func testMJPEGImage(t *testing.T, page *browser) {
	type imgState struct {
		Width     int    `json:"width"`
		Height    int    `json:"height"`
		PixelHash uint32 `json:"pixelHash"`
	}
	read := func() (imgState, error) { return evaluate[imgState](page, mjpegStateJS) }
	var first imgState
	testenv.WaitFor(t, recoveryBound, "the MJPEG <img> to show a frame", func() error {
		s, err := read()
		if err != nil {
			return err
		}
		if s.Width != senderWidth {
			return fmt.Errorf("<img> is %dx%d, want width %d", s.Width, s.Height, senderWidth)
		}
		first = s
		return nil
	})
	testenv.WaitFor(t, recoveryBound, "the MJPEG <img> to change", func() error {
		s, err := read()
		if err != nil {
			return err
		}
		if s.PixelHash == first.PixelHash {
			return fmt.Errorf("pixels unchanged (%08x)", s.PixelHash)
		}
		return nil
	})
	page.RequireCleanConsole(t)
}

// startSender starts cmd/sender publishing its test pattern to room
// through nginx, as docker-compose.yml's sender does.
func startSender(t *testing.T, proxy *nginx) *testenv.Process {
	t.Helper()
	return testenv.Start(t, "sender", testenv.Binary(t, "sender"), []string{
		"SENDER_URL=" + proxy.WSURL(),
		"SENDER_ROOM=" + room,
		"SENDER_SOURCE=test",
		"SENDER_FPS=" + strconv.Itoa(senderFPS),
		"SENDER_WIDTH=" + strconv.Itoa(senderWidth),
		"SENDER_PROTOCOL=binary",
		"SENDER_STATUS_INTERVAL=2s",
	})
}

// testViewerPage opens the viewer page through nginx: within recoveryBound
// the canvas shows frames that change and the overlay counts fps > 0. The
// page runs under its strict Content-Security-Policy (connect-src 'self'),
// so a clean console also proves that the policy lets the page's
// same-origin WebSocket through nginx.
func testViewerPage(t *testing.T, page *browser, proxy *nginx) {
	opened := time.Now()
	deadline := opened.Add(recoveryBound)
	page.Navigate(t, proxy.URL()+"/video/"+room+"/")

	first := waitForPage(t, page, deadline, "a frame on the canvas", func(s viewerState) error {
		if s.Drawn < 1 || !s.Opaque {
			return fmt.Errorf("nothing drawn yet")
		}
		if s.Width != senderWidth || s.Height != senderHeight {
			return fmt.Errorf("drawn frame is %dx%d, want the sender's %dx%d", s.Width, s.Height, senderWidth, senderHeight)
		}
		return nil
	})
	t.Logf("first frame drawn %v after opening the page", time.Since(opened).Round(time.Millisecond))
	waitForPage(t, page, deadline, "the canvas to change", func(s viewerState) error {
		if s.Drawn <= first.Drawn || s.PixelHash == first.PixelHash {
			return fmt.Errorf("canvas unchanged since the first frame")
		}
		return nil
	})
	live := waitForPage(t, page, deadline, "the overlay to show fps > 0", func(s viewerState) error {
		fps, latency, err := parseOverlay(s.Overlay)
		if err != nil {
			return err
		}
		if fps <= 0 || s.FPS <= 0 {
			return fmt.Errorf("fps is 0")
		}
		if latency == "–" {
			return fmt.Errorf("no latency shown")
		}
		if s.State != "live" {
			return fmt.Errorf("state %q, want live", s.State)
		}
		return nil
	})
	t.Logf("live %v after opening the page: %s", time.Since(opened).Round(time.Millisecond), live)

	if path, err := page.Screenshot(artifactDir(t), "viewer.png"); err != nil {
		t.Errorf("screenshot: %v", err)
	} else {
		t.Logf("screenshot of the viewer page: %s", path)
	}
	page.RequireCleanConsole(t)
}

// testSeedViewer connects exactly as the seed's page does, to
// /ws/video/demo/ with no query, and gets the binary sender's frames as the
// seed's JSON envelope around a JPEG data URL.
func testSeedViewer(t *testing.T, proxy *nginx) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := testenv.Dial(t, proxy.WSURL()+"/ws/video/"+room+"/", nil)
	defer c.CloseNow()
	c.SetReadLimit(4 << 20) // a 320×240 frame is ~20 KB, 4/3 of that in base64

	var prevSeq uint64
	var prevJPEG []byte
	for i := range 5 {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: failed to read: %v", i, err)
		}
		if typ != websocket.MessageText {
			t.Fatalf("message %d: got a %v message, want text (the seed's JSON)", i, typ)
		}
		var env struct {
			Message string `json:"message"`
			Seq     uint64 `json:"seq"`
		}
		if err := json.Unmarshal(msg, &env); err != nil {
			t.Fatalf("message %d is not JSON: %v: %.80q", i, err, msg)
		}
		b64, ok := strings.CutPrefix(env.Message, "data:image/jpeg;base64,")
		if !ok {
			t.Fatalf("message %d: %.40q is not a JPEG data URL", i, env.Message)
		}
		jpg, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("message %d: bad base64: %v", i, err)
		}
		img, err := jpeg.Decode(bytes.NewReader(jpg))
		if err != nil {
			t.Fatalf("message %d: the data URL's JPEG does not decode: %v", i, err)
		}
		if b := img.Bounds(); b.Dx() != senderWidth || b.Dy() != senderHeight {
			t.Fatalf("message %d: %dx%d image, want the sender's %dx%d", i, b.Dx(), b.Dy(), senderWidth, senderHeight)
		}
		if i > 0 && (env.Seq <= prevSeq || bytes.Equal(jpg, prevJPEG)) {
			t.Fatalf("message %d: seq %d after %d, same image: %v; want a newer frame", i, env.Seq, prevSeq, bytes.Equal(jpg, prevJPEG))
		}
		prevSeq, prevJPEG = env.Seq, jpg
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// testSeedPublisher publishes as the seed's send_video.py does, text
// messages "data:image/jpg;base64,..." to /ws/video/<room>/ with no query,
// through nginx, and a binary viewer of that room receives the same JPEGs
// byte for byte.
func testSeedPublisher(t *testing.T, proxy *nginx) {
	const seedRoom = "seed_e2e"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	viewer := testenv.Dial(t, proxy.WSURL()+"/ws/video/"+seedRoom+"/?role=view&format=binary", nil)
	defer viewer.CloseNow()
	viewer.SetReadLimit(1 << 20)
	pub := testenv.Dial(t, proxy.WSURL()+"/ws/video/"+seedRoom+"/", nil)
	defer pub.CloseNow()
	pub.SetReadLimit(4 << 20)

	// The seed's consumer also receives its room's frames, its own
	// included, as Channels' group_send does: drain them.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		for {
			if _, _, err := pub.Read(ctx); err != nil {
				return
			}
		}
	})
	var mu sync.Mutex
	sent := map[[sha256.Size]byte]int{} // JPEG hash -> frame number
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			jpg := testJPEG(i)
			mu.Lock()
			sent[sha256.Sum256(jpg)] = i
			mu.Unlock()
			msg := "data:image/jpg;base64," + base64.StdEncoding.EncodeToString(jpg)
			if pub.Write(ctx, websocket.MessageText, []byte(msg)) != nil {
				return // ctx ended or the connection failed; the reader below reports it
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})

	got := map[int]bool{}
	for len(got) < 3 {
		typ, msg, err := viewer.Read(ctx)
		if err != nil {
			t.Fatalf("binary viewer: failed to read (got %d of 3 frames): %v", len(got), err)
		}
		if typ != websocket.MessageBinary {
			t.Fatalf("binary viewer got a %v message", typ)
		}
		h, err := frames.ParseHeader(msg)
		if err != nil {
			t.Fatalf("binary viewer: %v", err)
		}
		if h.Kind != frames.KindJPEG {
			continue
		}
		payload := msg[frames.HeaderSize:]
		mu.Lock()
		i, ok := sent[sha256.Sum256(payload)]
		mu.Unlock()
		if !ok {
			t.Fatalf("binary viewer got a JPEG (seq %d, %d bytes) the seed publisher never sent", h.Seq, len(payload))
		}
		if _, err := jpeg.Decode(bytes.NewReader(payload)); err != nil {
			t.Fatalf("frame %d does not decode: %v", i, err)
		}
		got[i] = true
	}
	_ = viewer.Close(websocket.StatusNormalClosure, "")
	_ = pub.Close(websocket.StatusNormalClosure, "")
}

// testReplicaKilled kills the gateway that serves the page's WebSocket with
// SIGKILL, after moving the sender onto it too. The page must reconnect
// through nginx to a surviving replica and draw frames again within
// recoveryBound, which needs the sender to have reconnected as well.
func testReplicaKilled(t *testing.T, page *browser, proxy *nginx, gateways []*testenv.Gateway, sender *testenv.Process) {
	// The page's WebSocket is the only viewer left: the seed clients closed.
	victim := -1
	testenv.WaitFor(t, 5*time.Second, "the page's WebSocket to be the only viewer", func() error {
		views, err := connectionCounts(gateways, "view")
		if err != nil {
			return err
		}
		victim = -1
		total := 0
		for i, n := range views {
			total += n
			if n > 0 {
				victim = i
			}
		}
		if total != 1 {
			return fmt.Errorf("view connections per gateway: %v, want 1 in all", views)
		}
		return nil
	})
	publishers, err := connectionCounts(gateways, "publish")
	if err != nil {
		t.Fatal(err)
	}
	if publishers[victim] == 0 {
		// Where nginx put the sender is chance; the kill tests more when
		// the sender loses its replica too.
		moveSender(t, sender, proxy, gateways, victim)
		last, err := evaluate[viewerState](page, viewerStateJS)
		if err != nil {
			t.Fatalf("failed to read the page: %v", err)
		}
		waitForPage(t, page, time.Now().Add(recoveryBound), "the page to show the restarted sender", func(s viewerState) error {
			if s.Drawn <= last.Drawn || s.State != "live" {
				return fmt.Errorf("no new frame")
			}
			return nil
		})
	}
	before, err := evaluate[viewerState](page, viewerStateJS)
	if err != nil {
		t.Fatalf("failed to read the page: %v", err)
	}
	survivors := append(append([]*testenv.Gateway{}, gateways[:victim]...), gateways[victim+1:]...)

	gateways[victim].Proc.Kill()
	killed := time.Now()
	deadline := killed.Add(recoveryBound)
	t.Logf("killed gateway :%d, which served the page and the sender, with SIGKILL", gateways[victim].Port)

	reconnected := waitForPage(t, page, deadline, "the page to reconnect", func(s viewerState) error {
		if s.Connects <= before.Connects {
			return fmt.Errorf("no new connection")
		}
		return nil
	})
	testenv.WaitFor(t, time.Until(deadline), "a surviving gateway to serve the page", func() error {
		return wantTotal(survivors, "view", 1)
	})
	testenv.WaitFor(t, time.Until(deadline), "the sender to reconnect to a surviving gateway", func() error {
		return wantTotal(survivors, "publish", 1)
	})
	resumed := waitForPage(t, page, deadline, "frames to resume on the canvas", func(s viewerState) error {
		if s.Drawn <= reconnected.Drawn || s.PixelHash == reconnected.PixelHash {
			return fmt.Errorf("no new frame drawn since the reconnection")
		}
		if s.State != "live" {
			return fmt.Errorf("state %q, want live", s.State)
		}
		return nil
	})
	t.Logf("frames resumed %v after the kill: %s", time.Since(killed).Round(time.Millisecond), resumed)
	page.RequireCleanConsole(t)
}

// moveSender restarts the sender until nginx hands its WebSocket to
// gateways[want]. nginx's round robin moves each new connection to the next
// replica, so a restart or two suffice; a few more tolerate other traffic.
// Each restart also checks the sender's documented exit: status 0 after
// SIGTERM.
func moveSender(t *testing.T, sender *testenv.Process, proxy *nginx, gateways []*testenv.Gateway, want int) {
	t.Helper()
	for restarts := 1; restarts <= 2*len(gateways); restarts++ {
		if err := sender.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("failed to stop the sender: %v", err)
		}
		exited, err := sender.Wait(5 * time.Second)
		if !exited {
			t.Fatalf("the sender did not exit within 5s of SIGTERM")
		}
		if err != nil {
			t.Errorf("the sender exited with %v after SIGTERM, want status 0", err)
		}
		testenv.WaitFor(t, 5*time.Second, "the stopped sender's connection to close", func() error {
			return wantTotal(gateways, "publish", 0)
		})
		sender = startSender(t, proxy)
		testenv.WaitFor(t, 10*time.Second, "the restarted sender to connect", func() error {
			return wantTotal(gateways, "publish", 1)
		})
		publishers, err := connectionCounts(gateways, "publish")
		if err != nil {
			t.Fatal(err)
		}
		if publishers[want] == 1 {
			t.Logf("moved the sender to gateway :%d in %d restart(s)", gateways[want].Port, restarts)
			return
		}
	}
	t.Fatalf("nginx never put the sender on gateway :%d in %d restarts", gateways[want].Port, 2*len(gateways))
}

// viewerState is what the viewer page shows, read inside the page by
// viewerStateJS: web/static/viewer.js's window.framecast, the overlay's
// text, and a hash of the canvas's pixels.
type viewerState struct {
	State     string `json:"state"`
	Frames    int    `json:"frames"`
	Drawn     int    `json:"drawn"`
	FPS       int    `json:"fps"`
	Skipped   int    `json:"skipped"`
	Connects  int    `json:"connects"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	Overlay   string `json:"overlay"`
	PixelHash uint32 `json:"pixelHash"` // FNV-style hash of the canvas's RGB values
	Opaque    bool   `json:"opaque"`    // a JPEG was drawn: a fresh canvas is transparent
}

func (s viewerState) String() string {
	return fmt.Sprintf("state=%s frames=%d drawn=%d skipped=%d fps=%d connects=%d size=%dx%d pixels=%08x overlay=%q",
		s.State, s.Frames, s.Drawn, s.Skipped, s.FPS, s.Connects, s.Width, s.Height, s.PixelHash, s.Overlay)
}

const viewerStateJS = `(() => {
	// Read a copy: repeated getImageData on the page's own canvas would make
	// Chromium move it off the GPU, changing what is being tested.
	const canvas = document.getElementById("screen");
	const copy = new OffscreenCanvas(canvas.width, canvas.height).getContext("2d", {willReadFrequently: true});
	copy.drawImage(canvas, 0, 0);
	const px = copy.getImageData(0, 0, canvas.width, canvas.height).data;
	let h = 0x811c9dc5;
	for (let i = 0; i < px.length; i += 4) {
		h = Math.imul(h ^ px[i] ^ (px[i + 1] << 8) ^ (px[i + 2] << 16), 0x01000193);
	}
	const f = window.framecast || {};
	return {
		state: f.state || "", frames: f.frames || 0, drawn: f.drawn || 0, fps: f.fps || 0,
		skipped: f.skipped || 0, connects: f.connects || 0, width: f.width || 0, height: f.height || 0,
		overlay: document.getElementById("overlay").textContent,
		pixelHash: h >>> 0, opaque: px.length > 0 && px[3] === 255,
	};
})()`

// waitForPage polls the page until cond accepts its state or the deadline
// passes (failing the test), and returns the accepted state.
func waitForPage(t *testing.T, page *browser, deadline time.Time, what string, cond func(viewerState) error) viewerState {
	t.Helper()
	var got viewerState
	testenv.WaitFor(t, time.Until(deadline), what, func() error {
		s, err := evaluate[viewerState](page, viewerStateJS)
		if err != nil {
			return fmt.Errorf("failed to read the page: %w", err)
		}
		if err := cond(s); err != nil {
			return fmt.Errorf("%w; page: %s", err, s)
		}
		got = s
		return nil
	})
	return got
}

var overlayPattern = regexp.MustCompile(`^fps (\d+) · latency (\d+ ms|–) · skipped (\d+)( · .*)?$`)

// parseOverlay reads the viewer's overlay, "fps N · latency N ms · skipped N"
// and what follows (layer and kB/s: layers_browser_test.go reads those).
func parseOverlay(text string) (fps int, latency string, err error) {
	m := overlayPattern.FindStringSubmatch(strings.TrimSpace(text))
	if m == nil {
		return 0, "", fmt.Errorf("overlay %q is not \"fps N · latency N ms · skipped N\"", text)
	}
	fps, _ = strconv.Atoi(m[1])
	return fps, m[2], nil
}

// connections returns the gateway's framecast_connections gauge for role,
// read from its own /metrics: nginx does not publish /metrics, and through
// it the answer would come from any replica.
func connections(g *testenv.Gateway, role string) (int, error) {
	m, err := testenv.ScrapeMetrics(g.URL(), 2*time.Second)
	if err != nil {
		return 0, err
	}
	return int(m.Sum("framecast_connections", `role="`+role+`"`)), nil
}

// connectionCounts returns connections(g, role) for each gateway.
func connectionCounts(gateways []*testenv.Gateway, role string) ([]int, error) {
	out := make([]int, len(gateways))
	for i, g := range gateways {
		n, err := connections(g, role)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

// wantTotal returns nil when the gateways hold want connections of role in all.
func wantTotal(gateways []*testenv.Gateway, role string, want int) error {
	counts, err := connectionCounts(gateways, role)
	if err != nil {
		return err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	if total != want {
		return fmt.Errorf("%s connections per gateway: %v, want %d in all", role, counts, want)
	}
	return nil
}

// testJPEG returns a 160×120 JPEG that differs for every n: a gradient
// that scrolls with n and a bar at n's position.
func testJPEG(n int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 160, 120))
	for y := range 120 {
		for x := range 160 {
			c := color.RGBA{R: uint8(x + 4*n), G: uint8(y * 2), B: uint8(128 + n), A: 255}
			if (x-n%160+160)%160 < 8 {
				c = color.RGBA{R: 255, G: 255, B: 255, A: 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}); err != nil {
		panic(err) // encoding to memory cannot fail
	}
	return b.Bytes()
}

// artifactDir is where the test saves files for people to look at: the
// folder named by FRAMECAST_E2E_ARTIFACTS (kept after the test, e.g. for CI
// to upload), or a temporary folder.
func artifactDir(t *testing.T) string {
	if dir := os.Getenv("FRAMECAST_E2E_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err == nil {
			return dir
		}
	}
	return t.TempDir()
}

func ports(gateways []*testenv.Gateway) string {
	var s []string
	for _, g := range gateways {
		s = append(s, ":"+strconv.Itoa(g.Port))
	}
	return strings.Join(s, " ")
}
