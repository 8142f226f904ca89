package main

// S14: recording and playback (#20 item 13) against a real gateway that
// plays back from a store the scenario fills first (footage.go): seek to
// the first picture and back to live on one connection (loadgen -seeks),
// listing 30 days of a room, and a 1-minute clip export; then what
// recording costs (scenarios_recording_cost.go).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/pkg/frames"
)

func init() {
	scenarios = append(scenarios, scenario{"S14", "recording and playback: seek to the first picture, back to live, listing 30 days, a 1-minute clip, on a store holding hours of footage", runS14})
}

const (
	// s14Room's footage is played back; s14MonthRoom has 30 days of index
	// records, for the listing.
	s14Room      = "s14_cam"
	s14MonthRoom = "s14_month"
	// s14Kbps is the sender's default bitrate at 640×360, 30 fps
	// (h264enc.DefaultBitrate; not imported: it would build OpenH264).
	s14Kbps = 625
	// s14JPEGStep: the JPEG stream is every 15th picture, 2 fps at 30 fps
	// (SENDER_JPEG_FPS's default).
	s14JPEGStep = 15
	// s14Viewers watch the room live on the seeking viewer's gateway.
	s14Viewers = 10
)

// s14Plan is how much S14 does.
type s14Plan struct {
	footage              time.Duration
	seeksH264, seeksJPEG int
	listCold, listWarm   int // fresh gateways listing once; calls on the last
	clips                int
}

func (b *bench) s14Plan() s14Plan {
	if b.quick {
		return s14Plan{footage: 15 * time.Minute, seeksH264: 10, seeksJPEG: 5, listCold: 1, listWarm: 10, clips: 2}
	}
	return s14Plan{footage: 2 * time.Hour, seeksH264: 100, seeksJPEG: 50, listCold: 3, listWarm: 100, clips: 5}
}

func runS14(b *bench, sec *section) error {
	plan := b.s14Plan()
	ctx := b.ctx

	// The clip: 10 s of the test clip at 640×360, a keyframe every 2 s.
	spec := testclip.H264ClipSpec{Clip: testclip.Clip{Width: 640, Height: 360, FPS: 30, Frames: 300, Noise: 8}, Kbps: s14Kbps, GOP: 60, Live: true}
	clipPath := filepath.Join(b.dir, "s14-clip.h264")
	sec.commands = append(sec.commands, spec.Command(clipPath))
	b.logf("making the H.264 clip and its JPEGs")
	t := time.Now()
	clip, err := testclip.MakeH264Clip(ctx, spec, clipPath)
	if err != nil {
		return err
	}
	jpegs, err := clipJPEGs(ctx, spec.Clip, s14JPEGStep, 80)
	if err != nil {
		return err
	}
	tClip := time.Since(t)

	// The store: the footage, then 30 days of a second room's index.
	dir := filepath.Join(b.dir, "s14-store")
	st, err := store.NewDir(dir)
	if err != nil {
		return err
	}
	end := time.Now().Add(-5 * time.Second).Truncate(time.Millisecond)
	start := end.Add(-plan.footage)
	b.logf("recording %v of %s into %s", plan.footage, s14Room, dir)
	t = time.Now()
	ft, err := recordFootage(ctx, st, index.New(st, nil), s14Room, clip, jpegs, s14JPEGStep, spec.Clip.FPS, start, plan.footage)
	if err != nil {
		return err
	}
	tRecord := time.Since(t)
	// The month's segments are sized like the footage's.
	segLen := 10 * time.Second
	per := map[frames.Codec]int64{
		frames.CodecH264: ft.h264.bytes / int64(max(ft.h264.segments, 1)),
		frames.CodecJPEG: ft.jpeg.bytes / int64(max(ft.jpeg.segments, 1)),
	}
	framesPer := map[frames.Codec]int{frames.CodecH264: 300 + 5, frames.CodecJPEG: 20} // pictures and configurations
	b.logf("indexing 30 days of %s", s14MonthRoom)
	t = time.Now()
	monthStart := end.Add(-30 * 24 * time.Hour)
	monthSegs, err := indexDays(ctx, st, s14MonthRoom, monthStart, end, segLen, per, framesPer)
	if err != nil {
		return fmt.Errorf("failed to index 30 days of %s: %w", s14MonthRoom, err)
	}
	tIndex := time.Since(t)
	footageBytes := dirBytes(dir, "objects/seg/"+s14Room)
	indexBytes := dirBytes(dir, "objects/idx/"+s14MonthRoom) + dirBytes(dir, "journals/idx/"+s14MonthRoom)
	storeBytes := dirBytes(dir, "")
	hours := plan.footage.Hours()
	env := "GATEWAY_RECORD_STORE=" + dir

	// Listing 30 days: the first call of fresh gateways (cold), then
	// repeated calls on the last (warm).
	listURL := func(g *gateway) string {
		return fmt.Sprintf("http://127.0.0.1:%d/video/%s/recordings?from=-720h", g.port, s14MonthRoom)
	}
	var cold, warm []float64
	var listBytes int
	for i := range plan.listCold {
		gws, err := b.startGateways(1, env)
		if err != nil {
			return err
		}
		if i == 0 {
			b.recordGateways(sec, gws)
			sec.commands = append(sec.commands, fmt.Sprintf("curl -s '%s'  # once on each of %s, then %d times on the last", listURL(gws[0]), count(plan.listCold, "fresh gateway"), plan.listWarm))
		}
		d, n, err := getRecordings(ctx, listURL(gws[0]))
		cold = append(cold, d)
		listBytes = n
		for j := 0; err == nil && i == plan.listCold-1 && j < plan.listWarm; j++ {
			d, _, err = getRecordings(ctx, listURL(gws[0]))
			warm = append(warm, d)
		}
		stopAll(gws)
		if err != nil {
			return err
		}
	}

	// Seek and back to live: an H.264 viewer with an H.264 publisher
	// live, then a JPEG one with a JPEG publisher; fresh gateways each.
	seekFrom, seekTo := start.Add(10*time.Second), end.Add(-30*time.Second)
	seeks := func(codec string, n int) (*loadgen.Report, error) {
		gws, err := b.startGateways(1, env)
		if err != nil {
			return nil, err
		}
		defer stopAll(gws)
		b.recordGateways(sec, gws)
		a := []string{"-gateways", gws[0].ws(), "-room", s14Room, "-viewers", strconv.Itoa(s14Viewers), "-fps", "30",
			"-format", "binary", "-watch-pids", pidList(gws),
			"-seeks", strconv.Itoa(n), "-seek-from", strconv.FormatInt(seekFrom.UnixMilli(), 10), "-seek-to", strconv.FormatInt(seekTo.UnixMilli(), 10),
			"-warmup", "1s", "-duration", "4m0s"}
		if codec == "h264" {
			a = append(a, "-h264", clipPath, "-group", fmt.Sprintf("live=%d:v=2&codec=h264", s14Viewers))
		} else {
			a = append(a, "-size", strconv.Itoa(frameSize))
		}
		r, err := b.loadgen(sec, a...)
		if err == nil && (r.Seeks == nil || r.Seeks.Seeks == 0) {
			err = fmt.Errorf("no seek succeeded: %v", r.Errors)
		}
		return r, err
	}
	firstSeek := time.Now()
	hr, err := seeks("h264", plan.seeksH264)
	if err != nil {
		return err
	}
	jr, err := seeks("jpeg", plan.seeksJPEG)
	if err != nil {
		return err
	}

	// A 1-minute clip at pseudo-random places (a fixed seed).
	gws, err := b.startGateways(1, env)
	if err != nil {
		return err
	}
	b.recordGateways(sec, gws)
	rnd := rand.New(rand.NewPCG(14, 5))
	var clips []clipFetch
	for i := range plan.clips {
		s := start.Add(10*time.Second + time.Duration(rnd.Int64N(int64(plan.footage-90*time.Second)))).Truncate(time.Millisecond)
		u := fmt.Sprintf("http://127.0.0.1:%d/video/%s/clip.mp4?start=%d&end=%d", gws[0].port, s14Room, s.UnixMilli(), s.Add(time.Minute).UnixMilli())
		if i == 0 {
			sec.commands = append(sec.commands, fmt.Sprintf("curl -s -o clip.mp4 '%s'  # and %d more places", u, plan.clips-1))
		}
		c, err := getClip(ctx, u)
		if err != nil {
			stopAll(gws)
			return err
		}
		clips = append(clips, c)
	}
	stopAll(gws)

	// The report.
	sec.printf("A gateway plays back from a store (`GATEWAY_RECORD_STORE`, a directory) that the driver fills first, with capture times "+
		"ending 5 s before it starts writing. **The store**: %s of room `%s`, the project's test clip (`testsrc2` with noise, as S11 and S12) "+
		"at 640×360, 30 fps, encoded once by libx264 (first command below: %d kbit/s, the sender's default for the size; a keyframe every 2 s), "+
		"its %d pictures repeated with capture times advancing by 1/30 s and sequence numbers counting on; and its JPEG stream at 2 fps "+
		"(every 15th picture of the clip as a quality-80 JPEG made by Go's image/jpeg, %.1f KB mean, numbered as the picture it shows, as "+
		"a sender's JPEG layer beside H.264). Both streams go through the recorder's parts in the recorder's order (`segment.Writer` into "+
		"10 s segments of parts of at most 1 s, each part appended to the segment's journal, the segment sealed into its object, "+
		"`index.Catalog` told of each opening and sealing), one goroutine per stream; only the capture times are made up. Room `%s` gets 30 "+
		"days of index records alone (no segment files, as `BenchmarkSpans30Days` in internal/recording/index): both streams, 10 s "+
		"segments back to back sized like the footage's, an opening and a sealing record each, the records gathered in memory and "+
		"appended once per day log, the days before today sealed (`Catalog.SealDay`) as the recorder does after midnight.\n\n",
		span(plan.footage), s14Room, spec.Kbps, spec.Clip.Frames, meanKB(jpegs), s14MonthRoom)
	sec.printf("| step | took | what | size |\n|---|---|---|---|\n")
	sec.printf("| the clip (ffmpeg) and its %d JPEGs | %s | %.1f KB mean picture, %.1f KB mean keyframe | |\n", len(jpegs), secs(tClip),
		float64(clip.Bytes())/float64(len(clip.AUs))/1000, keyframeKB(clip))
	sec.printf("| %s of `%s` | **%s** (%.0f× real time) | H.264: %d segments; JPEG: %d segments | %s (H.264 %.0f MB/h, JPEG %.0f MB/h) |\n",
		span(plan.footage), s14Room, secs(tRecord), plan.footage.Seconds()/tRecord.Seconds(), ft.h264.segments, ft.jpeg.segments,
		mb(footageBytes), float64(ft.h264.bytes)/1e6/hours, float64(ft.jpeg.bytes)/1e6/hours)
	sec.printf("| 30 days of `%s`'s index | %s | %d segments' records, two streams | %s |\n", s14MonthRoom, secs(tIndex), monthSegs, mb(indexBytes))
	sec.printf("| the whole store | %s | | %s |\n\n", secs(tClip+tRecord+tIndex), mb(storeBytes))

	hs, js := hr.Seeks, jr.Seeks
	sec.printf("**Seek to the first picture, and back to live.** One fresh gateway per codec. A `v=2` viewer (`codec=h264` in the H.264 run) "+
		"of `%s`, with the room's live publisher on the same gateway (the load generator's: the clip above looping as H.264 in the H.264 run, "+
		"%d-byte JPEGs at 30 fps in the JPEG run) and %d live viewers of the same stream beside it, moves %d (H.264) and %d (JPEG) times: "+
		"`{\"type\":\"seek\",\"at\":…}` to a pseudo-random time of the footage (uniform over it but its first 10 s and last 30 s, fixed seed), "+
		"read until the pictures through that time arrived, 300 ms of playback, `{\"type\":\"live\"}`, read until the publisher's newest picture "+
		"arrived, 300 ms live. Times are on the viewer's clock, from just before the control message is written to the arrival of the message "+
		"named; a reader goroutine takes every message as it comes, so no live frame queues ahead of the answer. *First picture* is the first "+
		"picture after the `playback` message: the keyframe at or before the time sought (H.264; its configuration comes just before it), "+
		"the JPEG at or before it. *Through* is the last picture captured at or before the time sought: H.264's whole group up to it, "+
		"which the gateway hands over at once and a decoder needs before it can show that time. The gateway's own "+
		"`framecast_seek_first_frame_seconds` (control message read → first frame written) is scraped before and after every seek and every "+
		"return to live, so each is counted apart; its buckets bound its quantiles (\"≤\"). The first seek of each run meets the gateway's "+
		"index and the store cold (the max). The footage ended %s before the first seek; its files were just written, so the page cache holds "+
		"them (a store read from disk is not in these figures).\n\n",
		s14Room, frameSize, s14Viewers, plan.seeksH264, plan.seeksJPEG, secs(firstSeek.Sub(end)))
	sec.printf("| measure | H.264 | JPEG | target |\n|---|---|---|---|\n")
	sec.printf("| moves done / failed | %d / %d | %d / %d | |\n", hs.Seeks, hs.Failed, js.Seeks, js.Failed)
	sec.printf("| seek → `playback` message, p50 / p95 / max | %s | %s | |\n", spreadMS(hs.Playback), spreadMS(js.Playback))
	sec.printf("| seek → first recorded picture, p50 / p95 / max | **%s** | **%s** | p95 ≤ 150 ms |\n", spreadMS(hs.FirstPicture), spreadMS(js.FirstPicture))
	sec.printf("| seek → through the time sought, p50 / p95 / max | %s | %s | |\n", spreadMS(hs.Through), spreadMS(js.Through))
	sec.printf("| pictures handed over through the time sought, p50 / max | %.0f / %.0f | %.0f / %.0f | |\n", hs.Handed.P50, hs.Handed.Max, js.Handed.P50, js.Handed.Max)
	sec.printf("| first picture captured before the time sought, p50 / max | %s / %s | %s / %s | |\n", msf(hs.StartBefore.P50), msf(hs.StartBefore.Max), msf(js.StartBefore.P50), msf(js.StartBefore.Max))
	sec.printf("| the gateway's histogram, seeks: count, mean, p50, p95 | %s | %s | |\n", histCell(hs.GatewaySeek), histCell(js.GatewaySeek))
	sec.printf("| live → first live picture, p50 / p95 / max | **%s** | **%s** | ≤ 100 ms |\n", spreadMS(hs.Live), spreadMS(js.Live))
	sec.printf("| live → the publisher's newest picture, p50 / p95 / max | %s | %s | |\n", spreadMS(hs.LiveCaughtUp), spreadMS(js.LiveCaughtUp))
	sec.printf("| the gateway's histogram, returns to live: count, mean, p50, p95 | %s | %s | |\n", histCell(hs.GatewayLive), histCell(js.GatewayLive))
	hl := group(hr, "live")
	if hl != nil {
		sec.printf("| the %d live viewers meanwhile: delivered, latency p99 | %s, %s | %s, %s | |\n", s14Viewers,
			pct(hl.DeliveryRatio), msf(hl.Latency.P99), pct(jr.DeliveryRatio), msf(jr.Latency.P99))
	}
	sec.printf("| gateway CPU over the run (cores) | %.3f | %.3f | |\n\n", gatewayCPUMS(hr)/1000/hr.WindowSec, gatewayCPUMS(jr)/1000/jr.WindowSec)

	coldS, warmS := loadgen.SpreadOf(cold), loadgen.SpreadOf(warm)
	sec.printf("**Listing 30 days** of `%s` (%d segments): `GET /video/%s/recordings?from=-720h`, timed from the request to the last byte of "+
		"the answer (%d bytes: one span, both codecs) on a new connection each. Cold: the first call of a fresh gateway (%s), "+
		"whose index cache is empty; warm: %d calls after it on the last one, which read yesterday's and today's logs again "+
		"(`index.Catalog` caches sealed days before yesterday).\n\n", s14MonthRoom, monthSegs, s14MonthRoom, listBytes, count(plan.listCold, "gateway"), plan.listWarm)
	sec.printf("| measure | p50 | p95 | max | target |\n|---|---|---|---|---|\n")
	sec.printf("| cold (first call) | %s | %s | %s | ≤ 50 ms |\n", msf(coldS.P50), msf(coldS.P95), msf(coldS.Max))
	sec.printf("| warm | **%s** | **%s** | %s | ≤ 50 ms |\n\n", msf(warmS.P50), msf(warmS.P95), msf(warmS.Max))

	var head, first, total, mbs []float64
	var size, nframes int64
	for _, c := range clips {
		head, first, total = append(head, c.head), append(first, c.first), append(total, c.total)
		mbs = append(mbs, float64(c.size)/1e6/(c.total/1000))
		size, nframes = max(size, c.size), max(nframes, c.frames)
	}
	headS, firstS, totalS := loadgen.SpreadOf(head), loadgen.SpreadOf(first), loadgen.SpreadOf(total)
	sec.printf("**A 1-minute clip**: `GET /video/%s/clip.mp4?start=…&end=…` (one minute of the H.264 recording from the keyframe at or "+
		"before `start`, a progressive MP4), %d times at pseudo-random places, on a fresh gateway, one after another. *Response* is the "+
		"arrival of the status line and headers, *first byte* of the body's first byte, *total* of its last.\n\n", s14Room, plan.clips)
	sec.printf("| measure | p50 | max | target |\n|---|---|---|---|\n")
	sec.printf("| response | %s | %s | |\n", msf(headS.P50), msf(headS.Max))
	sec.printf("| first byte | **%s** | %s | < 1 s |\n", msf(firstS.P50), msf(firstS.Max))
	sec.printf("| total | %s | %s | |\n", msf(totalS.P50), msf(totalS.Max))
	sec.printf("| size, frames (largest) | %s, %d | | |\n", mb(size), nframes)
	sec.printf("| throughput | %.0f MB/s | | |\n\n", loadgen.SpreadOf(mbs).P50)

	b.summary("S14", fmt.Sprintf("store made: %s of 640×360 H.264 + 2 fps JPEG; 30 days of a room's index", span(plan.footage)),
		fmt.Sprintf("%s, %s; %s, %s", secs(tRecord), mb(footageBytes), secs(tIndex), mb(indexBytes)), "reported", "", "")
	b.summary("S14", "seek → first recorded picture, p50 / p95 / max: H.264; JPEG", spreadMS(hs.FirstPicture)+"; "+spreadMS(js.FirstPicture), "p95 ≤ 150 ms", "", "")
	b.summary("S14", "the gateway's seek histogram, p95 (bucket bound): H.264; JPEG", histP95(hs.GatewaySeek)+"; "+histP95(js.GatewaySeek), "p95 ≤ 150 ms", "", "")
	b.summary("S14", "live → first live picture, p50 / p95: H.264; JPEG", fmt.Sprintf("%s / %s; %s / %s", msf(hs.Live.P50), msf(hs.Live.P95), msf(js.Live.P50), msf(js.Live.P95)), "≤ 100 ms", "", "")
	b.summary("S14", "listing 30 days: cold (first call) p50; warm p50 / p95", fmt.Sprintf("%s; %s / %s", msf(coldS.P50), msf(warmS.P50), msf(warmS.P95)), "≤ 50 ms", "", "")
	b.summary("S14", "1-minute clip.mp4: first byte p50 / max; total p50; size", fmt.Sprintf("%s / %s; %s; %s", msf(firstS.P50), msf(firstS.Max), msf(totalS.P50), mb(size)), "starts < 1 s", "", "")
	return runS14Cost(b, sec)
}

// getRecordings GETs a recordings listing on a new connection and returns
// how long it took to the last byte (ms) and the answer's size. It checks
// that the answer is one span of both codecs: 30 days back to back.
func getRecordings(ctx context.Context, url string) (float64, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	t := time.Now()
	resp, err := oneShot.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("failed to list recordings: %w", err)
	}
	body, err := io.ReadAll(resp.Body)
	took := time.Since(t)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("failed to list recordings: %s %v: %s", resp.Status, err, strings.TrimSpace(string(body)))
	}
	var ans struct{ Spans []index.Span }
	if err := json.Unmarshal(body, &ans); err != nil || len(ans.Spans) != 1 || len(ans.Spans[0].Codecs) != 2 {
		return 0, 0, fmt.Errorf("recordings: want one span of two codecs, got %s (%v)", body, err)
	}
	return float64(took) / 1e6, len(body), nil
}

// clipFetch is one clip.mp4 download: times in ms from the request.
type clipFetch struct {
	head, first, total float64
	size, frames       int64
}

// getClip downloads a clip.mp4 on a new connection.
func getClip(ctx context.Context, url string) (clipFetch, error) {
	var c clipFetch
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return c, err
	}
	t := time.Now()
	resp, err := oneShot.Do(req)
	if err != nil {
		return c, fmt.Errorf("failed to get the clip: %w", err)
	}
	defer resp.Body.Close()
	c.head = float64(time.Since(t)) / 1e6
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "video/mp4" {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return c, fmt.Errorf("clip: %s %s: %s", resp.Status, resp.Header.Get("Content-Type"), strings.TrimSpace(string(body)))
	}
	var one [1]byte
	if _, err := io.ReadFull(resp.Body, one[:]); err != nil {
		return c, fmt.Errorf("clip: %w", err)
	}
	c.first = float64(time.Since(t)) / 1e6
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return c, fmt.Errorf("clip: %w", err)
	}
	c.total = float64(time.Since(t)) / 1e6
	c.size = n + 1
	c.frames, _ = strconv.ParseInt(resp.Header.Get("X-Clip-Frames"), 10, 64)
	if resp.ContentLength > 0 && resp.ContentLength != c.size {
		return c, fmt.Errorf("clip: %d bytes of %d", c.size, resp.ContentLength)
	}
	return c, nil
}

// oneShot makes each request on a new connection: what a browser that
// opens the timeline or a download pays.
var oneShot = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func spreadMS(s loadgen.Spread) string {
	return fmt.Sprintf("%s / %s / %s", msf(s.P50), msf(s.P95), msf(s.Max))
}

// histCell describes a histogram delta: count, mean, and the bounds of
// its p50 and p95.
func histCell(h *loadgen.HistogramDelta) string {
	if h == nil {
		return "not scraped"
	}
	return fmt.Sprintf("%.0f, %s, ≤ %s, ≤ %s", h.Count, msf(h.MeanMS), boundMS(h.Quantile(0.5)), boundMS(h.Quantile(0.95)))
}

// histP95 is the bound of a histogram delta's p95.
func histP95(h *loadgen.HistogramDelta) string {
	if h == nil {
		return "not scraped"
	}
	return "≤ " + boundMS(h.Quantile(0.95))
}

// boundMS writes a histogram bucket's upper bound.
func boundMS(v float64) string {
	if v > 1e12 {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + " ms"
}

// span writes a length of footage: "2 h", "15 min".
func span(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return fmt.Sprintf("%d h", d/time.Hour)
	}
	return fmt.Sprintf("%.0f min", d.Minutes())
}

// count writes n things, plural or not.
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func meanKB(bs [][]byte) float64 {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	return float64(n) / float64(max(len(bs), 1)) / 1000
}

func keyframeKB(c *testclip.H264Clip) float64 {
	n, k := 0, 0
	for i, au := range c.AUs {
		if c.Key[i] {
			n, k = n+len(au), k+1
		}
	}
	return float64(n) / float64(max(k, 1)) / 1000
}
