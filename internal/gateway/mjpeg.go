package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/pkg/frames"
)

// mjpegBoundary separates the parts of an MJPEG stream.
const mjpegBoundary = "frame"

// roleMJPEG labels MJPEG viewers in the connection gauge.
const roleMJPEG = "mjpeg"

// mjpegLayerRecheck is how often an MJPEG stream asked with ?width=N looks
// at the room's layer list again, so a stream opened before the room's
// layers existed (or whose layer went away) moves to the layer the rule
// picks now.
const mjpegLayerRecheck = 2 * time.Second

// mjpegSwitchFloor is how long, after a layer switch, frames of the new
// layer not newer than the last one sent are dropped: the newest frame a
// join hands over may be older than the old layer's last frame. Bounded,
// so a publisher that restarted its sequence numbers is not held up.
const mjpegSwitchFloor = 2 * time.Second

// handleMJPEG serves GET /video/{room}/stream.mjpg: the room's frames as
// multipart/x-mixed-replace, the MJPEG-over-HTTP of mjpg-streamer and
// µStreamer, which an <img>, VLC, ffmpeg and home-automation tools play.
//
// The client is a viewer of the hub like a WebSocket viewer: this handler
// is its only writer and takes the newest frame from its latest-wins slot,
// so a slow client skips frames and never holds up others. A write that
// stalls past GATEWAY_WRITE_TIMEOUT cuts the client off. The stream ends
// when the client goes, the gateway shuts down, its channel layer stays
// down (layerwatch.go) or the viewer's token expires
// (exp plus auth.Leeway, as WebSocket viewers are closed); a publisher
// leaving does not end it (there is no MJPEG "offline" part), the next frame
// continues it.
//
// With ?width=N the client views the smallest layer at least N wide (the
// widest if none is), chosen again every mjpegLayerRecheck; a switch joins
// the new layer's stream before leaving the old one, and never sends a
// frame older than the last one sent. Without width it views the main
// layer, as always.
func (s *Server) handleMJPEG(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !frames.ValidRoom(room) {
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	width, err := requestWidth(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	claims, ok := s.authorize(w, r, room, auth.View)
	if !ok {
		return
	}
	if !s.beginConn() {
		http.Error(w, "gateway shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.conns.Done()
	if s.refuseWhileLayerDown(w) {
		return
	}
	evicted := s.layerState.evictions()
	release, ok := s.admitConnection(w, r)
	if !ok {
		return
	}
	defer release()

	layer := s.pickLayer(r.Context(), room, width)
	v, err := s.hub.Join(r.Context(), frames.Stream{Room: room, Layer: layer})
	if err != nil {
		s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
		http.Error(w, "too many rooms on this gateway", http.StatusServiceUnavailable)
		return
	}
	defer func() { s.hub.Leave(v) }() // v changes with the layer
	var recheck <-chan time.Time
	if width > 0 {
		t := time.NewTicker(mjpegLayerRecheck)
		defer t.Stop()
		recheck = t.C
	}
	gauge := s.metrics.connections.WithLabelValues(roleMJPEG)
	gauge.Inc()
	defer gauge.Dec()
	log := s.log.With("room", room, "role", roleMJPEG, "remote", r.RemoteAddr)
	log.Debug("connected", "layer", layer)

	rc := http.NewResponseController(w)
	// Shutdown ends a write stuck on a client that does not read. A
	// deadline set after this fires is caught by the s.ctx check below.
	stop := context.AfterFunc(s.ctx, func() { _ = rc.SetWriteDeadline(time.Now()) })
	defer stop()

	h := w.Header()
	h.Set("Content-Type", "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Layer", strconv.Itoa(layer)) // the first layer; a recheck may move on
	// Each part ends with the next boundary, not only starts with one: a
	// browser shows a part once it sees the boundary after it, so a closing
	// boundary puts every frame on screen at once instead of one frame late
	// (a second late in a 1 fps room).
	if err := s.writeMJPEG(rc, func() error {
		w.WriteHeader(http.StatusOK)
		_, err := io.WriteString(w, "--"+mjpegBoundary+"\r\n")
		return err
	}); err != nil {
		return
	}
	expired, stopExpiry := tokenExpiry(claims)
	defer stopExpiry()
	out := s.metrics.framesOut.WithLabelValues(roleMJPEG)
	var part []byte
	var lastSeq, floor uint64 // floor: drop frames up to it until floorUntil
	var floorUntil time.Time
	for {
		select {
		case <-r.Context().Done():
			log.Debug("disconnected")
			return
		case <-s.ctx.Done():
			log.Debug("closed for shutdown")
			return
		case <-evicted:
			log.Info("channel layer down; ending the stream so the client reconnects elsewhere")
			return
		case <-expired:
			s.metrics.rejected.WithLabelValues("token_expired").Inc()
			log.Info("token expired; ending the stream", "sub", claims.Subject)
			return
		case <-recheck:
			if next := s.pickLayer(r.Context(), room, width); next != layer {
				nv, err := s.hub.Join(r.Context(), frames.Stream{Room: room, Layer: next})
				if err != nil {
					continue // the replica's room limit: stay on the layer we have
				}
				log.Debug("layer changed", "from", layer, "to", next)
				s.hub.Leave(v)
				v, layer = nv, next
				floor, floorUntil = lastSeq, time.Now().Add(mjpegSwitchFloor)
			}
			continue
		case <-v.Wake():
		}
		f := v.TryNext()
		if f == nil || f.IsOffline() {
			continue
		}
		if floor > 0 {
			if f.Seq <= floor && time.Now().Before(floorUntil) {
				continue
			}
			floor = 0
		}
		if claims != nil && !time.Now().Before(claims.Deadline()) {
			continue // expired while a frame was ready: the select ends the stream
		}
		part = append(part[:0], "Content-Type: image/jpeg\r\nContent-Length: "...)
		part = strconv.AppendInt(part, int64(len(f.Payload)), 10)
		part = append(part, "\r\nX-Timestamp: "...)
		part = strconv.AppendFloat(part, float64(f.Captured.UnixMicro())/1e6, 'f', 6, 64)
		part = append(part, "\r\n\r\n"...)
		err := s.writeMJPEG(rc, func() error {
			if _, err := w.Write(part); err != nil {
				return err
			}
			if _, err := w.Write(f.Payload); err != nil {
				return err
			}
			_, err := io.WriteString(w, "\r\n--"+mjpegBoundary+"\r\n")
			return err
		})
		if err != nil {
			// A failed write cancels r's context too: tell a stall (the
			// deadline passed) from a client that went away by the error.
			if s.ctx.Err() == nil && errors.Is(err, os.ErrDeadlineExceeded) {
				s.metrics.cutOff.WithLabelValues("slow").Inc()
				log.Info("viewer cut off", "reason", "write stalled for "+s.cfg.WriteTimeout.String(), "skipped", v.Skipped())
			} else {
				log.Debug("disconnected", "err", err)
			}
			return
		}
		out.Inc()
		lastSeq = f.Seq
	}
}

// writeMJPEG runs write and flushes it to the client within the write
// timeout. It fails at once if shutdown has begun.
func (s *Server) writeMJPEG(rc *http.ResponseController, write func() error) error {
	if err := rc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		return err
	}
	if err := s.ctx.Err(); err != nil {
		return err
	}
	if err := write(); err != nil {
		return err
	}
	return rc.Flush()
}

// tokenExpiry returns a channel that receives when the token of claims
// expires (exp plus auth.Leeway), and the func that stops its timer. A nil
// claims (no token required) never expires: the channel is nil.
func tokenExpiry(claims *auth.Claims) (<-chan time.Time, func() bool) {
	if claims == nil {
		return nil, func() bool { return false }
	}
	t := time.NewTimer(time.Until(claims.Deadline()))
	return t.C, t.Stop
}
