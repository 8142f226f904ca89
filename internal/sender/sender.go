package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gocv.io/x/gocv"
)

// captureStopTimeout bounds how long Run waits, once the WebSocket is
// closed, for the capture goroutine to leave a blocking OpenCV read (a hung
// RTSP stream can block for tens of seconds). Past it Run returns without
// closing the capture Mats, which the exiting process releases.
const captureStopTimeout = 5 * time.Second

// Sender captures, encodes and publishes one source to one room. Build it
// with New and call Run once. Stats may be called from any goroutine.
type Sender struct {
	cfg   Config
	spec  sourceSpec
	log   *slog.Logger
	stats counters
	ran   atomic.Bool
}

// New checks cfg and the source. Errors mean the sender cannot start: a
// bad setting, or a video file OpenCV cannot read; they name the setting.
// Cameras and stream URLs are not opened here: one that is absent at start
// is retried with backoff by Run, like one lost later.
func New(cfg Config, log *slog.Logger) (*Sender, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	spec, err := parseSource(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("invalid SENDER_SOURCE (-source): %w", err)
	}
	if spec.kind == sourceFile {
		w, h, fps, err := probeFile(spec.name)
		if err != nil {
			return nil, fmt.Errorf("invalid SENDER_SOURCE (-source): %w", err)
		}
		log.Debug("probed video file", "file", spec.name, "width", w, "height", h, "fps", fps)
	}
	return &Sender{cfg: cfg, spec: spec, log: log}, nil
}

// Stats returns the counters since Run started.
func (s *Sender) Stats() Stats { return s.stats.snapshot() }

// Run captures and publishes until ctx is done, then closes the WebSocket
// with 1000 "sender stopping", stops the pipeline, releases every Mat and
// returns nil. Failures of the source or the gateway are retried forever
// and never returned. Run may be called once.
func (s *Sender) Run(ctx context.Context) error {
	if s.ran.Swap(true) {
		return errors.New("sender: Run called twice")
	}
	s.log.Info("starting sender", "config", s.cfg)

	frameSlot := newFrameSlot()
	msgs := newMessageSlot()
	back, front := gocv.NewMat(), gocv.NewMat()
	enc := newPictureEncoder(s.cfg) // validated by New
	capt := newCapturer(s.cfg, s.spec, frameSlot, &s.stats, s.log)
	keyframes := newKeyframeLimiter(KeyframeRequestGap, enc.forceKeyframe)
	defer keyframes.stop()
	pub := &publisher{cfg: s.cfg, slot: msgs, stats: &s.stats, log: s.log, keyframe: keyframes.request}

	// Capture and encode stop with ctx, while the publisher closes the
	// socket: no frame is needed for the close handshake.
	pipeCtx, stopPipe := context.WithCancel(ctx)
	defer stopPipe()
	captureDone := make(chan struct{})
	go func() { defer close(captureDone); capt.run(pipeCtx, &back) }()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		encodeLoop(pipeCtx, frameSlot, &front, enc, msgs, s.cfg.FPS, &s.stats, s.log)
	}()
	if s.cfg.StatusInterval > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			logStatus(pipeCtx, s.log, &s.stats, s.cfg.StatusInterval, layerCount(s.cfg), s.cfg.h264())
		}()
	}

	// The publisher watches ctx itself: on shutdown it closes the socket
	// with 1000 and returns.
	pub.run(ctx)
	s.log.Info("stopping sender")
	stopPipe()
	wg.Wait()
	enc.Close()
	front.Close()
	select {
	case <-captureDone:
	case <-time.After(captureStopTimeout):
		return fmt.Errorf("failed to stop capture within %v: source read still blocked", captureStopTimeout)
	}
	back.Close()
	frameSlot.Close()
	return nil
}
