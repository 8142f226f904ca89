package gateway

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/pkg/rooms"
)

// A replica whose channel layer is down (Redis unreachable from it, while
// the other replicas still reach it) relays nothing: its publishers' frames
// reach no one else, and its viewers get no one's frames. So while the layer
// is down it refuses new WebSockets and MJPEG streams with 503 (nginx tries
// the next replica), and once the layer has stayed down for
// GATEWAY_LAYER_DOWN_CLOSE it closes every connection it has (1013,
// layer_down), so that cameras and pages reconnect through the proxy to a
// replica that relays. When every replica has lost Redis, clients retry
// until it is back.

// layerCheckEvery is how often the watcher asks the layer whether it is up.
const layerCheckEvery = 500 * time.Millisecond

// layerState is what the watcher knows of the channel layer.
type layerState struct {
	up atomic.Bool
}

func newLayerState() *layerState {
	l := &layerState{}
	l.up.Store(true)
	return l
}

// watchLayer runs until shutdown. The in-process layer is always up: no
// watcher.
func (s *Server) watchLayer() {
	if _, ok := s.layer.(*rooms.MemoryLayer); ok {
		return
	}
	go func() {
		t := time.NewTicker(layerCheckEvery)
		defer t.Stop()
		var downSince time.Time
		closed := false
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(s.ctx, layerCheckEvery)
			err := s.layer.Ready(ctx)
			cancel()
			now := time.Now()
			switch {
			case err == nil:
				if !s.layerState.up.Load() {
					s.log.Info("channel layer up again: accepting connections", "down_for", now.Sub(downSince).Round(time.Millisecond))
				}
				s.layerState.up.Store(true)
				downSince, closed = time.Time{}, false
			case downSince.IsZero():
				downSince = now
				s.layerState.up.Store(false)
				s.log.Warn("channel layer down: refusing new connections", "err", err)
			case !closed && s.cfg.LayerDownClose > 0 && now.Sub(downSince) >= s.cfg.LayerDownClose:
				closed = true
				s.evictForLayerDown(err)
			}
		}
	}()
}

// evictForLayerDown closes every connection: WebSockets with 1013, MJPEG
// streams by closing them.
func (s *Server) evictForLayerDown(cause error) {
	n := 0
	s.active.Range(func(k, _ any) bool {
		go s.stop(k.(*conn), ended(endLayerDown, cause))
		n++
		return true
	})
	s.log.Warn("channel layer down too long: closed every connection so clients reconnect elsewhere",
		"connections", n, "after", s.cfg.LayerDownClose, "err", cause)
}

// refuseWhileLayerDown answers 503 while the channel layer is down and
// reports whether it did.
func (s *Server) refuseWhileLayerDown(w http.ResponseWriter) bool {
	if s.layerState.up.Load() {
		return false
	}
	s.metrics.rejected.WithLabelValues("layer_down").Inc()
	http.Error(w, "channel layer down: try another replica", http.StatusServiceUnavailable)
	return true
}
