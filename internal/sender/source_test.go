package sender

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/framecast/framecast/internal/testenv"
)

func TestParseSource(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x.avi")
	writeFile(t, file, "x")
	tests := []struct {
		in      string
		kind    sourceKind
		index   int
		wantErr string
	}{
		{"0", sourceDevice, 0, ""},
		{"3", sourceDevice, 3, ""},
		{"/dev/video1", sourceDevice, -1, ""},
		{"/dev/v4l/by-id/usb-cam-video-index0", sourceDevice, -1, ""},
		{"test", sourceTest, -1, ""},
		{"rtsp://10.0.0.5:554/live", sourceStream, -1, ""},
		{"RTSPS://cam/live", sourceStream, -1, ""},
		{"http://cam/video.mjpg", sourceStream, -1, ""},
		{file, sourceFile, -1, ""},
		{"", 0, 0, "empty"},
		{"99999999", 0, 0, "out of range"},
		{"udp://239.0.0.1:1234", 0, 0, "scheme"},
		{"rtsp:///nohost", 0, 0, "no host"},
		{"missing.mp4", 0, 0, "does not exist"},
	}
	for _, tt := range tests {
		got, err := parseSource(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseSource(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.kind != tt.kind || got.index != tt.index {
			t.Errorf("parseSource(%q) = %+v, %v; want kind %v index %d", tt.in, got, err, tt.kind, tt.index)
		}
	}
}

func TestSourceStringRedactsPassword(t *testing.T) {
	s, err := parseSource("rtsp://admin:hunter2@cam.local/stream")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s.String(), "hunter2") {
		t.Fatalf("password in %q", s.String())
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	ceilings := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, c := range ceilings {
		c *= time.Millisecond
		d := b.next()
		if d < c/2 || d > c {
			t.Errorf("attempt %d: pause %v outside [%v, %v]", i, d, c/2, c)
		}
	}
	b.reset()
	if d := b.next(); d > 100*time.Millisecond {
		t.Errorf("after reset: pause %v, want <= 100ms", d)
	}
}

func TestPacerSpacesEvents(t *testing.T) {
	p := newPacer(50) // 20 ms
	ctx := context.Background()
	start := time.Now()
	for range 11 {
		if err := p.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("11 events at 50/s took %v, want >= 200ms", el)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p2 := newPacer(0.01)
	_ = p2.wait(cctx) // first event is immediate
	if err := p2.wait(cctx); err == nil {
		t.Fatal("wait on a canceled context returned nil")
	}
}

// makeClip writes a short video with ffmpeg's test source and returns its
// path. Sizes and rates are the tests' own; the file is tiny.
func makeClip(t testing.TB, size string, rate int, seconds float64) string {
	t.Helper()
	ffmpeg := testenv.RequireTool(t, "ffmpeg")
	out := filepath.Join(t.TempDir(), "clip.avi")
	cmd := exec.Command(ffmpeg, "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size="+size+":rate="+itoa(rate),
		"-t", ftoa(seconds), "-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p", "-y", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg failed: %v\n%s", err, b)
	}
	return out
}

// TestFileSourceLoops reads a 10-frame clip 25 times over: the source
// rewinds at the end, and is paced at the file's frame rate.
func TestFileSourceLoops(t *testing.T) {
	clip := makeClip(t, "160x120", 40, 0.25)
	w, h, fps, err := probeFile(clip)
	if err != nil || w != 160 || h != 120 || fps != 40 {
		t.Fatalf("probeFile = %d×%d %v fps, %v; want 160×120 40 fps", w, h, fps, err)
	}
	src, err := openSource(sourceSpec{kind: sourceFile, index: -1, name: clip}, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	m := gocv.NewMat()
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	for i := range 25 {
		if err := src.Read(ctx, &m); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if m.Cols() != 160 || m.Rows() != 120 {
			t.Fatalf("frame %d is %d×%d", i, m.Cols(), m.Rows())
		}
	}
	// 25 frames at 40 fps: 24 intervals of 25 ms.
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("25 frames of a 40 fps file read in %v: not paced", el)
	}
}

func TestTestPatternSize(t *testing.T) {
	for _, tt := range []struct{ width, w, h int }{{0, 640, 480}, {160, 160, 120}, {1280, 1280, 960}, {101, 101, 74}} {
		p := newTestPattern(tt.width, 10)
		m := gocv.NewMat()
		p.draw(&m, time.Now())
		if m.Cols() != tt.w || m.Rows() != tt.h || m.Type() != gocv.MatTypeCV8UC3 {
			t.Errorf("width %d: pattern %d×%d type %v, want %d×%d CV8UC3", tt.width, m.Cols(), m.Rows(), m.Type(), tt.w, tt.h)
		}
		m.Close()
		p.Close()
	}
}
