package rooms

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// H.264 streams.
//
// A delta picture cannot be skipped (it needs every picture back to its
// keyframe), so latest-frame-wins works by whole groups of pictures:
//
//   - A viewer may fall MaxBehindPictures pictures, spanning at most
//     MaxBehindGOP, behind. A picture that would exceed either bound drops
//     what waits (configurations excepted) and every following delta up to
//     the next keyframe: the viewer resumes at a whole picture, never a
//     broken one. The stream asks its publisher, wherever it is connected,
//     for a keyframe (requestKeyframe) so the wait is short.
//   - A viewer that joins starts with the stream's current group of
//     pictures (the newest configuration, the last keyframe and the deltas
//     since), handed over in one piece and drained before live pictures,
//     so its first picture shows at once: from this replica's memory, or
//     from the channel layer when it keeps groups (GroupLayer: Redis).
//   - The group is bounded by MaxGOPPictures and MaxGOPBytes, counted one
//     way (group.add) for the group in memory and the one in Redis; past
//     them it is dropped and joiners wait for (and ask for) the next
//     keyframe.
//   - A publisher's queue never drops a delta alone: a picture it cannot
//     take is lost with every delta after it up to the next keyframe, and
//     the publisher is asked for one, so no viewer anywhere is handed a
//     delta whose reference is missing.
//
// Order holds as for JPEG: the group a viewer is handed and the pictures
// offered to it live are split under the stream's mu, so each picture
// reaches it exactly once.

// Bounds of H.264 streams; see the comment above.
const (
	MaxBehindPictures = 8
	MaxBehindGOP      = 250 * time.Millisecond
	MaxGOPPictures    = 300
	MaxGOPBytes       = 8 << 20
	// KeyframeRequestInterval is the least time between two keyframe
	// requests for one stream from one replica.
	KeyframeRequestInterval = time.Second
)

// h264Policy is the codecPolicy of H.264 streams.
type h264Policy struct {
	s     *stream // nil for a standalone viewer's
	group group   // guarded by s.mu

	keyAt      atomic.Int64 // hub.monotonic() of the last keyframe request
	keyPending atomic.Bool  // a keyframe request waits for the interval to end
}

// pictureState is the H.264 policy's state of one viewer, guarded by its
// mu: a viewer that fell behind waits for the next keyframe (needKey); a
// joining one whose group is read from the layer holds what comes
// meanwhile (joining, held).
type pictureState struct {
	needKey  bool
	joining  bool
	held     []*frames.Frame
	lastSeq  uint64      // of the last picture queued or handed over
	lastKind frames.Kind // of that picture
}

func (*h264Policy) initViewer(v *Viewer) { v.pictures.needKey = true }

func (*h264Policy) startLocked(v *Viewer, group []*frames.Frame) { v.handOverLocked(group) }

func (*h264Policy) skipsAfterSwitch(*frames.Frame) bool { return false }

func (p *h264Policy) offerLocked(v *Viewer, f *frames.Frame, at int64) {
	ps := &v.pictures
	if f.IsOffline() {
		v.pushLocked(f, at)
		return
	}
	if ps.joining {
		if len(ps.held) < MaxGOPPictures {
			ps.held = append(ps.held, f)
		} else {
			ps.held, ps.joining, ps.needKey = nil, false, true
		}
		return
	}
	// A picture the viewer was handed already (in its group at join, which
	// the publisher's replica fills before the layer delivers): dropped.
	if ps.lastSeq != 0 && (f.Seq < ps.lastSeq || f.Seq == ps.lastSeq && !(ps.lastKind == frames.KindH264Config && f.Kind == frames.KindH264Key)) {
		return
	}
	ps.lastSeq, ps.lastKind = f.Seq, f.Kind
	behind := len(v.backlog) > MaxGOPPictures ||
		v.n == MaxBehindPictures || v.n > 0 && at-v.oldestAtLocked() > int64(MaxBehindGOP)
	if behind && !ps.needKey {
		// Drop what waits but configurations, and wait for a keyframe.
		v.dropQueuedLocked(func(q *frames.Frame) bool { return q.Kind == frames.KindH264Config })
		ps.needKey = true
		p.requestKeyframe()
	}
	switch f.Kind {
	case frames.KindH264Config:
		v.pushLocked(f, at)
	case frames.KindH264Key:
		ps.needKey = false
		v.pushLocked(f, at)
	default:
		if ps.needKey {
			v.countSkipped(1)
			return
		}
		v.pushLocked(f, at)
	}
}

// join adds v with the stream's current group of pictures as its backlog,
// both under s.mu, so each picture reaches v exactly once: in the group,
// or live after it (delivered adds a picture to the group and reads the
// viewers under the same lock). Then it subscribes the replica and, if
// this replica held no group, reads the one the layer keeps (fetchGroup),
// or else asks the publisher for a keyframe.
func (p *h264Policy) join(ctx context.Context, v *Viewer) error {
	s := p.s
	h := s.hub
	s.mu.Lock()
	snap := p.group.snapshot()
	if err := h.addViewer(s, v); err != nil {
		s.mu.Unlock()
		return err
	}
	v.mu.Lock()
	if snap != nil {
		v.handOverLocked(snap)
	} else if _, ok := h.layer.(GroupLayer); ok {
		v.pictures.joining = true // hold what the layer delivers until fetchGroup read the group
	}
	joining := v.pictures.joining
	v.mu.Unlock()
	s.mu.Unlock()
	h.subscribeStream(ctx, s) // v is a viewer: s stays, so only ctx can end the wait
	handed := snap != nil
	if joining {
		handed = p.fetchGroup(ctx, v)
	}
	if handed {
		v.signal()
	} else {
		p.requestKeyframe() // now that the replica is subscribed, the keyframe reaches v
	}
	return nil
}

// handOverLocked makes group v's backlog: what it decodes from. Call with
// v.mu held.
func (v *Viewer) handOverLocked(group []*frames.Frame) {
	v.backlog = group
	v.pictures.needKey = false
	last := group[len(group)-1]
	v.pictures.lastSeq, v.pictures.lastKind = last.Seq, last.Kind
	v.offered.Add(uint64(len(group)))
}

// fetchGroup hands v, which joined with no group in this replica's memory,
// the group the publisher's replica keeps in the GroupLayer, followed by
// what the layer delivered to v meanwhile (held), and seeds the stream's
// own group with it for the next joiners. The replica subscribed before
// reading the group, so nothing published after the read is missed; a gap
// between the two (the group was dropped or restarted in between) makes v
// wait for a keyframe instead. It reports whether v got something to
// start from.
func (p *h264Policy) fetchGroup(ctx context.Context, v *Viewer) bool {
	s := p.s
	h := s.hub
	gl := h.layer.(GroupLayer) // join set joining only for a GroupLayer
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.CacheTimeout)
	msgs, err := gl.Group(cctx, s.name)
	cancel()
	if err != nil {
		h.log.Debug("no group of pictures from the layer", "stream", s.name, "err", err)
	}
	var fetched []*frames.Frame
	for _, m := range msgs {
		f, err := frames.ParseBinary(m, 0, time.Time{}, 0)
		if err != nil || !f.Kind.IsH264() {
			h.badMessages.Add(1)
			fetched = nil
			break
		}
		f.Room, f.Layer = s.id.Room, s.id.Layer
		fetched = append(fetched, f)
	}
	if len(fetched) < 2 || fetched[0].Kind != frames.KindH264Config || fetched[1].Kind != frames.KindH264Key {
		fetched = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	held := v.pictures.held
	v.pictures.held, v.pictures.joining = nil, false
	start := startable(fetched, held)
	if start == nil {
		v.pictures.needKey = true
		for _, f := range held {
			p.offerLocked(v, f, h.monotonic()) // keyframes among them start v; deltas are dropped
		}
		return !v.pictures.needKey
	}
	v.handOverLocked(start)
	if !p.group.open {
		for _, f := range start {
			p.group.add(f)
		}
	}
	return true
}

// startable joins a group read from the layer and the messages delivered
// since the subscription into what a decoder can start from: the group,
// then the held messages after its last picture, with no picture missing
// in between; or the held messages from their own first configuration; or
// nil.
func startable(group, held []*frames.Frame) []*frames.Frame {
	for i, f := range held {
		if f.Kind == frames.KindH264Config && i+1 < len(held) && held[i+1].Kind == frames.KindH264Key {
			if len(group) == 0 || f.Seq > group[len(group)-1].Seq {
				return held[i:] // a new group started after the subscription
			}
		}
	}
	if len(group) == 0 {
		return nil
	}
	out := group
	last := group[len(group)-1].Seq
	for _, f := range held {
		switch {
		case f.IsOffline():
			out = append(out, f)
		case f.Seq <= last:
			// read twice: in the group and live
		case f.Seq == last+1:
			out = append(out, f)
			last = f.Seq
		default:
			return nil // a gap: something between the read and the subscription is missing
		}
	}
	return out
}

// delivered adds f to the group (unless a local publisher keeps it, in
// enqueueLocked) and reads the viewers, under s.mu.
func (p *h264Policy) delivered(f *frames.Frame, local bool) *viewerSet {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if !local {
		p.group.add(f)
	}
	return s.viewers.Load()
}

// publisherPictures is the H.264 policy's state of one publisher, guarded
// by its mu: a picture was lost, so deltas are dropped until the next
// keyframe.
type publisherPictures struct {
	needKey bool
}

// enqueueLocked queues f unless a picture before it was lost (then f, if a
// delta, is dropped too) or the queue is full and f is a delta; a
// configuration or keyframe that finds the queue full drops what waits,
// which is older than it and of no use to anyone now. The stream's group,
// in memory and in a GroupLayer, follows what is queued.
func (p *h264Policy) enqueueLocked(pub *Publisher, f *frames.Frame, now int64) (dropped int, queued bool) {
	ps := &pub.pictures
	n := len(f.Binary())
	if f.Kind == frames.KindH264Config || f.Kind == frames.KindH264Key {
		ps.needKey = false
	}
	full := pub.fullLocked(n)
	if ps.needKey || full && f.Kind == frames.KindH264Delta {
		if !ps.needKey {
			ps.needKey = true
			pub.askKeyframe()
		}
		return 1, false
	}
	for full && pub.dropOldestLocked() {
		dropped++
		full = pub.fullLocked(n)
	}
	p.s.mu.Lock()
	op := p.group.add(f) // the publisher's replica keeps the group from here (delivered skips it)
	p.s.mu.Unlock()
	pub.appendLocked(queuedFrame{f: f, at: now, op: op})
	return dropped, true
}

// lost records that a picture of pub was not sent: deltas are dropped
// until the next keyframe, which pub's sender is asked for (on this
// replica, directly, once per loss).
func (*h264Policy) lost(pub *Publisher) {
	pub.mu.Lock()
	first := !pub.pictures.needKey
	pub.pictures.needKey = true
	pub.mu.Unlock()
	if first {
		pub.askKeyframe()
	}
}

// group is an H.264 stream's current group of pictures on this replica:
// the configuration, the keyframe after it and the deltas since, as they
// were published. Its bound counts pictures (the keyframe and deltas) and
// the payload bytes of every message in it, the configuration's too; the
// GroupOps add returns keep the group a GroupLayer holds the same.
// Guarded by its stream's mu.
type group struct {
	msgs  []*frames.Frame
	bytes int
	open  bool // msgs may grow: a configuration started it, within bounds
}

// add records f, the stream's next message, and says what it did.
func (g *group) add(f *frames.Frame) GroupOp {
	switch f.Kind {
	case frames.KindH264Config:
		g.reset(true)
		g.msgs = append(g.msgs, f)
		g.bytes = len(f.Payload)
		return GroupStart
	case frames.KindH264Key:
		if !g.open || len(g.msgs) != 1 || g.msgs[0].Seq != f.Seq {
			// A keyframe not right after its configuration: no replica
			// could start from it. (The gateway refuses these.)
			return g.drop()
		}
	case frames.KindH264Delta:
		if !g.open || len(g.msgs) < 2 || f.Seq <= g.msgs[len(g.msgs)-1].Seq {
			return GroupNone // no keyframe to build on, or a picture it holds
		}
	default:
		return GroupNone
	}
	if len(g.msgs) > MaxGOPPictures || g.bytes+len(f.Payload) > MaxGOPBytes {
		return g.drop() // too long to hand over: joiners wait for the next keyframe
	}
	g.msgs = append(g.msgs, f)
	g.bytes += len(f.Payload)
	return GroupAppend
}

// drop forgets the group until the next configuration.
func (g *group) drop() GroupOp {
	had := g.open || len(g.msgs) > 0
	g.reset(false)
	if had {
		return GroupDrop
	}
	return GroupNone
}

func (g *group) reset(open bool) {
	clear(g.msgs)
	g.msgs, g.bytes, g.open = g.msgs[:0], 0, open
}

// snapshot returns the group to hand a joining viewer (shared frames, a
// fresh slice): the configuration, then the keyframe and its deltas (none
// yet if the keyframe has not come: the configuration alone, so a viewer
// joining between the two misses neither); nil if there is none.
func (g *group) snapshot() []*frames.Frame {
	if !g.open || len(g.msgs) == 0 {
		return nil
	}
	return append([]*frames.Frame(nil), g.msgs...)
}

// Keyframe requests travel on the channel layer on the room's keyframe
// channel (frames.Stream.KeyframeChannel), to which a replica subscribes
// while it has a local H.264 publisher of the room; each request calls the
// OnKeyframe funcs of the room's local H.264 publishers (the gateway asks
// its sender).

// keyframeRequest is the message of a keyframe request: the channel names
// the room, so the content is only a marker.
var keyframeRequest = []byte("keyframe")

// requestKeyframe asks the stream's publisher, wherever it is connected,
// for a keyframe, at most once per KeyframeRequestInterval from this
// replica: a request within the interval of the last one is sent when the
// interval is up (once, however many come meanwhile). It never blocks and
// takes no lock (offers call it holding a viewer's mu): requests go out on
// a goroutine. A standalone viewer's policy has no stream: no request.
func (p *h264Policy) requestKeyframe() {
	s := p.s
	if s == nil {
		return
	}
	h := s.hub
	now := h.monotonic()
	last := p.keyAt.Load()
	if wait := last + int64(KeyframeRequestInterval) - now; last != 0 && wait > 0 {
		if p.keyPending.CompareAndSwap(false, true) {
			time.AfterFunc(time.Duration(wait), func() {
				p.keyPending.Store(false)
				p.requestKeyframe()
			})
		}
		return
	}
	if !p.keyAt.CompareAndSwap(last, now) {
		return // another goroutine sent it just now
	}
	h.keyframeRequests.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), h.opts.PublishTimeout)
		defer cancel()
		if err := h.layer.Publish(ctx, s.id.KeyframeChannel(), keyframeRequest); err != nil {
			h.log.Debug("keyframe request failed", "room", s.id.Room, "err", err)
		}
	}()
}

// RequestKeyframe asks the publisher of stream id for a keyframe, as a
// lagging viewer of it would (at most once per KeyframeRequestInterval
// from this replica), if this replica has the stream: a recorder starting
// mid-group does. Streams of codecs without keyframes ignore it. It does
// not block.
func (h *Hub) RequestKeyframe(id frames.Stream) {
	if s := h.lookup(id); s != nil {
		s.codec.requestKeyframe()
	}
}

// publisherAdded subscribes the replica to the room's keyframe requests
// before it returns (a layer call bounded by Options.PublishTimeout, once
// per room), so a viewer's first request is not lost.
func (p *h264Policy) publisherAdded(*Publisher) {
	p.s.hub.syncKeyframeChannel(p.s.id, true)
}

func (p *h264Policy) publisherRemoved(*Publisher) {
	p.s.hub.syncKeyframeChannel(p.s.id, false)
}

// syncKeyframeChannel subscribes the room of id to its keyframe requests
// while it has local H.264 publishers.
func (h *Hub) syncKeyframeChannel(id frames.Stream, wait bool) {
	room := id.Room
	_ = h.syncChannel(context.Background(), id.KeyframeChannel(),
		func() bool { return len(h.h264Publishers(room)) > 0 },
		func(string, []byte) { h.keyframeRequested(room) }, wait)
}

// h264Publishers returns room's local H.264 publishers.
func (h *Hub) h264Publishers(room string) []*Publisher {
	var out []*Publisher
	h.mu.RLock()
	defer h.mu.RUnlock()
	for l := range frames.MaxLayers {
		if s := h.streams[frames.Stream{Room: room, Layer: l, Codec: frames.CodecH264}]; s != nil {
			out = append(out, s.publishers...)
		}
	}
	return out
}

// keyframeRequested asks the room's local H.264 publishers for a keyframe
// (OnKeyframe), each on a goroutine of its own: this is the layer's read
// loop, which never waits on a publisher.
func (h *Hub) keyframeRequested(room string) {
	for _, p := range h.h264Publishers(room) {
		p.askKeyframe()
	}
}
