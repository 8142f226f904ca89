package main

// S9 and S10: quality layers (docs/protocol.md, "Layers"). A publisher
// sends three layers per picture; viewers ask for one with width=N&v=2
// (the load generator's viewer groups), some through a throttled link.

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
	"github.com/framecast/framecast/pkg/frames"
)

func init() {
	scenarios = append(scenarios,
		scenario{"S9", "layers: 100 viewers over 2 replicas, half on a 320-pixel tile, vs a one-layer run", runS9},
		scenario{"S10", "throttled viewers: 5 viewers on an 800 kB/s link asking for the 1.8 MB/s main layer, with and without adaptation", runS10},
	)
}

// benchLayers are S9's and S10's layers: 1280×720, 640×360 and 320×180.
// The sizes are what BenchmarkEncodeLayers (S7) measures for the sender's
// test pattern at quality 80: 60.6 KB for the main layer alone, 86.5 KB
// for all three (the two smaller together ≈ 26 KB).
var benchLayers = []loadgen.Layer{
	{Width: 1280, Height: 720, Size: 60000},
	{Width: 640, Height: 360, Size: 20000},
	{Width: 320, Height: 180, Size: 6000},
}

func layersFlag(ls []loadgen.Layer) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = fmt.Sprintf("%dx%d:%d", l.Width, l.Height, l.Size)
	}
	return strings.Join(s, ",")
}

// layerMessage is the size of a version-2 message of layer l in room.
func layerMessage(l loadgen.Layer, room string) int {
	return frames.LayerBlockFixed + len(room) + frames.HeaderSize + l.Size
}

// layerWindow is S9's and S10's (warmup, duration): the warmup is never
// cut in quick mode, since viewers that join before the publisher get the
// main layer until the gateway's first layer check (1 s) moves them to
// the one they asked for, and S10's first down move needs 2 s of skips.
func (b *bench) layerWindow(duration, quick time.Duration) []string {
	if b.quick {
		duration = quick
	}
	return []string{"-warmup", "2s", "-duration", duration.String()}
}

// layerArgs are the flags of a run of 30 fps publishing to room against
// gws: one layer of the main layer's size, or all benchLayers.
func (b *bench) layerArgs(gws []*gateway, room string, viewers int, layered bool) []string {
	args := []string{
		"-gateways", wsList(gws), "-room", room, "-viewers", strconv.Itoa(viewers), "-fps", "30",
		"-format", "binary", "-watch-pids", pidList(gws), "-redis", b.redisAddr(),
	}
	if layered {
		return append(args, "-layers", layersFlag(benchLayers))
	}
	return append(args, "-size", strconv.Itoa(benchLayers[0].Size))
}

func group(r *loadgen.Report, name string) *loadgen.GroupReport {
	for i := range r.Groups {
		if r.Groups[i].Name == name {
			return &r.Groups[i]
		}
	}
	return nil
}

func kbs(bytesPerSec float64) string { return fmt.Sprintf("%.1f kB/s", bytesPerSec/1000) }

func endedOn(g *loadgen.GroupReport) string {
	var parts []string
	for _, k := range []string{"0", "1", "2", "3", "v1", "none"} {
		if n := g.EndedOn[k]; n > 0 {
			name := "layer " + k
			switch k {
			case "v1":
				name = "version-1 frames"
			case "none":
				name = "no frame"
			}
			parts = append(parts, fmt.Sprintf("%d on %s", n, name))
		}
	}
	return strings.Join(parts, ", ")
}

func runS9(b *bench, sec *section) error {
	const viewers, tiles = 100, 50
	// The one-layer run first, in a room of its own: a room's layer list
	// outlives its publisher in Redis for 10 s.
	run := func(room string, layered bool, extra ...string) (*loadgen.Report, error) {
		gws, err := b.startGateways(2)
		if err != nil {
			return nil, err
		}
		defer stopAll(gws)
		b.recordGateways(sec, gws)
		args := append(b.layerArgs(gws, room, viewers, layered), extra...)
		return b.loadgen(sec, append(args, b.layerWindow(10*time.Second, 3*time.Second)...)...)
	}
	one, err := run("s9_one", false)
	if err != nil {
		return err
	}
	lay, err := run("s9_layers", true, "-group", fmt.Sprintf("tile=%d:width=320&v=2", tiles))
	if err != nil {
		return err
	}
	tile, main := group(lay, "tile"), group(lay, "rest")
	if tile == nil || main == nil {
		return fmt.Errorf("the layered run reported no tile and rest groups: %v", lay.Errors)
	}
	sec.printf("Two replicas, 30 fps, publisher on replica 1, viewers alternating between the replicas. **One-layer run**: "+
		"the publisher sends one 60 KB version-1 message per picture and all 100 viewers take it (S1's load with the main "+
		"layer's size). **Layered run**, on fresh replicas: the publisher sends three layers per picture (`-layers %s`, "+
		"sizes from S7's BenchmarkEncodeLayers: 60.6 KB for one layer, 86.5 KB for three); 50 viewers ask "+
		"`width=320&v=2` (a 320-pixel tile: version-2 messages of the 320×180 layer), 50 connect as today and get the "+
		"main layer as version 1. Bytes per viewer per second count whole messages (layer block included). Gateway CPU "+
		"= utime+stime of both replicas in the window ÷ frames delivered. Redis output per picture is INFO "+
		"total_net_output_bytes over the run ÷ pictures published; expected = the messages of the layers some viewer "+
		"receives × the replicas subscribed to them (both replicas have viewers of the main and the 320 layer; nobody "+
		"receives 640, which no replica subscribes to).\n\n", layersFlag(benchLayers))
	sec.printf("| measure | one layer, 100 main | layered: 50 on 320 | layered: 50 main | layered ÷ one layer |\n|---|---|---|---|---|\n")
	sec.printf("| delivered | %s | %s | %s | |\n", pct(one.DeliveryRatio), pct(tile.DeliveryRatio), pct(main.DeliveryRatio))
	sec.printf("| fps per viewer | %.1f | %.1f | %.1f | |\n", one.DeliveriesSec/float64(max(1, one.Viewers)), tile.FPSPerViewer, main.FPSPerViewer)
	onePerViewer := one.MBSec * 1e6 / float64(max(1, one.Viewers))
	sec.printf("| bytes per viewer per second | %s | %s | %s | %.2f× (320 tile) |\n", kbs(onePerViewer), kbs(tile.BytesPerViewerSec), kbs(main.BytesPerViewerSec), tile.BytesPerViewerSec/onePerViewer)
	allLayered := (tile.BytesPerViewerSec*float64(tile.Viewers) + main.BytesPerViewerSec*float64(main.Viewers)) / 1e6
	oneTotal := one.MBSec
	sec.printf("| bytes delivered per second, all viewers | %.1f MB/s | %.1f MB/s (both groups) | | %.2f× |\n", oneTotal, allLayered, allLayered/oneTotal)
	sec.printf("| latency mean / p99 | %s / %s | %s / %s | %s / %s | |\n", msf(one.Latency.Mean), msf(one.Latency.P99),
		msf(tile.Latency.Mean), msf(tile.Latency.P99), msf(main.Latency.Mean), msf(main.Latency.P99))
	sec.printf("| max gap at a viewer | %s | %s | %s | |\n", msf(one.MaxGapMS), msf(tile.MaxGapMS), msf(main.MaxGapMS))
	sec.printf("| viewers ended on | %d main (version 1) | %s | %s | |\n", one.Viewers, endedOn(tile), endedOn(main))
	cpuOne, cpuLay := gatewayCPUPerDelivery(one), gatewayCPUPerDelivery(lay)
	sec.printf("| gateway CPU per delivery (both replicas) | %.1f µs | %.1f µs (both groups) | | **%.2f×** |\n", cpuOne, cpuLay, cpuLay/cpuOne)
	sec.printf("| load generator CPU per delivery | %.1f µs | %.1f µs | | |\n", one.ClientCPUPerDeliveryUS, lay.ClientCPUPerDeliveryUS)
	redisRatio := "–"
	if one.Redis != nil && lay.Redis != nil {
		expOne := float64(frames.HeaderSize+benchLayers[0].Size) * 2
		expLay := float64(frames.HeaderSize+benchLayers[0].Size+layerMessage(benchLayers[2], "s9_layers")) * 2
		sec.printf("| Redis output per picture | %.0f B (expected %.0f: message × 2 replicas) | %.0f B (expected %.0f: (main + 320) × 2 replicas) | | %.2f× |\n",
			one.Redis.PerPicture, expOne, lay.Redis.PerPicture, expLay, lay.Redis.PerPicture/one.Redis.PerPicture)
		sec.printf("| Redis output ÷ expected | %.3f | %.3f | | |\n", one.Redis.PerPicture/expOne, lay.Redis.PerPicture/expLay)
		redisRatio = fmt.Sprintf("%.3f", lay.Redis.PerPicture/expLay)
	}
	if g1, g2 := one.Gateway, lay.Gateway; g1 != nil && g2 != nil {
		sec.printf("| frames skipped by viewers / viewers cut off | %.0f / %.0f | %.0f / %.0f (both groups) | | |\n", g1.Skipped, g1.CutOff, g2.Skipped, g2.CutOff)
	}
	sec.printf("\nA tile viewer costs the gateway a system call per frame like any other, so CPU per delivery moves with " +
		"bytes only as far as the copy into the socket does; what layers save is the bytes (the viewers' links, the " +
		"replicas' write bandwidth) and, in a browser, decoding a 320-pixel JPEG instead of a 1280-pixel one.\n\n")
	b.summary("S9", "bytes per viewer per second: 320 tile / main layer", kbs(tile.BytesPerViewerSec)+" / "+kbs(main.BytesPerViewerSec), "reported", "", "")
	b.summary("S9", "gateway CPU per delivery, 50/50 layered ÷ one layer", fmt.Sprintf("%.2f× (%.1f / %.1f µs)", cpuLay/cpuOne, cpuLay, cpuOne), "reported", "", "")
	b.summary("S9", "Redis output per picture ÷ (layers received × replicas)", redisRatio, "≈ 1", "", "")
	return nil
}

func runS10(b *bench, sec *section) error {
	const normal, slow = 20, 5
	const throttleKBps = 800
	type result struct {
		adapt string
		r     *loadgen.Report
	}
	var res []result
	for _, adapt := range []string{"true", "false"} {
		gws, err := b.startGateways(2, "GATEWAY_ADAPT="+adapt)
		if err != nil {
			return err
		}
		b.recordGateways(sec, gws)
		args := append(b.layerArgs(gws, "s10_adapt_"+adapt, normal+slow, true),
			"-group", fmt.Sprintf("slow=%d@%d:width=1280&v=2", slow, throttleKBps))
		r, err := b.loadgen(sec, append(args, b.layerWindow(20*time.Second, 4*time.Second)...)...)
		stopAll(gws)
		if err != nil {
			return err
		}
		if group(r, "slow") == nil || group(r, "rest") == nil {
			return fmt.Errorf("GATEWAY_ADAPT=%s: no slow and rest groups reported: %v", adapt, r.Errors)
		}
		res = append(res, result{adapt, r})
	}
	mainRate := float64(layerMessage(benchLayers[0], "s10_adapt_true")) * 30
	midRate := float64(layerMessage(benchLayers[1], "s10_adapt_true")) * 30
	sec.printf("The layered publisher of S9 (%s) at 30 fps, two replicas; 20 viewers connect as today (main layer, "+
		"version 1, no throttle) and 5 ask `width=1280&v=2` (the main layer) through the load generator's throttling proxy: "+
		"a loopback TCP proxy that paces gateway → viewer to %d kB/s per connection (token bucket, 4 KiB reads, a 32 KiB receive buffer and 1460-byte segments "+
		"towards the gateway). The main layer needs %s, the 640 layer %s: a link of %d kB/s carries the "+
		"640 layer but not the main one. Run once with the gateways' GATEWAY_ADAPT=true, once with false, fresh "+
		"replicas each; the adaptation rule is docs/protocol.md's (down after 2 s of skipping a quarter of the frames, "+
		"up again after 10 s without skips, the probe hold doubling when it falls back).\n\n",
		layersFlag(benchLayers), throttleKBps, kbs(mainRate), kbs(midRate), throttleKBps)
	sec.printf("| measure | GATEWAY_ADAPT=true | GATEWAY_ADAPT=false |\n|---|---|---|\n")
	row := func(label string, f func(r *loadgen.Report, s, n *loadgen.GroupReport) string) {
		sec.printf("| %s |", label)
		for _, x := range res {
			sec.printf(" %s |", f(x.r, group(x.r, "slow"), group(x.r, "rest")))
		}
		sec.printf("\n")
	}
	row("throttled viewers: delivered fps per viewer (of 30)", func(_ *loadgen.Report, s, _ *loadgen.GroupReport) string {
		return fmt.Sprintf("%.1f", s.FPSPerViewer)
	})
	row("throttled viewers: bytes per viewer per second", func(_ *loadgen.Report, s, _ *loadgen.GroupReport) string { return kbs(s.BytesPerViewerSec) })
	row("throttled viewers: max gap", func(_ *loadgen.Report, s, _ *loadgen.GroupReport) string { return msf(s.MaxGapMS) })
	row("throttled viewers: latency mean / p99", func(_ *loadgen.Report, s, _ *loadgen.GroupReport) string {
		return msf(s.Latency.Mean) + " / " + msf(s.Latency.P99)
	})
	row("throttled viewers: ended on", func(_ *loadgen.Report, s, _ *loadgen.GroupReport) string { return endedOn(s) })
	row("throttled viewers: layer changes seen / `layer` messages", func(_ *loadgen.Report, s, _ *loadgen.GroupReport) string {
		return fmt.Sprintf("%d / %d", s.LayerChanges, s.LayerMessages)
	})
	row("gateways' moves down / up", func(r *loadgen.Report, _, _ *loadgen.GroupReport) string {
		if r.Gateway == nil {
			return "–"
		}
		return fmt.Sprintf("%.0f / %.0f", r.Gateway.LayerMovesDown, r.Gateway.LayerMovesUp)
	})
	row("normal viewers: delivered", func(_ *loadgen.Report, _, n *loadgen.GroupReport) string { return pct(n.DeliveryRatio) })
	row("normal viewers: latency p99 / max gap", func(_ *loadgen.Report, _, n *loadgen.GroupReport) string {
		return msf(n.Latency.P99) + " / " + msf(n.MaxGapMS)
	})
	row("frames skipped by viewers / viewers cut off", func(r *loadgen.Report, _, _ *loadgen.GroupReport) string {
		if r.Gateway == nil {
			return "–"
		}
		return fmt.Sprintf("%.0f / %.0f", r.Gateway.Skipped, r.Gateway.CutOff)
	})
	sec.printf("\nWithout adaptation a throttled viewer keeps the main layer and gets what its link carries of it, the " +
		"gateway skipping the frames it cannot take (latest frame wins); with adaptation it is moved to a layer its link " +
		"carries and gets every frame, smaller. Delivered fps counts frames of any layer.\n\n")
	on, off := group(res[0].r, "slow"), group(res[1].r, "slow")
	b.summary("S10", "throttled viewers' fps (of 30), adapt on / off", fmt.Sprintf("%.1f / %.1f", on.FPSPerViewer, off.FPSPerViewer), "reported", "", "")
	b.summary("S10", "throttled viewers ended on, adapt on / off", endedOn(on)+" / "+endedOn(off), "a layer the link carries / main", "", "")
	b.summary("S10", "normal viewers delivered, adapt on / off", pct(group(res[0].r, "rest").DeliveryRatio)+" / "+pct(group(res[1].r, "rest").DeliveryRatio), "≥ 99.9%", "", "")
	return nil
}
