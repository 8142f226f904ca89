package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/socket"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// A session is the viewer side of one connection, whatever its transport:
// a WebSocket of one room (the seed's, version 1, JSON, v=2), a multi-room
// WebSocket, or an MJPEG stream. It is the one implementation of joining a
// room, choosing and switching its layer (with the switch floor of
// rooms.Viewer.SetFloor), adaptation (adapt.go), the per-room admission
// (the token's grant, the connection's and the replica's room limits) and
// the writer that hands frames and control messages to the transport
// (transport.go). Token expiry, shutdown and the end of the connection are
// its conn's (conn.go).
//
// The writer. Each subscription's viewer (rooms.Viewer) queues the frames
// of its room; the writer takes them oldest first, round-robin over the
// subscriptions, and gives each to the transport, which writes it through
// the connection's socket.Writer. At most one goroutine writes at a time
// (running), so each queue's order is the socket's order, and control
// items (ctl) go out in order between frames: the writer makes each
// item's change (start or stop draining a subscription, switch it to
// another viewer) and writes its message before the next frame.
//
// The hub calls pump (never blocking) after it queues a frame, on the
// viewer's fan-out shard; the socket calls it after a flush that blocked
// has finished (conn.Drained); the control side calls it after it queued a
// control item. pump writes while the socket takes frames without
// blocking, which is the common case: a viewer whose socket has room costs
// no goroutine and no wake-up. When the socket is full (socket.Writer.Busy),
// frames wait in the queues, where latest-frame-wins bounds them, until the
// flusher drains the socket and calls pump again. A flush that stalls past
// the write timeout cuts the viewer off.
//
// A connection of one room without a layer choice (the seed's clients,
// version-1 and JSON viewers) has one subscription, no control messages
// and no timer: per frame, the writer does what it did before layers
// existed, plus two atomic loads.
type session struct {
	s      *Server
	ctx    context.Context // the connection's: cancelled when it ends
	k      *conn
	t      transport
	opts   viewOpts
	out    prometheus.Counter
	notify func(*rooms.Viewer) // w.pump for JoinNotify, bound once

	subs atomic.Pointer[[]*subscription] // the subscriptions the writer drains; replaced by the writer, under ctlMu
	next int                             // writer: round-robin position

	ready   atomic.Bool // the transport may write (an MJPEG stream's head is out)
	running atomic.Bool // a goroutine is in pump's writing loop
	dead    atomic.Bool // the connection is ending: write nothing more

	nctl   atomic.Int32 // len(ctl), read without ctlMu
	ctlMu  sync.Mutex   // guards ctl, closed and every change of subs
	ctl    []ctlItem
	closed bool // stop ran: nothing more is queued or joined

	cmu    sync.Mutex               // guards byRoom (the control side's view)
	byRoom map[string]*subscription // the rooms subscribed or being subscribed
}

// subscription is one room a session carries, on one layer at a time.
// The writer reads v, the viewer it drains, and owns last; the control
// side (the reader of control messages, the 1 s check, switches) owns the
// rest under mu: the layer joined last, the layer list, the ask, the
// adaptation state and the player. Lock order: sub.mu, then session.cmu or
// session.ctlMu (never one holding the other), then the hub's locks; the
// writer never takes sub.mu.
type subscription struct {
	w    *session
	room string

	v      atomic.Pointer[rooms.Viewer] // the viewer the writer drains
	last   uint64                       // writer: sequence number of the last picture written
	marked time.Time                    // writer: when the switch to v was asked, until its first frame is written

	mu      sync.Mutex
	ask     layerAsk
	adapt   bool               // adaptation may move it
	joined  *rooms.Viewer      // the viewer of the layer chosen last (v once the writer switches)
	layer   int                // joined's layer
	codec   frames.Codec       // joined's codec
	layers  []frames.LayerInfo // the room's layers as last told to the viewer
	moves   adaptation         // adapt.go
	timer   *time.Timer        // the 1 s check (adapt.go); nil if the subscription has none
	playing *playing           // the player of the recording it plays; nil live (playback.go)
	stopped bool               // left: nothing more is joined or armed
	release func()             // gives the room's place in the room budgets back (roombudget.go); nil until it first joins live
}

// ctlItem is one entry of the writer's control queue: a message to write
// (text JSON; may be nil) and a change the writer makes when it reaches
// it, before writing the message.
type ctlItem struct {
	msg     []byte
	sub     *subscription
	add     bool          // start draining sub
	remove  bool          // stop draining sub and leave its viewer
	to      *rooms.Viewer // switch sub to this viewer and leave the old one
	noFloor bool          // the switch goes back in time on purpose (a seek): no floor
	mark    time.Time     // when the switch was asked: its first frame's latency is measured
}

// maxQueuedControl bounds the control messages waiting for a viewer's
// socket: a viewer that keeps asking while never reading is too slow.
const maxQueuedControl = 64

// newSession makes k's viewer session over t. It writes nothing until
// markReady.
func (s *Server) newSession(ctx context.Context, k *conn, t transport, opts viewOpts) *session {
	w := &session{s: s, ctx: ctx, k: k, t: t, opts: opts, byRoom: make(map[string]*subscription, 1)}
	w.notify = func(*rooms.Viewer) { w.pump() }
	w.out = s.metrics.framesOut.WithLabelValues(t.label())
	empty := []*subscription{}
	w.subs.Store(&empty)
	k.session.Store(w) // the socket's events reach w from now on
	return w
}

// adapts reports whether subscriptions of the session may be moved by
// adaptation (and so need a socket whose slowness shows: adaptSendBuffer).
func (w *session) adapts() bool {
	return w.s.cfg.Adapt && w.opts.adapt && (w.opts.ask.set || w.opts.multi) || w.opts.ask.codec != frames.CodecJPEG
}

// markReady lets the writer write, and writes what waits.
func (w *session) markReady() {
	if w.adapts() {
		// A small send buffer lets a slow link show as skips within
		// seconds (the kernel's autotuned one hides megabytes): what
		// adaptation watches, and what H.264's resume-at-a-keyframe
		// needs to bound a viewer's latency.
		w.k.sock.LimitSendBuffer(adaptSendBuffer)
	}
	w.ready.Store(true)
	w.pump()
}

// Errors of joining a room.
var (
	// errConnEnding says a change was asked of a connection that is ending.
	errConnEnding = errors.New("gateway: connection ending")
	// errNotGranted says the connection's token does not grant the room.
	errNotGranted = errors.New("the token does not grant this room")
	// errRoomsPerConn says the connection carries its most rooms.
	errRoomsPerConn = errors.New("too many rooms on this connection")
)

// subscribe adds room to the session on the layer ask picks, or, if it is
// already there, changes its choice as select does. The room must be one
// the connection's token grants (multi-room connections: admission checked
// the others' single room) and within GATEWAY_MAX_ROOMS_PER_CONN and the
// replica's room budget (rooms.ErrTooManyRooms). It may block (Join).
func (w *session) subscribe(ctx context.Context, room string, ask layerAsk) error {
	if claims := w.k.claims; claims != nil {
		if err := claims.Allows(room, auth.View); err != nil {
			return errNotGranted
		}
	}
	w.cmu.Lock()
	_, have := w.byRoom[room]
	n := len(w.byRoom)
	w.cmu.Unlock()
	if have {
		w.selectLayer(ctx, room, ask)
		return nil
	}
	if n >= w.s.cfg.maxRoomsPerConn() {
		return fmt.Errorf("%w (limit %d)", errRoomsPerConn, w.s.cfg.maxRoomsPerConn())
	}
	return w.join(ctx, room, ask)
}

// join subscribes the session to room on the layer ask picks: it joins
// the layer's stream (or, with the connection's ?at=, starts playing the
// room's recording from then instead), queues the `layers` and `layer`
// messages (v=2) and the start of draining, and arms the 1 s check where
// the subscription has a layer choice or is told about layers. It may
// block (the layer list and the first frame may come from Redis; a
// recording from the store).
func (w *session) join(ctx context.Context, room string, ask layerAsk) error {
	sub := &subscription{w: w, room: room, ask: ask, adapt: w.opts.adapt && w.s.cfg.Adapt}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if ask.set || w.opts.v2 {
		sub.layers, _ = w.s.hub.Layers(ctx, room, ask.codec) // unread, the room's main layer: a check moves it later
		sub.layer = ask.resolve(sub.layers)
	}
	sub.codec = ask.codec
	var v *rooms.Viewer
	if w.opts.at.IsZero() {
		var err error
		if v, sub.release, err = w.s.joinRoom(ctx, w.k, ask.stream(room, sub.layer), w.notify); err != nil {
			return err // a room budget (roombudget.go), or the connection went
		}
	} else {
		v = rooms.NewViewer(ask.codec, nil) // drained until the seek below switches to its player's
	}
	sub.joined = v
	sub.v.Store(v)
	sub.moves.reset(time.Now())
	w.cmu.Lock()
	w.byRoom[room] = sub
	w.cmu.Unlock()
	items := []ctlItem{{sub: sub, add: true}}
	if w.opts.v2 {
		items = append(items,
			ctlItem{msg: layersMessage(room, sub.layers)},
			ctlItem{msg: layerMessage(room, sub.layers, sub.layer, sub.codec, reasonAsked)})
	}
	if !w.enqueue(items...) {
		w.s.hub.Leave(v)
		if sub.release != nil {
			sub.release()
		}
		return errConnEnding
	}
	if !w.opts.at.IsZero() {
		now := time.Now()
		if err := sub.seekLocked(ctx, w.opts.at, now, now); err != nil {
			if w.opts.v2 {
				w.send(roomErrorMessage(room, err.Error()))
			}
			w.k.log.Debug("playback from ?at= refused; live instead", "room", room, "err", err)
			if err := sub.goLiveLocked(ctx, reasonFailed, time.Time{}); err != nil {
				return err
			}
		}
	}
	if ask.set || w.opts.v2 {
		sub.armLocked()
	}
	return nil
}

// firstLayer returns the layer the session's only room was joined on.
func (w *session) firstLayer() int {
	var first *subscription
	w.cmu.Lock()
	for _, sub := range w.byRoom {
		first = sub
	}
	w.cmu.Unlock()
	if first == nil {
		return 0
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	return first.layer
}

// switchLocked moves sub to layer: it joins the layer's stream first,
// then queues the switch (and, on v=2, the `layer` message) for the
// writer, which leaves the old stream when it reaches it. Frames of both
// may reach the writer meanwhile; none goes backwards (the new viewer's
// floor). Call with sub.mu held, from a goroutine that may block (Join may
// wait up to the cache timeout).
func (sub *subscription) switchLocked(ctx context.Context, layer int, reason string) error {
	if sub.stopped || layer == sub.layer && sub.ask.codec == sub.codec {
		return nil
	}
	w := sub.w
	if sub.playing != nil {
		// Playing a recording: the choice waits for the return to live.
		sub.layer = layer
		if w.opts.v2 {
			w.send(layerMessage(sub.room, sub.layers, layer, sub.ask.codec, reason))
		}
		return nil
	}
	v, err := w.s.hub.JoinNotify(ctx, sub.ask.stream(sub.room, layer), w.notify)
	if err != nil {
		return err
	}
	var msg []byte
	if w.opts.v2 {
		msg = layerMessage(sub.room, sub.layers, layer, sub.ask.codec, reason)
	}
	if !w.enqueue(ctlItem{sub: sub, to: v, msg: msg}) {
		w.s.hub.Leave(v)
		return errConnEnding
	}
	sub.joined, sub.layer, sub.codec = v, layer, sub.ask.codec
	sub.moves.reset(time.Now())
	w.k.log.Debug("layer switch", "room", sub.room, "layer", layer, "reason", reason)
	return nil
}

// selectLayer changes room's layer choice to ask; room may be omitted on a
// connection of one room. The viewer is told its layer (`layer`, reason
// asked) whether it changed or not.
func (w *session) selectLayer(ctx context.Context, room string, ask layerAsk) {
	if room == "" && !w.opts.multi {
		room = w.k.room
	}
	w.cmu.Lock()
	sub := w.byRoom[room]
	w.cmu.Unlock()
	if sub == nil {
		if room == "" {
			w.send(errorMessage("select needs a room on a multi-room connection"))
		} else {
			w.send(errorMessage(fmt.Sprintf("room %q is not on this connection", room)))
		}
		return
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.ask = ask
	sub.adapt = ask.set && w.s.cfg.Adapt && w.opts.adapt
	sub.moves = adaptation{}
	sub.moves.reset(time.Now())
	if layers, err := w.s.hub.Layers(ctx, room, ask.codec); err == nil || sub.layers == nil {
		sub.layers = layers
	}
	target := ask.resolve(sub.layers)
	if target == sub.layer && ask.codec == sub.codec {
		w.send(layerMessage(room, sub.layers, target, sub.codec, reasonAsked))
		return
	}
	if err := sub.switchLocked(ctx, target, reasonAsked); err != nil {
		w.send(errorMessage(fmt.Sprintf("failed to change layer: %v", err)))
	}
}

// unsubscribe removes room from a multi-room connection: its frames stop
// once the writer reaches the removal (after what is queued before it).
func (w *session) unsubscribe(room string) {
	w.cmu.Lock()
	sub := w.byRoom[room]
	delete(w.byRoom, room)
	w.cmu.Unlock()
	if sub == nil {
		w.send(errorMessage(fmt.Sprintf("room %q is not on this connection", room)))
		return
	}
	sub.stop()
	w.enqueue(ctlItem{sub: sub, remove: true})
}

// enqueue queues control items for the writer and pumps. It returns false
// if the connection is ending (nothing was queued).
func (w *session) enqueue(items ...ctlItem) bool {
	w.ctlMu.Lock()
	if w.closed {
		w.ctlMu.Unlock()
		return false
	}
	if len(w.ctl)+len(items) > maxQueuedControl {
		w.ctlMu.Unlock()
		go w.s.stop(w.k, ended(endTooSlow, fmt.Errorf("more than %d control messages queued unread", maxQueuedControl)))
		return false
	}
	w.ctl = append(w.ctl, items...)
	w.nctl.Store(int32(len(w.ctl)))
	w.ctlMu.Unlock()
	w.pump()
	return true
}

// send queues one control message (text JSON) for the writer.
func (w *session) send(msg []byte) { w.enqueue(ctlItem{msg: msg}) }

// pump writes queued control messages and frames while the socket takes
// them without blocking. It never blocks: if another goroutine is
// writing, or the socket is full, it leaves them queued for that goroutine
// or for the flusher's Drained.
func (w *session) pump() {
	if !w.ready.Load() {
		return // markReady pumps
	}
	sock := w.k.sock
	for !w.dead.Load() && w.running.CompareAndSwap(false, true) {
		if !w.drain(sock) {
			return // failed: running stays set, nothing more is written
		}
		w.running.Store(false)
		// A frame or control item queued, or a flush finished, after the
		// loop looked but before running was released found running set:
		// look again.
		if sock.Busy() || !w.pending() {
			return
		}
	}
}

// drain is pump's writing loop; it reports false after a failed write.
func (w *session) drain(sock *socket.Writer) bool {
	for !w.dead.Load() && !sock.Busy() {
		if w.nctl.Load() > 0 {
			if !w.writeControl() {
				return false
			}
			continue
		}
		subs := *w.subs.Load()
		var sub *subscription
		var f *frames.Frame
		for i := range len(subs) {
			j := (w.next + i) % len(subs)
			if f = subs[j].v.Load().TryNext(); f != nil {
				sub, w.next = subs[j], j+1
				break
			}
		}
		if f == nil {
			return true
		}
		w.written(sub, f)
		wrote, err := w.t.writeFrame(sub, f)
		if err != nil {
			w.fail(err)
			return false
		}
		if wrote {
			w.out.Inc()
			if !sub.marked.IsZero() {
				w.s.metrics.seekLatency.Observe(time.Since(sub.marked).Seconds())
				sub.marked = time.Time{}
			}
		}
	}
	return true
}

// written records f as sub's newest: the floor of its next switch. An
// offline event resets it (the publisher may count again from 1), and on a
// layer other than the main one makes the subscription choose its layer
// again. Writer only.
func (w *session) written(sub *subscription, f *frames.Frame) {
	if !f.IsOffline() {
		sub.last = f.Seq
		return
	}
	sub.last = 0
	if f.Layer != 0 {
		go sub.recheck()
	}
}

// pending reports whether a control item or a frame waits.
func (w *session) pending() bool {
	if w.nctl.Load() > 0 {
		return true
	}
	for _, sub := range *w.subs.Load() {
		if sub.v.Load().Pending() {
			return true
		}
	}
	return false
}

// writeControl takes the first control item, makes its change and writes
// its message. It reports false after a failed write.
func (w *session) writeControl() bool {
	w.ctlMu.Lock()
	if len(w.ctl) == 0 || w.closed {
		w.ctlMu.Unlock()
		return true
	}
	it := w.ctl[0]
	w.ctl[0] = ctlItem{}
	w.ctl = w.ctl[1:]
	if len(w.ctl) == 0 {
		w.ctl = nil
	}
	w.nctl.Store(int32(len(w.ctl)))
	hub := w.s.hub
	switch {
	case it.add:
		subs := append(append([]*subscription(nil), *w.subs.Load()...), it.sub)
		w.subs.Store(&subs)
	case it.remove:
		old := *w.subs.Load()
		subs := make([]*subscription, 0, len(old))
		for _, s := range old {
			if s != it.sub {
				subs = append(subs, s)
			}
		}
		w.subs.Store(&subs)
		go hub.Leave(it.sub.v.Load()) // the writer may run on a fan-out shard: no hub locks here
	case it.to != nil:
		if !it.noFloor {
			it.to.SetFloor(it.sub.last)
		}
		it.sub.marked = it.mark
		if old := it.sub.v.Swap(it.to); old != it.to {
			go hub.Leave(old)
		}
	}
	w.ctlMu.Unlock()
	if it.msg == nil {
		return true
	}
	if err := w.t.writeControl(it.msg); err != nil {
		w.fail(err)
		return false
	}
	return true
}

// fail ends the connection after a failed write: too slow if the peer
// stopped reading, gone if it went away; nothing more if the connection
// was already being closed on the gateway's side.
func (w *session) fail(err error) {
	w.dead.Store(true)
	e := writeEnd(err)
	if e == nil {
		return
	}
	if socket.Stalled(err) {
		var skipped uint64
		for _, sub := range *w.subs.Load() {
			skipped += sub.v.Load().Skipped()
		}
		e = ended(endTooSlow, fmt.Errorf("%w (skipped %d frames)", err, skipped))
	}
	go w.s.stop(w.k, e) // the shard or flusher calling fail must not wait
}

// stop leaves every room; a write in progress finds the connection closed.
func (w *session) stop() {
	w.dead.Store(true)
	w.cmu.Lock()
	subs := make([]*subscription, 0, len(w.byRoom))
	for _, sub := range w.byRoom {
		subs = append(subs, sub)
	}
	w.cmu.Unlock()
	for _, sub := range subs {
		sub.stop()
	}
	w.ctlMu.Lock()
	defer w.ctlMu.Unlock()
	w.closed = true
	for _, sub := range *w.subs.Load() {
		w.s.hub.Leave(sub.v.Load())
	}
	for _, it := range w.ctl {
		if it.to != nil {
			w.s.hub.Leave(it.to)
		}
		if it.add {
			w.s.hub.Leave(it.sub.v.Load())
		}
	}
	w.ctl = nil
	w.nctl.Store(0)
}

// stop disarms sub's timer and stops its player; nothing more is joined
// for it.
func (sub *subscription) stop() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.stopped = true
	if sub.timer != nil {
		sub.timer.Stop()
	}
	sub.stopPlayingLocked()
	if sub.release != nil {
		sub.release()
	}
}
