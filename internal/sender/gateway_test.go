package sender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// These tests run the sender in-process against the real gateway binary
// (cmd/gateway), with real viewers.

// makeMP4 writes a short H.264 clip with ffmpeg's test source.
func makeMP4(t testing.TB, size string, rate int, seconds float64) string {
	t.Helper()
	ffmpeg := testenv.RequireTool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "clip.mp4")
	cmd := exec.Command(ffmpeg, "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size="+size+":rate="+itoa(rate), "-t", ftoa(seconds),
		"-pix_fmt", "yuv420p", "-y", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg failed: %v\n%s", err, b)
	}
	return out
}

// TestFileSourceThroughGateway: a looping 15 fps clip, sent at 10 fps and
// 160 px wide, reaches a binary viewer as 160×120 JPEGs at about 10 fps.
func TestFileSourceThroughGateway(t *testing.T) {
	clip := makeMP4(t, "320x240", 15, 2)
	g := testenv.StartGateway(t)
	view := testenv.Dial(t, g.WSURL()+"/ws/video/demo/?role=view&format=binary", nil)

	cfg := testConfig(g.WSURL())
	cfg.Source = clip
	cfg.FPS = 10
	cfg.Width = 160
	s := startSender(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first, err := view.ReadFrameContext(ctx)
	if err != nil {
		t.Fatalf("no first frame: %v", err)
	}
	// Count frames over a window longer than the clip, so it loops.
	const window = 3 * time.Second
	wctx, wcancel := context.WithTimeout(ctx, window)
	defer wcancel()
	n, last := 0, first.Seq
	for {
		f, err := view.ReadFrameContext(wctx)
		if err != nil {
			if wctx.Err() != nil {
				break
			}
			t.Fatalf("after %d frames: %v", n, err)
		}
		if f.Seq <= last {
			t.Fatalf("seq %d after %d", f.Seq, last)
		}
		last = f.Seq
		if sz := decodeJPEG(t, f.Payload); sz.X != 160 || sz.Y != 120 {
			t.Fatalf("frame %d is %v, want 160×120", n, sz)
		}
		n++
	}
	fps := float64(n) / window.Seconds()
	t.Logf("viewer got %d frames in %v: %.1f fps (configured 10, file 15); sender stats %+v", n, window, fps, s.Stats())
	if fps < 5 || fps > 15 {
		t.Fatalf("viewer got %.1f fps, want 5-15 (configured 10)", fps)
	}
}

// TestSeedProtocolThroughGateway: the seed's data URLs reach a format=json
// viewer as the seed's envelope.
func TestSeedProtocolThroughGateway(t *testing.T) {
	g := testenv.StartGateway(t)
	view := testenv.Dial(t, g.WSURL()+"/ws/video/wms/?format=json", nil)
	cfg := testConfig(g.WSURL())
	cfg.Room = "wms"
	cfg.Protocol = ProtocolSeed
	cfg.Width = 320
	startSender(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 5 {
		typ, b, err := view.Read(ctx)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if typ != websocket.MessageText {
			t.Fatalf("message %d: type %v, want text", i, typ)
		}
		var env struct {
			Message string `json:"message"`
		}
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("message %d: %v: %.80q", i, err, b)
		}
		f, err := frames.ParseDataURL([]byte(env.Message), 1, time.Now(), 0)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if sz := decodeJPEG(t, f.Payload); sz.X != 320 || sz.Y != 240 {
			t.Fatalf("message %d: %v JPEG, want 320×240", i, sz)
		}
	}
}

// TestGatewayRestart: the gateway dies mid-stream (killed, or stopped with
// SIGTERM and its 1001 close); a new one starts on the same port; the
// sender reconnects by itself and a new viewer gets newer frames.
func TestGatewayRestart(t *testing.T) {
	for _, tt := range []struct {
		name string
		stop func(*testenv.Process)
	}{
		{"SIGKILL", func(p *testenv.Process) { p.Kill() }},
		{"SIGTERM", func(p *testenv.Process) {
			_ = p.Signal(syscall.SIGTERM)
			if exited, _ := p.Wait(10 * time.Second); !exited {
				p.Kill()
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			port := testenv.FreePort(t)
			g1 := testenv.StartGatewayOn(t, port, "GATEWAY_SHUTDOWN_TIMEOUT=2s")
			cfg := testConfig(g1.WSURL())
			cfg.ReconnectMax = 300 * time.Millisecond
			s := startSender(t, cfg)

			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			v1 := testenv.Dial(t, g1.WSURL()+"/ws/video/demo/?role=view&format=binary", nil)
			var before uint64
			for range 3 {
				f, err := v1.ReadFrameContext(ctx)
				if err != nil {
					t.Fatalf("before restart: %v", err)
				}
				before = f.Seq
			}

			v1.CloseNow() // a viewer that stops reading would hold up the SIGTERM shutdown
			tt.stop(g1.Proc)
			testenv.WaitFor(t, 10*time.Second, "sender to notice the gateway is gone", func() error {
				if s.Stats().Connected {
					return errors.New("still connected")
				}
				return nil
			})
			g2 := testenv.StartGatewayOn(t, port, "GATEWAY_SHUTDOWN_TIMEOUT=2s")
			testenv.WaitFor(t, 20*time.Second, "sender to reconnect", func() error {
				if st := s.Stats(); !st.Connected || st.Reconnects < 1 {
					return fmt.Errorf("stats %+v", st)
				}
				return nil
			})
			v2 := testenv.Dial(t, g2.WSURL()+"/ws/video/demo/?role=view&format=binary", nil)
			for i := range 3 {
				f, err := v2.ReadFrameContext(ctx)
				if err != nil {
					t.Fatalf("after restart, frame %d: %v", i, err)
				}
				if f.Seq <= before {
					t.Fatalf("after restart, seq %d is not newer than %d", f.Seq, before)
				}
				if sz := decodeJPEG(t, f.Payload); sz.X != 160 {
					t.Fatalf("after restart, frame %v", sz)
				}
			}
		})
	}
}
