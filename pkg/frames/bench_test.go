package frames_test

import (
	"testing"

	"github.com/framecast/framecast/pkg/frames"
)

// benchJPEGSize is a typical 640×480 camera frame at moderate quality.
const benchJPEGSize = 50 << 10

func BenchmarkParseBinary(b *testing.B) {
	msg := frames.AppendBinary(nil, 1, ts, jpegLike(benchJPEGSize))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := frames.ParseBinary(msg, 0, ts, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseDataURL(b *testing.B) {
	msg := frames.AppendDataURL(nil, jpegLike(benchJPEGSize))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := frames.ParseDataURL(msg, 1, ts, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJSON measures building the JSON envelope of a fresh frame (JSON
// is cached per frame, so each iteration parses a new Frame first; the
// parse costs one small allocation next to the encoding).
func BenchmarkJSON(b *testing.B) {
	msg := frames.AppendBinary(nil, 1, ts, jpegLike(benchJPEGSize))
	b.SetBytes(benchJPEGSize)
	b.ReportAllocs()
	for b.Loop() {
		f, err := frames.ParseBinary(msg, 0, ts, 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(f.JSON()) == 0 {
			b.Fatal("empty JSON")
		}
	}
}
