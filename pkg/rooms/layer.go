package rooms

import (
	"context"
	"errors"
	"sync"

	"github.com/framecast/framecast/pkg/frames"
)

// Handler receives the messages a channel layer delivers for a subscribed
// channel. msg is a binary frame message (see package frames) on a
// stream's channel. Layers hand over bytes that nobody modifies afterwards,
// so the handler may keep them (the hub keeps the newest frame of each
// stream) but must not modify them. The handler must not block: it runs on
// the layer's single read loop.
type Handler func(channel string, msg []byte)

// Layer is a channel layer: it carries frames between the gateway replicas
// that share it, like a Django Channels group. A message published to a
// channel reaches every subscriber of that channel on every replica, once
// per replica. The hub's channels are its streams (named by
// frames.Stream.String) and each room's keyframe requests
// (frames.Stream.KeyframeChannel); a layer adds its own prefix.
//
// Implementations must be safe for concurrent use. The hub makes at most
// one Subscribe or Unsubscribe call per channel at a time, and calls for
// different channels concurrently: one channel's slow call must not hold
// up another's.
type Layer interface {
	// Publish sends msg to every replica subscribed to channel.
	Publish(ctx context.Context, channel string, msg []byte) error
	// Subscribe starts delivering channel's messages to h, replacing any
	// earlier handler. A layer that loses its connection keeps the
	// subscription and restores it by itself.
	Subscribe(ctx context.Context, channel string, h Handler) error
	// Unsubscribe stops delivering channel's messages.
	Unsubscribe(ctx context.Context, channel string) error
	// Ready returns nil when the layer can deliver messages now.
	Ready(ctx context.Context) error
	// Close releases the layer's connections and stops its goroutines.
	Close() error
}

// BatchPublisher is implemented by a layer that can publish several
// messages of one channel in one round trip (a Redis pipeline). A
// Publisher hands it every frame queued while its previous round trip was
// in flight.
type BatchPublisher interface {
	// PublishBatch sends msgs to every replica subscribed to channel, in
	// order, as Publish would one by one. A non-nil error means some of
	// them may not have been sent; the hub counts them all as failed.
	PublishBatch(ctx context.Context, channel string, msgs [][]byte) error
}

// PublisherPresence is what the hub asks of the replicas' shared presence
// (Options.Presence; redislayer.Presence implements it), so that a stream
// is announced offline only when no replica has a publisher of it.
// Its methods must be safe for concurrent use.
type PublisherPresence interface {
	// PublishedElsewhere reports whether a replica other than this one
	// has a live publisher of stream: one that sent a frame recently. It
	// must return within ctx's deadline.
	PublishedElsewhere(ctx context.Context, stream frames.Stream) (bool, error)
	// PublishersChanged says that this replica's first frame from a new
	// publisher of stream was sent, or its last publisher of it left, so
	// that the other replicas learn it now rather than at the next
	// heartbeat. It must not block.
	PublishersChanged(stream frames.Stream)
}

// ErrLayerClosed is returned by a Layer's methods after Close.
var ErrLayerClosed = errors.New("rooms: channel layer closed")

// MemoryLayer is the in-process channel layer a single gateway uses when no
// Redis is configured. Publish calls the channel's handler synchronously on
// the publisher's goroutine. It is safe for concurrent use.
type MemoryLayer struct {
	mu       sync.RWMutex       // guards handlers and closed
	handlers map[string]Handler // by channel
	closed   bool
}

var (
	_ Layer          = (*MemoryLayer)(nil)
	_ BatchPublisher = (*MemoryLayer)(nil)
)

// NewMemoryLayer returns an empty in-process channel layer.
func NewMemoryLayer() *MemoryLayer {
	return &MemoryLayer{handlers: make(map[string]Handler)}
}

// Publish delivers msg to channel's handler, if the channel is subscribed.
func (m *MemoryLayer) Publish(_ context.Context, channel string, msg []byte) error {
	m.mu.RLock()
	h, closed := m.handlers[channel], m.closed
	m.mu.RUnlock()
	if closed {
		return ErrLayerClosed
	}
	if h != nil {
		h(channel, msg)
	}
	return nil
}

// PublishBatch delivers msgs to channel's handler, in order.
func (m *MemoryLayer) PublishBatch(ctx context.Context, channel string, msgs [][]byte) error {
	for _, msg := range msgs {
		if err := m.Publish(ctx, channel, msg); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe registers h for channel, replacing any earlier handler.
func (m *MemoryLayer) Subscribe(_ context.Context, channel string, h Handler) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrLayerClosed
	}
	m.handlers[channel] = h
	return nil
}

// Unsubscribe removes channel's handler.
func (m *MemoryLayer) Unsubscribe(_ context.Context, channel string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.handlers, channel)
	return nil
}

// Ready always succeeds until Close.
func (m *MemoryLayer) Ready(context.Context) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return ErrLayerClosed
	}
	return nil
}

// Close drops every subscription.
func (m *MemoryLayer) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	clear(m.handlers)
	return nil
}

// GroupOp says what a message does to its H.264 stream's group of
// pictures as a GroupLayer keeps it.
type GroupOp uint8

const (
	GroupNone   GroupOp = iota // the group is unchanged (JPEG, offline events)
	GroupStart                 // the message (a configuration) starts a new group
	GroupAppend                // the message (the keyframe, a delta) joins the group
	GroupDrop                  // the group grew past its bounds: forget it until the next start
)

func (o GroupOp) String() string {
	if int(o) < len(groupOpNames) {
		return groupOpNames[o]
	}
	return "GroupOp(?)"
}

var groupOpNames = [...]string{"none", "start", "append", "drop"}

// GroupLayer is a Layer that also keeps each H.264 stream's current group
// of pictures where every replica can read it (redislayer's layers do),
// so a viewer joining on a replica that had none starts at once. The hub
// uses it when the layer implements it.
type GroupLayer interface {
	// PublishGroup is PublishBatch, applying ops[i] to the channel's group
	// before msgs[i] is published, in one round trip.
	PublishGroup(ctx context.Context, channel string, msgs [][]byte, ops []GroupOp) error
	// Group returns the channel's group, oldest message first, or none.
	Group(ctx context.Context, channel string) ([][]byte, error)
}
