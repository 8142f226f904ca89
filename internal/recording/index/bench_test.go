package index

import (
	"context"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// thirtyDays makes a store holding 30 days of one room's footage in both
// codecs, 10 s segments back to back (records only, no segment files):
// 29 sealed day logs and today's journal, 518,400 segments (535,680
// records), and each stream's rollup; now is today 23:59:50.
func thirtyDays(b *testing.B) (*store.Dir, func() time.Time) {
	b.Helper()
	st, err := store.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	const per = 8640
	today := day0.AddDate(0, 0, 29)
	sealed := map[string][]seg{}
	for _, s := range []frames.Stream{h264, jpeg} {
		for d := range 30 {
			day := day0.AddDate(0, 0, d)
			var log []byte
			var segs []seg
			for i := range per {
				start := day.Add(time.Duration(i) * 10 * time.Second).UnixMicro()
				r := seg{start: start, end: start + 10e6, bytes: 4_500_000, frames: 300, firstSeq: uint64(i * 300), lastSeq: uint64(i*300 + 299)}
				log = appendRecord(appendRecord(log, seg{start: start, open: true}), r)
				segs = append(segs, r)
			}
			if day.Equal(today) { // a journal, as recorders append it
				err = st.Append(ctx, DayLog(s, day), log)
			} else { // sealed, as SealDay writes it
				err = st.Put(ctx, DayLog(s, day), encodeLog(segs))
				sealed[DayLog(s, day)] = segs
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := writeRollups(ctx, st, map[string]frames.Stream{RollupObject(h264): h264, RollupObject(jpeg): jpeg}, sealed); err != nil {
		b.Fatal(err)
	}
	now := today.Add(24*time.Hour - 10*time.Second)
	return st, func() time.Time { return now }
}

// BenchmarkSpans30Days lists 30 days of a room's footage (two streams,
// 10 s segments: 518,400 segments, 535,680 records). Cold is the first
// call of a new Catalog: the rollups, yesterday's summaries and today's
// whole journals are read (cold-day-by-day: without the rollups, every
// sealed day's summary, its first kilobytes). Warm is a call with the
// days before yesterday cached: yesterday's summaries and today's
// journals are read again. find-cold is Find in a new Catalog (two whole
// day logs read).
func BenchmarkSpans30Days(b *testing.B) {
	st, now := thirtyDays(b)
	ctx := context.Background()
	from, to := now().Add(-30*24*time.Hour), now()
	check := func(spans []Span, err error) {
		if err != nil || len(spans) != 1 || len(spans[0].Codecs) != 2 {
			b.Fatalf("%d spans, %v", len(spans), err)
		}
	}
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			c := New(st, &Options{Now: now})
			check(c.Spans(ctx, "cam", from, to))
		}
	})
	b.Run("cold-day-by-day", func(b *testing.B) {
		for b.Loop() {
			c := New(withoutRollups{st}, &Options{Now: now})
			check(c.Spans(ctx, "cam", from, to))
		}
	})
	b.Run("warm", func(b *testing.B) {
		c := New(st, &Options{Now: now})
		check(c.Spans(ctx, "cam", from, to))
		for b.Loop() {
			check(c.Spans(ctx, "cam", from, to))
		}
	})
	b.Run("find-cold", func(b *testing.B) {
		at := now().Add(-15 * 24 * time.Hour)
		for b.Loop() {
			c := New(st, &Options{Now: now})
			if _, err := c.Find(ctx, h264, at); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("find-warm", func(b *testing.B) {
		c := New(st, &Options{Now: now})
		check(c.Spans(ctx, "cam", from, to))
		at := now().Add(-15 * 24 * time.Hour)
		for b.Loop() {
			if _, err := c.Find(ctx, h264, at); err != nil {
				b.Fatal(err)
			}
		}
	})
}
