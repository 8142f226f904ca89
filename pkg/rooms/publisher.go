package rooms

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// Publisher is one local source of a room's frames. Send never blocks: it
// puts the frame in a one-frame latest-wins slot, and the publisher's own
// goroutine publishes the slot's frame to the channel layer. When the layer
// is slow (Redis frozen, say), newer frames replace older ones in the slot
// and are counted as dropped; the WebSocket reader feeding Send keeps
// reading, so the camera's connection never backs up.
//
// Send may be called from one goroutine at a time; Close from any.
type Publisher struct {
	hub  *Hub
	room *Room

	slot   atomic.Pointer[frames.Frame]
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	seq     atomic.Uint64
	lastSeq atomic.Uint64
	sent    atomic.Bool // a frame was sent: only then does Close announce offline
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
	go p.loop(ctx)
	return p, nil
}

// NextSeq returns the next sequence number for a frame whose wire format
// carries none (the seed's data URLs, bare JPEGs): 1, 2, 3...
func (p *Publisher) NextSeq() uint64 { return p.seq.Add(1) }

// Send queues f for publishing, replacing a frame still waiting.
func (p *Publisher) Send(f *frames.Frame) {
	f.Room = p.room.name
	p.lastSeq.Store(f.Seq)
	p.sent.Store(true)
	if !f.IsOffline() {
		// Keep the newest frame for snapshots and first frames even when
		// this replica has no viewers subscribed to the room.
		p.room.last.Store(f)
		p.room.live.Store(true)
		p.room.lastSeen.Store(time.Now().UnixNano())
	}
	if old := p.slot.Swap(f); old != nil {
		p.hub.publishDropped.Add(1)
	}
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Publisher) loop(ctx context.Context) {
	defer close(p.done)
	for {
		select {
		case <-p.wake:
		case <-ctx.Done():
			return
		}
		if f := p.slot.Swap(nil); f != nil {
			p.publish(ctx, f)
		}
	}
}

func (p *Publisher) publish(ctx context.Context, f *frames.Frame) {
	ctx, cancel := context.WithTimeout(ctx, p.hub.opts.PublishTimeout)
	defer cancel()
	if err := p.hub.layer.Publish(ctx, p.room.name, f.Binary()); err != nil {
		if p.hub.publishErrors.Add(1)%100 == 1 { // log the first of every 100
			p.hub.log.Warn("publish failed; dropping frame", "room", p.room.name, "err", err)
		}
		return
	}
	p.hub.published.Add(1)
}

// Close stops the publisher, tells the room's viewers on every replica that
// the publisher has gone, and unregisters it. It is idempotent.
func (p *Publisher) Close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		h := p.hub
		h.mu.Lock()
		p.room.publishers--
		last := p.room.publishers == 0
		h.dropIfEmpty(p.room)
		h.mu.Unlock()
		if last && p.sent.Load() {
			p.room.live.Store(false)
			off := frames.Offline(p.lastSeq.Load(), time.Now())
			ctx, cancel := context.WithTimeout(context.Background(), h.opts.PublishTimeout)
			defer cancel()
			_ = h.layer.Publish(ctx, p.room.name, off.Binary())
		}
	})
}
