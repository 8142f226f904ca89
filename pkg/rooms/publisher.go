package rooms

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// The bounds of a publisher's queue in front of the channel layer: while
// one round trip to the layer is in flight, up to PublishQueueFrames
// frames, and PublishQueueBytes bytes of binary messages, wait for the
// next one. Past either bound the codec policy drops (the oldest JPEG
// frames; whole H.264 pictures up to a keyframe), and so is any JPEG frame
// but the newest that waited longer than PublishQueueAge (after a Redis
// outage, stale frames would only delay fresh ones): the layer itself
// cannot keep up with the camera. Drops are counted in
// Stats.PublishDropped. The newest frame is always sent, whatever its size
// and age. With Redis 5 ms away a stream sustains ~2,000 frames/s (see
// docs/performance-log.md, "Pipelined publishes").
const (
	PublishQueueFrames = 64
	PublishQueueBytes  = 2 << 20
	PublishQueueAge    = 100 * time.Millisecond
)

// queuedFrame is a frame waiting for the layer, and when it was queued.
type queuedFrame struct {
	f          *frames.Frame
	at         int64   // unix nanoseconds
	op         GroupOp // what f does to the group a GroupLayer keeps
	mayGoStale bool    // the loop may drop it for waiting past PublishQueueAge
}

// Publisher is one local source of a stream's frames. Send never blocks:
// it appends the frame to a bounded queue, and the publisher's own
// goroutine publishes the queue to the channel layer, in order. Every
// frame queued while one round trip was in flight goes out in the next
// one, as one pipeline when the layer is a BatchPublisher, so the rate a
// stream sustains does not depend on the layer's round trip. When the
// layer is slower than the camera (Redis frozen, say), the queue reaches
// its bounds and frames are dropped and counted; the WebSocket reader
// feeding Send keeps reading, so the camera's connection never backs up.
// Memory stays bounded: the queue holds shared frames, never copies.
//
// Send may be called from one goroutine at a time; Close from any.
type Publisher struct {
	hub    *Hub
	stream *stream

	// mu guards queue, queuedBytes and the codec's state of the publisher
	// (pictures).
	mu          sync.Mutex
	queue       []queuedFrame // frames waiting for the layer, oldest first
	queuedBytes int
	pictures    publisherPictures // the H.264 policy's (h264.go)

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	lastSeq atomic.Uint64
	onKey   atomic.Pointer[func()] // called on keyframe requests
	sent    atomic.Bool            // a frame was sent: only then does Close announce offline
}

// NewPublisher registers a publisher of stream id and starts its
// goroutine. Call Close when the publisher goes.
func (h *Hub) NewPublisher(id frames.Stream) (*Publisher, error) {
	h.mu.Lock()
	s, err := h.streamLocked(id, true) // a publisher makes its room live
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{hub: h, stream: s, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	s.publishers = append(s.publishers, p)
	h.mu.Unlock()
	s.codec.publisherAdded(p)
	go p.loop(ctx)
	return p, nil
}

// OnKeyframe sets f to be called, on a goroutine of its own, when any
// replica asks for a keyframe of the publisher's room, or this publisher
// lost a picture: the gateway relays the request to its sender. Only
// publishers of codecs with keyframes (H.264) are asked.
func (p *Publisher) OnKeyframe(f func()) { p.onKey.Store(&f) }

// askKeyframe calls the OnKeyframe func, if any, on a goroutine.
func (p *Publisher) askKeyframe() {
	if f := p.onKey.Load(); f != nil {
		go (*f)()
	}
}

// Send queues f for publishing, dropping what the stream's codec says when
// the queue is full. It reports false, and drops f, when the stream is
// over its rate (Options.RoomRate).
func (p *Publisher) Send(f *frames.Frame) bool {
	s, h := p.stream, p.hub
	if s.rate != nil && !f.IsOffline() && !s.rate.Allow() {
		h.roomRateDrops.Add(1)
		s.codec.lost(p)
		return false
	}
	f.Room, f.Layer = s.id.Room, s.id.Layer
	p.lastSeq.Store(f.Seq)
	if !p.sent.Swap(true) && h.opts.Presence != nil {
		h.opts.Presence.PublishersChanged(s.id) // announce the new publisher now
	}
	now := time.Now().UnixNano()
	p.mu.Lock()
	dropped, queued := s.codec.enqueueLocked(p, f, now)
	p.mu.Unlock()
	if dropped > 0 {
		h.publishDropped.Add(uint64(dropped))
	}
	if queued {
		// Keep the newest picture for snapshots, first frames and layer
		// sizes even when this replica has no viewers of the stream.
		s.observe(f, now)
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// fullLocked reports whether the queue cannot take a message of n bytes
// without going past its bounds. Call with p.mu held.
func (p *Publisher) fullLocked(n int) bool {
	return len(p.queue) >= PublishQueueFrames || p.queuedBytes+n > PublishQueueBytes
}

// dropOldestLocked drops the oldest waiting frame; false if none waits.
// Call with p.mu held.
func (p *Publisher) dropOldestLocked() bool {
	if len(p.queue) == 0 {
		return false
	}
	p.queuedBytes -= len(p.queue[0].f.Binary())
	p.queue[0] = queuedFrame{}
	p.queue = p.queue[1:]
	return true
}

// appendLocked queues q. Call with p.mu held.
func (p *Publisher) appendLocked(q queuedFrame) {
	p.queue = append(p.queue, q)
	p.queuedBytes += len(q.f.Binary())
}

// take returns the waiting frames and leaves spare, emptied, as the queue.
func (p *Publisher) take(spare []queuedFrame) []queuedFrame {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.queue
	p.queue, p.queuedBytes = spare[:0], 0
	return out
}

func (p *Publisher) loop(ctx context.Context) {
	defer close(p.done)
	var (
		spare []queuedFrame
		batch []queuedFrame
		msgs  [][]byte
		ops   []GroupOp
	)
	for {
		select {
		case <-p.wake:
		case <-ctx.Done():
			// Frames still waiting never reach the layer: count them.
			if left := p.take(nil); len(left) > 0 {
				p.hub.publishDropped.Add(uint64(len(left)))
			}
			return
		}
		queued := p.take(spare)
		stale := time.Now().Add(-PublishQueueAge).UnixNano()
		batch = batch[:0]
		for i, q := range queued {
			if q.mayGoStale && q.at < stale && i < len(queued)-1 {
				p.hub.publishDropped.Add(1)
				continue
			}
			batch = append(batch, q)
		}
		if len(batch) > 0 {
			msgs, ops = p.publish(ctx, batch, msgs, ops)
		}
		clear(batch)
		clear(queued)
		spare = queued
	}
}

// publish sends batch to the layer in order: one pipelined round trip when
// the layer is a BatchPublisher (a GroupLayer when the batch changes the
// stream's group), else one Publish per frame. msgs and ops are scratch
// space, returned for reuse.
func (p *Publisher) publish(ctx context.Context, batch []queuedFrame, msgs [][]byte, ops []GroupOp) ([][]byte, []GroupOp) {
	ctx, cancel := context.WithTimeout(ctx, p.hub.opts.PublishTimeout)
	defer cancel()
	s, layer := p.stream, p.hub.layer
	msgs, ops = msgs[:0], ops[:0]
	grouped := false
	for _, q := range batch {
		msgs = append(msgs, s.id.Message(q.f))
		ops = append(ops, q.op)
		grouped = grouped || q.op != GroupNone
	}
	defer clear(msgs)
	if gl, ok := layer.(GroupLayer); ok && grouped {
		p.count(len(batch), gl.PublishGroup(ctx, s.name, msgs, ops))
		return msgs, ops
	}
	if bp, ok := layer.(BatchPublisher); ok && len(batch) > 1 {
		p.count(len(batch), bp.PublishBatch(ctx, s.name, msgs))
		return msgs, ops
	}
	for _, m := range msgs {
		p.count(1, layer.Publish(ctx, s.name, m))
	}
	return msgs, ops
}

// count records the outcome of publishing n frames.
func (p *Publisher) count(n int, err error) {
	if err != nil {
		after := p.hub.publishErrors.Add(uint64(n))
		if before := after - uint64(n); before%100 == 0 || before/100 != (after-1)/100 { // the first of every 100
			p.hub.log.Warn("publish failed; dropping frames", "stream", p.stream.name, "frames", n, "err", err)
		}
		return
	}
	p.hub.published.Add(uint64(n))
}

// Close stops the publisher, unregisters it, and, if it was the stream's
// last publisher on this replica and no other replica has a live one (see
// Options.Presence), tells the stream's viewers on every replica that the
// publisher has gone. It is idempotent.
func (p *Publisher) Close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		h, s := p.hub, p.stream
		h.mu.Lock()
		for i, q := range s.publishers {
			if q == p {
				s.publishers = append(s.publishers[:i:i], s.publishers[i+1:]...)
				break
			}
		}
		last := len(s.publishers) == 0
		h.dropIfEmptyLocked(s)
		h.mu.Unlock()
		s.codec.publisherRemoved(p)
		if !last || !p.sent.Load() {
			return
		}
		if h.opts.Presence != nil {
			h.opts.Presence.PublishersChanged(s.id)
		}
		off := frames.OfflineLayer(s.id.Room, s.id.Layer, p.lastSeq.Load(), time.Now())
		if h.publishedElsewhere(s) {
			// Another replica's publisher (the same camera, reconnected
			// there, say) carries on: no offline event. Look again for a
			// while, in case it is leaving too and both saw the other.
			go p.offlineLater(off)
			return
		}
		p.announceOffline(off)
	})
}

// offlineRecheck and offlineRecheckFor pace offlineLater: how often, and
// for how long after a Close, a replica whose last publisher left looks
// again whether another replica still has one. Past that, the other
// replica announces offline itself when its publisher leaves.
const (
	offlineRecheck    = time.Second
	offlineRecheckFor = 20 * time.Second
)

// offlineLater announces off once no replica has a live publisher of the
// stream, unless a local publisher came back, for at most offlineRecheckFor.
func (p *Publisher) offlineLater(off *frames.Frame) {
	t := time.NewTicker(offlineRecheck)
	defer t.Stop()
	for end := time.Now().Add(offlineRecheckFor); time.Now().Before(end); {
		<-t.C
		if s := p.hub.lookup(p.stream.id); s != nil && s.hasPublisher() {
			return // its own Close decides
		}
		if !p.hub.publishedElsewhere(p.stream) {
			p.announceOffline(off)
			return
		}
	}
}

// announceOffline marks the stream offline here and publishes off to every
// replica.
func (p *Publisher) announceOffline(off *frames.Frame) {
	h, s := p.hub, p.stream
	s.live.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.PublishTimeout)
	defer cancel()
	_ = h.layer.Publish(ctx, s.name, s.id.Message(off))
}

// publishedElsewhere asks Options.Presence whether another replica has a
// live publisher of s. Without presence, or when it cannot tell, it
// answers false: a wrong offline event is undone by the next frame, a
// missing one leaves viewers on a stale image.
func (h *Hub) publishedElsewhere(s *stream) bool {
	if h.opts.Presence == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.PublishTimeout)
	defer cancel()
	yes, err := h.opts.Presence.PublishedElsewhere(ctx, s.id)
	if err != nil {
		h.log.Debug("cannot tell whether another replica publishes the stream; announcing offline", "stream", s.name, "err", err)
		return false
	}
	return yes
}
