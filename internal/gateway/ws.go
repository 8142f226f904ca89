package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/socket"
	"github.com/framecast/framecast/pkg/frames"
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

// handleWebSocket serves GET /ws/video/{room}/: validation happens before the
// upgrade, so a bad request gets a plain HTTP error.
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !frames.ValidRoom(room) {
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
		s.badRequest(w, fmt.Sprintf("role must be %q or %q (or absent)", rolePublish, roleView))
		return
	}
	format := q.Get("format")
	switch format {
	case "":
		format = formatJSON
	case formatJSON, formatBinary:
	default:
		s.badRequest(w, fmt.Sprintf("format must be %q or %q", formatJSON, formatBinary))
		return
	}
	view, err := parseViewQuery(q, role, format)
	if err != nil {
		s.badRequest(w, err.Error())
		return
	}
	s.acceptWebSocket(w, r, room, role, format, view)
}

// badRequest answers 400 with reason, before any upgrade.
func (s *Server) badRequest(w http.ResponseWriter, reason string) {
	s.metrics.rejected.WithLabelValues("bad_request").Inc()
	http.Error(w, reason, http.StatusBadRequest)
}

// acceptWebSocket is the admission path of every WebSocket route: shutdown
// and layer-down refusals, access control, the origin check and the
// connection limits answer before the upgrade (auth.go, limits.go,
// origin.go); then the connection starts in its role. room is "" on a
// multi-room connection (view.multi), whose rooms are authorized one by one
// with the token's claims (multi.go).
func (s *Server) acceptWebSocket(w http.ResponseWriter, r *http.Request, room, role, format string, view viewOpts) {
	if !s.beginConn() {
		http.Error(w, "gateway shutting down", http.StatusServiceUnavailable)
		return
	}
	if s.refuseWhileLayerDown(w) {
		s.conns.Done()
		return
	}
	handedOver := false
	defer func() {
		if !handedOver {
			s.conns.Done()
		}
	}()
	var claims *auth.Claims
	var ok bool
	if view.multi {
		claims, ok = s.authorizeAnyRoom(w, r, auth.View)
	} else {
		claims, ok = s.authorize(w, r, room, rolePermission(role))
	}
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
	logRoom := room
	if view.multi {
		logRoom = "(multi)"
	}
	// The connection exists before the upgrade, so that the socket's
	// writer is made with its events bound once, before anything can
	// fire them.
	k := &wsConn{s: s, room: room, role: role, format: format, mayPublish: mayPublish, view: view, claims: claims,
		log:      s.log.With("room", logRoom, "role", role, "remote", r.RemoteAddr),
		cleanups: make([]func(), 0, 10)}
	readBuffer := socket.FrameReadBuffer // the seed's two-way connections and publishers read whole frames
	if role == roleView {
		readBuffer = socket.ViewerReadBuffer
	}
	fh := socket.NewHijacker(w, readBuffer, socket.Options{WriteTimeout: s.cfg.WriteTimeout, PingInterval: s.cfg.PingInterval, Events: k})
	c, err := websocket.Accept(fh, r, &websocket.AcceptOptions{
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
	k.c, k.sock = c, fh.Writer()
	k.onEnd(s.conns.Done)
	k.onEnd(release)
	s.serveConn(k, claims)
}

// wsConn is one upgraded connection and what must happen when it ends.
// end runs once, from whichever goroutine sees the end first (the read loop,
// or the reader of a view-only connection).
type wsConn struct {
	s                  *Server
	c                  *websocket.Conn
	room, role, format string         // room is "" on a multi-room connection
	mayPublish         bool           // the seed's connection may send frames only with a publish token where one is required
	view               viewOpts       // what a viewer asked for: layer, v=2, adaptation, rooms
	claims             *auth.Claims   // the token's claims where one was required; nil otherwise
	sock               *socket.Writer // the socket's one writer
	log                *slog.Logger

	cleanups []func() // run in reverse order by end; appended before any goroutine starts
	once     sync.Once
	mu       sync.Mutex
	reason   *connEnd                     // why the gateway is ending the connection, if it is
	viewer   atomic.Pointer[viewerWriter] // set before the reader starts, on connections that receive frames
}

// Drained implements socket.Events: the viewer's writer may write again.
func (k *wsConn) Drained() {
	if w := k.viewer.Load(); w != nil {
		w.pump()
	}
}

// Failed implements socket.Events: a write failed, so the connection ends
// (as the viewer's writer says, on a viewer's connection).
func (k *wsConn) Failed(err error) {
	if w := k.viewer.Load(); w != nil {
		w.fail(err)
		return
	}
	if e := writeEnd(err); e != nil {
		go k.s.stop(k, e)
	}
}

func (k *wsConn) onEnd(f func()) { k.cleanups = append(k.cleanups, f) }

// setReason records why the gateway is ending the connection, if no reason
// was recorded before, and reports whether this one was recorded.
func (k *wsConn) setReason(e *connEnd) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.reason != nil {
		return false
	}
	k.reason = e
	return true
}

// serveConn starts one connection in its role and returns. Nothing waits on
// a view-only connection but its reader (viewerCloseRead): frames are
// written by the hub's fan-out shards through the viewer's writer
// (viewerWriter), pings by a timer, and the end is a callback on the
// reader's context.
func (s *Server) serveConn(k *wsConn, claims *auth.Claims) {
	c := k.c
	s.active.Store(c, k)
	k.onEnd(func() { s.active.Delete(c) })
	gauge := s.metrics.connections.WithLabelValues(k.role)
	gauge.Inc()
	k.onEnd(gauge.Dec)
	k.log.Debug("connected", "format", k.format)
	k.onEnd(s.closeOnExpiry(claims, func() { s.stop(k, ended(endTokenExpired, nil)) }))

	// Shutdown closes the connection with 1001, once per connection. Reads
	// do not use s.ctx: cancelling a read's context makes coder/websocket
	// drop the connection without a close frame.
	stop := context.AfterFunc(s.ctx, func() { s.stop(k, ended(endShutdown, nil)) })
	k.onEnd(func() { stop() })
	ctx, cancel := context.WithCancel(context.Background())
	k.onEnd(cancel)
	k.onEnd(keepalive(s.cfg.PingInterval, func() bool { return s.ping(ctx, k) }))
	if k.role != rolePublish {
		w, err := s.startViewer(ctx, k)
		if err != nil {
			s.end(k, err)
			return
		}
		k.viewer.Store(w)
		k.onEnd(w.stop)
	}
	switch {
	case k.role == roleView && k.view.control():
		// v=2 and multi-room viewers send control messages (control.go).
		c.SetReadLimit(viewerReadLimit)
		readCtx := s.controlRead(ctx, k)
		context.AfterFunc(readCtx, func() { s.end(k, context.Cause(readCtx)) })
	case k.role == roleView:
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

// stop ends k for the reason e carries, unless another reason was recorded
// first: it closes the connection as closeTable says, with a close
// handshake (which may take coder/websocket's 5 s to time out) or by
// dropping it. The reader then sees the end, and end does the rest. It may
// block: call it from a goroutine that may wait.
func (s *Server) stop(k *wsConn, err error) {
	e := classify(err)
	if !k.setReason(e) {
		return
	}
	if e.reason.handshake() {
		_ = k.c.Close(closeTable[e.reason].code, e.closeText())
		return
	}
	_ = k.c.CloseNow()
}

// end runs the connection's cleanups once, closes it, and counts and logs
// why it ended: the reason the gateway recorded, or else what its reads
// ended with.
func (s *Server) end(k *wsConn, readErr error) {
	k.once.Do(func() {
		e := classify(readErr)
		if k.setReason(e) && e.reason.handshake() {
			// The read loop returned a reason of the gateway's own (a bad
			// frame, say): the peer gets the close frame now.
			_ = k.c.Close(closeTable[e.reason].code, e.closeText())
		}
		k.mu.Lock()
		e = k.reason
		k.mu.Unlock()
		for i := len(k.cleanups) - 1; i >= 1; i-- { // cleanups[0] is conns.Done: last
			k.cleanups[i]()
		}
		_ = k.c.CloseNow()
		spec := closeTable[e.reason]
		s.metrics.closed.WithLabelValues(spec.label).Inc()
		if spec.cutOff != "" {
			s.metrics.cutOff.WithLabelValues(spec.cutOff).Inc()
		}
		if e.err == nil {
			k.log.Log(context.Background(), spec.level, "connection closed", "reason", spec.label)
		} else {
			k.log.Log(context.Background(), spec.level, "connection closed", "reason", spec.label, "err", e.err)
		}
		k.cleanups[0]()
	})
}

// The viewer side (viewerWriter, subscriptions, layer switches) is in
// viewer.go.

// keepalive calls ping every interval, from a timer (no goroutine waits
// between pings), until ping returns false or the returned stop is called.
// A ping in flight when stop is called does not re-arm the timer.
func keepalive(interval time.Duration, ping func() bool) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(interval, func() {
		if !ping() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(interval)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// ping sends one ping and ends k with a ping timeout if no pong comes
// within the write timeout. A ping that fails because the connection is
// ending for another reason (ctx is cancelled when it ends) counts nothing.
func (s *Server) ping(ctx context.Context, k *wsConn) bool {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	err := k.c.Ping(pctx)
	if err == nil {
		return true
	}
	if ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		s.stop(k, ended(endPingTimeout, fmt.Errorf("no pong within %v", s.cfg.WriteTimeout)))
	}
	return false
}
