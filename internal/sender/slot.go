package sender

import (
	"sync"
	"time"

	"github.com/coder/websocket"
	"gocv.io/x/gocv"

	"github.com/framecast/framecast/pkg/frames"
)

// frameInfo is what travels with a captured image.
type frameInfo struct {
	seq      uint64    // 1, 2, 3... per captured frame
	captured time.Time // when the capture goroutine got the frame
}

// frameSlot hands the newest captured frame from the capture goroutine to
// the encode goroutine without a queue: a frame not taken before the next
// one is stored is overwritten (latest wins). It is a triple buffer: the
// capture goroutine fills its own Mat, then swaps it with the slot's; the
// encoder swaps the slot's Mat with its own. No pixels are copied and no
// Mat is allocated per frame.
//
// put is called by one goroutine and take by one other; both lock mu only
// to swap. The slot owns pending; close it with Close once neither
// goroutine runs.
type frameSlot struct {
	mu      sync.Mutex
	pending gocv.Mat
	info    frameInfo
	fresh   bool

	// ready has a buffer of one: put signals it, the encoder waits on it.
	ready chan struct{}
}

func newFrameSlot() *frameSlot {
	return &frameSlot{pending: gocv.NewMat(), ready: make(chan struct{}, 1)}
}

// put swaps *back (just filled) into the slot and gives the caller the
// slot's previous Mat to fill next. It reports whether a frame the encoder
// had not taken was overwritten.
func (s *frameSlot) put(back *gocv.Mat, info frameInfo) (overwrote bool) {
	s.mu.Lock()
	*back, s.pending = s.pending, *back
	overwrote = s.fresh
	s.info, s.fresh = info, true
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
	return overwrote
}

// take swaps the newest frame into *front, giving the slot the caller's old
// Mat. ok is false when no frame arrived since the last take.
func (s *frameSlot) take(front *gocv.Mat) (info frameInfo, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.fresh {
		return frameInfo{}, false
	}
	*front, s.pending = s.pending, *front
	s.fresh = false
	return s.info, true
}

// Close releases the slot's Mat.
func (s *frameSlot) Close() error { return s.pending.Close() }

// message is one encoded picture in its wire format: one WebSocket message
// per layer, back to back in buf, the i-th ending at ends[i]. The writer
// sends them in order. Handing whole pictures through the slot is what
// makes latest-wins drop a picture with all its layers, never part of one.
// Its buffers are reused for later pictures once the writer releases it.
//
// With SENDER_CODEC=h264 a picture is more WebSocket messages than layers:
// per H.264 layer a configuration (before a keyframe) and the access unit,
// then, at SENDER_JPEG_FPS, the JPEG layer. kinds and layers say what each
// message is, for the byte counters.
type message struct {
	typ    websocket.MessageType
	buf    []byte
	ends   []int
	kinds  []frames.Kind // per message: what it carries
	layers []uint8       // per message: its layer index
	seq    uint64
	key    bool   // an H.264 keyframe picture
	gen    uint64 // H.264: the connection it was encoded for (counters.connGen); 0: any
}

// endLayer makes buf, which extends m.buf by one JPEG layer's message, the
// message's buffer; the layer's index is its position in the picture.
func (m *message) endLayer(buf []byte) {
	m.endPart(buf, frames.KindJPEG, len(m.ends))
}

// endPart makes buf, which extends m.buf by one message of kind for
// layer, the message's buffer.
func (m *message) endPart(buf []byte, kind frames.Kind, layer int) {
	m.buf = buf
	m.ends = append(m.ends, len(buf))
	m.kinds = append(m.kinds, kind)
	m.layers = append(m.layers, uint8(layer))
}

// reset empties m for the next picture, keeping its buffers.
func (m *message) reset() {
	m.buf, m.ends, m.kinds, m.layers = m.buf[:0], m.ends[:0], m.kinds[:0], m.layers[:0]
	m.seq, m.key, m.gen = 0, false, 0
}

// layer returns the wire message of layer i.
func (m *message) layer(i int) []byte {
	start := 0
	if i > 0 {
		start = m.ends[i-1]
	}
	return m.buf[start:m.ends[i]]
}

// messageSlot hands the newest encoded picture from the encode goroutine to
// the connection's writer, latest wins: a message replaced before the
// writer took it is a picture (all its layers) skipped because the socket
// was slow. At most
// three buffers exist (one being encoded, one pending, one being written);
// they are recycled, so steady streaming allocates nothing.
//
// Every picture the slot loses (replaced in put, or thrown away by drop
// or discard) sets its lost flag, which the encoder reads with takeLost:
// with H.264 the picture after a lost one must be a keyframe, because the
// gateway never got the picture a delta would refer to. An H.264 encoder
// also never replaces a pending picture (see pending): it skips captured
// frames instead, which refer to nothing.
//
// get, put, pending and takeLost are called by the encoder; take,
// release, discard and drop by the writer. All methods are safe for
// concurrent use.
type messageSlot struct {
	mu      sync.Mutex
	pending *message
	free    []*message
	lost    bool

	// ready has a buffer of one: put signals it, the writer waits on it.
	ready chan struct{}
}

func newMessageSlot() *messageSlot {
	return &messageSlot{ready: make(chan struct{}, 1)}
}

// get returns an empty message to encode into.
func (s *messageSlot) get() *message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		m := s.free[n-1]
		s.free = s.free[:n-1]
		m.reset()
		return m
	}
	return &message{}
}

// put makes m the pending message. It reports whether it replaced a
// message the writer had not taken, which then goes back to the free list.
func (s *messageSlot) put(m *message) (replaced bool) {
	s.mu.Lock()
	old := s.pending
	s.pending = m
	if old != nil {
		s.free = append(s.free, old)
		s.lost = true
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
	return old != nil
}

// take returns the pending message, or nil, and empties the slot. The
// caller owns the message until it calls release.
func (s *messageSlot) take() *message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.pending
	s.pending = nil
	return m
}

// release returns a message taken with take to the free list.
func (s *messageSlot) release(m *message) {
	s.mu.Lock()
	s.free = append(s.free, m)
	s.mu.Unlock()
}

// discard returns a message taken with take to the free list unsent: a
// lost picture.
func (s *messageSlot) discard(m *message) {
	s.mu.Lock()
	s.free = append(s.free, m)
	s.lost = true
	s.mu.Unlock()
}

// drop discards the pending message (stale after a disconnection). It
// reports whether there was one.
func (s *messageSlot) drop() bool {
	if m := s.take(); m != nil {
		s.discard(m)
		return true
	}
	return false
}

// hasPending reports whether a message waits for the writer.
func (s *messageSlot) hasPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending != nil
}

// takeLost reports whether a picture was lost since the last call, and
// clears the flag.
func (s *messageSlot) takeLost() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	lost := s.lost
	s.lost = false
	return lost
}
