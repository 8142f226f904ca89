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

var _ Layer = (*MemoryLayer)(nil)

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
