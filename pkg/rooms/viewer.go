package rooms

import (
	"context"
	"sync/atomic"

	"github.com/framecast/framecast/pkg/frames"
)

// Viewer is one local viewer of a room: a latest-frame-wins slot that the
// hub fills and the viewer's single writer drains.
//
// Offering a frame never blocks: it swaps the frame into the slot and, if
// the slot still held an unsent frame, counts that frame as skipped. So a
// viewer that falls behind jumps to the newest frame, its memory is bounded
// by one frame whatever the frame rate, and nothing it does can hold up the
// hub, the channel layer or other viewers.
//
// A viewer made by Join is drained with Next (or Wake and TryNext) by one
// goroutine. A viewer made by JoinNotify has no goroutine of its own: each
// offer calls its notify func, which drains with TryNext (writing at once,
// or starting a writer when a write would block). offer may be called from
// any goroutine; the hub offers a viewer's frames from one fan-out shard, in
// the order they arrived.
type Viewer struct {
	room   *Room
	slot   atomic.Pointer[frames.Frame]
	wake   chan struct{}
	notify func(*Viewer) // if set, called instead of signalling wake
	shard  int           // the hub's fan-out shard that offers to it

	skipped atomic.Uint64
	offered atomic.Uint64
}

func newViewer(r *Room) *Viewer {
	return &Viewer{room: r, wake: make(chan struct{}, 1)}
}

// Room returns the name of the viewer's room.
func (v *Viewer) Room() string { return v.room.name }

// offer puts f in the slot, replacing (and counting as skipped) any frame
// the writer has not taken yet.
func (v *Viewer) offer(f *frames.Frame) {
	v.offered.Add(1)
	if old := v.slot.Swap(f); old != nil && !old.IsOffline() {
		v.skipped.Add(1)
		v.room.hub.skipped.Add(1)
	}
	v.signal()
}

// offerFirst puts f in the slot only if the slot is empty: a first frame
// (from memory or a cache) must not replace a newer one delivered meanwhile.
func (v *Viewer) offerFirst(f *frames.Frame) {
	if v.slot.CompareAndSwap(nil, f) {
		v.offered.Add(1)
		v.signal()
	}
}

func (v *Viewer) signal() {
	if v.notify != nil {
		v.notify(v)
		return
	}
	select {
	case v.wake <- struct{}{}:
	default:
	}
}

// Pending reports whether a frame waits in the slot.
func (v *Viewer) Pending() bool { return v.slot.Load() != nil }

// Next waits for a frame and returns the newest one, or ctx's error.
func (v *Viewer) Next(ctx context.Context) (*frames.Frame, error) {
	for {
		if f := v.slot.Swap(nil); f != nil {
			return f, nil
		}
		select {
		case <-v.wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Wake returns a channel that receives when a frame may be waiting; a
// writer that also waits on other events selects on it, then calls TryNext.
func (v *Viewer) Wake() <-chan struct{} { return v.wake }

// TryNext returns the waiting frame, or nil.
func (v *Viewer) TryNext() *frames.Frame { return v.slot.Swap(nil) }

// Skipped returns how many frames this viewer skipped because it was behind.
func (v *Viewer) Skipped() uint64 { return v.skipped.Load() }
