package gateway

import (
	"context"
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
func (s *Server) latestFrame(ctx context.Context, room string) *frames.Frame {
	if f := s.hub.Latest(room); f != nil {
		return f
	}
	if s.scale == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, snapshotCacheTimeout)
	defer cancel()
	f, err := s.scale.cache.Latest(ctx, room)
	if err != nil {
		s.log.Debug("snapshot: frame cache unreadable", "room", room, "err", err)
		return nil
	}
	return f
}

// handleSnapshot serves GET /video/{room}/snapshot.jpg: the room's newest
// frame as a JPEG, 404 when the room has none (not live anywhere). Like
// mjpg-streamer's ?action=snapshot, for thumbnails, scripts and
// home-automation tools. Watching rules apply (GATEWAY_AUTH=all needs a
// view token).
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !rooms.ValidName(room) {
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	if _, ok := s.authorize(w, r, room, auth.View); !ok {
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	f := s.latestFrame(r.Context(), room)
	if f == nil {
		http.Error(w, "no frame: the room is not live", http.StatusNotFound)
		return
	}
	h.Set("Content-Type", "image/jpeg")
	h.Set("Content-Length", strconv.Itoa(len(f.JPEG)))
	h.Set("X-Frame-Seq", strconv.FormatUint(f.Seq, 10))
	if !f.Captured.IsZero() {
		h.Set("X-Frame-Captured", f.Captured.UTC().Format(time.RFC3339Nano))
	}
	s.metrics.framesOut.WithLabelValues("snapshot").Inc()
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(f.JPEG)
}
