package loadgen_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/loadgen"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestMain lets the test binary serve as the ceiling's writing process:
// MeasureCeiling starts os.Args[0] with CeilingWriterEnv set.
func TestMain(m *testing.M) {
	if spec := os.Getenv(loadgen.CeilingWriterEnv); spec != "" {
		if err := loadgen.ServeCeilingWriter(spec); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestMakeJPEG(t *testing.T) {
	for _, size := range []int{5, 6, 7, 8, 9, 100, 1023, 50000} {
		b, err := loadgen.MakeJPEG(size, 1)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(b) != size {
			t.Fatalf("size %d: got %d bytes", size, len(b))
		}
		if err := frames.CheckJPEG(b, size); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		again, _ := loadgen.MakeJPEG(size, 1)
		if !bytes.Equal(b, again) {
			t.Fatalf("size %d: not reproducible", size)
		}
		// The gateway tells bare JPEGs from headed frames by the first byte;
		// a headed frame built from it must parse back.
		msg := frames.AppendBinary(nil, 7, time.UnixMicro(123), b)
		if _, err := frames.ParseBinary(msg, 0, time.Time{}, 0); err != nil {
			t.Fatalf("size %d: binary message does not parse: %v", size, err)
		}
	}
	b, _ := loadgen.MakeJPEG(1000, 1)
	if bytes.Count(b[3:997], []byte{0}) > 50 {
		t.Error("the middle of the payload should be random-ish, not zeros")
	}
	if _, err := loadgen.MakeJPEG(4, 1); err == nil {
		t.Error("a 4-byte payload cannot hold SOI and EOI: want an error")
	}
}

func TestMakeSizedJPEG(t *testing.T) {
	for _, size := range []int{loadgen.MinSizedPayload, 100, 60000} {
		b, err := loadgen.MakeSizedJPEG(size, 3, 1280, 720)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(b) != size || frames.CheckJPEG(b, size) != nil {
			t.Fatalf("size %d: %d bytes, CheckJPEG %v", size, len(b), frames.CheckJPEG(b, size))
		}
		if w, h, err := frames.JPEGSize(b); w != 1280 || h != 720 || err != nil {
			t.Fatalf("size %d: JPEGSize = %d×%d, %v; want 1280×720", size, w, h, err)
		}
	}
	for _, bad := range []struct{ size, w, h int }{{loadgen.MinSizedPayload - 1, 10, 10}, {100, 0, 10}, {100, 10, 70000}} {
		if _, err := loadgen.MakeSizedJPEG(bad.size, 1, bad.w, bad.h); err == nil {
			t.Errorf("MakeSizedJPEG(%d, %d×%d) gave no error", bad.size, bad.w, bad.h)
		}
	}
}

func TestParseBinaryFrame(t *testing.T) {
	jpeg, _ := loadgen.MakeJPEG(100, 1)
	at := time.UnixMicro(1_700_000_000_123_456)
	msg := frames.AppendBinary(nil, 42, at, jpeg)
	seq, ts, ok := loadgen.ParseBinaryFrame(msg)
	if !ok || seq != 42 || ts != at.UnixMicro() {
		t.Fatalf("got seq %d ts %d ok %v", seq, ts, ok)
	}
	for name, m := range map[string][]byte{
		"offline":      frames.Offline(9, at).Binary(),
		"short":        msg[:10],
		"bare jpeg":    jpeg,
		"empty":        nil,
		"bad version":  append([]byte{2}, msg[1:]...),
		"bad hdr len":  append(append([]byte{}, msg[:2]...), append([]byte{0, 21}, msg[4:]...)...),
		"unknown kind": append([]byte{1, 9}, msg[2:]...),
	} {
		if _, _, ok := loadgen.ParseBinaryFrame(m); ok {
			t.Errorf("%s: parsed as a frame", name)
		}
	}
}

func TestParseJSONFrame(t *testing.T) {
	jpeg, _ := loadgen.MakeJPEG(3000, 1)
	for _, tc := range []struct {
		seq uint64
		at  time.Time
	}{
		{1, time.UnixMicro(1)},
		{42, time.UnixMicro(1_700_000_000_123_456)},
		{1<<63 - 1, time.UnixMicro(1<<62 + 5)},
	} {
		f, err := frames.New(frames.KindJPEG, tc.seq, tc.at, jpeg, 0)
		if err != nil {
			t.Fatal(err)
		}
		seq, ts, ok := loadgen.ParseJSONFrame(f.JSON())
		if !ok || seq != tc.seq || ts != tc.at.UnixMicro() {
			t.Errorf("seq %d ts %d: got seq %d ts %d ok %v", tc.seq, tc.at.UnixMicro(), seq, ts, ok)
		}
	}
	f, _ := frames.New(frames.KindJPEG, 5, time.UnixMicro(99), jpeg, 0)
	good := string(f.JSON())
	for name, m := range map[string]string{
		"empty":        "",
		"not json":     "hello",
		"no seq":       strings.Replace(good, `"seq"`, `"sex"`, 1),
		"no ts":        strings.Replace(good, `"ts"`, `"tz"`, 1),
		"no digits":    strings.Replace(good, `"ts":99`, `"ts":x`, 1),
		"no brace":     strings.TrimSuffix(good, "}"),
		"other prefix": strings.Replace(good, "image/jpeg", "image/png", 1),
		"bare prefix":  `{"message":"data:image/jpeg;base64,}`,
		"huge number":  strings.Replace(good, `"ts":99`, `"ts":99999999999999999999999`, 1),
	} {
		if _, _, ok := loadgen.ParseJSONFrame([]byte(m)); ok {
			t.Errorf("%s: parsed as a frame", name)
		}
	}
}

func FuzzParseJSONFrame(f *testing.F) {
	jpeg, _ := loadgen.MakeJPEG(64, 1)
	fr, _ := frames.New(frames.KindJPEG, 3, time.UnixMicro(77), jpeg, 0)
	f.Add(fr.JSON())
	f.Add([]byte(`{"message":"data:image/jpeg;base64,","seq":1,"ts":-2}`))
	f.Add([]byte(`{"message":"data:image/jpeg;base64,}`))
	f.Add(frames.AppendLayered(nil, "bench", 2, 320, 180, 3, time.UnixMicro(77), jpeg))
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _, _ = loadgen.ParseJSONFrame(msg) // must not panic
		_, _, _ = loadgen.ParseBinaryFrame(msg)
	})
}

func TestReadProc(t *testing.T) {
	s, err := loadgen.ReadProc(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if s.RSSKB <= 0 {
		t.Errorf("RSS = %d KB", s.RSSKB)
	}
	if _, err := loadgen.ReadProc(1 << 30); err == nil {
		t.Error("want an error for a process that does not exist")
	}
}

func TestConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  loadgen.Config
		want string
	}{
		"no gateways":    {loadgen.Config{}, "no gateways"},
		"bad scheme":     {loadgen.Config{Gateways: []string{"ftp://x"}}, "scheme"},
		"bad format":     {loadgen.Config{Gateways: []string{"ws://x:1"}, Format: "xml"}, "format"},
		"small size":     {loadgen.Config{Gateways: []string{"ws://x:1"}, Size: 3}, "size"},
		"ceiling alone":  {loadgen.Config{Gateways: []string{"ws://x:1"}, Ceiling: true}, "ceiling"},
		"negative views": {loadgen.Config{Gateways: []string{"ws://x:1"}, Viewers: -1}, "negative"},
	} {
		c := tc.cfg.WithDefaults()
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %q", name, err, tc.want)
		}
	}
	c := loadgen.Config{Gateways: []string{"http://127.0.0.1:8000/", "127.0.0.1:8001"}}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Gateways[0] != "ws://127.0.0.1:8000" || c.Gateways[1] != "ws://127.0.0.1:8001" || c.PublishTo != "ws://127.0.0.1:8000" {
		t.Errorf("normalized to %v, publish to %s", c.Gateways, c.PublishTo)
	}
}

// smokeConfig is a small, short run: 5 viewers, 10 fps, 10 KB frames.
func smokeConfig(t *testing.T, gateways ...*testenv.Gateway) loadgen.Config {
	cfg := loadgen.Config{
		Viewers:         5,
		FPS:             10,
		Size:            10000,
		Warmup:          500 * time.Millisecond,
		Duration:        3 * time.Second,
		Drain:           2 * time.Second,
		CeilingDuration: 500 * time.Millisecond,
		CeilingWriter:   []string{os.Args[0]},
		Log:             testWriter{t},
	}
	for _, g := range gateways {
		cfg.Gateways = append(cfg.Gateways, g.WSURL())
		cfg.WatchPIDs = append(cfg.WatchPIDs, g.Proc.Cmd.Process.Pid)
	}
	return cfg
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// checkSane asserts what any healthy run reports; figures are not judged.
func checkSane(t *testing.T, rep *loadgen.Report, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("run failed: %v", err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	if rep.FramesSent < 10 {
		t.Errorf("only %d frames sent in a 3 s window at 10 fps", rep.FramesSent)
	}
	if rep.DeliveryRatio <= 0.9 || rep.DeliveryRatio > 1 {
		t.Errorf("delivery ratio %.3f, want in (0.9, 1]", rep.DeliveryRatio)
	}
	if rep.Received != uint64(float64(rep.Expected)*rep.DeliveryRatio+0.5) {
		t.Errorf("received %d of %d does not match ratio %.4f", rep.Received, rep.Expected, rep.DeliveryRatio)
	}
	l := rep.Latency
	if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Max < 5000) {
		t.Errorf("latency percentiles not ordered or absurd: %+v", l)
	}
	if rep.MaxGapMS <= 0 || rep.DeliveriesSec <= 0 || rep.MBSec <= 0 || rep.WindowSec < 2 {
		t.Errorf("gap %.1f ms, %.1f deliveries/s, %.3f MB/s over %.2f s: want positive figures", rep.MaxGapMS, rep.DeliveriesSec, rep.MBSec, rep.WindowSec)
	}
	if rep.ViewersLost != 0 || rep.BadMessages != 0 {
		t.Errorf("%d viewers lost, %d bad messages", rep.ViewersLost, rep.BadMessages)
	}
	if len(rep.Procs) == 0 || rep.Procs[0].RSSAfterKB <= 0 {
		t.Errorf("gateway process figures missing: %+v", rep.Procs)
	}
	if rep.Gateway == nil || rep.Gateway.FramesOut < float64(rep.Received) {
		t.Errorf("gateway counters missing or below what viewers got: %+v", rep.Gateway)
	}
}

func TestSmokeSingleGateway(t *testing.T) {
	t.Parallel()
	g := testenv.StartGateway(t, "GATEWAY_LOG_LEVEL=warn")
	cfg := smokeConfig(t, g)
	cfg.Stalled = 1
	cfg.Ceiling = true
	rep, err := loadgen.Run(context.Background(), cfg)
	checkSane(t, rep, err)
	if rep.Stalled != 1 || rep.Viewers != 5 || rep.Connect.Conns != 6 {
		t.Errorf("viewers %d, stalled %d, connected %d: want 5, 1, 6", rep.Viewers, rep.Stalled, rep.Connect.Conns)
	}
	if rep.Ceiling == nil || rep.Ceiling.MBSec <= 0 || rep.Ceiling.Conns != 5 || rep.FractionOfCeiling <= 0 {
		t.Errorf("ceiling not measured: %+v (errors %v)", rep.Ceiling, rep.Errors)
	}
}

// startTwoReplicas starts redis-server and two gateways on it, ready.
func startTwoReplicas(t *testing.T) (*testenv.Redis, *testenv.Gateway, *testenv.Gateway) {
	t.Helper()
	r := testenv.StartRedis(t)
	env := []string{"GATEWAY_REDIS_URL=" + r.URL(), "GATEWAY_LOG_LEVEL=warn"}
	g1 := testenv.StartGateway(t, env...)
	g2 := testenv.StartGateway(t, env...)
	g1.WaitReady(t, 10*time.Second)
	g2.WaitReady(t, 10*time.Second)
	return r, g1, g2
}

func TestSmokeRedisTwoGateways(t *testing.T) {
	t.Parallel()
	r, g1, g2 := startTwoReplicas(t)
	cfg := smokeConfig(t, g1, g2)
	cfg.RedisAddr = r.Addr()
	rep, err := loadgen.Run(context.Background(), cfg)
	checkSane(t, rep, err)
	if rep.Gateways != 2 || len(rep.Procs) != 2 {
		t.Errorf("want figures for 2 gateways, got %d (%d procs)", rep.Gateways, len(rep.Procs))
	}
	if rd := rep.Redis; rd == nil || rd.Replicas != 2 || rd.PerFrame < 10000 {
		t.Errorf("redis figures missing or below one frame per publish: %+v (errors %v)", rd, rep.Errors)
	}
}

func TestSmokeJSONFormat(t *testing.T) {
	t.Parallel()
	g := testenv.StartGateway(t, "GATEWAY_LOG_LEVEL=warn")
	cfg := smokeConfig(t, g)
	cfg.Format = loadgen.FormatJSON
	rep, err := loadgen.Run(context.Background(), cfg)
	checkSane(t, rep, err)
	if rep.MessageBytes < cfg.Size*4/3 {
		t.Errorf("JSON message of %d bytes cannot hold a %d-byte JPEG in base64", rep.MessageBytes, cfg.Size)
	}
}

func TestSmokeIdle(t *testing.T) {
	t.Parallel()
	g := testenv.StartGateway(t, "GATEWAY_LOG_LEVEL=warn")
	cfg := smokeConfig(t, g)
	cfg.Idle = 50
	cfg.Duration = 200 * time.Millisecond
	rep, err := loadgen.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Mode != "idle" || rep.Connect.Conns != 50 || rep.Connect.Failed != 0 || rep.Connect.PerSec <= 0 {
		t.Errorf("connect report %+v, want 50 connections", rep.Connect)
	}
	if rep.Idle == nil || len(rep.Procs) != 1 {
		t.Errorf("idle figures missing: %+v, procs %+v, errors %v", rep.Idle, rep.Procs, rep.Errors)
	}
}

func TestRunFailsWithoutGateway(t *testing.T) {
	t.Parallel()
	cfg := loadgen.Config{
		Gateways: []string{fmt.Sprintf("ws://127.0.0.1:%d", testenv.FreePort(t))},
		Viewers:  2, FPS: 10, Duration: time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := loadgen.Run(ctx, cfg)
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a connection error", err)
	}
}

// TestSmokeGroups runs a layered publisher against a real gateway with two
// viewer groups: one asking for the 320-pixel layer as version-2 messages,
// one asking for the main layer through a throttled link, and the rest
// taking the main layer as version 1. Each group's figures come apart.
func TestSmokeGroups(t *testing.T) {
	t.Parallel()
	g := testenv.StartGateway(t, "GATEWAY_LOG_LEVEL=warn")
	cfg := smokeConfig(t, g)
	cfg.Viewers = 6
	cfg.Layers = []loadgen.Layer{{Width: 1280, Height: 720, Size: 6000}, {Width: 640, Height: 360, Size: 2000}, {Width: 320, Height: 180, Size: 600}}
	const throttleKBps = 200 // well above the main layer's 60 kB/s: nothing should skip
	cfg.Groups = []loadgen.ViewerGroup{
		{Name: "tile", Viewers: 2, Query: "width=320&v=2"},
		{Name: "slow", Viewers: 2, Query: "width=1280&v=2", ThrottleKBps: throttleKBps},
	}
	// The viewers connect before the publisher: until the gateway's first
	// check of the room's layers (1 s), the tile viewers get the main
	// layer. The warmup covers it, mostly: the tile group is allowed one
	// change per viewer and a few frames of the main layer.
	cfg.Warmup = 1500 * time.Millisecond
	rep, err := loadgen.Run(context.Background(), cfg)
	checkSane(t, rep, err)
	if len(rep.Groups) != 3 {
		t.Fatalf("%d groups reported, want tile, slow, rest: %+v", len(rep.Groups), rep.Groups)
	}
	tile, slow, rest := rep.Groups[0], rep.Groups[1], rep.Groups[2]
	if tile.Name != "tile" || slow.Name != "slow" || rest.Name != "rest" || tile.Viewers != 2 || slow.Viewers != 2 || rest.Viewers != 2 {
		t.Fatalf("groups %+v", rep.Groups)
	}
	frameBytes := func(g loadgen.GroupReport) float64 { return g.BytesPerViewerSec / g.FPSPerViewer }
	for _, tc := range []struct {
		g       loadgen.GroupReport
		layer   string
		expect  float64 // message bytes per frame
		changes uint64
	}{
		{tile, "2", float64(frames.LayerBlockFixed + len("bench") + frames.HeaderSize + 600), 2},
		{slow, "0", float64(frames.LayerBlockFixed + len("bench") + frames.HeaderSize + 6000), 0},
		{rest, "v1", float64(frames.HeaderSize + 6000), 0},
	} {
		g := tc.g
		if g.EndedOn[tc.layer] != g.Viewers {
			t.Errorf("group %s ended on %v, want all %d on %s", g.Name, g.EndedOn, g.Viewers, tc.layer)
		}
		if g.DeliveryRatio < 0.9 || g.FPSPerViewer < 5 || g.Latency.P99 <= 0 || g.MaxGapMS <= 0 {
			t.Errorf("group %s: delivered %.3f, %.1f fps per viewer, p99 %.2f ms, gap %.1f ms", g.Name, g.DeliveryRatio, g.FPSPerViewer, g.Latency.P99, g.MaxGapMS)
		}
		if got := frameBytes(g); got < tc.expect*0.999 || got > tc.expect*1.5 {
			t.Errorf("group %s: %.0f bytes per frame, want %.0f (a little more for a late switch)", g.Name, got, tc.expect)
		}
		if g.BadMessages != 0 || g.ViewersLost != 0 || g.LayerChanges > tc.changes {
			t.Errorf("group %s: %d bad messages, %d lost, %d layer changes (at most %d)", g.Name, g.BadMessages, g.ViewersLost, g.LayerChanges, tc.changes)
		}
	}
	if tile.ControlMessages == 0 || rest.ControlMessages != 0 {
		t.Errorf("control messages: tile %d (want some: layers, layer), rest %d (want none)", tile.ControlMessages, rest.ControlMessages)
	}
	if slow.BytesPerViewerSec > 1.2*throttleKBps*1000 {
		t.Errorf("throttled viewers got %.0f B/s, above their %d kB/s link", slow.BytesPerViewerSec, throttleKBps)
	}
}

// TestSmokeH264 plays an ffmpeg-made H.264 clip through two replicas on
// Redis: viewers asking v=2&codec=h264 count its keyframes and deltas as
// pictures and its configurations apart; then, with viewers on the
// publisher's replica only, late joiners on the second replica get their
// first keyframe from the group kept in Redis, without a keyframe request.
func TestSmokeH264(t *testing.T) {
	t.Parallel()
	testenv.RequireTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec := testclip.H264ClipSpec{Clip: testclip.Clip{Width: 320, Height: 240, FPS: 30, Frames: 40, Noise: 8}, Kbps: 500, GOP: 20, Live: true}
	path := filepath.Join(t.TempDir(), "clip.h264")
	clip, err := testclip.MakeH264Clip(ctx, spec, path)
	if err != nil {
		t.Fatal(err)
	}
	r, g1, g2 := startTwoReplicas(t)

	cfg := smokeConfig(t, g1, g2)
	cfg.FPS = 30
	cfg.H264 = path
	cfg.RedisAddr = r.Addr()
	cfg.Room = "h264"
	cfg.Groups = []loadgen.ViewerGroup{{Name: "h264", Viewers: cfg.Viewers, Query: "v=2&codec=h264"}}
	rep, err := loadgen.Run(ctx, cfg)
	checkSane(t, rep, err)
	h := rep.H264
	if h == nil || h.Codec != clip.Config.Codec || h.ClipPictures != 40 || h.ClipKeyframes != 2 || h.KeyframesSent < 2 {
		t.Fatalf("H.264 figures %+v", h)
	}
	if h.ConfigsReceived < uint64(cfg.Viewers) {
		t.Errorf("%d configurations at %d viewers: each should have had at least one", h.ConfigsReceived, cfg.Viewers)
	}
	if g := rep.Groups[0]; g.Name != "h264" || g.EndedOn["0"] != cfg.Viewers || g.BytesPerViewerSec < 0.5*h.MeanPictureBytes*30 {
		t.Errorf("group %+v: want every viewer on H.264 layer 0 at about the clip's rate (%.0f B/s)", g, h.MeanPictureBytes*30)
	}

	// Late joins on g2 while 2 viewers watch on g1, the publisher's
	// replica: g1's subscription to the stream stays, g2's comes and goes.
	cfg = smokeConfig(t, g1)
	cfg.Viewers = 2
	cfg.Groups = []loadgen.ViewerGroup{{Name: "h264", Viewers: 2, Query: "v=2&codec=h264"}}
	cfg.LateJoinTo = g2.WSURL()
	cfg.FPS = 30
	cfg.H264 = path
	cfg.RedisAddr = r.Addr()
	cfg.Room = "h264_join"
	cfg.Warmup = time.Second
	cfg.Duration = time.Minute
	cfg.LateJoins = 4
	cfg.LateJoinPause = 600 * time.Millisecond
	rep, err = loadgen.Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	j := rep.LateJoins
	if j == nil || j.Joins != 4 || j.Failed != 0 || j.Warm != 0 || len(j.Samples) != 4 || j.To != g2.WSURL() || j.Codec != "h264" {
		t.Fatalf("late joins %+v, errors %v", j, rep.Errors)
	}
	for i, s := range j.Samples {
		if !(s.HandshakeMS > 0 && s.HandshakeMS <= s.FirstPictureMS && s.FirstPictureMS <= s.CaughtUpMS && s.CaughtUpMS < 5000) ||
			s.Configs < 1 || s.Undecodable != 0 || s.Pictures != int(s.Behind)+1 || s.Behind < 0 || s.Behind >= int64(spec.GOP) {
			t.Errorf("join %d: %+v", i+1, s)
		}
	}
	if g := rep.Groups[0]; g.Viewers != 2 || g.DeliveryRatio < 0.9 {
		t.Errorf("the viewers on the publisher's replica during the joins: %+v", g)
	}
	if j.KeyframeRequests != 0 {
		t.Errorf("%d keyframe requests during the joins: the joiners should have started from the group in Redis", j.KeyframeRequests)
	}
	if rep.WindowSec > 30 {
		t.Errorf("a window of %.1f s: it should end when the joins are done", rep.WindowSec)
	}
}

// TestSkewedRoomsSpreadPublishers runs rooms of different sizes, their
// publishers spread over two replicas: every room's viewers get its
// frames, whichever replica its publisher is on.
func TestSkewedRoomsSpreadPublishers(t *testing.T) {
	t.Parallel()
	r, g1, g2 := startTwoReplicas(t)
	cfg := smokeConfig(t, g1, g2)
	cfg.Viewers = 0
	cfg.RoomViewers = []int{3, 1, 1}
	cfg.SpreadPublishers = true
	cfg.RedisAddr = r.Addr()
	cfg.Groups = []loadgen.ViewerGroup{{Name: "big", Viewers: 3}}
	rep, err := loadgen.Run(context.Background(), cfg)
	checkSane(t, rep, err)
	if rep.Publishers != 3 || rep.Viewers != 5 {
		t.Errorf("%d publishers, %d viewers: want 3 and 5", rep.Publishers, rep.Viewers)
	}
	if len(rep.Groups) != 2 || rep.Groups[0].Viewers != 3 || rep.Groups[1].Viewers != 2 {
		t.Errorf("groups %+v: want the first room's 3 viewers, then the 2 others", rep.Groups)
	}
}

// TestRedisProbes: INFO fields and PUBSUB NUMSUB through go-redis, against
// a real redis-server; the INFO probe's own connection moves the server's
// output byte count by its reply alone.
func TestRedisProbes(t *testing.T) {
	t.Parallel()
	r := testenv.StartRedis(t)
	ctx := context.Background()
	pid, err := loadgen.RedisInfoField(ctx, r.Addr(), "server", "process_id")
	if err != nil || int(pid) != r.Proc.Cmd.Process.Pid {
		t.Fatalf("process_id %d (%v), want %d", pid, err, r.Proc.Cmd.Process.Pid)
	}
	if _, err := loadgen.RedisInfoField(ctx, r.Addr(), "server", "no_such_field"); err == nil {
		t.Error("a missing field: want an error")
	}
	out0, err := loadgen.RedisInfoField(ctx, r.Addr(), "stats", "total_net_output_bytes")
	if err != nil {
		t.Fatal(err)
	}
	out1, err := loadgen.RedisInfoField(ctx, r.Addr(), "stats", "total_net_output_bytes")
	if err != nil {
		t.Fatal(err)
	}
	if d := out1 - out0; d <= 0 || d > 8<<10 {
		t.Errorf("one INFO stats probe moved total_net_output_bytes by %d, want one reply of a few kB", d)
	}
	if n, err := loadgen.RedisNumSub(ctx, r.Addr(), "video_x"); err != nil || n != 0 {
		t.Fatalf("NUMSUB before subscribing: %d, %v", n, err)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer c.Close()
	sub := c.Subscribe(ctx, "video_x")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}
	if n, err := loadgen.RedisNumSub(ctx, r.Addr(), "video_x"); err != nil || n != 1 {
		t.Fatalf("NUMSUB with one subscriber: %d, %v", n, err)
	}
	if _, err := loadgen.RedisNumSub(ctx, "127.0.0.1:1", "video_x"); err == nil {
		t.Error("no server: want an error")
	}
}
