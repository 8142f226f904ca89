// Package retention deletes recorded footage, oldest first across every
// room, so that recordings stay within their age limit (Keep), their byte
// budget (MaxBytes) and the store's free-space floor (MinFree: below it
// the oldest footage goes first, whatever the other two say).
//
// One Worker runs per deployment at a time, the holder of a lease, so two
// never race to move a cutoff. It is a package of its own, not part of the
// recorder, because it works on the whole store (every room, recorded by
// any replica), not on the rooms one recorder holds; the two meet only in
// the store's free space (the recorder pauses below half of MinFree).
//
// Deleting a segment is: raise its stream's cutoff past it
// (index.Catalog.SetCutoff), so no reader is sent to it any more, then
// delete the objects in batches (store.Delete). A day log wholly behind
// the cutoff is removed with any segment object of that day left behind
// (a worker killed between the cutoff and the delete). Open segments are
// never deleted, and a cutoff never passes one.
package retention

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recorder"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// Period is how often the worker checks the store. It bounds how far the
// store can fall below MinFree before footage is deleted: at the sender's
// defaults a room writes about 0.5 MB/s (10 fps, 640-wide JPEG q80), so
// even GATEWAY_MAX_ROOMS (1000) rooms write 0.5 GB in a Period, less than
// the half of the default MinFree (1 GiB) below which recording pauses. A
// pass that has nothing to delete costs one statfs; the listing and the
// accounting of bytes are refreshed every AccountEvery.
const Period = time.Second

// AccountEvery is how often the worker lists the store's day logs and
// re-reads the recent ones to count bytes; past days are counted once.
const AccountEvery = 10 * time.Second

// AgeEvery is how often the worker applies Keep. Footage older than Keep
// goes within AgeEvery of aging out, in one cutoff write and one batch
// delete per stream, rather than one of each per segment as it ages: on
// S3 that is the difference between doubling a recording stream's PUTs
// and adding one per ten minutes.
const AgeEvery = 10 * time.Minute

// LeaseTTL is the retention lease's: a worker that dies is replaced by
// another recording replica within LeaseTTL + Period.
const LeaseTTL = 5 * time.Second

// LeaseName is the retention worker's lease.
const LeaseName = "retention"

// Batch is the most objects one Delete call removes (S3's DeleteObjects
// limit).
const Batch = 1000

// maxPerPass bounds the segments one pass deletes, so that a pass after a
// cut in Keep does not hold the lease for minutes; the next pass goes on.
const maxPerPass = 20000

// Leases is the lease the worker takes (recorder.Leases and
// redislayer.Leases satisfy it).
type Leases interface {
	Acquire(ctx context.Context, names []string, ttl time.Duration) ([]bool, error)
	Renew(ctx context.Context, names []string, ttl time.Duration) ([]bool, error)
	Release(ctx context.Context, names []string) error
}

// Options are the limits. Zero means no limit of that kind.
type Options struct {
	Keep     time.Duration // footage that ended longer ago than this goes
	MaxBytes int64         // sealed footage of all rooms together
	MinFree  int64         // free space of the store kept
	Logger   *slog.Logger  // default slog.Default()
	Now      func() time.Time
}

// Causes of deletion, the label values of Stats.
const (
	CauseAge       = "age"
	CauseBytes     = "bytes"
	CauseFreeSpace = "free_space"
)

var causes = []string{CauseAge, CauseBytes, CauseFreeSpace}

// Causes lists the causes of deletion.
func Causes() []string { return causes }

// Worker is the retention worker. Run it on every replica that records;
// the lease lets one work at a time.
type Worker struct {
	st     store.Store
	cat    *index.Catalog
	leases Leases
	opt    Options
	log    *slog.Logger

	// The holder's state, owned by Run's goroutine.
	held       bool
	validUntil time.Time
	swept      bool
	listedAt   time.Time
	agedAt     time.Time // when Keep was last applied
	streams    map[frames.Stream]*streamDays
	unsealed   map[string]map[frames.Stream][]int64 // past days whose logs are journals, by room

	deleted      [3]atomic.Uint64 // segments, by cause
	deletedBytes [3]atomic.Uint64
	errs         atomic.Uint64
	short        atomic.Uint64
	sealed       atomic.Uint64
	bytesNow     atomic.Int64
}

// streamDays is what the worker knows of one stream's day logs.
type streamDays struct {
	days   map[int64]*dayBytes // by day number (Unix days)
	cutoff time.Time
}

type dayBytes struct {
	bytes   int64
	counted bool      // bytes is known
	at      time.Time // when it was counted
}

// New returns a retention worker of st.
func New(st store.Store, cat *index.Catalog, leases Leases, o *Options) *Worker {
	var opt Options
	if o != nil {
		opt = *o
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Worker{st: st, cat: cat, leases: leases, opt: opt, log: opt.Logger.With("component", "retention"),
		streams: map[frames.Stream]*streamDays{}}
}

// Stats are the worker's counters.
type Stats struct {
	Deleted      map[string]uint64 // segments deleted, by cause
	DeletedBytes map[string]uint64 // their bytes, by cause
	Errors       uint64            // failed store calls
	Short        uint64            // passes that found too little to delete to get back above MinFree
	Sealed       uint64            // day logs sealed for rooms that stopped recording
	Bytes        int64             // sealed footage counted at the last accounting (MaxBytes' measure)
	Held         bool
}

// Stats returns a snapshot of the counters.
func (w *Worker) Stats() Stats {
	s := Stats{Deleted: map[string]uint64{}, DeletedBytes: map[string]uint64{},
		Errors: w.errs.Load(), Short: w.short.Load(), Sealed: w.sealed.Load(), Bytes: w.bytesNow.Load()}
	for i, c := range causes {
		s.Deleted[c] = w.deleted[i].Load()
		s.DeletedBytes[c] = w.deletedBytes[i].Load()
	}
	return s
}

// Run works every Period while it holds the lease, until ctx ends; then
// it releases the lease.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(Period)
	defer t.Stop()
	var lastLog time.Time
	for {
		if err := w.Step(ctx); err != nil && ctx.Err() == nil {
			w.errs.Add(1)
			if time.Since(lastLog) >= 10*time.Second {
				lastLog = time.Now()
				w.log.Warn("retention pass failed", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			if w.held {
				rctx, cancel := context.WithTimeout(context.Background(), time.Second)
				_ = w.leases.Release(rctx, []string{LeaseName})
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

// hold takes or renews the lease.
func (w *Worker) hold(ctx context.Context) {
	sent := time.Now()
	lctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var ok []bool
	var err error
	if w.held {
		ok, err = w.leases.Renew(lctx, []string{LeaseName}, LeaseTTL)
	} else {
		ok, err = w.leases.Acquire(lctx, []string{LeaseName}, LeaseTTL)
	}
	switch {
	case err == nil && ok[0]:
		if !w.held {
			w.log.Info("this replica runs retention")
			w.swept, w.listedAt = false, time.Time{}
		}
		w.held, w.validUntil = true, sent.Add(LeaseTTL)
	case err == nil || time.Now().After(w.validUntil):
		if w.held {
			w.log.Info("retention moved to another replica")
		}
		w.held = false
	}
}

// mine reports whether the lease surely still holds for a moment.
func (w *Worker) mine() bool { return w.held && time.Now().Add(Period).Before(w.validUntil) }

// Step takes or renews the lease and, if this worker holds it, deletes
// what the limits say must go. Run calls it every Period; tests call it
// directly. It is not safe for concurrent use.
func (w *Worker) Step(ctx context.Context) error {
	w.hold(ctx)
	if !w.held {
		return nil
	}
	return w.pass(ctx)
}

func (w *Worker) pass(ctx context.Context) error {
	now := w.opt.Now()
	if w.listedAt.IsZero() || now.Sub(w.listedAt) >= AccountEvery {
		if err := w.list(ctx, now); err != nil {
			return err
		}
		w.listedAt = now
		if !w.swept {
			w.sweepAll(ctx)
			w.swept = true
		}
		if err := w.sealAbandoned(ctx); err != nil {
			return err
		}
	}
	var need need
	if w.opt.Keep > 0 && (w.agedAt.IsZero() || now.Sub(w.agedAt) >= AgeEvery) {
		need.ageCut = now.Add(-w.opt.Keep)
	}
	if w.opt.MaxBytes > 0 {
		need.excess = w.bytesNow.Load() - w.opt.MaxBytes
	}
	if w.opt.MinFree > 0 {
		free, known, err := w.st.Space(ctx)
		if err != nil {
			return fmt.Errorf("failed to read free space: %w", err)
		}
		if known && free < w.opt.MinFree {
			// Down to MinFree and a tenth more, so that a store hovering
			// at the floor is not trimmed by one segment every pass.
			need.deficit = w.opt.MinFree + w.opt.MinFree/10 - free
		}
	}
	if need.any(w.oldest()) {
		if err := w.delete(ctx, &need); err != nil {
			return err
		}
	}
	if !need.ageCut.IsZero() && !need.more {
		w.agedAt = now
	}
	return nil
}

// need is what a pass must delete.
type need struct {
	ageCut  time.Time // segments that ended before it
	excess  int64     // bytes over MaxBytes
	deficit int64     // bytes under MinFree (plus a margin)
	more    bool      // the pass stopped at maxPerPass
}

func (n *need) any(oldest time.Time) bool {
	return n.excess > 0 || n.deficit > 0 || !n.ageCut.IsZero() && !oldest.IsZero() && oldest.Before(n.ageCut)
}

// cause returns why sg must go, or "".
func (n *need) cause(sg index.Segment) int {
	switch {
	case !n.ageCut.IsZero() && !sg.End.After(n.ageCut):
		return 0
	case n.deficit > 0:
		return 2
	case n.excess > 0:
		return 1
	}
	return -1
}

// oldest returns the start of the oldest day with a log, of any stream.
func (w *Worker) oldest() time.Time {
	var o int64 = -1
	for _, sd := range w.streams {
		for d := range sd.days {
			if o < 0 || d < o {
				o = d
			}
		}
	}
	if o < 0 {
		return time.Time{}
	}
	return dayTime(o)
}

func dayTime(d int64) time.Time { return time.Unix(d*86400, 0).UTC() }
func dayOf(t time.Time) int64   { return t.Unix() / 86400 }

// list refreshes the streams, their days, cutoffs and bytes from the day
// logs in the store (objects and journals).
func (w *Worker) list(ctx context.Context, now time.Time) error {
	objs, err := w.st.List(ctx, "idx/")
	if err != nil {
		return fmt.Errorf("failed to list day logs: %w", err)
	}
	journals, err := w.st.Journals(ctx, "idx/")
	if err != nil {
		return fmt.Errorf("failed to list day logs: %w", err)
	}
	w.unsealed = map[string]map[frames.Stream][]int64{}
	today := dayOf(now)
	for _, n := range journals {
		if s, d, ok := parseLogName(n); ok && d >= 0 && d < today {
			if w.unsealed[s.Room] == nil {
				w.unsealed[s.Room] = map[frames.Stream][]int64{}
			}
			w.unsealed[s.Room][s] = append(w.unsealed[s.Room][s], d)
		}
	}
	names := journals
	for _, o := range objs {
		names = append(names, o.Name)
	}
	seen := map[frames.Stream]map[int64]bool{}
	for _, n := range names {
		s, day, ok := parseLogName(n)
		if !ok {
			continue
		}
		if seen[s] == nil {
			seen[s] = map[int64]bool{}
		}
		if day >= 0 {
			seen[s][day] = true
		}
	}
	for s := range w.streams {
		if seen[s] == nil {
			delete(w.streams, s)
		}
	}
	var total int64
	for s, days := range seen {
		sd := w.streams[s]
		if sd == nil {
			sd = &streamDays{days: map[int64]*dayBytes{}}
			w.streams[s] = sd
		}
		cut, err := w.cat.Cutoff(ctx, s)
		if err != nil && !errors.Is(err, index.ErrBadCutoff) {
			return err
		}
		sd.cutoff = cut
		for d := range sd.days {
			if !days[d] {
				delete(sd.days, d)
			}
		}
		for d := range days {
			db := sd.days[d]
			if db == nil {
				db = &dayBytes{}
				sd.days[d] = db
			}
			// Past days change only by deletion (which recounts them);
			// the last two are still written to.
			if w.opt.MaxBytes > 0 && (!db.counted || d >= today-1) {
				segs, err := w.cat.Day(ctx, s, dayTime(d))
				if err != nil {
					return err
				}
				db.bytes, db.counted, db.at = 0, true, now
				for _, sg := range segs {
					db.bytes += sg.Bytes
				}
			}
			total += db.bytes
		}
	}
	w.bytesNow.Store(total)
	return nil
}

// parseLogName reads idx/<room>/<codec>/<YYYYMMDD> (day) or the stream's
// cutoff or rollup (day -1).
func parseLogName(name string) (frames.Stream, int64, bool) {
	s, day, ok := index.ParseLogName(name)
	switch {
	case !ok:
		return frames.Stream{}, 0, false
	case day.IsZero():
		return s, -1, true
	}
	return s, dayOf(day), true
}

// SealLeaseTTL is how long retention holds a room's recording lease to
// seal what the room left; each room's work is bounded by it.
const SealLeaseTTL = 30 * time.Second

// sealRoomsPerPass bounds the rooms sealAbandoned takes in one pass (the
// next pass, AccountEvery later, goes on).
const sealRoomsPerPass = 64

// sealAbandoned seals the logs of past days that are still journals, in
// rooms no recorder holds. A recorder seals its room's days as they end,
// and the days an earlier recorder left when it begins; a room that stops
// recording for good leaves its last day's log (and a segment its
// recorder died with) to a next recorder that never comes, unsealed: read
// whole by every listing, outside the rollup, and on S3 a journal nobody
// writes expires (GATEWAY_S3_JOURNAL_TTL), taking the day's index with it.
// The worker takes the room's recording lease (recorder.LeaseName: the
// one-writer rule of a room's index), recovers the open segments as a
// recorder would, seals the days and releases the lease; a room whose
// lease a recorder holds is left to that recorder.
func (w *Worker) sealAbandoned(ctx context.Context) error {
	rooms := slices.Sorted(maps.Keys(w.unsealed))
	if len(rooms) > sealRoomsPerPass {
		rooms = rooms[:sealRoomsPerPass]
	}
	var errs []error
	for _, room := range rooms {
		if !w.mine() {
			return errors.Join(append(errs, errors.New("retention lease lost mid-pass"))...)
		}
		if err := w.sealRoom(ctx, room, w.unsealed[room]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sealRoom seals room's streams' days under the room's recording lease.
func (w *Worker) sealRoom(ctx context.Context, room string, streams map[frames.Stream][]int64) error {
	lease := []string{recorder.LeaseName(room)}
	sent := time.Now()
	ok, err := w.leases.Acquire(ctx, lease, SealLeaseTTL)
	if err != nil {
		return fmt.Errorf("failed to take the recording lease of room %q: %w", room, err)
	}
	if !ok[0] {
		return nil // a recorder holds it, and seals
	}
	validUntil := sent.Add(SealLeaseTTL)
	sctx, cancel := context.WithDeadline(ctx, validUntil.Add(-time.Second))
	defer cancel()
	var errs []error
	for s, days := range streams {
		if _, err := w.cat.Recover(sctx, s); err != nil {
			errs = append(errs, err)
			continue
		}
		cut := time.Time{}
		if sd := w.streams[s]; sd != nil {
			cut = sd.cutoff
		}
		for _, d := range days {
			if !dayTime(d + 1).After(cut) {
				continue // wholly behind the cutoff: dropDays removes it
			}
			err := w.cat.SealDay(sctx, s, dayTime(d))
			switch {
			case err == nil:
				w.sealed.Add(1)
			case errors.Is(err, index.ErrRollup): // sealed; the rollup lacks it
				w.sealed.Add(1)
			default:
				errs = append(errs, err)
			}
		}
	}
	// Released only while surely still ours: past its expiry a recorder of
	// this replica (the same holder) may have taken it.
	if time.Now().Before(validUntil.Add(-time.Second)) {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = w.leases.Release(rctx, lease)
		rcancel()
	}
	return errors.Join(errs...)
}

// cursor walks one stream's segments, oldest first.
type cursor struct {
	s    frames.Stream
	days []int64 // days left to read, ascending
	segs []index.Segment
	i    int
	del  []index.Segment
	why  []int
}

func (c *cursor) head() index.Segment { return c.segs[c.i] }

type cursors []*cursor

func (h cursors) Len() int           { return len(h) }
func (h cursors) Less(i, j int) bool { return h[i].head().Start.Before(h[j].head().Start) }
func (h cursors) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursors) Push(x any)        { *h = append(*h, x.(*cursor)) }
func (h *cursors) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// fill loads c's next day with visible segments; false when none is left.
func (w *Worker) fill(ctx context.Context, c *cursor) (bool, error) {
	for c.i >= len(c.segs) {
		if len(c.days) == 0 {
			return false, nil
		}
		d := c.days[0]
		c.days = c.days[1:]
		segs, err := w.cat.Day(ctx, c.s, dayTime(d))
		if err != nil {
			return false, err
		}
		c.segs, c.i = segs, 0
	}
	return true, nil
}

// delete walks every stream's segments oldest first, across streams,
// picking what need says must go, then deletes it.
func (w *Worker) delete(ctx context.Context, n *need) error {
	var h cursors
	for s, sd := range w.streams {
		c := &cursor{s: s}
		for d := range sd.days {
			c.days = append(c.days, d)
		}
		sort.Slice(c.days, func(i, j int) bool { return c.days[i] < c.days[j] })
		ok, err := w.fill(ctx, c)
		if err != nil {
			return err
		}
		if ok {
			h = append(h, c)
		}
	}
	heap.Init(&h)
	all := append(cursors(nil), h...)
	picked := 0
	for h.Len() > 0 && picked < maxPerPass {
		c := h[0]
		sg := c.head()
		if sg.Open {
			heap.Pop(&h) // never past an open segment
			continue
		}
		why := n.cause(sg)
		if why < 0 {
			break
		}
		c.del, c.why = append(c.del, sg), append(c.why, why)
		n.deficit -= sg.Bytes
		n.excess -= sg.Bytes
		picked++
		c.i++
		ok, err := w.fill(ctx, c)
		if err != nil {
			return err
		}
		if ok {
			heap.Fix(&h, 0)
		} else {
			heap.Pop(&h)
		}
	}
	n.more = picked == maxPerPass
	if n.deficit > 0 && !n.more {
		w.short.Add(1)
		w.log.Warn("retention found nothing more to delete and the store is still below its free-space floor; recording pauses below half of it",
			"missing_bytes", n.deficit)
	}
	var errs []error
	for _, c := range all {
		if len(c.del) > 0 {
			if err := w.apply(ctx, c); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// apply deletes c's picked segments, a batch at a time: the cutoff first,
// so that readers are never sent to a deleted segment, then the objects;
// then the day logs wholly behind the cutoff.
func (w *Worker) apply(ctx context.Context, c *cursor) error {
	sd := w.streams[c.s]
	for i := 0; i < len(c.del); i += Batch {
		if !w.mine() {
			return errors.New("retention lease lost mid-pass")
		}
		end := min(i+Batch, len(c.del))
		batch, why := c.del[i:end], c.why[i:end]
		cut := batch[len(batch)-1].Start.Add(time.Microsecond)
		if end == len(c.del) && c.i < len(c.segs) {
			// Up to the first segment kept, so that days of deleted
			// segments end wholly behind the cutoff.
			cut = c.head().Start
		}
		if err := w.cat.SetCutoff(ctx, c.s, cut); err != nil {
			return err
		}
		sd.cutoff = cut
		objs := make([]string, len(batch))
		for j, sg := range batch {
			objs[j] = sg.Object
		}
		if err := w.st.Delete(ctx, objs...); err != nil {
			return fmt.Errorf("failed to delete %d segments of %v: %w", len(objs), c.s, err)
		}
		for j, sg := range batch {
			w.deleted[why[j]].Add(1)
			w.deletedBytes[why[j]].Add(uint64(sg.Bytes))
			if db := sd.days[dayOf(sg.Start)]; db != nil && db.counted {
				db.bytes -= sg.Bytes
				w.bytesNow.Add(-sg.Bytes)
			}
		}
	}
	return w.dropDays(ctx, c.s, sd)
}

// dropDays removes s's day logs wholly behind its cutoff, and any segment
// object of those days still there.
func (w *Worker) dropDays(ctx context.Context, s frames.Stream, sd *streamDays) error {
	for d := range sd.days {
		if dayTime(d + 1).After(sd.cutoff) {
			continue
		}
		prefix := index.RoomSegments(s.Room) + s.Codec.String() + "/" + dayTime(d).Format("2006/01/02/")
		left, err := w.st.List(ctx, prefix)
		if err != nil {
			return err
		}
		var objs []string
		for _, o := range left {
			objs = append(objs, o.Name)
		}
		if err := w.deleteAll(ctx, objs); err != nil {
			return err
		}
		log := index.DayLog(s, dayTime(d))
		if err := w.st.Delete(ctx, log); err != nil {
			return err
		}
		if err := w.st.Discard(ctx, log); err != nil {
			return err
		}
		delete(sd.days, d)
	}
	return nil
}

// sweepAll removes, for every stream, the day logs and segments wholly
// behind its cutoff, and the segment objects of the cutoff's own day that
// lie behind it: what a worker killed mid-pass left.
func (w *Worker) sweepAll(ctx context.Context) {
	for s, sd := range w.streams {
		if sd.cutoff.IsZero() {
			continue
		}
		if err := w.dropDays(ctx, s, sd); err != nil {
			w.errs.Add(1)
			w.log.Warn("retention sweep failed", "stream", s.String(), "err", err)
			continue
		}
		prefix := index.RoomSegments(s.Room) + s.Codec.String() + "/" + sd.cutoff.UTC().Format("2006/01/02/")
		left, err := w.st.List(ctx, prefix)
		if err != nil {
			w.errs.Add(1)
			continue
		}
		var objs []string
		for _, o := range left {
			base := o.Name[strings.LastIndexByte(o.Name, '/')+1:]
			var us int64
			if _, err := fmt.Sscanf(base, "%d.mp4", &us); err == nil && us < sd.cutoff.UnixMicro() {
				objs = append(objs, o.Name)
			}
		}
		if err := w.deleteAll(ctx, objs); err != nil {
			w.errs.Add(1)
		}
	}
}

// deleteAll deletes objs, Batch at a time.
func (w *Worker) deleteAll(ctx context.Context, objs []string) error {
	for i := 0; i < len(objs); i += Batch {
		if err := w.st.Delete(ctx, objs[i:min(i+Batch, len(objs))]...); err != nil {
			return err
		}
	}
	return nil
}
