package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/framecast/framecast/internal/recording/playback"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// Playback on the same connections (docs/recording.md, "Playback"). A
// subscription plays either live (its viewer joined to the room's stream
// in the hub) or a recording: its viewer is then a standalone
// rooms.Viewer that a player (playback.Play) fills at the pace the
// footage was captured, and the session's writer drains it exactly as a
// live one, in the connection's format. Moving between the two is a switch
// like a layer switch: the new viewer is made first, and the writer moves
// to it when it reaches the control item, writing the `playback` or `live`
// message (v=2) before the first frame from it. The switch floor does not
// apply: a seek goes back in time on purpose.
//
// While a subscription plays a recording its layer choice is kept for when
// it goes back live: recordings hold each codec's main layer only, and
// adaptation waits.

// playing is a subscription's player. Guarded by the subscription's mu.
type playing struct {
	cancel context.CancelFunc
	codec  frames.Codec
}

// Reasons of `live` messages.
const (
	reasonCaughtUp = "caught_up" // the recording ran out: what follows is live
	reasonFailed   = "failed"    // the recording could not be read on
)

// seekLocked moves sub to its room's recording from at, anchored at wall
// (subscriptions seeked together with one at and wall play in step: a
// camera wall). mark is when the viewer asked, for the seek latency
// metric. A codec=h264 viewer plays the H.264 recording, or the JPEG one
// where there is none then. Call with sub.mu held; it may block on the
// index and the store, never on the writer.
func (sub *subscription) seekLocked(ctx context.Context, at, wall, mark time.Time) error {
	w := sub.w
	if sub.stopped {
		return errConnEnding
	}
	if w.s.lib == nil {
		return errNoLibrary
	}
	ctx, cancel := context.WithTimeout(ctx, libraryTimeout)
	defer cancel()
	codecs := []frames.Codec{sub.ask.codec}
	if sub.ask.codec != frames.CodecJPEG {
		codecs = append(codecs, frames.CodecJPEG)
	}
	var r *playback.Reader
	var err error
	for _, codec := range codecs {
		r, err = w.s.lib.Seek(ctx, frames.Stream{Room: sub.room, Codec: codec}, at)
		if !errors.Is(err, playback.ErrNoFootage) {
			break
		}
	}
	switch {
	case errors.Is(err, playback.ErrNoFootage):
		return fmt.Errorf("no recording of room %q at or after %s", sub.room, at.UTC().Format(time.RFC3339Nano))
	case err != nil:
		w.k.log.Warn("playback: recordings unreadable", "room", sub.room, "err", err)
		return errUnreadable
	}
	codec := r.Stream().Codec
	pv := rooms.NewViewer(codec, w.notify)
	var msg []byte
	if w.opts.v2 {
		msg = playbackMessage(sub.room, at, codec)
	}
	if !w.enqueue(ctlItem{sub: sub, to: pv, noFloor: true, mark: mark, msg: msg}) {
		return errConnEnding
	}
	if sub.playing != nil {
		sub.playing.cancel()
	} else {
		w.s.metrics.playbacks.Inc()
	}
	pctx, pcancel := context.WithCancel(w.ctx)
	sub.playing = &playing{cancel: pcancel, codec: codec}
	sub.joined = pv
	go sub.play(pctx, r, at, wall, pv)
	w.k.log.Debug("playing a recording", "room", sub.room, "at", at, "codec", codec)
	return nil
}

// play runs the player until it is cancelled (a seek, live, the end of the
// connection) or the recording runs out: then the subscription goes live.
func (sub *subscription) play(ctx context.Context, r *playback.Reader, at, wall time.Time, pv *rooms.Viewer) {
	err := playback.Play(ctx, r, at, wall, pv, !sub.w.opts.multi)
	if ctx.Err() != nil {
		return
	}
	reason := reasonCaughtUp
	if !errors.Is(err, playback.ErrCaughtUp) {
		reason = reasonFailed
		sub.w.k.log.Warn("playback stopped: recordings unreadable", "room", sub.room, "err", err)
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if !sub.playingNow(pv) {
		return // a seek or live came meanwhile
	}
	lctx, cancel := context.WithTimeout(sub.w.ctx, checkTimeout)
	defer cancel()
	if err := sub.goLiveLocked(lctx, reason, time.Time{}); err != nil && !errors.Is(err, errConnEnding) {
		sub.w.k.log.Debug("going live after playback failed", "room", sub.room, "err", err)
	}
}

// playingNow reports whether pv is the viewer sub's player fills. Call
// with sub.mu held.
func (sub *subscription) playingNow(pv *rooms.Viewer) bool {
	return sub.playing != nil && sub.joined == pv
}

// goLiveLocked moves sub from its recording back to the live stream of
// the layer it chose, telling the viewer why (`live`, v=2). A subscription
// that is live already is only told. Call with sub.mu held.
func (sub *subscription) goLiveLocked(ctx context.Context, reason string, mark time.Time) error {
	w := sub.w
	if sub.stopped {
		return errConnEnding
	}
	var msg []byte
	if w.opts.v2 {
		msg = liveMessage(sub.room, reason)
	}
	if sub.playing == nil && sub.joined.Stream() != (frames.Stream{}) {
		if msg != nil {
			w.send(msg) // live already
		}
		return nil
	}
	v, err := sub.joinLiveLocked(ctx) // within the room budgets (roombudget.go)
	if err != nil {
		return err
	}
	if !w.enqueue(ctlItem{sub: sub, to: v, noFloor: true, mark: mark, msg: msg}) {
		w.s.hub.Leave(v)
		return errConnEnding
	}
	sub.stopPlayingLocked()
	sub.joined, sub.codec = v, sub.ask.codec
	sub.moves.reset(time.Now())
	return nil
}

// stopPlayingLocked stops sub's player, if any. Call with sub.mu held.
func (sub *subscription) stopPlayingLocked() {
	if sub.playing != nil {
		sub.playing.cancel()
		sub.playing = nil
		sub.w.s.metrics.playbacks.Dec()
	}
}

// seek moves room (every room on a multi-room connection when room is "",
// all from one at and wall, so that they play in step) to its recording
// from at. A room without footage then is answered with `error`, and
// stays as it was.
func (w *session) seek(ctx context.Context, room string, at time.Time) {
	mark := time.Now()
	for _, sub := range w.subsNamed(room, "seek") {
		err := w.s.checkAt(ctx, sub.room, at) // nothing recorded then: the viewer is told, as a connection's ?at= is
		if err == nil {
			sub.mu.Lock()
			err = sub.seekLocked(ctx, at, mark, mark)
			sub.mu.Unlock()
		}
		if err != nil && !errors.Is(err, errConnEnding) {
			w.send(roomErrorMessage(sub.room, err.Error()))
		}
	}
}

// live moves room (every room when "") back to live.
func (w *session) live(ctx context.Context, room string) {
	mark := time.Now()
	for _, sub := range w.subsNamed(room, "live") {
		sub.mu.Lock()
		err := sub.goLiveLocked(ctx, reasonAsked, mark)
		sub.mu.Unlock()
		if err != nil && !errors.Is(err, errConnEnding) {
			w.send(roomErrorMessage(sub.room, fmt.Sprintf("failed to go live: %v", err)))
		}
	}
}

// subsNamed returns the subscription of room, or every subscription when
// room is "" (on a connection of one room, that one), answering `error`
// for a room the connection does not carry.
func (w *session) subsNamed(room, what string) []*subscription {
	if room == "" && !w.opts.multi {
		room = w.k.room
	}
	w.cmu.Lock()
	defer w.cmu.Unlock()
	if room != "" {
		sub := w.byRoom[room]
		if sub == nil {
			w.send(errorMessage(fmt.Sprintf("%s: room %q is not on this connection", what, room)))
			return nil
		}
		return []*subscription{sub}
	}
	out := make([]*subscription, 0, len(w.byRoom))
	for _, sub := range w.byRoom {
		out = append(out, sub)
	}
	return out
}

// playbackMessage is the gateway's `playback` message: room's frames now
// come from its recording from at (ms: Unix milliseconds), in codec.
// An H.264 player hands over the group from the keyframe before at: a page
// decodes, and does not show, the pictures captured before at.
func playbackMessage(room string, at time.Time, codec frames.Codec) []byte {
	return mustJSON(struct {
		Type  string       `json:"type"`
		Room  string       `json:"room"`
		At    string       `json:"at"`
		Ms    int64        `json:"ms"`
		Codec frames.Codec `json:"codec"`
	}{ctlPlayback, room, at.UTC().Format(time.RFC3339Nano), at.UnixMilli(), codec})
}

// liveMessage is the gateway's `live` message: room's frames are live
// again, for reason.
func liveMessage(room, reason string) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Room   string `json:"room"`
		Reason string `json:"reason"`
	}{ctlLive, room, reason})
}

// roomErrorMessage is an `error` message about one room.
func roomErrorMessage(room, reason string) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Room   string `json:"room"`
		Reason string `json:"reason"`
	}{ctlError, room, reason})
}
