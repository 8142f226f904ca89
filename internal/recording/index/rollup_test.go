package index

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// openStore opens an empty store of a kind the rollup tests run on: a
// directory ("dir"), or S3 ("s3": versitygw, journals in a real Redis).
func openStore(t testing.TB, kind string) store.Store {
	t.Helper()
	if kind == "dir" {
		st, err := store.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "rec")
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	b, err := s3store.New(context.Background(), rdb, s3store.Config{Location: "s3://rec/t", Endpoint: srv.Endpoint,
		PathStyle: "true", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// withoutRollups is a store seen as if it held no rollup: a catalog on it
// reads every day on its own.
type withoutRollups struct{ store.Store }

func (w withoutRollups) Read(ctx context.Context, object string, off, n int64) ([]byte, error) {
	if strings.HasSuffix(object, "/days") {
		return nil, fmt.Errorf("%w: %q (hidden)", store.ErrNotFound, object)
	}
	return w.Store.Read(ctx, object, off, n)
}

// refusingPuts is a store whose Put refuses the objects refuse names, as
// a store that cannot be written refuses them.
type refusingPuts struct {
	store.Store
	mu     sync.Mutex
	refuse map[string]bool
}

func (r *refusingPuts) set(name string, refuse bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refuse[name] = refuse
}

func (r *refusingPuts) Put(ctx context.Context, object string, data []byte) error {
	r.mu.Lock()
	refuse := r.refuse[object]
	r.mu.Unlock()
	if refuse {
		return fmt.Errorf("%w: %q refused by the test", store.ErrUnavailable, object)
	}
	return r.Store.Put(ctx, object, data)
}

func rollupOf(t testing.TB, st store.Store, s frames.Stream) *rollup {
	t.Helper()
	r, err := New(st, nil).readRollup(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRollupFormat: a rollup round-trips and says what it was told; any
// damaged or missing byte makes it unreadable.
func TestRollupFormat(t *testing.T) {
	r := &rollup{from: 100, through: 130, logs: map[int64]rolledLog{
		101: {spans: []span{{1, 2}, {5, 9}}},
		110: {spans: []span{}}, // a sealed log with nothing left (its segments withdrawn)
		120: {open: true},      // a sealed log with an open segment: no summary
	}}
	b := encodeRollup(r)
	got, ok := parseRollup(b)
	if !ok || !bytes.Equal(encodeRollup(got), b) {
		t.Fatalf("parseRollup = %+v, %v", got, ok)
	}
	for _, c := range []struct {
		d          int64
		spans      int
		logged, ok bool
	}{
		{101, 2, true, true},
		{110, 0, true, true},
		{105, 0, false, true}, // no log that day
		{100, 0, false, true},
		{130, 0, false, true},
		{120, 0, false, false}, // read the log
		{99, 0, false, false},  // before what it speaks for
		{131, 0, false, false}, // after
	} {
		spans, logged, ok := got.claim(c.d)
		if len(spans) != c.spans || logged != c.logged || ok != c.ok {
			t.Errorf("claim(%d) = %v %v %v", c.d, spans, logged, ok)
		}
	}
	if _, _, ok := (*rollup)(nil).claim(101); ok {
		t.Error("a nil rollup claims a day")
	}
	for i := range b {
		d := bytes.Clone(b)
		d[i] ^= 0x10
		if _, ok := parseRollup(d); ok {
			t.Fatalf("byte %d damaged: accepted", i)
		}
		if _, ok := parseRollup(b[:i]); ok {
			t.Fatalf("torn at %d: accepted", i)
		}
	}
}

// TestRollupAgrees: Spans answers the same with the rollups as without
// them (every day read on its own), cold and warm, over random footage of
// two streams across days and midnights: days without footage, open and
// withdrawn segments, days left unsealed, late records in sealed days
// (then sealed again), cutoffs mid-day, days sealed after the cutoffs,
// and a damaged rollup (logged once). On a directory and on S3.
func TestRollupAgrees(t *testing.T) {
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			testRollupAgrees(t, openStore(t, kind), rand.New(rand.NewPCG(seed, 1)))
		})
	}
}

func testRollupAgrees(t *testing.T, st store.Store, rng *rand.Rand) {
	ctx := context.Background()
	clk := &clock{now: day0}
	quiet := slog.New(slog.DiscardHandler)
	w := New(st, &Options{Now: clk.Now, Logger: quiet}) // the recorders'
	streams := []frames.Stream{h264, jpeg}
	footage := func(s frames.Stream, d int) {
		day := day0.AddDate(0, 0, d)
		for range rng.IntN(5) { // bursts; none some days
			at := day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Millisecond)
			for range 1 + rng.IntN(6) {
				length := time.Duration(1+rng.IntN(30)) * time.Second
				switch rng.IntN(20) {
				case 0: // a recorder died mid-segment, its journal since gone
					if err := w.Opened(ctx, s, at); err != nil {
						t.Fatal(err)
					}
				case 1: // withdrawn: no frame in it
					if err := w.Opened(ctx, s, at); err != nil {
						t.Fatal(err)
					}
					if err := w.Sealed(ctx, s, segment.Summary{Start: at, End: at}); err != nil {
						t.Fatal(err)
					}
				default:
					sealedSeg(t, w, s, at, at.Add(length))
				}
				at = at.Add(length + []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Minute}[rng.IntN(4)])
			}
		}
	}
	type streamDay struct {
		s frames.Stream
		d int
	}
	seal := func(sd streamDay) {
		t.Helper()
		if err := w.SealDay(ctx, sd.s, day0.AddDate(0, 0, sd.d)); err != nil {
			t.Fatalf("SealDay %v %d: %v", sd.s, sd.d, err)
		}
	}
	check := func(state string) {
		t.Helper()
		now := clk.Now()
		ranges := [][2]time.Time{{day0.AddDate(0, 0, -2), now}, {now.Add(-30 * 24 * time.Hour), now}}
		for range 6 {
			from := day0.Add(time.Duration(rng.Int64N(int64(now.Sub(day0)))))
			ranges = append(ranges, [2]time.Time{from, from.Add(time.Duration(rng.Int64N(int64(now.Sub(from)) + 1)))})
		}
		for _, r := range ranges {
			want, err := New(withoutRollups{st}, &Options{Now: clk.Now}).Spans(ctx, "cam", r[0], r[1])
			if err != nil {
				t.Fatal(err)
			}
			rolled := New(st, &Options{Now: clk.Now, Logger: quiet})
			for _, temp := range []string{"cold", "warm"} {
				got, err := rolled.Spans(ctx, "cam", r[0], r[1])
				if err != nil {
					t.Fatal(err)
				}
				if !spansEqual(got, want) {
					t.Fatalf("%s: %s, %s to %s:\nwith the rollups\n%swithout\n%s", state, temp,
						r[0].Format(time.DateTime), r[1].Format(time.DateTime), fmtSpans(got), fmtSpans(want))
				}
			}
		}
	}

	const days = 16
	for d := range days {
		for _, s := range streams {
			footage(s, d)
		}
	}
	clk.set(day0.AddDate(0, 0, days).Add(13 * time.Hour))
	var sealed, unsealed []streamDay
	for d := range days { // as recorders do after each midnight; some died first
		for _, s := range streams {
			if sd := (streamDay{s, d}); rng.IntN(6) == 0 {
				unsealed = append(unsealed, sd)
			} else {
				seal(sd)
				sealed = append(sealed, sd)
			}
		}
	}
	for _, s := range streams { // it speaks up to the last day sealed
		objs, err := st.List(ctx, streamPrefix("idx", s))
		if err != nil {
			t.Fatal(err)
		}
		last := int64(-1)
		for _, o := range objs {
			if _, day, ok := ParseLogName(o.Name); ok && !day.IsZero() {
				last = max(last, dayOf(day.UnixMicro()))
			}
		}
		if r := rollupOf(t, st, s); last >= 0 && (r == nil || r.through != last) {
			t.Fatalf("the rollup of %v, last sealed log %d: %+v", s, last, r)
		}
	}
	check("sealed")

	var late []streamDay
	for range 4 {
		sd := sealed[rng.IntN(len(sealed))]
		at := day0.AddDate(0, 0, sd.d).Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Millisecond)
		sealedSeg(t, w, sd.s, at, at.Add(5*time.Second))
		late = append(late, sd)
	}
	check("late records")

	for _, sd := range append(late, unsealed...) { // sealed again, or at last
		seal(sd)
	}
	check("sealed again")

	for i, s := range streams {
		cut := day0.AddDate(0, 0, 3+2*i+rng.IntN(4)).Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))).Truncate(time.Microsecond)
		if err := w.SetCutoff(ctx, s, cut); err != nil {
			t.Fatal(err)
		}
	}
	check("cutoffs")

	for d := days; d < days+4; d++ {
		for _, s := range streams {
			footage(s, d)
		}
	}
	clk.set(day0.AddDate(0, 0, days+4).Add(time.Hour))
	for d := days; d < days+4; d++ {
		for _, s := range streams {
			seal(streamDay{s, d})
		}
	}
	for _, s := range streams {
		cut, err := w.Cutoff(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if r := rollupOf(t, st, s); r == nil || r.from != dayOf(cut.UnixMicro()) {
			t.Fatalf("the rollup of %v after the cutoff %v: %+v", s, cut, r)
		}
	}
	check("more days, sealed after the cutoffs")

	b, err := st.Read(ctx, RollupObject(h264), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := st.Put(ctx, RollupObject(h264), b); err != nil {
		t.Fatal(err)
	}
	check("a damaged rollup")
	var logs testenv.SyncBuffer
	c := New(st, &Options{Now: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for back := range 3 { // days not in memory yet: the rollup is read each time
		if _, err := c.Spans(ctx, "cam", day0.AddDate(0, 0, -10*back), clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "rollup of a stream is damaged"); n != 1 {
		t.Fatalf("a catalog logged the damaged rollup %d times, want once:\n%s", n, logs.String())
	}
	// The next seal writes it whole again.
	sealedSeg(t, w, h264, day0.AddDate(0, 0, days+4).Add(time.Hour), day0.AddDate(0, 0, days+4).Add(time.Hour+10*time.Second))
	clk.set(day0.AddDate(0, 0, days+5).Add(time.Hour))
	seal(streamDay{h264, days + 4})
	if r := rollupOf(t, st, h264); r == nil || r.through != dayOf(day0.UnixMicro())+days+4 {
		t.Fatalf("the rollup after the next seal: %+v", r)
	}
	check("rewritten")
}

// TestRollupColdReads: with every past day sealed, a replica's first
// listing of a month reads each stream's cutoff and rollup, and the logs
// of yesterday and today; the next reads no rollup.
func TestRollupColdReads(t *testing.T) {
	dir, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{Store: dir}
	ctx := context.Background()
	clk := &clock{now: day0}
	w := New(dir, &Options{Now: clk.Now})
	for d := range 32 {
		from := day0.AddDate(0, 0, d).Add(9 * time.Hour)
		for _, s := range []frames.Stream{h264, jpeg} {
			run(t, w, s, from, from.Add(10*time.Minute), 10*time.Second)
		}
	}
	clk.set(day0.AddDate(0, 0, 32).Add(time.Hour))
	for d := range 32 {
		for _, s := range []frames.Stream{h264, jpeg} {
			if err := w.SealDay(ctx, s, day0.AddDate(0, 0, d)); err != nil {
				t.Fatal(err)
			}
		}
	}
	now := clk.Now()
	c := New(st, &Options{Now: clk.Now})
	spans, err := c.Spans(ctx, "cam", now.Add(-30*24*time.Hour), now)
	if err != nil || len(spans) != 30 {
		t.Fatalf("%d spans, %v", len(spans), err)
	}
	if n := st.take(); n != 2*4 {
		t.Errorf("a cold listing read %d objects, want 8: per stream its cutoff, its rollup, yesterday's and today's logs", n)
	}
	if _, err := c.Spans(ctx, "cam", now.Add(-30*24*time.Hour), now); err != nil {
		t.Fatal(err)
	}
	if n := st.take(); n != 2*3 {
		t.Errorf("a warm listing read %d objects, want 6: per stream its cutoff, yesterday's and today's logs", n)
	}
}

// TestRollupNotWritten: a rollup that cannot be written fails no seal
// (ErrRollup: the day is sealed) and the day is read on its own; the next
// seal puts it in. A day log that cannot be written leaves the rollup no
// longer speaking for that day.
func TestRollupNotWritten(t *testing.T) {
	for _, kind := range []string{"dir", "s3"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st := &refusingPuts{Store: openStore(t, kind), refuse: map[string]bool{}}
			clk := &clock{now: day0}
			w := New(st, &Options{Now: clk.Now})
			for d := range 5 {
				from := day0.AddDate(0, 0, d).Add(9 * time.Hour)
				run(t, w, h264, from, from.Add(time.Minute), 10*time.Second)
			}
			clk.set(day0.AddDate(0, 0, 5).Add(time.Hour))
			agrees := func(state string) {
				t.Helper()
				now := clk.Now()
				want, err := New(withoutRollups{st}, &Options{Now: clk.Now}).Spans(ctx, "cam", day0, now)
				if err != nil {
					t.Fatal(err)
				}
				got, err := New(st, &Options{Now: clk.Now}).Spans(ctx, "cam", day0, now)
				if err != nil || !spansEqual(got, want) {
					t.Fatalf("%s: with the rollup %v\n%swithout\n%s", state, err, fmtSpans(got), fmtSpans(want))
				}
			}

			st.set(RollupObject(h264), true)
			if err := w.SealDay(ctx, h264, day0); !errors.Is(err, ErrRollup) {
				t.Fatalf("SealDay with the rollup refused: %v, want ErrRollup", err)
			}
			if _, err := st.ReadJournal(ctx, DayLog(h264, day0)); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the day is not sealed: its journal %v", err)
			}
			if r := rollupOf(t, st, h264); r != nil {
				t.Fatalf("a rollup: %+v", r)
			}
			agrees("no rollup")

			st.set(RollupObject(h264), false)
			for d := 1; d < 4; d++ {
				if err := w.SealDay(ctx, h264, day0.AddDate(0, 0, d)); err != nil {
					t.Fatal(err)
				}
			}
			r := rollupOf(t, st, h264)
			if _, logged, ok := r.claim(dayOf(day0.UnixMicro())); !ok || !logged {
				t.Fatalf("the rollup does not have the first day: %+v", r)
			}
			agrees("the rollup written by the next seals")

			// A late record on day 2, sealed again, but its log refused.
			d2 := day0.AddDate(0, 0, 2)
			sealedSeg(t, w, h264, d2.Add(15*time.Hour), d2.Add(15*time.Hour+10*time.Second))
			st.set(DayLog(h264, d2), true)
			if err := w.SealDay(ctx, h264, d2); err == nil || errors.Is(err, ErrRollup) {
				t.Fatalf("SealDay with its log refused: %v", err)
			}
			if _, _, ok := rollupOf(t, st, h264).claim(dayOf(d2.UnixMicro())); ok {
				t.Fatal("the rollup still speaks for a day whose log is being written")
			}
			agrees("a day's log refused")
			st.set(DayLog(h264, d2), false)
			if err := w.SealDay(ctx, h264, d2); err != nil {
				t.Fatal(err)
			}
			if spans, _, ok := rollupOf(t, st, h264).claim(dayOf(d2.UnixMicro())); !ok || len(spans) != 2 {
				t.Fatalf("day 2 in the rollup: %v %v, want the late record's span too", spans, ok)
			}
			agrees("sealed again")
		})
	}
}
