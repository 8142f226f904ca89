package main

// S14's second half: what recording costs (#20 item 13). A recording
// replica's CPU per recorded room, H.264 720p30 and JPEG 30 fps, against
// the same replica not recording; and the live path of a gateway serving
// 20 rooms that it records itself (the worst case: compose runs recorders
// apart) against the same gateway recording nothing, in one run.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/framecast/framecast/internal/loadgen"
	"github.com/framecast/framecast/internal/testclip"
)

const (
	// s14CostRooms rooms are recorded by one recording replica.
	s14CostRooms = 5
	// The live path: s14LiveRooms rooms of s14LiveViewers viewers each,
	// s14LiveSize-byte JPEGs at 30 fps.
	s14LiveRooms   = 20
	s14LiveViewers = 5
	s14LiveSize    = 20000
)

// recordingEnv turns recording on for every room into a fresh store
// folder under the bench's, and returns it.
func (b *bench) recordingEnv(name string) ([]string, string) {
	dir := filepath.Join(b.dir, name)
	return []string{"GATEWAY_RECORD=*", "GATEWAY_RECORD_STORE=" + dir}, dir
}

// recordedBy is what a gateway's recorder did over a run, from its
// /metrics: rooms whose lease it acquired, bytes written, frames dropped,
// failed store and index operations (a frame the segment writer refuses
// counts there too).
type recordedBy struct {
	acquired, bytes, dropped, errors float64
}

func scrapeRecorder(b *bench, g *gateway) (recordedBy, error) {
	m, err := loadgen.ScrapeMetrics(b.ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", g.port))
	if err != nil {
		return recordedBy{}, err
	}
	return recordedBy{
		acquired: m.Sum("framecast_recording_lease_changes_total", `change="acquired"`),
		bytes:    m.Sum("framecast_recording_bytes_total"),
		dropped:  m.Sum("framecast_recording_dropped_frames_total"),
		errors:   m.Sum("framecast_recording_store_errors_total"),
	}, nil
}

// check says whether the recorder recorded rooms rooms without a store
// error.
func (r recordedBy) check(rooms int) error {
	if r.acquired < float64(rooms) || r.bytes == 0 || r.errors > 0 {
		return fmt.Errorf("took %.0f of %d rooms, wrote %.0f bytes, %.0f store errors", r.acquired, rooms, r.bytes, r.errors)
	}
	return nil
}

// procCores is pid's CPU in r's window, in cores.
func procCores(r *loadgen.Report, pid int) float64 {
	for _, p := range r.Procs {
		if p.PID == pid {
			return p.CPUMS / 1000 / r.WindowSec
		}
	}
	return 0
}

// costRun is one side of the per-room cost: publishers and viewers on
// replica 1, replica 2 recording (or idle).
type costRun struct {
	rep      *loadgen.Report
	recorder float64 // replica 2's CPU, cores
	rec      recordedBy
}

func runS14Cost(b *bench, sec *section) error {
	warmup, window := "3s", "10s"
	rounds := 2
	if b.quick {
		window, rounds = "3s", 1
	}
	spec := b.s12Clip()
	clipPath := filepath.Join(b.dir, "s14-720p.h264")
	sec.commands = append(sec.commands, spec.Command(clipPath))
	if _, err := testclip.MakeH264Clip(b.ctx, spec, clipPath); err != nil {
		return err
	}

	// Per room: replica 2 records s14CostRooms rooms, or idles.
	// Every run has rooms of its own: a room's newest frame and layer
	// list outlive its publisher in Redis for seconds, and a viewer handed
	// the last run's newest frame would skip the next run's lower
	// sequence numbers.
	runs := 0
	room := func(name string) string {
		runs++
		return fmt.Sprintf("s14_%s_%d", name, runs)
	}
	cost := func(codec string, recording bool) (costRun, error) {
		var env []string
		if recording {
			var dir string
			env, dir = b.recordingEnv("s14-cost-" + codec)
			defer os.RemoveAll(dir)
		}
		g1, err := b.startGateways(1)
		if err != nil {
			return costRun{}, err
		}
		defer stopAll(g1)
		g2, err := b.startGateways(1, env...)
		if err != nil {
			return costRun{}, err
		}
		defer stopAll(g2)
		gws := append(g1, g2...)
		b.recordGateways(sec, gws)
		a := []string{"-gateways", g1[0].ws(), "-room", room("rec_" + codec), "-publishers", strconv.Itoa(s14CostRooms),
			"-viewers", strconv.Itoa(s14CostRooms), "-fps", "30", "-format", "binary", "-watch-pids", pidList(gws),
			"-redis", b.redisAddr(), "-warmup", warmup, "-duration", window}
		if codec == "h264" {
			a = append(a, "-h264", clipPath, "-group", fmt.Sprintf("h264=%d:v=2&codec=h264", s14CostRooms))
		} else {
			a = append(a, "-layers", fmt.Sprintf("1280x720:%d", frameSize))
		}
		r, err := b.loadgen(sec, a...)
		if err != nil {
			return costRun{}, err
		}
		c := costRun{rep: r, recorder: procCores(r, g2[0].pid())}
		if recording {
			if c.rec, err = scrapeRecorder(b, g2[0]); err != nil {
				return c, err
			}
			if err := c.rec.check(s14CostRooms); err != nil {
				return c, fmt.Errorf("the recording replica: %w", err)
			}
		}
		return c, nil
	}
	type pair struct{ off, on costRun }
	costs := map[string][]pair{}
	for range rounds {
		for _, codec := range []string{"h264", "jpeg"} {
			off, err := cost(codec, false)
			if err != nil {
				return err
			}
			on, err := cost(codec, true)
			if err != nil {
				return err
			}
			costs[codec] = append(costs[codec], pair{off, on})
		}
	}

	// The live path: one gateway, 20 rooms, recording them itself or not.
	live := func(recording bool) (costRun, error) {
		var env []string
		if recording {
			var dir string
			env, dir = b.recordingEnv("s14-live")
			defer os.RemoveAll(dir)
		}
		gws, err := b.startGateways(1, env...)
		if err != nil {
			return costRun{}, err
		}
		defer stopAll(gws)
		b.recordGateways(sec, gws)
		r, err := b.loadgen(sec, "-gateways", gws[0].ws(), "-room", room("live"), "-publishers", strconv.Itoa(s14LiveRooms),
			"-viewers", strconv.Itoa(s14LiveRooms*s14LiveViewers), "-fps", "30", "-layers", fmt.Sprintf("640x360:%d", s14LiveSize),
			"-format", "binary", "-watch-pids", pidList(gws), "-redis", b.redisAddr(), "-warmup", warmup, "-duration", window)
		if err != nil {
			return costRun{}, err
		}
		c := costRun{rep: r, recorder: procCores(r, gws[0].pid())}
		if recording {
			if c.rec, err = scrapeRecorder(b, gws[0]); err != nil {
				return c, err
			}
			if err := c.rec.check(s14LiveRooms); err != nil {
				return c, fmt.Errorf("the recording gateway: %w", err)
			}
		}
		return c, nil
	}
	var lives []pair
	for range rounds {
		off, err := live(false)
		if err != nil {
			return err
		}
		on, err := live(true)
		if err != nil {
			return err
		}
		lives = append(lives, pair{off, on})
	}

	sec.printf("**What recording costs.** *Per room*: two replicas on Redis; the publishers of %d rooms and one viewer each on replica 1, "+
		"replica 2 with `GATEWAY_RECORD=*` and a store (a recording replica, as compose runs them), or without (the same replica "+
		"idle), %s warmup (the recorder takes a room within about a second of its going live), %s window; rounds alternate "+
		"idle and recording. Replica 2's CPU is all that recording costs: receiving the streams from Redis, the segment writer, "+
		"the store's appends and seals, the index, the leases. H.264: S12's clip (720p30, 2.5 Mbit/s, a keyframe every 2 s, "+
		"second command below); JPEG: %d-byte frames at 30 fps (S1's size), sent as a one-layer room (`-layers`): the load "+
		"generator's plain payload has no frame header (SOF) saying the picture's size, which the segment writer needs.\n\n", s14CostRooms, warmup, window, frameSize)
	sec.printf("| round | stream | replica 2 idle (cores) | replica 2 recording (cores) | per recorded room (%% of a core) | recorded | dropped | target |\n|---|---|---|---|---|---|---|---|\n")
	perRoom := map[string][]string{}
	for i := range rounds {
		for _, codec := range []string{"h264", "jpeg"} {
			p := costs[codec][i]
			share := 100 * (p.on.recorder - p.off.recorder) / s14CostRooms
			perRoom[codec] = append(perRoom[codec], fmt.Sprintf("%.2f%%", share))
			target := ""
			if codec == "h264" {
				target = "< 2%"
			}
			sec.printf("| %d | %s | %.3f | %.3f | **%.2f%%** | %s | %.0f | %s |\n", i+1, map[string]string{"h264": "720p30 H.264", "jpeg": "30 fps JPEG"}[codec],
				p.off.recorder, p.on.recorder, share, mb(int64(p.on.rec.bytes)), p.on.rec.dropped, target)
		}
	}
	sec.printf("\n*The live path*: one gateway, %d rooms of %d viewers each (%d viewers), %d-byte JPEGs at 30 fps (a one-layer room, for the same reason), the gateway recording every "+
		"room itself (the worst case: the recorder shares the viewers' process) or nothing, rounds alternating, in one run.\n\n",
		s14LiveRooms, s14LiveViewers, s14LiveRooms*s14LiveViewers, s14LiveSize)
	sec.printf("| round | recording | gateway CPU (cores) | delivered | latency p50 / p99 | skipped by viewers | recorded | dropped |\n|---|---|---|---|---|---|---|---|\n")
	var ratios []string
	for i, p := range lives {
		for _, c := range []costRun{p.off, p.on} {
			skipped := "–"
			if c.rep.Gateway != nil {
				skipped = fmt.Sprintf("%.0f", c.rep.Gateway.Skipped)
			}
			rec, recorded, dropped := "none", "", ""
			if c.rec.acquired > 0 {
				rec, recorded, dropped = fmt.Sprintf("%d rooms", s14LiveRooms), mb(int64(c.rec.bytes)), fmt.Sprintf("%.0f", c.rec.dropped)
			}
			sec.printf("| %d | %s | %.3f | %s | %s / %s | %s | %s | %s |\n", i+1, rec, c.recorder, pct(c.rep.DeliveryRatio),
				msf(c.rep.Latency.P50), msf(c.rep.Latency.P99), skipped, recorded, dropped)
		}
		ratios = append(ratios, fmt.Sprintf("%.2f× CPU, p99 %s → %s, delivered %s → %s", p.on.recorder/p.off.recorder,
			msf(p.off.rep.Latency.P99), msf(p.on.rep.Latency.P99), pct(p.off.rep.DeliveryRatio), pct(p.on.rep.DeliveryRatio)))
	}
	sec.printf("\n")
	b.summary("S14", fmt.Sprintf("recording cost per room (a recording replica, %d rooms): 720p30 H.264; 30 fps × 50 KB JPEG, %% of a core per round", s14CostRooms),
		strings.Join(perRoom["h264"], ", ")+"; "+strings.Join(perRoom["jpeg"], ", "), "< 2% (H.264)", "", "")
	b.summary("S14", fmt.Sprintf("live path, %d rooms × %d viewers recorded by the same gateway vs none, per round", s14LiveRooms, s14LiveViewers),
		strings.Join(ratios, "; "), "unchanged", "", "")
	return nil
}
