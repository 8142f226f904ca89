package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

func TestSnapshotAndMJPEGWithFFmpeg(t *testing.T) {
	ffprobe := testenv.RequireTool(t, "ffprobe")
	ffmpeg := testenv.RequireTool(t, "ffmpeg")
	g := testenv.StartGateway(t)

	resp, _ := soGet(t, g.URL()+"/video/cam/snapshot.jpg")
	if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("snapshot of a room with no frame: %s, Cache-Control %q; want 404, no-store",
			resp.Status, resp.Header.Get("Cache-Control"))
	}

	soStartPublisher(t, soWS(g.URL(), "cam", "role=publish"), 40*time.Millisecond, soJPEG(t, 320, 240, 1, 0))

	testenv.WaitFor(t, 5*time.Second, "a snapshot", func() error {
		return testenv.HTTPStatus(g.URL()+"/video/cam/snapshot.jpg", http.StatusOK)
	})
	resp, body := soGet(t, g.URL()+"/video/cam/snapshot.jpg")
	if ct, cc := resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"); ct != "image/jpeg" || cc != "no-store" {
		t.Fatalf("snapshot headers: Content-Type %q, Cache-Control %q", ct, cc)
	}
	img, err := jpeg.Decode(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("snapshot is not a valid JPEG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 320 || b.Dy() != 240 {
		t.Fatalf("snapshot is %v, want 320x240", b)
	}

	stream := g.URL() + "/video/cam/stream.mjpg"
	t.Run("ffprobe", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ffprobe, "-v", "error", "-select_streams", "v:0",
			"-show_entries", "stream=codec_name,width,height", "-of", "json", stream).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v\n%s", stream, err, out)
		}
		var probe struct {
			Streams []struct {
				CodecName     string `json:"codec_name"`
				Width, Height int
			}
		}
		if err := json.Unmarshal(out, &probe); err != nil {
			t.Fatalf("ffprobe output: %v\n%s", err, out)
		}
		if len(probe.Streams) != 1 || probe.Streams[0].CodecName != "mjpeg" ||
			probe.Streams[0].Width != 320 || probe.Streams[0].Height != 240 {
			t.Fatalf("ffprobe says %s, want one mjpeg stream of 320x240", out)
		}
	})
	t.Run("ffmpeg reads 3 frames", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-i", stream,
			"-frames:v", "3", "-c:v", "copy", filepath.Join(dir, "f%d.jpg")).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg %s: %v\n%s", stream, err, out)
		}
		for i := 1; i <= 3; i++ {
			b, err := os.ReadFile(filepath.Join(dir, "f"+strconv.Itoa(i)+".jpg"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("frame %d from ffmpeg: %v", i, err)
			}
			if bo := img.Bounds(); bo.Dx() != 320 || bo.Dy() != 240 {
				t.Fatalf("frame %d is %v", i, bo)
			}
		}
	})
}

func TestMJPEGStreamParts(t *testing.T) {
	srv, ts := soInProcess(t, nil)
	jpg := soJPEG(t, 64, 48, 2, 20_000)
	soStartPublisher(t, soWS(ts.URL, "cam", "role=publish"), 20*time.Millisecond, jpg)

	for _, tc := range []struct{ path, want string }{
		{"/video/bad-name/snapshot.jpg", "404"},
		{"/video/bad-name/stream.mjpg", "404"},
	} {
		if resp, _ := soGet(t, ts.URL+tc.path); strconv.Itoa(resp.StatusCode) != tc.want {
			t.Errorf("GET %s: %s, want %s", tc.path, resp.Status, tc.want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/video/cam/stream.mjpg", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/x-mixed-replace" || params["boundary"] != "frame" {
		t.Fatalf("Content-Type %q: want multipart/x-mixed-replace; boundary=frame", resp.Header.Get("Content-Type"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q", cc)
	}
	mr := multipart.NewReader(resp.Body, "frame")
	for i := 0; i < 3; i++ {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		if p.Header.Get("Content-Type") != "image/jpeg" || p.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
			t.Fatalf("part %d headers %v for %d bytes", i, p.Header, len(b))
		}
		if !bytes.Equal(b, jpg) {
			t.Fatalf("part %d is not the published JPEG", i)
		}
	}

	// Shutdown ends the stream, and waits for its handler.
	ended := make(chan time.Time, 1)
	go func() {
		for {
			p, err := mr.NextPart()
			if err != nil {
				ended <- time.Now()
				return
			}
			_, _ = io.Copy(io.Discard, p)
		}
	}()
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	start := time.Now()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	t.Logf("Shutdown took %v", time.Since(start).Round(time.Millisecond))
	select {
	case at := <-ended:
		if took := at.Sub(start); took > 2*time.Second {
			t.Fatalf("MJPEG stream ended %v after Shutdown began", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("MJPEG stream still open 5 s after Shutdown")
	}
}

// TestSlowMJPEGClientCostsNothing: an MJPEG client that never reads fills
// its socket, is cut off after the write timeout, and meanwhile a WebSocket
// viewer of the same room gets every frame in time.
func TestSlowMJPEGClientCostsNothing(t *testing.T) {
	_, ts := soInProcess(t, func(c *gateway.Config) { c.WriteTimeout = time.Second })
	const period = 20 * time.Millisecond // 50 frames/s of 100 KB: 5 MB/s
	jpg := soJPEG(t, 64, 48, 3, 100_000)

	viewer := testenv.Dial(t, soWS(ts.URL, "cam", "role=view&format=binary"), nil)
	type arrival struct {
		seq     uint64
		latency time.Duration
	}
	var (
		mu       sync.Mutex
		arrivals []arrival
	)
	go func() {
		for {
			f, err := viewer.ReadFrame(30 * time.Second)
			if err != nil {
				return
			}
			mu.Lock()
			arrivals = append(arrivals, arrival{f.Seq, time.Since(f.Captured)})
			mu.Unlock()
		}
	}()
	pub := soStartPublisher(t, soWS(ts.URL, "cam", "role=publish"), period, jpg)
	testenv.WaitFor(t, 5*time.Second, "the viewer's first frame", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(arrivals) == 0 {
			return errors.New("none yet")
		}
		return nil
	})

	// The stuck client: a 4 KB receive buffer, and it never reads.
	stuck, err := testenv.SmallReceiveDialer(4096).Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	fmt.Fprintf(stuck, "GET /video/cam/stream.mjpg HTTP/1.1\r\nHost: %s\r\n\r\n", ts.Listener.Addr())

	firstSeq := pub.Seq()
	testenv.WaitFor(t, 10*time.Second, "the stuck MJPEG client to be cut off", func() error {
		if n := testenv.Metric(t, ts.URL, `framecast_viewers_cut_off_total{reason="slow"}`); n < 1 {
			return fmt.Errorf("cut off: %v", n)
		}
		return nil
	})
	lastSeq := pub.Seq()
	time.Sleep(300 * time.Millisecond) // let the viewer catch the last ones: frames in flight, counted only if they arrive

	mu.Lock()
	defer mu.Unlock()
	got := map[uint64]bool{}
	var lat []time.Duration
	for _, a := range arrivals {
		if a.seq > firstSeq && a.seq <= lastSeq {
			got[a.seq] = true
			lat = append(lat, a.latency)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sent := int(lastSeq - firstSeq)
	if sent < 25 || len(lat) == 0 {
		t.Fatalf("only %d frames sent, %d received while the client was stuck", sent, len(lat))
	}
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	t.Logf("while an MJPEG client was stuck: viewer got %d of %d frames, latency p50 %v p99 %v",
		len(got), sent, p50.Round(time.Microsecond), p99.Round(time.Microsecond))
	if len(got) < sent*9/10 {
		t.Fatalf("the viewer got %d of %d frames while an MJPEG client was stuck", len(got), sent)
	}
	if p99 > 500*time.Millisecond {
		t.Fatalf("viewer latency p99 %v while an MJPEG client was stuck", p99)
	}
	if n := testenv.Metric(t, ts.URL, `framecast_connections{role="mjpeg"}`); n != 0 {
		t.Fatalf("%v MJPEG connections still counted after the cut-off", n)
	}
}

// TestMJPEGPartEndsWithBoundary: each part is followed at once by the next
// boundary, which is what tells a browser the image is complete: a room that
// sends one frame shows it now, not when a second frame arrives.
func TestMJPEGPartEndsWithBoundary(t *testing.T) {
	_, ts := startInProcess(t, nil)
	pub := testenv.Dial(t, wsURL(ts.URL, "still", "role=publish"), nil)
	jpg := testJPEG(t, 1, 3000)
	if err := pub.SendBinary(frames.AppendBinary(nil, 1, time.Now(), jpg)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 5*time.Second, "the frame to reach the room", func() error {
		return testenv.HTTPStatus(ts.URL+"/video/still/snapshot.jpg", http.StatusOK)
	})
	resp, err := http.Get(ts.URL + "/video/still/stream.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := append(append([]byte{}, jpg...), "\r\n--frame\r\n"...)
	var got []byte
	buf := make([]byte, 4096)
	deadline := time.AfterFunc(5*time.Second, func() { resp.Body.Close() })
	defer deadline.Stop()
	for !bytes.Contains(got, want) {
		n, err := resp.Body.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("stream ended (%v) after %d bytes without the part and its closing boundary", err, len(got))
		}
	}
	if !bytes.HasPrefix(got, []byte("--frame\r\nContent-Type: image/jpeg\r\n")) {
		t.Fatalf("stream starts %.60q", got)
	}
}
