// Package rooms holds a gateway's local rooms, their viewers and publishers,
// and the channel layers that carry frames between gateway replicas.
//
// A Hub is the meeting point: publishers hand it frames, it publishes each
// frame once to the channel layer, and the layer delivers it back to every
// replica subscribed to the room. A replica subscribes to a room while it has
// at least one local viewer of it, so each frame crosses the layer once per
// interested replica, never once per viewer.
//
// Fan-out never blocks: each viewer has a short latest-frame-wins queue (at
// most MaxBehindFrames frames spanning MaxBehind, see Viewer), and each
// publisher a bounded queue in front of the layer, sent as one pipeline per
// round trip (see Publisher), so a stuck viewer or a frozen Redis costs
// skipped frames, counted, and nothing else. The offers to a room's viewers run on a
// few fan-out shards, one per core by default (see fanout.go), each keeping
// its viewers' frames in order; a Publish to the in-process layer returns
// once the frame is queued to them.
package rooms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/framecast/framecast/pkg/frames"
)

// ErrTooManyRooms is returned by Join and NewPublisher when the hub already
// holds Options.MaxRooms rooms and the room asked for is not one of them.
var ErrTooManyRooms = errors.New("rooms: too many rooms")

// Options configures a Hub. The zero value is usable.
type Options struct {
	// MaxRooms caps the number of rooms with local viewers or publishers.
	// 0 means no limit.
	MaxRooms int
	// PublishTimeout bounds one publish to the channel layer. Default 2s.
	PublishTimeout time.Duration
	// Logger receives subscription and publish failures. Default
	// slog.Default().
	Logger *slog.Logger
	// Cache, if set, supplies a room's newest frame at Join when this
	// replica holds no live frame of it in memory, so a viewer sees an
	// image at once on any replica (see cache.go). Nil means none.
	Cache FrameCache
	// CacheTimeout bounds the Cache lookup at Join. Default 200ms.
	CacheTimeout time.Duration
	// Presence, if set, tells whether other replicas have live publishers
	// of a room: a room whose last local publisher leaves is announced
	// offline only when none has (see Publisher.Close). Nil means this
	// replica's publishers are the only ones.
	Presence PublisherPresence
	// Catalog, if set, tells which layers a room published on another
	// replica has (see Layers), bounded by CacheTimeout. Nil means only
	// this replica's publishers are known.
	Catalog LayerCatalog
	// RoomRate caps the frames per second a room accepts from all its
	// local publishers together; frames over it are dropped before the
	// layer and counted (Stats.RoomRateDropped). A second publisher of a
	// live room (a camera reconnecting) is allowed, but the room's rate
	// holds. 0 means no limit. Each replica applies it to its own
	// publishers.
	RoomRate float64
	// RoomBurst is how many frames a room may take at once over RoomRate.
	// Default 1 second's worth.
	RoomBurst int
	// FanoutShards is how many goroutines at most offer frames to viewers
	// at once (see fanout.go). 0 means GOMAXPROCS; 1 means the goroutine
	// delivering a frame offers it to every viewer itself, one delivery at
	// a time.
	FanoutShards int
}

// Hub holds the local rooms of one gateway replica. It is safe for
// concurrent use.
type Hub struct {
	layer Layer
	opts  Options
	log   *slog.Logger

	mu    sync.RWMutex // guards rooms and each Room's viewer list and publishers
	rooms map[string]*Room

	shards []*fanoutShard // at least one; a single one is inline
	start  time.Time      // the origin of now's monotonic clock

	subMu      sync.Mutex           // guards subscribed; never held across a layer call (see syncSubscription)
	subscribed map[string]*subState // rooms subscribed, or with a layer call in flight

	published        atomic.Uint64
	publishErrors    atomic.Uint64
	publishDropped   atomic.Uint64
	roomRateDrops    atomic.Uint64
	relayed          atomic.Uint64
	badMessages      atomic.Uint64
	skipped          atomic.Uint64
	keyframeRequests atomic.Uint64
}

// NewHub returns a hub that relays frames over layer.
func NewHub(layer Layer, opts Options) *Hub {
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FanoutShards <= 0 {
		opts.FanoutShards = runtime.GOMAXPROCS(0)
	}
	h := &Hub{
		layer:      layer,
		opts:       opts,
		log:        opts.Logger,
		rooms:      make(map[string]*Room),
		subscribed: make(map[string]*subState),
		start:      time.Now(),
	}
	for i := range opts.FanoutShards {
		h.shards = append(h.shards, &fanoutShard{hub: h, index: i, inline: opts.FanoutShards == 1})
	}
	return h
}

// Layer returns the hub's channel layer.
func (h *Hub) Layer() Layer { return h.layer }

// Room is one stream with local viewers or publishers on this replica: a
// room's main layer (named as the room) or one of its other layers (named
// by Stream).
type Room struct {
	hub        *Hub
	name       string // the stream's name, the channel layer's room
	base       string // the room's name
	layer      int    // the stream's layer of the room
	codec      frames.Codec
	gop        gop          // H.264 streams: the current group of pictures
	keyAt      atomic.Int64 // H.264 streams: hub.now() of the last keyframe request
	keyPending atomic.Bool  // H.264 streams: a keyframe request waits for the interval to end
	h264p      []*Publisher // H.264 streams: the local publishers, for keyframe requests; guarded by hub.mu

	viewers    atomic.Pointer[viewerSet] // copy-on-write; replaced under hub.mu
	publishers int                       // guarded by hub.mu
	nextShard  int                       // fan-out shard of the next viewer; guarded by hub.mu
	jobs       []shardJob                // one per shard; each guarded by its shard's mu

	rate     *rate.Limiter                // frames its publishers may send; nil: no limit
	last     atomic.Pointer[frames.Frame] // newest image frame seen
	live     atomic.Bool                  // an image arrived since the last offline event
	lastSeen atomic.Int64                 // unix nanoseconds of the newest image
}

// room returns the named room, creating it if needed. Call with h.mu held.
func (h *Hub) roomLocked(name string) (*Room, error) {
	if r, ok := h.rooms[name]; ok {
		return r, nil
	}
	if h.opts.MaxRooms > 0 && len(h.rooms) >= h.opts.MaxRooms {
		return nil, fmt.Errorf("%w: limit %d", ErrTooManyRooms, h.opts.MaxRooms)
	}
	base, layer, codec := ParseStream(name)
	r := &Room{hub: h, name: name, base: base, layer: layer, codec: codec, jobs: make([]shardJob, len(h.shards))}
	if h.opts.RoomRate > 0 {
		burst := h.opts.RoomBurst
		if burst <= 0 {
			burst = max(1, int(h.opts.RoomRate))
		}
		r.rate = rate.NewLimiter(rate.Limit(h.opts.RoomRate), burst)
	}
	r.viewers.Store(&viewerSet{byShard: make([][]*Viewer, len(h.shards))})
	h.rooms[name] = r
	return r, nil
}

// dropIfEmpty forgets r when it has no viewers and no publishers. Call with
// h.mu held.
func (h *Hub) dropIfEmpty(r *Room) {
	if len(r.viewers.Load().all) == 0 && r.publishers == 0 && h.rooms[r.name] == r {
		delete(h.rooms, r.name)
	}
}

// Join adds a viewer to room and subscribes the replica to the room if it is
// the room's first local viewer. If the room is live, the viewer's slot
// already holds the newest frame when Join returns, so it shows an image at
// once. Call Leave when the viewer goes.
func (h *Hub) Join(ctx context.Context, room string) (*Viewer, error) {
	return h.join(ctx, room, nil)
}

// JoinNotify is Join for a viewer without a goroutine of its own: instead of
// waking Next, frames queued to the viewer call notify(v), on the viewer's
// fan-out shard (see fanout.go; the joining goroutine for the first frame),
// so notify must not block. One call may follow several frames: notify
// drains the queue with TryNext until it is empty, writing without
// blocking, or leaves the frames queued for a goroutine of its own while a
// write would block. An idle viewer then costs no goroutine at all.
func (h *Hub) JoinNotify(ctx context.Context, room string, notify func(*Viewer)) (*Viewer, error) {
	return h.join(ctx, room, notify)
}

func (h *Hub) join(ctx context.Context, room string, notify func(*Viewer)) (*Viewer, error) {
	h.mu.Lock()
	r, err := h.roomLocked(room)
	if err != nil {
		h.mu.Unlock()
		return nil, err
	}
	// Round-robin within the room: its viewers spread over all shards.
	v := newViewer(r, h.shards[r.nextShard])
	r.nextShard = (r.nextShard + 1) % len(h.shards)
	v.notify = notify
	if r.codec == CodecH264 {
		h.mu.Unlock()
		return h.joinH264(ctx, r, v)
	}
	r.viewers.Store(r.viewers.Load().with(v))
	h.mu.Unlock()

	h.syncSubscription(ctx, room)
	if f := r.last.Load(); f != nil && r.live.Load() {
		v.offerFirst(f)
	} else if h.opts.Cache != nil {
		h.offerCached(ctx, r, v)
	}
	return v, nil
}

// Leave removes v from its room, and unsubscribes the replica from the room
// if v was its last local viewer. It is idempotent, and it never waits for
// the layer: the unsubscription runs on a goroutine of its own.
func (h *Hub) Leave(v *Viewer) {
	r := v.room
	h.mu.Lock()
	r.viewers.Store(r.viewers.Load().without(v))
	h.dropIfEmpty(r)
	h.mu.Unlock()
	h.syncSubscriptionLater(r.name)
}

// subState is one room's subscription as the hub last asked the layer for
// it. Guarded by Hub.subMu.
type subState struct {
	subscribed bool // the last layer call for the room was Subscribe (a failed one too: the layer retries)
	busy       bool // a goroutine is calling the layer for the room
}

// wantSubscribed reports whether room has local viewers.
func (h *Hub) wantSubscribed(room string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if isKeyStream(room) {
		return h.hasH264PublisherLocked(room[:len(room)-len(keySuffix)])
	}
	r := h.rooms[room]
	return r != nil && len(r.viewers.Load().all) > 0
}

// syncSubscription subscribes or unsubscribes room so that the replica is
// subscribed exactly while the room has local viewers.
//
// Concurrency: each room has at most one layer call in flight, made by the
// goroutine that found the room's state to change (subState.busy); after
// each call it reads the wanted state again and calls again until the two
// agree, so a leave racing a join never leaves a room with viewers
// unsubscribed. Anyone else finding the room busy returns at once. subMu is
// held only to read and flip the state, never across a layer call: a slow
// or frozen Redis delays only the calls for rooms whose subscription
// changes, never a join to a room already subscribed. The call runs on
// this goroutine: after a first viewer's Join the room is subscribed (or
// the attempt failed, and the layer retries).
func (h *Hub) syncSubscription(ctx context.Context, room string) {
	h.startSubscriptionChange(ctx, room, true)
}

// syncSubscriptionLater is syncSubscription on a goroutine of its own, for
// Leave, which never waits for the layer.
func (h *Hub) syncSubscriptionLater(room string) {
	h.startSubscriptionChange(context.Background(), room, false)
}

// startSubscriptionChange marks room busy and changes its subscription, on
// this goroutine with wait, else on a new one, if it needs a change and
// nobody is changing it already.
func (h *Hub) startSubscriptionChange(ctx context.Context, room string, wait bool) {
	h.subMu.Lock()
	s := h.subscribed[room]
	if s == nil {
		s = &subState{}
	}
	want := h.wantSubscribed(room)
	if s.busy || want == s.subscribed {
		h.subMu.Unlock()
		return
	}
	s.busy = true
	h.subscribed[room] = s
	h.subMu.Unlock()
	if wait {
		h.changeSubscription(ctx, room, s, want)
		return
	}
	go h.changeSubscription(context.Background(), room, s, want)
}

// changeSubscription calls the layer for room, which s says is busy, until
// the room's subscription is as wanted, then clears s.busy.
func (h *Hub) changeSubscription(ctx context.Context, room string, s *subState, want bool) {
	for {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.opts.PublishTimeout)
		if want {
			if err := h.layer.Subscribe(cctx, room, h.deliver); err != nil {
				// The layer keeps the subscription and restores it when it
				// reconnects; frames flow once it is back.
				h.log.Warn("subscribe failed; the layer will retry", "room", room, "err", err)
			}
		} else if err := h.layer.Unsubscribe(cctx, room); err != nil {
			h.log.Warn("unsubscribe failed", "room", room, "err", err)
		}
		cancel()
		h.subMu.Lock()
		s.subscribed = want
		if want = h.wantSubscribed(room); want == s.subscribed {
			s.busy = false
			if !s.subscribed {
				delete(h.subscribed, room)
			}
			h.subMu.Unlock()
			return
		}
		h.subMu.Unlock()
	}
}

// deliver is the layer's Handler: it hands one message to every local viewer
// of room, through the fan-out shards. It does not block and allocates once
// per message and shard, not per viewer.
func (h *Hub) deliver(room string, msg []byte) {
	if isKeyStream(room) {
		h.keyframeRequested(room)
		return
	}
	f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
	if err != nil {
		h.badMessages.Add(1)
		return
	}
	h.mu.RLock()
	r := h.rooms[room]
	local := r != nil && r.publishers > 0
	h.mu.RUnlock()
	if r == nil {
		return
	}
	f.Room, f.Layer = r.base, r.layer // the channel names the stream, whatever the message says
	h.relayed.Add(1)
	r.observe(f)
	at := h.now()
	set := r.viewers.Load()
	if r.codec == CodecH264 {
		// The group a joiner gets and the pictures offered live split
		// under gop.mu (see joinPictures).
		r.gop.mu.Lock()
		if !local { // a local publisher's Send keeps the group
			r.gop.addLocked(f)
		}
		set = r.viewers.Load()
		r.gop.mu.Unlock()
	}
	for i, vs := range set.byShard {
		if len(vs) > 0 {
			for _, v := range vs {
				v.offer(f, at)
			}
			h.shards[i].push(r, vs)
		}
	}
}

// now is the hub's monotonic clock, in nanoseconds since it started.
func (h *Hub) now() int64 { return int64(time.Since(h.start)) }

// observe records f as the room's newest state.
func (r *Room) observe(f *frames.Frame) {
	if f.IsOffline() {
		r.live.Store(false)
		return
	}
	r.last.Store(f)
	r.live.Store(true)
	r.lastSeen.Store(time.Now().UnixNano())
}

// Latest returns the newest frame of room (a stream name: see Stream) seen
// by this replica, or nil.
func (h *Hub) Latest(room string) *frames.Frame {
	h.mu.RLock()
	r := h.rooms[room]
	h.mu.RUnlock()
	if r == nil || !r.live.Load() {
		return nil
	}
	return r.last.Load()
}

// RoomInfo describes one local stream: a room's main layer, or another of
// its layers (Layer > 0, Name as Stream makes it).
type RoomInfo struct {
	Name       string       `json:"name"`
	Room       string       `json:"-"` // the room, Name without its layer
	Layer      int          `json:"-"`
	Codec      frames.Codec `json:"-"`
	Viewers    int          `json:"viewers"`
	Publishers int          `json:"publishers"`
	Live       bool         `json:"live"`
	LastFrame  time.Time    `json:"last_frame,omitzero"`
}

// Rooms lists the local rooms, sorted by name.
func (h *Hub) Rooms() []RoomInfo {
	h.mu.RLock()
	out := make([]RoomInfo, 0, len(h.rooms))
	for _, r := range h.rooms {
		info := RoomInfo{
			Name:       r.name,
			Room:       r.base,
			Layer:      r.layer,
			Codec:      r.codec,
			Viewers:    len(r.viewers.Load().all),
			Publishers: r.publishers,
			Live:       r.live.Load(),
		}
		if ns := r.lastSeen.Load(); ns != 0 {
			info.LastFrame = time.Unix(0, ns).UTC()
		}
		out = append(out, info)
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Stats are the hub's counters since it started.
type Stats struct {
	Rooms            int
	Viewers          int
	Published        uint64 // frames handed to the layer by local publishers
	PublishDropped   uint64 // frames a publisher dropped before the layer took them (its queue was full)
	RoomRateDrops    uint64 // frames dropped because their room was over Options.RoomRate
	PublishErrors    uint64 // failed publishes to the layer
	Relayed          uint64 // messages the layer delivered to this replica's rooms
	BadMessages      uint64 // layer messages that did not parse
	Skipped          uint64 // frames viewers skipped because they were behind
	KeyframeRequests uint64 // keyframe requests this replica sent for its H.264 viewers
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	s := Stats{Rooms: len(h.rooms)}
	for _, r := range h.rooms {
		s.Viewers += len(r.viewers.Load().all)
	}
	h.mu.RUnlock()
	s.Published = h.published.Load()
	s.PublishDropped = h.publishDropped.Load()
	s.RoomRateDrops = h.roomRateDrops.Load()
	s.PublishErrors = h.publishErrors.Load()
	s.Relayed = h.relayed.Load()
	s.BadMessages = h.badMessages.Load()
	s.Skipped = h.skipped.Load()
	s.KeyframeRequests = h.keyframeRequests.Load()
	return s
}
