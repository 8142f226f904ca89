package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// Roles of a WebSocket connection, from the role query parameter.
const (
	rolePublish = "publish" // sends frames, receives none
	roleView    = "view"    // receives frames, sends none
	roleSeed    = "seed"    // no role given: the seed's consumer, which does both
)

// Wire formats for viewers, from the format query parameter.
const (
	formatJSON   = "json"   // the seed's {"message": data URL}, the default
	formatBinary = "binary" // header + JPEG, see docs/protocol.md
)

// Close codes the gateway sends beyond the standard ones.
const (
	// StatusViewerTooSlow is logged when a viewer's write stalls past the
	// write timeout; the connection is dropped at once, since a stalled peer
	// cannot read a close frame either.
	StatusViewerTooSlow websocket.StatusCode = 4008
)

// handleWebSocket serves GET /ws/video/{room}/: validation happens before the
// upgrade, so a bad request gets a plain HTTP error.
func (s *Server) handleWebSocket(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !rooms.ValidName(room) {
		s.metrics.rejected.WithLabelValues("bad_room").Inc()
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	role := q.Get("role")
	switch role {
	case "":
		role = roleSeed
	case rolePublish, roleView:
	default:
		s.metrics.rejected.WithLabelValues("bad_request").Inc()
		http.Error(w, fmt.Sprintf("role must be %q or %q (or absent)", rolePublish, roleView), http.StatusBadRequest)
		return
	}
	format := q.Get("format")
	switch format {
	case "":
		format = formatJSON
	case formatJSON, formatBinary:
	default:
		s.metrics.rejected.WithLabelValues("bad_request").Inc()
		http.Error(w, fmt.Sprintf("format must be %q or %q", formatJSON, formatBinary), http.StatusBadRequest)
		return
	}
	if s.draining.Load() {
		http.Error(w, "gateway shutting down", http.StatusServiceUnavailable)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		OriginPatterns:  s.cfg.AllowedOrigins,
		CompressionMode: websocket.CompressionDisabled, // JPEG does not compress
	})
	if err != nil {
		s.metrics.rejected.WithLabelValues("handshake").Inc()
		s.log.Debug("websocket handshake failed", "room", room, "err", err)
		return
	}
	s.conns.Add(1)
	defer s.conns.Done()
	gauge := s.metrics.connections.WithLabelValues(role)
	gauge.Inc()
	defer gauge.Dec()

	log := s.log.With("room", room, "role", role, "remote", r.RemoteAddr)
	log.Debug("connected", "format", format)

	// Shutdown closes the connection with 1001 from here, once per
	// connection. Reads do not use s.ctx: cancelling a read's context makes
	// coder/websocket drop the connection without a close frame.
	stop := context.AfterFunc(s.ctx, func() { _ = c.Close(websocket.StatusGoingAway, "gateway shutting down") })
	defer stop()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	var reason error
	switch role {
	case rolePublish:
		reason = s.servePublisher(ctx, c, room, log, true)
	case roleView:
		reason = s.serveViewer(c.CloseRead(ctx), c, room, format, log)
	case roleSeed:
		// The seed's consumer both sends and receives: a reader publishing
		// frames and this goroutine writing the room's frames back.
		done := make(chan struct{})
		go func() {
			defer close(done)
			cancel(s.servePublisher(ctx, c, room, log, false))
		}()
		cancel(s.serveViewer(ctx, c, room, format, log))
		<-done
		reason = context.Cause(ctx)
	}
	s.finish(c, reason, log)
}

// finish closes c according to why its handler returned.
func (s *Server) finish(c *websocket.Conn, reason error, log *slog.Logger) {
	switch {
	case s.ctx.Err() != nil:
		// Waits for the close handshake the shutdown hook started.
		_ = c.Close(websocket.StatusGoingAway, "gateway shutting down")
		log.Debug("closed for shutdown")
	case reason == nil, isNormalClose(reason):
		_ = c.CloseNow()
		log.Debug("disconnected")
	default:
		_ = c.CloseNow()
		log.Info("connection closed", "reason", reason)
	}
}

func isNormalClose(err error) bool {
	switch closeStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		return true
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, io.EOF)
}

// servePublisher reads frames from c and hands them to a publisher until
// the connection ends. Each message is one frame: a text data URL (the
// seed's sender) or a binary message, bare JPEG or header + JPEG. A message
// that is not a valid frame closes the connection with 1007 (1009 if too
// large) and a reason.
func (s *Server) servePublisher(ctx context.Context, c *websocket.Conn, room string, log *slog.Logger, keepalive bool) error {
	pub, err := s.hub.NewPublisher(room)
	if err != nil {
		s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
		_ = c.Close(websocket.StatusTryAgainLater, "too many rooms on this gateway")
		return err
	}
	defer pub.Close()
	c.SetReadLimit(s.cfg.maxMessageBytes())
	if keepalive {
		go s.keepalive(ctx, c)
	}
	for {
		typ, data, err := c.Read(ctx)
		if err != nil {
			if errors.Is(err, websocket.ErrMessageTooBig) {
				s.metrics.rejected.WithLabelValues("too_large").Inc()
			}
			return err
		}
		var f *frames.Frame
		now := time.Now()
		if typ == websocket.MessageText {
			f, err = frames.ParseDataURL(data, pub.NextSeq(), now, s.cfg.MaxFrameBytes)
		} else {
			f, err = frames.ParseBinary(data, pub.NextSeq(), now, s.cfg.MaxFrameBytes)
			if err == nil && f.IsOffline() {
				err = fmt.Errorf("%w: publishers send frames, not offline events", frames.ErrBadHeader)
			}
		}
		if err != nil {
			code, reason := websocket.StatusInvalidFramePayloadData, "bad_frame"
			if errors.Is(err, frames.ErrTooLarge) {
				code, reason = websocket.StatusMessageTooBig, "too_large"
			}
			s.metrics.rejected.WithLabelValues(reason).Inc()
			_ = c.Close(code, closeReason(err))
			return fmt.Errorf("refused frame: %w", err)
		}
		s.metrics.framesIn.Inc()
		pub.Send(f)
	}
}

// closeReason fits err into a close frame's 123-byte reason.
func closeReason(err error) string {
	msg := err.Error()
	if len(msg) > 123 {
		msg = msg[:120] + "..."
	}
	return msg
}

// serveViewer joins room and writes its frames to c in format until ctx
// ends or a write fails. It is the connection's only frame writer: it takes
// the newest frame from the viewer's slot, so a slow viewer skips frames
// instead of queueing them. A write that stalls past the write timeout cuts
// the viewer off. Pings run from here too; their pongs are read by whoever
// reads the connection (CloseRead or the publisher loop).
func (s *Server) serveViewer(ctx context.Context, c *websocket.Conn, room, format string, log *slog.Logger) error {
	v, err := s.hub.Join(ctx, room)
	if err != nil {
		s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
		_ = c.Close(websocket.StatusTryAgainLater, "too many rooms on this gateway")
		return err
	}
	defer s.hub.Leave(v)

	typ, out := websocket.MessageBinary, s.metrics.framesOut.WithLabelValues(format)
	if format == formatJSON {
		typ = websocket.MessageText
	}
	stalled := make(chan struct{})
	stuck := time.AfterFunc(time.Hour, func() {
		close(stalled)
		_ = c.CloseNow() // unblocks the stalled Write
	})
	stuck.Stop()
	defer stuck.Stop()
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()

	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-ping.C:
			go s.ping(ctx, c)
		case <-v.Wake():
			f := v.TryNext()
			if f == nil {
				continue
			}
			msg := f.Binary()
			if format == formatJSON {
				msg = f.JSON() // nil for offline events: the seed's page has no use for them
			}
			if msg == nil {
				continue
			}
			stuck.Reset(s.cfg.WriteTimeout)
			// A background context: the stuck timer bounds the write, which
			// spares a timer allocation per frame per viewer.
			err := c.Write(context.Background(), typ, msg)
			if !stuck.Stop() {
				<-stalled
				s.metrics.cutOff.WithLabelValues("slow").Inc()
				log.Info("viewer cut off", "code", int(StatusViewerTooSlow), "reason",
					fmt.Sprintf("write stalled for %v", s.cfg.WriteTimeout), "skipped", v.Skipped())
				return fmt.Errorf("viewer too slow: write stalled for %v", s.cfg.WriteTimeout)
			}
			if err != nil {
				return err
			}
			out.Inc()
		}
	}
}

// keepalive pings c every ping interval until ctx ends, for connections
// whose frame writer does not (publishers).
func (s *Server) keepalive(ctx context.Context, c *websocket.Conn) {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if !s.ping(ctx, c) {
				return
			}
		}
	}
}

// ping sends one ping and closes c if no pong comes within the write
// timeout: the peer is gone or stuck.
func (s *Server) ping(ctx context.Context, c *websocket.Conn) bool {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	if err := c.Ping(ctx); err != nil {
		if ctx.Err() != nil && s.ctx.Err() == nil {
			s.metrics.cutOff.WithLabelValues("ping_timeout").Inc()
		}
		_ = c.CloseNow()
		return false
	}
	return true
}
