package sender

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"gocv.io/x/gocv"
)

// capturer is the capture goroutine's state: it opens the source, reads
// frames into back and stores them in slot, reopening a failed source with
// backoff. back is owned by the capture goroutine while run runs.
type capturer struct {
	spec      sourceSpec
	testWidth int
	fps       float64
	slot      *frameSlot
	stats     *counters
	log       *slog.Logger
	bo        *backoff

	// open opens the source; tests replace it to inject failures.
	open func() (frameSource, error)
}

func newCapturer(cfg Config, spec sourceSpec, slot *frameSlot, stats *counters, log *slog.Logger) *capturer {
	c := &capturer{
		spec: spec, testWidth: cfg.testPatternWidth(), fps: cfg.FPS,
		slot: slot, stats: stats, log: log,
		bo: newBackoff(cfg.ReconnectMin, cfg.ReconnectMax),
	}
	c.open = func() (frameSource, error) { return openSource(c.spec, c.testWidth, c.fps) }
	return c
}

// run captures until ctx is done. A source that cannot be opened or stops
// delivering frames is closed and reopened after a backoff pause, forever:
// a camera unplugged and plugged back, a stream server restarted, resume by
// themselves.
func (c *capturer) run(ctx context.Context, back *gocv.Mat) {
	var seq uint64
	var lastErr string
	opened := 0
	for ctx.Err() == nil {
		src, err := c.open()
		if err != nil {
			pause := c.bo.next()
			level := slog.LevelWarn
			if err.Error() == lastErr {
				level = slog.LevelDebug
			}
			lastErr = err.Error()
			c.log.Log(ctx, level, "failed to open source", "source", c.spec.String(), "err", err, "retry_in", pause.Round(time.Millisecond))
			if sleep(ctx, pause) != nil {
				return
			}
			continue
		}
		lastErr = ""
		opened++
		if opened > 1 {
			c.stats.sourceReopens.Add(1)
		}
		c.log.Info("opened source", "source", c.spec.String(), "kind", c.spec.kind.String())
		n, err := c.read(ctx, src, back, &seq)
		src.Close()
		if ctx.Err() != nil {
			return
		}
		pause := c.bo.next()
		c.log.Warn("source failed; reopening", "source", c.spec.String(), "err", err, "frames", n, "retry_in", pause.Round(time.Millisecond))
		if sleep(ctx, pause) != nil {
			return
		}
	}
}

// read reads frames from src into the slot until src fails or ctx is done,
// and returns how many it read. The first frame resets the backoff.
func (c *capturer) read(ctx context.Context, src frameSource, back *gocv.Mat, seq *uint64) (int, error) {
	n := 0
	for {
		if err := src.Read(ctx, back); err != nil {
			if errors.Is(err, errReadFailed) && n == 0 {
				return n, errors.New("failed to read a first frame")
			}
			return n, err
		}
		if n == 0 {
			c.bo.reset()
			c.log.Debug("first frame", "width", back.Cols(), "height", back.Rows())
		}
		n++
		*seq++
		c.slot.put(back, frameInfo{seq: *seq, captured: time.Now()})
		c.stats.captured.Add(1)
	}
}

// encodeLoop is the encode goroutine: it takes the newest captured frame at
// most fps times a second, encodes it (once per layer) and puts the
// message, all layers together, in msgs for the writer. While no
// connection is up it consumes frames without encoding them. front is
// owned by the encode goroutine while it runs.
//
// With an encoder whose pictures refer to earlier ones (H.264), a picture
// the writer has not taken yet is never replaced: the captured frames
// that come meanwhile are skipped unencoded (counted in skipped), which
// no later picture needs. The first picture of every connection, and the
// one after a picture was lost anyway (dropped at a disconnection, or an
// encode that failed), restart the stream with a keyframe.
func encodeLoop(ctx context.Context, frames *frameSlot, front *gocv.Mat, enc pictureEncoder,
	msgs *messageSlot, fps float64, stats *counters, log *slog.Logger) {
	pace := newPacer(fps)
	failing := false
	var gen uint64 // the connection the last picture was encoded for
	for {
		select {
		case <-ctx.Done():
			return
		case <-frames.ready:
		}
		if pace.due(ctx) != nil {
			return
		}
		if enc.byPictures() && stats.connected.Load() && msgs.hasPending() {
			// The writer is behind: this frame is not encoded, so nothing
			// will refer to it.
			if _, ok := frames.take(front); ok {
				stats.skipped.Add(1)
			}
			continue
		}
		info, ok := frames.take(front)
		if !ok { // a stale signal: the frame it announced was taken already
			continue
		}
		pace.advance()
		if !stats.connected.Load() {
			continue
		}
		m := msgs.get()
		restart := false
		if enc.byPictures() {
			cur := stats.connGen.Load()
			restart = cur != gen || msgs.takeLost() || failing
			gen, m.gen = cur, cur
		}
		err := enc.encodePicture(*front, info, restart, m)
		if err != nil {
			msgs.release(m)
			if !failing {
				log.Warn("failed to encode frame", "err", err)
			}
			failing = true
			continue
		}
		failing = false
		if msgs.put(m) {
			stats.skipped.Add(1)
		}
	}
}
