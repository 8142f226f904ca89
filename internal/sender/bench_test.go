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
				err := enc.encode(m, func(jpeg []byte) {
					msg = frames.AppendBinary(msg[:0], uint64(i), now, jpeg)
					jpegBytes += len(jpeg)
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
