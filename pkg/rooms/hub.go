package rooms

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/framecast/framecast/pkg/frames"
)

// ErrTooManyRooms is returned by Join, Tap and NewPublisher when the hub
// already holds Options.MaxRooms rooms and the room asked for is not one
// of them.
var ErrTooManyRooms = errors.New("rooms: too many rooms")

// Options configures a Hub. The zero value is usable.
type Options struct {
	// MaxRooms caps the number of rooms with local viewers, taps or
	// publishers (a room counts once however many of its streams are
	// here). 0 means no limit.
	MaxRooms int
	// MaxIdleRooms caps, within MaxRooms, the rooms held without a known
	// publisher (see budget.go), so that rooms anyone may ask for never
	// take the places of live ones. 0 means no cap of their own.
	MaxIdleRooms int
	// Liveness, if set, tells whether another replica publishes a room,
	// asked when a room not held live is joined (see budget.go). Nil
	// means only this replica's publishers, and the pictures the layer
	// delivers, are known.
	Liveness RoomLiveness
	// PublishTimeout bounds one call to the channel layer. Default 2s.
	PublishTimeout time.Duration
	// Logger receives subscription and publish failures. Default
	// slog.Default().
	Logger *slog.Logger
	// Cache, if set, supplies a JPEG stream's newest frame at Join when
	// this replica holds no live frame of it in memory, so a viewer sees an
	// image at once on any replica (see cache.go). Nil means none.
	Cache FrameCache
	// CacheTimeout bounds the Cache, Catalog and group lookups at Join.
	// Default 200ms.
	CacheTimeout time.Duration
	// Presence, if set, tells whether other replicas have live publishers
	// of a stream: a stream whose last local publisher leaves is announced
	// offline only when none has (see Publisher.Close). Nil means this
	// replica's publishers are the only ones.
	Presence PublisherPresence
	// Catalog, if set, tells which layers a room published on another
	// replica has (see Layers), bounded by CacheTimeout. Nil means only
	// this replica's publishers are known.
	Catalog LayerCatalog
	// RoomRate caps the frames per second a stream accepts from all its
	// local publishers together; frames over it are dropped before the
	// layer and counted (Stats.RoomRateDrops). A second publisher of a
	// live stream (a camera reconnecting) is allowed, but the rate holds.
	// 0 means no limit. Each replica applies it to its own publishers.
	RoomRate float64
	// RoomBurst is how many frames a stream may take at once over
	// RoomRate. Default 1 second's worth.
	RoomBurst int
	// FanoutShards is how many goroutines at most offer frames to viewers
	// at once (see fanout.go). 0 means GOMAXPROCS; 1 means the goroutine
	// delivering a frame offers it to every viewer itself, one delivery at
	// a time.
	FanoutShards int
}

// Hub holds the local streams of one gateway replica. It is safe for
// concurrent use.
type Hub struct {
	layer Layer
	opts  Options
	log   *slog.Logger

	// mu guards streams, rooms and idleRooms, and every change of a
	// stream's viewer set, taps and publishers (they are read without it:
	// copy-on-write).
	mu          sync.RWMutex
	streams     map[frames.Stream]*stream
	rooms       map[string]*roomState // the rooms held: the MaxRooms budget (budget.go)
	idleRooms   int                   // rooms without a known publisher: the MaxIdleRooms budget
	idleRecheck atomic.Int64          // unix ns of RecheckLive's last look at every idle room

	shards []*fanoutShard // at least one; a single one is inline
	start  time.Time      // the origin of monotonic

	subMu    sync.Mutex               // guards channels; never held across a layer call (subscribe.go)
	channels map[string]*channelState // channels subscribed, or with a layer call in flight

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
	if opts.CacheTimeout <= 0 {
		opts.CacheTimeout = 200 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FanoutShards <= 0 {
		opts.FanoutShards = runtime.GOMAXPROCS(0)
	}
	h := &Hub{
		layer:    layer,
		opts:     opts,
		log:      opts.Logger,
		streams:  make(map[frames.Stream]*stream),
		rooms:    make(map[string]*roomState),
		channels: make(map[string]*channelState),
		start:    time.Now(),
	}
	for i := range opts.FanoutShards {
		h.shards = append(h.shards, &fanoutShard{index: i, inline: opts.FanoutShards == 1})
	}
	return h
}

// Layer returns the hub's channel layer.
func (h *Hub) Layer() Layer { return h.layer }

// streamLocked returns the stream id, creating it if the room budgets
// allow (budget.go); live says a publisher of the room is known. Call
// with h.mu held.
func (h *Hub) streamLocked(id frames.Stream, live bool) (*stream, error) {
	if s, ok := h.streams[id]; ok {
		if live {
			h.markLiveLocked(s.room)
		}
		return s, nil
	}
	if err := id.Valid(); err != nil {
		return nil, err
	}
	r, err := h.roomLocked(id.Room, live)
	if err != nil {
		return nil, err
	}
	s := &stream{hub: h, id: id, name: id.String(), room: r, jobs: make([]shardJob, len(h.shards))}
	s.codec = newCodecPolicy(id.Codec, s)
	if h.opts.RoomRate > 0 {
		burst := h.opts.RoomBurst
		if burst <= 0 {
			burst = max(1, int(h.opts.RoomRate))
		}
		s.rate = rate.NewLimiter(rate.Limit(h.opts.RoomRate), burst)
	}
	s.viewers.Store(&viewerSet{byShard: make([][]*Viewer, len(h.shards))})
	h.streams[id] = s
	r.streams++
	return s, nil
}

// dropIfEmptyLocked forgets s when it has no viewers, taps or publishers.
// Call with h.mu held.
func (h *Hub) dropIfEmptyLocked(s *stream) {
	if len(s.viewers.Load().all) > 0 || len(s.tapsNow()) > 0 || len(s.publishers) > 0 || h.streams[s.id] != s {
		return
	}
	delete(h.streams, s.id)
	h.releaseRoomLocked(s.room)
}

// Join adds a viewer of stream id and subscribes the replica to it if it
// is its first local viewer. When Join returns, the stream is subscribed
// (unless ctx ended first; a layer that failed to subscribe retries by
// itself), and if the stream is live the viewer already holds what it
// starts from (its newest JPEG frame, or its current H.264 group), so it
// shows a picture at once. A room the hub does not hold is held within
// the room budgets, as live or idle as RoomLive says (budget.go). Call
// Leave when the viewer goes.
func (h *Hub) Join(ctx context.Context, id frames.Stream) (*Viewer, error) {
	return h.join(ctx, id, nil, h.RoomLive(ctx, id.Room))
}

// JoinNotify is Join for a viewer without a goroutine of its own: instead
// of waking Next, frames queued to the viewer call notify(v), on the
// viewer's fan-out shard (see fanout.go; the joining goroutine for what it
// starts from), so notify must not block. One call may follow several
// frames: notify drains the queue with TryNext until it is empty, writing
// without blocking, or leaves the frames queued for a goroutine of its own
// while a write would block. An idle viewer then costs no goroutine at all.
func (h *Hub) JoinNotify(ctx context.Context, id frames.Stream, notify func(*Viewer)) (*Viewer, error) {
	return h.join(ctx, id, notify, h.RoomLive(ctx, id.Room))
}

func (h *Hub) join(ctx context.Context, id frames.Stream, notify func(*Viewer), live bool) (*Viewer, error) {
	rechecked := false
	for {
		h.mu.Lock()
		s, err := h.streamLocked(id, live)
		if err != nil {
			h.mu.Unlock()
			if !rechecked && errors.Is(err, ErrTooManyIdleRooms) {
				// Before refusing: is the room published elsewhere after
				// all, and do idle rooms published since still count?
				rechecked = true
				live = h.RecheckLive(ctx, id.Room)
				continue
			}
			return nil, err
		}
		// Round-robin within the stream: its viewers spread over all shards.
		shard := h.shards[s.nextShard]
		s.nextShard = (s.nextShard + 1) % len(h.shards)
		h.mu.Unlock()
		v := newViewer(s.codec, s, shard, notify)
		switch err := s.codec.join(ctx, v); {
		case errors.Is(err, errStreamGone):
			continue // dropped while unlocked: a fresh join will do
		case err != nil:
			return nil, err
		}
		return v, nil
	}
}

// addViewer adds v to s's viewers, unless s was dropped meanwhile.
func (h *Hub) addViewer(s *stream, v *Viewer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.streams[s.id] != s {
		return errStreamGone
	}
	s.viewers.Store(s.viewers.Load().with(v))
	return nil
}

// Leave removes v from its stream, and unsubscribes the replica from the
// stream if v was its last local viewer. It is idempotent, and it never
// waits for the layer: the unsubscription runs on a goroutine of its own.
// A standalone viewer (NewViewer) has nothing to leave.
func (h *Hub) Leave(v *Viewer) {
	s := v.stream
	if s == nil {
		return
	}
	h.mu.Lock()
	s.viewers.Store(s.viewers.Load().without(v))
	h.dropIfEmptyLocked(s)
	h.mu.Unlock()
	h.syncStreamLater(s.id)
}

// deliver is the channel layer's handler of stream id: it hands one
// message to every local viewer of the stream, through the fan-out
// shards, and to its taps. It does not block and allocates once per
// message and shard, not per viewer.
func (h *Hub) deliver(id frames.Stream, msg []byte) {
	f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
	if err != nil {
		h.badMessages.Add(1)
		return
	}
	if c, ok := f.Kind.Codec(); ok && c != id.Codec {
		h.badMessages.Add(1) // another codec's message on this channel: no viewer could use it
		return
	}
	h.mu.RLock()
	s := h.streams[id]
	local := s != nil && len(s.publishers) > 0
	h.mu.RUnlock()
	if s == nil {
		return
	}
	h.sawPicture(s, f)                  // a publisher of the room is live somewhere (budget.go)
	f.Room, f.Layer = id.Room, id.Layer // the channel names the stream, whatever the message says
	h.relayed.Add(1)
	s.observe(f, time.Now().UnixNano())
	at := h.monotonic()
	set := s.codec.delivered(f, local)
	for i, vs := range set.byShard {
		if len(vs) > 0 {
			for _, v := range vs {
				v.offer(f, at)
			}
			h.shards[i].push(s, vs)
		}
	}
	for _, t := range s.tapsNow() {
		t.fn(f)
	}
}

// lookup returns the local stream id, or nil.
func (h *Hub) lookup(id frames.Stream) *stream {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.streams[id]
}

// Latest returns the newest picture of stream id seen by this replica
// while it is live, or nil.
func (h *Hub) Latest(id frames.Stream) *frames.Frame {
	if s := h.lookup(id); s != nil {
		return s.latest()
	}
	return nil
}

// StreamInfo describes one local stream.
type StreamInfo struct {
	Stream     frames.Stream `json:"name"`
	Viewers    int           `json:"viewers"`
	Publishers int           `json:"publishers"`
	Live       bool          `json:"live"`
	LastFrame  time.Time     `json:"last_frame,omitzero"`
}

// Streams lists the local streams, sorted by name.
func (h *Hub) Streams() []StreamInfo {
	h.mu.RLock()
	out := make([]StreamInfo, 0, len(h.streams))
	for _, s := range h.streams {
		info := StreamInfo{
			Stream:     s.id,
			Viewers:    len(s.viewers.Load().all),
			Publishers: len(s.publishers),
			Live:       s.live.Load(),
		}
		if ns := s.lastSeen.Load(); ns != 0 {
			info.LastFrame = time.Unix(0, ns).UTC()
		}
		out = append(out, info)
	}
	h.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Stream.String() < out[j].Stream.String() })
	return out
}

// Stats are the hub's counters since it started.
type Stats struct {
	Rooms            int // rooms with local streams
	IdleRooms        int // of them, rooms without a known publisher (budget.go)
	Streams          int
	Viewers          int
	Published        uint64 // frames handed to the layer by local publishers
	PublishDropped   uint64 // frames a publisher dropped before the layer took them (its queue was full)
	RoomRateDrops    uint64 // frames dropped because their stream was over Options.RoomRate
	PublishErrors    uint64 // failed publishes to the layer
	Relayed          uint64 // messages the layer delivered to this replica's streams
	BadMessages      uint64 // layer messages that did not parse, or did not fit their stream
	Skipped          uint64 // frames viewers skipped because they were behind
	KeyframeRequests uint64 // keyframe requests this replica sent for its H.264 viewers
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	s := Stats{Rooms: len(h.rooms), IdleRooms: h.idleRooms, Streams: len(h.streams)}
	for _, st := range h.streams {
		s.Viewers += len(st.viewers.Load().all)
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
