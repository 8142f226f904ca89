package loadgen_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestSeeks moves a viewer between a room's recording and live on a
// gateway that plays back from a store: an H.264 viewer (the publisher
// plays the clip the recording was made of), then a JPEG one. Figures are
// not judged, only their order and what they say about the footage.
func TestSeeks(t *testing.T) {
	t.Parallel()
	testenv.RequireTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const gop = 30 // 1 s at 30 fps
	spec := testclip.H264ClipSpec{Clip: testclip.Clip{Width: 320, Height: 240, FPS: 30, Frames: 2 * gop, Noise: 8}, Kbps: 300, GOP: gop, Live: true}
	path := filepath.Join(t.TempDir(), "clip.h264")
	clip, err := testclip.MakeH264Clip(ctx, spec, path)
	if err != nil {
		t.Fatal(err)
	}

	// 40 s of footage ending 5 s ago: the clip over and over, and a JPEG
	// stream at 2 fps.
	dir := t.TempDir()
	st, err := store.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	cat := index.New(st, nil)
	const room, seconds = "seek", 40
	start := time.Now().Add(-(seconds + 5) * time.Second).Truncate(time.Millisecond)
	var h264 []*frames.Frame
	for i := range seconds / 2 {
		at := start.Add(time.Duration(i) * 2 * time.Second)
		h264 = append(h264, recordtest.H264(t, room, clip, at, time.Second/30, uint64(1+i*len(clip.AUs)))...)
	}
	recordtest.Record(t, st, cat, frames.Stream{Room: room, Codec: frames.CodecH264}, h264, false)
	recordtest.Record(t, st, cat, frames.Stream{Room: room, Codec: frames.CodecJPEG}, recordtest.JPEG(t, room, start, 2*seconds, 500*time.Millisecond, 1), false)

	g := testenv.StartGateway(t, "GATEWAY_LOG_LEVEL=warn", "GATEWAY_RECORD_STORE="+dir)
	for _, codec := range []string{"h264", "jpeg"} {
		t.Run(codec, func(t *testing.T) {
			cfg := smokeConfig(t, g)
			cfg.Room = room
			cfg.Viewers = 2
			cfg.FPS = 30
			if codec == "h264" {
				cfg.H264 = path
			}
			cfg.Duration = time.Minute
			cfg.Seeks = 4
			cfg.SeekFrom, cfg.SeekTo = start.Add(time.Second), start.Add((seconds-5)*time.Second)
			rep, err := loadgen.Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			var text bytes.Buffer
			rep.WriteText(&text)
			t.Logf("report:\n%s", text.String())
			s := rep.Seeks
			if s == nil || s.Seeks != cfg.Seeks || s.Failed != 0 || len(s.Samples) != cfg.Seeks || s.Codec != codec {
				t.Fatalf("seeks %+v, errors %v", s, rep.Errors)
			}
			// How far before the time sought the first picture may be:
			// the keyframe before it, or the JPEG before it.
			maxBefore, handed := 1000.0, gop
			if codec == "jpeg" {
				maxBefore, handed = 500, 1
			}
			for i, m := range s.Samples {
				if !(m.PlaybackMS > 0 && m.PlaybackMS <= m.FirstPictureMS && m.FirstPictureMS <= m.ThroughMS && m.ThroughMS < 5000) ||
					m.Codec != codec || m.StartBeforeMS < 0 || m.StartBeforeMS > maxBefore+1 || m.Handed < 1 || m.Handed > handed ||
					!(m.LiveMS > 0 && m.LiveMS <= m.LiveCaughtUpMS && m.LiveCaughtUpMS < 5000) {
					t.Errorf("move %d: %+v", i+1, m)
				}
				if m.AtMS < cfg.SeekFrom.UnixMilli() || m.AtMS > cfg.SeekTo.UnixMilli() {
					t.Errorf("move %d sought %d, outside the range asked", i+1, m.AtMS)
				}
			}
			gs, gl := s.GatewaySeek, s.GatewayLive
			if gs == nil || gl == nil || gs.Count != float64(cfg.Seeks) || gl.Count != float64(cfg.Seeks) || gs.MeanMS <= 0 || gs.Quantile(0.95) <= 0 {
				t.Errorf("the gateway's histogram: seeks %+v, lives %+v", gs, gl)
			}
			if rep.WindowSec > 30 {
				t.Errorf("a window of %.1f s: it should end when the seeks are done", rep.WindowSec)
			}
		})
	}
}
