package main

// S13: saturation shaped like real load. S2 saturates one room at
// hundreds of frames a second, where a viewer's 3-frame queue lasts a few
// milliseconds; cameras send 30. S13 keeps every room at a camera's rate
// and raises the number of viewers instead, spread over many rooms of
// very different sizes and over both replicas, until the machine gives
// out.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
	"github.com/framecast/framecast/pkg/frames"
)

func init() {
	scenarios = append(scenarios, scenario{"S13",
		"saturation at camera rates: 40 rooms × 30 fps × 50 KB, skewed viewers over 2 replicas, stepped to the machine's limit", runS13})
}

const (
	s13Rooms = 40
	s13FPS   = 30
	// s13Large is how many of the largest rooms the report gathers as
	// "large"; the rooms with one viewer each (the last quarter) are
	// reported apart too, the rest as "medium".
	s13Large = 3
	// s13First is the first step's viewer count: light load on any
	// machine, and its ceiling run sizes the steps after it.
	s13First = 300
)

// s13Step is one S13 run.
type s13Step struct {
	viewers int
	rooms   []int // viewers per room
	r       *loadgen.Report
}

func runS13(b *bench, sec *section) error {
	gws, err := b.startGateways(2)
	if err != nil {
		return err
	}
	defer stopAll(gws)
	b.recordGateways(sec, gws)

	perViewer := float64(frames.HeaderSize+frameSize) * s13FPS / 1e6 // MB/s
	// The load generator holds each viewer's connection and, for the
	// ceiling, one more per viewer.
	maxViewers := min(8000, int(fileLimit()-1000)/2)
	var steps []*s13Step
	var lo, hi int // most viewers sustained (>= 99%), fewest not
	run := func(kind string, viewers int) (*s13Step, error) {
		viewers = min(viewers, maxViewers)
		rooms, err := loadgen.SkewedRooms(viewers, s13Rooms)
		if err != nil {
			return nil, err
		}
		ints := make([]string, len(rooms))
		for i, n := range rooms {
			ints[i] = strconv.Itoa(n)
		}
		large, medium := s13Classes(rooms)
		args := []string{
			"-gateways", wsList(gws), "-room", "s13", "-room-viewers", strings.Join(ints, ","), "-spread-publishers",
			"-fps", strconv.Itoa(s13FPS), "-size", strconv.Itoa(frameSize), "-format", "binary",
			"-watch-pids", pidList(gws), "-redis", b.redisAddr(),
			"-group", fmt.Sprintf("large=%d", large), "-group", fmt.Sprintf("medium=%d", medium),
			"-ceiling", "-ceiling-duration", b.dur(3*time.Second, time.Second),
		}
		r, err := b.loadgen(sec, append(args, b.window(2*time.Second, 8*time.Second)...)...)
		if err != nil {
			return nil, fmt.Errorf("%d viewers: %w", viewers, err)
		}
		st := &s13Step{viewers: viewers, rooms: rooms, r: r}
		steps = append(steps, st)
		b.logf("S13 %s: %d viewers, %s delivered, %.0f MB/s", kind, viewers, pct(r.DeliveryRatio), r.MBSec)
		if sustained(r) {
			lo = max(lo, viewers)
		} else if hi == 0 || viewers < hi {
			hi = viewers
		}
		return st, nil
	}

	// A first light step measures the ceiling at that many connections;
	// the climb starts from a share of the viewers it could carry at 30
	// fps and goes up by half each step until two steps in a row fall
	// short (or the file limit stops it), then bisects for the knee.
	first, err := run("first", s13First)
	if err != nil {
		return err
	}
	start := s13First * 3 / 2
	if c := first.r.Ceiling; c != nil {
		share := 0.3
		if b.quick {
			share = 0.5
		}
		start = max(start, int(share*c.MBSec/perViewer))
	}
	climb, failed := 6, 0
	if b.quick {
		climb = 3
	}
	for n := start; climb > 0 && failed < 2 && (len(steps) == 0 || steps[len(steps)-1].viewers < maxViewers); climb-- {
		st, err := run("climb", n)
		if err != nil {
			return err
		}
		if sustained(st.r) {
			failed = 0
		} else {
			failed++
		}
		n = int(math.Round(float64(n) * 1.5))
	}
	bisect := 2
	if b.quick {
		bisect = 0
	}
	if lo == 0 && hi > s13Rooms*2 {
		lo = s13Rooms // nothing sustained: look below the first step
		if _, err := run("bisect", max(hi/2, s13Rooms)); err != nil {
			return err
		}
	}
	for ; bisect > 0 && lo > 0 && hi > 0 && float64(hi)/float64(lo) > 1.1; bisect-- {
		if _, err := run("bisect", (lo+hi)/2); err != nil {
			return err
		}
	}

	s13Report(b, sec, steps, lo)
	return nil
}

// s13Classes returns how many viewers the large rooms (the first
// s13Large) and the medium ones (up to the rooms with one viewer) hold;
// the viewers in rooms of one are the rest.
func s13Classes(rooms []int) (large, medium int) {
	for i, n := range rooms {
		switch {
		case i < s13Large:
			large += n
		case i < len(rooms)-max(len(rooms)/4, 1):
			medium += n
		}
	}
	return large, medium
}

func s13Report(b *bench, sec *section, steps []*s13Step, knee int) {
	sec.printf("%d rooms, each with its own publisher at %d fps and %d-byte frames (binary), the publishers spread over two "+
		"replicas on one Redis (room i's on replica i mod 2). Viewers are split over the rooms the way cameras draw them "+
		"(`loadgen.SkewedRooms`): the last quarter of the rooms have one viewer each, the others share the rest by Zipf's "+
		"1/rank, so the first room has about a quarter of all viewers; each room's viewers alternate between the replicas. "+
		"Every frame rate stays a camera's: the load grows with the number of viewers. A first light step (%d viewers) measures the "+
		"loopback ceiling; the viewer count then climbs by 1.5× from a share of what that ceiling carries at %d fps until two "+
		"steps in a row fall below 99%% delivered, and is bisected for the **knee**: the most viewers with ≥ 99%% of frames "+
		"delivered, every publisher at its rate and nobody cut off. Each step measures the ceiling again at its own number of "+
		"connections, right after its load. Skipped frames are the gateways' counters over the run, warmup included.\n\n",
		s13Rooms, s13FPS, frameSize, s13First, s13FPS)
	sec.printf("| run | viewers (largest room; rooms of one) | sent fps per room | delivered | p50 | p99 | max gap | skipped at viewers / cut off | gateway CPU per delivery | load generator CPU per delivery | MB/s | loopback ceiling | %% of ceiling | busy cores | ≥ 99%% |\n")
	sec.printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var kneeStep, peak *s13Step
	for i, st := range steps {
		r := st.r
		ok := "✓"
		if !sustained(r) {
			ok = "✗"
		}
		skips := "–"
		if g := r.Gateway; g != nil {
			skips = fmt.Sprintf("%.0f / %.0f", g.Skipped, g.CutOff)
		}
		ceil, frac := "–", "–"
		if c := r.Ceiling; c != nil {
			ceil = fmt.Sprintf("%.0f MB/s", c.MBSec)
			frac = pct(r.MBSec / c.MBSec)
		}
		singles := max(len(st.rooms)/4, 1)
		sec.printf("| %d | %d (%d; %d) | %.1f | %s | %s | %s | %s | %s | %.1f µs | %.1f µs | %.0f | %s | %s | %.2f | %s |\n",
			i+1, st.viewers, st.rooms[0], singles, r.SentFPS, pct(r.DeliveryRatio), msf(r.Latency.P50), msf(r.Latency.P99),
			msf(r.MaxGapMS), skips, gatewayCPUPerDelivery(r), r.ClientCPUPerDeliveryUS, r.MBSec, ceil, frac, r.MachineBusyCores, ok)
		if st.viewers == knee && sustained(r) {
			kneeStep = st
		}
		if !cutOff(r) && (peak == nil || r.MBSec > peak.r.MBSec) {
			peak = st
		}
	}
	sec.printf("\n")
	frac := func(st *s13Step) string {
		if st.r.Ceiling == nil {
			return "–"
		}
		return pct(st.r.MBSec / st.r.Ceiling.MBSec)
	}
	if kneeStep == nil {
		sec.printf("No step delivered ≥ 99%%: the machine was too busy, or the first step is already past the knee.\n\n")
		b.summary("S13", "knee: most viewers with ≥ 99% delivered, 40 rooms × 30 fps × 50 KB; payload % of loopback ceiling", "none", "reported", "", "")
	} else {
		r := kneeStep.r
		sec.printf("At the knee, %d viewers (rooms of %s viewers), by room size:\n\n", kneeStep.viewers, roomList(kneeStep.rooms))
		sec.printf("| rooms | viewers | delivered | fps per viewer | latency mean | p99 | max gap |\n|---|---|---|---|---|---|---|\n")
		names := map[string]string{"large": fmt.Sprintf("the %d largest", s13Large), "medium": "the middle ones", "rest": "those with one viewer"}
		for _, g := range r.Groups {
			sec.printf("| %s | %d | %s | %.1f | %s | %s | %s |\n", names[g.Name], g.Viewers, pct(g.DeliveryRatio), g.FPSPerViewer,
				msf(g.Latency.Mean), msf(g.Latency.P99), msf(g.MaxGapMS))
		}
		sec.printf("\n")
		skipped := "–"
		if g := r.Gateway; g != nil {
			skipped = fmt.Sprintf("%.0f", g.Skipped)
		}
		b.summary("S13", "knee: most viewers with ≥ 99% delivered, 40 rooms × 30 fps × 50 KB; payload % of loopback ceiling",
			fmt.Sprintf("%d viewers: %.0f MB/s = %s (%s delivered)", kneeStep.viewers, r.MBSec, frac(kneeStep), pct(r.DeliveryRatio)), "reported", "", "")
		b.summary("S13", "at the knee: latency p50 / p99, frames skipped, gateway CPU per delivery",
			fmt.Sprintf("%s / %s, %s skipped, %.1f µs", msf(r.Latency.P50), msf(r.Latency.P99), skipped, gatewayCPUPerDelivery(r)), "reported", "", "")
	}
	if peak != nil {
		b.summary("S13", "saturation: most payload delivered with nobody cut off, % of loopback ceiling",
			fmt.Sprintf("%s (%d viewers, %s delivered, p99 %s)", frac(peak), peak.viewers, pct(peak.r.DeliveryRatio), msf(peak.r.Latency.P99)), "≥ 50%", "~3%", "~36% (default config)")
	}
	sec.printf("S2 reaches its limit with one room at hundreds of frames a second; here every room runs at a camera's 30 fps " +
		"and the limit comes from the number of viewers, so a viewer's queue of 3 frames spans 100 ms rather than a few. " +
		"The load generator's viewers share the two cores with the gateways and Redis, as in S2: its CPU per delivery " +
		"is in the table.\n\n")
}

// roomList abbreviates a room-size list: the distinct sizes, largest
// first, with how many rooms have each when more than one do.
func roomList(rooms []int) string {
	var parts []string
	for i := 0; i < len(rooms); {
		j := i
		for j < len(rooms) && rooms[j] == rooms[i] {
			j++
		}
		if j-i > 1 {
			parts = append(parts, fmt.Sprintf("%d×%d", rooms[i], j-i))
		} else {
			parts = append(parts, strconv.Itoa(rooms[i]))
		}
		i = j
	}
	return strings.Join(parts, ", ")
}
