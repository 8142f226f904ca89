package rooms

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// How far a viewer may fall behind before latest-frame-wins skips it to the
// newest frame: at most MaxBehindFrames frames wait for its writer, and the
// oldest of them arrived at most MaxBehind before the newest, whichever
// bound is reached first. A few frames of slack absorb a writer that runs a
// little late on busy cores (a one-frame slot lost a frame each time); the
// bound keeps the never-freeze promise: a viewer's queue, and so its
// latency, never grows past it however slow the viewer is.
const (
	MaxBehindFrames = 3
	MaxBehind       = 100 * time.Millisecond
)

// Viewer is one local viewer of a room: a short latest-frame-wins queue that
// the hub fills and the viewer's single writer drains.
//
// Offering a frame never blocks. It appends the frame to the queue; if the
// queue already holds MaxBehindFrames frames, or its oldest frame arrived
// more than MaxBehind before this one, the queued frames are dropped first
// (each image counted as skipped), so the viewer jumps to the newest frame.
// Its memory is bounded by MaxBehindFrames shared frames whatever the frame
// rate, and nothing it does can hold up the hub, the channel layer or other
// viewers.
//
// Order: the hub queues a room's frames to its viewers in the order the
// channel layer delivers them (one read loop per room for Redis); the first
// frame at Join is queued only if no frame was (offerFirst); the queue is
// first in, first out; and the viewer's one writer drains it. So a viewer
// never receives a frame after a newer one.
//
// A viewer made by Join is drained with Next (or Wake and TryNext) by one
// goroutine. A viewer made by JoinNotify has no goroutine of its own: each
// offer calls its notify func, which drains with TryNext (writing at once,
// or handing the write to a goroutine when it would block).
type Viewer struct {
	room   *Room
	wake   chan struct{}
	notify func(*Viewer) // if set, called instead of signalling wake
	shard  *fanoutShard  // offers to this viewer run here, one at a time

	mu    sync.Mutex // guards the queue, backlog and needKey
	queue [maxQueue]queued
	head  int // index of the oldest queued frame
	n     int // frames queued

	// H.264 streams (see gop.go): a viewer that fell behind waits for the
	// next keyframe (needKey), and a joining one drains the room's current
	// group of pictures (backlog) before the queue.
	h264     bool
	needKey  bool
	backlog  []*frames.Frame
	joining  bool            // the group is being read from the layer: hold what comes
	held     []*frames.Frame // what came while joining
	lastSeq  uint64          // of the last picture queued or handed over
	lastKind frames.Kind     // of that picture

	offered atomic.Uint64 // frames offered so far; written under mu
	skipped atomic.Uint64
}

// queued is a frame waiting for the viewer's writer, with the monotonic time
// (nanoseconds since the hub started) at which the hub took it.
type queued struct {
	f  *frames.Frame
	at int64
}

// maxQueue is the queue's capacity: MaxBehindFrames for JPEG streams,
// MaxBehindPictures for H.264 ones.
const maxQueue = max(MaxBehindFrames, MaxBehindPictures)

func newViewer(r *Room, shard *fanoutShard) *Viewer {
	v := &Viewer{room: r, shard: shard, wake: make(chan struct{}, 1)}
	if r.codec == CodecH264 {
		v.h264, v.needKey = true, true
	}
	return v
}

// Room returns the name of the viewer's room.
func (v *Viewer) Room() string { return v.room.name }

// offer queues f, which the hub took at monotonic time at, skipping the
// queue to f if the viewer is too far behind. A Join viewer is woken; a
// JoinNotify viewer is notified by its shard (fanoutShard.push), not here:
// offer runs on the goroutine that delivers frames, which must not write.
func (v *Viewer) offer(f *frames.Frame, at int64) {
	v.mu.Lock()
	v.offerLocked(f, at)
	v.mu.Unlock()
	if v.notify == nil {
		v.signal()
	}
}

// offerFirst gives v the room's newest frame when it joins (from memory or
// a cache), only if nothing was offered to v before: a frame the shard
// offered meanwhile is newer. Both hold v.mu, so whichever comes second
// sees the other, and a first frame can never follow a newer one.
func (v *Viewer) offerFirst(f *frames.Frame) {
	at := v.room.hub.now()
	v.mu.Lock()
	if v.offered.Load() != 0 {
		v.mu.Unlock()
		return
	}
	v.offerLocked(f, at)
	v.mu.Unlock()
	v.signal()
}

func (v *Viewer) offerLocked(f *frames.Frame, at int64) {
	v.offered.Add(1)
	if v.h264 {
		v.offerPictureLocked(f, at)
		return
	}
	if v.n == MaxBehindFrames || v.n > 0 && at-v.queue[v.head].at > int64(MaxBehind) {
		var skipped uint64
		for i := range v.n {
			q := &v.queue[(v.head+i)%maxQueue]
			if !q.f.IsOffline() {
				skipped++
			}
			*q = queued{}
		}
		v.head, v.n = 0, 0
		if skipped > 0 {
			v.skipped.Add(skipped)
			v.room.hub.skipped.Add(skipped)
		}
	}
	v.queue[(v.head+v.n)%maxQueue] = queued{f: f, at: at}
	v.n++
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

// Pending reports whether a frame waits in the queue.
func (v *Viewer) Pending() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.n > 0 || len(v.backlog) > 0
}

// Next waits for a frame and returns the oldest queued one, or ctx's error.
func (v *Viewer) Next(ctx context.Context) (*frames.Frame, error) {
	for {
		if f := v.TryNext(); f != nil {
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
// writer that also waits on other events selects on it, then calls TryNext
// until it returns nil.
func (v *Viewer) Wake() <-chan struct{} { return v.wake }

// TryNext returns the oldest queued frame, or nil.
func (v *Viewer) TryNext() *frames.Frame {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.backlog) > 0 {
		f := v.backlog[0]
		v.backlog[0] = nil
		v.backlog = v.backlog[1:]
		if v.notify == nil && (v.n > 0 || len(v.backlog) > 0) {
			select {
			case v.wake <- struct{}{}:
			default:
			}
		}
		return f
	}
	if v.n == 0 {
		return nil
	}
	q := &v.queue[v.head]
	f := q.f
	*q = queued{}
	v.head = (v.head + 1) % maxQueue
	v.n--
	if v.n > 0 && v.notify == nil {
		// One wake per frame taken: a writer that calls TryNext once per
		// wake still finds the frames left behind this one.
		select {
		case v.wake <- struct{}{}:
		default:
		}
	}
	return f
}

// Skipped returns how many frames this viewer skipped because it was behind.
func (v *Viewer) Skipped() uint64 { return v.skipped.Load() }

// Offered returns how many frames were offered to v so far (each counted
// once, whether it was then written or skipped).
func (v *Viewer) Offered() uint64 { return v.offered.Load() }
