package gateway

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/framecast/framecast/internal/socket"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// formatV2 labels version-2 binary messages in framecast_frames_out_total.
const formatV2 = "v2"

// layerAsk is a viewer's layer choice for one room: a largest width, or a
// layer index, or neither (the main layer, never moved).
type layerAsk struct {
	width int // > 0: the smallest layer at least this wide
	layer int // with set and width == 0: this layer, or the last one
	set   bool
	codec frames.Codec // H.264 only on v=2
}

// stream is the stream of layer of room in ask's codec.
func (a layerAsk) stream(room string, layer int) frames.Stream {
	return frames.Stream{Room: room, Layer: layer, Codec: a.codec}
}

// resolve returns the index of the layer ask picks among layers (ordered
// by index, never empty).
func (a layerAsk) resolve(layers []frames.LayerInfo) int {
	switch {
	case !a.set || len(layers) == 0:
		return 0
	case a.width > 0:
		return rooms.PickLayer(layers, a.width)
	}
	last := layers[0].Index
	for _, l := range layers {
		if l.Index == a.layer {
			return a.layer
		}
		last = max(last, l.Index)
	}
	return last
}

// viewOpts is what a viewer asked for in its query.
type viewOpts struct {
	ask   layerAsk
	v2    bool     // frames as version-2 messages; control messages both ways
	adapt bool     // adaptation may move it (adapt=0 clears it)
	multi bool     // a multi-room connection (/ws/multi/)
	rooms []string // multi: the rooms of the rooms parameter
}

// control reports whether the connection reads control messages.
func (o viewOpts) control() bool { return o.v2 || o.multi }

// parseLayerQuery reads width and layer (at most one of them).
func parseLayerQuery(q url.Values) (layerAsk, error) {
	var a layerAsk
	ws, ls := q.Get("width"), q.Get("layer")
	if ws != "" && ls != "" {
		return a, fmt.Errorf("give width or layer, not both")
	}
	if ws != "" {
		n, err := strconv.Atoi(ws)
		if err != nil || n < 1 || n > 65535 {
			return a, fmt.Errorf("width must be a whole number of pixels from 1 to 65535, not %q", ws)
		}
		a.width, a.set = n, true
	}
	if ls != "" {
		n, err := strconv.Atoi(ls)
		if err != nil || n < 0 || n >= frames.MaxLayers {
			return a, fmt.Errorf("layer must be a layer index from 0 to %d, not %q", frames.MaxLayers-1, ls)
		}
		a.layer, a.set = n, true
	}
	return a, nil
}

// parseAdapt reads adapt (0 or 1; absent is 1).
func parseAdapt(q url.Values) (bool, error) {
	switch q.Get("adapt") {
	case "", "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, fmt.Errorf("adapt must be 0 or 1, not %q", q.Get("adapt"))
}

// parseViewQuery reads the layer parameters of /ws/video/{room}/ (see
// docs/protocol.md, "Choosing a layer").
func parseViewQuery(q url.Values, role, format string) (viewOpts, error) {
	var o viewOpts
	var err error
	if o.ask, err = parseLayerQuery(q); err != nil {
		return o, err
	}
	if o.adapt, err = parseAdapt(q); err != nil {
		return o, err
	}
	switch v := q.Get("v"); v {
	case "", "1":
	case "2":
		if role != roleView || q.Get("format") != formatBinary {
			return o, fmt.Errorf("v=2 needs role=view and format=binary")
		}
		o.v2 = true
	default:
		return o, fmt.Errorf("v must be 1 or 2, not %q", v)
	}
	if o.ask.codec, err = frames.ParseCodec(q.Get("codec")); err != nil {
		return o, err
	}
	if o.ask.codec != frames.CodecJPEG && !o.v2 {
		return o, fmt.Errorf("codec=h264 needs v=2 (role=view&format=binary&v=2): only version-2 clients can decode it")
	}
	if role == rolePublish && (o.ask.set || q.Has("adapt")) {
		return o, fmt.Errorf("width, layer and adapt are for viewers; publishers send layers as version-2 messages")
	}
	return o, nil
}

// subscription is one room a viewer connection carries, on one layer
// stream of it.
//
// Concurrency: v, and last and floor, belong to the connection's writer
// (viewerWriter.pump, one goroutine at a time: the one holding running):
// it drains v, and it alone replaces v, when it reaches the queued control
// item of a layer switch, so the `layer` message and the switch take
// effect at one point of the socket's order. mu guards the choice side,
// used by the goroutines that may block (the control reader, the
// adaptation timer): the layer joined last, the layer list, the ask and the
// adaptation state. Lock order: sub.mu, then viewerWriter.ctlMu, then the
// hub's locks; the writer never takes sub.mu.
type subscription struct {
	w    *viewerWriter
	room string

	v     atomic.Pointer[rooms.Viewer] // the viewer the writer drains
	last  uint64                       // writer: sequence number of the last image written
	floor uint64                       // writer: after a switch, images of the new layer up to this are dropped; 0 none

	mu      sync.Mutex
	ask     layerAsk
	adapt   bool               // adaptation may move it
	joined  *rooms.Viewer      // the viewer of the layer chosen last (v once the writer switches)
	layer   int                // joined's layer
	codec   frames.Codec       // joined's codec
	layers  []frames.LayerInfo // the room's layers as last told to the viewer
	moves   adaptation         // adapt.go
	timer   *time.Timer        // the 1 s check (adapt.go); nil if the subscription has none
	stopped bool               // left: nothing more is joined or armed
}

// maxSwitchOverlap bounds the frames dropped after a switch for not being
// newer than the last one written: an image this far below the last one
// is a publisher that started counting again, not an overlap.
const maxSwitchOverlap = 256

// viewerWriter hands a connection's frames, and its control messages, to
// the socket. Each subscription's viewer (rooms.Viewer) queues the frames
// of its room; the writer takes them oldest first, round-robin over the
// subscriptions, and gives each to coder/websocket, which writes it through
// the connection's sockWriter. At most one goroutine writes at a time
// (running), so each queue's order is the socket's order, and gateway
// control messages (ctl) go out in order between frames: the writer writes
// queued control messages before the next frame.
//
// The hub calls pump (never blocking) after it queues a frame, on the
// viewer's fan-out shard; the sockWriter calls it after a flush that
// blocked has finished, on its flusher; the control side calls it after it
// queued a control item. pump writes while the socket takes frames without
// blocking, which is the common case: a viewer whose socket has room costs
// no goroutine and no wake-up. When the socket is full (sockWriter.Busy),
// frames wait in the queues, where latest-frame-wins bounds them, until the
// flusher drains the socket and calls pump again. A flush that stalls past
// the write timeout cuts the viewer off.
//
// A connection of one room without a layer choice (the seed's clients,
// version-1 and JSON viewers) has one subscription, no control messages
// and no timer: per frame, the writer does what it did before layers
// existed, plus two atomic loads.
type viewerWriter struct {
	s      *Server
	ctx    context.Context // the connection's: cancelled when it ends
	k      *wsConn
	typ    websocket.MessageType
	v2     bool
	out    prometheus.Counter
	notify func(*rooms.Viewer) // w.pump for JoinNotify, bound once

	subs atomic.Pointer[[]*subscription] // the subscriptions the writer drains; replaced by the writer, under ctlMu
	next int                             // writer: round-robin position

	running atomic.Bool // a goroutine is in pump's writing loop
	dead    atomic.Bool // the connection is ending: write nothing more

	nctl   atomic.Int32 // len(ctl), read without ctlMu
	ctlMu  sync.Mutex   // guards ctl, closed and every change of subs
	ctl    []ctlItem
	closed bool // stop ran: nothing more is queued or joined

	cmu    sync.Mutex               // guards byRoom (the control side's view)
	byRoom map[string]*subscription // the rooms subscribed or being subscribed
}

// ctlItem is one entry of the writer's control queue: a message to write
// (text JSON; may be nil) and a change the writer makes when it reaches
// it, before writing the message.
type ctlItem struct {
	msg    []byte
	sub    *subscription
	add    bool          // start draining sub
	remove bool          // stop draining sub and leave its viewer
	to     *rooms.Viewer // switch sub to this viewer and leave the old one
}

// maxQueuedControl bounds the control messages waiting for a viewer's
// socket: a viewer that keeps asking while never reading is too slow.
const maxQueuedControl = 64

// startViewer joins the connection's room (on the layer it asked for) or,
// on a multi-room connection, the rooms of its query, and arms the writer.
func (s *Server) startViewer(ctx context.Context, k *wsConn) (*viewerWriter, error) {
	w := &viewerWriter{s: s, ctx: ctx, k: k, typ: websocket.MessageBinary, v2: k.view.v2 || k.view.multi,
		byRoom: make(map[string]*subscription, 1)}
	w.notify = func(*rooms.Viewer) { w.pump() }
	label := k.format
	switch {
	case w.v2:
		label = formatV2
	case k.format == formatJSON:
		w.typ = websocket.MessageText
	}
	w.out = s.metrics.framesOut.WithLabelValues(label)
	empty := []*subscription{}
	w.subs.Store(&empty)
	k.viewer.Store(w) // the socket's events reach w from now on
	if s.cfg.Adapt && k.view.adapt && (k.view.ask.set || k.view.multi) || k.view.ask.codec != frames.CodecJPEG {
		// A small send buffer lets a slow link show as skips within
		// seconds (the kernel's autotuned one hides megabytes): what
		// adaptation watches, and what H.264's resume-at-a-keyframe
		// needs to bound a viewer's latency.
		k.sock.LimitSendBuffer(adaptSendBuffer)
	}
	if k.view.multi {
		for _, room := range k.view.rooms {
			w.subscribe(ctx, room, k.view.ask)
		}
		return w, nil
	}
	if err := w.join(ctx, k.room, k.view.ask, k.view.adapt); err != nil {
		s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
		return nil, ended(endRoomLimit, err)
	}
	return w, nil
}

// join subscribes the connection to room on the layer ask picks: it
// joins the layer's stream, queues the `layers` and `layer` messages
// (v=2) and the start of draining, and arms the 1 s check where the
// subscription has a layer choice or is told about layers. It may block
// (the layer list and the first frame may come from Redis).
func (w *viewerWriter) join(ctx context.Context, room string, ask layerAsk, adapt bool) error {
	sub := &subscription{w: w, room: room, ask: ask, adapt: adapt && w.s.cfg.Adapt}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if ask.set || w.v2 {
		sub.layers = w.s.hub.Layers(ctx, room, ask.codec)
		sub.layer = ask.resolve(sub.layers)
	}
	sub.codec = ask.codec
	v, err := w.s.hub.JoinNotify(ctx, ask.stream(room, sub.layer), w.notify)
	if err != nil {
		return err
	}
	sub.joined = v
	sub.v.Store(v)
	sub.moves.reset(time.Now())
	w.cmu.Lock()
	w.byRoom[room] = sub
	w.cmu.Unlock()
	items := []ctlItem{{sub: sub, add: true}}
	if w.v2 {
		items = append(items,
			ctlItem{msg: layersMessage(room, sub.layers)},
			ctlItem{msg: layerMessage(room, sub.layers, sub.layer, sub.codec, reasonAsked)})
	}
	if !w.enqueue(items...) {
		w.s.hub.Leave(v)
		return errConnEnding
	}
	if ask.set || w.v2 {
		sub.armLocked()
	}
	return nil
}

// errConnEnding says a change was asked of a connection that is ending.
var errConnEnding = fmt.Errorf("gateway: connection ending")

// switchLocked moves sub to layer: it joins the layer's stream first,
// then queues the switch (and, on v=2, the `layer` message) for the
// writer, which leaves the old stream when it reaches it. Frames of both
// may reach the writer meanwhile; none goes backwards (message). Call
// with sub.mu held, from a goroutine that may block (Join may wait up to
// the cache timeout).
func (sub *subscription) switchLocked(ctx context.Context, layer int, reason string) error {
	if sub.stopped || layer == sub.layer && sub.ask.codec == sub.codec {
		return nil
	}
	w := sub.w
	v, err := w.s.hub.JoinNotify(ctx, sub.ask.stream(sub.room, layer), w.notify)
	if err != nil {
		return err
	}
	var msg []byte
	if w.v2 {
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

// enqueue queues control items for the writer and pumps. It returns false
// if the connection is ending (nothing was queued).
func (w *viewerWriter) enqueue(items ...ctlItem) bool {
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
func (w *viewerWriter) send(msg []byte) { w.enqueue(ctlItem{msg: msg}) }

// pump writes queued control messages and frames while the socket takes
// them without blocking. It never blocks: if another goroutine is
// writing, or the socket is full, it leaves them queued for that goroutine
// or for the flusher's onDrain.
func (w *viewerWriter) pump() {
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
func (w *viewerWriter) drain(sock *socket.Writer) bool {
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
		msg := w.message(sub, f)
		if msg == nil {
			continue
		}
		if err := w.write(w.typ, msg); err != nil {
			w.fail(err)
			return false
		}
		w.out.Inc()
	}
	return true
}

// pending reports whether a control item or a frame waits.
func (w *viewerWriter) pending() bool {
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
func (w *viewerWriter) writeControl() bool {
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
		old := it.sub.v.Swap(it.to)
		it.sub.floor = it.sub.last
		if old != it.to {
			go hub.Leave(old)
		}
	}
	w.ctlMu.Unlock()
	if it.msg == nil {
		return true
	}
	if err := w.write(websocket.MessageText, it.msg); err != nil {
		w.fail(err)
		return false
	}
	return true
}

// write hands one message to coder/websocket. The sockWriter queues what
// the socket does not take, so this does not block on the network.
func (w *viewerWriter) write(typ websocket.MessageType, msg []byte) error {
	w.k.sock.Cork(msg)
	err := w.k.c.Write(context.Background(), typ, msg)
	if uerr := w.k.sock.Uncork(); err == nil {
		err = uerr
	}
	return err
}

// message is f's payload for this viewer's format, or nil when f is not
// written: built once per frame and format and shared by every viewer.
// Offline events are not sent to JSON viewers (the seed's page has no use
// for them); an offline event of a layer other than the main one makes the
// subscription choose its layer again. After a layer switch, images of the
// new layer not newer than the last one written are dropped, so frames
// never go backwards. Writer only.
func (w *viewerWriter) message(sub *subscription, f *frames.Frame) []byte {
	if f.IsOffline() {
		sub.floor, sub.last = 0, 0 // the publisher may count again from 1
		if f.Layer != 0 {
			go sub.recheck()
		}
		if w.typ == websocket.MessageText {
			return nil
		}
	} else {
		if f.Kind.IsH264() {
			// An H.264 stream starts at its group's keyframe, which may be
			// older than the last picture written: the decoder restarts
			// there (the `layer` message came first).
			sub.floor = 0
		}
		if sub.floor != 0 {
			if f.Seq <= sub.floor && sub.floor-f.Seq < maxSwitchOverlap {
				return nil
			}
			sub.floor = 0
		}
		sub.last = f.Seq
	}
	switch {
	case w.v2:
		if f.Room != sub.room {
			return nil // a frame that does not name its room (never expected) would mislead a multi-room client
		}
		return f.BinaryV2()
	case w.typ == websocket.MessageText:
		return f.JSON()
	}
	return f.Binary()
}

// fail ends the connection after a failed write: too slow if the peer
// stopped reading, gone if it went away; nothing more if the connection
// was already being closed on the gateway's side.
func (w *viewerWriter) fail(err error) {
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
func (w *viewerWriter) stop() {
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

// stop disarms sub's timer; nothing more is joined for it.
func (sub *subscription) stop() {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.stopped = true
	if sub.timer != nil {
		sub.timer.Stop()
	}
}

// roomList splits a comma-separated list of room names.
func roomList(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}
