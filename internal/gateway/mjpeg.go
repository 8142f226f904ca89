package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/framecast/framecast/internal/socket"
	"github.com/framecast/framecast/pkg/frames"
)

// handleMJPEG serves GET /video/{room}/stream.mjpg: the room's frames as
// multipart/x-mixed-replace, the MJPEG-over-HTTP of mjpg-streamer and
// µStreamer, which an <img>, VLC, ffmpeg and home-automation tools play.
//
// The client is a viewer like a WebSocket one, with the same session
// (session.go): admitted the same way (admit.go), joined to the room on
// the layer ?width=N or ?layer=I picks (the main layer without them; the
// choice is looked at again every second as layers come and go, and
// adaptation may move it), its writes non-blocking through the socket's
// one writer (the response is hijacked after the join, so a refused room
// still gets a plain 503), and its end one of the close table's reasons
// (closes.go): the client going, a write stalled past
// GATEWAY_WRITE_TIMEOUT, shutdown, the channel layer staying down, the
// token's expiry. A publisher leaving does not end it (there is no MJPEG
// "offline" part): the next frame continues it. The response is HTTP/1.1
// delimited by the connection's close, as mjpg-streamer's; X-Frame-Layer
// names the first layer.
func (s *Server) handleMJPEG(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !frames.ValidRoom(room) {
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	view, err := parseView(r.URL.Query(), viewMJPEG, 1)
	if err != nil {
		s.badRequest(w, err.Error())
		return
	}
	if r.Method == http.MethodHead {
		w.Header().Set("Content-Type", mjpegContentType)
		return
	}
	k, ok := s.admit(w, r, admission{role: roleMJPEG, room: room})
	if !ok {
		return
	}
	if !view.at.IsZero() && !s.admitPlayback(w, r, k, room, view) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &mjpegTransport{}
	sess := s.newSession(ctx, k, t, view)
	if err := sess.join(r.Context(), room, view.ask); err != nil {
		cancel()
		sess.stop()
		k.abort()
		s.refuseRoomHTTP(w, err) // 503 or 429 with the budget's reason (roombudget.go)
		return
	}
	sock, _, err := socket.Hijack(w, k.socketOptions()) // a client sends nothing after its request
	if err != nil {
		cancel()
		sess.stop()
		k.abort()
		k.log.Debug("failed to take over the connection", "err", err)
		return
	}
	k.sock, t.sock = sock, sock
	k.onEnd(cancel)
	k.onEnd(sess.stop)
	s.start(k)
	head := "HTTP/1.1 200 OK\r\nContent-Type: " + mjpegContentType + "\r\n" +
		"Cache-Control: no-store\r\nPragma: no-cache\r\nX-Content-Type-Options: nosniff\r\n" +
		"X-Frame-Layer: " + strconv.Itoa(sess.firstLayer()) + "\r\nConnection: close\r\n\r\n" +
		"--" + mjpegBoundary + "\r\n"
	if _, err := sock.Write([]byte(head)); err != nil {
		s.end(k, err)
		return
	}
	sess.markReady()
	go func() { s.end(k, readUntilGone(sock)) }()
}

// mjpegContentType is the Content-Type of an MJPEG stream.
const mjpegContentType = "multipart/x-mixed-replace; boundary=" + mjpegBoundary

// readUntilGone reads what a stream's client sends after its request
// (nothing, normally) and discards it, until the connection ends: its
// reads end when the client goes, or when the gateway closes the socket.
func readUntilGone(r io.Reader) error {
	var buf [256]byte
	for {
		if _, err := r.Read(buf[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // the client closed: a normal end
			}
			return err
		}
	}
}
