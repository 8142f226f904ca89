package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/linkproxy"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/pkg/frames"
)

// Run performs one load-generator run as cfg describes (defaults filled in
// by WithDefaults) and returns its report. Errors that spoil a part of the
// measurement but not the rest (a probe failing, some viewers not
// connecting) are listed in Report.Errors; Run returns an error only when
// there is nothing to report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Ceiling && cfg.CeilingWriter == nil {
		cmd, err := defaultCeilingWriter()
		if err != nil {
			return nil, err
		}
		cfg.CeilingWriter = cmd
	}
	if cfg.Idle > 0 {
		return runIdle(ctx, &cfg)
	}
	return runLoad(ctx, &cfg)
}

// clipReport describes clip as played at fps.
func clipReport(clip *testclip.H264Clip, fps float64) *H264Report {
	r := &H264Report{
		Codec: clip.Config.Codec, Width: clip.Config.Width, Height: clip.Config.Height,
		ClipPictures: len(clip.AUs), ClipKeyframes: clip.Keyframes(),
		MeanPictureBytes: float64(clip.Bytes()) / float64(len(clip.AUs)),
	}
	var keyBytes int
	for i, au := range clip.AUs {
		if clip.Key[i] {
			keyBytes += len(au)
		}
	}
	r.MeanKeyframeBytes = float64(keyBytes) / float64(max(r.ClipKeyframes, 1))
	if fps > 0 {
		r.ClipKbps = r.MeanPictureBytes * 8 * fps / 1000
	}
	return r
}

// messageBytes returns the size of one viewer message for payload.
func messageBytes(format string, payload []byte) int {
	if format == FormatJSON {
		f, err := frames.New(frames.KindJPEG, 1<<40, time.Now(), payload, 0)
		if err != nil {
			return 0
		}
		return len(f.JSON())
	}
	return frames.HeaderSize + len(payload)
}

func logf(cfg *Config, format string, args ...any) {
	fmt.Fprintf(cfg.Log, "loadgen: "+format+"\n", args...)
}

func runLoad(ctx context.Context, cfg *Config) (*Report, error) {
	payload, err := MakeJPEG(cfg.Size, 1)
	if err != nil {
		return nil, err
	}
	// With layers, layer 0's payload (cfg.Size bytes) is the one viewers
	// receive unless they ask for another; each layer's payload has a
	// frame header giving its size, as a gateway reads the main layer's
	// size from its JPEG.
	var layerPayloads [][]byte
	for i, l := range cfg.Layers {
		p, err := MakeSizedJPEG(l.Size, uint64(i+1), l.Width, l.Height)
		if err != nil {
			return nil, err
		}
		layerPayloads = append(layerPayloads, p)
	}
	if len(layerPayloads) > 0 {
		payload = layerPayloads[0]
	}
	rep := &Report{
		Mode: "load", Gateways: len(cfg.Gateways), Viewers: cfg.Viewers, Stalled: cfg.Stalled,
		Publishers: cfg.Publishers, RoomViewers: cfg.RoomViewers, FPS: max(cfg.FPS, 0), Size: cfg.Size, Layers: cfg.Layers, Format: cfg.Format,
		MessageBytes: messageBytes(cfg.Format, payload),
	}
	var clip *testclip.H264Clip
	if cfg.H264 != "" {
		if clip, err = testclip.ReadH264Clip(cfg.H264); err != nil {
			return nil, err
		}
		rep.H264 = clipReport(clip, cfg.FPS)
		rep.Size = int(rep.H264.MeanPictureBytes + 0.5)
		rep.MessageBytes = h264Head(cfg.roomName(0)) + frames.HeaderSize + rep.Size
	}
	errf := func(format string, args ...any) { rep.Errors = append(rep.Errors, fmt.Sprintf(format, args...)) }

	rooms := make([]*roomState, cfg.Publishers)
	for i := range rooms {
		rooms[i] = &roomState{name: cfg.roomName(i)}
	}
	// Viewer i uses gateway i mod G and room i mod P (or its place in
	// RoomViewers); stalled viewers continue the same rotation.
	total := cfg.Viewers + cfg.Stalled
	roomIdx := cfg.viewerRooms(total)
	gwOf := func(i int) string { return cfg.Gateways[i%len(cfg.Gateways)] }
	roomOf := func(i int) *roomState { return rooms[roomIdx[i]] }
	for i := range cfg.Viewers {
		roomOf(i).viewers++
	}
	replicas := make([]map[string]bool, len(rooms))
	for i := range total {
		r := roomIdx[i]
		if replicas[r] == nil {
			replicas[r] = map[string]bool{}
		}
		replicas[r][gwOf(i)] = true
	}

	w := newWatch(cfg.WatchPIDs)
	metricsBefore := scrapeAll(ctx, cfg.Gateways)

	// Viewer groups: viewer i < cfg.Viewers is in group groupOf[i] (len
	// (cfg.Groups) for the rest); a throttled group's viewers connect
	// through a proxy per gateway.
	d := newDialer()
	groupOf := cfg.groupOf()
	baseOf := make([][]string, len(cfg.Groups)) // per group, per gateway: the URL to dial
	for gi, g := range cfg.Groups {
		if g.ThrottleKBps <= 0 {
			continue
		}
		for _, gw := range cfg.Gateways {
			host := strings.TrimPrefix(gw, "ws://")
			if i := strings.IndexByte(host, '/'); i >= 0 {
				host = host[:i]
			}
			p, err := linkproxy.Listen(host, linkproxy.Options{Down: g.ThrottleKBps * 1000})
			if err != nil {
				return rep, err
			}
			defer p.Close()
			baseOf[gi] = append(baseOf[gi], "ws://"+p.Addr()+strings.TrimPrefix(gw, "ws://"+host))
		}
	}
	dialOne := func(ctx context.Context, i int) (msgSource, error) {
		base, extra := gwOf(i), ""
		if i < cfg.Viewers && groupOf[i] < len(cfg.Groups) {
			g := groupOf[i]
			extra = cfg.Groups[g].Query
			if baseOf[g] != nil {
				base = baseOf[g][i%len(cfg.Gateways)]
			}
		}
		return d.dialViewer(ctx, base, roomOf(i).name, cfg.Format, extra, rep.MessageBytes)
	}

	logf(cfg, "connecting %d viewers (%d stalled) to %d gateways", cfg.Viewers, cfg.Stalled, len(cfg.Gateways))
	w.startPeak()
	defer w.stopPeak()
	cr := connectAll(ctx, total, cfg.ConnectRate, cfg.ConnectConcurrency, dialOne)
	rep.Connect = ConnectReport{Conns: total - cr.failed, Failed: cr.failed, Seconds: cr.took.Seconds(), PerSec: float64(total-cr.failed) / cr.took.Seconds()}
	defer func() {
		for i, c := range cr.conns {
			if cr.ok[i] {
				_ = c.Close()
			}
		}
	}()
	if cr.failed > 0 {
		errf("%d of %d viewers failed to connect; first: %v", cr.failed, total, cr.first)
	}
	if cr.failed == total && total > 0 {
		return rep, fmt.Errorf("no viewer connected: %w", cr.first)
	}

	var viewers []*viewer
	var viewerGroup []int // viewers[j]'s group
	var wg sync.WaitGroup
	var closing atomic.Bool // set before the run closes the viewers
	for i, c := range cr.conns[:cfg.Viewers] {
		if !cr.ok[i] {
			continue
		}
		v := newViewer(c, roomOf(i), cfg.Format)
		v.closing = &closing
		viewers = append(viewers, v)
		viewerGroup = append(viewerGroup, groupOf[i])
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.run()
		}()
	}
	// Stalled viewers (cr.conns[cfg.Viewers:]) are never read.

	pubs := make([]*publisher, len(rooms))
	for i, r := range rooms {
		c, err := d.dial(ctx, cfg.publishURL(i), r.name, "role=publish")
		if err != nil {
			return rep, fmt.Errorf("failed to connect publisher %d: %w", i+1, err)
		}
		defer c.CloseNow()
		if clip != nil {
			src := newH264Source(r.name, clip)
			go src.readRequests(c) // keyframe requests; also pongs and the close handshake
			pubs[i] = newH264Publisher(c, r, src, cfg.FPS)
			continue
		}
		// Nothing is sent to JPEG publishers, but pongs and the close
		// handshake are only processed while something reads.
		c.CloseRead(context.Background())
		if len(cfg.Layers) > 0 {
			pubs[i] = newLayeredPublisher(c, r, cfg.Layers, layerPayloads, cfg.FPS)
		} else {
			pubs[i] = newPublisher(c, r, payload, cfg.FPS)
		}
	}

	// Redis's output is read around the whole publishing run, drain
	// included, and divided by the frames the gateways published: reading
	// it at the window's edges would cut frames in flight in two.
	redis0, redisErr := int64(0), error(nil)
	if cfg.RedisAddr != "" {
		redis0, redisErr = RedisInfoField(ctx, cfg.RedisAddr, "stats", "total_net_output_bytes")
	}
	metricsPub := scrapeAll(ctx, cfg.Gateways)

	start := time.Now()
	windowStart := start.Add(max(cfg.Warmup, 0))
	end := windowStart.Add(cfg.Duration)
	logf(cfg, "publishing: %v warmup, %v window", cfg.Warmup, cfg.Duration)
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	// Late joins and seeks end the publishers' run early (runCtx) without
	// closing their connections, so that no write fails on the way out.
	runCtx, endRun := context.WithCancel(pctx)
	defer endRun()
	var pwg sync.WaitGroup
	for _, p := range pubs {
		pwg.Add(1)
		stop := context.AfterFunc(pctx, func() { _ = p.conn.CloseNow() })
		go func() {
			defer pwg.Done()
			defer stop()
			p.run(runCtx, windowStart, end)
		}()
	}

	if !sleepUntil(ctx, windowStart) {
		return rep, ctx.Err()
	}
	var requests0 uint64 // keyframe requests in the warmup
	if clip != nil {
		for _, p := range pubs {
			requests0 += p.h264.requests.Load()
		}
	}
	// Late joins or seeks run beside the publishers, one viewer at a
	// time, and end the publishers' run when they are done.
	var measure func(ctx context.Context, errf func(string, ...any))
	switch {
	case cfg.LateJoins > 0:
		logf(cfg, "%d late joins on %s", cfg.LateJoins, cfg.LateJoinTo)
		measure = func(ctx context.Context, errf func(string, ...any)) {
			rep.LateJoins = runLateJoins(ctx, cfg, d, rooms[0].name, pubs[0], errf)
		}
	case cfg.Seeks > 0:
		logf(cfg, "%d seeks on %s", cfg.Seeks, cfg.Gateways[0])
		measure = func(ctx context.Context, errf func(string, ...any)) {
			rep.Seeks = runSeeks(ctx, cfg, d, rooms[0].name, pubs[0], errf)
		}
	}
	measured := make(chan struct{})
	if measure == nil {
		close(measured)
	} else {
		go func() {
			defer close(measured)
			defer endRun()
			mctx, cancel := context.WithDeadline(ctx, end)
			defer cancel()
			var errs []string
			measure(mctx, func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) })
			rep.Errors = append(rep.Errors, errs...)
		}()
	}
	cpu0 := selfCPU()
	mach0, machErr := ReadMachineCPU()
	w.windowStart()
	t0 := time.Now()
	pwg.Wait()
	t1 := time.Now()
	<-measured
	cpu1 := selfCPU()
	mach1, machErr1 := ReadMachineCPU()
	w.windowEnd()
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	for i, p := range pubs {
		if p.err != nil {
			errf("publisher %d stopped: %v", i+1, p.err)
		}
	}

	// Drain: wait for frames still in flight, until every expected frame
	// arrived or nothing arrived for a while.
	var expected uint64
	for _, r := range rooms {
		rep.FramesSent += r.sent.Load()
		expected += r.sent.Load() * uint64(r.viewers)
	}
	received := func() uint64 {
		var n uint64
		for _, v := range viewers {
			n += v.received.Load()
		}
		return n
	}
	deadline := time.Now().Add(cfg.Drain)
	last, lastChange := received(), time.Now()
	for last < expected && time.Now().Before(deadline) && time.Since(lastChange) < 500*time.Millisecond {
		time.Sleep(20 * time.Millisecond)
		if n := received(); n != last {
			last, lastChange = n, time.Now()
		}
	}
	metricsAfter := scrapeAll(ctx, cfg.Gateways)
	redis1 := int64(0)
	if cfg.RedisAddr != "" && redisErr == nil {
		redis1, redisErr = RedisInfoField(ctx, cfg.RedisAddr, "stats", "total_net_output_bytes")
	}
	w.stopPeak()

	// Stop the viewers and gather their figures.
	closing.Store(true)
	for _, v := range viewers {
		_ = v.src.Close()
	}
	wg.Wait()
	var hist Histogram
	var bytes uint64
	var maxGap time.Duration
	for _, v := range viewers {
		if rep.H264 != nil {
			rep.H264.ConfigsReceived += v.configs
		}
		hist.Merge(&v.hist)
		bytes += v.bytes
		maxGap = max(maxGap, v.maxGap)
		rep.Received += v.received.Load()
		rep.BadMessages += v.bad
		if v.lost {
			rep.ViewersLost++
		}
	}

	win := t1.Sub(t0).Seconds()
	rep.WindowSec = win
	rep.Expected = expected
	if expected > 0 {
		rep.DeliveryRatio = float64(rep.Received) / float64(expected)
	}
	rep.SentFPS = float64(rep.FramesSent) / win / float64(len(rooms))
	rep.Latency = LatencyReport{
		P50: ms(hist.Quantile(0.50)), P90: ms(hist.Quantile(0.90)), P99: ms(hist.Quantile(0.99)),
		Max: ms(hist.Max()), Mean: ms(hist.Mean()),
	}
	rep.MaxGapMS = ms(maxGap)
	rep.DeliveriesSec = float64(rep.Received) / win
	rep.MBSec = float64(bytes) / win / 1e6
	rep.ClientCPUMS = ms(cpu1 - cpu0)
	if rep.Received > 0 {
		rep.ClientCPUPerDeliveryUS = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(rep.Received)
	}
	rep.Procs = w.report(errf)
	if machErr == nil && machErr1 == nil && mach1.Total > mach0.Total {
		rep.MachineBusyCores = float64(mach1.Busy-mach0.Busy) / clockTicks / win
		rep.StealCores = float64(mach1.Steal-mach0.Steal) / clockTicks / win
		ours := rep.ClientCPUMS
		for _, p := range rep.Procs {
			ours += p.CPUMS
		}
		rep.OtherBusyCores = max(0, rep.MachineBusyCores-ours/1000/win)
	}
	if rep.H264 != nil {
		for _, p := range pubs {
			rep.H264.KeyframesSent += p.h264.keys
			rep.H264.KeyframeRequests += p.h264.requests.Load()
		}
		rep.H264.WindowKeyframeRequests = rep.H264.KeyframeRequests - requests0
	}
	if len(cfg.Groups) > 0 {
		rep.Groups = groupReports(cfg.Groups, viewers, viewerGroup, win)
	}
	rep.Gateway = gatewayDelta(metricsBefore, metricsAfter, errf)
	if cfg.RedisAddr != "" {
		rep.Redis = redisReport(redis1-redis0, redisErr, replicas, pubs, metricsPub, metricsAfter, rep.Size, errf)
	}
	for _, p := range pubs {
		_ = p.conn.Close(websocket.StatusNormalClosure, "")
	}

	if cfg.Ceiling {
		logf(cfg, "measuring the loopback ceiling over %d connections", len(viewers))
		c, err := MeasureCeiling(ctx, len(viewers), rep.MessageBytes, cfg.CeilingDuration, cfg.CeilingWriter)
		if err != nil {
			errf("ceiling: %v", err)
		} else {
			rep.Ceiling = c
			rep.FractionOfCeiling = rep.MBSec / c.MBSec
		}
	}
	return rep, nil
}

func runIdle(ctx context.Context, cfg *Config) (*Report, error) {
	rep := &Report{Mode: "idle", Gateways: len(cfg.Gateways), Viewers: cfg.Idle, Size: cfg.Size, Format: cfg.Format}
	errf := func(format string, args ...any) { rep.Errors = append(rep.Errors, fmt.Sprintf(format, args...)) }
	w := newWatch(cfg.WatchPIDs)
	metricsBefore := scrapeAll(ctx, cfg.Gateways)
	selfBefore, _ := readStatusKB(os.Getpid(), "VmRSS:")

	d := newDialer()
	query := "role=view&format=" + cfg.Format
	var idleFrames atomic.Uint64
	logf(cfg, "connecting %d idle viewers to %d gateways", cfg.Idle, len(cfg.Gateways))
	w.startPeak()
	defer w.stopPeak()
	cr := connectAll(ctx, cfg.Idle, cfg.ConnectRate, cfg.ConnectConcurrency, func(ctx context.Context, i int) (*websocket.Conn, error) {
		c, err := d.dial(ctx, cfg.Gateways[i%len(cfg.Gateways)], cfg.Room, query)
		if err == nil {
			// Reading answers the gateway's pings. The room should have no
			// publisher, but a replica may hand a joining viewer the room's
			// cached last frame: discard and count it (CloseRead would
			// close the connection on any data message).
			go func() {
				for {
					_, r, err := c.Reader(context.Background())
					if err != nil {
						return
					}
					if _, err := io.Copy(io.Discard, r); err != nil {
						return
					}
					idleFrames.Add(1)
				}
			}()
		}
		return c, err
	})
	defer func() {
		for i, c := range cr.conns {
			if cr.ok[i] {
				_ = c.CloseNow()
			}
		}
	}()
	n := cfg.Idle - cr.failed
	rep.Connect = ConnectReport{Conns: n, Failed: cr.failed, Seconds: cr.took.Seconds(), PerSec: float64(n) / cr.took.Seconds()}
	if cr.failed > 0 {
		errf("%d of %d viewers failed to connect; first: %v", cr.failed, cfg.Idle, cr.first)
	}
	if n == 0 {
		return rep, fmt.Errorf("no viewer connected: %w", cr.first)
	}
	logf(cfg, "%d connected in %.2fs; holding for %v", n, cr.took.Seconds(), cfg.Duration)
	// The gateways count a viewer once its handler runs, a moment after the
	// handshake: wait until they all show before reading memory.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		m := scrapeAll(ctx, cfg.Gateways)
		if !m.Has("framecast_connections") || m.Sum("framecast_connections", `role="view"`) >= float64(n) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !sleepUntil(ctx, time.Now().Add(cfg.Duration)) {
		return rep, ctx.Err()
	}
	w.windowEnd()
	metricsAfter := scrapeAll(ctx, cfg.Gateways)
	selfAfter, _ := readStatusKB(os.Getpid(), "VmRSS:")
	w.stopPeak()

	rep.Procs = w.report(errf)
	idle := &IdleReport{ClientRSSPerViewerKB: float64(selfAfter-selfBefore) / float64(n), Messages: idleFrames.Load()}
	var grow int64
	for _, p := range rep.Procs {
		grow += p.RSSAfterKB - p.RSSBeforeKB
	}
	if len(rep.Procs) > 0 {
		idle.RSSPerViewerKB = float64(grow) / float64(n)
	}
	if metricsBefore != nil && metricsAfter != nil {
		idle.HeapPerViewerKB = (metricsAfter.Sum("go_memstats_heap_inuse_bytes") - metricsBefore.Sum("go_memstats_heap_inuse_bytes")) / 1024 / float64(n)
		idle.StackPerViewerKB = (metricsAfter.Sum("go_memstats_stack_inuse_bytes") - metricsBefore.Sum("go_memstats_stack_inuse_bytes")) / 1024 / float64(n)
	}
	rep.Idle = idle
	rep.Gateway = gatewayDelta(metricsBefore, metricsAfter, errf)
	return rep, nil
}

// redisReport relates Redis's output over the run to the frames published
// to it: the gateways' own count when their /metrics answer (it leaves out
// frames a publisher's latest-wins slot replaced), else the frames sent.
func redisReport(out int64, err error, replicas []map[string]bool, pubs []*publisher,
	before, after Metrics, size int, errf func(string, ...any)) *RedisReport {
	if err != nil {
		errf("redis INFO: %v", err)
		return nil
	}
	rd := &RedisReport{OutputBytes: out}
	var sent, weighted float64
	for i, p := range pubs {
		sent += float64(p.sentTotal)
		weighted += float64(p.sentTotal) * float64(len(replicas[i]))
	}
	if sent == 0 {
		return nil
	}
	rd.Frames = sent
	rd.Pictures = sent
	rd.PerPicture = float64(out) / sent
	if before != nil && after != nil && after.Has("framecast_frames_published_total") {
		rd.Frames = after.Sum("framecast_frames_published_total") - before.Sum("framecast_frames_published_total")
	}
	if rd.Frames <= 0 {
		return nil
	}
	reps := weighted / sent
	rd.PerFrame = float64(out) / rd.Frames
	rd.Replicas = int(reps + 0.5)
	rd.ExpectedPerFrame = float64(frames.HeaderSize+size) * reps
	if rd.ExpectedPerFrame > 0 { // 0 with no viewer (late joins only): JSON has no +Inf
		rd.Ratio = rd.PerFrame / rd.ExpectedPerFrame
	}
	return rd
}

// sleepUntil waits until t or ctx's end and reports whether t came.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// scrapeAll scrapes every gateway's /metrics and sums the series; nil if
// any scrape fails (a gateway behind a proxy may not expose it).
func scrapeAll(ctx context.Context, gateways []string) Metrics {
	sum := Metrics{}
	for _, g := range gateways {
		m, err := ScrapeMetrics(ctx, httpURL(g)+"/metrics")
		if err != nil {
			return nil
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum
}

func gatewayDelta(before, after Metrics, errf func(string, ...any)) *GatewayReport {
	if before == nil || after == nil {
		errf("gateway /metrics unavailable: no gateway counters")
		return nil
	}
	d := func(name string) float64 { return after.Sum(name) - before.Sum(name) }
	return &GatewayReport{
		FramesOut:      d("framecast_frames_out_total"),
		Skipped:        d("framecast_frames_skipped_total"),
		PublishDropped: d("framecast_publish_dropped_total"),
		CutOff:         d("framecast_viewers_cut_off_total"),
		LayerMovesDown: after.Sum("framecast_layer_moves_total", `direction="down"`) - before.Sum("framecast_layer_moves_total", `direction="down"`),
		LayerMovesUp:   after.Sum("framecast_layer_moves_total", `direction="up"`) - before.Sum("framecast_layer_moves_total", `direction="up"`),
		HeapInuseKB:    d("go_memstats_heap_inuse_bytes") / 1024,
		StackKB:        d("go_memstats_stack_inuse_bytes") / 1024,
	}
}
