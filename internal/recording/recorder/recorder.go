// Package recorder records rooms into a store (package store), indexed by
// a catalog (package index): for each room it records, the JPEG main
// stream and, when the room sends H.264, the H.264 main stream, cut into
// segments of parts (package segment).
//
// # One recorder per room
//
// Any number of replicas may record; each room is recorded by one of them
// at a time, the holder of the room's lease ("record/<room>", see
// Leases). Every PollEvery each recorder renews the leases it holds and
// tries to take those of the live rooms it matches that nobody holds, so
// a holder that dies (kill -9) is replaced once its lease expires:
// within LeaseTTL + PollEvery plus the time to recover its segments. A
// holder counts its lease valid until the send time of its last
// successful renewal plus LeaseTTL, and stops writing StopMargin before
// that, so a holder cut off from Redis has stopped before another can
// take the room: two never write the same stream. The new holder first
// seals what the old one left (index.Catalog.Recover).
//
// # Never in the live path's way
//
// A recorded stream is a tap of the hub (rooms.Hub.Tap): the tap func
// runs on the goroutine delivering frames to viewers, so it does no more
// than hand the frame to a bounded queue (QueueFrames frames, QueueBytes
// bytes); a writer goroutine per stream drains it into the store. Past the
// bound, frames are dropped and counted, and an H.264 stream skips to its
// next keyframe and starts a new segment there, so no recording holds a
// picture whose reference is missing. A slow, full or failing store
// therefore costs recorded frames, never a live one.
//
// # What a crash loses
//
// Each part (at most segment.Options.PartMax, 1 s) is appended to the open
// segment's journal as it ends; a killed recorder loses the part being
// filled and what waited in its queue. See docs/recording.md.
package recorder

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// Timing of leases. A kill -9 of a holder is taken over after at most
// LeaseTTL (its last renewal expiring) + PollEvery (the next attempt) +
// the recovery of its open segments: about 1 s, which with the part the
// dead holder was filling (at most 1 s) keeps the gap in the recording
// under index.SpanGap (2 s). A holder whose renewals fail for LeaseTTL −
// RenewEvery (600 ms: four attempts) loses the room; a Redis that pauses
// longer than that moves rooms between replicas.
const (
	LeaseTTL   = 750 * time.Millisecond
	PollEvery  = 150 * time.Millisecond // renewals and attempts on unheld rooms
	StopMargin = 100 * time.Millisecond // writes stop this long before a lease may expire
)

// DiscoverEvery is how often the recorder asks its RoomSource which rooms
// are live; IdleGrace is how long a room it records may be missing from
// the answer (a publisher reconnecting) before its recording ends.
const (
	DiscoverEvery = time.Second
	IdleGrace     = 5 * time.Second
)

// Bounds of a recorded stream's queue: about 8 s of 720p30 H.264, or 15 s
// of a 10 fps 640-wide JPEG room, absorb a store's hiccup; a store that
// stalls longer loses frames, counted. The memory is QueueBytes per
// recorded stream at most (the frames are shared with the hub).
const (
	QueueFrames = 256
	QueueBytes  = 8 << 20
)

// LiveRoom is a room with a live publisher on some replica.
type LiveRoom struct {
	Name string
	H264 bool // it sends an H.264 main stream
}

// RoomSource tells the recorder which rooms have live publishers: the
// replicas' presence and layer catalog with Redis, the hub's own streams
// without. It must be safe for concurrent use and return within ctx.
type RoomSource interface {
	LiveRooms(ctx context.Context) ([]LiveRoom, error)
}

// Hub is what the recorder needs of a rooms.Hub.
type Hub interface {
	Tap(ctx context.Context, id frames.Stream, fn func(*frames.Frame)) (*rooms.Tap, error)
	Untap(t *rooms.Tap)
	RequestKeyframe(id frames.Stream)
}

var _ Hub = (*rooms.Hub)(nil)

// Options configure a Recorder. The zero value (or nil) means the
// defaults.
type Options struct {
	// Match says whether this replica records room. Default: every room.
	Match func(room string) bool
	// Segment tunes the segments (Target: GATEWAY_RECORD_SEGMENT).
	Segment segment.Options
	// MinFree is the free space the store keeps (GATEWAY_RECORD_MIN_FREE):
	// retention deletes below it; the recorder pauses (drops, counted)
	// while the store has less than half of it, which happens only when
	// retention has nothing left to delete or cannot keep up. 0: never
	// pauses (a full store fails writes, counted, until space returns).
	MinFree int64
	// Logger receives lease changes, store failures and drops (each
	// kind at most once per LogEvery). Default slog.Default().
	Logger *slog.Logger
}

// LogEvery is the least time between two log lines about the same kind of
// trouble (drops of a stream, store failures of an operation).
const LogEvery = 10 * time.Second

// Recorder records the live rooms it matches whose lease it holds. Its
// methods are safe for concurrent use.
type Recorder struct {
	hub    Hub
	st     store.Store
	cat    *index.Catalog
	leases Leases
	src    RoomSource
	opt    Options
	log    *slog.Logger
	logs   logLimiter

	mu    sync.Mutex
	rooms map[string]*room     // rooms held (or being stopped)
	live  map[string]liveState // from the RoomSource, matched

	paused atomic.Bool
	stats  counters

	cancel  context.CancelFunc
	wg      sync.WaitGroup // loops, and rooms ending
	writers sync.WaitGroup // stream goroutines
}

type liveState struct {
	h264 bool
	seen time.Time
}

// New returns a recorder of the rooms src reports live, through hub, into
// st and cat, holding leases from leases. Call Start, then Stop.
func New(hub Hub, st store.Store, cat *index.Catalog, leases Leases, src RoomSource, o *Options) *Recorder {
	var opt Options
	if o != nil {
		opt = *o
	}
	if opt.Match == nil {
		opt.Match = func(string) bool { return true }
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Recorder{
		hub: hub, st: st, cat: cat, leases: leases, src: src, opt: opt,
		log:   opt.Logger.With("component", "recorder"),
		rooms: map[string]*room{},
		live:  map[string]liveState{},
	}
}

// Start starts discovering rooms, holding leases and recording.
func (r *Recorder) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(3)
	go func() { defer r.wg.Done(); r.discoverLoop(ctx) }()
	go func() { defer r.wg.Done(); r.leaseLoop(ctx) }()
	go func() { defer r.wg.Done(); r.spaceLoop(ctx) }()
}

// Stop ends every recording cleanly (the open segments sealed and
// indexed) and releases the leases, so that another replica takes the
// rooms over at its next attempt; it returns when done or when ctx ends.
func (r *Recorder) Stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.wg.Wait()
	// One last renewal: the rooms' sealing below has a whole lease.
	r.renewLeases(context.Background())
	r.mu.Lock()
	var all []*room
	for _, rm := range r.rooms {
		all = append(all, rm)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, rm := range all {
			wg.Add(1)
			go func() { defer wg.Done(); r.endRoom(rm) }()
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		for _, rm := range all {
			rm.kill()
		}
		return ctx.Err()
	}
	r.writers.Wait() // those of rooms lost earlier
	return nil
}

// Paused reports whether recording is paused for lack of space.
func (r *Recorder) Paused() bool { return r.paused.Load() }

// discoverLoop keeps r.live: the matched rooms the source reports live.
// When the source fails, the last answer stands (a lease that cannot be
// renewed ends a recording; a failed listing does not).
func (r *Recorder) discoverLoop(ctx context.Context) {
	t := time.NewTicker(DiscoverEvery)
	defer t.Stop()
	for {
		lctx, cancel := context.WithTimeout(ctx, DiscoverEvery)
		list, err := r.src.LiveRooms(lctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.logs.warn(r.log, "discover", "failed to list live rooms; recording the rooms known", "err", err)
		}
		if err == nil {
			now := time.Now()
			r.mu.Lock()
			for _, lr := range list {
				if frames.ValidRoom(lr.Name) && r.opt.Match(lr.Name) {
					r.live[lr.Name] = liveState{h264: lr.H264, seen: now}
				}
			}
			for name, l := range r.live {
				if now.Sub(l.seen) > IdleGrace {
					delete(r.live, name)
				}
			}
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// leaseLoop renews the leases held, ends the recordings of rooms gone
// idle, and tries to take the leases of live rooms nobody records, every
// PollEvery.
func (r *Recorder) leaseLoop(ctx context.Context) {
	t := time.NewTicker(PollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		r.renewLeases(ctx)
		r.endIdle()
		r.acquire(ctx)
	}
}

// renewLeases extends the leases held; a room whose lease is lost, or
// whose renewals failed until it may have expired, stops at once without
// writing anything more.
func (r *Recorder) renewLeases(ctx context.Context) {
	r.mu.Lock()
	held := make([]*room, 0, len(r.rooms))
	names := make([]string, 0, len(r.rooms))
	for _, rm := range r.rooms {
		held = append(held, rm)
		names = append(names, rm.lease)
	}
	r.mu.Unlock()
	if len(held) == 0 {
		return
	}
	sent := time.Now()
	rctx, cancel := context.WithTimeout(ctx, LeaseTTL/3)
	ok, err := r.leases.Renew(rctx, names, LeaseTTL)
	cancel()
	if err != nil {
		r.logs.warn(r.log, "renew", "failed to renew recording leases; recording stops if this lasts", "err", err)
	}
	now := time.Now()
	for i, rm := range held {
		switch {
		case err == nil && ok[i]:
			rm.validUntil.Store(sent.Add(LeaseTTL).UnixNano())
		case err == nil:
			r.lost(rm, "another replica holds it")
		case now.UnixNano() >= rm.validUntil.Load():
			r.lost(rm, "it could not be renewed in time")
		}
	}
}

// endIdle ends cleanly the recordings of rooms missing from the live list
// for IdleGrace, and starts the H.264 stream of rooms that began sending
// one.
func (r *Recorder) endIdle() {
	now := time.Now()
	r.mu.Lock()
	var idle []*room
	for name, rm := range r.rooms {
		l, live := r.live[name]
		switch {
		case rm.stopping:
		case !live || now.Sub(l.seen) > IdleGrace:
			rm.stopping = true
			idle = append(idle, rm)
		case l.h264 && rm.streams[frames.CodecH264] == nil:
			r.startStreamLocked(rm, frames.CodecH264)
		}
	}
	r.mu.Unlock()
	for _, rm := range idle {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.endRoom(rm) }()
	}
}

// acquire tries to take the leases of the live rooms not recorded here.
func (r *Recorder) acquire(ctx context.Context) {
	now := time.Now()
	r.mu.Lock()
	var names []string
	var h264 []bool
	for name, l := range r.live {
		if _, held := r.rooms[name]; !held && now.Sub(l.seen) <= IdleGrace {
			names = append(names, LeaseName(name))
			h264 = append(h264, l.h264)
		}
	}
	r.mu.Unlock()
	if len(names) == 0 || ctx.Err() != nil {
		return
	}
	sent := time.Now()
	actx, cancel := context.WithTimeout(ctx, LeaseTTL/3)
	ok, err := r.leases.Acquire(actx, names, LeaseTTL)
	cancel()
	if err != nil {
		r.logs.warn(r.log, "acquire", "failed to take recording leases", "err", err)
		return
	}
	for i, name := range names {
		if ok[i] {
			r.begin(name[len(leasePrefix):], h264[i], sent.Add(LeaseTTL))
		}
	}
}

const leasePrefix = "record/"

// LeaseName is room's recording lease: its holder is the one writer of the
// room's segments and index (retention takes it to seal what a room that
// stopped recording left).
func LeaseName(room string) string { return leasePrefix + room }

// RetentionLease is the lease of the deployment's retention worker.
const RetentionLease = "retention"

// begin starts recording room, whose lease is valid until validUntil.
func (r *Recorder) begin(name string, h264 bool, validUntil time.Time) {
	rm := &room{r: r, name: name, lease: LeaseName(name), streams: map[frames.Codec]*stream{}}
	rm.validUntil.Store(validUntil.UnixNano())
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.rooms[name]; ok {
		return
	}
	r.rooms[name] = rm
	r.stats.leases[leaseAcquired].Add(1)
	r.log.Info("recording room", "room", name, "h264", h264)
	r.startStreamLocked(rm, frames.CodecJPEG)
	if h264 {
		r.startStreamLocked(rm, frames.CodecH264)
	}
}

// lost stops rm at once: its lease is gone, so nothing more is written
// (its open segments are for the next holder to recover).
func (r *Recorder) lost(rm *room, why string) {
	r.mu.Lock()
	if r.rooms[rm.name] != rm {
		r.mu.Unlock()
		return
	}
	delete(r.rooms, rm.name)
	r.mu.Unlock()
	rm.kill()
	r.stats.leases[leaseLost].Add(1)
	r.log.Warn("stopped recording a room: lost its lease", "room", rm.name, "why", why)
}

// endRoom ends rm's recording cleanly, then releases its lease.
func (r *Recorder) endRoom(rm *room) {
	rm.end()
	r.mu.Lock()
	mine := r.rooms[rm.name] == rm
	if mine {
		delete(r.rooms, rm.name)
	}
	r.mu.Unlock()
	if !mine {
		return // lost meanwhile
	}
	ctx, cancel := context.WithTimeout(context.Background(), LeaseTTL)
	defer cancel()
	if err := r.leases.Release(ctx, []string{rm.lease}); err != nil {
		r.log.Warn("failed to release a recording lease; it expires by itself", "room", rm.name, "err", err)
	}
	r.stats.leases[leaseReleased].Add(1)
	r.log.Info("stopped recording room", "room", rm.name)
}

// spaceLoop pauses recording while the store has less than half of
// MinFree left: retention could not keep it above MinFree.
func (r *Recorder) spaceLoop(ctx context.Context) {
	if r.opt.MinFree <= 0 {
		return
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		free, known, err := r.st.Space(sctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			r.storeError(opSpace, err)
		case err == nil && known:
			pause := free < r.opt.MinFree/2
			if was := r.paused.Swap(pause); pause && !was {
				r.stats.pauses.Add(1)
				r.log.Warn("recording paused: the store is nearly full and retention has nothing left to delete",
					"free", free, "min_free", r.opt.MinFree)
			} else if !pause && was {
				r.log.Info("recording resumed: the store has room again", "free", free)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// room is one room this replica holds the lease of.
type room struct {
	r     *Recorder
	name  string
	lease string
	// validUntil is when the lease may expire (Unix ns): the send time of
	// its last successful renewal plus LeaseTTL.
	validUntil atomic.Int64
	streams    map[frames.Codec]*stream // guarded by r.mu
	stopping   bool                     // guarded by r.mu
}

// writable reports whether the lease is surely still held a StopMargin
// from now.
func (rm *room) writable() bool {
	return time.Now().Add(StopMargin).UnixNano() < rm.validUntil.Load()
}

// deadline is the context deadline of a store call: the lease's end.
func (rm *room) deadline() time.Time {
	return time.Unix(0, rm.validUntil.Load()).Add(-StopMargin)
}

// kill stops rm's streams without writing anything more, and without
// waiting for them (a store call in flight ends by its deadline).
func (rm *room) kill() {
	for _, s := range rm.streamsNow() {
		s.killOnce.Do(func() { close(s.kill) })
	}
}

// end ends rm's streams cleanly (open segments sealed) and waits for them.
func (rm *room) end() {
	for _, s := range rm.streamsNow() {
		s.stopOnce.Do(func() { close(s.stop) })
	}
	for _, s := range rm.streamsNow() {
		<-s.done
	}
}

func (rm *room) streamsNow() []*stream {
	rm.r.mu.Lock()
	defer rm.r.mu.Unlock()
	out := make([]*stream, 0, len(rm.streams))
	for _, s := range rm.streams {
		out = append(out, s)
	}
	return out
}

// logLimiter logs each kind of trouble at most once per LogEvery, with the
// number of times it happened since.
type logLimiter struct {
	mu   sync.Mutex
	last map[string]*limited
}

type limited struct {
	at      time.Time
	skipped int
}

func (l *logLimiter) warn(log *slog.Logger, key, msg string, args ...any) {
	l.mu.Lock()
	if l.last == nil {
		l.last = map[string]*limited{}
	}
	e := l.last[key]
	if e == nil {
		e = &limited{}
		l.last[key] = e
	}
	now := time.Now()
	if !e.at.IsZero() && now.Sub(e.at) < LogEvery {
		e.skipped++
		l.mu.Unlock()
		return
	}
	skipped := e.skipped
	e.at, e.skipped = now, 0
	l.mu.Unlock()
	if skipped > 0 {
		args = append(args, "times_since_last_log", skipped+1)
	}
	log.Warn(msg, args...)
}

// storeError counts and logs a failed store or catalog call.
func (r *Recorder) storeError(op storeOp, err error) {
	r.stats.storeErrors[op].Add(1)
	what := "recording: failed to " + storeOpNames[op]
	if errors.Is(err, store.ErrFull) {
		what += " (store full)"
	}
	r.logs.warn(r.log, "store:"+storeOpNames[op], what, "err", err)
}
