package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
)

// frameSize is the JPEG size of every scenario but S5's: "50 KB".
const frameSize = 50000

type scenario struct {
	id, title string
	run       func(b *bench, sec *section) error
}

var scenarios = []scenario{
	{"S1", "nominal: 100 viewers over 2 replicas, 30 fps, 50 KB, binary", runS1},
	{"S2", "saturation: delivered payload at fan-out 100 and 1000 vs the loopback ceiling", runS2},
	{"S3", "idle: 10,000 idle viewers on one replica", runS3},
	{"S4", "slow viewers: 10% of viewers never read", runS4},
	{"S5", "Redis cost per frame at 10 and 1,000 viewers", runS5},
	{"S6", "wire formats: JSON/base64 vs binary, CPU per delivered frame", runS6},
	{"S7", "sender: capture + encode frames/s per core", runS7},
}

// summary rows, filled by the scenarios, rendered first.
type summaryRow struct {
	scenario, measure, got, target, seed, centrifugo string
}

func (b *bench) dur(normal, quick time.Duration) string {
	if b.quick {
		return quick.String()
	}
	return normal.String()
}

// window returns (warmup, duration) flags for a measured run.
func (b *bench) window(warmup, duration time.Duration) []string {
	if b.quick {
		warmup, duration = min(warmup, 500*time.Millisecond), min(duration, 2*time.Second)
	}
	return []string{"-warmup", warmup.String(), "-duration", duration.String()}
}

// loadArgs are the common flags of a load run against gws.
func (b *bench) loadArgs(gws []*gateway, viewers int, fps float64, format string) []string {
	return []string{
		"-gateways", wsList(gws), "-viewers", strconv.Itoa(viewers),
		"-fps", strconv.FormatFloat(fps, 'f', -1, 64), "-size", strconv.Itoa(frameSize),
		"-format", format, "-watch-pids", pidList(gws), "-redis", b.redisAddr(),
	}
}

// gatewayCPUPerDelivery is the watched gateways' CPU time in the window per
// delivered frame, in µs.
func gatewayCPUPerDelivery(r *loadgen.Report) float64 {
	if r.Received == 0 {
		return 0
	}
	var cpu float64
	for _, p := range r.Procs {
		cpu += p.CPUMS
	}
	return cpu * 1000 / float64(r.Received)
}

// peakGrowthKB is the watched gateways' peak RSS over their RSS before the
// viewers connected, summed.
func peakGrowthKB(r *loadgen.Report) int64 {
	var g int64
	for _, p := range r.Procs {
		g += p.RSSPeakKB - p.RSSBeforeKB
	}
	return g
}

func pct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

func msf(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func (b *bench) recordGateways(sec *section, gws []*gateway) {
	for _, g := range gws {
		sec.commands = append(sec.commands, gatewayCommand(g)+" &")
	}
}

func runS1(b *bench, sec *section) error {
	gws, err := b.startGateways(2)
	if err != nil {
		return err
	}
	defer stopAll(gws)
	b.recordGateways(sec, gws)
	r, err := b.loadgen(sec, append(b.loadArgs(gws, 100, 30, "binary"), b.window(2*time.Second, 10*time.Second)...)...)
	if err != nil {
		return err
	}
	b.s1 = r
	sec.printf("Publisher on replica 1; viewers alternate between replicas 1 and 2 (50 each); frames cross Redis.\n\n")
	sec.printf("| measure | framecast | target | seed stack (anchor) | Centrifugo (anchor) |\n|---|---|---|---|---|\n")
	sec.printf("| delivered | %s (%d of %d) | ≥ 99.9%% | 29–58%% | 100%% |\n", pct(r.DeliveryRatio), r.Received, r.Expected)
	sec.printf("| latency p50 | %s | ≤ 2 ms | 3.2–6.3 s | 3.8–4.4 ms |\n", msf(r.Latency.P50))
	sec.printf("| latency p90 | %s | | | |\n", msf(r.Latency.P90))
	sec.printf("| latency p99 | %s | ≤ 10 ms | 11.5 s | 11.7–12.5 ms |\n", msf(r.Latency.P99))
	sec.printf("| latency max | %s | | | |\n", msf(r.Latency.Max))
	sec.printf("| max gap between frames at a viewer | %s (frame interval 33.3 ms) | | | |\n", msf(r.MaxGapMS))
	sec.printf("| deliveries/s | %.0f (%.1f MB/s) | | | |\n", r.DeliveriesSec, r.MBSec)
	sec.printf("| gateway CPU per delivery (both replicas) | %.1f µs | | | |\n", gatewayCPUPerDelivery(r))
	sec.printf("| load generator CPU per delivery | %.1f µs | | | |\n", r.ClientCPUPerDeliveryUS)
	if g := r.Gateway; g != nil {
		sec.printf("| frames skipped by viewers / viewers cut off | %.0f / %.0f | 0 / 0 | | |\n", g.Skipped, g.CutOff)
	}
	sec.printf("\n")
	b.summary("S1", "delivered", pct(r.DeliveryRatio), "≥ 99.9%", "29–58%", "100%")
	b.summary("S1", "latency p50 / p99", msf(r.Latency.P50)+" / "+msf(r.Latency.P99), "≤ 2 ms / ≤ 10 ms", "3.2–6.3 s / 11.5 s", "3.8–4.4 ms / 11.7–12.5 ms")
	return nil
}

// sustained reports whether a ramp step kept up: nearly every frame
// delivered, the publisher at its rate, nobody cut off.
func sustained(r *loadgen.Report) bool {
	return r.DeliveryRatio >= 0.99 && r.SentFPS >= 0.95*r.FPS && !cutOff(r)
}

// cutOff reports whether any viewer was cut off or lost during a run.
func cutOff(r *loadgen.Report) bool {
	return r.ViewersLost > 0 || (r.Gateway != nil && r.Gateway.CutOff > 0)
}

// ceilingCell describes a loopback ceiling in a table cell.
func ceilingCell(c *loadgen.CeilingReport) string {
	return fmt.Sprintf("%.0f MB/s (%.0f msgs/s; %d writer threads; kernel wchar %.0f MB/s)", c.MBSec, c.MsgSec, c.Writers, c.WcharMBSec)
}

// gatewayWcharMBSec is what the watched gateways' write system calls took
// in the window, MB/s, all of them together; 0 if not measured.
func gatewayWcharMBSec(r *loadgen.Report) float64 {
	var mb float64
	for _, p := range r.Procs {
		mb += p.WcharMB
	}
	if r.WindowSec <= 0 {
		return 0
	}
	return mb / r.WindowSec
}

// s2Result is what S2 found at one fan-out.
type s2Result struct {
	fanout int
	ceil   *loadgen.CeilingReport
	peak   *loadgen.Report // most payload delivered with no viewer cut off
	strict *loadgen.Report // highest rate with >= 99% delivered
}

func runS2(b *bench, sec *section) error {
	sec.printf("S2 asks how much payload the gateways deliver at saturation, as a fraction of the loopback ceiling " +
		"measured in the same run (the anchors' measure: the seed's ~3%% is its peak, reached while it delivered a third " +
		"of the frames; Centrifugo's ~36%% is its highest rate before it cuts viewers off). For each fan-out: a first " +
		"short run at a low rate also measures the ceiling for that many connections and this message size; then the " +
		"publisher's rate climbs by 1.5× from 15%% of the ceiling's message rate until delivered payload stops growing (two steps " +
		"in a row add < 3%%) " +
		"(**saturation**: the most payload delivered with no viewer cut off); then the rate is bisected for the highest " +
		"rate at which **≥ 99%% of frames** are delivered, the publisher keeps its rate and nobody is cut off. Above " +
		"saturation, viewers skip frames (latest-frame-wins queues of at most 3 frames) rather than fall behind, so latency stays low. " +
		"Two replicas, viewers split between them, 50 KB binary frames. Busy cores: the whole machine's, of 2; " +
		"drops and skips are the gateways' counters over the run, warmup included.\n\n")
	sec.printf("| fan-out | run | target fps | sent fps | delivered | p50 | p99 | deliveries/s | MB/s | %% of ceiling | busy cores | dropped before Redis / skipped at viewers | ≥ 99%% |\n")
	sec.printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	var results []s2Result
	var errs []string
	for _, fanout := range []int{100, 1000} {
		gws, err := b.startGateways(2)
		if err != nil {
			return err
		}
		if fanout == 100 {
			b.recordGateways(sec, gws)
		}
		res, err := s2Search(b, sec, gws, fanout)
		stopAll(gws)
		if err != nil {
			errs = append(errs, err.Error())
		}
		results = append(results, res)
	}
	sec.printf("\n| fan-out | loopback ceiling | saturation: most delivered | delivered | p99 | %% of ceiling | highest rate with ≥ 99%% delivered | %% of ceiling | kernel check: gateways' wchar at saturation ÷ ceiling writer's |\n")
	sec.printf("|---|---|---|---|---|---|---|---|---|\n")
	for _, res := range results {
		ceil, peak, peakDel, peakP99, peakFrac, strict, strictFrac := "not measured", "–", "–", "–", "–", "none", "–"
		frac := func(r *loadgen.Report) string {
			if res.ceil == nil {
				return "–"
			}
			return pct(r.MBSec / res.ceil.MBSec)
		}
		if res.ceil != nil {
			ceil = ceilingCell(res.ceil)
		}
		kernel := "–"
		if res.peak != nil && res.ceil != nil && res.ceil.WcharMBSec > 0 {
			if w := gatewayWcharMBSec(res.peak); w > 0 {
				kernel = fmt.Sprintf("%.0f ÷ %.0f MB/s = %s", w, res.ceil.WcharMBSec, pct(w/res.ceil.WcharMBSec))
			}
		}
		if r := res.peak; r != nil {
			peak = fmt.Sprintf("%.0f MB/s (%.0f deliveries/s at %.0f fps)", r.MBSec, r.DeliveriesSec, r.SentFPS)
			peakDel, peakP99, peakFrac = pct(r.DeliveryRatio), msf(r.Latency.P99), frac(r)
		}
		if r := res.strict; r != nil {
			strict = fmt.Sprintf("%.0f fps × %d = %.0f deliveries/s, %.0f MB/s", r.FPS, res.fanout, r.DeliveriesSec, r.MBSec)
			strictFrac = frac(r)
		}
		sec.printf("| %d | %s | %s | %s | %s | **%s** | %s | %s | %s |\n", res.fanout, ceil, peak, peakDel, peakP99, peakFrac, strict, strictFrac, kernel)
		if res.peak != nil {
			peakFrac = fmt.Sprintf("%s (%s delivered, p99 %s)", peakFrac, peakDel, peakP99)
		}
		b.summary("S2", fmt.Sprintf("fan-out %d: delivered payload at saturation, %% of loopback ceiling", res.fanout), peakFrac, "≥ 50%", "~3%", "~36% (default config)")
		b.summary("S2", fmt.Sprintf("fan-out %d: highest rate with ≥ 99%% delivered, %% of ceiling", res.fanout), strictFrac, "reported", "", "")
		strictOfPeak := "–"
		if res.peak != nil && res.strict != nil && res.peak.MBSec > 0 {
			strictOfPeak = fmt.Sprintf("%.2f", res.strict.MBSec/res.peak.MBSec)
		}
		b.summary("S2", fmt.Sprintf("fan-out %d: payload at the highest rate with ≥ 99%% delivered ÷ at saturation", res.fanout), strictOfPeak, "≥ 0.80", "", "")
	}
	sec.printf("\nThe ceiling is an upper bound on any relay of whole frames on this machine (Method): delivered payload " +
		"above 100%% of it would mean the probe or the count is wrong. The kernel check compares what the gateways' write " +
		"system calls took (/proc/PID/io wchar: frames with their WebSocket headers, plus publishes to Redis) with what " +
		"the ceiling's writer's took. Ceilings differ several-fold between machines of the same kind, so compare percentages of a " +
		"ceiling measured in the same run, not MB/s across machines. Frame rates in the hundreds per room are a " +
		"benchmark's way of saturating two cores with one room; at a camera's 30 fps a frame interval is 33 ms, and the " +
		"few milliseconds of scheduling jitter that make viewers skip at 1,000 fps never do.\n\n")
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// s2Search runs S2's steps at one fan-out against gws and prints a row per
// run: the ceiling run, the climb to saturation, the bisection for the
// highest rate with >= 99% delivered.
func s2Search(b *bench, sec *section, gws []*gateway, fanout int) (s2Result, error) {
	res := s2Result{fanout: fanout}
	row := func(kind string, r *loadgen.Report) {
		ok := "✓"
		if !sustained(r) {
			ok = "✗"
		}
		frac := "–"
		if res.ceil != nil {
			frac = pct(r.MBSec / res.ceil.MBSec)
		}
		drops := "–"
		if g := r.Gateway; g != nil {
			drops = fmt.Sprintf("%.0f / %.0f", g.PublishDropped, g.Skipped)
		}
		sec.printf("| %d | %s | %.0f | %.0f | %s | %s | %s | %.0f | %.0f | %s | %.2f | %s | %s |\n", fanout, kind, r.FPS, r.SentFPS,
			pct(r.DeliveryRatio), msf(r.Latency.P50), msf(r.Latency.P99), r.DeliveriesSec, r.MBSec, frac, r.MachineBusyCores, drops, ok)
	}
	var lo, hi float64 // highest rate sustained (>= 99%), lowest not
	run := func(kind string, fps float64, extra ...string) (*loadgen.Report, error) {
		args := append(b.loadArgs(gws, fanout, fps, "binary"), b.window(time.Second, 3*time.Second)...)
		r, err := b.loadgen(sec, append(args, extra...)...)
		if err != nil {
			return nil, fmt.Errorf("fan-out %d at %.0f fps: %w", fanout, fps, err)
		}
		row(kind, r)
		if !cutOff(r) && (res.peak == nil || r.MBSec > res.peak.MBSec) {
			res.peak = r
		}
		if sustained(r) {
			lo = math.Max(lo, fps)
			if res.strict == nil || fps > res.strict.FPS {
				res.strict = r
			}
		} else if hi == 0 || fps < hi {
			hi = fps
		}
		return r, nil
	}

	r, err := run("ceiling", math.Max(1, math.Round(3000/float64(fanout))), "-ceiling", "-ceiling-duration", b.dur(3*time.Second, time.Second))
	if err != nil {
		return res, err
	}
	res.ceil = r.Ceiling
	start := 60.0 * 100 / float64(fanout)
	if res.ceil != nil {
		start = math.Max(1, math.Round(0.15*res.ceil.MsgSec/float64(fanout)))
	}

	// Climb to saturation: stop once two steps in a row past the 99%
	// boundary add less than 3% to the most payload delivered so far (one
	// such step can be a noisy window: a publisher held up for a moment
	// sends fewer frames than asked).
	// Quick mode doubles the rate instead, so that its few steps still
	// reach saturation and check the ceiling against it.
	climb, step := 8, 1.5
	if b.quick {
		climb, step = 4, 2
	}
	flat := 0
	for f := start; climb > 0 && flat < 2; climb-- {
		before := 0.0
		if res.peak != nil {
			before = res.peak.MBSec
		}
		r, err := run("climb", f)
		if err != nil {
			return res, err
		}
		if hi != 0 && r.MBSec < 1.03*before {
			flat++
		} else {
			flat = 0
		}
		f = math.Round(f * step)
	}

	// Bisect for the highest rate with >= 99% delivered.
	bisect := 3
	if b.quick {
		bisect = 1
	}
	if lo == 0 {
		lo = start / 2 // nothing sustained yet: look below the start
		if _, err := run("bisect", math.Max(1, math.Round(lo))); err != nil {
			return res, err
		}
	}
	for ; bisect > 0 && hi != 0 && hi/lo > 1.08 && hi-lo > 1; bisect-- {
		if _, err := run("bisect", math.Round((lo+hi)/2)); err != nil {
			return res, err
		}
	}
	return res, nil
}

func runS3(b *bench, sec *section) error {
	gws, err := b.startGateways(1)
	if err != nil {
		return err
	}
	defer stopAll(gws)
	b.recordGateways(sec, gws)
	n := 10000
	if b.quick {
		n = 1000
	}
	r, err := b.loadgen(sec, "-gateways", wsList(gws), "-idle", strconv.Itoa(n), "-room", "idle", "-duration", "2s", "-watch-pids", pidList(gws))
	if err != nil {
		return err
	}
	sec.printf("One fresh replica (on Redis, as deployed); %d viewers of one room with no publisher, each answering pings. "+
		"RSS per viewer = (VmRSS after − VmRSS before) / viewers, from /proc/PID/status; heap and stack figures are the "+
		"gateway's own go_memstats gauges. Open-file limit: %d per process.\n\n", n, fileLimit())
	sec.printf("| measure | framecast | target | seed stack (daphne, anchor) | Centrifugo (anchor) |\n|---|---|---|---|---|\n")
	if r.Idle != nil && len(r.Procs) > 0 {
		p := r.Procs[0]
		sec.printf("| gateway RSS per idle viewer | %.1f KB (%d → %d KB) | ≤ 20 KB | ~44 KB | 44–47 KB |\n", r.Idle.RSSPerViewerKB, p.RSSBeforeKB, p.RSSAfterKB)
		sec.printf("| of which Go heap in use | %.1f KB | | | |\n", r.Idle.HeapPerViewerKB)
		sec.printf("| of which goroutine stacks | %.1f KB | | | |\n", r.Idle.StackPerViewerKB)
		b.summary("S3", "RSS per idle viewer", fmt.Sprintf("%.1f KB", r.Idle.RSSPerViewerKB), "≤ 20 KB", "~44 KB", "44–47 KB")
	}
	sec.printf("| connect rate | %.0f/s (%d in %.2f s, %d failed) | reported | | |\n", r.Connect.PerSec, r.Connect.Conns, r.Connect.Seconds, r.Connect.Failed)
	if r.Idle != nil {
		sec.printf("| load generator's own RSS per connection | %.1f KB | | | |\n", r.Idle.ClientRSSPerViewerKB)
	}
	sec.printf("\n")
	return nil
}

func runS4(b *bench, sec *section) error {
	base := b.s1
	if base == nil {
		b.logf("S4 needs S1's figures: running S1 first")
		tmp := &section{id: "S1"}
		if err := runS1(b, tmp); err != nil {
			return err
		}
		sec.commands = append(sec.commands, tmp.commands...)
		base = b.s1
	}
	// The latency run: S1's load with 10% of the viewers stalled, long
	// enough for their writes to block and the write timeout to fire.
	gws, err := b.startGateways(2)
	if err != nil {
		return err
	}
	b.recordGateways(sec, gws)
	args := append(b.loadArgs(gws, 90, 30, "binary"), "-stalled", "10")
	args = append(args, b.window(2*time.Second, 20*time.Second)...)
	r, err := b.loadgen(sec, args...)
	stopAll(gws)
	if err != nil {
		return err
	}
	// The memory runs: 10 stalled viewers pin at most a few frames each,
	// well inside RSS noise, so this run stalls 200 next to S1's 100
	// readers and compares the replicas' peak RSS growth with a run of the
	// 100 readers alone. Both run with the GC heap floor off: below the
	// floor, garbage would fill the same 32 MB whatever the viewers pin,
	// and hide their cost.
	const memStalled = 200
	memRun := func(stalled int) (*loadgen.Report, error) {
		gws, err := b.startGateways(2, "GATEWAY_GC_FLOOR_MB=0")
		if err != nil {
			return nil, err
		}
		defer stopAll(gws)
		b.recordGateways(sec, gws)
		args := append(b.loadArgs(gws, 100, 30, "binary"), "-stalled", strconv.Itoa(stalled))
		return b.loadgen(sec, append(args, b.window(2*time.Second, 10*time.Second)...)...)
	}
	m0, err := memRun(0)
	if err != nil {
		return err
	}
	m, err := memRun(memStalled)
	if err != nil {
		return err
	}
	ratio := r.Latency.P99 / base.Latency.P99
	growReaders, growMem := peakGrowthKB(m0), peakGrowthKB(m)
	perStalled := float64(growMem-growReaders) * 1024 / memStalled / frameSize
	sec.printf("First run: S1's load with 10 of the 100 viewers connected but never reading (90 read), for 20 s so "+
		"that the stalled viewers' socket buffers fill, their writes block, and the gateway's write timeout "+
		"(GATEWAY_WRITE_TIMEOUT, 10 s) cuts them off. Then, for memory: S1's 100 readers plus %d stalled "+
		"viewers, against a run of the 100 readers alone; extra memory = (peak RSS growth − the readers-alone run's) ÷ %d, both replicas, "+
		"fresh replicas each run, both with GATEWAY_GC_FLOOR_MB=0 (below the floor, garbage would fill the same 32 MB "+
		"whatever the stalled viewers pin, and hide their cost).\n\n", memStalled, memStalled)
	sec.printf("| measure | framecast | target |\n|---|---|---|\n")
	sec.printf("| reading viewers: delivered | %s | |\n", pct(r.DeliveryRatio))
	sec.printf("| reading viewers: p50 / p99 | %s / %s | |\n", msf(r.Latency.P50), msf(r.Latency.P99))
	sec.printf("| p99 with stalled viewers ÷ S1 p99 | %.2f× (%s vs %s) | ≤ 1.5× |\n", ratio, msf(r.Latency.P99), msf(base.Latency.P99))
	sec.printf("| max gap at a reading viewer | %s | |\n", msf(r.MaxGapMS))
	if g := r.Gateway; g != nil {
		sec.printf("| frames skipped (latest-wins) / viewers cut off | %.0f / %.0f | stalled viewers skip |\n", g.Skipped, g.CutOff)
	}
	sec.printf("| gateway peak RSS growth: 100 readers / + %d stalled | %d KB / %d KB | |\n", memStalled, growReaders, growMem)
	sec.printf("| extra memory per stalled viewer | %.2f frames (%.0f KB) | ≤ a couple of frames |\n", perStalled, perStalled*frameSize/1024)
	sec.printf("| readers' p99 next to %d stalled viewers | %s (delivered %s) | |\n", memStalled, msf(m.Latency.P99), pct(m.DeliveryRatio))
	sec.printf("\nThe extra memory includes each stalled connection's own cost as an idle viewer (S3); kernel socket " +
		"buffers (several MB per stalled connection on loopback) are not in the gateway's RSS.\n\n")
	b.summary("S4", "others' p99 with 10% stalled ÷ S1 p99", fmt.Sprintf("%.2f×", ratio), "≤ 1.5×", "", "stalled cut off after ~4 s")
	b.summary("S4", "gateway memory per stalled viewer", fmt.Sprintf("%.2f frames", perStalled), "≤ ~2 frames", "", "")
	return nil
}

func runS5(b *bench, sec *section) error {
	gws, err := b.startGateways(2)
	if err != nil {
		return err
	}
	defer stopAll(gws)
	b.recordGateways(sec, gws)
	sec.printf("Redis INFO stats total_net_output_bytes, read before the publisher starts and after the last frame " +
		"arrived, divided by the frames the gateways published to Redis (their framecast_frames_published_total); " +
		"expected = binary message (50,020 B) × replicas subscribed. 10 fps so that 1,000 viewers stay well below " +
		"saturation; two replicas, viewers split between them. The output also holds Redis's replies to the " +
		"replicas' presence and frame-cache writes, a few bytes each.\n\n")
	sec.printf("| viewers | frames | Redis output per frame | message × replicas | ratio | delivered |\n|---|---|---|---|---|---|\n")
	var ratios []string
	for _, n := range []int{10, 1000} {
		r, err := b.loadgen(sec, append(b.loadArgs(gws, n, 10, "binary"), b.window(time.Second, 5*time.Second)...)...)
		if err != nil {
			return err
		}
		if r.Redis == nil {
			return fmt.Errorf("no Redis figures: %v", r.Errors)
		}
		sec.printf("| %d | %.0f | %.0f B | %.0f B (× %d) | %.3f | %s |\n", n, r.Redis.Frames, r.Redis.PerFrame,
			r.Redis.ExpectedPerFrame, r.Redis.Replicas, r.Redis.Ratio, pct(r.DeliveryRatio))
		ratios = append(ratios, fmt.Sprintf("%.3f", r.Redis.Ratio))
	}
	sec.printf("\nThe seed's channels_redis copies every frame into a per-viewer Redis list instead: its Redis output grows with viewers.\n\n")
	b.summary("S5", "Redis output ÷ (frame × replicas), 10 / 1,000 viewers", strings.Join(ratios, " / "), "≈ 1, same at both", "grows with viewers", "")
	return nil
}

func runS6(b *bench, sec *section) error {
	gws, err := b.startGateways(2)
	if err != nil {
		return err
	}
	defer stopAll(gws)
	b.recordGateways(sec, gws)
	sec.printf("S1's load (100 viewers, 2 replicas, 30 fps, 50 KB) in each format. Gateway CPU = utime+stime of both " +
		"replicas in the window (/proc/PID/stat) ÷ frames delivered; client CPU = the load generator's own " +
		"(getrusage, publisher included) ÷ frames delivered.\n\n")
	sec.printf("| format | message | delivered | p50 | p99 | gateway CPU per delivery | client CPU per delivery |\n|---|---|---|---|---|---|---|\n")
	res := map[string]*loadgen.Report{}
	for _, f := range []string{"binary", "json"} {
		r, err := b.loadgen(sec, append(b.loadArgs(gws, 100, 30, f), b.window(time.Second, 8*time.Second)...)...)
		if err != nil {
			return err
		}
		res[f] = r
		sec.printf("| %s | %d B | %s | %s | %s | %.1f µs | %.1f µs |\n", f, r.MessageBytes, pct(r.DeliveryRatio),
			msf(r.Latency.P50), msf(r.Latency.P99), gatewayCPUPerDelivery(r), r.ClientCPUPerDeliveryUS)
	}
	bin, js := res["binary"], res["json"]
	gr := gatewayCPUPerDelivery(js) / gatewayCPUPerDelivery(bin)
	cr := js.ClientCPUPerDeliveryUS / bin.ClientCPUPerDeliveryUS
	sec.printf("| json ÷ binary | %.2f× | | | | %.2f× | %.2f× |\n\n", float64(js.MessageBytes)/float64(bin.MessageBytes), gr, cr)
	sec.printf("The client figure is a Go reader that scans the JSON tail for \"ts\"; a browser also base64-decodes " +
		"and builds a data URL per frame, which binary viewers (Blob + createImageBitmap) skip.\n\n")
	b.summary("S6", "JSON ÷ binary CPU per delivery: gateway / client", fmt.Sprintf("%.2f× / %.2f×", gr, cr), "reported", "JSON only", "")
	return nil
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+)\s+(\d+)\s+([\d.]+) ns/op(.*)$`)

func runS7(b *bench, sec *section) error {
	args := []string{"test", "-run=^$", "-bench=BenchmarkCaptureEncode|BenchmarkEncodeLayers|BenchmarkH264Picture", "./internal/sender/"}
	if b.quick {
		args = append(args, "-benchtime=20x")
	}
	cmdline := "go " + strings.Join(args, " ")
	sec.commands = append(sec.commands, cmdline)
	b.logf("%s", cmdline)
	ctx, cancel := context.WithTimeout(b.ctx, 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.root
	out, err := cmd.CombinedOutput()
	var rows []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		extra := strings.Join(strings.Fields(m[4]), " ")
		rows = append(rows, fmt.Sprintf("| %s | %s | %.2f ms | %.0f | %s |", m[1], m[2], ns/1e6, 1e9/ns, extra))
	}
	if len(rows) == 0 {
		reason := "BenchmarkCaptureEncode does not exist yet"
		if err != nil {
			reason = fmt.Sprintf("`%s` failed (%v)", cmdline, err)
		}
		last := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(last, '\n'); i >= 0 && len(last)-i < 300 {
			last = last[i+1:]
		}
		if len(last) > 300 {
			last = last[:300] + "..."
		}
		sec.printf("Skipped: %s. Last output line: `%s`\n\n", reason, last)
		b.summary("S7", "capture+encode frames/s per core", "skipped", "reported", "", "")
		return nil
	}
	sec.printf("One benchmark iteration = one frame captured and JPEG-encoded (quality 80) on one goroutine, so " +
		"frames/s = 1 s ÷ ns/op is per core. BenchmarkEncodeLayers encodes one 1280×720 capture into its wire messages: " +
		"one layer, or SENDER_LAYERS=1280,640,320 with each layer resized from the one above (what the sender does) " +
		"or every layer from the capture; msg-B/picture is all its messages together. BenchmarkH264Picture is one picture " +
		"in SENDER_CODEC=h264: the BGR to I420 conversion, the OpenH264 encode and the message.\n\n")
	sec.printf("| benchmark | iterations | per frame | frames/s per core | other metrics |\n|---|---|---|---|---|\n")
	sec.printf("%s\n\n", strings.Join(rows, "\n"))
	b.summary("S7", "capture+encode frames/s per core", fmt.Sprintf("see S7 (%d rows)", len(rows)), "reported", "", "")
	return nil
}
