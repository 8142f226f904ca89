package retention_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recorder"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/retention"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// record writes sealed segments of s starting at each of starts (10
// one-second JPEG frames of size bytes each), as a recorder would.
func record(t *testing.T, st store.Store, cat *index.Catalog, s frames.Stream, size int, starts ...time.Time) {
	t.Helper()
	pic := testenv.JPEG(t, 32, 24, 1, size)
	for _, start := range starts {
		var fs []*frames.Frame
		for i := range 10 {
			f, err := frames.New(frames.KindJPEG, uint64(start.Unix()+int64(i)), start.Add(time.Duration(i)*time.Second), pic, 0)
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, f)
		}
		recordtest.Record(t, st, cat, s, fs, false)
	}
}

func every(from time.Time, step time.Duration, n int) []time.Time {
	var out []time.Time
	for i := range n {
		out = append(out, from.Add(time.Duration(i)*step).Truncate(time.Microsecond))
	}
	return out
}

func newWorker(t *testing.T, st store.Store, cat *index.Catalog, o retention.Options) *retention.Worker {
	o.Logger = slog.New(slog.DiscardHandler)
	return retention.New(st, cat, recorder.NewMemoryLeases().For("r"), &o)
}

func objects(t *testing.T, st store.Store, prefix string) []string {
	t.Helper()
	list, err := st.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, o := range list {
		out = append(out, o.Name)
	}
	return out
}

// TestRetentionByAge: footage that ended more than Keep ago goes: its
// segments, and the day logs wholly behind the new cutoff; what is
// younger stays findable.
func TestRetentionByAge(t *testing.T) {
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cat := index.New(st, nil)
	s := frames.Stream{Room: "lobby"}
	now := time.Now()
	// Three days ago, two days ago, and the last hour.
	old := append(every(now.Add(-72*time.Hour), 10*time.Second, 5), every(now.Add(-48*time.Hour), 10*time.Second, 5)...)
	recent := every(now.Add(-time.Hour), 10*time.Second, 5)
	record(t, st, cat, s, 1000, append(old, recent...)...)
	if err := st.Put(context.Background(), "seg/lobby/jpeg/stray.txt", []byte("x")); err != nil { // not a segment: left alone
		t.Fatal(err)
	}

	w := newWorker(t, st, cat, retention.Options{Keep: 36 * time.Hour})
	if err := w.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	stats := w.Stats()
	if stats.Deleted[retention.CauseAge] != uint64(len(old)) {
		t.Errorf("deleted by age: %d, want the %d segments of two and three days ago (stats %+v)", stats.Deleted[retention.CauseAge], len(old), stats)
	}
	if err := w.Step(context.Background()); err != nil { // nothing more to do
		t.Fatal(err)
	}
	if segs := objects(t, st, "seg/lobby/jpeg/"); len(segs) != len(recent)+1 {
		t.Fatalf("objects left: %v; want the %d recent segments and the stray file", segs, len(recent))
	}
	logs := objects(t, st, "idx/lobby/jpeg/")
	journals, _ := st.Journals(context.Background(), "idx/lobby/jpeg/")
	for _, l := range append(logs, journals...) {
		if l == index.DayLog(s, old[0]) || l == index.DayLog(s, old[5]) {
			t.Errorf("day log %s is wholly behind the cutoff and still there", l)
		}
	}
	sg, err := cat.Find(context.Background(), s, now.Add(-80*time.Hour))
	if err != nil || !sg.Start.Equal(recent[0]) {
		t.Fatalf("first footage found: %v, %v; want the recent hour's", sg.Start, err)
	}
}

// TestRetentionByAgeEveryTenMinutes: Keep is applied once per AgeEvery, so
// footage that ages out between two applications goes together, in one
// cutoff write and one delete, not a pair of requests per segment.
func TestRetentionByAgeEveryTenMinutes(t *testing.T) {
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cat := index.New(st, nil)
	s := frames.Stream{Room: "lobby"}
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Microsecond)
	// A segment every minute for an hour; each lasts 9 s.
	record(t, st, cat, s, 1000, every(start, time.Minute, 60)...)
	clock := start.Add(time.Hour + 10*time.Minute + 30*time.Second) // the first 10 have aged (Keep 1 h)
	w := newWorker(t, st, cat, retention.Options{Keep: time.Hour, Now: func() time.Time { return clock }})
	deleted := func() uint64 { return w.Stats().Deleted[retention.CauseAge] }
	step := func() {
		t.Helper()
		if err := w.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	step()
	if got := deleted(); got != 11 { // minutes 0..10
		t.Fatalf("first pass deleted %d segments, want 11", got)
	}
	clock = clock.Add(5 * time.Minute) // five more age out
	step()
	if got := deleted(); got != 11 {
		t.Fatalf("a pass %v after applying Keep deleted %d in all, want it to wait for AgeEvery", 5*time.Minute, got)
	}
	clock = clock.Add(retention.AgeEvery - 5*time.Minute)
	step()
	if got := deleted(); got != 21 {
		t.Fatalf("after AgeEvery deleted %d in all, want 21 (the ten aged since, at once)", got)
	}
	first, err := cat.Find(context.Background(), s, start)
	if err != nil || !first.Start.Equal(start.Add(21*time.Minute)) {
		t.Fatalf("first footage: %v, %v; want minute 21's", first.Start, err)
	}
}

// TestRetentionByBytesOldestFirstAcrossRooms: past MaxBytes the oldest
// segments go, whichever room they belong to.
func TestRetentionByBytesOldestFirstAcrossRooms(t *testing.T) {
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cat := index.New(st, nil)
	a, b := frames.Stream{Room: "a"}, frames.Stream{Room: "b"}
	base := time.Now().Add(-2 * time.Hour)
	// a: 0, 20, 40, ... b: 10, 30, 50, ... (seconds), 10 each, ~20 kB each.
	record(t, st, cat, a, 2000, every(base, 20*time.Second, 10)...)
	record(t, st, cat, b, 2000, every(base.Add(10*time.Second), 20*time.Second, 10)...)
	segs, _ := cat.Day(context.Background(), a, base)
	size := segs[0].Bytes
	// Keep about 8 segments of the 20.
	w := newWorker(t, st, cat, retention.Options{MaxBytes: 8*size + size/2})
	if err := w.Step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := w.Stats().Deleted[retention.CauseBytes]; got != 12 {
		t.Fatalf("deleted %d segments by bytes, want 12 (stats %+v)", got, w.Stats())
	}
	// The 12 oldest of the merged timeline: a's first 6 and b's first 6.
	for _, s := range []frames.Stream{a, b} {
		first, err := cat.Find(context.Background(), s, base.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		off := time.Duration(0)
		if s == b {
			off = 10 * time.Second
		}
		if want := base.Add(off + 6*20*time.Second).Truncate(time.Microsecond); !first.Start.Equal(want) {
			t.Errorf("%v's first footage starts %v, want %v", s, first.Start, want)
		}
	}
}

// TestRetentionLease: two workers on one lease table; only one deletes.
func TestRetentionLease(t *testing.T) {
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cat := index.New(st, nil)
	record(t, st, cat, frames.Stream{Room: "a"}, 1000, every(time.Now().Add(-50*time.Hour), 10*time.Second, 3)...)
	table := recorder.NewMemoryLeases()
	o := retention.Options{Keep: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	w1 := retention.New(st, cat, table.For("1"), &o)
	w2 := retention.New(st, cat, table.For("2"), &o)
	for _, w := range []*retention.Worker{w1, w2} {
		if err := w.Step(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n1, n2 := w1.Stats().Deleted[retention.CauseAge], w2.Stats().Deleted[retention.CauseAge]; n1 != 3 || n2 != 0 {
		t.Fatalf("deleted: %d by the holder, %d by the other; want 3 and 0", n1, n2)
	}
	if _, err := cat.Find(context.Background(), frames.Stream{Room: "a"}, time.Time{}); !errors.Is(err, index.ErrNoFootage) {
		t.Fatalf("Find after deleting everything: %v", err)
	}
}

// TestRetentionDeletesAllBehindTheRollup: retention deletes every segment
// of a stream whose sealed days are in its rollup (index.RollupObject).
// Its listing takes the rollup for no day log, the day logs behind the
// cutoff go, and the rollup, which still names their spans, shows none
// of them: the cutoff hides them from every catalog, new ones too.
func TestRetentionDeletesAllBehindTheRollup(t *testing.T) {
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	cat := index.New(st, &index.Options{Now: clock})
	s := frames.Stream{Room: "lobby"}
	var starts []time.Time
	for d := 5; d >= 3; d-- {
		starts = append(starts, every(now.AddDate(0, 0, -d), 10*time.Second, 4)...)
	}
	record(t, st, cat, s, 1000, starts...)
	for d := 5; d >= 3; d-- {
		if err := cat.SealDay(ctx, s, now.AddDate(0, 0, -d)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Read(ctx, index.RollupObject(s), 0, -1); err != nil {
		t.Fatalf("no rollup after sealing: %v", err)
	}
	before, err := index.New(st, &index.Options{Now: clock}).Spans(ctx, "lobby", now.AddDate(0, 0, -30), now)
	if err != nil || len(before) != 3 {
		t.Fatalf("spans before: %v, %v", before, err)
	}

	w := newWorker(t, st, cat, retention.Options{Keep: time.Hour, Now: clock})
	if err := w.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Stats().Deleted[retention.CauseAge]; got != uint64(len(starts)) {
		t.Fatalf("deleted %d segments, want all %d", got, len(starts))
	}
	now = now.Add(retention.AccountEvery + retention.AgeEvery) // a later pass lists the store again
	if err := w.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if segs := objects(t, st, "seg/"); len(segs) != 0 {
		t.Fatalf("segments left: %v", segs)
	}
	// The cutoff is mid-day, past the last segment: that day's log stays.
	last := index.DayLog(s, starts[len(starts)-1])
	if logs := objects(t, st, "idx/"); !slices.Equal(logs, []string{last, index.CutoffObject(s), index.RollupObject(s)}) {
		t.Fatalf("left under idx/: %v; want the last day's log, the cutoff and the rollup", logs)
	}
	for _, from := range []time.Time{now.AddDate(0, 0, -30), starts[len(starts)-1]} {
		spans, err := index.New(st, &index.Options{Now: clock}).Spans(ctx, "lobby", from, now)
		if err != nil || len(spans) != 0 {
			t.Fatalf("spans from %v after deleting everything: %v, %v", from, spans, err)
		}
	}
}

// TestRetentionSealsAbandonedRooms: a room that stopped recording with its
// last day's log still a journal (and a segment its recorder died with)
// is sealed by retention under the room's recording lease; a room whose
// lease a recorder holds is left to it.
func TestRetentionSealsAbandonedRooms(t *testing.T) {
	ctx := context.Background()
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cat := index.New(st, nil)
	gone, live := frames.Stream{Room: "gone"}, frames.Stream{Room: "live"}
	day := time.Now().Add(-48 * time.Hour).Truncate(24 * time.Hour).Add(12 * time.Hour) // noon, two days ago
	recordtest.Record(t, st, cat, gone, recordtest.JPEG(t, "gone", day, 40, time.Second, 1), true)
	recordtest.Record(t, st, cat, live, recordtest.JPEG(t, "live", day, 40, time.Second, 1), false)
	logOf := func(s frames.Stream) string { return index.DayLog(s, day) }
	isJournal := func(name string) bool {
		_, err := st.ReadJournal(ctx, name)
		return err == nil
	}
	if !isJournal(logOf(gone)) || !isJournal(logOf(live)) {
		t.Fatal("the test's day logs are not journals to begin with")
	}

	table := recorder.NewMemoryLeases()
	rec := table.For("recorder")
	if ok, err := rec.Acquire(ctx, []string{recorder.LeaseName("live")}, time.Minute); err != nil || !ok[0] {
		t.Fatalf("the recorder's lease of live: %v, %v", ok, err)
	}
	w := retention.New(st, cat, table.For("retention"), &retention.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := w.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if got := w.Stats().Sealed; got != 1 {
		t.Fatalf("sealed %d day logs, want 1 (gone's)", got)
	}
	if isJournal(logOf(gone)) {
		t.Error("gone's day log is still a journal")
	}
	if _, err := st.Read(ctx, logOf(gone), 0, -1); err != nil {
		t.Errorf("gone's sealed day log: %v", err)
	}
	if js, _ := st.Journals(ctx, index.RoomSegments("gone")); len(js) != 0 {
		t.Errorf("gone's open segment was not recovered: journals %v", js)
	}
	if !isJournal(logOf(live)) {
		t.Error("live's day log was sealed while its recorder held the room")
	}
	// Everything recorded in gone is still found, the recovered segment too.
	segs, err := index.New(st, nil).Day(ctx, gone, day)
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) == 0 || segs[len(segs)-1].Open {
		t.Fatalf("gone's segments after sealing: %+v; want them all, sealed", segs)
	}
	if end := segs[len(segs)-1].End; end.Before(day.Add(38 * time.Second)) {
		t.Errorf("gone's footage ends at %v, want the open segment's frames up to %v", end, day.Add(39*time.Second))
	}
	// The lease went back: a recorder takes gone at once.
	if ok, err := rec.Acquire(ctx, []string{recorder.LeaseName("gone")}, time.Minute); err != nil || !ok[0] {
		t.Fatalf("retention kept gone's lease: %v, %v", ok, err)
	}
}
