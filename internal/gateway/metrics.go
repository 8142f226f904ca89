package gateway

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/framecast/framecast/pkg/rooms"
)

// metrics are the gateway's Prometheus series. Labels take values from small
// fixed sets (roles, formats, reasons, operations), never room names, so the
// series count is bounded however many rooms there are.
type metrics struct {
	reg              *prometheus.Registry
	connections      *prometheus.GaugeVec   // role
	framesIn         prometheus.Counter     // frames accepted from local publishers
	keyframeRequests prometheus.Counter     // keyframe requests written to local publishers
	framesOut        *prometheus.CounterVec // format
	rejected         *prometheus.CounterVec // reason
	cutOff           *prometheus.CounterVec // reason
	closed           *prometheus.CounterVec // reason: closeTable's labels
	redisErrors      *prometheus.CounterVec // op
	layerMoves       *prometheus.CounterVec // direction: down, up (adapt.go)
	control          *prometheus.CounterVec // type: control messages read from viewers (control.go)
	playbacks        prometheus.Gauge       // subscriptions playing a recording (playback.go)
	seekLatency      prometheus.Histogram   // a seek's first frame written, from the seek (playback.go)
	clips            prometheus.Counter     // clip.mp4 exports served (library.go)
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "framecast_connections", Help: "Open connections by role (publish, view, seed, mjpeg).",
		}, []string{"role"}),
		framesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "framecast_frames_in_total", Help: "Frames accepted from publishers on this replica.",
		}),
		keyframeRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "framecast_keyframe_requests_relayed_total", Help: "Keyframe requests written to H.264 publishers on this replica.",
		}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "framecast_frames_out_total", Help: "Frame messages written to viewers, by wire format.",
		}, []string{"format"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "framecast_rejected_total", Help: "Requests and messages refused, by reason.",
		}, []string{"reason"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "framecast_connections_closed_total", Help: "Connections (WebSockets, MJPEG streams) ended, by reason (see docs/protocol.md).",
		}, []string{"reason"}),
		cutOff: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "framecast_viewers_cut_off_total", Help: "Viewers closed by the gateway, by reason.",
		}, []string{"reason"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "framecast_redis_errors_total", Help: "Failed Redis operations, by operation.",
		}, []string{"op"}),
		layerMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "framecast_layer_moves_total", Help: "Viewers moved to another layer by adaptation, by direction (down, up).",
		}, []string{"direction"}),
		control: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "framecast_control_messages_total", Help: "Control messages read from viewers, by type (select, subscribe, unsubscribe, seek, live, invalid).",
		}, []string{"type"}),
		playbacks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "framecast_playbacks", Help: "Viewers' rooms playing a recording rather than live.",
		}),
		seekLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "framecast_seek_first_frame_seconds", Help: "From a seek (or a return to live) to its first frame written to the viewer.",
			Buckets: []float64{.005, .01, .025, .05, .1, .15, .25, .5, 1, 2.5},
		}),
		clips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "framecast_clips_total", Help: "clip.mp4 exports served.",
		}),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connections, m.framesIn, m.keyframeRequests, m.framesOut, m.rejected, m.cutOff, m.closed, m.redisErrors,
		m.layerMoves, m.control, m.playbacks, m.seekLatency, m.clips,
	)
	for _, d := range []string{moveDown, moveUp} {
		m.layerMoves.WithLabelValues(d)
	}
	for _, r := range []string{roleView, rolePublish, roleSeed} {
		m.connections.WithLabelValues(r)
	}
	return m
}

// registerHub adds the series read from the hub's counters at scrape time.
func (m *metrics) registerHub(hub *rooms.Hub) {
	stat := func(f func(rooms.Stats) float64) func() float64 {
		return func() float64 { return f(hub.Stats()) }
	}
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "framecast_frames_skipped_total", Help: "Frames viewers skipped because they were behind (latest frame wins).",
		}, stat(func(s rooms.Stats) float64 { return float64(s.Skipped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "framecast_frames_relayed_total", Help: "Frames the channel layer delivered to this replica's rooms.",
		}, stat(func(s rooms.Stats) float64 { return float64(s.Relayed) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "framecast_frames_published_total", Help: "Frames published to the channel layer.",
		}, stat(func(s rooms.Stats) float64 { return float64(s.Published) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "framecast_publish_dropped_total", Help: "Frames a publisher dropped before the channel layer took them: its queue was full, or they waited past 100 ms.",
		}, stat(func(s rooms.Stats) float64 { return float64(s.PublishDropped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "framecast_room_rate_dropped_total", Help: "Frames dropped because their room was over GATEWAY_ROOM_RATE.",
		}, stat(func(s rooms.Stats) float64 { return float64(s.RoomRateDrops) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "framecast_keyframe_requests_sent_total", Help: "Keyframe requests this replica sent for its H.264 viewers (at most one a second per room).",
		}, stat(func(s rooms.Stats) float64 { return float64(s.KeyframeRequests) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "framecast_publish_errors_total", Help: "Failed publishes to the channel layer.",
		}, stat(func(s rooms.Stats) float64 { return float64(s.PublishErrors) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "framecast_rooms", Help: "Rooms with local viewers or publishers.",
		}, stat(func(s rooms.Stats) float64 { return float64(s.Rooms) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "framecast_idle_rooms", Help: "Of framecast_rooms, rooms without a known publisher: held within half of GATEWAY_MAX_ROOMS.",
		}, stat(func(s rooms.Stats) float64 { return float64(s.IdleRooms) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "framecast_layer_ready", Help: "1 when the channel layer can deliver frames.",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if hub.Layer().Ready(ctx) == nil {
				return 1
			}
			return 0
		}),
	)
}
