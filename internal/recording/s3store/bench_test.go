package s3store_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/playback"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// The playback benchmarks run against a real S3 server (versitygw on
// loopback) holding 30 days of one room's two streams, as the index's
// BenchmarkSpans30Days does: 10 s segments back to back, 29 sealed day
// logs and each stream's rollup of them (as SealDay writes it), today's
// log (a journal, in Redis), 518,400 segments. The last
// half hour has real segments at the sender's sizes: its JPEG stream at
// 10 fps of 40 KB pictures (4 MB segments), its H.264 stream 720p at
// 30 fps with a keyframe every 2 s. Run them with
//
//	go test -run '^$' -bench BenchmarkPlayback -benchtime 200x ./internal/recording/s3store/

var (
	benchDay0   = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	benchToday  = benchDay0.AddDate(0, 0, 29)
	benchNow    = benchToday.Add(24*time.Hour - 10*time.Second)
	benchReal   = benchNow.Add(-30 * time.Minute) // real segments from here
	benchStream = map[frames.Codec]frames.Stream{
		frames.CodecH264: {Room: "cam", Codec: frames.CodecH264},
		frames.CodecJPEG: {Room: "cam", Codec: frames.CodecJPEG},
	}
)

// playbackStore fills a store on e as described above and returns it.
func playbackStore(b *testing.B, e *env, transport *Requests) (*s3store.Bucket, s3store.Config) {
	b.Helper()
	ctx := context.Background()
	cfg := e.config(b)
	cfg.Transport = transport
	st := e.open(b, func(c *s3store.Config) { *c = cfg })
	// The logs are written through a directory store's catalog (fast local
	// appends), then copied: sealed days as objects, today's as a journal.
	dir, err := store.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	now := func() time.Time { return benchNow }
	logs := index.New(dir, &index.Options{Now: now})
	for _, s := range benchStream {
		for d := range 30 {
			day := benchDay0.AddDate(0, 0, d)
			for i := range 8640 {
				start := day.Add(time.Duration(i) * 10 * time.Second)
				if !start.Before(benchReal) {
					break
				}
				sum := segment.Summary{Start: start, End: start.Add(10 * time.Second), Bytes: 4_000_000, Frames: 100,
					FirstSeq: uint64(i * 100), LastSeq: uint64(i*100 + 99)}
				if err := logs.Sealed(ctx, s, sum); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	// The real half hour, recorded through the S3 store as a recorder
	// writes it; its records go to the directory's log with the rest.
	n := int(benchNow.Sub(benchReal) / (100 * time.Millisecond))
	jpegs := make([]*frames.Frame, n)
	for i := range jpegs {
		f, err := frames.New(frames.KindJPEG, uint64(1+i), benchReal.Add(time.Duration(i)*100*time.Millisecond), testenv.JPEG(b, 32, 24, i%8, 40_000), 0)
		if err != nil {
			b.Fatal(err)
		}
		f.Room = "cam"
		jpegs[i] = f
	}
	recordtest.Record(b, st, logs, benchStream[frames.CodecJPEG], jpegs, false)
	clip := testenv.MakeH264Clip(b, 1280, 720, 300, 60) // 10 s at 30 fps
	var h264 []*frames.Frame
	for k := range int(benchNow.Sub(benchReal) / (10 * time.Second)) {
		h264 = append(h264, recordtest.H264(b, "cam", clip, benchReal.Add(time.Duration(k)*10*time.Second), time.Second/30, uint64(1+k*300))...)
	}
	recordtest.Record(b, st, logs, benchStream[frames.CodecH264], h264, false)
	for _, s := range benchStream {
		for d := range 29 {
			if err := logs.SealDay(ctx, s, benchDay0.AddDate(0, 0, d)); err != nil {
				b.Fatal(err)
			}
		}
	}
	objs, err := dir.List(ctx, "idx/")
	if err != nil {
		b.Fatal(err)
	}
	for _, o := range objs {
		data, err := dir.Read(ctx, o.Name, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Put(ctx, o.Name, data); err != nil {
			b.Fatal(err)
		}
	}
	journals, err := dir.Journals(ctx, "idx/")
	if err != nil {
		b.Fatal(err)
	}
	for _, j := range journals {
		data, err := dir.ReadJournal(ctx, j)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Append(ctx, j, data); err != nil {
			b.Fatal(err)
		}
	}
	var seg []int64
	for _, s := range benchStream {
		day, err := index.New(st, &index.Options{Now: now}).Day(ctx, s, benchToday)
		if err != nil {
			b.Fatal(err)
		}
		last := day[len(day)-1]
		seg = append(seg, last.Bytes)
	}
	b.Logf("store ready: %d sealed day logs, %d journals; last segments of %v bytes", len(objs), len(journals), seg)
	transport.Take()
	return st, cfg
}

// percentiles reports p50 and p95 of ds in ms.
func percentiles(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	ms := func(q float64) float64 { return float64(ds[int(q*float64(len(ds)-1))]) / 1e6 }
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.95), "p95-ms")
	b.ReportMetric(0, "ns/op")
}

// requestsPerOp reports the S3 requests per operation.
func requestsPerOp(b *testing.B, reqs *Requests) {
	for kind, n := range reqs.Take() {
		b.ReportMetric(float64(n)/float64(b.N), kind+"/op")
	}
}

func BenchmarkPlayback(b *testing.B) {
	e := newEnv(b)
	reqs := newRequests()
	st, cfg := playbackStore(b, e, reqs)
	// The same store through a link with 5 ms each way: an object store
	// in another building, where a request costs its round trip more
	// than the server's work.
	proxy := testenv.StartProxy(b, e.s3.Endpoint, 5*time.Millisecond)
	far := e.open(b, func(c *s3store.Config) { *c = cfg; c.Endpoint = proxy.Addr() })
	for _, where := range []struct {
		name string
		st   store.Store
	}{{"", st}, {"rtt10ms-", far}} {
		benchPlayback(b, where.name, where.st, reqs)
	}
}

func benchPlayback(b *testing.B, prefix string, st store.Store, reqs *Requests) {
	ctx := context.Background()
	now := func() time.Time { return benchNow }
	lib := &playback.Library{Store: st, Catalog: index.New(st, &index.Options{Now: now})}
	rng := rand.New(rand.NewPCG(1, 2))

	// A seek's first picture: index Find, then the segment's index box,
	// init and parts by byte range, then the first frame, at a random
	// time of the real half hour; one library, as a gateway keeps.
	for _, codec := range []frames.Codec{frames.CodecJPEG, frames.CodecH264} {
		b.Run(prefix+"seek-"+codec.String(), func(b *testing.B) {
			var ds []time.Duration
			reqs.Take()
			for b.Loop() {
				at := benchReal.Add(time.Duration(rng.Int64N(int64(29 * time.Minute))))
				start := time.Now()
				r, err := lib.Seek(ctx, benchStream[codec], at)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Next(ctx); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
			}
			requestsPerOp(b, reqs)
			percentiles(b, ds)
		})
	}
	// Listing 30 days of spans: cold is a new catalog (a replica that just
	// started), warm the same one again (days before yesterday cached).
	from, to := benchNow.Add(-30*24*time.Hour), benchNow
	for _, warm := range []bool{false, true} {
		name := "spans30d-cold"
		if warm {
			name = "spans30d-warm"
		}
		b.Run(prefix+name, func(b *testing.B) {
			c := index.New(st, &index.Options{Now: now})
			if _, err := c.Spans(ctx, "cam", from, to); err != nil {
				b.Fatal(err)
			}
			var ds []time.Duration
			reqs.Take()
			for b.Loop() {
				if !warm {
					c = index.New(st, &index.Options{Now: now})
				}
				start := time.Now()
				spans, err := c.Spans(ctx, "cam", from, to)
				if err != nil || len(spans) != 1 {
					b.Fatalf("%d spans, %v", len(spans), err)
				}
				ds = append(ds, time.Since(start))
			}
			requestsPerOp(b, reqs)
			percentiles(b, ds)
		})
	}
	// A 1-minute clip (H.264, the room has it): everything read and the
	// MP4 made, which is when its first byte can be sent.
	b.Run(prefix+"clip-1min", func(b *testing.B) {
		var ds []time.Duration
		reqs.Take()
		for b.Loop() {
			at := benchReal.Add(time.Duration(rng.Int64N(int64(28 * time.Minute))))
			start := time.Now()
			c, err := lib.Clip(ctx, "cam", at, at.Add(time.Minute))
			if err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(start))
			if c.Frames < 1700 {
				b.Fatalf("a clip of %d frames", c.Frames)
			}
		}
		requestsPerOp(b, reqs)
		percentiles(b, ds)
	})
}
