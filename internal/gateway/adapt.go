package gateway

import (
	"context"
	"slices"
	"time"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// Adaptation: the rule of docs/protocol.md ("Adaptation"). Every
// subscription with a layer choice, or on a v=2 connection, is checked
// every adaptCheckEvery by a timer of its own (time.AfterFunc: no
// goroutine waits between checks). A check reads the room's layer list
// (sending `layers` when it changed, and moving the viewer if its layer is
// gone) and, where adaptation applies, the skip counters of the viewer's
// queue (rooms.Viewer.Offered and Skipped, latest-frame-wins skips).
const (
	// adaptCheckEvery is the period of the check.
	adaptCheckEvery = time.Second
	// downWindowChecks is how many checks the down rule looks back over
	// (2 s).
	downWindowChecks = 2
	// downSkipShare: a viewer that skipped at least 1/downSkipShare of
	// the frames offered to it in the window, and at least downMinSkips,
	// moves down a layer.
	downSkipShare = 4
	downMinSkips  = 2
	// moveHold: after any move, a viewer is left alone this long (its
	// new queue must show what the new layer costs).
	moveHold = 2 * time.Second
	// probeHoldMin is how long a viewer below the layer it asked for must
	// skip nothing before it is tried one layer up; each quick fall-back
	// (down again within quickFallback of an up move) doubles it, up to
	// probeHoldMax; stableReset on a layer without a move resets it.
	probeHoldMin  = 10 * time.Second
	probeHoldMax  = 80 * time.Second
	quickFallback = 5 * time.Second
	stableReset   = 30 * time.Second
)

// adaptSendBuffer is the kernel send buffer (SO_SNDBUF; Linux doubles it)
// of the sockets of viewers that may adapt. Latest-frame-wins and the skip
// counts that adaptation reads only see a slow link once the socket is
// full: with the kernel's autotuned buffer (up to tcp_wmem's 4 MB) a viewer
// on a 600 KB/s link holds seconds of frames in its socket before it skips,
// and sees a move, and every frame, that late. 128 KiB keeps that under
// half a second on such a link and still carries 2.5 MB/s at 100 ms of
// round trip.
const adaptSendBuffer = 128 << 10

// Directions of framecast_layer_moves_total, and the reasons of `layer`
// messages.
const (
	moveDown    = "down"
	moveUp      = "up"
	reasonAsked = "asked"
	reasonGone  = "gone"
)

// adaptation is one subscription's adaptation state. Guarded by its
// subscription's mu.
type adaptation struct {
	probeHold  time.Duration
	lastMove   time.Time // the last move of any kind, or the subscription's start
	lastUp     time.Time // the last up move, if no down move followed it
	cleanSince time.Time // no skip seen since
	viewer     *rooms.Viewer
	offered    uint64 // viewer's counters at the last check
	skipped    uint64
	window     [downWindowChecks]struct{ offered, skipped uint64 }
	next       int
}

// reset starts a new layer at now: the window is emptied and the hold
// starts; the probe hold and the last up move carry over.
func (a *adaptation) reset(now time.Time) {
	if a.probeHold == 0 {
		a.probeHold = probeHoldMin
	}
	a.lastMove, a.cleanSince = now, now
	a.viewer = nil
	a.window = [downWindowChecks]struct{ offered, skipped uint64 }{}
}

// observe records what v (the viewer of the current layer) was offered and
// skipped since the last check.
func (a *adaptation) observe(now time.Time, offered, skipped uint64, v *rooms.Viewer) {
	if v != a.viewer {
		a.viewer, a.offered, a.skipped = v, offered, skipped
		return
	}
	d := &a.window[a.next]
	a.next = (a.next + 1) % downWindowChecks
	d.offered, d.skipped = offered-a.offered, skipped-a.skipped
	a.offered, a.skipped = offered, skipped
	if d.skipped > 0 {
		a.cleanSince = now
	}
}

// decide returns moveDown, moveUp or "": pos is the viewer's place among
// the n layers from the widest (0), ceiling the place of the layer it
// asked for.
func (a *adaptation) decide(now time.Time, pos, ceiling, n int) string {
	if now.Sub(a.lastMove) >= stableReset {
		a.probeHold = probeHoldMin
	}
	if now.Sub(a.lastMove) < moveHold {
		return ""
	}
	var offered, skipped uint64
	for _, d := range a.window {
		offered, skipped = offered+d.offered, skipped+d.skipped
	}
	if skipped >= downMinSkips && skipped*downSkipShare >= offered && pos < n-1 {
		return moveDown
	}
	if pos > ceiling && now.Sub(a.cleanSince) >= a.probeHold {
		return moveUp
	}
	return ""
}

// moved records a move in direction at now.
func (a *adaptation) moved(now time.Time, direction string) {
	switch direction {
	case moveUp:
		a.lastUp = now
	case moveDown:
		if !a.lastUp.IsZero() && now.Sub(a.lastUp) < quickFallback {
			a.probeHold = min(2*a.probeHold, probeHoldMax)
		}
		a.lastUp = time.Time{}
	}
	a.reset(now)
}

// armLocked starts or re-arms sub's check. Call with sub.mu held.
func (sub *subscription) armLocked() {
	if sub.stopped {
		return
	}
	if sub.timer == nil {
		sub.timer = time.AfterFunc(adaptCheckEvery, sub.tick)
		return
	}
	sub.timer.Reset(adaptCheckEvery)
}

// checkTimeout bounds one check's layer list and switch.
const checkTimeout = 2 * time.Second

// tick is the 1 s check, on the timer's goroutine (which may block: a
// switch joins a stream). Checks of one subscription never overlap: the
// timer is re-armed when one ends.
func (sub *subscription) tick() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.stopped {
		return
	}
	defer sub.armLocked()
	if sub.playing != nil {
		return // a recording: the layer list and adaptation wait for live
	}
	ctx, cancel := context.WithTimeout(sub.w.ctx, checkTimeout)
	defer cancel()
	if sub.refreshLocked(ctx) || !sub.adapt || !sub.ask.set {
		return
	}
	now := time.Now()
	sub.moves.observe(now, sub.joined.Offered(), sub.joined.Skipped(), sub.joined)
	bySize := rooms.BySize(sub.layers)
	pos, ceiling := place(bySize, sub.layer), place(bySize, sub.ask.resolve(sub.layers))
	dir := sub.moves.decide(now, pos, ceiling, len(bySize))
	target := pos
	switch dir {
	case moveDown:
		target++
	case moveUp:
		target--
	default:
		return
	}
	if err := sub.switchLocked(ctx, bySize[target].Index, dir); err != nil {
		sub.w.k.log.Debug("layer move failed", "room", sub.room, "direction", dir, "err", err)
		return
	}
	sub.moves.moved(now, dir)
	sub.w.s.metrics.layerMoves.WithLabelValues(dir).Inc()
}

// recheck is a check of the layer list alone, on its own goroutine: the
// writer saw an offline event on a layer other than the main one.
func (sub *subscription) recheck() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.stopped {
		return
	}
	ctx, cancel := context.WithTimeout(sub.w.ctx, checkTimeout)
	defer cancel()
	sub.refreshLocked(ctx)
}

// refreshLocked reads the room's layers: if they changed, a v=2 viewer is
// told (`layers`); if the viewer's layer is gone it moves to the layer its
// choice picks now (reason gone), and if it is on a wider layer than it
// asked for (the layers it asked among appeared since), to that one
// (reason asked). It reports whether it moved the viewer. Call with sub.mu
// held.
func (sub *subscription) refreshLocked(ctx context.Context) bool {
	layers, err := sub.w.s.hub.Layers(ctx, sub.room, sub.ask.codec)
	if err != nil {
		// The list could not be read (Redis slow or down): keep the one
		// known, rather than move viewers off a layer that is there.
		sub.w.k.log.Debug("layer list unknown; keeping the last", "room", sub.room, "err", err)
		return false
	}
	if !slices.Equal(layers, sub.layers) {
		sub.layers = layers
		if sub.w.opts.v2 {
			sub.w.send(layersMessage(sub.room, layers))
		}
	}
	want := sub.ask.resolve(layers)
	reason := ""
	bySize := rooms.BySize(layers)
	switch cur := place(bySize, sub.layer); {
	case cur < 0:
		reason = reasonGone
	case cur < place(bySize, want):
		reason = reasonAsked
	default:
		return false
	}
	if err := sub.switchLocked(ctx, want, reason); err != nil {
		sub.w.k.log.Debug("layer change failed", "room", sub.room, "reason", reason, "err", err)
		return false
	}
	return true
}

// place returns the position of layer index in bySize, or -1.
func place(bySize []frames.LayerInfo, index int) int {
	for i, l := range bySize {
		if l.Index == index {
			return i
		}
	}
	return -1
}
