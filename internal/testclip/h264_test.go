package testclip

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/pkg/frames"
)

// needFFmpeg skips the test when ffmpeg is missing, and fails it under CI
// (CI=true), where `make test` installs it. Short mode skips it, as
// testenv.RequireTool does.
func needFFmpeg(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the test runs ffmpeg")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ffmpeg is not installed; `make deps` installs it")
		}
		t.Skip("ffmpeg not installed (make deps)")
	}
}

// smallH264 is a small clip for tests: 12 pictures of 160×96, a keyframe
// every 4.
var smallH264 = H264ClipSpec{Clip: Clip{Width: 160, Height: 96, FPS: 30, Frames: 12, Noise: 8}, Kbps: 300, GOP: 4, Live: true}

func makeSmallH264(t *testing.T, s H264ClipSpec) (*H264Clip, []byte) {
	t.Helper()
	needFFmpeg(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := filepath.Join(t.TempDir(), "clip.h264")
	c, err := MakeH264Clip(ctx, s, path)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadH264Clip(path)
	if err != nil || len(back.AUs) != len(c.AUs) {
		t.Fatalf("reading the clip back: %v", err)
	}
	return c, bytes.Join(c.AUs, nil)
}

// TestMakeH264Clip: ffmpeg's clip splits into one access unit per
// picture at the delimiters, keyframes where the GOP says, each keyframe
// with its parameter sets, no delimiter left in any unit, and a
// configuration from the SPS; with a bitrate and live settings or with
// libx264's defaults.
func TestMakeH264Clip(t *testing.T) {
	defaults := smallH264
	defaults.Kbps, defaults.Live = 0, false
	for name, s := range map[string]H264ClipSpec{"live at 300 kbit/s": smallH264, "libx264 defaults": defaults} {
		t.Run(name, func(t *testing.T) {
			c, stream := makeSmallH264(t, s)
			if len(c.AUs) != 12 || c.Keyframes() != 3 {
				t.Fatalf("%d access units, %d keyframes; want 12, 3", len(c.AUs), c.Keyframes())
			}
			for i, au := range c.AUs {
				a, err := avc.Parse(au)
				if err != nil {
					t.Fatalf("access unit %d: %v", i, err)
				}
				for _, n := range a.NALUs {
					if avc.Type(n) == avc.NALAUD {
						t.Fatalf("access unit %d still holds a delimiter", i)
					}
				}
				if a.Key != (i%4 == 0) || a.Key != c.Key[i] || (a.Key && (a.SPS == nil || a.PPS == nil)) {
					t.Fatalf("access unit %d: key %v (recorded %v), SPS %v, PPS %v", i, a.Key, c.Key[i], a.SPS != nil, a.PPS != nil)
				}
			}
			cfg := c.Config
			if !strings.HasPrefix(cfg.Codec, "avc1.42") || cfg.Width != 160 || cfg.Height != 96 {
				t.Fatalf("configuration %+v: want a baseline avc1.42xxxx codec, 160×96", cfg)
			}
			if _, err := frames.ParseH264Config(frames.AppendH264Config(nil, cfg)); err != nil {
				t.Fatalf("configuration does not parse back: %v", err)
			}
			n, err := DecodedFrames(context.Background(), stream)
			if err != nil || n != 12 {
				t.Fatalf("ffmpeg decoded %d pictures of the access units (%v), want 12", n, err)
			}
			if c.Bytes() != len(stream) {
				t.Errorf("Bytes() = %d, want %d", c.Bytes(), len(stream))
			}
		})
	}
}

// TestSplitH264Refuses: a stream a publisher could not play gets an error
// that says why.
func TestSplitH264Refuses(t *testing.T) {
	c, _ := makeSmallH264(t, smallH264)
	aud := []byte{0, 0, 0, 1, 9, 0xf0}
	noAUD := bytes.Join(c.AUs, nil)
	startsWithDelta := append(append([]byte{}, aud...), c.AUs[1]...)
	for name, tc := range map[string]struct {
		stream []byte
		want   string
	}{
		"empty":                    {nil, "empty"},
		"no delimiters":            {noAUD, "no access unit delimiters"},
		"starts with a delta":      {startsWithDelta, "not a keyframe"},
		"a delimiter alone":        {append(append([]byte{}, aud...), aud...), "no access units"},
		"not Annex B":              {[]byte{1, 2, 3, 4, 5}, "H.264 clip"},
		"an access unit, no slice": {append(append(append([]byte{}, aud...), c.AUs[0]...), append(append([]byte{}, aud...), 0, 0, 0, 1, 6, 5, 1, 0x80)...), "no slice"},
	} {
		_, err := SplitH264(tc.stream)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %q", name, err, tc.want)
		}
	}
	for name, s := range map[string]H264ClipSpec{
		"no GOP":           {Clip: smallH264.Clip, Kbps: 300},
		"negative bitrate": {Clip: smallH264.Clip, Kbps: -1, GOP: 4},
		"bad clip":         {Clip: Clip{Width: 161, Height: 96, FPS: 30, Frames: 1}, GOP: 4},
	} {
		if _, err := MakeH264Clip(context.Background(), s, filepath.Join(t.TempDir(), "x")); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

func TestH264ClipCommand(t *testing.T) {
	live := H264ClipSpec{Clip: HD, Kbps: 2500, GOP: 60, Live: true}
	want := "ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=1280x720:rate=30,noise=alls=8:allf=t,format=yuv420p -frames:v 90 -c:v libx264 -preset veryfast -tune zerolatency -profile:v baseline -bf 0 -g 60 -keyint_min 60 -sc_threshold 0 -b:v 2500k -maxrate 2500k -bufsize 1250k -x264-params aud=1:repeat-headers=1 -f h264 -y /tmp/clip.h264"
	if got := live.Command("/tmp/clip.h264"); got != want {
		t.Errorf("live:\ngot  %s\nwant %s", got, want)
	}
	plain := H264ClipSpec{Clip: Clip{Width: 320, Height: 240, FPS: 30, Frames: 60}, GOP: 30}
	want = "ffmpeg -hide_banner -loglevel error -f lavfi -i testsrc2=size=320x240:rate=30,format=yuv420p -frames:v 60 -c:v libx264 -profile:v baseline -bf 0 -g 30 -keyint_min 30 -sc_threshold 0 -x264-params aud=1:repeat-headers=1 -f h264 -y clip.h264"
	if got := plain.Command("clip.h264"); got != want {
		t.Errorf("libx264 defaults:\ngot  %s\nwant %s", got, want)
	}
}
