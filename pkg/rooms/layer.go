package rooms

import (
	"context"
	"errors"
	"sync"
)

// Handler receives the messages a channel layer delivers for a subscribed
// room. msg is a binary frame message (see package frames). Layers hand over
// bytes that nobody modifies afterwards, so the handler may keep them (the
// hub keeps the newest frame of each room) but must not modify them. The
// handler must not block: it runs on the layer's single read loop.
type Handler func(room string, msg []byte)

// Layer is a channel layer: it carries frames between the gateway replicas
// that share it, like a Django Channels group. A frame published to a room
// reaches every subscriber of that room on every replica, once per replica.
//
// Implementations must be safe for concurrent use. The hub makes at most
// one Subscribe or Unsubscribe call per room at a time, and calls for
// different rooms concurrently: one room's slow call must not hold up
// another room's.
type Layer interface {
	// Publish sends msg to every replica subscribed to room.
	Publish(ctx context.Context, room string, msg []byte) error
	// Subscribe starts delivering room's messages to h. A layer that loses
	// its connection keeps the subscription and restores it by itself.
	Subscribe(ctx context.Context, room string, h Handler) error
	// Unsubscribe stops delivering room's messages.
	Unsubscribe(ctx context.Context, room string) error
	// Ready returns nil when the layer can deliver messages now.
	Ready(ctx context.Context) error
	// Close releases the layer's connections and stops its goroutines.
	Close() error
}

// BatchPublisher is implemented by a layer that can publish several
// messages of one room in one round trip (a Redis pipeline). A Publisher
// hands it every frame queued while its previous round trip was in flight.
type BatchPublisher interface {
	// PublishBatch sends msgs to every replica subscribed to room, in
	// order, as Publish would one by one. A non-nil error means some of
	// them may not have been sent; the hub counts them all as failed.
	PublishBatch(ctx context.Context, room string, msgs [][]byte) error
}

// PublisherPresence is what the hub asks of the replicas' shared presence
// (Options.Presence; redislayer.Presence implements it), so that a room
// is announced offline only when no replica has a publisher of it.
// Its methods must be safe for concurrent use.
type PublisherPresence interface {
	// PublishedElsewhere reports whether a replica other than this one
	// has a live publisher of room: one that sent a frame recently. It
	// must return within ctx's deadline.
	PublishedElsewhere(ctx context.Context, room string) (bool, error)
	// PublishersChanged says that this replica's first frame from a new
	// publisher of room was sent, or its last publisher of room left, so
	// that the other replicas learn it now rather than at the next
	// heartbeat. It must not block.
	PublishersChanged(room string)
}

// ErrLayerClosed is returned by a Layer's methods after Close.
var ErrLayerClosed = errors.New("rooms: channel layer closed")

// MemoryLayer is the in-process channel layer a single gateway uses when no
// Redis is configured. Publish calls the room's handler synchronously on the
// publisher's goroutine. It is safe for concurrent use.
type MemoryLayer struct {
	mu       sync.RWMutex
	handlers map[string]Handler
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

// Publish delivers msg to room's handler, if the room is subscribed.
func (m *MemoryLayer) Publish(_ context.Context, room string, msg []byte) error {
	m.mu.RLock()
	h, closed := m.handlers[room], m.closed
	m.mu.RUnlock()
	if closed {
		return ErrLayerClosed
	}
	if h != nil {
		h(room, msg)
	}
	return nil
}

// PublishBatch delivers msgs to room's handler, in order.
func (m *MemoryLayer) PublishBatch(ctx context.Context, room string, msgs [][]byte) error {
	for _, msg := range msgs {
		if err := m.Publish(ctx, room, msg); err != nil {
			return err
		}
	}
	return nil
}

// Subscribe registers h for room, replacing any earlier handler.
func (m *MemoryLayer) Subscribe(_ context.Context, room string, h Handler) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrLayerClosed
	}
	m.handlers[room] = h
	return nil
}

// Unsubscribe removes room's handler.
func (m *MemoryLayer) Unsubscribe(_ context.Context, room string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.handlers, room)
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

// GroupLayer is a Layer that also keeps each H.264 stream's current group
// of pictures where every replica can read it (redislayer's layers do),
// so a viewer joining on a replica that had none starts at once. The hub
// uses it when the layer implements it.
type GroupLayer interface {
	// PublishGroup is PublishBatch, applying ops[i] to room's group
	// before msgs[i] is published, in one round trip.
	PublishGroup(ctx context.Context, room string, msgs [][]byte, ops []GroupOp) error
	// Group returns room's group, oldest message first, or none.
	Group(ctx context.Context, room string) ([][]byte, error)
}
