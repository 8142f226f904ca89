// Package gateway is the framecast WebSocket gateway: the HTTP routes, the
// publisher and viewer connections, the pages, health and metrics. Frames
// move through a rooms.Hub over an in-process or Redis channel layer, so any
// number of identical replicas can serve the same rooms.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/recording/playback"
	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

// Server is one gateway replica. Its methods are safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	hub     *rooms.Hub
	layer   rooms.Layer
	redis   redis.UniversalClient // nil on the in-process layer
	metrics *metrics
	pages   *pages
	mux     *http.ServeMux
	access  *accessControl
	limits  *limits
	scale   *scaleOut         // presence and frame cache; nil without Redis (redisclient.go)
	lib     *playback.Library // recorded footage; nil without GATEWAY_RECORD_STORE (library.go)

	clipExports atomic.Int64 // clips being cut (library.go)

	// ctx is cancelled when shutdown begins: every connection handler
	// watches it and closes its WebSocket with 1001.
	ctx        context.Context
	cancel     context.CancelFunc
	draining   atomic.Bool
	connMu     sync.Mutex     // orders conns.Add (beginConn) before Shutdown's conns.Wait
	conns      sync.WaitGroup // WebSocket and stream handlers still running
	active     sync.Map       // *conn -> struct{}: open connections (WebSockets, MJPEG streams), for forced closes
	layerState *layerState    // is the channel layer up (layerwatch.go)

	rec *recording // recorder and retention; nil unless GATEWAY_RECORD is set (record.go)
}

// New builds a server from a validated configuration. It connects nothing
// yet: Redis connections are made lazily and restored by themselves.
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: log}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	s.metrics = newMetrics()
	access, err := newAccessControl(&cfg)
	if err != nil {
		return nil, err
	}
	s.access = access
	if s.limits, err = newLimits(&cfg, log); err != nil {
		return nil, err
	}
	// One Redis, Sentinel or Cluster, or the in-process layer (redisclient.go).
	if err := s.connectRedis(); err != nil {
		return nil, err
	}
	s.hub = rooms.NewHub(s.layer, rooms.Options{
		MaxRooms:       cfg.MaxRooms,
		MaxIdleRooms:   idleRoomShare(cfg.MaxRooms), // roombudget.go
		Liveness:       s.roomLiveness(),
		RoomRate:       cfg.RoomRate,
		RoomBurst:      cfg.RoomBurst,
		PublishTimeout: cfg.PublishTimeout,
		Logger:         log,
		Cache:          s.frameCache(),
		Catalog:        s.layerCatalog(),
		Presence:       s.publisherPresence(),
	})
	s.startScaleOut()
	if err := s.openLibrary(); err != nil {
		return nil, err
	}
	s.layerState = newLayerState()
	s.watchLayer()
	s.metrics.registerHub(s.hub)
	if err := s.startRecording(); err != nil {
		return nil, err
	}
	p, err := newPages()
	if err != nil {
		return nil, err
	}
	s.pages = p
	s.routes()
	return s, nil
}

// Hub returns the server's hub.
func (s *Server) Hub() *rooms.Hub { return s.hub }

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/video/{room}/{$}", s.handleWebSocket)
	mux.HandleFunc("GET /ws/video/{room}", s.handleWebSocket)
	mux.HandleFunc("GET /ws/multi/{$}", s.handleMulti)
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /video/{$}", s.handleIndex)
	mux.HandleFunc("GET /video/{room}/{$}", s.handleViewerPage)
	mux.HandleFunc("GET /video/{room}/snapshot.jpg", s.handleSnapshot)
	mux.HandleFunc("GET /video/{room}/stream.mjpg", s.handleMJPEG)
	mux.HandleFunc("GET /video/{room}/recordings", s.handleRecordings)
	mux.HandleFunc("GET /video/{room}/clip.mp4", s.handleClip)
	mux.HandleFunc("GET /grid/{$}", s.handleGridPage)
	mux.HandleFunc("GET /api/rooms", s.handleRooms)
	mux.Handle("GET /static/", s.pages.static())
	mux.HandleFunc("GET /healthz", s.handleHealthz)
	mux.HandleFunc("GET /readyz", s.handleReadyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.mux = mux
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// handleReadyz answers 200 while the replica can relay frames: not shutting
// down and its channel layer up. Load balancers route new viewers elsewhere
// otherwise.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.draining.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := s.layer.Ready(ctx); err != nil {
		http.Error(w, "channel layer down: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// beginConn counts a long-lived connection handler in s.conns, unless
// shutdown has begun. The caller calls s.conns.Done when it ends.
func (s *Server) beginConn() bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.conns.Add(1)
	return true
}

// Shutdown closes every WebSocket with 1001 (going away) so clients
// reconnect to another replica, waits for the handlers to finish or ctx to
// end, then closes the channel layer. The caller stops the listener first
// (http.Server.Shutdown), since hijacked connections are not its to close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.connMu.Lock()
	s.draining.Store(true)
	s.connMu.Unlock()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		// Peers that never answer the close handshake (a stalled network, a
		// client that only writes) are dropped: the process must exit in time.
		n := 0
		s.active.Range(func(k, _ any) bool {
			k.(*conn).drop()
			n++
			return true
		})
		s.log.Warn("shutdown deadline passed; dropped connections that did not finish closing", "count", n)
		select {
		case <-done:
		case <-time.After(time.Second):
			err = fmt.Errorf("failed to stop every connection handler: %w", ctx.Err())
		}
	}
	// Seals open segments and releases leases; before Redis closes.
	s.stopRecording(ctx)
	s.stopScaleOut() // removes this replica's presence; before Redis closes
	if cerr := s.layer.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if s.redis != nil {
		_ = s.redis.Close()
	}
	return err
}

// Run serves cfg.Addr until ctx ends, then shuts down within
// cfg.ShutdownTimeout. It is the whole life of the gateway process.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	// go-redis logs through a process-wide logger: route it to ours.
	redis.SetLogger(redislayer.RedisLogger{Logger: log})
	s, err := New(cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("failed to listen on %s: %w", cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := newHTTPServer(s.Handler(), s.log) // limits: httplimits.go
	s.log.Info("gateway listening", "addr", ln.Addr().String(), "layer", s.layerName())
	s.logSecurityPosture()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		_ = s.Shutdown(context.Background())
		return fmt.Errorf("failed to serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var httpErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		httpErr = srv.Shutdown(sctx)
	}()
	err := s.Shutdown(sctx)
	wg.Wait()
	if err == nil && httpErr != nil && !errors.Is(httpErr, http.ErrServerClosed) {
		err = httpErr
	}
	s.log.Info("gateway stopped", "err", err)
	return err
}
