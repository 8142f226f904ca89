package rooms

import (
	"context"
	"sync"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// H.264 streams.
//
// A room's H.264 pictures travel as streams of their own, beside its JPEG
// layers: H264Stream(room, layer) is "<room>@h264" for layer 0 and
// "<room>@h264.<i>" for layer i. A delta picture cannot be skipped (it
// needs every picture back to its keyframe), so latest-frame-wins works by
// whole groups of pictures there:
//
//   - A viewer may fall MaxBehindPictures pictures, spanning at most
//     MaxBehindGOP, behind. A picture that would exceed either bound drops
//     what waits (a configuration message excepted) and every following
//     delta up to the next keyframe: the viewer resumes at a whole picture,
//     never a broken one. The hub asks the room's publisher for a keyframe
//     (RequestKeyframe) so the wait is short.
//   - A viewer that joins starts with the room's current group of pictures
//     (the newest configuration, the last keyframe and the deltas since, as
//     this replica holds them), handed over in one piece and drained before
//     live pictures, so its first picture shows at once. The group is
//     bounded by MaxGOPPictures and MaxGOPBytes; past them it is dropped and
//     joiners wait for (and ask for) the next keyframe.
//
// Order holds as for JPEG: the group a viewer is handed and the pictures
// offered to it live are split under the room's gop.mu, so each picture
// reaches it exactly once.

// CodecH264 is the codec of H.264 streams (Room.codec; "" is JPEG).
const CodecH264 = frames.CodecH264

// Bounds of H.264 streams; see the comment above.
const (
	MaxBehindPictures = 8
	MaxBehindGOP      = 250 * time.Millisecond
	MaxGOPPictures    = 300
	MaxGOPBytes       = 8 << 20
	// KeyframeRequestInterval is the least time between two keyframe
	// requests for one room from one replica.
	KeyframeRequestInterval = time.Second
)

// H264Stream returns the name of room's H.264 layer.
func H264Stream(room string, layer int) string {
	return frames.Stream{Room: room, Layer: layer, Codec: frames.CodecH264}.String()
}

// ParseStream returns the room, layer and codec a stream name carries.
// Names that are no stream's are rooms of their own.
func ParseStream(stream string) (room string, layer int, codec frames.Codec) {
	s, err := frames.ParseStream(stream)
	if err != nil {
		return stream, 0, frames.CodecJPEG
	}
	return s.Room, s.Layer, s.Codec
}

// gop is an H.264 stream's current group of pictures on this replica.
type gop struct {
	mu     sync.Mutex
	config *frames.Frame   // the newest decoder configuration
	pics   []*frames.Frame // the last keyframe and the deltas since
	bytes  int
	open   bool // pics may grow: a configuration and keyframe started them, within bounds
}

// addLocked records f, a message of the stream, in the group: a
// configuration starts a new group, its keyframe and the deltas after it
// join it, up to MaxGOPPictures and MaxGOPBytes (past them the group is
// dropped until the next one starts). Call with g.mu held.
func (g *gop) addLocked(f *frames.Frame) {
	switch f.Kind {
	case frames.KindH264Config:
		g.config = f
		clear(g.pics)
		g.pics, g.bytes = g.pics[:0], 0
		g.open = true
		return
	case frames.KindH264Key:
		clear(g.pics)
		g.pics, g.bytes = g.pics[:0], 0
		g.open = g.config != nil
	case frames.KindH264Delta:
		if !g.open || len(g.pics) == 0 || f.Seq <= g.pics[len(g.pics)-1].Seq {
			return // no keyframe to build on, or a picture it holds
		}
	default:
		return
	}
	if !g.open {
		return
	}
	if len(g.pics) >= MaxGOPPictures || g.bytes+len(f.Payload) > MaxGOPBytes {
		clear(g.pics)
		g.pics, g.bytes, g.open = g.pics[:0], 0, false // too long to hand over: joiners wait for the next keyframe
		return
	}
	g.pics = append(g.pics, f)
	g.bytes += len(f.Payload)
}

// snapshotLocked returns the group to hand a joining viewer: the
// configuration, then the keyframe and its deltas (none yet if the
// keyframe has not come: the configuration alone, so a viewer joining
// between the two misses neither); nil if there is no group to start
// from. Call with g.mu held. The frames are shared.
func (g *gop) snapshotLocked() []*frames.Frame {
	if g.config == nil || !g.open {
		return nil
	}
	out := make([]*frames.Frame, 0, 1+len(g.pics))
	out = append(out, g.config)
	return append(out, g.pics...)
}

// offerPictureLocked is offerLocked for H.264 streams. Call with v.mu held.
func (v *Viewer) offerPictureLocked(f *frames.Frame, at int64) {
	if f.IsOffline() {
		v.pushLocked(f, at)
		return
	}
	if v.joining {
		if len(v.held) < MaxGOPPictures {
			v.held = append(v.held, f)
		} else {
			v.held, v.joining, v.needKey = nil, false, true
		}
		return
	}
	// A picture the viewer was handed already (in its group at join, which
	// the publisher's replica fills before the layer delivers): dropped.
	if v.lastSeq != 0 && (f.Seq < v.lastSeq || f.Seq == v.lastSeq && !(v.lastKind == frames.KindH264Config && f.Kind == frames.KindH264Key)) {
		return
	}
	v.lastSeq, v.lastKind = f.Seq, f.Kind
	behind := len(v.backlog) > MaxGOPPictures ||
		v.n == MaxBehindPictures || v.n > 0 && at-v.queue[v.head].at > int64(MaxBehindGOP)
	if behind && !v.needKey {
		// Drop what waits but a configuration, and wait for a keyframe.
		var config *frames.Frame
		var skipped uint64
		for i := range v.n {
			q := &v.queue[(v.head+i)%maxQueue]
			switch {
			case q.f.Kind == frames.KindH264Config:
				config = q.f
			case !q.f.IsOffline():
				skipped++
			}
			*q = queued{}
		}
		v.head, v.n = 0, 0
		if config != nil {
			v.pushLocked(config, at)
		}
		v.needKey = true
		v.countSkipped(skipped)
		v.room.requestKeyframe()
	}
	switch f.Kind {
	case frames.KindH264Config:
		v.pushLocked(f, at)
	case frames.KindH264Key:
		v.needKey = false
		v.pushLocked(f, at)
	default:
		if v.needKey {
			v.countSkipped(1)
			return
		}
		v.pushLocked(f, at)
	}
}

// pushLocked appends f to the queue, which has room (offerPictureLocked
// emptied it if it was full). Call with v.mu held.
func (v *Viewer) pushLocked(f *frames.Frame, at int64) {
	if v.n == maxQueue { // only a run of configurations can get here
		v.queue[v.head] = queued{}
		v.head = (v.head + 1) % maxQueue
		v.n--
	}
	v.queue[(v.head+v.n)%maxQueue] = queued{f: f, at: at}
	v.n++
}

func (v *Viewer) countSkipped(n uint64) {
	if n > 0 {
		v.skipped.Add(n)
		v.room.hub.skipped.Add(n)
	}
}

// joinPictures hands a viewer of an H.264 stream the room's current group
// of pictures, atomically with its joining the room's viewers: add is
// called, and the group put in v's backlog, with r.gop.mu held, and
// deliver adds a picture to the group and reads the viewers under the same
// lock, so each picture reaches v exactly once: in the group, or live
// after it. It reports false if there is no group to hand over: the viewer
// then waits for the next keyframe.
//
// Lock order: gop.mu, then hub.mu or a viewer's mu; nothing holding those
// takes gop.mu.
func (r *Room) joinPictures(v *Viewer, add func()) (handed bool) {
	r.gop.mu.Lock()
	defer r.gop.mu.Unlock()
	snap := r.gop.snapshotLocked()
	add()
	if snap == nil {
		if _, ok := r.hub.layer.(GroupLayer); ok {
			// Hold what the layer delivers until the group is read from
			// it (fetchGroup).
			v.mu.Lock()
			v.joining = true
			v.mu.Unlock()
		}
		return false
	}
	v.mu.Lock()
	v.backlog = snap
	v.needKey = false
	last := snap[len(snap)-1]
	v.lastSeq, v.lastKind = last.Seq, last.Kind
	v.offered.Add(uint64(len(snap)))
	v.mu.Unlock()
	return true
}

// requestKeyframe asks the room's publisher, wherever it is connected, for
// a keyframe, at most once per KeyframeRequestInterval from this replica:
// a request within the interval of the last one is sent when the interval
// is up (once, however many come meanwhile). It never blocks and takes no
// lock (offers call it holding a viewer's mu): requests go out on a
// goroutine.
func (r *Room) requestKeyframe() {
	now := r.hub.now()
	last := r.keyAt.Load()
	if wait := last + int64(KeyframeRequestInterval) - now; last != 0 && wait > 0 {
		if r.keyPending.CompareAndSwap(false, true) {
			time.AfterFunc(time.Duration(wait), func() {
				r.keyPending.Store(false)
				r.requestKeyframe()
			})
		}
		return
	}
	if !r.keyAt.CompareAndSwap(last, now) {
		return // another goroutine sent it just now
	}
	r.hub.keyframeRequests.Add(1)
	go r.hub.sendKeyframeRequest(r.base)
}

// joinH264 is join's end for an H.264 stream's viewer v of r (made, not
// yet added): it adds v to r's viewers and hands it the current group of
// pictures in one step (joinPictures), then subscribes the replica.
func (h *Hub) joinH264(ctx context.Context, r *Room, v *Viewer) (*Viewer, error) {
	added := false
	handed := r.joinPictures(v, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.rooms[r.name] != r { // dropped while unlocked: a fresh join will do
			return
		}
		r.viewers.Store(r.viewers.Load().with(v))
		added = true
	})
	if !added {
		return h.join(ctx, r.name, v.notify)
	}
	h.syncSubscription(ctx, r.name)
	if !handed && v.joining {
		handed = h.fetchGroup(ctx, r, v)
	}
	if handed {
		v.signal()
	} else {
		r.requestKeyframe() // now that the replica is subscribed, the keyframe reaches v
	}
	return v, nil
}

// fetchGroup hands v, which joined r with no group in this replica's
// memory, the group the publisher's replica keeps in the GroupLayer,
// followed by what the layer delivered to v meanwhile (held), and seeds
// r's own group with it for the next joiners. The replica subscribed
// before reading the group, so nothing published after the read is
// missed; a gap between the two (the group was dropped or restarted in
// between) makes it wait for a keyframe instead. It reports whether v got
// something to start from.
func (h *Hub) fetchGroup(ctx context.Context, r *Room, v *Viewer) bool {
	gl := h.layer.(GroupLayer) // joinPictures set joining only for a GroupLayer
	timeout := h.opts.CacheTimeout
	if timeout <= 0 {
		timeout = defaultCacheTimeout
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	msgs, err := gl.Group(cctx, r.name)
	cancel()
	if err != nil {
		h.log.Debug("no group of pictures from the layer", "room", r.name, "err", err)
	}
	var group []*frames.Frame
	for _, m := range msgs {
		f, err := frames.ParseBinary(m, 0, time.Time{}, 0)
		if err != nil || !f.Kind.IsH264() {
			h.badMessages.Add(1)
			group = nil
			break
		}
		f.Room, f.Layer = r.base, r.layer
		group = append(group, f)
	}
	if len(group) < 2 || group[0].Kind != frames.KindH264Config || group[1].Kind != frames.KindH264Key {
		group = nil
	}
	r.gop.mu.Lock()
	defer r.gop.mu.Unlock()
	v.mu.Lock()
	held := v.held
	v.held, v.joining = nil, false
	start := startable(group, held)
	if start == nil {
		v.needKey = true
		for _, f := range held {
			v.offerPictureLocked(f, h.now()) // keyframes among them start v; deltas are dropped
		}
		v.mu.Unlock()
		return !v.needKey
	}
	v.backlog = start
	v.needKey = false
	last := start[len(start)-1]
	v.lastSeq, v.lastKind = last.Seq, last.Kind
	v.offered.Add(uint64(len(start)))
	v.mu.Unlock()
	if !r.gop.open {
		for _, f := range start {
			r.gop.addLocked(f)
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

// Keyframe requests travel on the channel layer as the stream
// "<room>@key", to which a replica subscribes while it has a local H.264
// publisher of the room; each request calls the publishers' OnKeyframe
// funcs (the gateway asks its sender).
const keySuffix = "@key"

func keyStream(room string) string { return room + keySuffix }

func isKeyStream(stream string) bool {
	return len(stream) > len(keySuffix) && stream[len(stream)-len(keySuffix):] == keySuffix
}

// keyRequestMsg is the message of a keyframe request: the stream names the
// room, so the content is only a marker.
var keyRequestMsg = []byte("keyframe")

// sendKeyframeRequest publishes a keyframe request for room.
func (h *Hub) sendKeyframeRequest(room string) {
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.PublishTimeout)
	defer cancel()
	if err := h.layer.Publish(ctx, keyStream(room), keyRequestMsg); err != nil {
		h.log.Debug("keyframe request failed", "room", room, "err", err)
	}
}

// RequestKeyframe asks room's H.264 publisher for a keyframe, at most once
// per KeyframeRequestInterval per stream from this replica. It does not
// block.
func (h *Hub) RequestKeyframe(room string, layer int) {
	h.mu.RLock()
	r := h.rooms[H264Stream(room, layer)]
	h.mu.RUnlock()
	if r != nil {
		r.requestKeyframe()
	}
}

// keyframeRequested calls the OnKeyframe funcs of the room's local H.264
// publishers.
func (h *Hub) keyframeRequested(stream string) {
	room := stream[:len(stream)-len(keySuffix)]
	var calls []func()
	h.mu.RLock()
	for l := range frames.MaxLayers {
		if r := h.rooms[H264Stream(room, l)]; r != nil {
			for _, p := range r.h264p {
				if f := p.onKey.Load(); f != nil {
					calls = append(calls, *f)
				}
			}
		}
	}
	h.mu.RUnlock()
	for _, f := range calls {
		go f() // this is the layer's read loop: never wait on a publisher
	}
}

// hasH264PublisherLocked reports whether room has a local H.264
// publisher. Call with h.mu held.
func (h *Hub) hasH264PublisherLocked(room string) bool {
	for l := range frames.MaxLayers {
		if r := h.rooms[H264Stream(room, l)]; r != nil && len(r.h264p) > 0 {
			return true
		}
	}
	return false
}

// OnKeyframe sets f to be called, on a goroutine of its own, when any
// replica asks for a keyframe of the publisher's room, or this publisher
// lost a picture: the gateway relays the request to its sender. Only
// publishers of H.264 streams are asked.
func (p *Publisher) OnKeyframe(f func()) { p.onKey.Store(&f) }

// addH264Publisher registers p with its stream for keyframe requests and
// subscribes the replica to the room's requests before it returns (a
// layer call bounded by Options.PublishTimeout, once per room), so a
// viewer's first request is not lost. Call with h.mu not held.
func (h *Hub) addH264Publisher(p *Publisher) {
	h.mu.Lock()
	p.room.h264p = append(p.room.h264p, p)
	h.mu.Unlock()
	h.syncSubscription(context.Background(), keyStream(p.room.base))
}

// removeH264Publisher undoes addH264Publisher.
func (h *Hub) removeH264Publisher(p *Publisher) {
	h.mu.Lock()
	r := p.room
	for i, q := range r.h264p {
		if q == p {
			r.h264p = append(r.h264p[:i], r.h264p[i+1:]...)
			break
		}
	}
	h.mu.Unlock()
	h.syncSubscriptionLater(keyStream(r.base))
}

// sendPicture is Send for H.264 streams. A picture the queue cannot hold
// is lost with every delta after it up to the next keyframe, and the
// publisher is asked for one (lostPicture): no viewer anywhere is handed
// a delta whose reference is missing. The stream's group of pictures, in
// memory and in a GroupLayer, follows what is queued.
func (p *Publisher) sendPicture(f *frames.Frame) bool {
	r := p.room
	f.Room, f.Layer = r.base, r.layer
	p.lastSeq.Store(f.Seq)
	if !p.sent.Swap(true) && p.hub.opts.Presence != nil {
		p.hub.opts.Presence.PublishersChanged(r.name)
	}
	now := time.Now().UnixNano()
	n := len(f.Binary())
	p.mu.Lock()
	if f.Kind == frames.KindH264Config || f.Kind == frames.KindH264Key {
		p.needKey = false
	}
	full := len(p.queue) >= PublishQueueFrames || p.queuedBytes+n > PublishQueueBytes
	if p.needKey || full && f.Kind == frames.KindH264Delta {
		first := !p.needKey
		p.needKey = true
		p.mu.Unlock()
		p.hub.publishDropped.Add(1)
		if cb := p.onKey.Load(); cb != nil && first {
			go (*cb)()
		}
		return true
	}
	for len(p.queue) > 0 && full {
		// A configuration or keyframe arrived with the queue full: what
		// waits is older than it and is no use to anyone now.
		p.queuedBytes -= len(p.queue[0].f.Binary())
		p.queue[0] = queuedFrame{}
		p.queue = p.queue[1:]
		p.hub.publishDropped.Add(1)
		full = len(p.queue) >= PublishQueueFrames || p.queuedBytes+n > PublishQueueBytes
	}
	op := p.groupOpLocked(f)
	r.gop.mu.Lock()
	r.gop.addLocked(f) // the publisher's replica keeps the group from here (deliver skips it)
	r.gop.mu.Unlock()
	p.queue = append(p.queue, queuedFrame{f: f, at: now, op: op})
	p.queuedBytes += n
	p.lastKind = f.Kind
	p.mu.Unlock()
	r.last.Store(f)
	r.live.Store(true)
	r.lastSeen.Store(now)
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return true
}

// groupOpLocked says what f does to the group a GroupLayer keeps, with the
// bounds of the in-memory one. Call with p.mu held.
func (p *Publisher) groupOpLocked(f *frames.Frame) GroupOp {
	switch f.Kind {
	case frames.KindH264Config:
		p.group, p.groupB, p.dropped = 0, len(f.Payload), false
		return GroupStart
	case frames.KindH264Key:
		if p.lastKind != frames.KindH264Config {
			// A keyframe with no configuration in front: other replicas
			// could not start from it. (The gateway refuses these.)
			p.group, p.dropped = 0, true
			return GroupDrop
		}
	case frames.KindH264Delta:
	default:
		return GroupNone
	}
	if p.dropped {
		return GroupNone
	}
	p.group++
	p.groupB += len(f.Payload)
	if p.group > MaxGOPPictures || p.groupB > MaxGOPBytes {
		p.dropped = true
		return GroupDrop
	}
	return GroupAppend
}

// lostPicture records that a picture of the stream was not sent: deltas
// are dropped until the next keyframe, which the publisher is asked for
// (on this replica, directly, once per loss).
func (p *Publisher) lostPicture() {
	p.mu.Lock()
	first := !p.needKey
	p.needKey = true
	p.mu.Unlock()
	if f := p.onKey.Load(); f != nil && first {
		go (*f)()
	}
}

// publishGroup publishes batch with the group ops Send chose.
func (p *Publisher) publishGroup(ctx context.Context, gl GroupLayer, batch []*frames.Frame, msgs [][]byte) [][]byte {
	msgs = msgs[:0]
	for _, f := range batch {
		msgs = append(msgs, p.room.wire(f))
	}
	p.count(len(batch), gl.PublishGroup(ctx, p.room.name, msgs, p.ops))
	clear(msgs)
	return msgs
}
