package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// snapshotCacheTimeout bounds the Redis read of a snapshot.
const snapshotCacheTimeout = 500 * time.Millisecond

// latestFrame returns room's newest frame: from this replica's memory when
// it has a live one (a local publisher, or viewers subscribed), otherwise
// from the Redis frame cache, or nil.
func (s *Server) latestFrame(ctx context.Context, stream frames.Stream) *frames.Frame {
	if f := s.hub.Latest(stream); f != nil {
		return f
	}
	if s.scale == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotCacheTimeout)
	defer cancel()
	f, err := s.scale.cache.Latest(ctx, stream)
	if err != nil {
		s.log.Debug("snapshot: frame cache unreadable", "stream", stream, "err", err)
		return nil
	}
	return f
}

// maxRequestWidth is the largest width a snapshot or MJPEG request may ask
// for: layer sizes are 16-bit on the wire.
const maxRequestWidth = 65535

// requestWidth reads the width query parameter of a snapshot or MJPEG
// request: 0 when there is none (the main layer), else 1 to
// maxRequestWidth pixels. Anything else is an error worth a 400.
func requestWidth(r *http.Request) (int, error) {
	vals, ok := r.URL.Query()["width"]
	if !ok {
		return 0, nil
	}
	if len(vals) != 1 {
		return 0, fmt.Errorf("width is given %d times; give it once", len(vals))
	}
	n, err := strconv.Atoi(vals[0])
	if err != nil || n < 1 || n > maxRequestWidth {
		return 0, fmt.Errorf("width must be a whole number of pixels from 1 to %d, not %q", maxRequestWidth, vals[0])
	}
	return n, nil
}

// pickLayer returns the layer of room a request for width pixels gets (see
// rooms.PickLayer): the main layer for width 0, without asking for the
// room's layer list.
func (s *Server) pickLayer(ctx context.Context, room string, width int) int {
	if width <= 0 {
		return 0
	}
	return rooms.PickLayer(s.hub.Layers(ctx, room, frames.CodecJPEG), width)
}

// handleSnapshot serves GET /video/{room}/snapshot.jpg: the room's newest
// frame as a JPEG, 404 when the room has none (not live anywhere). Like
// mjpg-streamer's ?action=snapshot, for thumbnails, scripts and
// home-automation tools. Watching rules apply (GATEWAY_AUTH=all needs a
// view token). With ?width=N it serves the smallest layer at least N wide
// (the widest if none is), or the main layer when that layer has no frame
// yet; X-Frame-Layer says which layer was served.
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
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
	if _, ok := s.authorize(w, r, room, auth.View); !ok {
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	layer := s.pickLayer(r.Context(), room, width)
	var f *frames.Frame
	if layer > 0 {
		f = s.latestFrame(r.Context(), frames.Stream{Room: room, Layer: layer})
	}
	if f == nil {
		layer = 0
		f = s.latestFrame(r.Context(), frames.Stream{Room: room})
	}
	if f == nil {
		http.Error(w, "no frame: the room is not live", http.StatusNotFound)
		return
	}
	h.Set("Content-Type", "image/jpeg")
	h.Set("Content-Length", strconv.Itoa(len(f.Payload)))
	h.Set("X-Frame-Seq", strconv.FormatUint(f.Seq, 10))
	h.Set("X-Frame-Layer", strconv.Itoa(layer))
	if !f.Captured.IsZero() {
		h.Set("X-Frame-Captured", f.Captured.UTC().Format(time.RFC3339Nano))
	}
	s.metrics.framesOut.WithLabelValues("snapshot").Inc()
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(f.Payload)
}
