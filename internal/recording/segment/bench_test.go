package segment

import (
	"io"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// hd30 is one second of 720p30 H.264 from x264 (a keyframe, 29 deltas),
// as a sender sends it: configuration, keyframe, deltas.
func hd30(b *testing.B) ([]*frames.Frame, int) {
	clip := testenv.MakeH264Clip(b, 1280, 720, 30, 30)
	fs := h264Stream(b, clip.Config, clip.AUs, clip.Key, time.Second/30, nil)
	n := 0
	for _, f := range fs {
		n += len(f.Payload)
	}
	return fs, n
}

// seconds repeats one second of frames n times, one second apart.
func seconds(b *testing.B, one []*frames.Frame, n int) []*frames.Frame {
	var in []*frames.Frame
	for s := range n {
		for _, f := range one {
			in = append(in, mustFrame(b, f.Kind, f.Seq+uint64(30*s), f.Captured.Add(time.Duration(s)*time.Second), f.Payload))
		}
	}
	return in
}

// BenchmarkWriterPart measures the recorder's work per second of a 720p30
// H.264 stream: 30 frames added and one part written (the sample times,
// AVCC, moof and mdat, framecast's box and its checksums).
func BenchmarkWriterPart(b *testing.B) {
	fs, size := hd30(b)
	w := NewWriter("cam", frames.CodecH264, nil)
	if _, err := w.Begin(fs[0]); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range fs[1:] {
			if err := w.add(f); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Flush(); err != nil {
			b.Fatal(err)
		}
		w.add(fs[0])
	}
}

// BenchmarkRead measures reading a 10 s segment of 720p30 H.264 (ten 1 s
// parts) back into frames.
func BenchmarkRead(b *testing.B) {
	one, size := hd30(b)
	in := seconds(b, one, 10)
	segs := record(b, NewWriter("cam", frames.CodecH264, nil), in, true)
	if len(segs) != 1 {
		b.Fatalf("%d segments", len(segs))
	}
	data := segs[0].data
	b.SetBytes(int64(10 * size))
	b.ReportAllocs()
	for b.Loop() {
		fs, _, err := Read(data)
		if err != nil || len(fs) != len(in) {
			b.Fatal(len(fs), err)
		}
	}
}

// BenchmarkExport measures a 1-minute 720p30 H.264 clip: building its
// moov and writing it whole.
func BenchmarkExport(b *testing.B) {
	one, size := hd30(b)
	in := seconds(b, one, 60)
	b.SetBytes(int64(60 * size))
	b.ReportAllocs()
	for b.Loop() {
		c, err := NewClip(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
