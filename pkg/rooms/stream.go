package rooms

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/framecast/framecast/pkg/frames"
)

// stream is one stream (a room's layer in one codec) with local viewers,
// taps or publishers on this replica.
type stream struct {
	hub   *Hub
	id    frames.Stream
	name  string      // id.String(): its channel
	room  *roomState  // its room's budget state (budget.go); fixed at creation
	codec codecPolicy // what differs between codecs; fixed at creation

	// mu guards the codec's per-stream state (the H.264 group of
	// pictures), and orders a joining viewer's start against deliveries
	// (see codecPolicy.join). See the package doc for the lock order.
	mu sync.Mutex

	viewers    atomic.Pointer[viewerSet] // copy-on-write; replaced under hub.mu
	taps       atomic.Pointer[[]*Tap]    // copy-on-write; replaced under hub.mu
	publishers []*Publisher              // guarded by hub.mu
	nextShard  int                       // fan-out shard of the next viewer; guarded by hub.mu
	jobs       []shardJob                // one per shard; each guarded by its shard's mu

	rate     *rate.Limiter                // frames its publishers may send; nil: no limit
	last     atomic.Pointer[frames.Frame] // newest picture seen (a JPEG, an H.264 message)
	live     atomic.Bool                  // a picture arrived since the last offline event
	lastSeen atomic.Int64                 // unix nanoseconds of the newest picture
}

// errStreamGone says a stream was forgotten between a caller's lookup and
// its change: look it up again.
var errStreamGone = errors.New("rooms: stream dropped meanwhile")

// codecPolicy is everything that differs between a JPEG stream and an
// H.264 stream (jpeg.go, h264.go). A stream owns one, made for it at
// creation; a standalone viewer (NewViewer) owns one without a stream.
// Methods that name a lock are called with it held.
type codecPolicy interface {
	// initViewer sets up the codec's state of v, a viewer not shared yet.
	initViewer(v *Viewer)
	// offerLocked queues f for v, skipping queued frames if v is too far
	// behind; at is the hub's monotonic time of the offer. v.mu is held.
	offerLocked(v *Viewer, f *frames.Frame, at int64)
	// startLocked makes group, frames of the stream in order, what v
	// starts from: drained before anything offered after. v.mu is held.
	startLocked(v *Viewer, group []*frames.Frame)
	// skipsAfterSwitch reports whether f may be dropped after a switch to
	// this stream for not being newer than the last frame written (see
	// Viewer.SetFloor): frames that are shown alone may; a stream that
	// restarts its decoder at the group handed over may not.
	skipsAfterSwitch(f *frames.Frame) bool
	// join adds v to the stream's viewers (Hub.addViewer) and hands it
	// what it starts from, in an order deliveries cannot overtake; it
	// returns errStreamGone if the stream was dropped meanwhile, after
	// which the caller joins again. It may block: on the channel layer's
	// subscription, on a cache.
	join(ctx context.Context, v *Viewer) error
	// delivered records f, a message the layer delivered, and returns the
	// viewers to offer it to, read so that join's promise holds. local
	// says the stream has a publisher on this replica.
	delivered(f *frames.Frame, local bool) *viewerSet
	// enqueueLocked adds f, sent by p at now, to p's queue, dropping what
	// the codec's bounds say (p.dropOldestLocked); it returns how many
	// frames it dropped, f among them if it was not queued. p.mu is held.
	enqueueLocked(p *Publisher, f *frames.Frame, now int64) (dropped int, queued bool)
	// lost records that a frame p sent was dropped before its queue (the
	// room was over its rate).
	lost(p *Publisher)
	// publisherAdded and publisherRemoved register p, a new publisher of
	// the stream, for keyframe requests; hub.mu is not held.
	publisherAdded(p *Publisher)
	publisherRemoved(p *Publisher)
	// requestKeyframe asks the stream's publisher for a keyframe; it
	// never blocks (see h264.go).
	requestKeyframe()
}

// newCodecPolicy returns the policy of codec for s (nil: a standalone
// viewer's).
func newCodecPolicy(codec frames.Codec, s *stream) codecPolicy {
	if codec == frames.CodecH264 {
		return &h264Policy{s: s}
	}
	return &jpegPolicy{s: s}
}

// observe records f, a picture or an offline event, as the stream's newest
// state.
func (s *stream) observe(f *frames.Frame, now int64) {
	if f.IsOffline() {
		s.live.Store(false)
		return
	}
	s.last.Store(f)
	s.live.Store(true)
	s.lastSeen.Store(now)
}

// latest returns the stream's newest picture while it is live, or nil.
func (s *stream) latest() *frames.Frame {
	if !s.live.Load() {
		return nil
	}
	return s.last.Load()
}

// hasPublisher reports whether the stream has a local publisher.
func (s *stream) hasPublisher() bool {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	return len(s.publishers) > 0
}

// Tap is a subscriber that sees every message the channel layer delivers
// for one stream, in order, on the delivering goroutine: a recorder. Unlike
// a viewer it never skips, so its func must be quick and must not block.
type Tap struct {
	s  *stream
	fn func(*frames.Frame)
}

// Tap calls fn for every message the layer delivers for stream from now
// on (pictures and offline events; fn must not block or keep the frame's
// bytes past the frame's life rules: frames are immutable and shared), and
// keeps the replica subscribed to the stream until Untap. The first
// messages may be the middle of an H.264 group: ask for a keyframe
// (RequestKeyframe) to start sooner than the publisher's next one. It
// returns with the stream subscribed (see Join).
func (h *Hub) Tap(ctx context.Context, id frames.Stream, fn func(*frames.Frame)) (*Tap, error) {
	{
		h.mu.Lock()
		s, err := h.streamLocked(id, true) // the operator records it: not a room anyone asked for
		if err != nil {
			h.mu.Unlock()
			return nil, err
		}
		t := &Tap{s: s, fn: fn}
		taps := append(append([]*Tap(nil), s.tapsNow()...), t)
		s.taps.Store(&taps)
		h.mu.Unlock()
		if err := h.subscribeStream(ctx, s); err != nil {
			h.Untap(t)
			return nil, err
		}
		return t, nil
	}
}

// Untap stops t. It is idempotent and never waits for the layer.
func (h *Hub) Untap(t *Tap) {
	s := t.s
	h.mu.Lock()
	old := s.tapsNow()
	taps := make([]*Tap, 0, len(old))
	for _, x := range old {
		if x != t {
			taps = append(taps, x)
		}
	}
	s.taps.Store(&taps)
	h.dropIfEmptyLocked(s)
	h.mu.Unlock()
	h.syncStreamLater(s.id)
}

func (s *stream) tapsNow() []*Tap {
	if p := s.taps.Load(); p != nil {
		return *p
	}
	return nil
}

// monotonic is the hub's clock for viewers' queues.
func (h *Hub) monotonic() int64 { return int64(time.Since(h.start)) }
