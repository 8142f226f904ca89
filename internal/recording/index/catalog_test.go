package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

var (
	h264 = frames.Stream{Room: "cam", Codec: frames.CodecH264}
	jpeg = frames.Stream{Room: "cam", Codec: frames.CodecJPEG}
	// day0 is the tests' first day; "now" is a day later unless a test says.
	day0 = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
)

// at is a time on day0: at(10, 2, 30) is 10:02:30.
func at(h, m, s int) time.Time {
	return day0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(s)*time.Second)
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func newCatalog(t testing.TB, o *Options) (*Catalog, *store.Dir, *clock) {
	t.Helper()
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: day0.Add(36 * time.Hour)}
	var opt Options
	if o != nil {
		opt = *o
	}
	opt.Now = clk.Now
	return New(st, &opt), st, clk
}

// sealed records a sealed segment [from, to) of s with records only.
func sealedSeg(t testing.TB, c *Catalog, s frames.Stream, from, to time.Time) {
	t.Helper()
	ctx := context.Background()
	if err := c.Opened(ctx, s, from); err != nil {
		t.Fatal(err)
	}
	if err := c.Sealed(ctx, s, segment.Summary{Start: from, End: to, Bytes: 1000, Frames: 300, FirstSeq: 1, LastSeq: 300}); err != nil {
		t.Fatal(err)
	}
}

// run records back-to-back segments of s of length every from from to to.
func run(t testing.TB, c *Catalog, s frames.Stream, from, to time.Time, every time.Duration) {
	t.Helper()
	for a := from; a.Before(to); a = a.Add(every) {
		end := a.Add(every)
		if end.After(to) {
			end = to
		}
		sealedSeg(t, c, s, a, end)
	}
}

func TestKeys(t *testing.T) {
	start := time.Date(2026, 12, 7, 14, 3, 0, 125_000_000, time.UTC)
	for _, c := range []struct{ got, want string }{
		{SegmentJournal(h264, start), "seg/cam/h264/1796652180125000"},
		{SegmentObject(h264, start), "seg/cam/h264/2026/12/07/1796652180125000.mp4"},
		{SegmentObject(jpeg, start.In(time.FixedZone("x", -10*3600))), "seg/cam/jpeg/2026/12/07/1796652180125000.mp4"},
		{DayLog(h264, start), "idx/cam/h264/20261207"},
		{CutoffObject(jpeg), "idx/cam/jpeg/cutoff"},
		{RollupObject(h264), "idx/cam/h264/days"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
		if err := store.ValidName(c.got); err != nil {
			t.Error(err)
		}
	}
	for _, c := range []struct {
		name    string
		ok      bool
		journal bool
	}{
		{"seg/cam/h264/1796652180125000", true, true},
		{"seg/cam/h264/2026/12/07/1796652180125000.mp4", true, false},
		{"seg/cam/h264/2026/12/08/1796652180125000.mp4", false, false}, // the date is not the start's
		{"seg/cam/vp8/1796652180125000", false, false},
		{"seg/cam/h264/2026/12/07/x.mp4", false, false},
		{"seg/c@m/h264/1", false, false},
		{"idx/cam/h264/20261207", false, false},
	} {
		s, start, journal, err := parseSegmentName(c.name)
		if (err == nil) != c.ok || c.ok && (journal != c.journal || s.Room != "cam" || start != 1796652180125000) {
			t.Errorf("parseSegmentName(%q) = %v %d %v %v", c.name, s, start, journal, err)
		}
	}
	// Only a day log has a day; the cutoff and the rollup name the stream.
	for _, c := range []struct {
		name string
		ok   bool
		s    frames.Stream
		day  time.Time
	}{
		{"idx/cam/h264/20261207", true, h264, day0},
		{"idx/cam/jpeg/cutoff", true, jpeg, time.Time{}},
		{"idx/cam/h264/days", true, h264, time.Time{}},
		{"idx/cam/h264/2026127", false, frames.Stream{}, time.Time{}},
		{"idx/cam/h264/20261307", false, frames.Stream{}, time.Time{}},
		{"idx/cam/vp8/20261207", false, frames.Stream{}, time.Time{}},
		{"idx/cam//20261207", false, frames.Stream{}, time.Time{}},
		{"idx/c@m/h264/20261207", false, frames.Stream{}, time.Time{}},
		{"idx/cam/h264/days/x", false, frames.Stream{}, time.Time{}},
		{"idx/cam/h264/weeks", false, frames.Stream{}, time.Time{}},
		{"seg/cam/h264/20261207", false, frames.Stream{}, time.Time{}},
	} {
		s, day, ok := ParseLogName(c.name)
		if ok != c.ok || s != c.s || !day.Equal(c.day) {
			t.Errorf("ParseLogName(%q) = %v %v %v", c.name, s, day, ok)
		}
	}
}

// TestRecords: a log's records round-trip; a torn last record is ignored
// and a damaged one skipped without losing those after it.
func TestRecords(t *testing.T) {
	want := []seg{
		{start: 10, open: true},
		{start: 10, end: 20, bytes: 5, frames: 3, firstSeq: 1, lastSeq: 3},
		{start: 20, open: true},
		{start: 20, end: 30, bytes: 7, frames: 4, firstSeq: 4, lastSeq: 7},
		{start: 30, open: true},
	}
	var b []byte
	for _, s := range want {
		b = appendRecord(b, s)
	}
	if len(b) != len(want)*RecordSize {
		t.Fatalf("%d bytes", len(b))
	}
	for _, c := range []struct {
		name    string
		data    []byte
		want    []seg
		skipped int
	}{
		{"whole", b, want, 0},
		{"torn-last", b[:len(b)-10], want[:4], RecordSize - 10},
		{"damaged-second", func() []byte { d := bytes.Clone(b); d[RecordSize+9] ^= 1; return d }(), append([]seg{want[0]}, want[2:]...), RecordSize},
		{"garbage-in-front", append([]byte("junk"), b...), want, 4},
		{"empty", nil, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, skipped := parseLog(nil, c.data)
			if !slices.Equal(got, c.want) || skipped != c.skipped {
				t.Fatalf("parseLog = %v (skipped %d), want %v (%d)", got, skipped, c.want, c.skipped)
			}
		})
	}
	settled := settle(slices.Clone(want))
	if !slices.Equal(settled, []seg{want[1], want[3], want[4]}) {
		t.Fatalf("settle = %v", settled)
	}
	// A sealed record wins over a later open one; the last sealed wins.
	redo := seg{start: 10, end: 25, frames: 9}
	if got := settle([]seg{want[1], {start: 10, open: true}, redo}); !slices.Equal(got, []seg{redo}) {
		t.Fatalf("settle = %v", got)
	}
}

func TestSpans(t *testing.T) {
	ctx := context.Background()
	c, _, clk := newCatalog(t, nil)
	// h264 from 10:00 to 10:05 in 10 s segments, jpeg 10:02 to 10:08.
	run(t, c, h264, at(10, 0, 0), at(10, 5, 0), 10*time.Second)
	run(t, c, jpeg, at(10, 2, 0), at(10, 8, 0), 10*time.Second)
	// h264 11:00–11:01, a 1.5 s hiccup, 11:01:01.5–11:02: one span.
	run(t, c, h264, at(11, 0, 0), at(11, 1, 0), 10*time.Second)
	run(t, c, h264, at(11, 1, 1).Add(500*time.Millisecond), at(11, 2, 0), 10*time.Second)
	// jpeg 12:00–12:01, a 2.5 s pause, 12:01:02.5–12:02: two spans.
	run(t, c, jpeg, at(12, 0, 0), at(12, 1, 0), 10*time.Second)
	run(t, c, jpeg, at(12, 1, 2).Add(500*time.Millisecond), at(12, 2, 0), 10*time.Second)
	// Across midnight: 23:59:40 to 00:00:20 the next day.
	run(t, c, h264, at(23, 59, 40), at(24, 0, 20), 10*time.Second)
	// An open segment at 24:10:00, "now" at 24:10:05.
	if err := c.Opened(ctx, h264, at(24, 10, 0)); err != nil {
		t.Fatal(err)
	}
	clk.set(at(24, 10, 5))

	both := []frames.Codec{frames.CodecH264, frames.CodecJPEG}
	H := []frames.Codec{frames.CodecH264}
	J := []frames.Codec{frames.CodecJPEG}
	for _, cs := range []struct {
		name     string
		from, to time.Time
		want     []Span
	}{
		{"all", at(0, 0, 0), at(25, 0, 0), []Span{
			{at(10, 0, 0), at(10, 8, 0), both},
			{at(11, 0, 0), at(11, 2, 0), H},
			{at(12, 0, 0), at(12, 1, 0), J},
			{at(12, 1, 2).Add(500 * time.Millisecond), at(12, 2, 0), J},
			{at(23, 59, 40), at(24, 0, 20), H},
			{at(24, 10, 0), at(24, 10, 5), H}, // open: to now
		}},
		{"clipped", at(10, 6, 0), at(11, 0, 30), []Span{
			{at(10, 6, 0), at(10, 8, 0), J},
			{at(11, 0, 0), at(11, 0, 30), H},
		}},
		{"the next day only", at(24, 0, 0), at(24, 1, 0), []Span{{at(24, 0, 0), at(24, 0, 20), H}}},
		{"nothing", at(13, 0, 0), at(14, 0, 0), nil},
		{"an instant", at(10, 3, 0), at(10, 3, 0), []Span{{at(10, 3, 0), at(10, 3, 0), both}}},
	} {
		t.Run(cs.name, func(t *testing.T) {
			got, err := c.Spans(ctx, "cam", cs.from, cs.to)
			if err != nil {
				t.Fatal(err)
			}
			if !spansEqual(got, cs.want) {
				t.Fatalf("Spans =\n%s\nwant\n%s", fmtSpans(got), fmtSpans(cs.want))
			}
		})
	}
	// The open segment reaches at most OpenGrace past its start.
	clk.set(at(26, 0, 0))
	got, _ := c.Spans(ctx, "cam", at(24, 5, 0), at(26, 0, 0))
	if !spansEqual(got, []Span{{at(24, 10, 0), at(24, 11, 0), H}}) {
		t.Fatalf("open segment an hour on: %s", fmtSpans(got))
	}
	// A cutoff hides what began before it.
	if err := c.SetCutoff(ctx, jpeg, at(10, 5, 0)); err != nil {
		t.Fatal(err)
	}
	if err := c.SetCutoff(ctx, jpeg, at(9, 0, 0)); err != nil { // never lowered
		t.Fatal(err)
	}
	got, _ = c.Spans(ctx, "cam", at(10, 0, 0), at(10, 30, 0))
	if !spansEqual(got, []Span{{at(10, 0, 0), at(10, 8, 0), both}}) {
		t.Fatalf("with jpeg cut at 10:05: %s", fmtSpans(got))
	}
	if err := c.SetCutoff(ctx, h264, at(10, 5, 0)); err != nil {
		t.Fatal(err)
	}
	got, _ = c.Spans(ctx, "cam", at(10, 0, 0), at(10, 30, 0))
	if !spansEqual(got, []Span{{at(10, 5, 0), at(10, 8, 0), J}}) {
		t.Fatalf("with both cut at 10:05: %s", fmtSpans(got))
	}
	if cut, err := c.Cutoff(ctx, jpeg); err != nil || !cut.Equal(at(10, 5, 0)) {
		t.Fatalf("Cutoff = %v, %v", cut, err)
	}
	for _, bad := range []func() error{
		func() error { _, err := c.Spans(ctx, "c@m", at(0, 0, 0), at(1, 0, 0)); return err },
		func() error { return c.Opened(ctx, frames.Stream{Room: "cam", Layer: 1}, at(0, 0, 0)) },
	} {
		if err := bad(); !errors.Is(err, ErrBadStream) {
			t.Errorf("%v, want ErrBadStream", err)
		}
	}
	if _, err := c.Spans(ctx, "cam", at(2, 0, 0), at(1, 0, 0)); err == nil {
		t.Error("Spans with the end before the start")
	}
}

func spansEqual(a, b []Span) bool {
	return slices.EqualFunc(a, b, func(x, y Span) bool {
		return x.Start.Equal(y.Start) && x.End.Equal(y.End) && slices.Equal(x.Codecs, y.Codecs)
	})
}

func fmtSpans(ss []Span) string {
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "  %s – %s %v\n", s.Start.Format("02 15:04:05.000"), s.End.Format("02 15:04:05.000"), s.Codecs)
	}
	return b.String()
}

func TestFindNext(t *testing.T) {
	ctx := context.Background()
	c, _, clk := newCatalog(t, nil)
	run(t, c, h264, at(10, 0, 0), at(10, 0, 30), 10*time.Second)  // 10:00:00, :10, :20
	run(t, c, h264, at(23, 59, 55), at(24, 0, 5), 10*time.Second) // across midnight
	run(t, c, h264, at(48, 0, 0), at(48, 0, 10), 10*time.Second)  // two days later
	if err := c.Opened(ctx, h264, at(48, 0, 10)); err != nil {    // being written
		t.Fatal(err)
	}
	clk.set(at(48, 0, 15))
	for _, cs := range []struct {
		name string
		t    time.Time
		want time.Time // the segment's start
		open bool
		err  error
	}{
		{"inside", at(10, 0, 15), at(10, 0, 10), false, nil},
		{"at a start", at(10, 0, 10), at(10, 0, 10), false, nil},
		{"before all", at(1, 0, 0), at(10, 0, 0), false, nil},
		{"in a gap", at(12, 0, 0), at(23, 59, 55), false, nil},
		{"after midnight, in the segment that began before", at(24, 0, 2), at(23, 59, 55), false, nil},
		{"days ahead", at(30, 0, 0), at(48, 0, 0), false, nil},
		{"open", at(48, 0, 12), at(48, 0, 10), true, nil},
		{"after all", at(49, 0, 0), time.Time{}, false, ErrNoFootage},
	} {
		t.Run(cs.name, func(t *testing.T) {
			got, err := c.Find(ctx, h264, cs.t)
			if cs.err != nil {
				if !errors.Is(err, cs.err) {
					t.Fatalf("Find = %+v, %v; want %v", got, err, cs.err)
				}
				return
			}
			if err != nil || !got.Start.Equal(cs.want) || got.Open != cs.open {
				t.Fatalf("Find = %+v, %v; want start %v open %v", got, err, cs.want, cs.open)
			}
			if got.Object != SegmentObject(h264, cs.want) || cs.open != (got.Journal == SegmentJournal(h264, cs.want)) {
				t.Fatalf("names %q %q", got.Object, got.Journal)
			}
		})
	}
	// Next walks every segment in order, across days, to the open one.
	seg, err := c.Find(ctx, h264, at(0, 0, 0))
	var starts []time.Time
	for err == nil {
		starts = append(starts, seg.Start)
		seg, err = c.Next(ctx, seg)
	}
	if !errors.Is(err, ErrNoFootage) {
		t.Fatal(err)
	}
	want := []time.Time{at(10, 0, 0), at(10, 0, 10), at(10, 0, 20), at(23, 59, 55), at(48, 0, 0), at(48, 0, 10)}
	if !slices.EqualFunc(starts, want, time.Time.Equal) {
		t.Fatalf("Next walked %v", starts)
	}
	// The cutoff hides the first two.
	if err := c.SetCutoff(ctx, h264, at(10, 0, 20)); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Find(ctx, h264, at(10, 0, 0)); err != nil || !got.Start.Equal(at(10, 0, 20)) {
		t.Fatalf("Find before the cutoff = %v, %v", got.Start, err)
	}
	if segs, err := c.Day(ctx, h264, day0); err != nil || len(segs) != 2 {
		t.Fatalf("Day = %d segments, %v", len(segs), err)
	}
}

func TestSealDay(t *testing.T) {
	ctx := context.Background()
	c, st, clk := newCatalog(t, nil)
	run(t, c, h264, at(10, 0, 0), at(10, 1, 0), 10*time.Second)
	if err := c.Opened(ctx, h264, at(23, 59, 58)); err != nil { // open at midnight
		t.Fatal(err)
	}
	if err := st.Append(ctx, SegmentJournal(h264, at(23, 59, 58)), []byte("parts")); err != nil {
		t.Fatal(err)
	}
	clk.set(at(12, 0, 0))
	if err := c.SealDay(ctx, h264, day0); !errors.Is(err, ErrDayOpen) {
		t.Fatalf("SealDay of today: %v", err)
	}
	clk.set(at(24, 0, 30))
	if err := c.SealDay(ctx, h264, day0); !errors.Is(err, ErrDayOpen) {
		t.Fatalf("SealDay with a segment being written: %v", err)
	}
	// The segment is sealed after midnight: its record goes to its day's log.
	st.Discard(ctx, SegmentJournal(h264, at(23, 59, 58)))
	if err := c.Sealed(ctx, h264, segment.Summary{Start: at(23, 59, 58), End: at(24, 0, 8), Frames: 300}); err != nil {
		t.Fatal(err)
	}
	before, _ := c.Spans(ctx, "cam", day0, at(30, 0, 0))
	if err := c.SealDay(ctx, h264, day0); err != nil {
		t.Fatal(err)
	}
	obj, err := st.Read(ctx, DayLog(h264, day0), 0, -1)
	if segs, skipped := parseLog(nil, obj); err != nil || len(segs) != 7 || skipped != 0 {
		t.Fatalf("sealed log: %d records, %d bytes skipped (%v), want 7 segments", len(segs), skipped, err)
	}
	if spans, ok := summaryOf(obj); !ok || len(spans) != 2 {
		t.Fatalf("sealed log's summary: %v %v", spans, ok)
	}
	if _, err := st.ReadJournal(ctx, DayLog(h264, day0)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the day's journal is still there: %v", err)
	}
	after, _ := c.Spans(ctx, "cam", day0, at(30, 0, 0))
	if !spansEqual(before, after) || len(after) != 2 {
		t.Fatalf("spans changed by sealing:\n%s\n%s", fmtSpans(before), fmtSpans(after))
	}
	if err := c.SealDay(ctx, h264, day0); err != nil {
		t.Fatalf("sealing again: %v", err)
	}
	// A late record after sealing lands in a new journal; readers merge it,
	// and the next SealDay folds it in.
	sealedSeg(t, c, h264, at(15, 0, 0), at(15, 0, 10))
	got, _ := c.Spans(ctx, "cam", day0, at(30, 0, 0))
	if len(got) != 3 {
		t.Fatalf("the late segment is not seen: %s", fmtSpans(got))
	}
	if err := c.SealDay(ctx, h264, day0); err != nil {
		t.Fatal(err)
	}
	obj, _ = st.Read(ctx, DayLog(h264, day0), 0, -1)
	if segs, _ := parseLog(nil, obj); len(segs) != 8 {
		t.Fatalf("after folding in the late record: %d segments", len(segs))
	}
}

// TestCacheBound: with a cache smaller than the footage, answers stay
// right and the cache stays under its budget.
func TestCacheBound(t *testing.T) {
	ctx := context.Background()
	c, _, clk := newCatalog(t, &Options{CacheBytes: 3 * 300 * segSize})
	for d := range 6 {
		run(t, c, h264, at(24*d+10, 0, 0), at(24*d+10, 50, 0), 10*time.Second) // 300 segments a day
	}
	clk.set(at(24*7, 0, 0))
	for d := range 6 {
		if err := c.SealDay(ctx, h264, day0.AddDate(0, 0, d)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		got, err := c.Spans(ctx, "cam", day0, at(24*7, 0, 0))
		if err != nil || len(got) != 6 {
			t.Fatalf("%d spans, %v", len(got), err)
		}
		for d := range 6 { // whole logs, not summaries
			if seg, err := c.Find(ctx, h264, at(24*d+10, 30, 0)); err != nil || !seg.Start.Equal(at(24*d+10, 30, 0)) {
				t.Fatalf("day %d: Find = %v, %v", d, seg.Start, err)
			}
		}
		c.mu.Lock()
		n, b := c.lru.Len(), c.bytes
		c.mu.Unlock()
		if b > c.opt.CacheBytes || n > 3 {
			t.Fatalf("cache holds %d logs, %d bytes, budget %d", n, b, c.opt.CacheBytes)
		}
	}
}

// TestConcurrent reads spans and finds segments while a recorder records
// (go test -race).
func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	c, _, clk := newCatalog(t, nil)
	clk.set(at(23, 0, 0))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		run(t, c, h264, at(10, 0, 0), at(10, 10, 0), 10*time.Second)
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := c.Spans(ctx, "cam", day0, at(23, 0, 0)); err != nil {
					t.Error(err)
					return
				}
				if _, err := c.Find(ctx, h264, at(10, 5, 0)); err != nil && !errors.Is(err, ErrNoFootage) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, _ := c.Spans(ctx, "cam", day0, at(23, 0, 0))
	if !spansEqual(got, []Span{{at(10, 0, 0), at(10, 10, 0), []frames.Codec{frames.CodecH264}}}) {
		t.Fatalf("%s", fmtSpans(got))
	}
}

// recorder records JPEG frames into st the way the lead's recorder will:
// a segment's journal from Begin on, announced with Opened; each part
// appended as Flush returns it; End appended, the journal sealed into the
// object, Sealed recorded.
type recorder struct {
	t     testing.TB
	st    store.Store
	c     *Catalog
	s     frames.Stream
	w     *segment.Writer
	start time.Time
}

func newRecorder(t testing.TB, st store.Store, c *Catalog, s frames.Stream) *recorder {
	return &recorder{t: t, st: st, c: c, s: s, w: segment.NewWriter(s.Room, s.Codec, nil)}
}

func (r *recorder) must(err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *recorder) add(f *frames.Frame) {
	r.t.Helper()
	ctx := context.Background()
	switch r.w.Step(f) {
	case segment.StepSegment:
		if r.w.Open() {
			r.end()
		}
		b, err := r.w.Begin(f)
		r.must(err)
		r.start = f.Captured
		r.must(r.st.Append(ctx, SegmentJournal(r.s, r.start), b))
		r.must(r.c.Opened(ctx, r.s, r.start))
	case segment.StepPart:
		b, err := r.w.Flush()
		r.must(err)
		r.must(r.st.Append(ctx, SegmentJournal(r.s, r.start), b))
		r.must(r.w.Add(f))
	case segment.StepAdd:
		r.must(r.w.Add(f))
	}
}

func (r *recorder) end() {
	r.t.Helper()
	ctx := context.Background()
	b, sum, err := r.w.End()
	r.must(err)
	j := SegmentJournal(r.s, r.start)
	r.must(r.st.Append(ctx, j, b))
	r.must(r.st.Seal(ctx, j, SegmentObject(r.s, r.start)))
	r.must(r.c.Sealed(ctx, r.s, sum))
}

// jpegFrames makes n 16×16 JPEG frames every interval from start.
func jpegFrames(t testing.TB, start time.Time, n int, interval time.Duration) []*frames.Frame {
	img := testenv.JPEG(t, 16, 16, 1, 0)
	out := make([]*frames.Frame, n)
	for i := range out {
		f, err := frames.New(frames.KindJPEG, uint64(i+1), start.Add(time.Duration(i)*interval), img, 0)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = f
	}
	return out
}

// TestRecover: a recorder dies mid-segment (its last append torn); the
// next one seals what it left, and the footage is found.
func TestRecover(t *testing.T) {
	ctx := context.Background()
	c, st, clk := newCatalog(t, nil)
	clk.set(at(11, 0, 0))
	r := newRecorder(t, st, c, jpeg)
	fs := jpegFrames(t, at(10, 0, 0), 125, 100*time.Millisecond) // 12.5 s: one sealed segment, one open
	for _, f := range fs {
		r.add(f)
	}
	open := SegmentJournal(jpeg, at(10, 0, 10))
	r.must(st.Append(ctx, open, []byte{0, 0, 1, 0, 'u', 'u', 'i', 'd'})) // killed mid-append
	// Another dies before writing any part; a third between Seal and Sealed.
	empty := newRecorder(t, st, c, jpeg)
	empty.add(jpegFrames(t, at(10, 30, 0), 1, time.Second)[0])
	late := newRecorder(t, st, c, jpeg)
	for _, f := range jpegFrames(t, at(10, 40, 0), 30, 100*time.Millisecond) {
		late.add(f)
	}
	b, _, err := late.w.End()
	r.must(err)
	r.must(st.Append(ctx, SegmentJournal(jpeg, at(10, 40, 0)), b))
	r.must(st.Seal(ctx, SegmentJournal(jpeg, at(10, 40, 0)), SegmentObject(jpeg, at(10, 40, 0))))

	seg, err := c.Find(ctx, jpeg, at(10, 0, 11))
	if err != nil || !seg.Open {
		t.Fatalf("before recovery: %+v, %v", seg, err)
	}
	n, err := c.Recover(ctx, jpeg)
	if n != 2 || !errors.Is(err, segment.ErrTorn) {
		t.Fatalf("Recover = %d, %v; want 2 and the torn part reported", n, err)
	}
	if js, _ := st.Journals(ctx, "seg/"); len(js) != 0 {
		t.Fatalf("journals left: %v", js)
	}
	seg, err = c.Find(ctx, jpeg, at(10, 0, 11))
	// The frames of the parts it had appended: 10:00:10 to 10:00:11.9.
	if err != nil || seg.Open || seg.Frames != 20 || !seg.End.Equal(at(10, 0, 12)) {
		t.Fatalf("after recovery: %+v, %v", seg, err)
	}
	data, err := st.Read(ctx, seg.Object, 0, -1)
	r.must(err)
	got, info, err := segment.Read(data)
	if err != nil || !info.Sealed || len(got) != 20 || got[0].Seq != 101 {
		t.Fatalf("the recovered segment: %d frames, %v", len(got), err)
	}
	if seg, err := c.Find(ctx, jpeg, at(10, 40, 1)); err != nil || seg.Open || seg.Frames != 30 {
		t.Fatalf("the segment sealed without its record: %+v, %v", seg, err)
	}
	spans, _ := c.Spans(ctx, "cam", day0, at(11, 0, 0))
	if len(spans) != 2 { // 10:00:00–10:00:12, 10:40:00–10:40:03; the empty one withdrawn
		t.Fatalf("%s", fmtSpans(spans))
	}
	if n, err := c.Recover(ctx, jpeg); n != 0 || err != nil {
		t.Fatalf("Recover again = %d, %v", n, err)
	}
}

// TestRebuild: the day logs are lost; Rebuild makes them again from the
// segments alone, and the catalog answers as before.
func TestRebuild(t *testing.T) {
	ctx := context.Background()
	c, st, clk := newCatalog(t, nil)
	clk.set(at(36, 0, 0))
	r := newRecorder(t, st, c, jpeg)
	for _, f := range append(jpegFrames(t, at(10, 0, 0), 250, 100*time.Millisecond), jpegFrames(t, at(23, 59, 55), 100, 100*time.Millisecond)...) {
		r.add(f)
	}
	r.end()
	open := newRecorder(t, st, c, jpeg)
	for _, f := range jpegFrames(t, at(35, 0, 0), 20, 100*time.Millisecond) {
		open.add(f)
	}
	r.must(c.SealDay(ctx, jpeg, day0))
	before, err := c.Spans(ctx, "cam", day0, at(36, 0, 0))
	r.must(err)
	var segsBefore []Segment
	for d := range 2 {
		s, err := c.Day(ctx, jpeg, day0.AddDate(0, 0, d))
		r.must(err)
		segsBefore = append(segsBefore, s...)
	}
	// Lose the logs; leave a stale one for a day without footage.
	logs, _ := st.List(ctx, "idx/")
	for _, o := range logs {
		st.Delete(ctx, o.Name)
	}
	js, _ := st.Journals(ctx, "idx/")
	for _, j := range js {
		st.Discard(ctx, j)
	}
	r.must(st.Put(ctx, DayLog(jpeg, day0.AddDate(0, 0, -3)), appendRecord(nil, seg{start: day0.AddDate(0, 0, -3).UnixMicro(), end: 1})))
	// And rollups that say otherwise: day0 without footage, h264 with some.
	d0 := dayOf(day0.UnixMicro())
	r.must(st.Put(ctx, RollupObject(jpeg), encodeRollup(&rollup{from: d0 - 5, through: d0, logs: map[int64]rolledLog{}})))
	r.must(st.Put(ctx, RollupObject(h264), encodeRollup(&rollup{from: d0 - 5, through: d0,
		logs: map[int64]rolledLog{d0: {spans: []span{{at(3, 0, 0).UnixMicro(), at(4, 0, 0).UnixMicro()}}}}})))
	if rooms, err := Rooms(ctx, st); err != nil || !slices.Equal(rooms, []string{"cam"}) {
		t.Fatalf("Rooms = %v, %v", rooms, err)
	}

	stats, err := Rebuild(ctx, st, "cam")
	if err != nil {
		t.Fatal(err)
	}
	if stats.Segments != len(segsBefore)-1 || stats.Open != 1 || stats.Days != 2 || stats.Removed != 1 || stats.Skipped != 0 {
		t.Fatalf("stats %+v, %d segments before", stats, len(segsBefore))
	}
	c2 := New(st, &Options{Now: clk.Now})
	after, err := c2.Spans(ctx, "cam", day0, at(36, 0, 0))
	r.must(err)
	if !spansEqual(before, after) {
		t.Fatalf("spans before:\n%s\nafter rebuild:\n%s", fmtSpans(before), fmtSpans(after))
	}
	var segsAfter []Segment
	for d := range 2 {
		s, err := c2.Day(ctx, jpeg, day0.AddDate(0, 0, d))
		r.must(err)
		segsAfter = append(segsAfter, s...)
	}
	if !slices.Equal(segsBefore, segsAfter) {
		t.Fatalf("segments before:\n%+v\nafter:\n%+v", segsBefore, segsAfter)
	}
	// The rollups say what the new logs say: two days on, when they are
	// read from the rollup, the same spans as each day read on its own.
	if _, err := st.Read(ctx, RollupObject(h264), 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the rollup of a stream with no logs: %v", err)
	}
	if rl := rollupOf(t, st, jpeg); !rl.speaksFor(d0) || !rl.speaksFor(d0+1) {
		t.Fatalf("the rebuilt rollup: %+v", rl)
	}
	later := func() time.Time { return at(96, 0, 0) }
	fromRollup, err := New(st, &Options{Now: later}).Spans(ctx, "cam", day0, later())
	r.must(err)
	dayByDay, err := New(withoutRollups{st}, &Options{Now: later}).Spans(ctx, "cam", day0, later())
	r.must(err)
	if !spansEqual(fromRollup, dayByDay) || !spansEqual(fromRollup[:len(before)-1], before[:len(before)-1]) {
		t.Fatalf("from the rollup:\n%s\nday by day:\n%s\nbefore:\n%s", fmtSpans(fromRollup), fmtSpans(dayByDay), fmtSpans(before))
	}
	if _, err := Rebuild(ctx, st, "c@m"); !errors.Is(err, ErrBadStream) {
		t.Fatalf("Rebuild of a bad room: %v", err)
	}
}

// countingStore counts a store's object reads.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	reads int
}

func (c *countingStore) Read(ctx context.Context, object string, off, n int64) ([]byte, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.Read(ctx, object, off, n)
}

func (c *countingStore) take() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.reads
	c.reads = 0
	return n
}

// TestSpansReadsEachDayOnce: listing a month of a room recorded on three
// of its days reads each day's log once (one read for a day with no log)
// but those the rollup answers, and a second listing reads only the
// cutoffs and the days that may still change (yesterday, today); the
// days with no log are remembered.
func TestSpansReadsEachDayOnce(t *testing.T) {
	dir, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: dir}
	now := day0.AddDate(0, 0, 30).Add(12 * time.Hour)
	c := New(st, &Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	for _, d := range []int{3, 10, 29} { // two sealed days, and yesterday
		from := day0.AddDate(0, 0, d).Add(9 * time.Hour)
		run(t, c, h264, from, from.Add(time.Hour), 10*time.Second)
		if d < 29 {
			if err := c.SealDay(ctx, h264, from); err != nil {
				t.Fatal(err)
			}
		}
	}
	st.take()
	spans, err := c.Spans(ctx, "cam", now.Add(-30*24*time.Hour), now)
	if err != nil || len(spans) != 3 {
		t.Fatalf("%d spans, %v", len(spans), err)
	}
	// 2 cutoffs and 2 rollups (jpeg has none), and a read per day
	// (from the day before the range to today) but the 12 days h264's
	// rollup speaks for (up to day 10, its last sealed one).
	if n := st.take(); n != 2+2+2*32-12 {
		t.Errorf("a cold listing read %d objects, want %d", n, 2+2+2*32-12)
	}
	again, err := c.Spans(ctx, "cam", now.Add(-30*24*time.Hour), now)
	if err != nil || !slices.EqualFunc(again, spans, func(a, b Span) bool { return a.Start.Equal(b.Start) && a.End.Equal(b.End) }) {
		t.Fatalf("a warm listing: %v, %v; want %v", again, err, spans)
	}
	// 2 cutoffs, yesterday and today of each stream.
	if n := st.take(); n != 2+2*2 {
		t.Errorf("a warm listing read %d objects, want %d", n, 2+2*2)
	}
}
