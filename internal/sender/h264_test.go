package sender

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"gocv.io/x/gocv"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/internal/testenv/gatewaytest"
	"github.com/framecast/framecast/pkg/frames"
)

// makeTestClip writes clip (the project's test pattern with sensor-like
// noise, internal/testclip) as a short MJPEG file the sender reads as a
// file source, looping.
func makeTestClip(t testing.TB, c testclip.Clip) string {
	t.Helper()
	ffmpeg := testenv.RequireTool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "clip.avi")
	cmd := exec.Command(ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", c.Filter(),
		"-frames:v", itoa(c.Frames), "-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p", "-y", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg failed: %v\n%s", err, b)
	}
	return out
}

// h264Config is a fast SENDER_CODEC=h264 configuration against url.
func h264Config(url string) Config {
	c := testConfig(url)
	c.Codec = CodecH264
	c.FPS = 15
	c.KeyInterval = time.Minute // only the keyframes a test causes
	return c
}

// wireMsg is one version-2 message a test server read.
type wireMsg struct {
	block frames.LayerBlock
	frame *frames.Frame // Frame.JPEG holds the payload, whatever its kind
}

// h264Stream is what a sender sent on one connection, by stream.
type h264Stream struct {
	layers [frames.MaxLayers][]wireMsg // H.264 messages by layer, in order
	jpegs  []wireMsg                   // JPEG messages, in order
}

// parseH264Stream parses a connection's messages. Text messages are not
// expected from the sender.
func parseH264Stream(t *testing.T, msgs []recvMsg) h264Stream {
	t.Helper()
	var s h264Stream
	for i, m := range msgs {
		lb, f := parseV2(t, i, m)
		if lb.Room != "demo" {
			t.Fatalf("message %d: room %q", i, lb.Room)
		}
		w := wireMsg{block: lb, frame: f}
		if f.Kind.IsH264() {
			s.layers[lb.Layer] = append(s.layers[lb.Layer], w)
		} else if f.Kind == frames.KindJPEG {
			if lb.Layer != 0 {
				t.Fatalf("message %d: JPEG on layer %d, want 0", i, lb.Layer)
			}
			s.jpegs = append(s.jpegs, w)
		} else {
			t.Fatalf("message %d: kind %d", i, f.Kind)
		}
	}
	return s
}

// checkH264Layer checks one layer's messages the way the gateway and a
// decoder need them: a configuration first, every keyframe right after a
// configuration of its picture, whose codec string and size are the
// keyframe's SPS's and the layer block's, sequence numbers rising (by one
// before a delta), and
// the keyframes exactly the IDR access units. It returns the access
// units, in order, and which of them are keyframes.
func checkH264Layer(t *testing.T, layer int, msgs []wireMsg, size image.Point) (aus [][]byte, keys []int) {
	t.Helper()
	if len(msgs) == 0 {
		t.Fatalf("layer %d: no messages", layer)
	}
	var lastSeq uint64
	var cfg *frames.H264Config
	for i, m := range msgs {
		f, lb := m.frame, m.block
		if lb.Width != size.X || lb.Height != size.Y {
			t.Fatalf("layer %d message %d: layer block %d×%d, want %v", layer, i, lb.Width, lb.Height, size)
		}
		switch f.Kind {
		case frames.KindH264Config:
			c, err := frames.ParseH264Config(f.Payload)
			if err != nil {
				t.Fatalf("layer %d message %d: %v", layer, i, err)
			}
			if c.Width != size.X || c.Height != size.Y || !strings.HasPrefix(c.Codec, "avc1.42C0") {
				t.Fatalf("layer %d message %d: configuration %s %d×%d, want avc1.42C0xx %v", layer, i, c.Codec, c.Width, c.Height, size)
			}
			if i+1 >= len(msgs) {
				break // the last message: its keyframe was still in flight
			}
			if next := msgs[i+1].frame; next.Kind != frames.KindH264Key || next.Seq != f.Seq {
				t.Fatalf("layer %d message %d: configuration of picture %d followed by kind %d of picture %d, want its keyframe", layer, i, f.Seq, next.Kind, next.Seq)
			}
			cfg = &c
			continue
		case frames.KindH264Key:
			if i == 0 || msgs[i-1].frame.Kind != frames.KindH264Config {
				t.Fatalf("layer %d message %d: keyframe %d without its configuration in front", layer, i, f.Seq)
			}
			a, err := avc.Parse(f.Payload)
			if err != nil || !a.Key || a.SPS == nil || a.PPS == nil {
				t.Fatalf("layer %d message %d: keyframe is not an IDR with SPS and PPS: %+v %v", layer, i, a, err)
			}
			sps, err := avc.ParseSPS(a.SPS)
			if err != nil || sps.Codec() != cfg.Codec || sps.Width != cfg.Width || sps.Height != cfg.Height {
				t.Fatalf("layer %d message %d: SPS %s %d×%d (%v), configuration %s %d×%d", layer, i, sps.Codec(), sps.Width, sps.Height, err, cfg.Codec, cfg.Width, cfg.Height)
			}
			want := append(append(append([]byte{0, 0, 0, 1}, a.SPS...), 0, 0, 0, 1), a.PPS...)
			if !bytes.Equal(cfg.ParamSets, want) {
				t.Fatalf("layer %d message %d: parameter sets %x, want the keyframe's SPS and PPS %x", layer, i, cfg.ParamSets, want)
			}
			keys = append(keys, len(aus))
		case frames.KindH264Delta:
			if i == 0 || cfg == nil {
				t.Fatalf("layer %d message %d: delta before any keyframe", layer, i)
			}
			if avc.IsKeyframe(f.Payload) {
				t.Fatalf("layer %d message %d: an IDR sent as a delta", layer, i)
			}
			if f.Seq != lastSeq+1 { // the gateway takes a gap for a missing picture
				t.Fatalf("layer %d message %d: delta %d after picture %d", layer, i, f.Seq, lastSeq)
			}
		}
		if f.Seq <= lastSeq {
			t.Fatalf("layer %d message %d: picture %d after %d", layer, i, f.Seq, lastSeq)
		}
		lastSeq = f.Seq
		aus = append(aus, f.Payload)
	}
	return aus, keys
}

// decodeAll pipes the access units into ffmpeg and checks that every one
// decodes.
func decodeAll(t *testing.T, what string, aus [][]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := testclip.DecodedFrames(ctx, bytes.Join(aus, nil))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if n != len(aus) {
		t.Fatalf("%s: ffmpeg decoded %d pictures of %d sent", what, n, len(aus))
	}
}

// TestH264SenderStream: a sender in h264 mode with two layers, reading an
// ffmpeg-made 640×360 clip, sends per layer a configuration, a keyframe,
// then deltas, every picture on both layers with the same sequence number
// and capture time; ffmpeg decodes every access unit of each layer; the
// JPEG layer comes alongside at about SENDER_JPEG_FPS, at the smallest
// layer's size.
func TestH264SenderStream(t *testing.T) {
	needOpenH264(t)
	clip := makeTestClip(t, testclip.Clip{Width: 640, Height: 360, FPS: 30, Frames: 30, Noise: 8})
	g := newFakeGateway(t)
	cfg := h264Config(g.url())
	cfg.Source = clip
	cfg.Layers = "640,320"
	cfg.JpegFPS = 4
	s := startSender(t, cfg)

	const window = 3 * time.Second
	msgs := g.waitMessages(t, 0, 2, 30*time.Second)
	start := time.Now()
	testenv.WaitFor(t, 10*time.Second, "three seconds of pictures", func() error {
		if d := time.Since(start); d < window {
			return fmt.Errorf("%v so far", d.Round(time.Millisecond))
		}
		return nil
	})
	msgs = g.conn(0).messages()
	st := parseH264Stream(t, msgs)
	sizes := []image.Point{{640, 360}, {320, 180}}
	var perLayer [2][]wireMsg
	for l, want := range sizes {
		perLayer[l] = st.layers[l]
		aus, keys := checkH264Layer(t, l, st.layers[l], want)
		if len(keys) != 1 || keys[0] != 0 {
			t.Fatalf("layer %d: keyframes at %v, want only the first (KEY_INTERVAL 1m)", l, keys)
		}
		decodeAll(t, fmt.Sprintf("layer %d", l), aus)
	}
	// Pictures carry both layers, with the same sequence and capture time.
	n := min(len(perLayer[0]), len(perLayer[1])) - 1 // the last may be cut
	for i := range n {
		a, b := perLayer[0][i].frame, perLayer[1][i].frame
		if a.Kind != b.Kind || a.Seq != b.Seq || !a.Captured.Equal(b.Captured) {
			t.Fatalf("message %d: layer 0 kind %d seq %d at %v, layer 1 kind %d seq %d at %v", i, a.Kind, a.Seq, a.Captured, b.Kind, b.Seq, b.Captured)
		}
	}
	if len(st.jpegs) == 0 || st.jpegs[0].frame.Seq != perLayer[0][0].frame.Seq {
		t.Fatal("the first picture carries no JPEG layer")
	}
	for i, j := range st.jpegs {
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(j.frame.Payload))
		if err != nil || cfg.Width != 320 || cfg.Height != 180 || j.block.Width != 320 || j.block.Height != 180 {
			t.Fatalf("JPEG %d: %d×%d (%v), block %d×%d; want 320×180", i, cfg.Width, cfg.Height, err, j.block.Width, j.block.Height)
		}
	}
	// About JpegFPS: 4 a second over the ~3 s window, loosely.
	span := st.jpegs[len(st.jpegs)-1].frame.Captured.Sub(st.jpegs[0].frame.Captured).Seconds()
	rate := float64(len(st.jpegs)-1) / span
	t.Logf("%d messages: %d and %d H.264, %d JPEG (%.1f a second); stats %+v", len(msgs), len(perLayer[0]), len(perLayer[1]), len(st.jpegs), rate, s.Stats())
	if rate < 2 || rate > 6 {
		t.Fatalf("JPEG layer at %.1f a second, want about 4", rate)
	}
	if stats := s.Stats(); stats.H264Bytes == 0 || stats.JPEGBytes == 0 || stats.Keyframes != 1 || stats.LayerBytes[1] == 0 {
		t.Fatalf("stats %+v", stats)
	}
}

// needOpenH264 skips a test where ffmpeg is missing (OpenH264 itself is
// linked in: without it nothing builds).
func needOpenH264(t *testing.T) {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg")
}

// keyframesAfter returns the sequence numbers of layer 0's keyframes in
// msgs, and how many layer-0 pictures came before each.
func keyframesAfter(t *testing.T, msgs []recvMsg) (seqs []uint64, index []int) {
	t.Helper()
	st := parseH264Stream(t, msgs)
	n := 0
	for _, m := range st.layers[0] {
		switch m.frame.Kind {
		case frames.KindH264Key:
			seqs, index = append(seqs, m.frame.Seq), append(index, n)
			n++
		case frames.KindH264Delta:
			n++
		}
	}
	return seqs, index
}

// TestH264KeyframeRequests: the gateway's {"type":"keyframe"} makes one of
// the next pictures a keyframe (with its configuration), after malformed
// and unknown messages that change nothing; a burst of five requests gives
// two keyframes, at least KeyframeRequestGap apart; every picture still
// decodes.
func TestH264KeyframeRequests(t *testing.T) {
	needOpenH264(t)
	g := newFakeGateway(t)
	conns := make(chan *websocket.Conn, 1)
	g.onConn = func(ctx context.Context, n int, c *websocket.Conn, rec *connRecord) {
		conns <- c
		readAll(ctx, c, rec)
	}
	cfg := h264Config(g.url())
	cfg.Width = 320
	cfg.FPS = 20
	s := startSender(t, cfg)
	c := <-conns
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pictures := func() int { return len(parseH264Stream(t, g.conn(0).messages()).layers[0]) }
	waitFor := func(d time.Duration) {
		at := time.Now()
		testenv.WaitFor(t, d+5*time.Second, fmt.Sprint(d), func() error {
			if time.Since(at) < d {
				return errors.New("waiting")
			}
			return nil
		})
	}
	testenv.WaitFor(t, 20*time.Second, "10 messages of layer 0", func() error {
		if n := pictures(); n < 10 {
			return fmt.Errorf("%d", n)
		}
		return nil
	})
	for _, m := range []string{"not json", `{"type":"hello"}`, `{"no":"type"}`, strings.Repeat("x", 5000)} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"keyframe"}`)); err != nil {
		t.Fatal(err)
	}
	sentAt := len(parseH264Stream(t, g.conn(0).messages()).layers[0]) // messages, configurations included
	testenv.WaitFor(t, 10*time.Second, "a keyframe after the request", func() error {
		if seqs, _ := keyframesAfter(t, g.conn(0).messages()); len(seqs) < 2 {
			return fmt.Errorf("keyframes %v", seqs)
		}
		return nil
	})
	_, idx := keyframesAfter(t, g.conn(0).messages())
	// sentAt counted the first configuration too; the pictures already
	// encoded or being written when the request came (at most 2) go first.
	if late := idx[1] - (sentAt - 1); late > 3 {
		t.Fatalf("keyframe %d pictures after the request, want at most 3", late)
	}
	if st := s.Stats(); st.KeyframeRequests != 1 || st.Reconnects != 0 {
		t.Fatalf("stats %+v: want 1 keyframe request, no reconnection", st)
	}

	// A burst, past the gap: one keyframe now, one at the end of the gap.
	waitFor(2 * KeyframeRequestGap)
	for range 5 {
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"keyframe"}`)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "two more keyframes", func() error {
		if seqs, _ := keyframesAfter(t, g.conn(0).messages()); len(seqs) < 4 {
			return fmt.Errorf("keyframes %v", seqs)
		}
		return nil
	})
	// More than the gap later, no fifth keyframe came.
	waitFor(3 * KeyframeRequestGap)
	msgs := g.conn(0).messages()
	if seqs, _ := keyframesAfter(t, msgs); len(seqs) != 4 {
		t.Fatalf("keyframes %v after 5 requests at once: want 2 from the burst", seqs)
	}
	st := parseH264Stream(t, msgs)
	var keys []time.Time
	for _, m := range st.layers[0] {
		if m.frame.Kind == frames.KindH264Key {
			keys = append(keys, m.frame.Captured)
		}
	}
	if gap := keys[3].Sub(keys[2]); gap < KeyframeRequestGap*8/10 {
		t.Fatalf("the burst's keyframes are %v apart, want about %v", gap, KeyframeRequestGap)
	}
	aus, _ := checkH264Layer(t, 0, st.layers[0], image.Pt(320, 240))
	decodeAll(t, "layer 0", aus)
	if st := s.Stats(); st.KeyframeRequests != 6 || st.Keyframes != 4 {
		t.Fatalf("stats %+v: want 6 requests, 4 keyframes", st)
	}
}

// TestH264StalledSocketResumesWithKeyframe: the gateway stops reading; the
// sender skips captured frames (never a delta), its write times out, it
// reconnects, and the new connection starts with a configuration and a
// keyframe on every layer. What each connection got decodes.
func TestH264StalledSocketResumesWithKeyframe(t *testing.T) {
	needOpenH264(t)
	g := newFakeGateway(t)
	g.stallFirstConn(12)
	cfg := h264Config(g.url())
	cfg.Width = 1280 // with a JPEG per picture at quality 100, the socket buffers fill within a second
	cfg.Quality = 100
	cfg.JpegFPS = 30
	s := startStalledSender(t, cfg)
	msgs := g.waitMessages(t, 1, 12, 30*time.Second)
	if st := s.Stats(); st.Reconnects < 1 {
		t.Fatalf("stats after the stall: %+v", st)
	}
	for i, got := range [][]recvMsg{g.conn(0).messages(), msgs} {
		st := parseH264Stream(t, got)
		if k := st.layers[0][0].frame.Kind; k != frames.KindH264Config {
			t.Fatalf("connection %d starts with kind %d, want a configuration", i, k)
		}
		aus, keys := checkH264Layer(t, 0, st.layers[0], image.Pt(1280, 960))
		if keys[0] != 0 {
			t.Fatalf("connection %d: first keyframe at picture %d", i, keys[0])
		}
		decodeAll(t, fmt.Sprintf("connection %d", i), aus)
	}
}

// TestH264SlowWriterKeepsEveryDelta: a writer slower than the encoder (a
// slow link) gets fewer pictures, every one decodable: the captured frames
// in between are skipped before they are encoded, so no picture refers to
// one the writer never got, and no keyframe is needed.
// Then a picture lost at a disconnection (the slot's drop) makes the next
// picture a keyframe. The capture and the writer are the test's; the
// encode loop is the sender's.
func TestH264SlowWriterKeepsEveryDelta(t *testing.T) {
	needOpenH264(t)
	cfg := h264Config("ws://127.0.0.1:1")
	cfg.Width = 320
	cfg.FPS = 60
	cfg.JpegFPS = 0
	frameSlot, msgs := newFrameSlot(), newMessageSlot()
	defer frameSlot.Close()
	enc := newPictureEncoder(cfg)
	defer enc.Close()
	var stats counters
	stats.connGen.Store(1)
	stats.connected.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	front := gocv.NewMat()
	done := make(chan struct{})
	go func() {
		defer close(done)
		encodeLoop(ctx, frameSlot, &front, enc, msgs, cfg.FPS, &stats, testLogger(t))
	}()
	defer func() { cancel(); <-done; front.Close() }()

	pattern := newTestPattern(320, 1000)
	defer pattern.Close()
	back := gocv.NewMat()
	defer back.Close()
	var seq uint64
	capture := func() { // one captured frame
		seq++
		pattern.draw(&back, time.Now())
		frameSlot.put(&back, frameInfo{seq: seq, captured: time.Now()})
	}
	// take waits for the writer's next picture, capturing meanwhile.
	var aus [][]byte
	var keys []int
	take := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			capture()
			if m := msgs.take(); m != nil {
				for i := range m.ends {
					if m.kinds[i] != frames.KindH264Config {
						_, f := parseV2(t, i, recvMsg{m.typ, m.layer(i)})
						if f.Kind == frames.KindH264Key {
							keys = append(keys, len(aus))
						}
						aus = append(aus, append([]byte(nil), f.Payload...))
					}
				}
				msgs.release(m)
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no picture within 10 s")
			}
			// Frames come faster than the writer takes pictures. The
			// sleep paces this camera; the loop polls with a deadline.
			for range 3 {
				capture()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for range 20 {
		take()
		for range 4 { // the writer is busy for 4 more frames of a 50 fps camera
			time.Sleep(20 * time.Millisecond) // the camera's frame period: pacing, not a wait for a condition
			capture()
		}
	}
	// (OpenH264 may add a keyframe of its own at a scene change: the
	// skipped frames make the test pattern jump.)
	if stats.skipped.Load() == 0 || len(keys) == 0 || keys[0] != 0 {
		t.Fatalf("keyframes at %v, %d skipped: want a keyframe first, frames skipped", keys, stats.skipped.Load())
	}
	decodeAll(t, "the slow writer's pictures", aus)

	// A disconnection drops the pending picture: the next one is a keyframe.
	testenv.WaitFor(t, 10*time.Second, "a pending picture", func() error {
		capture()
		if !msgs.hasPending() {
			return errors.New("none")
		}
		return nil
	})
	if !msgs.drop() {
		t.Fatal("nothing dropped")
	}
	n := len(aus)
	take()
	if keys[len(keys)-1] != n {
		t.Fatalf("keyframes at %v: the picture after the dropped one (%d) is not one", keys, n)
	}
	for range 5 {
		take()
	}
	// What the writer got after the drop decodes on its own.
	decodeAll(t, "the pictures after the drop", aus[n:])
}

// TestH264ThroughGateway: the real gateway (cmd/gateway) accepts the
// sender's H.264 layers, keyframe after keyframe (it closes a publisher
// whose keyframe does not follow its configuration with 1007), and its
// version-1 viewers and snapshot.jpg get the JPEG layer.
func TestH264ThroughGateway(t *testing.T) {
	needOpenH264(t)
	gw := testenv.StartGateway(t)
	view := testenv.Dial(t, gw.WSURL()+"/ws/video/demo/?role=view&format=binary", nil)
	cfg := h264Config(gw.WSURL())
	cfg.Source = makeTestClip(t, testclip.Clip{Width: 640, Height: 360, FPS: 30, Frames: 30, Noise: 8})
	cfg.Layers = "640,320"
	cfg.KeyInterval = 500 * time.Millisecond // several configurations and keyframes
	cfg.JpegFPS = 5
	s := startSender(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 8 {
		f, err := view.ReadFrameContext(ctx)
		if err != nil {
			t.Fatalf("JPEG %d: %v", i, err)
		}
		if sz := decodeJPEG(t, f.Payload); sz != image.Pt(320, 180) {
			t.Fatalf("JPEG %d: %v, want 320×180", i, sz)
		}
	}
	if st := s.Stats(); st.Reconnects != 0 || !st.Connected || st.Keyframes < 3 {
		t.Fatalf("stats %+v: want one connection and at least 3 keyframes", st)
	}
	if err := testenv.HTTPStatus(gw.URL()+"/video/demo/snapshot.jpg", 200); err != nil {
		t.Fatal(err)
	}
}

// TestH264ThroughInProcessGateway: the sender in h264 mode, an in-process
// gateway (no Redis), and an H.264 viewer (codec=h264): the viewer gets a
// configuration, a keyframe, then deltas with consecutive sequence
// numbers, and ffmpeg decodes every picture it got; a version-1 viewer of
// the same room gets the JPEG layer.
func TestH264ThroughInProcessGateway(t *testing.T) {
	needOpenH264(t)
	base := gatewaytest.Start(t, gatewaytest.Options{Log: testLogger(t)}).WSURL()
	cfg := h264Config(base)
	cfg.Source = makeTestClip(t, testclip.Clip{Width: 640, Height: 360, FPS: 30, Frames: 30, Noise: 8})
	cfg.Width = 640
	cfg.FPS = 10 // below the clip's 30: frames are skipped before encoding
	cfg.KeyInterval = time.Second
	s := startSender(t, cfg)
	jpegView := testenv.Dial(t, base+"/ws/video/demo/?role=view&format=binary", nil)
	view := testenv.Dial(t, base+"/ws/video/demo/?role=view&format=binary&v=2&codec=h264", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []recvMsg
	keys := 0
	for len(got) < 40 {
		typ, b, err := view.Read(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(got), err)
		}
		if typ != websocket.MessageBinary {
			continue // control messages
		}
		got = append(got, recvMsg{typ, b})
		if k := frames.Kind(b[1]); k == frames.KindH264Key {
			keys++
		}
	}
	st := parseH264Stream(t, got)
	aus, k := checkH264Layer(t, 0, st.layers[0], image.Pt(640, 360))
	if k[0] != 0 || len(k) < 2 {
		t.Fatalf("keyframes at %v: want the first, and one a second after", k)
	}
	decodeAll(t, "the H.264 viewer's pictures", aus)
	f, err := jpegView.ReadFrameContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sz := decodeJPEG(t, f.Payload); sz != image.Pt(640, 360) {
		t.Fatalf("JPEG layer %v", sz)
	}
	t.Logf("%d pictures, %d keyframes; stats %+v", len(aus), keys, s.Stats())
}
