package rooms

import (
	"context"

	"github.com/framecast/framecast/pkg/frames"
)

// Subscriptions.
//
// The replica is subscribed to a stream's channel exactly while the stream
// has local viewers or taps, and to a room's keyframe channel
// (frames.Stream.KeyframeChannel) while the room has a local H.264
// publisher. Each channel has at most one layer call in flight, made by the
// goroutine that found its state to change (channelState.busy); after each
// call that goroutine reads the wanted state again and calls again until
// the two agree, so a leave racing a join never leaves a channel with
// viewers unsubscribed. subMu is held only to read and flip the state,
// never across a layer call: a slow or frozen Redis delays only the calls
// for channels whose subscription changes, never a join to a stream
// already subscribed.
//
// A joiner waits (subscribeStream): when it returns, the channel is
// subscribed — after the goroutine in flight (an unsubscribe for the last
// viewer who just left, say) has finished and subscribed it again. A
// leaver never waits (syncStreamLater).

// channelState is one channel's subscription as the hub last asked the
// layer for it. Guarded by Hub.subMu.
type channelState struct {
	subscribed bool          // the last layer call was Subscribe (a failed one too: the layer retries)
	busy       bool          // a goroutine is calling the layer for the channel
	idle       chan struct{} // closed when busy ends
}

// subscribeStream makes sure the replica is subscribed to s's channel if s
// is wanted (it has viewers or taps), waiting for a change in flight. It
// returns early, with ctx's error, if ctx ends first (a client that went
// away while joining): the change goes on without it.
func (h *Hub) subscribeStream(ctx context.Context, s *stream) error {
	id := s.id
	return h.syncChannel(ctx, s.name, func() bool { return h.streamWanted(id) },
		func(_ string, msg []byte) { h.deliver(id, msg) }, true)
}

// syncStreamLater brings id's subscription to what it should be, on a
// goroutine of its own if a layer call is needed.
func (h *Hub) syncStreamLater(id frames.Stream) {
	_ = h.syncChannel(context.Background(), id.String(), func() bool { return h.streamWanted(id) },
		func(_ string, msg []byte) { h.deliver(id, msg) }, false)
}

// streamWanted reports whether stream id has local viewers or taps.
func (h *Hub) streamWanted(id frames.Stream) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	s := h.streams[id]
	return s != nil && (len(s.viewers.Load().all) > 0 || len(s.tapsNow()) > 0)
}

// syncChannel subscribes or unsubscribes channel name so that its state is
// want(): with wait, calling the layer on this goroutine and returning once
// the state agreed with want() after the call began; without, on a new
// goroutine, returning at once. want is called with subMu held (it may
// take hub.mu); handler receives the channel's messages.
func (h *Hub) syncChannel(ctx context.Context, name string, want func() bool, handler Handler, wait bool) error {
	for {
		h.subMu.Lock()
		c := h.channels[name]
		if c == nil {
			c = &channelState{}
		}
		w := want()
		if !c.busy && c.subscribed == w {
			h.subMu.Unlock()
			return nil
		}
		if c.busy {
			idle := c.idle
			h.subMu.Unlock()
			if !wait {
				return nil // the goroutine in flight reads want again when its call ends
			}
			select {
			case <-idle:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		c.busy, c.idle = true, make(chan struct{})
		h.channels[name] = c
		h.subMu.Unlock()
		if !wait {
			go h.changeChannel(name, c, w, want, handler)
			return nil
		}
		h.changeChannel(name, c, w, want, handler)
	}
}

// changeChannel calls the layer for channel name, which c says is busy,
// until its subscription is as want says, then clears c.busy.
func (h *Hub) changeChannel(name string, c *channelState, w bool, want func() bool, handler Handler) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.PublishTimeout)
		if w {
			if err := h.layer.Subscribe(ctx, name, handler); err != nil {
				// The layer keeps the subscription and restores it when it
				// reconnects; frames flow once it is back.
				h.log.Warn("subscribe failed; the layer will retry", "channel", name, "err", err)
			}
		} else if err := h.layer.Unsubscribe(ctx, name); err != nil {
			h.log.Warn("unsubscribe failed", "channel", name, "err", err)
		}
		cancel()
		h.subMu.Lock()
		c.subscribed = w
		if w = want(); w == c.subscribed {
			c.busy = false
			close(c.idle)
			if !c.subscribed {
				delete(h.channels, name)
			}
			h.subMu.Unlock()
			return
		}
		h.subMu.Unlock()
	}
}
