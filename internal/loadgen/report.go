package loadgen

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a run. Durations are in milliseconds, rates per
// second, sizes in bytes unless the name says otherwise. Fields that were
// not measured are zero or nil.
type Report struct {
	Mode       string `json:"mode"` // "load" or "idle"
	Gateways   int    `json:"gateways"`
	Viewers    int    `json:"viewers"`
	Stalled    int    `json:"stalled,omitempty"`
	Publishers int    `json:"publishers,omitempty"`
	// RoomViewers is Config.RoomViewers: each room's reading viewers.
	RoomViewers []int   `json:"room_viewers,omitempty"`
	FPS         float64 `json:"fps,omitempty"` // target; 0 = unthrottled
	Size        int     `json:"size"`
	// Layers are the layers each publisher sent (Config.Layers); Size is
	// the main layer's.
	Layers []Layer `json:"layers,omitempty"`
	Format string  `json:"format,omitempty"`
	// MessageBytes is the size of one viewer message (header + JPEG, or the
	// JSON envelope).
	MessageBytes int     `json:"message_bytes"`
	WindowSec    float64 `json:"window_s,omitempty"`

	Connect ConnectReport `json:"connect"`

	// FramesSent counts frames sent in the window, over all publishers.
	FramesSent uint64 `json:"frames_sent,omitempty"`
	// SentFPS is FramesSent per second per publisher.
	SentFPS float64 `json:"sent_fps,omitempty"`
	// Expected is FramesSent times each room's reading viewers.
	Expected uint64 `json:"expected,omitempty"`
	// Received counts window frames the reading viewers got.
	Received      uint64  `json:"received,omitempty"`
	DeliveryRatio float64 `json:"delivery_ratio,omitempty"`
	// Latency is from each frame's capture time to its arrival at a viewer.
	Latency       LatencyReport `json:"latency_ms"`
	MaxGapMS      float64       `json:"max_gap_ms,omitempty"` // longest time between two window frames at one viewer
	DeliveriesSec float64       `json:"deliveries_per_s,omitempty"`
	MBSec         float64       `json:"mb_per_s,omitempty"` // viewer message bytes, 10^6 per second
	// ViewersLost counts reading viewers whose connection ended before the
	// run did.
	ViewersLost int `json:"viewers_lost,omitempty"`
	// BadMessages counts viewer messages that were not frames.
	BadMessages uint64 `json:"bad_messages,omitempty"`
	// Groups holds each viewer group's figures (Config.Groups), then
	// those of the viewers in no group ("rest") if there are any; none
	// without groups.
	Groups []GroupReport `json:"groups,omitempty"`

	// ClientCPUMS is this process's CPU time in the window, publishers
	// included; ClientCPUPerDeliveryUS divides it by Received.
	ClientCPUMS            float64 `json:"client_cpu_ms,omitempty"`
	ClientCPUPerDeliveryUS float64 `json:"client_cpu_per_delivery_us,omitempty"`

	// MachineBusyCores is how many CPUs the whole machine kept busy in the
	// window (from /proc/stat: everything but idle, iowait and steal);
	// OtherBusyCores subtracts this process and the watched ones, leaving
	// Redis, the kernel's unattributed work and anything else running.
	// StealCores is time the hypervisor gave to other guests.
	MachineBusyCores float64 `json:"machine_busy_cores,omitempty"`
	OtherBusyCores   float64 `json:"other_busy_cores,omitempty"`
	StealCores       float64 `json:"steal_cores,omitempty"`

	Procs   []ProcReport   `json:"procs,omitempty"`
	Gateway *GatewayReport `json:"gateway,omitempty"`
	Redis   *RedisReport   `json:"redis,omitempty"`
	Ceiling *CeilingReport `json:"ceiling,omitempty"`
	// FractionOfCeiling is MBSec over Ceiling.MBSec.
	FractionOfCeiling float64 `json:"fraction_of_ceiling,omitempty"`
	// H264 describes the H.264 clip the publishers played (Config.H264)
	// and their keyframes; LateJoins the late joins (Config.LateJoins);
	// Seeks the moves between recording and live (Config.Seeks).
	H264      *H264Report     `json:"h264,omitempty"`
	LateJoins *LateJoinReport `json:"late_joins,omitempty"`
	Seeks     *SeekReport     `json:"seeks,omitempty"`
	// Idle holds the idle-mode figures.
	Idle *IdleReport `json:"idle,omitempty"`

	Errors []string `json:"errors,omitempty"`
}

// H264Report describes an H.264 run's clip and keyframes. With an H.264
// clip, Report.Size is the clip's mean access unit and MessageBytes its
// mean version-2 message.
type H264Report struct {
	Codec         string `json:"codec"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
	ClipPictures  int    `json:"clip_pictures"`
	ClipKeyframes int    `json:"clip_keyframes"`
	// MeanPictureBytes and MeanKeyframeBytes are access-unit sizes;
	// ClipKbps is the clip's mean bitrate at the run's FPS.
	MeanPictureBytes  float64 `json:"mean_picture_bytes"`
	MeanKeyframeBytes float64 `json:"mean_keyframe_bytes"`
	ClipKbps          float64 `json:"clip_kbps,omitempty"`
	// KeyframesSent and KeyframeRequests count, over the whole run
	// (warmup included) and every publisher, the keyframes sent (each
	// after a configuration) and the gateway's {"type":"keyframe"}
	// requests received.
	KeyframesSent    uint64 `json:"keyframes_sent"`
	KeyframeRequests uint64 `json:"keyframe_requests"`
	// WindowKeyframeRequests counts the requests received from the
	// window's start on (the warmup's left out: viewers that connect
	// before the stream's first keyframe may ask for one).
	WindowKeyframeRequests uint64 `json:"window_keyframe_requests"`
	// ConfigsReceived counts the configurations the reading viewers got.
	ConfigsReceived uint64 `json:"configs_received"`
}

// ConnectReport describes how the viewer connections were opened.
type ConnectReport struct {
	Conns   int     `json:"conns"`
	Failed  int     `json:"failed,omitempty"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"per_s"`
}

// LatencyReport holds latency percentiles in milliseconds.
type LatencyReport struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// ProcReport is one watched process over the window.
type ProcReport struct {
	PID         int     `json:"pid"`
	CPUMS       float64 `json:"cpu_ms"`
	RSSBeforeKB int64   `json:"rss_before_kb"` // before any viewer connected
	RSSAfterKB  int64   `json:"rss_after_kb"`  // at the end of the window
	RSSPeakKB   int64   `json:"rss_peak_kb"`   // highest sample from connecting to the end
	// WcharMB is what the process passed to write system calls in the
	// window, in 10^6 bytes (/proc/PID/io wchar): the kernel's count of a
	// gateway's output, frames to viewers and publishes to Redis alike.
	WcharMB float64 `json:"wchar_mb,omitempty"`
}

// GatewayReport sums the watched gateways' own counters over the run, read
// from their /metrics.
type GatewayReport struct {
	FramesOut float64 `json:"frames_out"`
	// Skipped counts frames replaced in viewers' latest-wins slots;
	// PublishDropped frames replaced in publishers' slots before the
	// channel layer took them (every viewer misses those).
	Skipped        float64 `json:"skipped"`
	PublishDropped float64 `json:"publish_dropped"`
	CutOff         float64 `json:"cut_off"`
	// LayerMovesDown and LayerMovesUp count the gateways' adaptation
	// moves (framecast_layer_moves_total), over the whole run.
	LayerMovesDown float64 `json:"layer_moves_down,omitempty"`
	LayerMovesUp   float64 `json:"layer_moves_up,omitempty"`
	HeapInuseKB    float64 `json:"heap_inuse_kb_delta,omitempty"`
	StackKB        float64 `json:"stack_inuse_kb_delta,omitempty"`
}

// RedisReport is Redis's output over the whole publishing run (warmup,
// window and drain), per frame published to it.
type RedisReport struct {
	OutputBytes int64   `json:"output_bytes"`
	Frames      float64 `json:"frames"` // published to Redis, from the gateways' counters
	PerFrame    float64 `json:"per_frame"`
	// Pictures counts the pictures the publishers sent over the run
	// (warmup included), PerPicture the output per picture: with layers a
	// picture is one message per layer, and Frames counts messages.
	Pictures   float64 `json:"pictures"`
	PerPicture float64 `json:"per_picture"`
	// Replicas is the number of gateways subscribed to the room (those
	// with viewers of it); ExpectedPerFrame is MessageBytes × Replicas
	// for binary frames, what one PUBLISH fanned out to them should cost.
	Replicas         int     `json:"replicas"`
	ExpectedPerFrame float64 `json:"expected_per_frame"`
	Ratio            float64 `json:"ratio"`
}

// CeilingReport is the loopback ceiling measured after the load (see
// MeasureCeiling).
type CeilingReport struct {
	Conns    int `json:"conns"`
	BufBytes int `json:"buf_bytes"` // one write: the viewers' message size
	// Writers is the writing process's threads (its GOMAXPROCS).
	Writers int     `json:"writers,omitempty"`
	Seconds float64 `json:"seconds"`
	// WarmupSec is how long the writers ran before the window: until the
	// socket buffers stopped filling (see MeasureCeiling).
	WarmupSec float64 `json:"warmup_s,omitempty"`
	// MBSec and MsgSec are what the readers received.
	MBSec  float64 `json:"mb_per_s"`
	MsgSec float64 `json:"msgs_per_s"`
	// WcharMBSec is the kernel's count of the writer's bytes over the same
	// window (/proc/PID/io wchar): within socket buffers of MBSec.
	WcharMBSec float64 `json:"wchar_mb_per_s,omitempty"`
	// WriterCores and ReaderCores are each side's CPU time over the
	// window, in cores.
	WriterCores float64 `json:"writer_cores,omitempty"`
	ReaderCores float64 `json:"reader_cores,omitempty"`
}

// IdleReport is the idle-mode outcome.
type IdleReport struct {
	// RSSPerViewerKB is the watched processes' RSS growth divided by the
	// viewers connected.
	RSSPerViewerKB float64 `json:"rss_per_viewer_kb,omitempty"`
	// HeapPerViewerKB and StackPerViewerKB are the Go heap and goroutine
	// stack growth per viewer, from the gateways' /metrics.
	HeapPerViewerKB  float64 `json:"heap_per_viewer_kb,omitempty"`
	StackPerViewerKB float64 `json:"stack_per_viewer_kb,omitempty"`
	// ClientRSSPerViewerKB is this process's own cost per connection.
	ClientRSSPerViewerKB float64 `json:"client_rss_per_viewer_kb,omitempty"`
	// Messages counts data messages the idle viewers got (a cached frame
	// on joining, say); they were discarded.
	Messages uint64 `json:"messages,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// WriteText writes r for a human reader.
func (r *Report) WriteText(w io.Writer) {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("connect: %d conns in %.2fs (%.0f/s), %d failed", r.Connect.Conns, r.Connect.Seconds, r.Connect.PerSec, r.Connect.Failed)
	if r.Mode == "idle" {
		if r.Idle != nil {
			p("idle: %.1f KB RSS per viewer (Go heap %.1f KB, stacks %.1f KB); this client %.1f KB per connection; %d messages discarded",
				r.Idle.RSSPerViewerKB, r.Idle.HeapPerViewerKB, r.Idle.StackPerViewerKB, r.Idle.ClientRSSPerViewerKB, r.Idle.Messages)
		}
	} else {
		fps := fmt.Sprintf("%.0f fps", r.FPS)
		if r.FPS <= 0 {
			fps = "unthrottled"
		}
		p("load: %d viewers (+%d stalled) over %d gateways, %d publisher(s) at %s (sent %.1f fps), %d B payload, %s (%d B messages), %.1fs window",
			r.Viewers, r.Stalled, r.Gateways, r.Publishers, fps, r.SentFPS, r.Size, r.Format, r.MessageBytes, r.WindowSec)
		if len(r.Layers) > 0 {
			ls := make([]string, len(r.Layers))
			for i, l := range r.Layers {
				ls[i] = fmt.Sprintf("%dx%d:%d", l.Width, l.Height, l.Size)
			}
			p("layers: %s (viewers receive the first)", strings.Join(ls, ","))
		}
		if h := r.H264; h != nil {
			p("h264: %s %dx%d clip of %d pictures (%d keyframes), %.0f B mean picture, %.0f B mean keyframe, %.0f kbit/s; %d keyframes sent, %d keyframe requests received (%d in the window), %d configurations at viewers",
				h.Codec, h.Width, h.Height, h.ClipPictures, h.ClipKeyframes, h.MeanPictureBytes, h.MeanKeyframeBytes, h.ClipKbps, h.KeyframesSent, h.KeyframeRequests, h.WindowKeyframeRequests, h.ConfigsReceived)
		}
		if j := r.LateJoins; j != nil {
			p("late joins (%s) on %s: %d done, %d failed, %d warm; first picture ms p50 %.1f p95 %.1f max %.1f; caught up ms p50 %.1f p95 %.1f max %.1f; handshake ms p50 %.1f; %.0f pictures behind (p50); %d keyframe requests, %d undecodable",
				j.Codec, j.To, j.Joins, j.Failed, j.Warm, j.FirstPicture.P50, j.FirstPicture.P95, j.FirstPicture.Max,
				j.CaughtUp.P50, j.CaughtUp.P95, j.CaughtUp.Max, j.Handshake.P50, j.Behind.P50, j.KeyframeRequests, j.Undecodable)
		}
		if s := r.Seeks; s != nil {
			p("seeks (%s) on %s: %d done, %d failed; first recorded picture ms p50 %.1f p95 %.1f max %.1f; through the time sought p50 %.1f p95 %.1f; back to live ms p50 %.1f p95 %.1f max %.1f, caught up p50 %.1f",
				s.Codec, s.To, s.Seeks, s.Failed, s.FirstPicture.P50, s.FirstPicture.P95, s.FirstPicture.Max, s.Through.P50, s.Through.P95,
				s.Live.P50, s.Live.P95, s.Live.Max, s.LiveCaughtUp.P50)
			if s.GatewaySeek != nil {
				p("seeks: the gateway's %s: seeks %.0f, mean %.1f ms, p50 ≤ %g ms, p95 ≤ %g ms; lives %.0f, mean %.1f ms, p95 ≤ %g ms",
					SeekHistogram, s.GatewaySeek.Count, s.GatewaySeek.MeanMS, s.GatewaySeek.Quantile(0.5), s.GatewaySeek.Quantile(0.95),
					s.GatewayLive.Count, s.GatewayLive.MeanMS, s.GatewayLive.Quantile(0.95))
			}
		}
		p("frames sent %d; delivered %d of %d (%.4f)", r.FramesSent, r.Received, r.Expected, r.DeliveryRatio)
		p("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (mean %.2f); max gap %.1f ms",
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.Latency.Mean, r.MaxGapMS)
		p("throughput: %.0f deliveries/s, %.1f MB/s; client CPU %.1f µs per delivery", r.DeliveriesSec, r.MBSec, r.ClientCPUPerDeliveryUS)
		if r.ViewersLost > 0 || r.BadMessages > 0 {
			p("viewers lost: %d, bad messages: %d", r.ViewersLost, r.BadMessages)
		}
		for _, g := range r.Groups {
			link := ""
			if g.ThrottleKBps > 0 {
				link = fmt.Sprintf(", throttled to %.0f kB/s", g.ThrottleKBps)
			}
			p("group %s (%d viewers, query %q%s): delivered %d of %d (%.4f), %.1f fps and %.1f kB/s per viewer, latency mean %.2f p99 %.2f ms, max gap %.1f ms",
				g.Name, g.Viewers, g.Query, link, g.Received, g.Expected, g.DeliveryRatio, g.FPSPerViewer, g.BytesPerViewerSec/1000,
				g.Latency.Mean, g.Latency.P99, g.MaxGapMS)
			p("group %s: ended on layer %s; %d layer changes seen, %d control messages (%d layer), %d lost, %d bad",
				g.Name, formatEndedOn(g.EndedOn), g.LayerChanges, g.ControlMessages, g.LayerMessages, g.ViewersLost, g.BadMessages)
		}
	}
	if r.MachineBusyCores > 0 {
		p("machine: %.2f cores busy in the window (%.2f outside this process and the watched ones), %.2f stolen",
			r.MachineBusyCores, r.OtherBusyCores, r.StealCores)
	}
	for _, pr := range r.Procs {
		p("pid %d: CPU %.0f ms in window, wrote %.1f MB (wchar), RSS %d KB before, %d KB after, %d KB peak", pr.PID, pr.CPUMS, pr.WcharMB, pr.RSSBeforeKB, pr.RSSAfterKB, pr.RSSPeakKB)
	}
	if g := r.Gateway; g != nil {
		p("gateways: %.0f frames out, %.0f skipped by viewers, %.0f dropped before the channel layer, %.0f viewers cut off", g.FramesOut, g.Skipped, g.PublishDropped, g.CutOff)
		if g.LayerMovesDown+g.LayerMovesUp > 0 {
			p("gateways: %.0f viewers moved down a layer, %.0f up", g.LayerMovesDown, g.LayerMovesUp)
		}
	}
	if rd := r.Redis; rd != nil {
		p("redis: %d output bytes for %.0f frames published, %.0f per frame = %.3f × (message × %d replicas)", rd.OutputBytes, rd.Frames, rd.PerFrame, rd.Ratio, rd.Replicas)
		if len(r.Layers) > 0 {
			p("redis: %.0f bytes per picture (%.0f pictures of %d layers)", rd.PerPicture, rd.Pictures, len(r.Layers))
		}
	}
	if c := r.Ceiling; c != nil {
		p("loopback ceiling: %.1f MB/s (%.0f msgs/s) over %d conns of %d B frames from %d writer threads after %.1fs warmup (kernel wchar %.1f MB/s; writer %.2f cores, reader %.2f); delivered = %.1f%% of it",
			c.MBSec, c.MsgSec, c.Conns, c.BufBytes, c.Writers, c.WarmupSec, c.WcharMBSec, c.WriterCores, c.ReaderCores, 100*r.FractionOfCeiling)
	}
	for _, e := range r.Errors {
		p("error: %s", e)
	}
	_, _ = io.WriteString(w, b.String())
}

// formatEndedOn writes a GroupReport.EndedOn map in a stable order.
func formatEndedOn(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
