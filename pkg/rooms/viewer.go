package rooms

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// Viewer is one viewer of a stream: a short latest-frame-wins queue that
// the hub (or, for a standalone viewer, a player) fills and the viewer's
// single writer drains.
//
// Offering a frame never blocks. It appends the frame to the queue; when
// the viewer is too far behind, the stream's codec policy drops queued
// frames first (each picture counted as skipped) so the viewer jumps
// ahead: to the newest frame for JPEG (jpeg.go), to the next keyframe for
// H.264 (h264.go). Its memory is bounded by a few shared frames whatever
// the frame rate, and nothing it does can hold up the hub, the channel
// layer or other viewers.
//
// Order: the hub queues a stream's frames to its viewers in the order the
// channel layer delivers them (one read loop per stream for Redis); what a
// joiner starts from is queued so that no live frame overtakes it
// (codecPolicy.join); the queue is first in, first out; and the viewer's
// one writer drains it. So a viewer never receives a frame after a newer
// one.
//
// A viewer made by Join is drained with Next (or Wake and TryNext) by one
// goroutine. A viewer made by JoinNotify or NewViewer with a notify func
// has no goroutine of its own: each offer calls notify, which drains with
// TryNext (writing at once, or handing the write to a goroutine when it
// would block).
type Viewer struct {
	stream *stream     // nil for a standalone viewer
	codec  codecPolicy // the stream's, or a standalone viewer's own
	wake   chan struct{}
	notify func(*Viewer) // if set, called instead of signalling wake
	shard  *fanoutShard  // offers to this viewer run here, one at a time; nil standalone

	// mu guards the queue, the backlog, the floor and the codec's state
	// of the viewer (pictures).
	mu      sync.Mutex
	queue   [maxQueue]queued
	head    int             // index of the oldest queued frame
	n       int             // frames queued
	backlog []*frames.Frame // handed over at join (an H.264 group), drained before the queue
	floor   floor           // after a switch, frames not newer than this are dropped
	first   time.Time       // the capture time of what offerFirst gave; offers not after it are dropped until one is

	pictures pictureState // the H.264 policy's state of this viewer (h264.go)

	offered atomic.Uint64 // frames offered so far; written under mu
	skipped atomic.Uint64
}

// queued is a frame waiting for the viewer's writer, with the monotonic time
// (nanoseconds since the hub started) at which the hub took it.
type queued struct {
	f  *frames.Frame
	at int64
}

// maxQueue is the queue's capacity: the largest of the codecs' bounds.
const maxQueue = max(MaxBehindFrames, MaxBehindPictures)

func newViewer(codec codecPolicy, s *stream, shard *fanoutShard, notify func(*Viewer)) *Viewer {
	v := &Viewer{stream: s, codec: codec, shard: shard, notify: notify, wake: make(chan struct{}, 1)}
	codec.initViewer(v)
	return v
}

// NewViewer returns a viewer of no stream, for frames of codec that the
// caller offers itself (Offer): a player of recorded footage, say. It
// keeps the codec's queue discipline; it asks no publisher for keyframes.
// notify, if set, is called after each Offer (see JoinNotify).
func NewViewer(codec frames.Codec, notify func(*Viewer)) *Viewer {
	return newViewer(newCodecPolicy(codec, nil), nil, nil, notify)
}

// Stream returns the stream the viewer views (the zero Stream for a
// standalone viewer).
func (v *Viewer) Stream() frames.Stream {
	if v.stream == nil {
		return frames.Stream{}
	}
	return v.stream.id
}

// Offer queues f for a standalone viewer, skipping as its codec says when
// the viewer is behind, and signals or notifies it. Frames must be offered
// in order, from one goroutine at a time.
func (v *Viewer) Offer(f *frames.Frame) {
	v.mu.Lock()
	v.offerLocked(f, monotonicNow())
	v.mu.Unlock()
	v.signal()
}

// Start hands a standalone viewer what it starts from, as a joining viewer
// is handed a stream's group: group (frames of one stream, in order: a
// player's pictures up to the time it seeks) is drained before anything
// offered after, and is not subject to the queue's bounds, so an H.264
// group of a few seconds reaches the decoder whole. It replaces whatever
// the viewer held.
func (v *Viewer) Start(group []*frames.Frame) {
	if len(group) == 0 {
		return
	}
	v.mu.Lock()
	v.dropQueuedLocked(nil)
	v.backlog = nil
	v.codec.startLocked(v, group)
	v.mu.Unlock()
	v.signal()
}

// maxFirstOverlap bounds how much older than a joiner's first frame a
// dropped offer may be: what the layer still had in flight when the join
// read the stream's newest frame. Farther back is a publisher whose clock
// differs from the one before it, not an overlap.
const maxFirstOverlap = 2 * time.Second

// processStart is the origin of standalone viewers' monotonic clock.
var processStart = time.Now()

func monotonicNow() int64 { return int64(time.Since(processStart)) }

// offer queues f, which the hub took at monotonic time at, skipping as the
// codec says if the viewer is too far behind. A Join viewer is woken; a
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

// offerFirst gives v what it starts from when it joins (a stream's newest
// frame, from memory or a cache), only if nothing was offered to v before:
// a frame the shard offered meanwhile is newer. Both hold v.mu, so
// whichever comes second sees the other, and a first frame can never
// follow a newer one. Nor can an older one follow it: offers captured at
// or before it (within maxFirstOverlap) are dropped until a newer one
// comes.
func (v *Viewer) offerFirst(f *frames.Frame, at int64) {
	v.mu.Lock()
	if v.offered.Load() != 0 {
		v.mu.Unlock()
		return
	}
	v.offerLocked(f, at)
	v.first = f.Captured
	v.mu.Unlock()
	v.signal()
}

func (v *Viewer) offerLocked(f *frames.Frame, at int64) {
	if !v.first.IsZero() && !f.IsOffline() {
		// A joiner's first frame is the stream's newest as this replica
		// knows it: on the publisher's replica that is the newest sent,
		// which the layer may not have delivered yet. Deliveries up to it
		// (the same picture, or older ones, captured at most
		// maxFirstOverlap before it) must not follow it. Capture times,
		// not sequence numbers: a publisher that restarted counts from 1
		// again, and its first frames must not wait for the old count (the
		// first frame may be a cached one of the run before).
		if d := v.first.Sub(f.Captured); d >= 0 && d < maxFirstOverlap {
			return
		}
		v.first = time.Time{}
	}
	v.offered.Add(1)
	v.codec.offerLocked(v, f, at)
}

// pushLocked appends f to the queue, dropping the oldest frame if it is
// full (the codecs empty it before that can happen, but for a run of
// configurations). Call with v.mu held.
func (v *Viewer) pushLocked(f *frames.Frame, at int64) {
	if v.n == maxQueue {
		v.queue[v.head] = queued{}
		v.head = (v.head + 1) % maxQueue
		v.n--
	}
	v.queue[(v.head+v.n)%maxQueue] = queued{f: f, at: at}
	v.n++
}

// dropQueuedLocked empties the queue, keeping the frames keep says to
// keep (in order), and counts the dropped pictures as skipped. Call with
// v.mu held.
func (v *Viewer) dropQueuedLocked(keep func(*frames.Frame) bool) {
	var kept [maxQueue]queued
	k := 0
	var skipped uint64
	for i := range v.n {
		q := &v.queue[(v.head+i)%maxQueue]
		switch {
		case keep != nil && keep(q.f):
			kept[k] = *q
			k++
		case !q.f.IsOffline():
			skipped++
		}
		*q = queued{}
	}
	v.head, v.n = 0, 0
	for _, q := range kept[:k] {
		v.pushLocked(q.f, q.at)
	}
	v.countSkipped(skipped)
}

// oldestAtLocked returns the monotonic time of the oldest queued frame.
// Call with v.mu held and the queue not empty.
func (v *Viewer) oldestAtLocked() int64 { return v.queue[v.head].at }

func (v *Viewer) countSkipped(n uint64) {
	if n == 0 {
		return
	}
	v.skipped.Add(n)
	if v.stream != nil {
		v.stream.hub.skipped.Add(n)
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

// TryNext returns the oldest queued frame, or nil. A frame behind the
// floor (SetFloor) is dropped, not returned.
func (v *Viewer) TryNext() *frames.Frame {
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		f := v.takeLocked()
		if f == nil || !v.floor.drops(v.codec, f) {
			return f
		}
	}
}

// takeLocked removes and returns the oldest frame of the backlog or the
// queue. Call with v.mu held.
func (v *Viewer) takeLocked() *frames.Frame {
	var f *frames.Frame
	switch {
	case len(v.backlog) > 0:
		f = v.backlog[0]
		v.backlog[0] = nil
		v.backlog = v.backlog[1:]
	case v.n > 0:
		q := &v.queue[v.head]
		f = q.f
		*q = queued{}
		v.head = (v.head + 1) % maxQueue
		v.n--
	default:
		return nil
	}
	if v.notify == nil && (v.n > 0 || len(v.backlog) > 0) {
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

// The switch floor.
//
// A viewer that moves to another stream of its room (another layer, or
// from a recording back to live) is joined to the new stream before it
// leaves the old one, and may get pictures of the new one that it already
// got in the old: layers of one picture share its sequence number. Its
// writer calls SetFloor with the last sequence number it wrote when it
// starts taking from the new viewer; TryNext then drops the new stream's
// pictures numbered at or below it, until one above it comes. A picture
// MaxSwitchOverlap or more below the floor is not an overlap but a
// publisher that started counting again (a restart): it is taken, and
// clears the floor, so it never holds the viewer up. The rule counts
// sequence numbers, not time, so a busy machine cannot break it. Only
// codecs whose pictures are shown alone drop anything
// (codecPolicy.skipsAfterSwitch): an H.264 stream restarts its decoder at
// the group it hands over, older or not.

// MaxSwitchOverlap bounds how far below the floor a dropped picture may be.
const MaxSwitchOverlap = 256

// floor is a viewer's switch floor (0: none). Guarded by Viewer.mu.
type floor uint64

// SetFloor makes TryNext drop this viewer's pictures numbered at or below
// seq (see MaxSwitchOverlap) until a newer one comes. seq 0 sets no floor.
func (v *Viewer) SetFloor(seq uint64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.floor = floor(seq)
}

// drops reports whether f, about to be returned, is behind the floor; a
// frame that is not clears the floor.
func (fl *floor) drops(codec codecPolicy, f *frames.Frame) bool {
	seq := uint64(*fl)
	if seq == 0 {
		return false
	}
	if !f.IsOffline() && f.Seq <= seq && seq-f.Seq < MaxSwitchOverlap && codec.skipsAfterSwitch(f) {
		return true
	}
	*fl = 0
	return false
}
