package sender

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"time"

	"gocv.io/x/gocv"
)

// testPattern is the "test" source: a scrolling colour gradient with a
// bouncing box, the wall clock and a frame counter, generated at the
// configured fps. It needs no camera, so it serves demos, machines without
// one, tests and benchmarks. Its size is width × width·3/4 (640×480 when
// width is 0).
//
// A testPattern is used by one goroutine at a time.
type testPattern struct {
	w, h     int
	gradient gocv.Mat // 2w × h, periodic in x with period w; scrolled through
	pace     *pacer
	n        uint64
}

var _ frameSource = (*testPattern)(nil)

// newTestPattern returns the pattern of the "test" source: width × 3/4 of
// width, 640×480 when width is 0.
func newTestPattern(width int, fps float64) *testPattern {
	if width <= 0 {
		width = 640
	}
	return newTestPatternSize(width, max(width*3/4&^1, 2), fps)
}

// newTestPatternSize returns a pattern of any size, for benchmarks.
func newTestPatternSize(width, h int, fps float64) *testPattern {
	p := &testPattern{w: width, h: h, pace: newPacer(fps)}
	p.gradient = gocv.NewMatWithSize(h, 2*width, gocv.MatTypeCV8UC3)
	for x := 0; x < 2*width; x++ {
		phase := 2 * math.Pi * float64(x) / float64(width)
		c := color.RGBA{
			R: uint8(128 + 100*math.Sin(phase)),
			G: uint8(128 + 100*math.Sin(phase+2*math.Pi/3)),
			B: uint8(128 + 100*math.Sin(phase+4*math.Pi/3)),
		}
		gocv.Line(&p.gradient, image.Pt(x, 0), image.Pt(x, h-1), c, 1)
	}
	return p
}

// Read waits until the next frame is due, then draws it into m.
func (p *testPattern) Read(ctx context.Context, m *gocv.Mat) error {
	if err := p.pace.wait(ctx); err != nil {
		return err
	}
	p.draw(m, time.Now())
	return nil
}

// draw renders the next frame into dst, reallocating dst only when its size
// or type differ.
func (p *testPattern) draw(dst *gocv.Mat, now time.Time) {
	n := p.n
	p.n++
	off := int(n*uint64(max(p.w/160, 1))) % p.w
	bg := p.gradient.Region(image.Rect(off, 0, off+p.w, p.h))
	bg.CopyTo(dst)
	bg.Close()

	s := max(p.h/5, 4)
	x := bounce(int(n)*max(p.w/100, 1), p.w-s)
	y := bounce(int(n)*max(p.h/90, 1), p.h-s)
	gocv.Rectangle(dst, image.Rect(x, y, x+s, y+s), color.RGBA{R: 250, G: 250, B: 250}, -1)
	gocv.Rectangle(dst, image.Rect(x, y, x+s, y+s), color.RGBA{}, max(p.w/320, 1))

	scale := float64(p.w) / 640
	lines := []string{
		fmt.Sprintf("framecast test %dx%d", p.w, p.h),
		now.Format("15:04:05.000"),
		fmt.Sprintf("frame %d", n),
	}
	thick := max(int(2*scale), 1)
	for i, text := range lines {
		org := image.Pt(int(16*scale), int(float64(40+40*i)*scale))
		gocv.PutText(dst, text, org, gocv.FontHersheySimplex, scale, color.RGBA{}, thick+2)
		gocv.PutText(dst, text, org, gocv.FontHersheySimplex, scale, color.RGBA{R: 255, G: 255, B: 255}, thick)
	}
}

// bounce maps a growing position onto 0..limit and back.
func bounce(pos, limit int) int {
	if limit <= 0 {
		return 0
	}
	pos %= 2 * limit
	if pos > limit {
		return 2*limit - pos
	}
	return pos
}

func (p *testPattern) Close() error { return p.gradient.Close() }
