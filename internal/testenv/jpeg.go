package testenv

import (
	"bytes"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

// JPEG returns a real w×h JPEG whose pixels depend on n (so frames differ),
// padded with COM segments right after SOI to exactly size bytes when size
// is larger than the encoded image: tests choose frame sizes with it.
func JPEG(t testing.TB, w, h, n, size int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x*4 + n), uint8(y * 5), uint8(n * 7), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}); err != nil {
		t.Fatalf("failed to encode a test JPEG: %v", err)
	}
	b := buf.Bytes()
	out := append(make([]byte, 0, max(size, len(b))), b[:2]...) // SOI, then padding, then the rest
	for pad := size - len(b); pad > 4; {
		k := min(pad-4, 65533)
		out = append(out, 0xFF, 0xFE, byte((k+2)>>8), byte(k+2))
		out = append(out, bytes.Repeat([]byte{'p'}, k)...)
		pad -= k + 4
	}
	return append(out, b[2:]...)
}
