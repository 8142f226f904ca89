package sender

import (
	"errors"
	"fmt"
	"image"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"gocv.io/x/gocv"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/internal/h264enc"
	"github.com/framecast/framecast/pkg/frames"
)

// pictureEncoder turns one captured picture into its wire messages. It is
// used by the encode goroutine only, except forceKeyframe.
type pictureEncoder interface {
	// encodePicture appends img's messages to m. restart says the
	// picture starts a stream again: it is the first of a connection, or
	// the one after a picture was lost (see messageSlot).
	encodePicture(img gocv.Mat, info frameInfo, restart bool, m *message) error
	// byPictures reports whether pictures refer to earlier ones (H.264
	// deltas): then the encoder never replaces a picture the writer has
	// not taken, and restarts after one was lost.
	byPictures() bool
	// forceKeyframe makes the next picture a keyframe. Any goroutine may
	// call it.
	forceKeyframe()
	Close() error
}

// jpegPictures is the SENDER_CODEC=jpeg pictureEncoder: a JPEG per layer,
// in cfg's wire format. Every picture stands alone.
type jpegPictures struct {
	enc    *encoder
	format wireFormat
}

func (j *jpegPictures) encodePicture(img gocv.Mat, info frameInfo, _ bool, m *message) error {
	return j.enc.encode(img, func(l encodedLayer) { j.format(m, info, l) })
}
func (j *jpegPictures) byPictures() bool { return false }
func (j *jpegPictures) forceKeyframe()   {}
func (j *jpegPictures) Close() error     { return j.enc.Close() }

// newPictureEncoder returns the pictureEncoder of cfg (validated).
func newPictureEncoder(cfg Config) pictureEncoder {
	if cfg.h264() {
		return newH264Pictures(cfg)
	}
	layers, _ := cfg.layerSpecs()
	return &jpegPictures{enc: newLayerEncoder(layers), format: formatFor(cfg)}
}

// h264Pictures is the SENDER_CODEC=h264 pictureEncoder. Per picture and
// H.264 layer it downscales the BGR capture to the layer's size (even,
// aspect kept, never upscaled; made from the smallest picture already made
// that is at least as large), converts it to I420 and encodes it with the
// layer's own OpenH264 encoder; a layer clamped to an earlier layer's size
// and bitrate shares its access unit. Each keyframe of a layer is preceded
// by a configuration message read from the keyframe's SPS and PPS. At
// most JpegFPS times a second, and with the first picture of every
// restart, the smallest layer's pixels are also sent as JPEG layer 0.
// Sequence numbers count the pictures encoded (see seq).
//
// Encoders are made at the first picture and again when the capture's size
// changes. All Mats are reused picture after picture. Used by the encode
// goroutine; forceKeyframe is safe from any goroutine. Close it when done.
type h264Pictures struct {
	room        string
	specs       []h264Spec
	fps         float64
	keyInterval time.Duration
	layers      []h264Layer

	jpeg      *encoder // the JPEG layer; nil when JpegFPS is 0
	jpegEvery time.Duration
	nextJPEG  time.Time

	force atomic.Bool // the next picture is a keyframe on every layer

	// seq numbers the pictures encoded, 1, 2, 3...: the sequence number
	// they are sent with, instead of the capture's frame counter. The
	// gateway takes a gap in an H.264 stream for a missing picture
	// (pkg/rooms: a joining viewer's group must have none), and the
	// frames skipped before encoding are not missing.
	seq uint64

	// Per picture, reused.
	paramSets []byte
	config    []byte
}

// h264Layer is one H.264 layer's state.
type h264Layer struct {
	size image.Point
	bgr  gocv.Mat // downscaled capture, when the layer needs its own
	i420 gocv.Mat
	pix  gocv.Mat // this picture's BGR pixels: the capture, an earlier layer's, or bgr
	enc  *h264enc.Encoder
	au   []byte // this picture's access unit (aliases the encoder's buffer)
	key  bool
}

func newH264Pictures(cfg Config) *h264Pictures {
	specs, _ := cfg.h264Specs() // validated
	h := &h264Pictures{
		room: cfg.Room, specs: specs, fps: cfg.FPS, keyInterval: cfg.KeyInterval,
		layers: make([]h264Layer, len(specs)),
	}
	for i := range h.layers {
		h.layers[i].bgr, h.layers[i].i420 = gocv.NewMat(), gocv.NewMat()
	}
	if cfg.JpegFPS > 0 {
		side := cfg.jpegSideLayer()
		h.jpeg = newEncoder(0, side.quality) // from the smallest H.264 layer's pixels
		h.jpegEvery = time.Duration(float64(time.Second) / cfg.JpegFPS)
	}
	return h
}

func (h *h264Pictures) byPictures() bool { return true }
func (h *h264Pictures) forceKeyframe()   { h.force.Store(true) }

// h264Size returns the size an H.264 layer of the given width has for a
// cols×rows capture: scaledSize, then each side rounded down to even
// (I420's chroma is half size).
func h264Size(cols, rows, width int) image.Point {
	sz := scaledSize(cols, rows, width)
	return image.Pt(sz.X&^1, sz.Y&^1)
}

func (h *h264Pictures) encodePicture(img gocv.Mat, info frameInfo, restart bool, m *message) error {
	if img.Empty() {
		return errors.New("failed to encode frame: empty image")
	}
	force := h.force.Swap(false) || restart
	full := image.Pt(img.Cols(), img.Rows())
	info.seq = h.seq + 1
	m.typ, m.seq = websocket.MessageBinary, info.seq
	smallest := -1
	for i := range h.layers {
		l := &h.layers[i]
		sz := h264Size(full.X, full.Y, h.specs[i].width)
		if j := h.sameStream(i, sz); j >= 0 {
			if l.enc != nil { // its state would be stale if the layer ever stopped sharing
				l.enc.Close()
				l.enc = nil
			}
			l.size, l.pix, l.au, l.key = sz, h.layers[j].pix, h.layers[j].au, h.layers[j].key
		} else if err := h.encodeLayer(i, img, full, sz, force); err != nil {
			return err
		}
		if err := h.appendLayer(m, i, info); err != nil {
			return err
		}
		if smallest < 0 || sz.X*sz.Y < h.layers[smallest].size.X*h.layers[smallest].size.Y {
			smallest = i
		}
	}
	if now := time.Now(); h.jpeg != nil && (force || !now.Before(h.nextJPEG)) {
		h.nextJPEG = now.Add(h.jpegEvery)
		err := h.jpeg.encode(h.layers[smallest].pix, func(l encodedLayer) {
			m.endPart(frames.AppendLayered(m.buf, h.room, 0, l.size.X, l.size.Y, info.seq, info.captured, l.jpeg), frames.KindJPEG, 0)
		})
		if err != nil {
			return err
		}
	}
	h.seq = info.seq
	return nil
}

// sameStream returns an earlier layer of this picture with layer i's size
// and bitrate, whose access unit layer i can share, or -1.
func (h *h264Pictures) sameStream(i int, sz image.Point) int {
	for j := range i {
		if h.layers[j].size == sz && h.specs[j].bitrate == h.specs[i].bitrate {
			return j
		}
	}
	return -1
}

// encodeLayer makes layer i's pixels of img at sz and encodes them.
func (h *h264Pictures) encodeLayer(i int, img gocv.Mat, full, sz image.Point, force bool) error {
	l := &h.layers[i]
	if sz.X < h264enc.MinSide || sz.Y < h264enc.MinSide {
		return fmt.Errorf("failed to encode H.264 layer %d: %d×%d capture scales to %v, under OpenH264's %d pixels a side", i, full.X, full.Y, sz, h264enc.MinSide)
	}
	if l.enc != nil && l.size != sz {
		l.enc.Close() // the capture changed size: a new stream, starting at a keyframe
		l.enc = nil
	}
	l.size = sz
	if l.enc == nil {
		enc, err := h264enc.New(h264enc.Options{
			Width: sz.X, Height: sz.Y, FPS: h.fps, BitrateKbps: h.specs[i].bitrate, KeyInterval: h.keyInterval,
		})
		if err != nil {
			return fmt.Errorf("failed to start the H.264 encoder of layer %d: %w", i, err)
		}
		l.enc = enc
	}
	src, srcSize := img, full
	for j := range i { // the smallest picture made so far that is at least as large
		if s := h.layers[j].size; s.X >= sz.X && s.Y >= sz.Y && s.X*s.Y < srcSize.X*srcSize.Y {
			src, srcSize = h.layers[j].pix, s
		}
	}
	if srcSize != sz {
		gocv.Resize(src, &l.bgr, sz, 0, 0, gocv.InterpolationArea)
		src = l.bgr
	}
	l.pix = src
	gocv.CvtColor(src, &l.i420, gocv.ColorBGRToYUVI420)
	yuv, err := l.i420.DataPtrUint8()
	if err != nil {
		return fmt.Errorf("failed to read the I420 picture of layer %d: %w", i, err)
	}
	au, key, err := l.enc.Encode(yuv, force)
	if err != nil {
		return fmt.Errorf("failed to encode H.264 layer %d: %w", i, err)
	}
	l.au, l.key = au, key
	return nil
}

// appendLayer appends layer i's messages of this picture to m: the
// configuration before a keyframe, then the access unit.
func (h *h264Pictures) appendLayer(m *message, i int, info frameInfo) error {
	l := &h.layers[i]
	kind := frames.KindH264Delta
	if l.key {
		kind = frames.KindH264Key
		m.key = true
		cfg, err := h.configOf(l.au)
		if err != nil {
			return fmt.Errorf("failed to read the configuration of H.264 layer %d: %w", i, err)
		}
		h.config = frames.AppendH264Config(h.config[:0], cfg)
		m.endPart(frames.AppendLayeredKind(m.buf, frames.KindH264Config, h.room, i, l.size.X, l.size.Y, info.seq, info.captured, h.config), frames.KindH264Config, i)
	}
	m.endPart(frames.AppendLayeredKind(m.buf, kind, h.room, i, l.size.X, l.size.Y, info.seq, info.captured, l.au), kind, i)
	return nil
}

// configOf returns the decoder configuration of a keyframe: the codec
// string and the cropped size from its SPS, and its SPS and PPS in
// Annex-B form. ParamSets aliases a buffer reused by the next call.
func (h *h264Pictures) configOf(au []byte) (frames.H264Config, error) {
	a, err := avc.Parse(au)
	if err != nil {
		return frames.H264Config{}, err
	}
	if a.SPS == nil || a.PPS == nil {
		return frames.H264Config{}, errors.New("keyframe without SPS and PPS")
	}
	sps, err := avc.ParseSPS(a.SPS)
	if err != nil {
		return frames.H264Config{}, err
	}
	start := []byte{0, 0, 0, 1}
	h.paramSets = append(append(append(append(h.paramSets[:0], start...), a.SPS...), start...), a.PPS...)
	return frames.H264Config{Codec: sps.Codec(), Width: sps.Width, Height: sps.Height, ParamSets: h.paramSets}, nil
}

// Close releases the encoders and Mats.
func (h *h264Pictures) Close() error {
	var errs []error
	for i := range h.layers {
		l := &h.layers[i]
		if l.enc != nil {
			errs = append(errs, l.enc.Close())
		}
		errs = append(errs, l.bgr.Close(), l.i420.Close())
	}
	if h.jpeg != nil {
		errs = append(errs, h.jpeg.Close())
	}
	return errors.Join(errs...)
}

// KeyframeRequestGap is the shortest time between two keyframes the
// sender forces for the gateway's requests: at most 2 a second. A request
// within the gap of the last forced keyframe is not dropped: it forces one
// when the gap ends, however many came in between. (The gateway already
// sends at most one a second per room from each replica.)
const KeyframeRequestGap = 500 * time.Millisecond

// keyframeLimiter turns keyframe requests into forced keyframes, at most
// one per gap. Its methods are safe for concurrent use.
type keyframeLimiter struct {
	gap   time.Duration
	force func()

	mu      sync.Mutex
	last    time.Time   // when force was last called
	pending *time.Timer // a deferred force, or nil
	stopped bool
}

func newKeyframeLimiter(gap time.Duration, force func()) *keyframeLimiter {
	return &keyframeLimiter{gap: gap, force: force}
}

// request asks for a keyframe: now, or at the end of the current gap.
func (k *keyframeLimiter) request() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stopped || k.pending != nil {
		return
	}
	if wait := k.gap - time.Since(k.last); wait > 0 {
		k.pending = time.AfterFunc(wait, k.fire)
		return
	}
	k.last = time.Now()
	k.force()
}

func (k *keyframeLimiter) fire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pending = nil
	if k.stopped {
		return
	}
	k.last = time.Now()
	k.force()
}

// stop cancels a deferred keyframe; later requests do nothing.
func (k *keyframeLimiter) stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stopped = true
	if k.pending != nil {
		k.pending.Stop()
		k.pending = nil
	}
}
