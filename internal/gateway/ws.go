package gateway

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/socket"
	"github.com/framecast/framecast/pkg/frames"
)

// handleWebSocket serves GET /ws/video/{room}/: validation happens before
// the upgrade, so a bad request gets a plain HTTP error.
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !frames.ValidRoom(room) {
		s.metrics.rejected.WithLabelValues("bad_room").Inc()
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	view, err := parseView(r.URL.Query(), viewSocket, s.cfg.maxRoomsPerConn())
	if err != nil {
		s.badRequest(w, err.Error())
		return
	}
	s.acceptWebSocket(w, r, room, view)
}

// handleMulti serves GET /ws/multi/: one viewer connection that carries
// several rooms (docs/protocol.md, "Multi-room connections"). It is a v=2
// view connection; rooms (optional) subscribes rooms at once, each on the
// layer width or layer picks. Authorization is per room, at each
// subscription, with the claims of a token that must grant some room.
func (s *Server) handleMulti(w http.ResponseWriter, r *http.Request) {
	view, err := parseView(r.URL.Query(), viewMulti, s.cfg.maxRoomsPerConn())
	if err != nil {
		s.badRequest(w, err.Error())
		return
	}
	s.acceptWebSocket(w, r, "", view)
}

// badRequest answers 400 with reason, before any upgrade.
func (s *Server) badRequest(w http.ResponseWriter, reason string) {
	s.metrics.rejected.WithLabelValues("bad_request").Inc()
	http.Error(w, reason, http.StatusBadRequest)
}

// acceptWebSocket admits the connection (admit.go), upgrades it through a
// socket.Hijacker, and starts it in its role. room is "" on a multi-room
// connection.
func (s *Server) acceptWebSocket(w http.ResponseWriter, r *http.Request, room string, view viewOpts) {
	k, ok := s.admit(w, r, admission{role: view.role, room: room, websocket: true})
	if !ok {
		return
	}
	if !view.at.IsZero() && !s.admitPlayback(w, r, k, room, view) {
		return
	}
	readBuffer := socket.FrameReadBuffer // the seed's two-way connections and publishers read whole frames
	if view.role == roleView {
		readBuffer = socket.ViewerReadBuffer
	}
	h := socket.NewHijacker(w, readBuffer, k.socketOptions())
	c, err := websocket.Accept(h, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true,                          // admit checked the origin
		CompressionMode:    websocket.CompressionDisabled, // JPEG does not compress
	})
	if err != nil {
		k.abort()
		s.metrics.rejected.WithLabelValues("handshake").Inc()
		s.log.Debug("websocket handshake failed", "room", room, "err", err)
		return
	}
	// The connection outlives this handler: returning lets net/http free
	// the request, the response and its goroutine's stack, which would
	// otherwise be pinned for the life of every idle viewer.
	k.ws, k.sock = c, h.Writer()
	s.serveWebSocket(k, view)
}

// serveWebSocket starts one upgraded connection in its role and returns.
// Nothing waits on a view-only connection but its reader: frames are
// written by the hub's fan-out shards through the session's writer, pings
// by a timer, and the end is a callback on the reader's context.
func (s *Server) serveWebSocket(k *conn, view viewOpts) {
	s.start(k)
	ctx, cancel := context.WithCancel(context.Background())
	k.onEnd(cancel)
	if view.role != rolePublish {
		w := s.newSession(ctx, k, newWSTransport(k, view), view)
		k.onEnd(w.stop)
		w.markReady()
		if view.multi {
			for _, room := range view.rooms {
				w.subscribeOrRefuse(ctx, room, view.ask)
			}
		} else if err := w.join(ctx, k.room, view.ask); err != nil {
			s.refuseRoom(k, err) // 1013 with the budget's reason (roombudget.go)
			return
		}
	}
	switch {
	case view.role == roleView && view.control():
		// v=2 and multi-room viewers send control messages (control.go).
		k.ws.SetReadLimit(viewerReadLimit)
		readCtx := s.controlRead(ctx, k)
		context.AfterFunc(readCtx, func() { s.end(k, context.Cause(readCtx)) })
	case view.role == roleView:
		// Viewers send nothing: a data message closes them with 1008
		// (CloseRead without its 15 s linger, limits.go).
		k.ws.SetReadLimit(viewerReadLimit)
		readCtx := s.viewerCloseRead(ctx, k.ws)
		context.AfterFunc(readCtx, func() { s.end(k, context.Cause(readCtx)) })
	default:
		// Publishers, and the seed's two-way connections: a read loop.
		go func() { s.end(k, s.servePublisher(ctx, k)) }()
	}
}

// authorizeAnyRoom is authorize for a connection whose rooms are not known
// yet: where a token is required it must be valid (401) and grant need on
// some room (403); its claims then decide each room (session.subscribe).
func (s *Server) authorizeAnyRoom(w http.ResponseWriter, r *http.Request, need auth.Permission) (*auth.Claims, bool) {
	if !s.access.required(need) {
		return nil, true
	}
	claims, ok := s.verifyToken(w, r, "(multi)")
	if !ok {
		return nil, false
	}
	if claims.Grants()&need != need {
		s.metrics.rejected.WithLabelValues("forbidden").Inc()
		http.Error(w, fmt.Sprintf("role %q cannot %s", claims.Role, need), http.StatusForbidden)
		return nil, false
	}
	return claims, true
}
