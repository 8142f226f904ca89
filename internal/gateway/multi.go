package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/pkg/frames"
)

// handleMulti serves GET /ws/multi/: one viewer connection that carries
// several rooms (docs/protocol.md, "Multi-room connections"). It is a v=2
// view connection; rooms (optional) subscribes rooms at once, each on the
// layer width or layer picks. The admission path is handleWebSocket's
// (acceptWebSocket); authorization is per room, at each subscription.
func (s *Server) handleMulti(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if role := q.Get("role"); role != "" && role != roleView {
		s.badRequest(w, "a multi-room connection is a viewer: role must be view (or absent)")
		return
	}
	if f := q.Get("format"); f != "" && f != formatBinary {
		s.badRequest(w, "a multi-room connection receives version-2 binary messages: format must be binary (or absent)")
		return
	}
	if v := q.Get("v"); v != "" && v != "2" {
		s.badRequest(w, "a multi-room connection is v=2: v must be 2 (or absent)")
		return
	}
	var view viewOpts
	var err error
	if view.ask, err = parseLayerQuery(q); err != nil {
		s.badRequest(w, err.Error())
		return
	}
	if view.adapt, err = parseAdapt(q); err != nil {
		s.badRequest(w, err.Error())
		return
	}
	if view.ask.codec, err = frames.ParseCodec(q.Get("codec")); err != nil {
		s.badRequest(w, err.Error())
		return
	}
	view.v2, view.multi = true, true
	seen := map[string]bool{}
	for _, room := range roomList(q.Get("rooms")) {
		if !frames.ValidRoom(room) {
			s.badRequest(w, fmt.Sprintf("rooms: %q is not a room name (1 to 64 characters from A-Z, a-z, 0-9 and _)", room))
			return
		}
		if !seen[room] {
			seen[room] = true
			view.rooms = append(view.rooms, room)
		}
	}
	if n := s.cfg.maxRoomsPerConn(); len(view.rooms) > n {
		s.badRequest(w, fmt.Sprintf("rooms lists %d rooms; a connection carries at most %d (GATEWAY_MAX_ROOMS_PER_CONN)", len(view.rooms), n))
		return
	}
	s.acceptWebSocket(w, r, "", roleView, formatBinary, view)
}

// authorizeAnyRoom is authorize for a connection whose rooms are not known
// yet: where a token is required it must be valid (401) and grant need on
// some room (403); its claims then decide each room (roomAllowed).
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

// Reasons of `refused` messages.
const (
	refusedNotGranted = "the token does not grant this room"
	refusedTooMany    = "too many rooms on this connection"
	refusedRoomLimit  = "too many rooms on this gateway"
)

// subscribe adds room to a multi-room connection on the layer ask picks,
// or, if it is already there, changes its choice as select does. A room
// the token does not grant, one past GATEWAY_MAX_ROOMS_PER_CONN or past
// the replica's room limit is answered with `refused`; the connection and
// its other rooms carry on. It may block (Join).
func (w *viewerWriter) subscribe(ctx context.Context, room string, ask layerAsk) {
	if claims := w.k.claims; claims != nil {
		if err := claims.Allows(room, auth.View); err != nil {
			w.s.metrics.rejected.WithLabelValues("forbidden").Inc()
			w.send(refusedMessage(room, refusedNotGranted))
			return
		}
	}
	w.cmu.Lock()
	_, have := w.byRoom[room]
	n := len(w.byRoom)
	w.cmu.Unlock()
	if have {
		w.selectLayer(ctx, room, ask)
		return
	}
	if n >= w.s.cfg.maxRoomsPerConn() {
		w.s.metrics.rejected.WithLabelValues("rooms_per_conn").Inc()
		w.send(refusedMessage(room, fmt.Sprintf("%s (limit %d)", refusedTooMany, w.s.cfg.maxRoomsPerConn())))
		return
	}
	if err := w.join(ctx, room, ask, w.k.view.adapt); err != nil {
		if errors.Is(err, errConnEnding) {
			return
		}
		w.s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
		w.send(refusedMessage(room, refusedRoomLimit))
	}
}

// unsubscribe removes room from a multi-room connection: its frames stop
// once the writer reaches the removal (after what is queued before it).
func (w *viewerWriter) unsubscribe(room string) {
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
