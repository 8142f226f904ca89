package sender

import (
	"errors"
	"io"
	"os/exec"
	"testing"
	"time"

	"gocv.io/x/gocv"

	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/pkg/frames"
)

// BenchmarkCaptureEncode measures the sender's per-frame CPU cost: drawing a
// test-pattern frame (the capture stand-in), JPEG encoding at quality 80
// and building the binary message. frames/s is what one core sustains.
//
//	go test -run '^$' -bench CaptureEncode ./internal/sender/
func BenchmarkCaptureEncode(b *testing.B) {
	for _, sz := range []struct {
		name string
		w, h int
	}{{"640x480", 640, 480}, {"1280x720", 1280, 720}} {
		b.Run(sz.name, func(b *testing.B) {
			p := newTestPatternSize(sz.w, sz.h, 10)
			defer p.Close()
			enc := newEncoder(0, 80)
			defer enc.Close()
			m := gocv.NewMat()
			defer m.Close()
			var msg []byte
			var jpegBytes int
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				p.draw(&m, now)
				err := enc.encode(m, func(l encodedLayer) {
					msg = frames.AppendBinary(msg[:0], uint64(i), now, l.jpeg)
					jpegBytes += len(l.jpeg)
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(jpegBytes)/float64(b.N), "jpeg-B/frame")
		})
	}
}

// BenchmarkEncodeLayers measures encoding one 1280×720 capture (the test
// pattern, drawn once) into its wire messages: one layer at the capture's
// width, as without SENDER_LAYERS, against three layers 1280,640,320, each
// smaller layer resized from the one above it (what the sender does) or
// every layer from the capture. Quality 80; the messages go into one
// reused message as in the sender.
//
//	go test -run '^$' -bench EncodeLayers -benchmem ./internal/sender/
func BenchmarkEncodeLayers(b *testing.B) {
	for _, bc := range []struct {
		name, layers string
		fromCapture  bool
	}{
		{"1-layer", "", false},
		{"3-layers-cascade", "1280,640,320", false},
		{"3-layers-from-capture", "1280,640,320", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Width = 0
			cfg.Layers = bc.layers
			layers, err := cfg.layerSpecs()
			if err != nil {
				b.Fatal(err)
			}
			p := newTestPatternSize(1280, 720, 10)
			defer p.Close()
			img := gocv.NewMat()
			defer img.Close()
			now := time.Now()
			p.draw(&img, now)
			enc := newLayerEncoder(layers)
			enc.fromCapture = bc.fromCapture
			defer enc.Close()
			format := formatFor(cfg)
			var m message
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m.reset()
				info := frameInfo{seq: uint64(i), captured: now}
				if err := enc.encode(img, func(l encodedLayer) { format(&m, info, l) }); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(len(m.buf)), "msg-B/picture")
		})
	}
}

// BenchmarkH264Picture measures the sender's CPU per picture with
// SENDER_CODEC=h264, one layer at the capture's size and no JPEG layer:
// the BGR capture converted to I420 (gocv.CvtColor, ColorBGRToYUVI420),
// encoded by OpenH264 at the default bitrate for the size and 30 fps, and
// wrapped in its version-2 message. The pictures are the project's noisy
// test clip (internal/testclip), converted to BGR once beforehand as a
// camera delivers them. The cvt sub-benchmark is the colour conversion
// alone. docs/benchmarks.md, section "Sender", has the figures.
//
//	go test -run '^$' -bench H264Picture -benchtime 300x ./internal/sender/
func BenchmarkH264Picture(b *testing.B) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		b.Skip("ffmpeg not installed (make deps)")
	}
	for _, sz := range []struct {
		name string
		w, h int
	}{{"640x480", 640, 480}, {"1280x720", 1280, 720}} {
		clip := testclip.Clip{Width: sz.w, Height: sz.h, FPS: 30, Frames: 30, Noise: 8}
		pics := bgrClip(b, clip)
		b.Run(sz.name+"/cvt", func(b *testing.B) {
			yuv := gocv.NewMat()
			defer yuv.Close()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				gocv.CvtColor(pics[i%len(pics)], &yuv, gocv.ColorBGRToYUVI420)
			}
		})
		b.Run(sz.name+"/cvt+encode", func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Codec, cfg.Width, cfg.FPS, cfg.JpegFPS = CodecH264, sz.w, 30, 0
			enc := newPictureEncoder(cfg)
			defer enc.Close()
			m := &message{}
			var out int
			now := time.Now()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				m.reset()
				if err := enc.encodePicture(pics[i%len(pics)], frameInfo{seq: uint64(i + 1), captured: now}, i == 0, m); err != nil {
					b.Fatal(err)
				}
				out += len(m.buf)
			}
			b.ReportMetric(float64(out)/float64(b.N), "out-B/picture")
		})
		for _, p := range pics {
			p.Close()
		}
	}
}

// bgrClip returns c's pictures as BGR Mats; the caller closes them.
func bgrClip(b *testing.B, c testclip.Clip) []gocv.Mat {
	b.Helper()
	r, err := testclip.Open(b.Context(), c)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var pics []gocv.Mat
	for {
		pic, err := r.Next()
		if errors.Is(err, io.EOF) {
			return pics
		}
		if err != nil {
			b.Fatal(err)
		}
		yuv, err := gocv.NewMatFromBytes(c.Height*3/2, c.Width, gocv.MatTypeCV8UC1, pic)
		if err != nil {
			b.Fatal(err)
		}
		bgr := gocv.NewMat()
		gocv.CvtColor(yuv, &bgr, gocv.ColorYUVToBGRIYUV)
		yuv.Close()
		pics = append(pics, bgr)
	}
}
