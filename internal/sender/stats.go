package sender

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// counters are the sender's running totals, updated by the pipeline's
// goroutines with atomic adds and read by the status goroutine and Stats.
type counters struct {
	captured      atomic.Uint64 // frames read from the source
	sent          atomic.Uint64 // messages written to the WebSocket
	skipped       atomic.Uint64 // encoded frames replaced before the socket took them
	bytes         atomic.Uint64 // message bytes written
	layerBytes    [frames.MaxLayers]atomic.Uint64
	h264Bytes     atomic.Uint64 // bytes of H.264 messages (configurations and access units)
	jpegBytes     atomic.Uint64 // bytes of JPEG messages
	keyframes     atomic.Uint64 // H.264 keyframe pictures written
	keyRequests   atomic.Uint64 // {"type":"keyframe"} messages received
	reconnects    atomic.Uint64 // connections after the first
	sourceReopens atomic.Uint64 // source opens after the first
	connected     atomic.Bool
	// connGen counts connections: the publisher adds one before it sets
	// connected, so the encoder can tell a picture's connection.
	connGen atomic.Uint64
}

// Stats is a snapshot of a Sender's counters since Run started.
type Stats struct {
	Captured uint64 // frames read from the source
	Sent     uint64 // pictures written to the gateway, all their layers
	Skipped  uint64 // pictures dropped because the socket was slower than the encoder
	Bytes    uint64 // message bytes written to the gateway
	// LayerBytes are the bytes of the codec's layers, by layer: the JPEG
	// layers, or with SENDER_CODEC=h264 the H.264 layers; index 0 alone
	// without SENDER_LAYERS.
	LayerBytes [frames.MaxLayers]uint64
	H264Bytes  uint64 // bytes of H.264 messages, every layer
	JPEGBytes  uint64 // bytes of JPEG messages, every layer
	// Keyframes are the H.264 keyframe pictures written (all their layers).
	Keyframes uint64
	// KeyframeRequests are the gateway's {"type":"keyframe"} messages read.
	KeyframeRequests uint64
	Reconnects       uint64 // successful connections after the first
	SourceReopens    uint64 // times the source was reopened after failing
	Connected        bool   // whether a WebSocket is up now
}

func (c *counters) snapshot() Stats {
	var layers [frames.MaxLayers]uint64
	for i := range layers {
		layers[i] = c.layerBytes[i].Load()
	}
	return Stats{
		LayerBytes:       layers,
		H264Bytes:        c.h264Bytes.Load(),
		JPEGBytes:        c.jpegBytes.Load(),
		Keyframes:        c.keyframes.Load(),
		KeyframeRequests: c.keyRequests.Load(),
		Captured:         c.captured.Load(),
		Sent:             c.sent.Load(),
		Skipped:          c.skipped.Load(),
		Bytes:            c.bytes.Load(),
		Reconnects:       c.reconnects.Load(),
		SourceReopens:    c.sourceReopens.Load(),
		Connected:        c.connected.Load(),
	}
}

// layerCount is how many layers each picture is sent as.
func layerCount(cfg Config) int {
	specs, _ := cfg.layerSpecs()
	return max(len(specs), 1)
}

// logStatus writes one status line every interval until ctx is done: rates
// over the interval, totals since start. sent_fps counts pictures (all
// their layers) and kB_per_s all bytes; with more than one layer,
// layer_kB_per_s gives each layer's share, in layer order. With h264,
// h264_kB_per_s and jpeg_kB_per_s split the bytes by codec (layer_kB_per_s
// is then the H.264 layers'), and keyframes and keyframe_requests count
// the keyframe pictures sent and the gateway's requests read.
func logStatus(ctx context.Context, log *slog.Logger, c *counters, interval time.Duration, layers int, h264 bool) {
	t := time.NewTicker(interval)
	defer t.Stop()
	prev, prevAt := c.snapshot(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cur := c.snapshot()
			secs := now.Sub(prevAt).Seconds()
			rate := func(a, b uint64) float64 { return float64(a-b) / secs }
			attrs := []any{
				"connected", cur.Connected,
				"captured_fps", round1(rate(cur.Captured, prev.Captured)),
				"sent_fps", round1(rate(cur.Sent, prev.Sent)),
				"skipped", cur.Skipped - prev.Skipped,
				"kB_per_s", round1(rate(cur.Bytes, prev.Bytes) / 1000),
				"reconnects", cur.Reconnects,
				"skipped_total", cur.Skipped,
				"sent_total", cur.Sent,
			}
			if h264 {
				attrs = append(attrs,
					"h264_kB_per_s", round1(rate(cur.H264Bytes, prev.H264Bytes)/1000),
					"jpeg_kB_per_s", round1(rate(cur.JPEGBytes, prev.JPEGBytes)/1000),
					"keyframes", cur.Keyframes-prev.Keyframes,
					"keyframe_requests", cur.KeyframeRequests-prev.KeyframeRequests,
					"keyframes_total", cur.Keyframes,
				)
			}
			if layers > 1 {
				per := make([]string, layers)
				for i := range per {
					per[i] = strconv.FormatFloat(round1(rate(cur.LayerBytes[i], prev.LayerBytes[i])/1000), 'f', 1, 64)
				}
				attrs = append(attrs, "layer_kB_per_s", strings.Join(per, ","))
			}
			log.Info("status", attrs...)
			prev, prevAt = cur, now
		}
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
