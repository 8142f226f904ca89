package sender

import (
	"errors"
	"fmt"
	"image"

	"github.com/coder/websocket"
	"gocv.io/x/gocv"

	"github.com/framecast/framecast/pkg/frames"
)

// encoder downscales frames to a maximum width and encodes them as JPEG.
// It reuses one Mat for the resized image and closes every buffer OpenCV
// returns. An encoder is used by one goroutine; Close it when done.
type encoder struct {
	maxWidth int   // 0: keep the source's width
	params   []int // IMWRITE_JPEG_QUALITY, q: never empty, IMEncodeWithParams takes &params[0]
	resized  gocv.Mat
}

func newEncoder(maxWidth, quality int) *encoder {
	return &encoder{
		maxWidth: maxWidth,
		params:   []int{gocv.IMWriteJpegQuality, quality},
		resized:  gocv.NewMat(),
	}
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

// encode JPEG-encodes img, downscaled if needed, and calls use with the
// JPEG bytes, which alias OpenCV's buffer and are valid only during the call.
func (e *encoder) encode(img gocv.Mat, use func(jpeg []byte)) error {
	if img.Empty() {
		return errors.New("failed to encode frame: empty image")
	}
	src := img
	if sz := scaledSize(img.Cols(), img.Rows(), e.maxWidth); sz.X != img.Cols() {
		gocv.Resize(img, &e.resized, sz, 0, 0, gocv.InterpolationArea)
		src = e.resized
	}
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, src, e.params)
	if err != nil {
		return fmt.Errorf("failed to encode JPEG: %w", err)
	}
	defer buf.Close()
	if buf.Len() == 0 {
		return errors.New("failed to encode JPEG: OpenCV returned no bytes")
	}
	use(buf.GetBytes())
	return nil
}

// Close releases the encoder's Mat.
func (e *encoder) Close() error { return e.resized.Close() }

// wireFormat wraps a JPEG in the message the gateway expects.
type wireFormat func(m *message, info frameInfo, jpeg []byte)

// formatFor returns the wire format of protocol (validated by Config).
func formatFor(protocol string) wireFormat {
	if protocol == ProtocolSeed {
		return func(m *message, info frameInfo, jpeg []byte) {
			m.typ, m.seq = websocket.MessageText, info.seq
			m.buf = frames.AppendDataURL(m.buf[:0], jpeg)
		}
	}
	return func(m *message, info frameInfo, jpeg []byte) {
		m.typ, m.seq = websocket.MessageBinary, info.seq
		m.buf = frames.AppendBinary(m.buf[:0], info.seq, info.captured, jpeg)
	}
}
