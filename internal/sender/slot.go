package sender

import (
	"sync"
	"time"

	"github.com/coder/websocket"
	"gocv.io/x/gocv"
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
type message struct {
	typ  websocket.MessageType
	buf  []byte
	ends []int
	seq  uint64
}

// endLayer makes buf, which extends m.buf by one layer's message, the
// message's buffer.
func (m *message) endLayer(buf []byte) {
	m.buf = buf
	m.ends = append(m.ends, len(buf))
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
// get and put are called by the encoder; take, release and drop by the
// writer. All methods are safe for concurrent use.
type messageSlot struct {
	mu      sync.Mutex
	pending *message
	free    []*message

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
		m.buf, m.ends = m.buf[:0], m.ends[:0]
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

// drop discards the pending message (stale after a disconnection). It
// reports whether there was one.
func (s *messageSlot) drop() bool {
	if m := s.take(); m != nil {
		s.release(m)
		return true
	}
	return false
}
