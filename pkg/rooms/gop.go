package rooms

import (
	"context"
	"strings"
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
const CodecH264 = "h264"

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

// h264Suffix marks H.264 streams.
const h264Suffix = "@" + CodecH264

// H264Stream returns the name of room's H.264 layer.
func H264Stream(room string, layer int) string {
	if layer <= 0 {
		return room + h264Suffix
	}
	return room + h264Suffix + "." + string(rune('0'+layer))
}

// ParseStream returns the room, layer and codec ("" for JPEG, CodecH264) a
// stream name carries. Names that are no stream's are rooms of their own.
func ParseStream(stream string) (room string, layer int, codec string) {
	i := strings.LastIndex(stream, h264Suffix)
	if i > 0 {
		rest := stream[i+len(h264Suffix):]
		switch {
		case rest == "":
			return stream[:i], 0, CodecH264
		case len(rest) == 2 && rest[0] == '.' && rest[1] >= '1' && rest[1] < '0'+frames.MaxLayers:
			return stream[:i], int(rest[1] - '0'), CodecH264
		}
	}
	room, layer = SplitStream(stream)
	return room, layer, ""
}

// gop is an H.264 stream's current group of pictures on this replica.
type gop struct {
	mu      sync.Mutex
	config  *frames.Frame   // the newest decoder configuration
	pics    []*frames.Frame // the last keyframe and the deltas since; nil: none usable
	bytes   int
	lastKey time.Time // of the last keyframe request sent, for RequestKeyframe
}

// add records f, a picture of the stream, in the group. Call with g.mu held.
func (g *gop) addLocked(f *frames.Frame) {
	switch f.Kind {
	case frames.KindH264Config:
		g.config = f
		return
	case frames.KindH264Key:
		clear(g.pics)
		g.pics, g.bytes = g.pics[:0], 0
	case frames.KindH264Delta:
		if g.pics == nil || len(g.pics) == 0 {
			return // no keyframe to build on
		}
	default:
		return
	}
	if len(g.pics) >= MaxGOPPictures || g.bytes+len(f.JPEG) > MaxGOPBytes {
		clear(g.pics)
		g.pics, g.bytes = g.pics[:0], 0 // too long to hand over: joiners wait for the next keyframe
		return
	}
	g.pics = append(g.pics, f)
	g.bytes += len(f.JPEG)
}

// snapshotLocked returns the group to hand a joining viewer: the
// configuration, then the keyframe and its deltas; nil if there is no
// keyframe. Call with g.mu held. The frames are shared.
func (g *gop) snapshotLocked() []*frames.Frame {
	if len(g.pics) == 0 || g.config == nil {
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
		return false
	}
	v.mu.Lock()
	v.backlog = snap
	v.needKey = false
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
	if handed {
		v.signal()
	} else {
		r.requestKeyframe() // now that the replica is subscribed, the keyframe reaches v
	}
	return v, nil
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
		f()
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

// OnKeyframe sets f to be called, on a goroutine that must not block for
// long, when any replica asks for a keyframe of the publisher's room: the
// gateway relays the request to its sender. Only publishers of H.264
// streams are asked.
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
