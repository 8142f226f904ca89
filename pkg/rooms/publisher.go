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
// next one. Past either bound the oldest waiting frame is dropped, and so
// is any but the newest that waited longer than PublishQueueAge (after a
// Redis outage, stale frames would only delay fresh ones): the layer
// itself cannot keep up with the camera. Drops are counted in
// Stats.PublishDropped. The newest frame is always sent, whatever its size
// and age. With Redis 5 ms away a room sustains ~2,000 frames/s (see
// docs/performance-log.md, "Pipelined publishes").
const (
	PublishQueueFrames = 64
	PublishQueueBytes  = 2 << 20
	PublishQueueAge    = 100 * time.Millisecond
)

// queuedFrame is a frame waiting for the layer, and when it was queued.
type queuedFrame struct {
	f  *frames.Frame
	at int64   // unix nanoseconds
	op GroupOp // H.264 streams: what f does to the group a GroupLayer keeps
}

// Publisher is one local source of a room's frames. Send never blocks: it
// appends the frame to a bounded queue, and the publisher's own goroutine
// publishes the queue to the channel layer, in order. Every frame queued
// while one round trip was in flight goes out in the next one, as one
// pipeline when the layer is a BatchPublisher, so the rate a room sustains
// does not depend on the layer's round trip. When the layer is slower than
// the camera (Redis frozen, say), the queue reaches its bounds
// (PublishQueueFrames, PublishQueueBytes, PublishQueueAge) and the oldest
// frames are dropped and counted; the WebSocket reader feeding Send keeps
// reading, so the camera's connection never backs up. Memory stays
// bounded: the queue holds shared frames, never copies.
//
// Send may be called from one goroutine at a time; Close from any.
type Publisher struct {
	hub  *Hub
	room *Room

	mu          sync.Mutex
	queue       []queuedFrame // guarded by mu: frames waiting for the layer, oldest first
	queuedBytes int           // guarded by mu

	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	seq     atomic.Uint64
	lastSeq atomic.Uint64
	onKey   atomic.Pointer[func()] // H.264 streams: called on keyframe requests

	// H.264 streams (gop.go): Send's state, guarded by mu; the loop's ops.
	needKey  bool        // a picture was lost: drop deltas until the next keyframe
	lastKind frames.Kind // of the last message queued
	group    int         // pictures in the current group
	groupB   int         // bytes in the current group
	dropped  bool        // the current group went past its bounds
	ops      []GroupOp   // the loop's: the ops of the batch it publishes
	sent     atomic.Bool // a frame was sent: only then does Close announce offline
}

// NewPublisher registers a publisher of room and starts its goroutine.
// Call Close when the publisher goes.
func (h *Hub) NewPublisher(room string) (*Publisher, error) {
	h.mu.Lock()
	r, err := h.roomLocked(room)
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	r.publishers++
	h.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{hub: h, room: r, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	if r.codec == CodecH264 {
		h.addH264Publisher(p)
	}
	go p.loop(ctx)
	return p, nil
}

// NextSeq returns the next sequence number for a frame whose wire format
// carries none (the seed's data URLs, bare JPEGs): 1, 2, 3...
func (p *Publisher) NextSeq() uint64 { return p.seq.Add(1) }

// Send queues f for publishing, dropping the oldest waiting frame when the
// queue is full. It reports false, and drops f, when the room is over its
// rate (Options.RoomRate).
func (p *Publisher) Send(f *frames.Frame) bool {
	if p.room.rate != nil && !f.IsOffline() && !p.room.rate.Allow() {
		p.hub.roomRateDrops.Add(1)
		if p.room.codec == CodecH264 {
			p.lostPicture()
		}
		return false
	}
	if p.room.codec == CodecH264 {
		return p.sendPicture(f)
	}
	f.Room, f.Layer = p.room.base, p.room.layer
	p.lastSeq.Store(f.Seq)
	if !p.sent.Swap(true) && p.hub.opts.Presence != nil {
		p.hub.opts.Presence.PublishersChanged(p.room.name) // announce the new publisher now
	}
	now := time.Now().UnixNano()
	if !f.IsOffline() {
		// Keep the newest frame for snapshots and first frames even when
		// this replica has no viewers subscribed to the room.
		p.room.last.Store(f)
		p.room.live.Store(true)
		p.room.lastSeen.Store(now)
	}
	n := len(f.Binary())
	dropped := 0
	p.mu.Lock()
	for len(p.queue) > 0 && (len(p.queue) >= PublishQueueFrames || p.queuedBytes+n > PublishQueueBytes) {
		p.queuedBytes -= len(p.queue[0].f.Binary())
		p.queue[0] = queuedFrame{}
		p.queue = p.queue[1:]
		dropped++
	}
	p.queue = append(p.queue, queuedFrame{f: f, at: now})
	p.queuedBytes += n
	p.mu.Unlock()
	if dropped > 0 {
		p.hub.publishDropped.Add(uint64(dropped))
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return true
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
		batch []*frames.Frame
		msgs  [][]byte
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
		p.ops = p.ops[:0]
		for i, q := range queued {
			if q.at < stale && i < len(queued)-1 && p.room.codec == frames.CodecJPEG { // H.264: Send drops by pictures
				p.hub.publishDropped.Add(1)
				continue
			}
			batch = append(batch, q.f)
			p.ops = append(p.ops, q.op)
		}
		if len(batch) > 0 {
			msgs = p.publish(ctx, batch, msgs)
		}
		clear(batch)
		clear(queued)
		spare = queued
	}
}

// publish sends batch to the layer in order: one pipelined round trip when
// the layer is a BatchPublisher, else one Publish per frame. msgs is
// scratch space, returned for reuse.
func (p *Publisher) publish(ctx context.Context, batch []*frames.Frame, msgs [][]byte) [][]byte {
	ctx, cancel := context.WithTimeout(ctx, p.hub.opts.PublishTimeout)
	defer cancel()
	if gl, ok := p.hub.layer.(GroupLayer); ok && p.room.codec == CodecH264 {
		return p.publishGroup(ctx, gl, batch, msgs)
	}
	bp, ok := p.hub.layer.(BatchPublisher)
	if !ok || len(batch) == 1 {
		for _, f := range batch {
			p.count(1, p.hub.layer.Publish(ctx, p.room.name, p.room.wire(f)))
		}
		return msgs
	}
	msgs = msgs[:0]
	for _, f := range batch {
		msgs = append(msgs, p.room.wire(f))
	}
	p.count(len(batch), bp.PublishBatch(ctx, p.room.name, msgs))
	clear(msgs)
	return msgs
}

// count records the outcome of publishing n frames.
func (p *Publisher) count(n int, err error) {
	if err != nil {
		after := p.hub.publishErrors.Add(uint64(n))
		if before := after - uint64(n); before%100 == 0 || before/100 != (after-1)/100 { // the first of every 100
			p.hub.log.Warn("publish failed; dropping frames", "room", p.room.name, "frames", n, "err", err)
		}
		return
	}
	p.hub.published.Add(uint64(n))
}

// Close stops the publisher, unregisters it, and, if it was the room's
// last publisher on this replica and no other replica has a live one (see
// Options.Presence), tells the room's viewers on every replica that the
// publisher has gone. It is idempotent.
func (p *Publisher) Close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		h := p.hub
		if p.room.codec == CodecH264 {
			h.removeH264Publisher(p)
		}
		h.mu.Lock()
		p.room.publishers--
		last := p.room.publishers == 0
		h.dropIfEmpty(p.room)
		h.mu.Unlock()
		if !last || !p.sent.Load() {
			return
		}
		if h.opts.Presence != nil {
			h.opts.Presence.PublishersChanged(p.room.name)
		}
		off := frames.OfflineLayer(p.room.base, p.room.layer, p.lastSeq.Load(), time.Now())
		if h.publishedElsewhere(p.room) {
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
// room, unless a local publisher came back, for at most offlineRecheckFor.
func (p *Publisher) offlineLater(off *frames.Frame) {
	t := time.NewTicker(offlineRecheck)
	defer t.Stop()
	for end := time.Now().Add(offlineRecheckFor); time.Now().Before(end); {
		<-t.C
		if p.hub.hasLocalPublisher(p.room.name) {
			return // its own Close decides
		}
		if !p.hub.publishedElsewhere(p.room) {
			p.announceOffline(off)
			return
		}
	}
}

// announceOffline marks the room offline here and publishes off to every
// replica.
func (p *Publisher) announceOffline(off *frames.Frame) {
	h := p.hub
	p.room.live.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.PublishTimeout)
	defer cancel()
	_ = h.layer.Publish(ctx, p.room.name, p.room.wire(off))
}

// hasLocalPublisher reports whether room has a publisher on this replica.
func (h *Hub) hasLocalPublisher(room string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.rooms[room]
	return r != nil && r.publishers > 0
}

// publishedElsewhere asks Options.Presence whether another replica has a
// live publisher of r. Without presence, or when it cannot tell, it
// answers false: a wrong offline event is undone by the next frame, a
// missing one leaves viewers on a stale image.
func (h *Hub) publishedElsewhere(r *Room) bool {
	if h.opts.Presence == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.PublishTimeout)
	defer cancel()
	yes, err := h.opts.Presence.PublishedElsewhere(ctx, r.name)
	if err != nil {
		h.log.Debug("cannot tell whether another replica publishes the room; announcing offline", "room", r.name, "err", err)
		return false
	}
	return yes
}
