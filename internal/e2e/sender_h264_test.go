package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// h264Reader reads an H.264 viewer's messages and checks that what it is
// handed decodes from its first keyframe on.
type h264Reader struct {
	c            *testenv.Client
	stream       bytes.Buffer
	pics, keys   int
	resumed      int // keyframes after a missing picture
	last         uint64
	config, keyd bool
}

func (r *h264Reader) read(ctx context.Context) error {
	typ, msg, err := r.c.Read(ctx)
	if err != nil || typ == websocket.MessageText {
		return err
	}
	f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
	if err != nil {
		return err
	}
	switch f.Kind {
	case frames.KindH264Config:
		r.config = true
	case frames.KindH264Key:
		if !r.config {
			return fmt.Errorf("keyframe %d before a configuration", f.Seq)
		}
		if r.keyd && f.Seq != r.last+1 {
			r.resumed++
		}
		r.keyd = true
		r.keys++
		r.add(f)
	case frames.KindH264Delta:
		if !r.keyd || f.Seq != r.last+1 {
			return fmt.Errorf("delta %d after picture %d: undecodable", f.Seq, r.last)
		}
		r.add(f)
	default:
		return fmt.Errorf("kind %d on an H.264 subscription", f.Kind)
	}
	return nil
}

func (r *h264Reader) add(f *frames.Frame) {
	r.stream.Write(f.JPEG)
	r.pics++
	r.last = f.Seq
}

// TestSenderH264AcrossReplicas: the real sender in h264 mode, reading an
// ffmpeg-made clip, publishes to one gateway process; on another:
//   - a codec=h264 viewer gets a configuration, a keyframe, then deltas in
//     order, and ffmpeg decodes every picture it got;
//   - a viewer on a link too slow for the stream resumes at a keyframe,
//     and the keyframe request reaches the sender (its status line counts
//     it; keyframes are otherwise 20 s apart);
//   - the JPEG layer still serves snapshot.jpg, stream.mjpg and a
//     format=json client.
func TestSenderH264AcrossReplicas(t *testing.T) {
	ffmpeg := testenv.RequireTool(t, "ffmpeg")
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	if out, err := exec.Command(ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-vf", "noise=alls=8:allf=t", "-t", "4", "-pix_fmt", "yuv420p", "-y", clip).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	r := testenv.StartRedis(t)
	a := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	b := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	a.WaitReady(t, 10*time.Second)
	b.WaitReady(t, 10*time.Second)
	sender := testenv.Start(t, "sender", testenv.Binary(t, "sender"), []string{
		"SENDER_URL=" + a.WSURL(), "SENDER_ROOM=cam", "SENDER_SOURCE=" + clip, "SENDER_CODEC=h264",
		"SENDER_FPS=15", "SENDER_WIDTH=640", "SENDER_JPEG_FPS=2", "SENDER_KEY_INTERVAL=20s",
		"SENDER_STATUS_INTERVAL=1s",
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	v := &h264Reader{c: testenv.Dial(t, b.WSURL()+"/ws/video/cam/?role=view&format=binary&v=2&codec=h264", nil)}
	for v.pics < 45 {
		if err := v.read(ctx); err != nil {
			t.Fatalf("after %d pictures: %v\nsender:\n%s", v.pics, err, testenv.Tail(sender.Output(), 20))
		}
	}
	n, err := testclip.DecodedFrames(ctx, v.stream.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if n != v.pics {
		t.Fatalf("ffmpeg decoded %d of the %d pictures received", n, v.pics)
	}
	t.Logf("%d pictures (%d keyframes) through two replicas, all decoded", v.pics, v.keys)

	// A slow link: the viewer falls behind, skips to a keyframe the
	// sender makes on request.
	proxy := testenv.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", b.Port), 0)
	proxy.LimitDown(15_000)
	slow := &h264Reader{c: testenv.Dial(t, "ws://"+proxy.Addr()+"/ws/video/cam/?role=view&format=binary&v=2&codec=h264", nil)}
	for slow.resumed == 0 {
		if err := slow.read(ctx); err != nil {
			t.Fatalf("throttled viewer after %d pictures: %v", slow.pics, err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the sender to count a keyframe request", func() error {
		if requests(sender.Output()) == 0 {
			return fmt.Errorf("status lines: %s", testenv.Tail(sender.Output(), 3))
		}
		return nil
	})
	t.Logf("throttled viewer resumed at a keyframe after %d pictures; the sender counted %d keyframe requests", slow.pics, requests(sender.Output()))

	// The JPEG layer, for everyone else.
	if err := testenv.HTTPStatus(b.URL()+"/video/cam/snapshot.jpg", http.StatusOK); err != nil {
		t.Fatal(err)
	}
	js := testenv.Dial(t, b.WSURL()+"/ws/video/cam/?format=json&role=view", nil)
	if f, err := js.ReadFrame(10 * time.Second); err != nil || frames.CheckJPEG(f.JPEG, 0) != nil {
		t.Fatalf("format=json viewer: %v", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.URL()+"/video/cam/stream.mjpg", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	part := make([]byte, 4096)
	if _, err := io.ReadAtLeast(resp.Body, part, 512); err != nil || !bytes.Contains(part, []byte("image/jpeg")) {
		t.Fatalf("MJPEG: %v, %q", err, part[:min(200, len(part))])
	}
}

var keyframeRequestsRE = regexp.MustCompile(`keyframe_requests=(\d+)`)

// requests sums the keyframe requests the sender's status lines counted.
func requests(log string) int {
	n := 0
	for _, m := range keyframeRequestsRE.FindAllStringSubmatch(log, -1) {
		k, _ := strconv.Atoi(m[1])
		n += k
	}
	return n
}
