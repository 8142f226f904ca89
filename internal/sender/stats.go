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
	reconnects    atomic.Uint64 // connections after the first
	sourceReopens atomic.Uint64 // source opens after the first
	connected     atomic.Bool
}

// Stats is a snapshot of a Sender's counters since Run started.
type Stats struct {
	Captured uint64 // frames read from the source
	Sent     uint64 // pictures written to the gateway, all their layers
	Skipped  uint64 // pictures dropped because the socket was slower than the encoder
	Bytes    uint64 // message bytes written to the gateway
	// LayerBytes are Bytes by layer: index 0 alone without SENDER_LAYERS.
	LayerBytes    [frames.MaxLayers]uint64
	Reconnects    uint64 // successful connections after the first
	SourceReopens uint64 // times the source was reopened after failing
	Connected     bool   // whether a WebSocket is up now
}

func (c *counters) snapshot() Stats {
	var layers [frames.MaxLayers]uint64
	for i := range layers {
		layers[i] = c.layerBytes[i].Load()
	}
	return Stats{
		LayerBytes:    layers,
		Captured:      c.captured.Load(),
		Sent:          c.sent.Load(),
		Skipped:       c.skipped.Load(),
		Bytes:         c.bytes.Load(),
		Reconnects:    c.reconnects.Load(),
		SourceReopens: c.sourceReopens.Load(),
		Connected:     c.connected.Load(),
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
// layer_kB_per_s gives each layer's share, in layer order.
func logStatus(ctx context.Context, log *slog.Logger, c *counters, interval time.Duration, layers int) {
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
