package gateway

import (
	"net/http"

	"github.com/framecast/framecast/internal/auth"
)

// admission is what a long-lived connection's handler asks admit to check.
type admission struct {
	role string // rolePublish, roleView, roleSeed, roleMJPEG
	room string // "" on a multi-room connection: its token must grant some room
	// websocket: the request is a WebSocket handshake, whose Origin a
	// browser sets and admit checks (origin.go).
	websocket bool
}

// admit runs the checks every long-lived connection passes before its
// upgrade, WebSocket or MJPEG, in this order: shutdown (503), the channel
// layer down (503, layerwatch.go), the token (401, 403: auth.go), the
// Origin of a WebSocket (403), the connection limits (429, limits.go).
// Each refusal answers with its status and a short plain-text reason and
// returns ok false. On success the returned conn holds the admission: its
// first cleanup ends it (s.conns), the next releases the connection slot;
// a handler that gives up before start calls abort.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, a admission) (*conn, bool) {
	if !s.beginConn() {
		http.Error(w, "gateway shutting down", http.StatusServiceUnavailable)
		return nil, false
	}
	admitted := false
	defer func() {
		if !admitted {
			s.conns.Done()
		}
	}()
	if s.refuseWhileLayerDown(w) {
		return nil, false
	}
	need := auth.View
	if a.role == rolePublish {
		need = auth.Publish
	}
	var claims *auth.Claims
	var ok bool
	if a.room == "" {
		claims, ok = s.authorizeAnyRoom(w, r, need)
	} else {
		claims, ok = s.authorize(w, r, a.room, need)
	}
	if !ok {
		return nil, false
	}
	mayPublish := a.role == rolePublish
	if a.role == roleSeed {
		// The seed's connection (no role) is admitted as a viewer, so the
		// seed's page (which has no token) works where viewing is open;
		// it publishes only with a token that allows it (seedPublishClaims).
		var pub *auth.Claims
		if pub, mayPublish = s.seedPublishClaims(r, a.room); pub != nil {
			claims = pub
		}
	}
	if a.websocket && !s.checkOrigin(w, r) {
		return nil, false
	}
	release, ok := s.admitConnection(w, r)
	if !ok {
		return nil, false
	}
	admitted = true
	k := s.newConn(a.role, a.room, claims, r.RemoteAddr)
	k.mayPublish = mayPublish
	k.client = limitKey(s.limits.clientAddr(r))
	k.onEnd(s.conns.Done)
	k.onEnd(release)
	return k, true
}

// abort ends an admitted connection that never started (its upgrade
// failed, or it was refused a room): its cleanups run, nothing is counted.
func (k *conn) abort() {
	k.once.Do(func() {
		for i := len(k.cleanups) - 1; i >= 0; i-- {
			k.cleanups[i]()
		}
	})
}
