package sender

import (
	"testing"
	"time"

	"gocv.io/x/gocv"

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
