package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// Roles of a WebSocket connection, from the role query parameter.
const (
	rolePublish = "publish" // sends frames, receives none
	roleView    = "view"    // receives frames, sends none
	roleSeed    = "seed"    // no role given: the seed's consumer, which does both
)

// Wire formats for viewers, from the format query parameter.
const (
	formatJSON   = "json"   // the seed's {"message": data URL}, the default
	formatBinary = "binary" // header + JPEG, see docs/protocol.md
)

// Close codes the gateway sends beyond the standard ones.
const (
	// StatusViewerTooSlow is logged when a viewer's write stalls past the
	// write timeout; the connection is dropped at once, since a stalled peer
	// cannot read a close frame either.
	StatusViewerTooSlow websocket.StatusCode = 4008
)

// handleWebSocket serves GET /ws/video/{room}/: validation happens before the
// upgrade, so a bad request gets a plain HTTP error.
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !rooms.ValidName(room) {
		s.metrics.rejected.WithLabelValues("bad_room").Inc()
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	role := q.Get("role")
	switch role {
	case "":
		role = roleSeed
	case rolePublish, roleView:
	default:
		s.metrics.rejected.WithLabelValues("bad_request").Inc()
		http.Error(w, fmt.Sprintf("role must be %q or %q (or absent)", rolePublish, roleView), http.StatusBadRequest)
		return
	}
	format := q.Get("format")
	switch format {
	case "":
		format = formatJSON
	case formatJSON, formatBinary:
	default:
		s.metrics.rejected.WithLabelValues("bad_request").Inc()
		http.Error(w, fmt.Sprintf("format must be %q or %q", formatJSON, formatBinary), http.StatusBadRequest)
		return
	}
	if !s.beginConn() {
		http.Error(w, "gateway shutting down", http.StatusServiceUnavailable)
		return
	}
	handedOver := false
	defer func() {
		if !handedOver {
			s.conns.Done()
		}
	}()
	// Access control and connection limits answer 401/403/429 before the
	// upgrade (auth.go, limits.go, origin.go).
	claims, ok := s.authorize(w, r, room, rolePermission(role))
	if !ok {
		return
	}
	mayPublish := role == rolePublish
	if role == roleSeed {
		var pubClaims *auth.Claims
		if pubClaims, mayPublish = s.seedPublishClaims(r, room); pubClaims != nil {
			claims = pubClaims
		}
	}
	if !s.checkOrigin(w, r) {
		return
	}
	release, ok := s.admitConnection(w, r)
	if !ok {
		return
	}
	var rw http.ResponseWriter = w
	fh := newFrameHijacker(w, role)
	if fh != nil {
		rw = fh
	}
	c, err := websocket.Accept(rw, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true,                          // checkOrigin did it
		CompressionMode:    websocket.CompressionDisabled, // JPEG does not compress
	})
	if err != nil {
		release()
		s.metrics.rejected.WithLabelValues("handshake").Inc()
		s.log.Debug("websocket handshake failed", "room", room, "err", err)
		return
	}
	// The connection outlives this handler: returning lets net/http free
	// the request, the response and its goroutine's stack, which would
	// otherwise be pinned for the life of every idle viewer.
	handedOver = true // serveConn's end calls conns.Done
	k := &wsConn{c: c, room: room, role: role, format: format, mayPublish: mayPublish,
		frames:   fh.frameConn(),
		log:      s.log.With("room", room, "role", role, "remote", r.RemoteAddr),
		cleanups: make([]func(), 0, 10)}
	k.onEnd(s.conns.Done)
	k.onEnd(release)
	s.serveConn(k, claims)
}

// wsConn is one upgraded connection and what must happen when it ends.
// end runs once, from whichever goroutine sees the end first (the read loop,
// or the CloseRead watcher of a view-only connection).
type wsConn struct {
	c                  *websocket.Conn
	room, role, format string
	mayPublish         bool       // the seed's connection may send frames only with a publish token where one is required
	frames             *frameConn // nil for publishers; carries pre-framed messages to viewers
	log                *slog.Logger

	cleanups []func() // run in reverse order by end; appended before any goroutine starts
	once     sync.Once
	mu       sync.Mutex
	reason   error // why the connection ended, if something on our side ended it
}

func (k *wsConn) onEnd(f func()) { k.cleanups = append(k.cleanups, f) }

// setReason records why the gateway is ending the connection, if no reason
// was recorded before.
func (k *wsConn) setReason(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.reason == nil {
		k.reason = err
	}
}

// serveConn starts one connection in its role and returns. Nothing waits on
// a view-only connection but coder/websocket's reader (CloseRead): frames are
// written by the hub's fan-out shards, with a writer goroutine only while a
// write blocks (viewerWriter), pings by a timer, and the end is a callback on
// the reader's context.
func (s *Server) serveConn(k *wsConn, claims *auth.Claims) {
	c := k.c
	s.active.Store(c, struct{}{})
	k.onEnd(func() { s.active.Delete(c) })
	gauge := s.metrics.connections.WithLabelValues(k.role)
	gauge.Inc()
	k.onEnd(gauge.Dec)
	k.log.Debug("connected", "format", k.format)
	k.onEnd(s.closeOnExpiry(c, claims, k.log))

	// Shutdown closes the connection with 1001 from here, once per
	// connection. Reads do not use s.ctx: cancelling a read's context makes
	// coder/websocket drop the connection without a close frame.
	stop := context.AfterFunc(s.ctx, func() { _ = c.Close(websocket.StatusGoingAway, "gateway shutting down") })
	k.onEnd(func() { stop() })
	ctx, cancel := context.WithCancel(context.Background())
	k.onEnd(cancel)
	k.onEnd(s.keepalive(ctx, c))

	if k.role != rolePublish {
		w, err := s.startViewer(ctx, k)
		if err != nil {
			s.end(k, err)
			return
		}
		k.onEnd(w.stop)
	}
	switch k.role {
	case roleView:
		// Viewers send nothing: a data message closes them with 1008
		// (CloseRead without its 15 s linger, limits.go).
		c.SetReadLimit(viewerReadLimit)
		readCtx := s.viewerCloseRead(ctx, c)
		context.AfterFunc(readCtx, func() { s.end(k, context.Cause(readCtx)) })
	default:
		// Publishers, and the seed's two-way connections: a read loop.
		go func() { s.end(k, s.servePublisher(ctx, k)) }()
	}
}

// end runs the connection's cleanups once and closes it according to why it
// ended.
func (s *Server) end(k *wsConn, readErr error) {
	k.once.Do(func() {
		k.mu.Lock()
		reason := k.reason
		k.mu.Unlock()
		if reason == nil {
			reason = readErr
		}
		for i := len(k.cleanups) - 1; i >= 1; i-- { // cleanups[0] is conns.Done: last
			k.cleanups[i]()
		}
		s.finish(k.c, reason, k.log)
		k.cleanups[0]()
	})
}

// finish closes c according to why its handler returned.
func (s *Server) finish(c *websocket.Conn, reason error, log *slog.Logger) {
	switch {
	case s.ctx.Err() != nil:
		// Waits for the close handshake the shutdown hook started.
		_ = c.Close(websocket.StatusGoingAway, "gateway shutting down")
		log.Debug("closed for shutdown")
	case reason == nil, isNormalClose(reason):
		_ = c.CloseNow()
		log.Debug("disconnected")
	default:
		_ = c.CloseNow()
		log.Info("connection closed", "reason", reason)
	}
}

func isNormalClose(err error) bool {
	switch closeStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, io.EOF)
}

// servePublisher reads frames from c and hands them to a publisher until
// the connection ends. Each message is one frame: a text data URL (the
// seed's sender) or a binary message, bare JPEG or header + JPEG. A message
// that is not a valid frame closes the connection with 1007 (1009 if too
// large) and a reason.
func (s *Server) servePublisher(ctx context.Context, k *wsConn) error {
	c, room, log := k.c, k.room, k.log
	// The room's publisher is registered at the first valid frame, not at
	// connect: a seed-mode connection that only watches is no publisher,
	// and its leaving must not tell viewers the room went offline.
	var pub *rooms.Publisher
	defer func() {
		if pub != nil {
			pub.Close()
		}
	}()
	var seq uint64 // for frames whose wire format carries none
	c.SetReadLimit(s.cfg.maxMessageBytes())
	limit := newPublishLimiter(s.cfg.PublishRate, s.cfg.PublishBurst)
	// Reads use a background context: with a cancellable one coder/websocket
	// arms a context.AfterFunc for every chunk it reads (about 30 allocations
	// per 50 KB frame). Cancelling ctx closes the connection instead, which is
	// what a cancelled read does anyway.
	stopRead := context.AfterFunc(ctx, func() { _ = c.CloseNow() })
	defer stopRead()
	var buf bytes.Buffer
	for {
		typ, r, err := c.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				s.metrics.rejected.WithLabelValues("too_large").Inc()
			}
			return err
		}
		if ok, err := s.admitFrame(c, limit); !ok {
			if err != nil {
				return err
			}
			continue // over the rate: dropped unparsed, and counted
		}
		// A parsed binary frame aliases its message, and rooms and the cache
		// keep frames: one exact-size copy per binary frame. A data URL is
		// decoded into a new buffer anyway.
		data := buf.Bytes()
		if typ == websocket.MessageBinary {
			data = bytes.Clone(data)
		}
		var f *frames.Frame
		now := time.Now()
		seq++
		if typ == websocket.MessageText {
			f, err = frames.ParseDataURL(data, seq, now, s.cfg.MaxFrameBytes)
		} else {
			f, err = frames.ParseBinary(data, seq, now, s.cfg.MaxFrameBytes)
			if err == nil && f.IsOffline() {
				err = fmt.Errorf("%w: publishers send frames, not offline events", frames.ErrBadHeader)
			}
		}
		if err != nil {
			code, reason := websocket.StatusInvalidFramePayloadData, "bad_frame"
			if errors.Is(err, frames.ErrTooLarge) {
				code, reason = websocket.StatusMessageTooBig, "too_large"
			}
			s.metrics.rejected.WithLabelValues(reason).Inc()
			_ = c.Close(code, closeReason(err))
			return fmt.Errorf("refused frame: %w", err)
		}
		if pub == nil {
			if !k.mayPublish {
				s.metrics.rejected.WithLabelValues("forbidden").Inc()
				_ = c.Close(websocket.StatusPolicyViolation, "publishing to this room needs a publish token")
				return errors.New("refused frame: publishing needs a publish token")
			}
			if pub, err = s.hub.NewPublisher(room); err != nil {
				s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
				_ = c.Close(websocket.StatusTryAgainLater, "too many rooms on this gateway")
				return err
			}
			log.Debug("publishing")
		}
		s.metrics.framesIn.Inc()
		pub.Send(f)
	}
}

// closeReason fits err into a close frame's 123-byte reason.
func closeReason(err error) string {
	msg := err.Error()
	if len(msg) > 123 {
		msg = msg[:120] + "..."
	}
	return msg
}

// viewerWriter writes a viewer's frames to its connection. It is the
// connection's only frame writer: it takes the newest frame from the
// viewer's latest-wins slot, so a slow viewer skips frames instead of
// queueing them.
//
// The hub calls notify (never blocking) after it fills the slot. When no
// write is in progress, notify writes the frame at once, in the hub's
// goroutine, with one non-blocking system call: the common case, a viewer
// whose socket has room, costs no goroutine and no wake-up. Only when the
// socket takes part of the frame (or none, or coder/websocket is writing a
// ping) does a writer goroutine start; it finishes that frame with blocking
// writes, drains the slot, and exits once the slot is empty. A blocking
// write that stalls past the write timeout cuts the viewer off.
type viewerWriter struct {
	s    *Server
	k    *wsConn
	v    *rooms.Viewer
	json bool
	out  prometheus.Counter

	running atomic.Bool // a write is in progress: notify only fills the slot
	dead    atomic.Bool // the connection is ending: write nothing more
	stuck   *time.Timer // cuts the connection off when a write stalls
}

var errViewerTooSlow = errors.New("viewer too slow")

// startViewer joins the room and arms the writer.
func (s *Server) startViewer(ctx context.Context, k *wsConn) (*viewerWriter, error) {
	w := &viewerWriter{
		s: s, k: k, json: k.format == formatJSON,
		out: s.metrics.framesOut.WithLabelValues(k.format),
	}
	w.stuck = time.AfterFunc(time.Hour, func() { _ = k.c.CloseNow() }) // unblocks the stalled Write
	w.stuck.Stop()
	v, err := s.hub.JoinNotify(ctx, k.room, w.notify)
	if err != nil {
		s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
		_ = k.c.Close(websocket.StatusTryAgainLater, "too many rooms on this gateway")
		return nil, err
	}
	w.v = v
	w.notify(v) // the room's newest frame may already wait in the slot
	return w, nil
}

// notify is the hub's callback after it puts a frame in the slot. If no
// write is in progress it takes ownership of the connection's frame writes
// and tries to write without blocking; otherwise the running writer will
// find the frame in the slot.
func (w *viewerWriter) notify(v *rooms.Viewer) {
	for !w.dead.Load() && w.running.CompareAndSwap(false, true) {
		f := v.TryNext()
		if f == nil {
			w.running.Store(false)
		} else if msg := w.message(f); msg == nil {
			w.running.Store(false)
		} else {
			rest, err := w.k.frames.TryWriteFrame(msg)
			switch {
			case errors.Is(err, errWouldBlock):
				go w.run(v, msg, false)
				return
			case err != nil:
				go w.fail(v, err) // running stays set: no writer starts again
				return
			case rest != nil:
				go w.run(v, rest, true)
				return
			}
			w.out.Inc()
			w.running.Store(false)
		}
		// Ownership is released; a frame offered meanwhile found running
		// set and was left in the slot: check for it.
		if !v.Pending() {
			return
		}
	}
}

// run owns the connection's frame writes: it writes msg (the rest of a
// frame whose start TryWriteFrame wrote, if started), then every frame that
// reaches the slot meanwhile, and exits when the slot is empty; it rechecks
// the slot after giving up ownership, so no frame is stranded.
func (w *viewerWriter) run(v *rooms.Viewer, msg []byte, started bool) {
	write := w.k.frames.WriteFrame
	if started {
		write = w.k.frames.FinishFrame
	}
	for {
		if msg != nil {
			if err := w.write(write, msg); err != nil {
				w.fail(v, err) // running stays set: no writer starts again
				return
			}
			write = w.k.frames.WriteFrame
		}
		msg = nil
		if f := v.TryNext(); f != nil {
			msg = w.message(f)
			continue
		}
		w.running.Store(false)
		if w.dead.Load() || !v.Pending() || !w.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// message is f's WebSocket form for this viewer's format: built once per
// frame and format and shared by every viewer, so each viewer costs one
// write of header and payload together and no copy. It is nil for offline
// events to JSON viewers: the seed's page has no use for them.
func (w *viewerWriter) message(f *frames.Frame) []byte {
	if w.json {
		return f.WebSocketJSON()
	}
	return f.WebSocketBinary()
}

// write writes msg with a blocking write, cutting the viewer off if it
// stalls past the write timeout.
func (w *viewerWriter) write(write func([]byte) error, msg []byte) error {
	w.stuck.Reset(w.s.cfg.WriteTimeout)
	err := write(msg)
	if !w.stuck.Stop() {
		return errViewerTooSlow
	}
	if err != nil {
		return err
	}
	w.out.Inc()
	return nil
}

func (w *viewerWriter) fail(v *rooms.Viewer, err error) {
	w.dead.Store(true)
	if errors.Is(err, errViewerTooSlow) {
		w.s.metrics.cutOff.WithLabelValues("slow").Inc()
		err = fmt.Errorf("%w: write stalled for %v (close code %d)", errViewerTooSlow, w.s.cfg.WriteTimeout, StatusViewerTooSlow)
		w.k.log.Info("viewer cut off", "reason", err, "skipped", v.Skipped())
	}
	w.k.setReason(err)
	_ = w.k.c.CloseNow() // ends the reader, which ends the connection
}

// stop leaves the room; a running writer finds the connection closed.
func (w *viewerWriter) stop() {
	w.dead.Store(true)
	w.s.hub.Leave(w.v)
	w.stuck.Stop()
}

// keepalive pings c every ping interval from a timer (no goroutine waits
// for it) until the returned stop is called or a ping fails.
func (s *Server) keepalive(ctx context.Context, c *websocket.Conn) (stop func()) {
	var t *time.Timer
	var mu sync.Mutex
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(s.cfg.PingInterval, func() {
		if s.ping(ctx, c) {
			mu.Lock()
			if ctx.Err() == nil {
				t.Reset(s.cfg.PingInterval)
			}
			mu.Unlock()
		}
	})
	return func() {
		mu.Lock()
		t.Stop()
		mu.Unlock()
	}
}

// ping sends one ping and closes c if no pong comes within the write
// timeout: the peer is gone or stuck.
func (s *Server) ping(ctx context.Context, c *websocket.Conn) bool {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		if ctx.Err() != nil && s.ctx.Err() == nil {
			s.metrics.cutOff.WithLabelValues("ping_timeout").Inc()
		}
		_ = c.CloseNow()
		return false
	}
	return true
}
