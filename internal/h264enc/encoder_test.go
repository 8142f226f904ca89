package h264enc

import (
	"context"
	"errors"
	"io"
	"math"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/internal/testclip"
)

func needFFmpeg(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps)")
	}
}

// encodedClip is what encodeClip produced.
type encodedClip struct {
	stream []byte // every access unit, concatenated
	keys   []int  // pictures Encode reported as keyframes
	aus    [][]byte
}

// encodeClip encodes every picture of c; force(i) says whether to force a
// keyframe at picture i, before(i) runs before each Encode.
func encodeClip(t *testing.T, e *Encoder, c testclip.Clip, force func(int) bool, before func(int)) encodedClip {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := testclip.Open(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out encodedClip
	for i := 0; ; i++ {
		pic, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if before != nil {
			before(i)
		}
		au, key, err := e.Encode(pic, force != nil && force(i))
		if err != nil {
			t.Fatalf("picture %d: %v", i, err)
		}
		if key {
			out.keys = append(out.keys, i)
		}
		out.aus = append(out.aus, append([]byte(nil), au...))
		out.stream = append(out.stream, au...)
	}
	return out
}

func TestEncodeClipDecodesWithForcedKeyframes(t *testing.T) {
	needFFmpeg(t)
	c := testclip.HD
	c.Frames = 75
	e, err := New(Options{Width: c.Width, Height: c.Height, FPS: float64(c.FPS), KeyInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// Picture 17 is forced through Encode's argument, picture 40 through
	// ForceKeyframe from another goroutine.
	got := encodeClip(t, e, c, func(i int) bool { return i == 17 }, func(i int) {
		if i == 40 {
			var wg sync.WaitGroup
			wg.Go(e.ForceKeyframe)
			wg.Wait()
		}
	})
	// A forced IDR restarts OpenH264's interval: 0, 17 and 40, then 30 after 40.
	want := []int{0, 17, 40, 70}
	if !slices.Equal(got.keys, want) {
		t.Errorf("keyframes at %v, want %v (forced 17 and 40, then every 30)", got.keys, want)
	}
	for i, au := range got.aus {
		a, err := avc.Parse(au)
		if err != nil {
			t.Fatalf("picture %d: %v", i, err)
		}
		isKey := slices.Contains(want, i)
		if a.Key != isKey || (a.SPS != nil) != isKey || (a.PPS != nil) != isKey {
			t.Errorf("picture %d: IDR %v SPS %v PPS %v, want all %v", i, a.Key, a.SPS != nil, a.PPS != nil, isKey)
		}
		for _, n := range a.NALUs {
			if typ := avc.Type(n); typ != avc.NALIDR && typ != avc.NALSlice && typ != avc.NALSPS && typ != avc.NALPPS {
				t.Errorf("picture %d: unexpected NAL unit %s", i, typ)
			}
		}
		if !isKey {
			continue
		}
		s, err := avc.ParseSPS(a.SPS)
		if err != nil {
			t.Fatal(err)
		}
		if s.Codec() != "avc1.42C01F" || s.Width != c.Width || s.Height != c.Height || s.CodedWidth != c.Width || s.CodedHeight != c.Height {
			t.Errorf("picture %d: SPS says %s %d×%d (coded %d×%d), want avc1.42C01F (constrained baseline, level 3.1) %d×%d",
				i, s.Codec(), s.Width, s.Height, s.CodedWidth, s.CodedHeight, c.Width, c.Height)
		}
		if i == 0 {
			t.Logf("SPS %x", a.SPS)
		}
	}
	n, err := testclip.DecodedFrames(context.Background(), got.stream)
	if err != nil {
		t.Fatal(err)
	}
	if n != c.Frames {
		t.Errorf("ffmpeg decoded %d pictures, want %d", n, c.Frames)
	}
	t.Logf("%d pictures, %d bytes: %.0f kbit/s at %d fps", c.Frames, len(got.stream), float64(len(got.stream))*8/1000/(float64(c.Frames)/float64(c.FPS)), c.FPS)
}

// TestEncodeCroppedSize: 360 lines are 22.5 macroblocks; the SPS crops 8 of
// the 368 coded lines, and a decoder shows 640×360.
func TestEncodeCroppedSize(t *testing.T) {
	needFFmpeg(t)
	c := testclip.Clip{Width: 640, Height: 360, FPS: 15, Frames: 10, Noise: 8}
	e, err := New(Options{Width: c.Width, Height: c.Height, FPS: float64(c.FPS), KeyInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Options(); got.BitrateKbps != DefaultBitrate(640, 360, 15) || got.Threads != 1 {
		t.Errorf("defaults: %+v", got)
	}
	got := encodeClip(t, e, c, nil, nil)
	if want := []int{0, 8}; !slices.Equal(got.keys, want) {
		t.Errorf("keyframes at %v, want %v (0.5 s at 15 fps: every 8)", got.keys, want)
	}
	a, err := avc.Parse(got.aus[0])
	if err != nil {
		t.Fatal(err)
	}
	s, err := avc.ParseSPS(a.SPS)
	if err != nil {
		t.Fatal(err)
	}
	if s.Width != 640 || s.Height != 360 || s.CodedHeight != 368 || s.ProfileIDC != 66 || s.Constraints&0x40 == 0 {
		t.Errorf("SPS %s %d×%d coded %d×%d, want constrained baseline 640×360 coded 640×368", s.Codec(), s.Width, s.Height, s.CodedWidth, s.CodedHeight)
	}
	t.Logf("SPS %s %x", s.Codec(), a.SPS)
	if n, err := testclip.DecodedFrames(context.Background(), got.stream); err != nil || n != c.Frames {
		t.Errorf("ffmpeg decoded %d pictures (%v), want %d", n, err, c.Frames)
	}
}

// TestForceKeyframeFromManyGoroutines runs under -race: requests from other
// goroutines while the encoder works.
func TestForceKeyframeFromManyGoroutines(t *testing.T) {
	e, err := New(Options{Width: 160, Height: 120, FPS: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	pic := make([]byte, 160*120*3/2)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
					e.ForceKeyframe()
					runtime.Gosched()
				}
			}
		})
	}
	keys := 0
	for i := range 30 {
		// Wait for a request made after the previous Encode took the last.
		deadline := time.Now().Add(10 * time.Second)
		for !e.force.Load() {
			if time.Now().After(deadline) {
				t.Fatal("no keyframe request in 10 s")
			}
			runtime.Gosched()
		}
		pic[i] = byte(i)
		_, key, err := e.Encode(pic, false)
		if err != nil {
			t.Fatal(err)
		}
		if key {
			keys++
		}
	}
	close(stop)
	wg.Wait()
	if keys != 30 {
		t.Errorf("%d keyframes in 30 pictures, each after a request", keys)
	}
	// With the requests gone, the next picture after one keyframe is a delta.
	e.ForceKeyframe()
	if _, key, _ := e.Encode(pic, false); !key {
		t.Error("requested keyframe is not one")
	}
	if _, key, _ := e.Encode(pic, false); key {
		t.Error("a second keyframe from one request")
	}
}

func TestEncodeErrors(t *testing.T) {
	e, err := New(Options{Width: 64, Height: 48, FPS: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Encode(make([]byte, 64*48), false); err == nil || !strings.Contains(err.Error(), "picture of 3072 bytes, want 4608") {
		t.Errorf("short picture: %v", err)
	}
	if _, _, err := e.Encode(nil, false); err == nil {
		t.Error("nil picture: no error")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := e.Encode(make([]byte, 64*48*3/2), false); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

func TestOptionsErrors(t *testing.T) {
	ok := Options{Width: 1280, Height: 720, FPS: 30}
	for _, c := range []struct {
		name string
		edit func(*Options)
		msg  string
	}{
		{"zero width", func(o *Options) { o.Width = 0 }, "must be positive"},
		{"negative height", func(o *Options) { o.Height = -2 }, "must be positive"},
		{"too small", func(o *Options) { o.Width, o.Height = 14, 720 }, "at least 16 pixels a side"},
		{"odd width", func(o *Options) { o.Width = 641 }, "must be even"},
		{"odd height", func(o *Options) { o.Height = 481 }, "must be even"},
		{"too wide", func(o *Options) { o.Width = 4098 }, "at most 4096 pixels a side"},
		{"too many macroblocks", func(o *Options) { o.Width, o.Height = 4096, 4096 }, "more than 36864 macroblocks"},
		{"zero fps", func(o *Options) { o.FPS = 0 }, "FPS 0 out of range 1–60"},
		{"fps too high", func(o *Options) { o.FPS = 61 }, "FPS 61 out of range"},
		{"fps NaN", func(o *Options) { o.FPS = math.NaN() }, "FPS NaN out of range"},
		{"negative bitrate", func(o *Options) { o.BitrateKbps = -1 }, "bitrate -1 kbit/s out of range"},
		{"bitrate too high", func(o *Options) { o.BitrateKbps = MaxBitrateKbps + 1 }, "out of range 0–100000"},
		{"negative key interval", func(o *Options) { o.KeyInterval = -time.Second }, "key interval -1s out of range"},
		{"key interval too long", func(o *Options) { o.KeyInterval = 2 * time.Minute }, "key interval 2m0s out of range"},
		{"negative threads", func(o *Options) { o.Threads = -1 }, "threads -1 out of range"},
		{"too many threads", func(o *Options) { o.Threads = 5 }, "threads 5 out of range 0–4"},
		{"rate control", func(o *Options) { o.RateControl = 7 }, "unknown rate control 7"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.edit(&o)
			e, err := New(o)
			if err == nil {
				e.Close()
				t.Fatalf("no error for %+v", o)
			}
			if !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "h264enc: ") {
				t.Fatalf("error %q, want %q", err, c.msg)
			}
		})
	}
}

// TestLimitsAccepted: the edges of every range are accepted by OpenH264 too.
func TestLimitsAccepted(t *testing.T) {
	for _, o := range []Options{
		{Width: MinSide, Height: MinSide, FPS: MinFPS},
		{Width: 320, Height: 240, FPS: MaxFPS, Threads: MaxThreads, KeyInterval: MaxKeyInterval, BitrateKbps: MaxBitrateKbps, RateControl: RateQuality},
	} {
		e, err := New(o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if _, _, err := e.Encode(make([]byte, o.Width*o.Height*3/2), false); err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		e.Close()
	}
}

func TestDefaults(t *testing.T) {
	for _, c := range []struct {
		w, h int
		fps  float64
		want int
	}{{1280, 720, 30, DefaultBitrateKbps}, {640, 480, 30, 833}, {1280, 720, 7.5, 1250}, {160, 120, 5, 200}} {
		if got := DefaultBitrate(c.w, c.h, c.fps); got != c.want {
			t.Errorf("DefaultBitrate(%d, %d, %v) = %d, want %d", c.w, c.h, c.fps, got, c.want)
		}
	}
	if got := KeyIntervalFrames(DefaultKeyInterval, 30); got != 60 {
		t.Errorf("2 s at 30 fps = %d pictures", got)
	}
	if got := KeyIntervalFrames(time.Millisecond, 30); got != 1 {
		t.Errorf("1 ms at 30 fps = %d pictures, want 1", got)
	}
}
