package index

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// Recover seals what a dead recorder of s left behind, for the recorder
// that takes the stream over, before it begins its own segment. Each of
// the stream's segment journals is cut after its last whole part
// (segment.Repair), written as its object and recorded as sealed; a
// journal with no frames is discarded. An open record whose journal is
// gone but whose object exists (the recorder died between sealing and
// recording it) gets its sealed record. It returns how many segments it
// sealed; problems with single segments are joined in the error, after
// the others were handled.
//
// It lists the stream's journals (store.Journals): never call it on the
// path of playback.
func (c *Catalog) Recover(ctx context.Context, s frames.Stream) (int, error) {
	if err := badStream(s); err != nil {
		return 0, err
	}
	journals, err := c.st.Journals(ctx, streamPrefix("seg", s))
	if err != nil {
		return 0, fmt.Errorf("failed to recover %v: %w", s, err)
	}
	var errs []error
	n := 0
	for _, j := range journals {
		js, start, isJournal, err := parseSegmentName(j)
		if err != nil || !isJournal || js != s {
			continue
		}
		sealed, err := c.recoverJournal(ctx, s, j, start)
		if err != nil {
			errs = append(errs, err)
		}
		if sealed {
			n++
		}
	}
	// Open records of the last two days whose journal has gone.
	today := dayOf(c.nowµs())
	for d := today - 1; d <= today; d++ {
		dl, err := c.day(ctx, s, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, sg := range dl.segs {
			if !sg.open {
				continue
			}
			start := time.UnixMicro(sg.start)
			if _, err := c.st.ReadJournal(ctx, SegmentJournal(s, start)); !errors.Is(err, store.ErrNotFound) {
				continue // still there: a journal Recover could not read, or one being written
			}
			sum, err := c.summarize(ctx, SegmentObject(s, start), -1)
			if errors.Is(err, store.ErrNotFound) {
				continue // nothing was ever sealed: the open record stays, harmless
			}
			if err == nil {
				err = c.Sealed(ctx, s, sum)
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			n++
		}
	}
	return n, errors.Join(errs...)
}

// recoverJournal seals one journal of a dead recorder.
func (c *Catalog) recoverJournal(ctx context.Context, s frames.Stream, j string, start int64) (bool, error) {
	data, err := c.st.ReadJournal(ctx, j)
	if err != nil {
		return false, fmt.Errorf("failed to recover %q: %w", j, err)
	}
	fixed, info, rerr := segment.Repair(data)
	if info == nil || info.Frames == 0 {
		// Nothing to keep: withdraw its open record, then the journal.
		if err := c.append(ctx, s, seg{start: start, end: start}); err != nil {
			return false, err
		}
		if err := c.st.Discard(ctx, j); err != nil {
			return false, fmt.Errorf("failed to discard %q: %w", j, err)
		}
		return false, nil
	}
	// The index knows the segment by the start in its name (Opened's).
	info.Start = time.UnixMicro(start)
	obj := SegmentObject(s, info.Start)
	if err := c.st.Put(ctx, obj, fixed); err != nil {
		return false, fmt.Errorf("failed to recover %q into %q: %w", j, obj, err)
	}
	if err := c.Sealed(ctx, s, info.Summary); err != nil {
		return false, err
	}
	if err := c.st.Discard(ctx, j); err != nil {
		return true, fmt.Errorf("failed to discard %q after recovering it: %w", j, err)
	}
	if rerr != nil {
		return true, fmt.Errorf("recovered %q up to its damage: %w", j, rerr)
	}
	return true, nil
}

// summarize reads a sealed segment's summary from its index box (its last
// bytes); size is the object's size, or -1 when unknown. A segment
// without a good index box is read whole.
func (c *Catalog) summarize(ctx context.Context, obj string, size int64) (segment.Summary, error) {
	return summarize(ctx, c.st, obj, size)
}

func summarize(ctx context.Context, st store.Store, obj string, size int64) (segment.Summary, error) {
	if size > 0 {
		tail := int64(1024)
		for {
			off := max(size-tail, 0)
			b, err := st.Read(ctx, obj, off, -1)
			if err != nil {
				return segment.Summary{}, err
			}
			idx, err := segment.ReadIndex(b)
			if err == nil {
				return idx.Summary(size), nil
			}
			var short *segment.ShortTailError
			if !errors.As(err, &short) || off == 0 || int64(short.Need) <= tail {
				break
			}
			tail = int64(short.Need)
		}
	}
	data, err := st.Read(ctx, obj, 0, -1)
	if err != nil {
		return segment.Summary{}, err
	}
	_, info, err := segment.Read(data)
	if info == nil {
		return segment.Summary{}, fmt.Errorf("failed to read segment %q: %w", obj, err)
	}
	return info.Summary, err
}

// RebuildStats says what Rebuild found.
type RebuildStats struct {
	Segments int // sealed segments recorded
	Open     int // journals recorded as open segments
	Skipped  int // objects that are no segment, or unreadable
	Days     int // day logs written
	Removed  int // day logs of days with no segment left, removed
}

// Rebuild regenerates room's day logs from its segment objects and
// journals alone, for when the logs were lost or damaged: it lists the
// room's segments (store.List, store.Journals), summarizes each sealed
// one from its index box (its last bytes; a segment without one is read
// whole), and writes every day's log as an object, replacing the old one.
// Day logs of days with no segment left are removed; the cutoffs stay.
// Each stream's rollup (RollupObject) is deleted first and written again
// from the new logs.
//
// Rebuild is a maintenance command's work: it lists the store. It may run
// while a recorder records the room: records that recorder appends keep
// landing in today's journal, which readers merge with the object. A
// recorder sealing a day at the same moment (after midnight) may write
// back the rollup as it was before: run Rebuild again then. Other
// processes' catalogs keep the sealed day logs they cached until they
// restart.
func Rebuild(ctx context.Context, st store.Store, room string) (RebuildStats, error) {
	var stats RebuildStats
	if !frames.ValidRoom(room) {
		return stats, fmt.Errorf("%w: room %q", ErrBadStream, room)
	}
	objs, err := st.List(ctx, RoomSegments(room))
	if err != nil {
		return stats, fmt.Errorf("failed to rebuild %q: %w", room, err)
	}
	journals, err := st.Journals(ctx, RoomSegments(room))
	if err != nil {
		return stats, fmt.Errorf("failed to rebuild %q: %w", room, err)
	}
	// No rollup may speak for the logs while they are rewritten.
	rollups := map[string]frames.Stream{}
	for _, codec := range Codecs {
		s := frames.Stream{Room: room, Codec: codec}
		rollups[RollupObject(s)] = s
	}
	if err := st.Delete(ctx, slices.Collect(maps.Keys(rollups))...); err != nil {
		return stats, fmt.Errorf("failed to rebuild %q: %w", room, err)
	}
	logs := map[string][]seg{} // by day log name
	var errs []error
	for _, o := range objs {
		s, start, _, err := parseSegmentName(o.Name)
		if err != nil || s.Room != room {
			stats.Skipped++
			continue
		}
		sum, err := summarize(ctx, st, o.Name, o.Size)
		if err != nil {
			errs = append(errs, fmt.Errorf("segment %q: %w", o.Name, err))
			if sum.Frames == 0 {
				stats.Skipped++
				continue
			}
		}
		name := DayLog(s, time.UnixMicro(start))
		logs[name] = append(logs[name], seg{start: start, end: sum.End.UnixMicro(), bytes: sum.Bytes,
			frames: uint32(sum.Frames), firstSeq: sum.FirstSeq, lastSeq: sum.LastSeq})
		stats.Segments++
	}
	for _, j := range journals {
		s, start, isJournal, err := parseSegmentName(j)
		if err != nil || !isJournal || s.Room != room {
			continue
		}
		name := DayLog(s, time.UnixMicro(start))
		logs[name] = append(logs[name], seg{start: start, open: true})
		stats.Open++
	}
	for name, segs := range logs {
		logs[name] = settle(segs)
		if err := st.Put(ctx, name, encodeLog(logs[name])); err != nil {
			return stats, fmt.Errorf("failed to rebuild %q: %w", name, err)
		}
		stats.Days++
	}
	// Old logs of days that have no segment any more.
	old, err := st.List(ctx, RoomLogs(room))
	if err != nil {
		return stats, fmt.Errorf("failed to rebuild %q: %w", room, err)
	}
	var stale []string
	for _, o := range old {
		_, day, ok := ParseLogName(o.Name)
		if _, kept := logs[o.Name]; !kept && (!ok || !day.IsZero()) {
			stale = append(stale, o.Name)
		}
	}
	if err := st.Delete(ctx, stale...); err != nil {
		return stats, fmt.Errorf("failed to rebuild %q: %w", room, err)
	}
	stats.Removed = len(stale)
	if err := writeRollups(ctx, st, rollups, logs); err != nil {
		return stats, fmt.Errorf("failed to rebuild %q: %w", room, err)
	}
	return stats, errors.Join(errs...)
}

// writeRollups writes the rollup of each of streams (by rollup name) that
// has logs, from logs (settled segments by day log name): it speaks for
// DefaultScanDays up to its last day.
func writeRollups(ctx context.Context, st store.Store, streams map[string]frames.Stream, logs map[string][]seg) error {
	rs := map[frames.Stream]*rollup{}
	for name, segs := range logs {
		s, day, ok := ParseLogName(name)
		if !ok || day.IsZero() {
			continue
		}
		d := dayOf(day.UnixMicro())
		r := rs[s]
		if r == nil {
			r = &rollup{through: d, logs: map[int64]rolledLog{}}
			rs[s] = r
		}
		spans, summed := summarySpans(segs)
		r.logs[d] = rolledLog{spans: spans, open: !summed}
		r.through = max(r.through, d)
	}
	for name, s := range streams {
		r := rs[s]
		if r == nil {
			continue
		}
		r.from = r.through - DefaultScanDays
		for d := range r.logs {
			if d < r.from {
				delete(r.logs, d)
			}
		}
		if err := st.Put(ctx, name, encodeRollup(r)); err != nil {
			return fmt.Errorf("failed to write the rollup of %v: %w", s, err)
		}
	}
	return nil
}
