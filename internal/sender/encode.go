package sender

import (
	"errors"
	"fmt"
	"image"

	"github.com/coder/websocket"
	"gocv.io/x/gocv"

	"github.com/framecast/framecast/pkg/frames"
)

// encoder encodes each picture once per layer: downscaled to the layer's
// width (aspect kept, never upscaled) and JPEG-encoded at the layer's
// quality. It keeps one Mat per layer for the downscaled pixels and reuses
// them picture after picture, and closes every buffer OpenCV returns
// before encode returns. An encoder is used by one goroutine; Close it when
// done.
type encoder struct {
	layers  []layerSpec
	params  [][]int    // per layer: IMWRITE_JPEG_QUALITY, q; never empty, IMEncodeWithParams takes &params[0]
	resized []gocv.Mat // per layer: its downscaled pixels, when it needs its own

	// Per picture, reused: each layer's size, pixels (the capture, an
	// earlier layer's, or resized[i]) and JPEG (nil when it shares an
	// earlier layer's).
	sizes []image.Point
	pix   []gocv.Mat
	jpegs []*gocv.NativeByteBuffer

	// fromCapture resizes every layer from the captured picture rather
	// than from the smallest layer already made that is at least as large.
	// Only benchmarks set it, to compare the two (docs/benchmarks.md).
	fromCapture bool
}

// newEncoder returns the encoder of one unlayered stream: maxWidth (0 keeps
// the source's width) at quality.
func newEncoder(maxWidth, quality int) *encoder {
	return newLayerEncoder([]layerSpec{{width: maxWidth, quality: quality}})
}

// newLayerEncoder returns an encoder of the given layers, in order.
func newLayerEncoder(layers []layerSpec) *encoder {
	n := len(layers)
	e := &encoder{
		layers: layers, params: make([][]int, n), resized: make([]gocv.Mat, n),
		sizes: make([]image.Point, n), pix: make([]gocv.Mat, n), jpegs: make([]*gocv.NativeByteBuffer, n),
	}
	for i, l := range layers {
		e.params[i] = []int{gocv.IMWriteJpegQuality, l.quality}
		e.resized[i] = gocv.NewMat()
	}
	return e
}

// scaledSize returns the size a cols×rows frame is sent at: maxWidth wide
// with the aspect ratio kept when the frame is wider, else unchanged.
func scaledSize(cols, rows, maxWidth int) image.Point {
	if maxWidth <= 0 || cols <= maxWidth {
		return image.Pt(cols, rows)
	}
	h := (rows*maxWidth + cols/2) / cols
	return image.Pt(maxWidth, max(h, 1))
}

// encodedLayer is one layer of a picture as encode hands it over.
type encodedLayer struct {
	index int
	size  image.Point
	jpeg  []byte // aliases OpenCV's buffer: valid only during the call
}

// encode JPEG-encodes img once per layer and calls use with each layer, in
// layer order. Every size is computed from img's, so layers made from one
// another keep the capture's aspect ratio. A layer clamped to the size of
// an earlier one (a source narrower than the layer's width) is encoded
// again only when its quality differs; otherwise it gets the same bytes.
func (e *encoder) encode(img gocv.Mat, use func(l encodedLayer)) error {
	if img.Empty() {
		return errors.New("failed to encode frame: empty image")
	}
	defer func() {
		for i, b := range e.jpegs {
			if b != nil {
				b.Close()
				e.jpegs[i] = nil
			}
		}
	}()
	full := image.Pt(img.Cols(), img.Rows())
	for i, l := range e.layers {
		sz := scaledSize(full.X, full.Y, l.width)
		e.sizes[i] = sz
		if j := e.sameJPEG(i); j >= 0 {
			e.pix[i] = e.pix[j]
			use(encodedLayer{index: i, size: sz, jpeg: e.jpegs[j].GetBytes()})
			continue
		}
		src, srcSize := e.resizeSource(img, full, i)
		if srcSize != sz {
			gocv.Resize(src, &e.resized[i], sz, 0, 0, gocv.InterpolationArea)
			src = e.resized[i]
		}
		e.pix[i] = src
		buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, e.params[i])
		if err != nil {
			return fmt.Errorf("failed to encode JPEG of layer %d: %w", i, err)
		}
		e.jpegs[i] = buf
		if buf.Len() == 0 {
			return fmt.Errorf("failed to encode JPEG of layer %d: OpenCV returned no bytes", i)
		}
		use(encodedLayer{index: i, size: sz, jpeg: buf.GetBytes()})
	}
	return nil
}

// sameJPEG returns an earlier layer of this picture with layer i's size
// and quality, whose JPEG layer i can share, or -1.
func (e *encoder) sameJPEG(i int) int {
	for j := range i {
		if e.sizes[j] == e.sizes[i] && e.layers[j].quality == e.layers[i].quality {
			return j
		}
	}
	return -1
}

// resizeSource returns the pixels layer i is made from, and their size:
// the smallest of the capture and the layers made before i that is at
// least as large as layer i (downscaling reads every source pixel, so a
// smaller source is cheaper), or the capture when fromCapture is set.
func (e *encoder) resizeSource(img gocv.Mat, full image.Point, i int) (gocv.Mat, image.Point) {
	src, size := img, full
	if e.fromCapture {
		return src, size
	}
	want := e.sizes[i]
	for j := range i {
		if s := e.sizes[j]; s.X >= want.X && s.Y >= want.Y && s.X*s.Y < size.X*size.Y {
			src, size = e.pix[j], s
		}
	}
	return src, size
}

// Close releases the encoder's Mats.
func (e *encoder) Close() error {
	var errs []error
	for _, m := range e.resized {
		errs = append(errs, m.Close())
	}
	return errors.Join(errs...)
}

// wireFormat appends one layer of a picture to m, in the message the
// gateway expects.
type wireFormat func(m *message, info frameInfo, l encodedLayer)

// formatFor returns the wire format of cfg (validated): the seed's data
// URLs, version-2 messages naming their layer when SENDER_LAYERS is set,
// else version-1 binary messages.
func formatFor(cfg Config) wireFormat {
	switch {
	case cfg.Protocol == ProtocolSeed:
		return func(m *message, info frameInfo, l encodedLayer) {
			m.typ, m.seq = websocket.MessageText, info.seq
			m.endLayer(frames.AppendDataURL(m.buf, l.jpeg))
		}
	case cfg.layered():
		room := cfg.Room // the URL's room: the gateway checks they match
		return func(m *message, info frameInfo, l encodedLayer) {
			m.typ, m.seq = websocket.MessageBinary, info.seq
			m.endLayer(frames.AppendLayered(m.buf, room, l.index, l.size.X, l.size.Y, info.seq, info.captured, l.jpeg))
		}
	default:
		return func(m *message, info frameInfo, l encodedLayer) {
			m.typ, m.seq = websocket.MessageBinary, info.seq
			m.endLayer(frames.AppendBinary(m.buf, info.seq, info.captured, l.jpeg))
		}
	}
}
