package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/recording/playback"
	"github.com/framecast/framecast/pkg/frames"
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

// pickLayer returns the JPEG layer of room ask picks: the main layer for
// no choice, without asking for the room's layer list.
func (s *Server) pickLayer(ctx context.Context, room string, ask layerAsk) int {
	if !ask.set {
		return 0
	}
	layers, _ := s.hub.Layers(ctx, room, frames.CodecJPEG) // unread: the main layer, served below anyway
	return ask.resolve(layers)
}

// recordedFrame returns room's recorded JPEG picture at at, or an error
// worth a 404 saying why there is none.
func (s *Server) recordedFrame(ctx context.Context, room string, at time.Time) (*frames.Frame, error) {
	if s.lib == nil {
		return nil, errNoLibrary
	}
	ctx, cancel := context.WithTimeout(ctx, libraryTimeout)
	defer cancel()
	f, err := s.lib.FrameAt(ctx, room, at)
	switch {
	case errors.Is(err, playback.ErrNoFootage):
		return nil, fmt.Errorf("no JPEG recording of room %q at %s", room, at.UTC().Format(time.RFC3339Nano))
	case err != nil:
		s.log.Warn("snapshot: recordings unreadable", "room", room, "err", err)
		return nil, errUnreadable
	}
	return f, nil
}

// handleSnapshot serves GET /video/{room}/snapshot.jpg: the room's newest
// frame as a JPEG, 404 when the room has none (not live anywhere). Like
// mjpg-streamer's ?action=snapshot, for thumbnails, scripts and
// home-automation tools. Watching rules apply (GATEWAY_AUTH=all needs a
// view token). With ?width=N it serves the smallest layer at least N wide
// (the widest if none is), or the main layer when that layer has no frame
// yet; X-Frame-Layer says which layer was served. With ?at=T it serves
// the room's recorded picture at T (its JPEG recording).
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !frames.ValidRoom(room) {
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	view, err := parseView(r.URL.Query(), viewSnapshot, 1)
	if err != nil {
		s.badRequest(w, err.Error())
		return
	}
	if _, ok := s.authorize(w, r, room, auth.View); !ok {
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	var f *frames.Frame
	layer := 0
	if !view.at.IsZero() {
		// The recording's picture at that time: recordings hold the main
		// layer.
		if f, err = s.recordedFrame(r.Context(), room, view.at); err != nil {
			http.Error(w, err.Error(), playbackStatus(err))
			return
		}
	} else {
		layer = s.pickLayer(r.Context(), room, view.ask)
		if layer > 0 {
			f = s.latestFrame(r.Context(), frames.Stream{Room: room, Layer: layer})
		}
		if f == nil {
			layer = 0
			f = s.latestFrame(r.Context(), frames.Stream{Room: room})
		}
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
