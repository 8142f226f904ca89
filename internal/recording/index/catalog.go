package index

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// spansReads is how many day logs Spans reads at once: on object storage
// a read costs a round trip (measured with 10 ms round trips: a cold month
// takes 166 ms p50 at 8, see docs/recording.md "S3").
const spansReads = 16

// SpanGap is the longest pause that does not split a span: recorded
// ranges less than SpanGap apart (a recorder taking over a room, which
// takes up to 2 s; a publisher's hiccup) are one span of the timeline.
const SpanGap = 2 * time.Second

// Errors of the catalog. The returned errors wrap them with detail.
var (
	// ErrNoFootage: no recorded segment holds the time asked, nor any
	// after it.
	ErrNoFootage = errors.New("index: no footage")
	// ErrDayOpen: SealDay of a day that is not over, or that still has a
	// segment being written.
	ErrDayOpen = errors.New("index: the day's log is still being written")
	// ErrBadStream: the stream cannot be recorded (not a valid room's
	// layer 0).
	ErrBadStream = errors.New("index: not a recordable stream")
	// ErrBadCutoff: the cutoff object does not check.
	ErrBadCutoff = errors.New("index: damaged cutoff")
	// ErrRollup: SealDay sealed the day but could not add it to the
	// stream's rollup (RollupObject), so readers read that day on its own.
	// The seal is done: there is nothing to retry.
	ErrRollup = errors.New("index: the day is sealed, but not in the rollup")
)

// Defaults of Options.
const (
	DefaultCacheBytes = 64 << 20
	DefaultOpenGrace  = time.Minute
	DefaultScanDays   = 400
)

// Options tune a Catalog. The zero value (or nil) means the defaults.
type Options struct {
	// CacheBytes bounds the memory kept for sealed day logs (about 48
	// bytes per segment: 30 days of one room's two streams in 10 s
	// segments take 25 MB). Default 64 MiB. The least recently used day
	// goes first.
	CacheBytes int64
	// OpenGrace is how far past its start an open segment (whose end no
	// record says yet) is taken to reach, at most: the recorder's segment
	// target and some. Until then it reaches to now. Default 1 minute: a
	// recorder that died without anyone recovering its segment makes a
	// minute of timeline, not an endless one.
	OpenGrace time.Duration
	// ScanDays is how many days Find and Next look ahead for the next
	// footage. Default 400.
	ScanDays int
	// Now is the clock (tests set it). Default time.Now.
	Now func() time.Time
	// Logger receives the catalog's warnings (a damaged rollup). Default
	// slog.Default().
	Logger *slog.Logger
}

// Catalog answers where a room's footage is, from the day logs in a
// store, and from each stream's rollup of its sealed days (see rollup.go).
// It keeps sealed day logs (immutable) in memory, least recently used
// first out; open ones are read again on every call. A Catalog is safe for
// concurrent use; its writers (Opened, Sealed, SealDay, SetCutoff,
// Recover) assume the caller holds the stream's recording lease, as the
// store's journals do.
type Catalog struct {
	st  store.Store
	opt Options

	mu      sync.Mutex               // guards the fields below
	cache   map[string]*list.Element // sealed day logs by name; values *dayLog
	lru     list.List                // most recently used first
	bytes   int64                    // memory of the cached logs
	cuts    map[frames.Stream]int64  // the cutoffs Spans last saw (rollupHelps)
	damaged map[string]bool          // rollups found damaged, already logged
}

// New returns a catalog of the footage in st.
func New(st store.Store, o *Options) *Catalog {
	var opt Options
	if o != nil {
		opt = *o
	}
	if opt.CacheBytes <= 0 {
		opt.CacheBytes = DefaultCacheBytes
	}
	if opt.OpenGrace <= 0 {
		opt.OpenGrace = DefaultOpenGrace
	}
	if opt.ScanDays <= 0 {
		opt.ScanDays = DefaultScanDays
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Catalog{st: st, opt: opt, cache: map[string]*list.Element{}, cuts: map[frames.Stream]int64{}, damaged: map[string]bool{}}
}

// Segment is one recorded segment of a stream.
type Segment struct {
	Stream frames.Stream
	// Start is its first frame's capture time. End is when its last frame
	// ends; for an open segment, an estimate (now, at most OpenGrace past
	// Start).
	Start, End time.Time
	// Open reports a segment still being written (or whose recorder died
	// before sealing it): read Journal. Should the journal be gone (it was
	// sealed and the catalog has not heard yet), read Object.
	Open bool
	// Object is where the sealed segment is (or will be).
	Object string
	// Journal is the open segment's journal ("" once sealed).
	Journal string
	// Bytes, Frames, FirstSeq and LastSeq are the sealed segment's
	// (segment.Summary); zero while open.
	Bytes             int64
	Frames            int
	FirstSeq, LastSeq uint64
}

// Span is a range of a room's recorded time: consecutive segments of any
// of its streams less than SpanGap apart.
type Span struct {
	Start  time.Time      `json:"start"`
	End    time.Time      `json:"end"`
	Codecs []frames.Codec `json:"codecs"` // the streams recorded in it, in Codecs' order
}

// dayLog is a day log as read: its spans ignoring any cutoff, and
// (when full) its segments, sorted by start, one per start.
type dayLog struct {
	name  string
	spans []span
	segs  []seg
	full  bool // segs was read; else only the summary was
	// expires, when set, is when a cached log of a day that had none
	// stops being trusted (see missingTTL).
	expires time.Time
}

func (dl *dayLog) size() int64 { return int64(len(dl.segs))*segSize + int64(len(dl.spans))*16 + 128 }

const dayµs = int64(24 * time.Hour / time.Microsecond)

// dayOf returns the day number (days since 1970-01-01 UTC) of t (Unix µs).
func dayOf(t int64) int64 {
	d := t / dayµs
	if t%dayµs < 0 {
		d--
	}
	return d
}

func dayTime(d int64) time.Time { return time.UnixMicro(d * dayµs).UTC() }

func (c *Catalog) nowµs() int64 { return c.opt.Now().UnixMicro() }

// openEnd is how far an open segment is taken to reach.
func (c *Catalog) openEnd(s seg, now int64) int64 {
	return max(s.start, min(now, s.start+c.opt.OpenGrace.Microseconds()))
}

// end is where s ends, or is taken to.
func (c *Catalog) end(s seg, now int64) int64 {
	if s.open {
		return c.openEnd(s, now)
	}
	return s.end
}

// spansOf is the spans of segs, open ones taken to reach openEnd.
func (c *Catalog) spansOf(segs []seg, now int64) []span {
	return spansOf(segs, func(s seg) int64 { return c.end(s, now) })
}

// cacheable reports whether a sealed log of day d may be kept: days
// before yesterday, which no late record is expected to reach (a
// segment sealed after midnight, Rebuild writing today's log).
func (c *Catalog) cacheable(d int64) bool { return d < dayOf(c.nowµs())-1 }

func (c *Catalog) cached(name string) *dayLog {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cache[name]; ok {
		dl := e.Value.(*dayLog)
		if !dl.expires.IsZero() && time.Now().After(dl.expires) {
			c.lru.Remove(e)
			delete(c.cache, name)
			c.bytes -= dl.size()
			return nil
		}
		c.lru.MoveToFront(e)
		return dl
	}
	return nil
}

// missingTTL is how long a past day with no log (before a room was first
// recorded, or a day it was not) is remembered as empty: listing a month
// of a room recorded for a week does not ask the store for the other
// three weeks on every call. A log that appears for such a day later
// (gateway recordings rebuild) shows within missingTTL.
const missingTTL = 5 * time.Minute

func (c *Catalog) logError(s frames.Stream, d int64, err error) error {
	return fmt.Errorf("failed to read the log of %v on %s: %w", s, dayTime(d).Format(time.DateOnly), err)
}

// summaryBytes is how much of a sealed log Spans reads for its summary.
const summaryBytes = 64 * RecordSize

// daySpans returns the spans of stream s on day d. For a sealed day with
// a summary, that is the first kilobytes of its log; else the whole log.
// A log that the first read got whole (small, or missing: today's, a day
// with no footage) is not read again.
func (c *Catalog) daySpans(ctx context.Context, s frames.Stream, d int64) ([]span, error) {
	name := DayLog(s, dayTime(d))
	if dl := c.cached(name); dl != nil {
		return dl.spans, nil
	}
	head, err := c.st.Read(ctx, name, 0, summaryBytes)
	missing := errors.Is(err, store.ErrNotFound)
	if err != nil && !missing {
		return nil, c.logError(s, d, err)
	}
	if spans, ok := summaryOf(head); ok {
		_, err := c.st.ReadJournal(ctx, name)
		if errors.Is(err, store.ErrNotFound) { // sealed, with no late records
			if c.cacheable(d) {
				c.keep(&dayLog{name: name, spans: spans})
			}
			return spans, nil
		}
		if err != nil {
			return nil, c.logError(s, d, err)
		}
	}
	var dl *dayLog
	if missing || len(head) < summaryBytes {
		dl, err = c.dayWith(ctx, s, d, head, !missing)
	} else {
		dl, err = c.day(ctx, s, d)
	}
	if err != nil {
		return nil, err
	}
	return dl.spans, nil
}

// day returns stream s's whole log of day d: the records of its object and
// of its journal together (a late record after the day was sealed lands
// in a new journal until SealDay folds it in).
func (c *Catalog) day(ctx context.Context, s frames.Stream, d int64) (*dayLog, error) {
	name := DayLog(s, dayTime(d))
	if dl := c.cached(name); dl != nil && dl.full {
		return dl, nil
	}
	obj, err := c.st.Read(ctx, name, 0, -1)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, c.logError(s, d, err)
	}
	return c.dayWith(ctx, s, d, obj, err == nil)
}

// dayWith is day with the log's object already read (obj, or hasObj
// false when there is none).
func (c *Catalog) dayWith(ctx context.Context, s frames.Stream, d int64, obj []byte, hasObj bool) (*dayLog, error) {
	name := DayLog(s, dayTime(d))
	jr, err := c.st.ReadJournal(ctx, name)
	hasJournal := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, c.logError(s, d, err)
	}
	segs, _ := parseLog(make([]seg, 0, (len(obj)+len(jr))/RecordSize), obj)
	segs, _ = parseLog(segs, jr)
	dl := &dayLog{name: name, segs: settle(segs), full: true}
	dl.spans = c.spansOf(dl.segs, c.nowµs())
	switch {
	case !c.cacheable(d):
	case hasObj && !hasJournal:
		c.keep(dl)
	case !hasObj && !hasJournal:
		dl.expires = time.Now().Add(missingTTL)
		c.keep(dl)
	}
	return dl, nil
}

// keep caches a sealed day log, evicting the least recently used ones
// over the budget.
func (c *Catalog) keep(dl *dayLog) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cache[dl.name]; ok {
		old := e.Value.(*dayLog)
		if old.full || !dl.full {
			return
		}
		c.lru.Remove(e) // a summary, replaced by the whole log
		c.bytes -= old.size()
	}
	c.cache[dl.name] = c.lru.PushFront(dl)
	c.bytes += dl.size()
	for c.bytes > c.opt.CacheBytes && c.lru.Len() > 1 {
		e := c.lru.Back()
		old := e.Value.(*dayLog)
		c.lru.Remove(e)
		delete(c.cache, old.name)
		c.bytes -= old.size()
	}
}

// forget drops a day log from the cache (it changed).
func (c *Catalog) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.cache[name]; ok {
		c.lru.Remove(e)
		delete(c.cache, name)
		c.bytes -= e.Value.(*dayLog).size()
	}
}

func badStream(s frames.Stream) error {
	if err := checkStream(s); err != nil {
		return fmt.Errorf("%w: %v", ErrBadStream, err)
	}
	return nil
}

// Opened records that s's segment beginning at start is being written (its
// journal is SegmentJournal(s, start)), so that readers find it without
// listing the store.
func (c *Catalog) Opened(ctx context.Context, s frames.Stream, start time.Time) error {
	if err := badStream(s); err != nil {
		return err
	}
	return c.append(ctx, s, seg{start: start.UnixMicro(), open: true})
}

// Sealed records that s's segment sum describes is sealed (its object is
// SegmentObject(s, sum.Start)).
func (c *Catalog) Sealed(ctx context.Context, s frames.Stream, sum segment.Summary) error {
	if err := badStream(s); err != nil {
		return err
	}
	return c.append(ctx, s, seg{start: sum.Start.UnixMicro(), end: sum.End.UnixMicro(), bytes: sum.Bytes,
		frames: uint32(sum.Frames), firstSeq: sum.FirstSeq, lastSeq: sum.LastSeq})
}

func (c *Catalog) append(ctx context.Context, s frames.Stream, r seg) error {
	name := DayLog(s, time.UnixMicro(r.start))
	if err := c.st.Append(ctx, name, appendRecord(nil, r)); err != nil {
		return fmt.Errorf("failed to record segment %d of %v: %w", r.start, s, err)
	}
	c.forget(name) // a late record for a sealed day
	return nil
}

// SealDay turns s's log of day (a UTC date before today) from a journal
// into an object, keeping one record per segment, and adds the day to the
// stream's rollup (see rollup.go). It is ErrDayOpen when the day is not
// over, or a segment of it is still being written (its journal exists):
// call it again once that segment is sealed. A day already sealed is left
// as it is. When only the rollup could not be written, the day is sealed
// and the error wraps ErrRollup.
func (c *Catalog) SealDay(ctx context.Context, s frames.Stream, day time.Time) error {
	if err := badStream(s); err != nil {
		return err
	}
	d := dayOf(day.UnixMicro())
	if d >= dayOf(c.nowµs()) {
		return fmt.Errorf("%w: %v on %s is not over", ErrDayOpen, s, dayTime(d).Format(time.DateOnly))
	}
	name := DayLog(s, dayTime(d))
	jr, err := c.st.ReadJournal(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to seal %q: %w", name, err)
	}
	obj, err := c.st.Read(ctx, name, 0, -1)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("failed to seal %q: %w", name, err)
	}
	segs, _ := parseLog(nil, obj)
	segs, _ = parseLog(segs, jr)
	segs = settle(segs)
	for _, sg := range segs {
		if !sg.open {
			continue
		}
		j := SegmentJournal(s, time.UnixMicro(sg.start))
		if _, err := c.st.ReadJournal(ctx, j); err == nil {
			return fmt.Errorf("%w: segment %q of %s is still open", ErrDayOpen, j, dayTime(d).Format(time.DateOnly))
		} else if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("failed to seal %q: %w", name, err)
		}
	}
	// The rollup must not speak for the day while its log changes: it
	// forgets the day first (one that cannot be read goes), or the seal
	// waits.
	r, err := c.readRollup(ctx, s)
	if err != nil {
		if derr := c.st.Delete(ctx, RollupObject(s)); derr != nil {
			return fmt.Errorf("failed to seal %q: %w", name, errors.Join(err, derr))
		}
	}
	if r.speaksFor(d) && !r.logs[d].open {
		r.logs[d] = rolledLog{open: true}
		if err := c.putRollup(ctx, s, r); err != nil {
			return fmt.Errorf("failed to seal %q: %w", name, err)
		}
	}
	if err := c.st.Put(ctx, name, encodeLog(segs)); err != nil {
		return fmt.Errorf("failed to seal %q: %w", name, err)
	}
	// Between the Put and the Discard, readers see the same records twice;
	// they keep one per segment.
	if err := c.st.Discard(ctx, name); err != nil {
		return fmt.Errorf("failed to seal %q: %w", name, err)
	}
	c.forget(name)
	if err := c.rollUp(ctx, s, r, d, segs); err != nil {
		return fmt.Errorf("%w: %v on %s: %w", ErrRollup, s, dayTime(d).Format(time.DateOnly), err)
	}
	return nil
}

// SetCutoff hides s's footage that began before t, for retention to
// delete: it raises the cutoff to t (it never lowers it).
func (c *Catalog) SetCutoff(ctx context.Context, s frames.Stream, t time.Time) error {
	if err := badStream(s); err != nil {
		return err
	}
	cur, err := c.Cutoff(ctx, s)
	if err != nil && !errors.Is(err, ErrBadCutoff) {
		return err
	}
	if !t.After(cur) {
		return nil
	}
	if err := c.st.Put(ctx, CutoffObject(s), appendCutoff(nil, t.UnixMicro())); err != nil {
		return fmt.Errorf("failed to set the cutoff of %v: %w", s, err)
	}
	return nil
}

// Cutoff returns s's retention cutoff: footage that began before it is
// hidden. The zero time when none is set.
func (c *Catalog) Cutoff(ctx context.Context, s frames.Stream) (time.Time, error) {
	t, err := c.cutoff(ctx, s)
	if err != nil || t == minTime {
		return time.Time{}, err
	}
	return time.UnixMicro(t).UTC(), nil
}

const minTime = -1 << 63

func (c *Catalog) cutoff(ctx context.Context, s frames.Stream) (int64, error) {
	b, err := c.st.Read(ctx, CutoffObject(s), 0, -1)
	if errors.Is(err, store.ErrNotFound) {
		return minTime, nil
	}
	if err != nil {
		return minTime, fmt.Errorf("failed to read the cutoff of %v: %w", s, err)
	}
	t, ok := parseCutoff(b)
	if !ok {
		return minTime, fmt.Errorf("%w of %v (%d bytes)", ErrBadCutoff, s, len(b))
	}
	return t, nil
}

// The cutoff object: the time (Unix µs, 8 bytes), then its CRC-32C.
func appendCutoff(dst []byte, t int64) []byte {
	at := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, uint64(t))
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[at:], castagnoli))
}

func parseCutoff(b []byte) (int64, bool) {
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

// Spans returns room's recorded spans that meet [from, to], clipped to
// it, in time order: the segments of all its recorded streams, merged
// where they are less than SpanGap apart. It reads each stream's cutoff
// and rollup, then the logs of the days the rollup does not answer
// (yesterday, today), never a segment, caching what is sealed; it looks
// at most ScanDays back from to.
func (c *Catalog) Spans(ctx context.Context, room string, from, to time.Time) ([]Span, error) {
	if !frames.ValidRoom(room) {
		return nil, fmt.Errorf("%w: room %q", ErrBadStream, room)
	}
	if to.Before(from) {
		return nil, fmt.Errorf("index: spans from %v to %v: the end is before the start", from, to)
	}
	type interval struct {
		start, end int64
		codecs     uint8 // bit i: Codecs[i]
	}
	f, t, now := from.UnixMicro(), to.UnixMicro(), c.nowµs()
	f = max(f, t-int64(c.opt.ScanDays)*dayµs) // a bound on the days read
	// The days' logs (or, for the days the rollups answer, their
	// journals) are read concurrently, at most spansReads at once: on
	// object storage each is a round trip.
	type job struct {
		codec   int
		d       int64
		lo, cut int64
		spans   []span
		err     error
	}
	// Each stream's cutoff and rollup in one round. A rollup that cannot
	// be read is done without: its days are read one by one.
	cuts := make([]int64, len(Codecs))
	cutErrs := make([]error, len(Codecs))
	rolls := make([]*rollup, len(Codecs))
	var wg sync.WaitGroup
	for ci, codec := range Codecs {
		s := frames.Stream{Room: room, Codec: codec}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cuts[ci], cutErrs[ci] = c.cutoff(ctx, s)
		}()
		if c.rollupHelps(s, dayOf(f)-1, dayOf(t)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rolls[ci], _ = c.readRollup(ctx, s)
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(cutErrs...); err != nil {
		return nil, err
	}
	for ci, codec := range Codecs {
		c.sawCutoff(frames.Stream{Room: room, Codec: codec}, cuts[ci])
	}
	var jobs []*job
	for ci := range Codecs {
		cut := cuts[ci]
		lo := max(f, cut)
		// From the day before: a segment that began before midnight.
		for d := dayOf(lo) - 1; d <= dayOf(t); d++ {
			jobs = append(jobs, &job{codec: ci, d: d, lo: lo, cut: cut})
		}
	}
	sem := make(chan struct{}, spansReads)
	for _, j := range jobs {
		s := frames.Stream{Room: room, Codec: Codecs[j.codec]}
		if dl := c.cached(DayLog(s, dayTime(j.d))); dl != nil && j.cut <= j.d*dayµs {
			j.spans = dl.spans // no goroutine for what is in memory
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if j.cut > j.d*dayµs {
				dl, err := c.day(ctx, s, j.d)
				if err != nil {
					j.err = err
					return
				}
				j.spans = c.spansOf(visible(dl.segs, j.cut), now)
				return
			}
			if spans, logged, ok := rolls[j.codec].claim(j.d); ok && c.cacheable(j.d) {
				j.spans, j.err = c.rolledSpans(ctx, s, j.d, spans, logged)
				return
			}
			j.spans, j.err = c.daySpans(ctx, s, j.d)
		}()
	}
	wg.Wait()
	var ivs []interval
	for _, j := range jobs {
		if j.err != nil {
			return nil, j.err
		}
		for _, sp := range j.spans {
			if sp.end < j.lo || sp.start > t {
				continue
			}
			ivs = append(ivs, interval{max(sp.start, j.lo), min(sp.end, t), 1 << j.codec})
		}
	}
	slices.SortFunc(ivs, func(a, b interval) int { return compareInt(a.start, b.start) })
	var out []Span
	var cur interval
	emit := func() {
		sp := Span{Start: time.UnixMicro(cur.start).UTC(), End: time.UnixMicro(cur.end).UTC()}
		for i, codec := range Codecs {
			if cur.codecs&(1<<i) != 0 {
				sp.Codecs = append(sp.Codecs, codec)
			}
		}
		out = append(out, sp)
	}
	for i, iv := range ivs {
		if i > 0 && iv.start-cur.end <= SpanGap.Microseconds() {
			cur.end = max(cur.end, iv.end)
			cur.codecs |= iv.codecs
			continue
		}
		if i > 0 {
			emit()
		}
		cur = iv
	}
	if len(ivs) > 0 {
		emit()
	}
	return out, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// visible returns the segments at or after the cutoff.
func visible(segs []seg, cut int64) []seg {
	i := sort.Search(len(segs), func(i int) bool { return segs[i].start >= cut })
	return segs[i:]
}

func (c *Catalog) segment(s frames.Stream, sg seg, now int64) Segment {
	start := time.UnixMicro(sg.start).UTC()
	out := Segment{Stream: s, Start: start, End: time.UnixMicro(c.end(sg, now)).UTC(), Open: sg.open,
		Object: SegmentObject(s, start), Bytes: sg.bytes, Frames: int(sg.frames), FirstSeq: sg.firstSeq, LastSeq: sg.lastSeq}
	if sg.open {
		out.Journal = SegmentJournal(s, start)
	}
	return out
}

// Find returns s's segment that holds t, or else the first one after t
// (looking ScanDays ahead). Footage before the cutoff is not found; a t
// before it finds the first segment after it. ErrNoFootage when there is
// none.
func (c *Catalog) Find(ctx context.Context, s frames.Stream, t time.Time) (Segment, error) {
	if err := badStream(s); err != nil {
		return Segment{}, err
	}
	cut, err := c.cutoff(ctx, s)
	if err != nil {
		return Segment{}, err
	}
	at, now := max(t.UnixMicro(), cut), c.nowµs()
	d := dayOf(at)
	// A segment that began the day before may hold t.
	prev, err := c.day(ctx, s, d-1)
	if err != nil {
		return Segment{}, err
	}
	if segs := visible(prev.segs, cut); len(segs) > 0 {
		if last := segs[len(segs)-1]; c.end(last, now) > at {
			return c.segment(s, last, now), nil
		}
	}
	dl, err := c.day(ctx, s, d)
	if err != nil {
		return Segment{}, err
	}
	segs := visible(dl.segs, cut)
	i := sort.Search(len(segs), func(i int) bool { return segs[i].start > at })
	if i > 0 && c.end(segs[i-1], now) > at {
		return c.segment(s, segs[i-1], now), nil
	}
	if i < len(segs) {
		return c.segment(s, segs[i], now), nil
	}
	return c.firstAfter(ctx, s, d, cut, now, t)
}

// firstAfter returns the first visible segment of the days after d.
func (c *Catalog) firstAfter(ctx context.Context, s frames.Stream, d, cut, now int64, t time.Time) (Segment, error) {
	last := min(d+int64(c.opt.ScanDays), dayOf(now)+1)
	for d++; d <= last; d++ {
		dl, err := c.day(ctx, s, d)
		if err != nil {
			return Segment{}, err
		}
		if segs := visible(dl.segs, cut); len(segs) > 0 {
			return c.segment(s, segs[0], now), nil
		}
	}
	return Segment{}, fmt.Errorf("%w for %v at or after %s", ErrNoFootage, s, t.UTC().Format(time.RFC3339Nano))
}

// Next returns the segment of seg's stream that follows seg, or
// ErrNoFootage (the stream is live, or stopped).
func (c *Catalog) Next(ctx context.Context, seg Segment) (Segment, error) {
	s := seg.Stream
	if err := badStream(s); err != nil {
		return Segment{}, err
	}
	cut, err := c.cutoff(ctx, s)
	if err != nil {
		return Segment{}, err
	}
	at, now := seg.Start.UnixMicro(), c.nowµs()
	d := dayOf(at)
	dl, err := c.day(ctx, s, d)
	if err != nil {
		return Segment{}, err
	}
	segs := visible(dl.segs, cut)
	if i := sort.Search(len(segs), func(i int) bool { return segs[i].start > at }); i < len(segs) {
		return c.segment(s, segs[i], now), nil
	}
	return c.firstAfter(ctx, s, d, cut, now, seg.Start)
}

// Day returns s's segments that began on day (its UTC date), in time
// order, except those before the cutoff: for retention and tools.
func (c *Catalog) Day(ctx context.Context, s frames.Stream, day time.Time) ([]Segment, error) {
	if err := badStream(s); err != nil {
		return nil, err
	}
	cut, err := c.cutoff(ctx, s)
	if err != nil {
		return nil, err
	}
	dl, err := c.day(ctx, s, dayOf(day.UnixMicro()))
	if err != nil {
		return nil, err
	}
	now := c.nowµs()
	var out []Segment
	for _, sg := range visible(dl.segs, cut) {
		out = append(out, c.segment(s, sg, now))
	}
	return out, nil
}
