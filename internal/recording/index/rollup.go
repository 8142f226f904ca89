package index

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// A stream's rollup (RollupObject) says, for a range of days, which of
// them have a sealed log and what that log's summary holds, so that Spans
// reads one object per stream for the sealed days of a month instead of
// one per day. It is a cache of facts the day logs hold, never their only
// copy, and one rule keeps it true: it never speaks for a day whose
// sealed log is being written. SealDay (one writer: the stream's lease
// holder) makes it forget a day it speaks for before writing that day's
// log, then adds the day; Rebuild deletes it before rewriting the logs
// and writes it again after. A rollup that could not be written leaves
// the days it lacks to be read one by one; a damaged one is ignored.
// Retention deleting logs needs nothing: the cutoff hides those days.
//
// A sealed day can still get a late record (into a new journal, until
// SealDay folds it in): readers look for each day's journal (on S3 a Redis
// read), and read the day whole when there is one, as they do without the
// rollup.
//
// Layout, big-endian:
//
//	offset size field
//	0      4    magic "FCRU"
//	4      1    version (1)
//	5      3    0
//	8      8    from: the first day it speaks for (days since 1970-01-01)
//	16     8    through: the last one
//	24     4    n: how many of those days have a sealed log
//	28          n entries in day order: the day (8), its summary's span
//	            count (4; 0xFFFFFFFF when the log has no summary: a
//	            segment in it is open), each span's start and end (Unix
//	            µs, 8 + 8)
//	end-4  4    CRC-32C of all the bytes before
//
// A day it speaks for without an entry had no sealed log.
type rollup struct {
	from, through int64
	logs          map[int64]rolledLog // the days of [from, through] with a sealed log
}

// rolledLog is what a rollup says of one sealed log.
type rolledLog struct {
	spans []span
	open  bool // the log has no summary (a segment in it is open): read the log
}

const (
	rollupMagic   = "FCRU"
	rollupVersion = 1
	rollupHead    = 28
	rollupNoSum   = 0xFFFFFFFF
)

// speaksFor reports whether r says something of day d. A nil r says
// nothing.
func (r *rollup) speaksFor(d int64) bool { return r != nil && r.from <= d && d <= r.through }

// claim returns what r says of day d: the summary of its sealed log, or
// logged false when it had none; ok is false when r does not know.
func (r *rollup) claim(d int64) (spans []span, logged, ok bool) {
	if !r.speaksFor(d) {
		return nil, false, false
	}
	l, logged := r.logs[d]
	if l.open {
		return nil, false, false
	}
	return l.spans, logged, true
}

func encodeRollup(r *rollup) []byte {
	days := slices.Sorted(maps.Keys(r.logs))
	n := rollupHead + 4
	for _, d := range days {
		n += 12 + 16*len(r.logs[d].spans)
	}
	b := make([]byte, 0, n)
	b = append(b, rollupMagic...)
	b = append(b, rollupVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(r.from))
	b = binary.BigEndian.AppendUint64(b, uint64(r.through))
	b = binary.BigEndian.AppendUint32(b, uint32(len(days)))
	for _, d := range days {
		l := r.logs[d]
		b = binary.BigEndian.AppendUint64(b, uint64(d))
		if l.open {
			b = binary.BigEndian.AppendUint32(b, rollupNoSum)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(l.spans)))
		for _, sp := range l.spans {
			b = binary.BigEndian.AppendUint64(b, uint64(sp.start))
			b = binary.BigEndian.AppendUint64(b, uint64(sp.end))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// parseRollup decodes a rollup; false when it does not check (torn,
// damaged, or of another version).
func parseRollup(b []byte) (*rollup, bool) {
	if len(b) < rollupHead+4 {
		return nil, false
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(body):]) ||
		string(body[:4]) != rollupMagic || body[4] != rollupVersion || body[5] != 0 || body[6] != 0 || body[7] != 0 {
		return nil, false
	}
	r := &rollup{
		from:    int64(binary.BigEndian.Uint64(body[8:])),
		through: int64(binary.BigEndian.Uint64(body[16:])),
		logs:    map[int64]rolledLog{},
	}
	n := binary.BigEndian.Uint32(body[24:])
	if r.from > r.through || int64(n) > r.through-r.from+1 {
		return nil, false
	}
	rest := body[rollupHead:]
	last := r.from - 1
	for range n {
		if len(rest) < 12 {
			return nil, false
		}
		d, count := int64(binary.BigEndian.Uint64(rest)), binary.BigEndian.Uint32(rest[8:])
		rest = rest[12:]
		if d <= last || d > r.through {
			return nil, false
		}
		last = d
		if count == rollupNoSum {
			r.logs[d] = rolledLog{open: true}
			continue
		}
		if uint64(count)*16 > uint64(len(rest)) {
			return nil, false
		}
		spans := make([]span, count)
		for i := range spans {
			spans[i] = span{int64(binary.BigEndian.Uint64(rest)), int64(binary.BigEndian.Uint64(rest[8:]))}
			rest = rest[16:]
		}
		r.logs[d] = rolledLog{spans: spans}
	}
	if len(rest) != 0 {
		return nil, false
	}
	return r, true
}

// readRollup reads s's rollup: nil when there is none, or it is damaged
// (logged once).
func (c *Catalog) readRollup(ctx context.Context, s frames.Stream) (*rollup, error) {
	name := RollupObject(s)
	b, err := c.st.Read(ctx, name, 0, -1)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read the rollup of %v: %w", s, err)
	}
	r, ok := parseRollup(b)
	c.mu.Lock()
	warn := !ok && !c.damaged[name]
	if ok {
		delete(c.damaged, name)
	} else {
		c.damaged[name] = true
	}
	c.mu.Unlock()
	if warn {
		c.opt.Logger.Warn("index: the rollup of a stream is damaged; its days are read one by one until the next day's seal rewrites it",
			"object", name, "bytes", len(b))
	}
	return r, nil
}

func (c *Catalog) putRollup(ctx context.Context, s frames.Stream, r *rollup) error {
	if err := c.st.Put(ctx, RollupObject(s), encodeRollup(r)); err != nil {
		return fmt.Errorf("failed to write the rollup of %v: %w", s, err)
	}
	return nil
}

// rollUp adds day d, whose log SealDay just wrote with segs, to s's rollup
// r (as stored; nil when there is none), and writes it. The rollup speaks
// for the days from the cutoff's (at most ScanDays before d) to d or its
// last: when r does not already speak for every one of them before d, the
// stream's logs are listed (store.List; SealDay is housekeeping, not
// playback) and those r does not know are read.
func (c *Catalog) rollUp(ctx context.Context, s frames.Stream, r *rollup, d int64, segs []seg) error {
	cut, err := c.cutoff(ctx, s)
	if err != nil {
		cut = minTime // the cutoff only prunes
	}
	lo := max(d-int64(c.opt.ScanDays), dayOf(cut))
	if d < lo {
		return nil // behind the cutoff: nobody asks
	}
	next := &rollup{from: lo, through: d, logs: map[int64]rolledLog{}}
	if r != nil {
		next.through = max(d, r.through)
	}
	if r != nil && r.from <= lo && r.through >= d-1 {
		for day, l := range r.logs {
			if day >= lo {
				next.logs[day] = l
			}
		}
	} else if err := c.rollLogs(ctx, s, r, next, d); err != nil {
		return err
	}
	spans, summed := summarySpans(segs)
	next.logs[d] = rolledLog{spans: spans, open: !summed}
	return c.putRollup(ctx, s, next)
}

// rollLogs fills next with s's sealed logs of its days but d, from a
// listing: what r says of them when it knows, else what their summaries
// (or whole logs) say.
func (c *Catalog) rollLogs(ctx context.Context, s frames.Stream, r, next *rollup, d int64) error {
	objs, err := c.st.List(ctx, streamPrefix("idx", s))
	if err != nil {
		return fmt.Errorf("failed to list the logs of %v: %w", s, err)
	}
	var read []int64
	for _, o := range objs {
		ls, day, ok := ParseLogName(o.Name)
		if !ok || ls != s || day.IsZero() {
			continue
		}
		dn := dayOf(day.UnixMicro())
		if dn < next.from || dn > next.through || dn == d {
			continue
		}
		if spans, logged, ok := r.claim(dn); ok && logged {
			next.logs[dn] = rolledLog{spans: spans}
			continue
		}
		read = append(read, dn)
	}
	got := make([]rolledLog, len(read))
	found := make([]bool, len(read))
	errs := make([]error, len(read))
	var wg sync.WaitGroup
	sem := make(chan struct{}, spansReads)
	for i, dn := range read {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			got[i], found[i], errs[i] = c.sealedLog(ctx, s, dn)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, dn := range read {
		if found[i] {
			next.logs[dn] = got[i]
		}
	}
	return nil
}

// sealedLog reads what s's sealed log of day d says for a rollup: its
// summary, or its spans from its records when the first kilobytes hold no
// summary. found is false when it has gone.
func (c *Catalog) sealedLog(ctx context.Context, s frames.Stream, d int64) (l rolledLog, found bool, err error) {
	name := DayLog(s, dayTime(d))
	b, err := c.st.Read(ctx, name, 0, summaryBytes)
	if err == nil {
		if spans, ok := summaryOf(b); ok {
			return rolledLog{spans: spans}, true, nil
		}
		if len(b) == summaryBytes {
			b, err = c.st.Read(ctx, name, 0, -1)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return l, false, nil
	}
	if err != nil {
		return l, false, c.logError(s, d, err)
	}
	segs, _ := parseLog(nil, b)
	spans, summed := summarySpans(settle(segs))
	return rolledLog{spans: spans, open: !summed}, true, nil
}

// rollupHelps reports whether Spans should read s's rollup for days lo
// to hi: whether one of them that the rollup may answer (before
// yesterday, and not behind the cutoff last seen) is not in memory.
func (c *Catalog) rollupHelps(s frames.Stream, lo, hi int64) bool {
	hi = min(hi, dayOf(c.nowµs())-2)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cut, ok := c.cuts[s]; ok {
		lo = max(lo, dayOf(cut))
	}
	for d := lo; d <= hi; d++ {
		e, ok := c.cache[DayLog(s, dayTime(d))]
		if !ok {
			return true
		}
		if dl := e.Value.(*dayLog); !dl.expires.IsZero() && now.After(dl.expires) {
			return true
		}
	}
	return false
}

// sawCutoff remembers s's cutoff for rollupHelps. Cutoffs only rise, so
// the days before one stay hidden; a cutoff taken away (a store restored)
// costs only reads.
func (c *Catalog) sawCutoff(s frames.Stream, cut int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.cuts[s]; !ok || cut > old {
		c.cuts[s] = cut
	}
}

// rolledSpans returns s's spans on day d (sealed, before yesterday) as
// its rollup has them (logged false: the day had no log), unless the day
// has a journal again (a late record): then its log is read whole, as
// daySpans does. What it returns is cached as daySpans would cache it.
func (c *Catalog) rolledSpans(ctx context.Context, s frames.Stream, d int64, spans []span, logged bool) ([]span, error) {
	name := DayLog(s, dayTime(d))
	_, err := c.st.ReadJournal(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		dl := &dayLog{name: name, spans: spans}
		if !logged { // as dayWith keeps a day with no log
			dl.full, dl.expires = true, time.Now().Add(missingTTL)
		}
		c.keep(dl)
		return spans, nil
	}
	if err != nil {
		return nil, c.logError(s, d, err)
	}
	dl, err := c.day(ctx, s, d)
	if err != nil {
		return nil, err
	}
	return dl.spans, nil
}
