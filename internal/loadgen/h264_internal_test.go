package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// makeSmallClip encodes a small clip for tests: 12 pictures of 160×96, a
// keyframe every 4.
func makeSmallClip(t *testing.T) *testclip.H264Clip {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := testclip.H264ClipSpec{Clip: testclip.Clip{Width: 160, Height: 96, FPS: 30, Frames: 12, Noise: 8}, Kbps: 300, GOP: 4, Live: true}
	c, err := testclip.MakeH264Clip(ctx, spec, filepath.Join(t.TempDir(), "clip.h264"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestH264SourceMessages: the publisher's messages are version-2 H.264
// messages of the room's layer 0: a configuration then a keyframe with
// the same sequence and capture time, then deltas, looping over the
// clip; a keyframe request jumps to the clip's next keyframe. The viewer
// parser takes keyframes and deltas as pictures, not configurations.
func TestH264SourceMessages(t *testing.T) {
	c := makeSmallClip(t)
	s := newH264Source("cam", c)
	at := time.UnixMicro(1_700_000_000_000_000)
	type pic struct {
		kinds []frames.Kind
		au    int // the clip's access unit it carries
	}
	var got []pic
	play := func(n int) {
		for range n {
			seq := uint64(len(got) + 1)
			now := at.Add(time.Duration(seq) * time.Millisecond)
			au := s.next
			if s.jump.Load() {
				au = -1 // filled below from the payload
			}
			var p pic
			for _, msg := range s.picture(seq, now) {
				f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
				if err != nil {
					t.Fatalf("picture %d: %v", seq, err)
				}
				lb, err := frames.ParseLayerBlock(msg)
				if err != nil || lb.Room != "cam" || lb.Layer != 0 || lb.Width != 160 || lb.Height != 96 || lb.Kind != f.Kind {
					t.Fatalf("picture %d: layer block %+v, %v", seq, lb, err)
				}
				if f.Seq != seq || !f.Captured.Equal(now) {
					t.Fatalf("picture %d: message seq %d captured %v, want %v", seq, f.Seq, f.Captured, now)
				}
				pseq, ts, layer, ok := ParseFrame(msg)
				kind, _, _, _, okm := ParseMessage(msg)
				if !okm || kind != f.Kind {
					t.Fatalf("picture %d: ParseMessage kind %d ok %v, want %d", seq, kind, okm, f.Kind)
				}
				switch f.Kind {
				case frames.KindH264Config:
					cfg, err := frames.ParseH264Config(f.Payload)
					if err != nil || cfg.Codec != c.Config.Codec || !bytes.Equal(cfg.ParamSets, c.Config.ParamSets) {
						t.Fatalf("picture %d: configuration %+v, %v", seq, cfg, err)
					}
					if ok {
						t.Fatalf("picture %d: ParseFrame took a configuration for a picture", seq)
					}
				case frames.KindH264Key, frames.KindH264Delta:
					if !ok || pseq != seq || ts != now.UnixMicro() || layer != 0 {
						t.Fatalf("picture %d: ParseFrame = %d, %d, %d, %v", seq, pseq, ts, layer, ok)
					}
					if au < 0 {
						for i := range c.AUs {
							if bytes.Equal(c.AUs[i], f.Payload) {
								au = i
							}
						}
					}
					if !bytes.Equal(f.Payload, c.AUs[au]) {
						t.Fatalf("picture %d: payload is not access unit %d", seq, au)
					}
				default:
					t.Fatalf("picture %d: kind %d", seq, f.Kind)
				}
				p.kinds = append(p.kinds, f.Kind)
			}
			p.au = au
			got = append(got, p)
		}
	}
	play(14) // the whole clip and two pictures of its second time round
	for i, p := range got {
		au := i % 12
		want := []frames.Kind{frames.KindH264Delta}
		if au%4 == 0 {
			want = []frames.Kind{frames.KindH264Config, frames.KindH264Key}
		}
		if p.au != au || !equalKinds(p.kinds, want) {
			t.Fatalf("picture %d: access unit %d, kinds %v; want %d, %v", i+1, p.au, p.kinds, au, want)
		}
	}
	// s.next is access unit 2: a request skips 2 and 3 to keyframe 4.
	s.requests.Add(1)
	s.jump.Store(true)
	play(2)
	if p := got[14]; p.au != 4 || !equalKinds(p.kinds, []frames.Kind{frames.KindH264Config, frames.KindH264Key}) {
		t.Fatalf("after a keyframe request: access unit %d, kinds %v; want keyframe 4", p.au, p.kinds)
	}
	if got[15].au != 5 || s.jump.Load() {
		t.Fatalf("after the jump: access unit %d (want 5), jump still set %v", got[15].au, s.jump.Load())
	}
	if s.keys != 5 {
		t.Errorf("%d keyframes counted, want 5 (0, 4, 8, 0 again, and the jump to 4)", s.keys)
	}
	if n := testing.AllocsPerRun(50, func() { s.picture(99, at) }); n > 1 {
		t.Errorf("picture allocates %.0f times, want at most the returned slice", n)
	}
}

func equalKinds(a, b []frames.Kind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestViewerCountsH264: keyframes and deltas count as pictures (and their
// bytes), configurations are counted apart, not as bad messages, and
// their bytes count in the window.
func TestViewerCountsH264(t *testing.T) {
	c := makeSmallClip(t)
	s := newH264Source("cam", c)
	var msgs [][]byte
	var want uint64
	for seq := uint64(1); seq <= 6; seq++ {
		for _, m := range s.picture(seq, time.Now()) {
			msgs = append(msgs, bytes.Clone(m))
			if seq >= 2 {
				want += uint64(len(m))
			}
		}
	}
	msgs = append(msgs, []byte(`{"type":"layers","room":"cam","layers":[]}`))
	room := &roomState{name: "cam"}
	room.from.Store(2)
	v := newViewer(&sliceSource{msgs: msgs}, room, FormatBinary)
	v.run()
	switch {
	case !errors.Is(v.err, io.EOF):
		t.Fatalf("run ended with %v", v.err)
	case v.frames != 6 || v.received.Load() != 5:
		t.Errorf("%d pictures (%d in the window), want 6 (5)", v.frames, v.received.Load())
	case v.configs != 2 || v.bad != 0 || v.control != 1:
		t.Errorf("%d configurations, %d bad, %d control; want 2 (pictures 1 and 5), 0, 1", v.configs, v.bad, v.control)
	case v.bytes != want:
		t.Errorf("%d bytes in the window, want %d (pictures 2-6 and picture 5's configuration)", v.bytes, want)
	case v.endedOn() != "0":
		t.Errorf("ended on %s, want layer 0", v.endedOn())
	}
}

func TestSpreadOf(t *testing.T) {
	if s := SpreadOf(nil); s != (Spread{}) {
		t.Errorf("no samples: %+v", s)
	}
	var xs []float64
	for i := 20; i >= 1; i-- {
		xs = append(xs, float64(i))
	}
	if s := SpreadOf(xs); s.P50 != 10 || s.P95 != 19 || s.Max != 20 {
		t.Errorf("1..20: %+v, want p50 10, p95 19, max 20", s)
	}
	if xs[0] != 20 {
		t.Error("SpreadOf sorted its input")
	}
	if s := SpreadOf([]float64{7}); s.P50 != 7 || s.P95 != 7 || s.Max != 7 {
		t.Errorf("one sample: %+v", s)
	}
}

func TestValidateH264AndLateJoins(t *testing.T) {
	base := Config{Gateways: []string{"ws://127.0.0.1:1", "ws://127.0.0.1:2"}}
	for name, tc := range map[string]struct {
		mod  func(c *Config)
		want string
	}{
		"h264 and layers":     {func(c *Config) { c.H264 = "x"; c.Layers = []Layer{{Width: 8, Height: 8, Size: 100}} }, "-h264 or -layers"},
		"h264 json":           {func(c *Config) { c.H264 = "x"; c.Format = FormatJSON }, "need format"},
		"negative joins":      {func(c *Config) { c.LateJoins = -1 }, "must not be negative"},
		"joins, 2 publishers": {func(c *Config) { c.LateJoins = 2; c.Publishers = 2 }, "exactly one publisher"},
		"joins, bad target":   {func(c *Config) { c.LateJoins = 2; c.LateJoinTo = "ftp://x" }, "late-join-to"},
	} {
		c := base
		c.Gateways = append([]string(nil), base.Gateways...)
		tc.mod(&c)
		c = c.WithDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %q", name, err, tc.want)
		}
	}
	c := base
	c.LateJoins = 3
	c = c.WithDefaults()
	if err := c.Validate(); err != nil || c.LateJoinTo != "ws://127.0.0.1:2" || c.LateJoinPause != 2*time.Second {
		t.Errorf("defaults: %v, late joins to %q, pause %v; want the last gateway, 2s", err, c.LateJoinTo, c.LateJoinPause)
	}
}
