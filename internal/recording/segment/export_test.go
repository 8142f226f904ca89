package segment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/internal/testenv/chromium"
	"github.com/framecast/framecast/pkg/frames"
)

// recordedClip records a stream in 2 s segments and reads it back, as
// an export would: the frames of every segment, one after the other.
func recordedClip(t testing.TB, in []*frames.Frame, codec frames.Codec) []*frames.Frame {
	t.Helper()
	var all []*frames.Frame
	for _, s := range record(t, NewWriter("cam", codec, &Options{Target: 2 * time.Second}), in, true) {
		fs, _, err := Read(s.data)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, fs...)
	}
	return all
}

func pictures(fs []*frames.Frame) int {
	n := 0
	for _, f := range fs {
		if f.Kind != frames.KindH264Config && f.Kind != frames.KindOffline {
			n++
		}
	}
	return n
}

func TestExport(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 320, 240, 150, 30)
	h264 := recordedClip(t, h264Stream(t, clip.Config, clip.AUs, clip.Key, time.Second/30, nil), frames.CodecH264)
	other := clip.Config
	other.Width = 300
	changed := slices.Clone(h264)
	third := -1 // the configuration in front of picture 60
	for i, f := range changed {
		if f.Kind == frames.KindH264Config && f.Seq == 160 {
			third = i
		}
	}
	changed[third] = mustFrame(t, frames.KindH264Config, 160, changed[third].Captured, frames.AppendH264Config(nil, other))
	jpeg := recordedClip(t, jpegStream(t, 64, 48, 50, 100*time.Millisecond), frames.CodecJPEG)
	for _, c := range []struct {
		name      string
		in        []*frames.Frame
		codec     string
		pictures  int
		duration  time.Duration
		truncated bool
	}{
		{"h264", h264, "h264", 150, 5 * time.Second, false},
		// Starting inside a group of pictures: the clip starts at the next
		// configuration and keyframe.
		{"h264-mid-gop", h264[10:], "h264", 120, 4 * time.Second, false},
		{"h264-config-change", changed, "h264", 60, 2 * time.Second, true},
		{"jpeg", jpeg, "mjpeg", 50, 5 * time.Second, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, err := NewClip(c.in)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			n, err := cl.WriteTo(&buf)
			if err != nil || n != cl.Size() || int64(buf.Len()) != cl.Size() {
				t.Fatalf("WriteTo: %d bytes, %v; Size %d", n, err, cl.Size())
			}
			if got := topBoxes(t, buf.Bytes()); !slices.Equal(got, []string{"ftyp", "moov", "mdat"}) {
				t.Fatalf("boxes %v: the moov must come before the mdat", got)
			}
			if cl.Frames != c.pictures || cl.Truncated != c.truncated || (cl.Duration()-c.duration).Abs() > time.Millisecond {
				t.Fatalf("clip: %d pictures, truncated %v, %v; want %d, %v, %v", cl.Frames, cl.Truncated, cl.Duration(), c.pictures, c.truncated, c.duration)
			}
			p := ffprobe(t, buf.Bytes(), "mp4")
			st := p.Streams[0]
			if st.CodecName != c.codec || st.NbReadFrames != strconv.Itoa(c.pictures) {
				t.Fatalf("ffprobe: %+v", st)
			}
			d, _ := strconv.ParseFloat(p.Format.Duration, 64)
			if math.Abs(d-c.duration.Seconds()) > 0.002 {
				t.Fatalf("ffprobe says %v s, want %v", d, c.duration.Seconds())
			}
		})
	}
	for _, in := range [][]*frames.Frame{nil, h264[1:2], {frames.Offline(1, t0)}} {
		if _, err := NewClip(in); !errors.Is(err, ErrNothingToExport) {
			t.Errorf("NewClip of %d frames: %v", len(in), err)
		}
	}
}

// TestExportPlaysInChromium serves an exported clip over HTTP (with byte
// ranges, as the gateway will) to headless Chromium's <video>: it loads
// with the right duration and size, plays, and seeks.
func TestExportPlaysInChromium(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 640, 360, 180, 30)
	fs := recordedClip(t, h264Stream(t, clip.Config, clip.AUs, clip.Key, time.Second/30, nil), frames.CodecH264)
	cl, err := NewClip(fs)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := cl.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/clip.mp4", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		http.ServeContent(w, r, "clip.mp4", time.Time{}, bytes.NewReader(buf.Bytes()))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<!doctype html><video src="/clip.mp4" muted playsinline preload="auto"></video>`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := chromium.Start(t, chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
	b.Navigate(t, srv.URL+"/")
	ctx := b.Ctx
	// eval evaluates the expression body with v, the page's <video>.
	eval := func(body string) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		js := `(() => { const v = document.querySelector("video"); return ` + body + `; })()`
		return chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	}
	meta, err := eval(`new Promise((ok, fail) => {
		const done = () => ok(v.duration.toFixed(3) + " " + v.videoWidth + "x" + v.videoHeight);
		if (v.readyState >= 1) return done();
		v.onloadedmetadata = done;
		v.onerror = () => fail("error " + v.error.code + ": " + v.error.message);
	})`)
	if want := fmt.Sprintf("%.3f 640x360", cl.Duration().Seconds()); err != nil || meta != want {
		t.Fatalf("metadata %q, %v; want %q", meta, err, want)
	}
	played, err := eval(`v.play().then(() => new Promise(ok => {
		const start = v.currentTime;
		setTimeout(() => ok(String(v.currentTime - start)), 1000);
	}))`)
	if p, _ := strconv.ParseFloat(played, 64); err != nil || p < 0.5 {
		t.Fatalf("after 1 s of playing, currentTime moved %q (%v)", played, err)
	}
	seeked, err := eval(`new Promise((ok, fail) => {
		v.pause();
		v.onseeked = () => ok(v.currentTime.toFixed(2) + " " + (v.error ? v.error.code : "ok"));
		v.onerror = () => fail("error " + v.error.code);
		v.currentTime = 4.5;
	})`)
	if err != nil || seeked != "4.50 ok" {
		t.Fatalf("seek: %q, %v", seeked, err)
	}
	decoded, err := eval(`new Promise(ok => {
		if (!v.requestVideoFrameCallback) return ok("no rVFC");
		v.requestVideoFrameCallback((now, m) => ok(String(m.presentedFrames)));
		v.play();
	})`)
	if err != nil {
		t.Fatalf("after the seek: %v", err)
	}
	t.Logf("clip of %d bytes, %v: metadata %s, played %s s in 1 s, seeked to %s, frames presented %s", cl.Size(), cl.Duration(), meta, played, seeked, decoded)
}
