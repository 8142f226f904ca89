package h264enc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/framecast/framecast/internal/testclip"
)

// BenchmarkEncode measures one picture's encode (ns/op = per picture, on one
// thread) on the project's noisy test clip at the default bitrate for the size,
// cycling through 1 s of pictures. docs/h264.md quotes it.
func BenchmarkEncode(b *testing.B) {
	needFFmpeg(b)
	for _, size := range [][2]int{{640, 480}, {1280, 720}} {
		b.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(b *testing.B) {
			c := testclip.Clip{Width: size[0], Height: size[1], FPS: 30, Frames: 30, Noise: 8}
			pics := loadClip(b, c)
			e, err := New(Options{Width: c.Width, Height: c.Height, FPS: float64(c.FPS)})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			var bytes int64
			b.SetBytes(int64(c.FrameSize()))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				au, _, err := e.Encode(pics[i%len(pics)], false)
				if err != nil {
					b.Fatal(err)
				}
				bytes += int64(len(au))
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "out-bytes/op")
		})
	}
}

// loadClip reads every picture of c into memory.
func loadClip(b *testing.B, c testclip.Clip) [][]byte {
	b.Helper()
	r, err := testclip.Open(context.Background(), c)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	var pics [][]byte
	for {
		pic, err := r.Next()
		if errors.Is(err, io.EOF) {
			return pics
		}
		if err != nil {
			b.Fatal(err)
		}
		pics = append(pics, append([]byte(nil), pic...))
	}
}
