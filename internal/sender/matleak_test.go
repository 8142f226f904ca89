//go:build matprofile

package sender

import (
	"bytes"
	"testing"
	"time"

	"gocv.io/x/gocv"
)

// TestMatLeak counts open Mats with gocv's matprofile build tag:
//
//	go test -tags matprofile ./internal/sender/ -run MatLeak
//
// Thousands of frames through capture and encode, a whole Sender run with
// a reconnection, and a looping file source must each end with as many open
// Mats as they started with.
func TestMatLeak(t *testing.T) {
	check := func(t *testing.T, what string, run func(t *testing.T)) {
		before := gocv.MatProfile.Count()
		run(t)
		if after := gocv.MatProfile.Count(); after != before {
			var b bytes.Buffer
			_ = gocv.MatProfile.WriteTo(&b, 1)
			t.Fatalf("%s leaked %d Mats:\n%s", what, after-before, b.String())
		}
	}
	t.Run("pipeline", func(t *testing.T) {
		check(t, "3000 frames through capture and encode", func(t *testing.T) { pumpFrames(t, 3000, 160, unlayeredConfig(64)) })
	})
	t.Run("layers", func(t *testing.T) {
		// 200 wide: the 320 layer is clamped to the capture's width, and
		// 96 is made from the 128 layer.
		check(t, "3000 frames through capture and 3-layer encode", func(t *testing.T) {
			cfg := layeredConfig("320,128,96")
			cfg.LayerQuality = "80,70,60"
			pumpFrames(t, 3000, 200, cfg)
		})
		check(t, "3000 frames through layers that share a JPEG", func(t *testing.T) {
			pumpFrames(t, 3000, 100, layeredConfig("400,200,50"))
		})
	})
	t.Run("h264", func(t *testing.T) {
		// 200 wide: the 320 layer is clamped to the capture's size and
		// shares the 200 one's stream; 96 is made from it. A JPEG per
		// picture (JPEG_FPS at FPS).
		check(t, "2000 frames through capture, I420 and 3-layer H.264", func(t *testing.T) {
			cfg := layeredConfig("320,200,96")
			cfg.Codec, cfg.FPS, cfg.JpegFPS = CodecH264, 30, 30
			pumpFrames(t, 2000, 200, cfg)
		})
		check(t, "an H.264 Sender run", func(t *testing.T) {
			g := newFakeGateway(t)
			cfg := testConfig(g.url())
			cfg.Codec, cfg.Layers, cfg.FPS = CodecH264, "160,80", 25
			s := startSender(t, cfg)
			g.waitMessages(t, 0, 60, 20*time.Second)
			if err := s.stop(t); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("sender", func(t *testing.T) {
		check(t, "a Sender run", func(t *testing.T) {
			g := newFakeGateway(t)
			s := startSender(t, testConfig(g.url()))
			g.waitMessages(t, 0, 20, 20*time.Second)
			if err := s.stop(t); err != nil {
				t.Fatal(err)
			}
		})
		check(t, "a layered Sender run", func(t *testing.T) {
			g := newFakeGateway(t)
			cfg := testConfig(g.url())
			cfg.Layers = "160,80,40"
			s := startSender(t, cfg)
			g.waitMessages(t, 0, 60, 20*time.Second)
			if err := s.stop(t); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("file", func(t *testing.T) {
		clip := makeClip(t, "160x120", 120, 0.1)
		check(t, "a looping file source", func(t *testing.T) {
			if _, _, _, err := probeFile(clip); err != nil {
				t.Fatal(err)
			}
			src, err := openSource(sourceSpec{kind: sourceFile, index: -1, name: clip}, 0, 120)
			if err != nil {
				t.Fatal(err)
			}
			m := gocv.NewMat()
			for i := range 50 {
				if err := src.Read(t.Context(), &m); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
			m.Close()
			src.Close()
		})
	})
}
