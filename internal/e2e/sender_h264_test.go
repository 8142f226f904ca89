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

	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

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
	v := &testenv.H264Reader{C: testenv.Dial(t, b.WSURL()+"/ws/video/cam/?role=view&format=binary&v=2&codec=h264", nil)}
	for v.Pics < 45 {
		if err := v.Read(ctx); err != nil {
			t.Fatalf("after %d pictures: %v\nsender:\n%s", v.Pics, err, testenv.Tail(sender.Output(), 20))
		}
	}
	n, err := testclip.DecodedFrames(ctx, v.Stream.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if n != v.Pics {
		t.Fatalf("ffmpeg decoded %d of the %d pictures received", n, v.Pics)
	}
	t.Logf("%d pictures (%d keyframes) through two replicas, all decoded", v.Pics, v.Keys)

	// A slow link: the viewer falls behind, skips to a keyframe the
	// sender makes on request.
	proxy := testenv.StartProxy(t, fmt.Sprintf("127.0.0.1:%d", b.Port), 0)
	proxy.LimitDown(15_000)
	slow := &testenv.H264Reader{C: testenv.Dial(t, "ws://"+proxy.Addr()+"/ws/video/cam/?role=view&format=binary&v=2&codec=h264", nil)}
	for slow.Resumed == 0 {
		if err := slow.Read(ctx); err != nil {
			t.Fatalf("throttled viewer after %d pictures: %v", slow.Pics, err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "the sender to count a keyframe request", func() error {
		if requests(sender.Output()) == 0 {
			return fmt.Errorf("status lines: %s", testenv.Tail(sender.Output(), 3))
		}
		return nil
	})
	t.Logf("throttled viewer resumed at a keyframe after %d pictures; the sender counted %d keyframe requests", slow.Pics, requests(sender.Output()))

	// The JPEG layer, for everyone else.
	if err := testenv.HTTPStatus(b.URL()+"/video/cam/snapshot.jpg", http.StatusOK); err != nil {
		t.Fatal(err)
	}
	js := testenv.Dial(t, b.WSURL()+"/ws/video/cam/?format=json&role=view", nil)
	if f, err := js.ReadFrame(10 * time.Second); err != nil || frames.CheckJPEG(f.Payload, 0) != nil {
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
