package s3store_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/playback"
	"github.com/framecast/framecast/internal/recording/recorder"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/retention"
	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

func show(c map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, c[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// TestRequestsPerHour records an hour of a room at the sender's defaults
// through the store, as a recorder calls it (recordtest.Record: each
// segment's journal appended part by part, sealed, indexed), and counts
// the S3 requests by kind from the client's transport: what recording, a
// seek with a minute of playback, listing spans, and retention's passes
// (internal/recording/retention, as the recorders run it) cost. It
// checks the budget (one PUT per segment, no GET or LIST while recording,
// no LIST on a seek's path) and logs the figures docs/recording.md
// reports.
func TestRequestsPerHour(t *testing.T) {
	e := newEnv(t)
	reqs := newRequests()
	b := e.open(t, func(c *s3store.Config) { c.Transport = reqs })
	t.Logf("opening the store: %s", show(reqs.Take()))
	ctx := context.Background()
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	end := start.Add(time.Hour)
	now := func() time.Time { return end.Add(time.Minute) }
	cat := index.New(b, &index.Options{Now: now})

	// A JPEG room (SENDER_CODEC jpeg, SENDER_FPS 10).
	jpegRoom := frames.Stream{Room: "jpegcam", Codec: frames.CodecJPEG}
	recordtest.Record(t, b, cat, jpegRoom, recordtest.JPEG(t, "jpegcam", start, 36000, 100*time.Millisecond, 1), false)
	jpeg := reqs.Take()
	t.Logf("an hour of a JPEG room at 10 fps: %s", show(jpeg))

	// An H.264 room (SENDER_CODEC h264, FPS 10, a keyframe every 2 s) and
	// its 2 fps JPEG layer.
	clip := testenv.MakeH264Clip(t, 64, 48, 600, 20) // a minute at 10 fps
	var h264fs []*frames.Frame
	for m := range 60 {
		h264fs = append(h264fs, recordtest.H264(t, "h264cam", clip, start.Add(time.Duration(m)*time.Minute), 100*time.Millisecond, uint64(1+m*600))...)
	}
	h264Room := frames.Stream{Room: "h264cam", Codec: frames.CodecH264}
	recordtest.Record(t, b, cat, h264Room, h264fs, false)
	recordtest.Record(t, b, cat, frames.Stream{Room: "h264cam", Codec: frames.CodecJPEG},
		recordtest.JPEG(t, "h264cam", start, 7200, 500*time.Millisecond, 1), false)
	h264 := reqs.Take()
	t.Logf("an hour of an H.264 room at 10 fps with its 2 fps JPEG layer: %s", show(h264))

	segs := func(s frames.Stream) int {
		day, err := cat.Day(ctx, s, start)
		if err != nil {
			t.Fatal(err)
		}
		return len(day)
	}
	jpegSegs, h264Segs, layerSegs := segs(jpegRoom), segs(h264Room), segs(frames.Stream{Room: "h264cam", Codec: frames.CodecJPEG})
	t.Logf("segments: JPEG room %d; H.264 room %d + %d of its JPEG layer", jpegSegs, h264Segs, layerSegs)
	if jpeg["PUT"] != jpegSegs || len(jpeg) != 1 {
		t.Errorf("recording a JPEG room: %s for %d segments; want one PUT per segment and nothing else", show(jpeg), jpegSegs)
	}
	if h264["PUT"] != h264Segs+layerSegs || len(h264) != 1 {
		t.Errorf("recording an H.264 room: %s for %d segments; want one PUT per segment and nothing else", show(h264), h264Segs+layerSegs)
	}

	// The end of the day: each stream's log becomes an object, and the
	// day goes into the stream's rollup (a PUT each a day per stream; the
	// first rollup lists the stream's logs).
	dayNow := func() time.Time { return start.Add(24 * time.Hour) }
	sealer := index.New(b, &index.Options{Now: dayNow})
	for _, s := range []frames.Stream{jpegRoom, h264Room, {Room: "h264cam", Codec: frames.CodecJPEG}} {
		if err := sealer.SealDay(ctx, s, start); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("sealing the day's logs of 3 streams: %s", show(reqs.Take()))

	// A seek and a minute of playback, as a viewer's ?at= does, on a
	// fresh replica (nothing cached).
	lib := &playback.Library{Store: b, Catalog: index.New(b, &index.Options{Now: dayNow})}
	for _, s := range []frames.Stream{jpegRoom, h264Room} {
		at := start.Add(25*time.Minute + 3*time.Second)
		r, err := lib.Seek(ctx, s, at)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Next(ctx); err != nil {
			t.Fatal(err)
		}
		seek := reqs.Take()
		for {
			f, err := r.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if f.Captured.After(at.Add(time.Minute)) {
				break
			}
		}
		minute := reqs.Take()
		t.Logf("%v: a seek's first picture: %s; the minute after it: %s", s, show(seek), show(minute))
		if seek["LIST"]+minute["LIST"] > 0 {
			t.Errorf("LIST on the path of a seek or playback")
		}
	}

	// Listing spans: a fresh replica, then a warm one. The day's rollup
	// answers for the month (days without a log too): the cold listing
	// reads per stream its cutoff, its rollup, and yesterday's and
	// today's logs.
	spans := index.New(b, &index.Options{Now: dayNow})
	for _, warm := range []bool{false, true} {
		if _, err := spans.Spans(ctx, "h264cam", start.Add(-30*24*time.Hour), dayNow()); err != nil {
			t.Fatal(err)
		}
		c := reqs.Take()
		t.Logf("listing 30 days of spans (warm %v): %s", warm, show(c))
		if c["LIST"] > 0 {
			t.Errorf("LIST when listing spans")
		}
		if !warm && c["GET"] > 2*4 {
			t.Errorf("a replica's first listing of 30 days made %d GETs; want at most 8 (per stream: cutoff, rollup, yesterday, today)", c["GET"])
		}
	}

	// Retention (internal/recording/retention) running for an hour, one
	// pass a second on a simulated clock, with an age and a byte limit:
	// what it reads to account bytes and to find what to delete.
	clock := dayNow()
	rcat := index.New(b, &index.Options{Now: func() time.Time { return clock }})
	w := retention.New(b, rcat, recorder.NewMemoryLeases().For("r"), &retention.Options{
		Keep: 30 * 24 * time.Hour, MaxBytes: 1 << 40, Now: func() time.Time { return clock },
		Logger: slog.New(slog.DiscardHandler)})
	for range 3600 {
		if err := w.Step(ctx); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Second)
	}
	t.Logf("retention's passes for an hour, 3 streams recorded a day before, nothing to delete: %s", show(reqs.Take()))
	// And the hour in which that footage ages out (GATEWAY_RECORD_KEEP
	// 24h): segments go in batches, Keep being applied every AgeEvery.
	clock = start.Add(24 * time.Hour)
	w = retention.New(b, rcat, recorder.NewMemoryLeases().For("r"), &retention.Options{
		Keep: 24 * time.Hour, Now: func() time.Time { return clock }, Logger: slog.New(slog.DiscardHandler)})
	for range 3600 {
		if err := w.Step(ctx); err != nil {
			t.Fatal(err)
		}
		clock = clock.Add(time.Second)
	}
	aged := reqs.Take()
	t.Logf("retention's passes for the hour that footage ages out (3 streams, %v segments deleted): %s",
		w.Stats().Deleted[retention.CauseAge], show(aged))
	if limit := 3 * int(time.Hour/retention.AgeEvery); aged["PUT"] > limit || aged["DELETE"] > limit {
		t.Errorf("aging out cost %d PUT and %d DELETE in an hour for 3 streams; want at most one of each per stream per AgeEvery (%d)",
			aged["PUT"], aged["DELETE"], limit)
	}

	// TestRetentionAtScale measures List and Delete of thousands.
}

// TestRetentionAtScale: thousands of objects are listed in pages and
// deleted in batches of 1000 (DeleteObjects), as retention by bytes
// deletes a day of a room's two streams (17,280 segments) at once.
func TestRetentionAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := newEnv(t)
	reqs := newRequests()
	b := e.open(t, func(c *s3store.Config) { c.Transport = reqs })
	ctx := context.Background()
	const n = 4321
	want := make([]string, n)
	work := make(chan int)
	errs := make(chan error, n)
	for range 8 {
		go func() {
			for i := range work {
				errs <- b.Put(ctx, want[i], []byte("x"))
			}
		}()
	}
	for i := range want {
		want[i] = fmt.Sprintf("seg/cam/h264/2026/12/07/%016d.mp4", 1796600000000000+int64(i)*10_000_000)
	}
	for i := range want {
		work <- i
	}
	close(work)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	reqs.Take()
	start := time.Now()
	objs, err := b.List(ctx, "seg/cam/")
	listed := time.Since(start)
	if err != nil || len(objs) != n {
		t.Fatalf("List: %d objects, %v", len(objs), err)
	}
	list := reqs.Take()
	start = time.Now()
	if err := b.Delete(ctx, want...); err != nil {
		t.Fatal(err)
	}
	deleted := time.Since(start)
	del := reqs.Take()
	t.Logf("%d objects: listed in %v (%s), deleted in %v (%s)", n, listed.Round(time.Millisecond), show(list), deleted.Round(time.Millisecond), show(del))
	if list["LIST"] != (n+999)/1000 || del["DELETE"] != (n+999)/1000 {
		t.Errorf("want %d LIST pages and %d DELETE batches", (n+999)/1000, (n+999)/1000)
	}
	if objs, err := b.List(ctx, "seg/"); err != nil || len(objs) != 0 {
		t.Fatalf("left after Delete: %d, %v", len(objs), err)
	}
}
