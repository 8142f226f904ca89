package h264enc

import (
	"testing"

	"github.com/framecast/framecast/internal/avc"
)

// TestCodecStrings pins the codec string OpenH264 writes for common sizes and
// rates (its level follows size, rate and bitrate): the gateway must take it
// from the SPS (avc.ParseSPS), and these are what a viewer page sees.
func TestCodecStrings(t *testing.T) {
	for _, c := range []struct {
		w, h  int
		fps   float64
		codec string
	}{
		{320, 240, 15, "avc1.42C00C"},
		{640, 480, 30, "avc1.42C01E"},
		{1280, 720, 30, "avc1.42C01F"},
		{1920, 1080, 30, "avc1.42C028"},
	} {
		e, err := New(Options{Width: c.w, Height: c.h, FPS: c.fps})
		if err != nil {
			t.Fatal(err)
		}
		au, key, err := e.Encode(make([]byte, c.w*c.h*3/2), false)
		e.Close()
		if err != nil || !key {
			t.Fatalf("%d×%d: key %v, %v", c.w, c.h, key, err)
		}
		a, err := avc.Parse(au)
		if err != nil {
			t.Fatal(err)
		}
		s, err := avc.ParseSPS(a.SPS)
		if err != nil {
			t.Fatal(err)
		}
		if s.Codec() != c.codec || s.Width != c.w || s.Height != c.h {
			t.Errorf("%d×%d at %v fps: %s %d×%d, want %s", c.w, c.h, c.fps, s.Codec(), s.Width, s.Height, c.codec)
		}
	}
}
