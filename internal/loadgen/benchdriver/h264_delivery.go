package main

// S12: H.264 delivery through the gateways (#14 item 8, the gateway's
// half; S11 is the encoder's). A publisher plays a libx264 clip of the
// project's 720p30 test clip as version-2 H.264 messages; viewers ask
// codec=h264&v=2.

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
	"github.com/framecast/framecast/internal/testclip"
)

func init() {
	scenarios = append(scenarios, scenario{"S12", "H.264 delivery: gateway CPU per delivered MB vs JPEG at 100 viewers, late joiner's first picture on a cold replica", runS12})
}

// s12JPEGSize is S12's JPEG publisher's payload: S9's main layer, the
// sender's 1280×720 test pattern at quality 80 (S7's BenchmarkEncodeLayers).
const s12JPEGSize = 60000

// s12Clip is S12's H.264 clip: 10 s of the 720p30 test clip (4 s in quick
// mode: two groups of pictures) at 2.5 Mbit/s, the sender's default
// bitrate, a keyframe every 2 s (60 pictures).
func (b *bench) s12Clip() testclip.H264ClipSpec {
	c := testclip.HD
	c.Frames = 300
	if b.quick {
		c.Frames = 120
	}
	return testclip.H264ClipSpec{Clip: c, Kbps: 2500, GOP: 60, Live: true}
}

// s12Joins is how many late joins S12 measures.
func (b *bench) s12Joins() int {
	if b.quick {
		return 5
	}
	return 20
}

func runS12(b *bench, sec *section) error {
	const viewers = 100
	spec := b.s12Clip()
	path := filepath.Join(b.dir, "s12-clip.h264")
	sec.commands = append(sec.commands, spec.Command(path))
	b.logf("making the H.264 clip: %s", spec.Command(path))
	if _, err := testclip.MakeH264Clip(b.ctx, spec, path); err != nil {
		return err
	}
	gop := time.Duration(spec.GOP) * time.Second / time.Duration(spec.Clip.FPS)

	// (a) 100 viewers, H.264 then JPEG, fresh replicas each, rooms apart.
	fanout := func(room string, args ...string) (*loadgen.Report, error) {
		gws, err := b.startGateways(2)
		if err != nil {
			return nil, err
		}
		defer stopAll(gws)
		b.recordGateways(sec, gws)
		a := []string{"-gateways", wsList(gws), "-room", room, "-viewers", strconv.Itoa(viewers), "-fps", "30",
			"-format", "binary", "-watch-pids", pidList(gws), "-redis", b.redisAddr()}
		return b.loadgen(sec, append(append(a, args...), b.window(2*time.Second, 10*time.Second)...)...)
	}
	h, err := fanout("s12_h264", "-h264", path, "-group", fmt.Sprintf("h264=%d:v=2&codec=h264", viewers))
	if err != nil {
		return err
	}
	j, err := fanout("s12_jpeg", "-size", strconv.Itoa(s12JPEGSize))
	if err != nil {
		return err
	}
	hg := group(h, "h264")
	if hg == nil || h.H264 == nil {
		return fmt.Errorf("the H.264 run reported no h264 group or clip: %v", h.Errors)
	}

	// (b) late joins on a replica with no viewer of the room, under the
	// load of 100 viewers on the publisher's replica: H.264, then JPEG for
	// comparison.
	joins := func(room string, args ...string) (*loadgen.Report, error) {
		gws, err := b.startGateways(2)
		if err != nil {
			return nil, err
		}
		defer stopAll(gws)
		b.recordGateways(sec, gws)
		a := []string{"-gateways", gws[0].ws(), "-room", room, "-viewers", strconv.Itoa(viewers), "-fps", "30",
			"-format", "binary", "-watch-pids", pidList(gws), "-redis", b.redisAddr(),
			"-late-joins", strconv.Itoa(b.s12Joins()), "-late-join-to", gws[1].ws(), "-late-join-pause", gop.String(),
			// A warmup over one group of pictures: the stream is under way
			// and its group is in Redis when the first viewer joins.
			"-warmup", (gop + time.Second).String(), "-duration", "3m0s"}
		r, err := b.loadgen(sec, append(a, args...)...)
		if err == nil && (r.LateJoins == nil || r.LateJoins.Joins == 0) {
			err = fmt.Errorf("no late join succeeded: %v", r.Errors)
		}
		return r, err
	}
	hj, err := joins("s12_join_h264", "-h264", path, "-group", fmt.Sprintf("h264=%d:v=2&codec=h264", viewers))
	if err != nil {
		return err
	}
	jj, err := joins("s12_join_jpeg", "-size", strconv.Itoa(s12JPEGSize))
	if err != nil {
		return err
	}

	c := h.H264
	sec.printf("The H.264 clip: %d pictures of the project's 720p30 test clip (`testsrc2` with `noise=alls=8:allf=t`, as S11) encoded once per run "+
		"by libx264 (first command below: veryfast, zerolatency, constrained baseline, no B-frames, %d kbit/s, a keyframe every %d pictures = %v, "+
		"an access unit delimiter before every picture and the parameter sets before every keyframe): codec `%s`, %d×%d, %.1f KB mean picture, "+
		"%.1f KB mean keyframe, %.0f kbit/s at 30 fps. The load generator plays it in a loop as version-2 H.264 messages (a configuration before "+
		"every keyframe, sequence and capture time per picture) and answers `{\"type\":\"keyframe\"}` by jumping to the clip's next keyframe. "+
		"The JPEG publisher is the load generator's usual one: a %d-byte JPEG-shaped payload (S9's main layer: the sender's 1280×720 test "+
		"pattern at quality 80; the noisy clip itself is ~105 KB per picture at q80, S11), version 1. The relay never decodes either, so only "+
		"sizes and counts matter to it.\n\n",
		spec.Clip.Frames, spec.Kbps, spec.GOP, gop, c.Codec, c.Width, c.Height, c.MeanPictureBytes/1000, c.MeanKeyframeBytes/1000, c.ClipKbps, s12JPEGSize)

	sec.printf("**Fan-out.** Two replicas on Redis, the publisher on replica 1, %d viewers alternating between the replicas (so every picture "+
		"crosses Redis), 30 fps; the H.264 run's viewers ask `v=2&codec=h264`, the JPEG run's are version-1 binary viewers as in S1. Fresh "+
		"replicas for each run. Gateway CPU = utime+stime of both replicas in the window; delivered bytes = whole viewer messages (layer "+
		"block and configurations included).\n\n", viewers)
	sec.printf("| measure | H.264 | JPEG | H.264 ÷ JPEG |\n|---|---|---|---|\n")
	sec.printf("| delivered | %s | %s | |\n", pct(h.DeliveryRatio), pct(j.DeliveryRatio))
	hBytes, jBytes := hg.BytesPerViewerSec, j.MBSec*1e6/float64(max(1, j.Viewers))
	sec.printf("| bytes per viewer per second | %s (%.2f Mbit/s) | %s (%.2f Mbit/s) | %.3f× (%.1f× fewer) |\n",
		kbs(hBytes), hBytes*8/1e6, kbs(jBytes), jBytes*8/1e6, hBytes/jBytes, jBytes/hBytes)
	sec.printf("| message per picture, mean | %d B | %d B | |\n", h.MessageBytes, j.MessageBytes)
	sec.printf("| delivered MB/s, all viewers | %.1f | %.1f | |\n", h.MBSec, j.MBSec)
	hCPU, jCPU := gatewayCPUMS(h), gatewayCPUMS(j)
	hMB, jMB := h.MBSec*h.WindowSec, j.MBSec*j.WindowSec
	sec.printf("| gateway CPU per delivered MB (both replicas) | **%.2f ms** | **%.2f ms** | %.2f× |\n", hCPU/hMB, jCPU/jMB, (hCPU/hMB)/(jCPU/jMB))
	sec.printf("| gateway CPU per delivery | %.1f µs | %.1f µs | %.2f× |\n", gatewayCPUPerDelivery(h), gatewayCPUPerDelivery(j),
		gatewayCPUPerDelivery(h)/gatewayCPUPerDelivery(j))
	hCores, jCores := hCPU/1000/h.WindowSec, jCPU/1000/j.WindowSec
	sec.printf("| gateway CPU, both replicas (cores) | %.3f | %.3f | %.2f× |\n", hCores, jCores, hCores/jCores)
	sec.printf("| latency p50 / p99 | %s / %s | %s / %s | |\n", msf(hg.Latency.P50), msf(hg.Latency.P99), msf(j.Latency.P50), msf(j.Latency.P99))
	sec.printf("| max gap at a viewer | %s | %s | |\n", msf(hg.MaxGapMS), msf(j.MaxGapMS))
	if h.Gateway != nil && j.Gateway != nil {
		sec.printf("| pictures skipped by viewers / viewers cut off | %.0f / %.0f | %.0f / %.0f | |\n", h.Gateway.Skipped, h.Gateway.CutOff, j.Gateway.Skipped, j.Gateway.CutOff)
	}
	sec.printf("| keyframes sent / keyframe requests received: whole run, in the window | %d / %d, %d | – | |\n", c.KeyframesSent, c.KeyframeRequests, c.WindowKeyframeRequests)
	sec.printf("| load generator CPU per delivery | %.1f µs | %.1f µs | |\n", h.ClientCPUPerDeliveryUS, j.ClientCPUPerDeliveryUS)
	sec.printf("\nThe gateway's cost is mostly a system call per message, whatever its size, so per delivered megabyte the "+
		"smaller H.264 messages cost more; per viewer (the same 30 pictures a second) H.264 costs %.2f× JPEG's CPU and %.2f× its bytes. "+
		"The viewers connect before the publisher starts, and a viewer that joins a stream with no group of pictures yet asks for "+
		"a keyframe (`pkg/rooms`, at most one request a second per replica): the fan-out's requests are those, one or two per replica.\n\n", hCores/jCores, hBytes/jBytes)

	sec.printf("**Late joiner.** Fresh replicas; the publisher and %d viewers of the room on replica 1 (the fan-out's load, all on the "+
		"publisher's replica); after a warmup of one group of pictures, %d times one after another: a viewer dials replica 2, which has no "+
		"viewer of the room (before each join the load generator checks with `PUBSUB NUMSUB` that the stream's channel is back to replica "+
		"1's subscription alone; a viewer that leaves makes replica 2 unsubscribe), reads until "+
		"its first picture and until it has the picture the publisher had last sent when it dialled (*caught up*: the whole group handed "+
		"over), and leaves. A pseudo-random pause below the keyframe interval (%v, fixed seed) before each join puts the joins all over "+
		"the group of pictures. Times are from just before the dial (TCP connect and WebSocket handshake included) to the message's "+
		"arrival, on the load generator's clock. H.264 viewers ask `v=2&codec=h264`; the first decodable picture is the first keyframe. "+
		"The JPEG run (a %d-byte publisher) is the reference: its first picture is the replica's newest-frame cache.\n\n",
		viewers, b.s12Joins(), gop, s12JPEGSize)
	sec.printf("| measure | H.264 | JPEG |\n|---|---|---|\n")
	hl, jl := hj.LateJoins, jj.LateJoins
	spread := func(s loadgen.Spread) string { return fmt.Sprintf("%s / %s / %s", msf(s.P50), msf(s.P95), msf(s.Max)) }
	sec.printf("| joins done / failed / replica still subscribed | %d / %d / %d | %d / %d / %d |\n", hl.Joins, hl.Failed, hl.Warm, jl.Joins, jl.Failed, jl.Warm)
	sec.printf("| first picture, p50 / p95 / max | **%s** | %s |\n", spread(hl.FirstPicture), spread(jl.FirstPicture))
	sec.printf("| caught up with live, p50 / p95 / max | %s | %s |\n", spread(hl.CaughtUp), spread(jl.CaughtUp))
	sec.printf("| handshake, p50 / p95 / max | %s | %s |\n", spread(hl.Handshake), spread(jl.Handshake))
	sec.printf("| pictures handed over behind live (the group), p50 / max | %.0f / %.0f | %.0f / %.0f |\n", hl.Behind.P50, hl.Behind.Max, jl.Behind.P50, jl.Behind.Max)
	sec.printf("| deltas before the first keyframe (undecodable) | %d | – |\n", hl.Undecodable)
	sec.printf("| keyframe requests the publisher got during the joins | **%d** | – |\n", hl.KeyframeRequests)
	hjg := group(hj, "h264")
	if hjg != nil {
		sec.printf("| replica 1's %d viewers meanwhile: delivered, latency p99 | %s, %s | %s, %s |\n", viewers,
			pct(hjg.DeliveryRatio), msf(hjg.Latency.P99), pct(jj.DeliveryRatio), msf(jj.Latency.P99))
	}
	sec.printf("\nTarget (#14): the first picture within 150 ms at a 2 s keyframe interval, with no keyframe request (the joiner starts " +
		"from the group kept in Redis). A browser then decodes the handed-over group to reach the live picture; decoding is not in these figures.\n\n")

	b.summary("S12", "bytes per viewer per second, H.264 / JPEG (100 viewers, 30 fps)", fmt.Sprintf("%s / %s (%.1f× fewer)", kbs(hBytes), kbs(jBytes), jBytes/hBytes), "reported", "", "")
	b.summary("S12", "gateway CPU per delivered MB, H.264 / JPEG; per viewer, H.264 ÷ JPEG", fmt.Sprintf("%.2f / %.2f ms; %.2f×", hCPU/hMB, jCPU/jMB, hCores/jCores), "reported", "", "")
	b.summary("S12", "late joiner on a cold replica: first H.264 picture p50 / p95 / max", spread(hl.FirstPicture), "≤ 150 ms", "", "")
	b.summary("S12", "keyframe requests during the late joins", strconv.FormatUint(hl.KeyframeRequests, 10), "~0", "", "")
	return nil
}

// gatewayCPUMS is the watched gateways' CPU time in the window, in ms.
func gatewayCPUMS(r *loadgen.Report) float64 {
	var cpu float64
	for _, p := range r.Procs {
		cpu += p.CPUMS
	}
	return cpu
}
