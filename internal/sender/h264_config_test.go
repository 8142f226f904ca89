package sender

import (
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// TestH264Settings: good SENDER_CODEC=h264 configurations and the H.264
// layers they give.
func TestH264Settings(t *testing.T) {
	for _, tt := range []struct {
		name, layers, bitrate string
		want                  []h264Spec
	}{
		{"defaults: WIDTH, the default bitrate", "", "", []h264Spec{{640, 0}}},
		{"one bitrate", "", "1200", []h264Spec{{640, 1200}}},
		{"layers, one bitrate for all", "1280,640", "900", []h264Spec{{1280, 900}, {640, 900}}},
		{"one bitrate each, 0 the default", "1280,640,320", "2500, 0 ,250", []h264Spec{{1280, 2500}, {640, 0}, {320, 250}}},
		{"bounds", "", "100000", []h264Spec{{640, 100000}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Codec, c.Layers, c.H264Bitrate = CodecH264, tt.layers, tt.bitrate
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			got, err := c.h264Specs()
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("specs %v, %v; want %v", got, err, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("specs %v, want %v", got, tt.want)
				}
			}
		})
	}
	c := DefaultConfig()
	c.Codec, c.Layers, c.LayerQuality = CodecH264, "1280,320,640", "90,60,70"
	if l := c.jpegSideLayer(); l != (layerSpec{320, 60}) {
		t.Fatalf("JPEG layer %v, want the smallest width at its quality", l)
	}
}

// TestH264SettingsRejected: each bad value stops the sender with an error
// naming the setting.
func TestH264SettingsRejected(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(c *Config)
		want []string
	}{
		{"unknown codec", func(c *Config) { c.Codec = "vp8" }, []string{"SENDER_CODEC (-codec)", `"vp8" must be "jpeg" or "h264"`}},
		{"empty codec", func(c *Config) { c.Codec = "" }, []string{"SENDER_CODEC", `must be "jpeg" or "h264"`}},
		{"seed protocol", func(c *Config) { c.Codec, c.Protocol = CodecH264, ProtocolSeed }, []string{"SENDER_CODEC", "SENDER_PROTOCOL=binary"}},
		{"fps over 60", func(c *Config) { c.Codec, c.FPS = CodecH264, 90 }, []string{"SENDER_FPS (-fps)", "90 must be 1-60 with SENDER_CODEC=h264"}},
		{"fps under 1", func(c *Config) { c.Codec, c.FPS, c.JpegFPS = CodecH264, 0.5, 0 }, []string{"SENDER_FPS", "0.5 must be 1-60"}},
		{"key interval 0", func(c *Config) { c.Codec, c.KeyInterval = CodecH264, 0 }, []string{"SENDER_KEY_INTERVAL (-key-interval)", "0s must be above 0 and at most 1m0s"}},
		{"key interval negative", func(c *Config) { c.Codec, c.KeyInterval = CodecH264, -time.Second }, []string{"SENDER_KEY_INTERVAL", "above 0"}},
		{"key interval over a minute", func(c *Config) { c.Codec, c.KeyInterval = CodecH264, 2*time.Minute }, []string{"SENDER_KEY_INTERVAL", "2m0s must be above 0 and at most 1m0s"}},
		{"jpeg fps negative", func(c *Config) { c.Codec, c.JpegFPS = CodecH264, -1 }, []string{"SENDER_JPEG_FPS (-jpeg-fps)", "-1 must be 0 (no JPEG layer)"}},
		{"jpeg fps NaN", func(c *Config) { c.Codec, c.JpegFPS = CodecH264, math.NaN() }, []string{"SENDER_JPEG_FPS", "NaN"}},
		{"jpeg fps above fps", func(c *Config) { c.Codec, c.JpegFPS = CodecH264, 12 }, []string{"SENDER_JPEG_FPS", "12 must be", "at most SENDER_FPS 10"}},
		{"bitrate without h264", func(c *Config) { c.H264Bitrate = "800" }, []string{"SENDER_H264_BITRATE (-h264-bitrate)", `"800" is set without SENDER_CODEC=h264`}},
		{"bitrate not a number", func(c *Config) { c.Codec, c.H264Bitrate = CodecH264, "fast" }, []string{"SENDER_H264_BITRATE", `"fast" is not an integer`}},
		{"bitrate empty item", func(c *Config) { c.Codec, c.Layers, c.H264Bitrate = CodecH264, "640,320", "800," }, []string{"SENDER_H264_BITRATE", "item 2 is empty"}},
		{"bitrate count", func(c *Config) { c.Codec, c.Layers, c.H264Bitrate = CodecH264, "640,320", "800,400,200" }, []string{"SENDER_H264_BITRATE", "3 values for 2 layers"}},
		{"bitrate too low", func(c *Config) { c.Codec, c.H264Bitrate = CodecH264, "10" }, []string{"SENDER_H264_BITRATE", "10 kbit/s must be 0 (the default for the size) or 50-100000"}},
		{"bitrate too high", func(c *Config) { c.Codec, c.H264Bitrate = CodecH264, "200000" }, []string{"SENDER_H264_BITRATE", "200000 kbit/s"}},
		{"bitrate negative", func(c *Config) { c.Codec, c.H264Bitrate = CodecH264, "-5" }, []string{"SENDER_H264_BITRATE", "-5 kbit/s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.set(&c)
			wantInvalid(t, c, tt.want)
		})
	}
}

// TestH264SettingsFromEnvAndFlags: the settings are read from SENDER_*
// and flags, and listed by -h.
func TestH264SettingsFromEnvAndFlags(t *testing.T) {
	t.Setenv("SENDER_CODEC", "h264")
	t.Setenv("SENDER_H264_BITRATE", "900")
	t.Setenv("SENDER_KEY_INTERVAL", "3s")
	c, err := LoadConfig([]string{"-jpeg-fps", "1.5"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Codec != CodecH264 || c.H264Bitrate != "900" || c.KeyInterval != 3*time.Second || c.JpegFPS != 1.5 {
		t.Fatalf("config %+v", c)
	}
	var b strings.Builder
	PrintUsage(&b)
	for _, s := range []string{"SENDER_CODEC", "SENDER_H264_BITRATE", "SENDER_KEY_INTERVAL", "SENDER_JPEG_FPS", "at most 2 a second"} {
		if !strings.Contains(b.String(), s) {
			t.Fatalf("-h does not mention %s", s)
		}
	}
}

// TestKeyframeLimiter: requests force a keyframe at once, then at most one
// per gap; requests within a gap are merged into one at its end, never
// lost; stop cancels a deferred one.
func TestKeyframeLimiter(t *testing.T) {
	var forced atomic.Int32
	var times [8]atomic.Int64
	const gap = 200 * time.Millisecond
	k := newKeyframeLimiter(gap, func() {
		n := forced.Add(1)
		if int(n) <= len(times) {
			times[n-1].Store(time.Now().UnixNano())
		}
	})
	k.request()
	if forced.Load() != 1 {
		t.Fatal("the first request did not force a keyframe at once")
	}
	for range 10 {
		k.request()
	}
	if forced.Load() != 1 {
		t.Fatal("a request within the gap forced a keyframe at once")
	}
	testenv.WaitFor(t, 5*time.Second, "the deferred keyframe", func() error {
		if forced.Load() != 2 {
			return errors.New("not yet")
		}
		return nil
	})
	if d := time.Duration(times[1].Load() - times[0].Load()); d < gap*9/10 {
		t.Fatalf("keyframes %v apart, want at least %v", d, gap)
	}
	k.request() // within the gap of the deferred one: deferred again
	k.stop()
	at := time.Now()
	testenv.WaitFor(t, 5*time.Second, "twice the gap", func() error {
		if time.Since(at) < 2*gap {
			return errors.New("waiting")
		}
		return nil
	})
	k.request()
	if n := forced.Load(); n != 2 {
		t.Fatalf("%d keyframes forced after stop, want 2", n)
	}
}
