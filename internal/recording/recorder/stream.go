package recorder

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// housekeepEvery is how often a stream's writer looks at its open part
// (a publisher that stopped sending leaves one waiting), keyframes and
// day logs between frames.
const housekeepEvery = 250 * time.Millisecond

// partLate is how long past PartMax a part may wait for the frame that
// ends it before the writer flushes it on its own.
const partLate = 250 * time.Millisecond

// recoverEvery is the least time between two attempts to recover a
// stream's segments after a store failure.
const recoverEvery = time.Second

// item is one frame queued by the tap. gap says frames were dropped
// between it and the previous one queued.
type item struct {
	f   *frames.Frame
	gap bool
}

// stream records one stream of a room: a tap that queues, and a writer
// goroutine (run) that owns the segment writer and every store call for
// the stream, so the stream's journals and index records have one writer.
type stream struct {
	r  *Recorder
	rm *room
	id frames.Stream

	// The tap's side; the tap may run on several goroutines at once (two
	// publishers of a stream on the in-process layer), hence atomics.
	q        chan item
	qBytes   atomic.Int64
	gap      atomic.Bool // frames were dropped since the last one queued
	skipping atomic.Bool // H.264: dropping deltas until a configuration or keyframe
	dropped  atomic.Uint64

	stop, kill         chan struct{} // end cleanly; stop at once
	stopOnce, killOnce sync.Once
	done               chan struct{}

	// The writer goroutine's own.
	w           *segment.Writer
	start       time.Time // the open segment's first frame's capture time
	journal     string
	partSince   time.Time // when the open part got its first frame (local clock)
	lastStart   int64     // Unix µs of the last segment begun: names must not repeat
	broken      bool      // a store call failed: recover before the next segment
	lastRecover time.Time
	day         int64          // the UTC day (Unix days) housekeeping last saw
	unsealed    map[int64]bool // past days whose logs are still journals
	loggedDrops uint64
}

// startStreamLocked starts recording rm's main stream of codec. r.mu is
// held.
func (r *Recorder) startStreamLocked(rm *room, codec frames.Codec) {
	s := &stream{
		r: r, rm: rm, id: frames.Stream{Room: rm.name, Codec: codec},
		q:    make(chan item, QueueFrames),
		stop: make(chan struct{}), kill: make(chan struct{}), done: make(chan struct{}),
		unsealed: map[int64]bool{},
	}
	s.w = segment.NewWriter(rm.name, codec, &r.opt.Segment)
	rm.streams[codec] = s
	r.writers.Add(1)
	go func() {
		defer r.writers.Done()
		defer close(s.done)
		s.run()
	}()
}

// tap is the hub's tap func: it runs on the goroutine delivering frames
// to viewers, so it only queues, and drops (counted) past the bounds.
// It does not allocate.
func (s *stream) tap(f *frames.Frame) {
	if s.skipping.Load() {
		if f.Kind != frames.KindH264Config && f.Kind != frames.KindH264Key && !f.IsOffline() {
			s.drop()
			return
		}
		s.skipping.Store(false)
	}
	n := int64(len(f.Payload))
	if s.qBytes.Load()+n > QueueBytes {
		s.drop()
		return
	}
	select {
	case s.q <- item{f: f, gap: s.gap.Load()}:
		s.qBytes.Add(n)
		s.gap.Store(false)
	default:
		s.drop()
	}
}

// drop counts a frame the queue could not take. An H.264 stream then
// drops every delta up to the next keyframe: they could not be decoded.
func (s *stream) drop() {
	s.dropped.Add(1)
	s.r.stats.dropped[dropQueue].Add(1)
	s.gap.Store(true)
	if s.id.Codec == frames.CodecH264 {
		s.skipping.Store(true)
	}
}

// run taps the stream, recovers what an earlier holder left, then writes
// until stopped.
func (s *stream) run() {
	var t *rooms.Tap
	for t == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		t, err = s.r.hub.Tap(ctx, s.id, s.tap)
		cancel()
		if err != nil {
			s.r.logs.warn(s.r.log, "tap:"+s.id.String(), "failed to tap a stream to record", "stream", s.id.String(), "err", err)
			select {
			case <-s.stop:
				return
			case <-s.kill:
				return
			case <-time.After(time.Second):
			}
		}
	}
	defer s.r.hub.Untap(t)
	s.askKeyframe()
	// What a dead holder left: sealed before this holder writes.
	s.broken = true
	s.recover(true)
	s.listUnsealedDays()
	s.loop()
}

func (s *stream) askKeyframe() {
	if s.id.Codec == frames.CodecH264 {
		s.r.hub.RequestKeyframe(s.id)
	}
}

func (s *stream) loop() {
	tick := time.NewTicker(housekeepEvery)
	defer tick.Stop()
	for {
		select {
		case <-s.kill:
			return
		default:
		}
		select {
		case <-s.kill:
			return
		case it := <-s.q:
			s.frame(it)
		case <-tick.C:
			s.housekeep()
		case <-s.stop:
			s.finish()
			return
		}
	}
}

// ctx is the context of one store call: it ends when the lease may.
func (s *stream) ctx() (context.Context, context.CancelFunc) {
	return context.WithDeadline(context.Background(), s.rm.deadline())
}

// frame records one queued frame.
func (s *stream) frame(it item) {
	f := it.f
	s.qBytes.Add(-int64(len(f.Payload)))
	switch {
	case f.IsOffline(): // the publisher left: the segment ends here
		s.endSegment()
		return
	case !s.rm.writable():
		s.abandon()
		s.countDrop(dropLease)
		return
	case s.r.paused.Load():
		s.endSegment()
		s.countDrop(dropPaused)
		return
	}
	if it.gap && s.id.Codec == frames.CodecH264 {
		// Pictures were dropped before this configuration or keyframe:
		// a new segment starts cleanly here.
		s.endSegment()
	}
	step := s.w.Step(f)
	if s.broken {
		if step != segment.StepSegment || !s.recover(false) {
			s.countDrop(dropStore)
			return
		}
	}
	var err error
	switch step {
	case segment.StepSkip:
		return
	case segment.StepSegment:
		s.endSegment()
		if s.broken {
			return
		}
		err = s.begin(f)
	case segment.StepPart:
		if err = s.flush(); err == nil {
			if err = s.w.Add(f); err == nil {
				s.partSince = time.Now()
			}
		}
	case segment.StepAdd:
		if err = s.w.Add(f); err == nil {
			if n, _ := s.w.Buffered(); n == 1 {
				s.partSince = time.Now()
			}
		}
	}
	if err != nil && !s.broken {
		s.fail(opSegment, err)
	}
	if s.w.Overdue() {
		s.askKeyframe()
	}
}

// begin starts a segment with f.
func (s *stream) begin(f *frames.Frame) error {
	start := f.Captured
	if start.UnixMicro() <= s.lastStart {
		// The publisher's clock went back to an earlier segment's start:
		// a segment of that name exists. Wait for a later frame.
		return nil
	}
	b, err := s.w.Begin(f)
	if err != nil {
		return err
	}
	s.start, s.journal, s.lastStart = start, index.SegmentJournal(s.id, start), start.UnixMicro()
	s.partSince = time.Now()
	if !s.append(b) {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.r.cat.Opened(ctx, s.id, start); err != nil {
		s.fail(opIndex, err)
	}
	return nil
}

// append appends b to the open segment's journal; false if it failed
// (counted, and the stream is broken).
func (s *stream) append(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.r.st.Append(ctx, s.journal, b); err != nil {
		s.fail(opAppend, err)
		return false
	}
	s.r.stats.bytes[s.id.Codec].Add(uint64(len(b)))
	return true
}

// flush ends the current part and appends it.
func (s *stream) flush() error {
	b, err := s.w.Flush()
	if err != nil {
		return err
	}
	s.append(b)
	return nil
}

// endSegment ends, seals and indexes the open segment, if any.
func (s *stream) endSegment() {
	if !s.w.Open() || s.broken {
		return
	}
	b, sum, err := s.w.End()
	if err != nil {
		s.fail(opSegment, err)
		return
	}
	if !s.append(b) {
		return
	}
	ctx, cancel := s.ctx()
	defer cancel()
	sum.Start = s.start // the index knows the segment by its name's start
	if sum.Frames == 0 {
		// Nothing worth keeping: withdraw it (a sealed record of no
		// frames), then drop its journal.
		if err := s.r.cat.Sealed(ctx, s.id, segment.Summary{Start: s.start, End: s.start}); err != nil {
			s.fail(opIndex, err)
			return
		}
		if err := s.r.st.Discard(ctx, s.journal); err != nil {
			s.fail(opSeal, err)
		}
		return
	}
	if err := s.r.st.Seal(ctx, s.journal, index.SegmentObject(s.id, s.start)); err != nil {
		s.fail(opSeal, err)
		return
	}
	if err := s.r.cat.Sealed(ctx, s.id, sum); err != nil {
		s.fail(opIndex, err)
		return
	}
	s.r.stats.segments.Add(1)
}

// fail counts a failed call and leaves the stream broken: the segment
// writer starts afresh, and the next segment waits for Recover to seal
// what the journal holds (its whole parts).
func (s *stream) fail(op storeOp, err error) {
	s.r.storeError(op, err)
	s.abandon()
}

// abandon drops the writer's state without writing: the open journal is
// left for Recover.
func (s *stream) abandon() {
	if !s.broken {
		s.broken = true
		s.w = segment.NewWriter(s.id.Room, s.id.Codec, &s.r.opt.Segment)
		s.askKeyframe()
	}
}

// recover seals what the stream's journals hold (a dead holder's, or this
// one's after a failure), at most once per recoverEvery unless first. It
// reports whether the stream may write again.
func (s *stream) recover(first bool) bool {
	if !s.broken {
		return true
	}
	if !first && time.Since(s.lastRecover) < recoverEvery || !s.rm.writable() {
		return false
	}
	s.lastRecover = time.Now()
	ctx, cancel := s.ctx()
	defer cancel()
	var left []string
	if first {
		// Whether a holder died with a segment open (sealed, or discarded
		// when it held no whole part): a takeover.
		var err error
		if left, err = s.r.st.Journals(ctx, index.RoomSegments(s.id.Room)+s.id.Codec.String()+"/"); err != nil {
			s.r.storeError(opRecover, err)
			return false
		}
	}
	n, err := s.r.cat.Recover(ctx, s.id)
	if err != nil {
		s.r.storeError(opRecover, err)
		if n == 0 {
			return false
		}
	}
	if len(left) > 0 {
		s.r.stats.leases[leaseTakenOver].Add(1)
		s.r.log.Info("took over a recording: sealed what the last holder left open", "stream", s.id.String(),
			"journals", len(left), "sealed", n)
	}
	s.broken = false
	return true
}

// listUnsealedDays finds the stream's day logs of past days that are
// still journals (their recorder died, or the room stopped before the day
// ended), for housekeeping to seal.
func (s *stream) listUnsealedDays() {
	s.day = time.Now().Unix() / 86400
	ctx, cancel := s.ctx()
	defer cancel()
	prefix := index.RoomLogs(s.id.Room) + s.id.Codec.String() + "/"
	names, err := s.r.st.Journals(ctx, prefix)
	if err != nil {
		s.r.storeError(opSealDay, err)
		return
	}
	for _, n := range names {
		if ls, d, ok := index.ParseLogName(n); ok && ls == s.id && !d.IsZero() {
			s.unsealed[d.Unix()/86400] = true
		}
	}
	s.sealDays()
}

// housekeep flushes a part that waited too long, asks for a keyframe when
// the segment is overdue, seals past days' logs, and retries recovery.
func (s *stream) housekeep() {
	if s.broken && s.rm.writable() && !s.r.paused.Load() {
		s.recover(false)
	}
	if s.w.Open() && !s.broken {
		if n, _ := s.w.Buffered(); n > 0 && time.Since(s.partSince) > s.partMax()+partLate {
			if !s.rm.writable() {
				s.abandon()
			} else if err := s.flush(); err != nil {
				s.fail(opSegment, err)
			}
		}
		if s.w.Overdue() {
			s.askKeyframe()
		}
	}
	if d := time.Now().Unix() / 86400; d != s.day {
		s.unsealed[s.day] = true // yesterday, once its last segment is sealed
		s.day = d
	}
	if len(s.unsealed) > 0 && s.rm.writable() {
		s.sealDays()
	}
	if n := s.dropped.Load(); n != s.loggedDrops {
		s.r.logs.warn(s.r.log, "drop:"+s.id.String(), "recording is behind: frames dropped (the store is slower than the stream)",
			"stream", s.id.String(), "dropped_total", n)
		s.loggedDrops = n
	}
}

func (s *stream) partMax() time.Duration {
	if s.r.opt.Segment.PartMax > 0 {
		return s.r.opt.Segment.PartMax
	}
	return segment.DefaultPartMax
}

// sealDays seals the logs of past days listed in s.unsealed; a day with a
// segment still open stays listed.
func (s *stream) sealDays() {
	for d := range s.unsealed {
		if d >= s.day {
			delete(s.unsealed, d)
			continue
		}
		ctx, cancel := s.ctx()
		err := s.r.cat.SealDay(ctx, s.id, time.Unix(d*86400, 0))
		cancel()
		switch {
		case err == nil:
			delete(s.unsealed, d)
		case errors.Is(err, index.ErrRollup): // sealed; readers read the day on its own
			delete(s.unsealed, d)
			s.r.storeError(opRollup, err)
		case errors.Is(err, index.ErrDayOpen):
		default:
			s.r.storeError(opSealDay, err)
		}
	}
}

// finish records what waits in the queue, then ends the open segment.
func (s *stream) finish() {
	for {
		select {
		case it := <-s.q:
			s.frame(it)
			continue
		default:
		}
		break
	}
	if s.rm.writable() {
		s.endSegment()
		s.sealDays()
	}
}

// countDrop counts a frame not recorded for reason.
func (s *stream) countDrop(reason dropReason) {
	s.r.stats.dropped[reason].Add(1)
}
