package rooms

import (
	"context"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// JPEG streams: every frame is a whole picture, so latest-frame-wins is
// frame by frame.
//
// How far a viewer may fall behind before it skips to the newest frame: at
// most MaxBehindFrames frames wait for its writer, and the oldest of them
// arrived at most MaxBehind before the newest, whichever bound is reached
// first. A few frames of slack absorb a writer that runs a little late on
// busy cores (a one-frame slot lost a frame each time); the bound keeps the
// never-freeze promise: a viewer's queue, and so its latency, never grows
// past it however slow the viewer is.
//
// A joining viewer starts from the stream's newest frame (from memory, or
// from Options.Cache when this replica has none), so it shows a picture at
// once. A publisher's queue drops its oldest frames when full, and frames
// that waited longer than PublishQueueAge.
const (
	MaxBehindFrames = 3
	MaxBehind       = 100 * time.Millisecond
)

// jpegPolicy is the codecPolicy of JPEG streams. It keeps no state of its
// own: a stream's newest frame is stream.last.
type jpegPolicy struct {
	s *stream // nil for a standalone viewer's
}

func (*jpegPolicy) initViewer(*Viewer) {}

func (*jpegPolicy) offerLocked(v *Viewer, f *frames.Frame, at int64) {
	if v.n == MaxBehindFrames || v.n > 0 && at-v.oldestAtLocked() > int64(MaxBehind) {
		v.dropQueuedLocked(nil)
	}
	v.pushLocked(f, at)
}

func (*jpegPolicy) startLocked(v *Viewer, group []*frames.Frame) {
	v.backlog = group
	v.offered.Add(uint64(len(group)))
}

func (*jpegPolicy) skipsAfterSwitch(f *frames.Frame) bool { return f.Kind == frames.KindJPEG }

// join adds v, subscribes the replica, then offers v the newest frame if
// no live frame reached it first (offerFirst).
func (p *jpegPolicy) join(ctx context.Context, v *Viewer) error {
	s := p.s
	h := s.hub
	if err := h.addViewer(s, v); err != nil {
		return err
	}
	h.subscribeStream(ctx, s) // v is a viewer: s stays, so only ctx can end the wait
	if f := s.latest(); f != nil {
		v.offerFirst(f, h.monotonic())
		return nil
	}
	if h.opts.Cache != nil {
		p.offerCached(ctx, v)
	}
	return nil
}

// offerCached gives v the stream's cached frame when it has no live frame
// in memory. v is already among the viewers and the stream is subscribed,
// so a frame the layer delivers meanwhile reaches v directly; the cached
// one is offered only if none did (it would be older): not if the stream
// went live meanwhile, nor if v's queue is no longer empty.
func (p *jpegPolicy) offerCached(ctx context.Context, v *Viewer) {
	h := p.s.hub
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.CacheTimeout)
	defer cancel()
	f, err := h.opts.Cache.Latest(ctx, p.s.id)
	if err != nil {
		h.log.Debug("no cached first frame", "stream", p.s.name, "err", err)
		return
	}
	if f == nil || f.IsOffline() || p.s.live.Load() {
		return
	}
	v.offerFirst(f, h.monotonic())
}

func (p *jpegPolicy) delivered(*frames.Frame, bool) *viewerSet { return p.s.viewers.Load() }

func (*jpegPolicy) enqueueLocked(pub *Publisher, f *frames.Frame, now int64) (dropped int, queued bool) {
	n := len(f.Binary())
	for pub.fullLocked(n) && pub.dropOldestLocked() {
		dropped++
	}
	pub.appendLocked(queuedFrame{f: f, at: now, mayGoStale: true})
	return dropped, true
}

func (*jpegPolicy) lost(*Publisher)             {}
func (*jpegPolicy) requestKeyframe()            {}
func (*jpegPolicy) publisherAdded(*Publisher)   {}
func (*jpegPolicy) publisherRemoved(*Publisher) {}
