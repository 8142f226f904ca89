package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/socket"
)

// Roles of a connection: a WebSocket's, from its role query parameter, or
// an MJPEG stream's. They label framecast_connections.
const (
	rolePublish = "publish" // sends frames, receives none
	roleView    = "view"    // receives frames, sends none
	roleSeed    = "seed"    // no role given: the seed's consumer, which does both
	roleMJPEG   = "mjpeg"   // an MJPEG stream (multipart/x-mixed-replace)
)

// conn is one client connection the gateway serves after admitting it: a
// WebSocket of any role, or an MJPEG stream. It owns what must happen when
// the connection ends, and why it ended (closes.go): end runs once, from
// whichever goroutine sees the end first (the read loop, or the reader
// that watches a view-only connection).
//
// Concurrency: the fields set before start are read-only afterwards;
// reason is guarded by mu; session is set once, before the socket's
// events can reach it.
type conn struct {
	s      *Server
	role   string
	room   string          // "" on a multi-room connection
	ws     *websocket.Conn // nil for an MJPEG stream
	sock   *socket.Writer  // the socket's one writer
	claims *auth.Claims    // the token's claims where one was required; nil otherwise
	client netip.Addr      // the client's address as per-address limits count it (limitKey)
	log    *slog.Logger
	// mayPublish: the connection may send frames (a publisher; the seed's
	// two-way connection where publishing is open or its token allows it).
	mayPublish bool

	cleanups []func() // run in reverse order by end; appended before any goroutine starts
	once     sync.Once
	mu       sync.Mutex
	reason   *connEnd // why the gateway is ending the connection, if it is

	session atomic.Pointer[session] // the viewer side; nil on publishers
}

// newConn returns the connection admit made, before its upgrade.
func (s *Server) newConn(role, room string, claims *auth.Claims, remote string) *conn {
	logRoom := room
	if room == "" {
		logRoom = "(multi)"
	}
	return &conn{s: s, role: role, room: room, claims: claims,
		log:      s.log.With("room", logRoom, "role", role, "remote", remote),
		cleanups: make([]func(), 0, 10)}
}

func (k *conn) onEnd(f func()) { k.cleanups = append(k.cleanups, f) }

// socketOptions are the options of k's socket.Writer: its events are k's,
// bound before anything can fire them.
func (k *conn) socketOptions() socket.Options {
	return socket.Options{WriteTimeout: k.s.cfg.WriteTimeout, PingInterval: k.s.cfg.PingInterval, Events: k}
}

// Drained implements socket.Events: the session's writer may write again.
func (k *conn) Drained() {
	if w := k.session.Load(); w != nil {
		w.pump()
	}
}

// Failed implements socket.Events: a write failed, so the connection ends.
func (k *conn) Failed(err error) {
	if w := k.session.Load(); w != nil {
		w.fail(err)
		return
	}
	if e := writeEnd(err); e != nil {
		go k.s.stop(k, e)
	}
}

// start registers k, whose socket is up, and arms what ends it from the
// gateway's side: shutdown (1001), token expiry, and, on a WebSocket,
// pings. Its end is counted from here on.
func (s *Server) start(k *conn) {
	s.active.Store(k, struct{}{})
	k.onEnd(func() { s.active.Delete(k) })
	gauge := s.metrics.connections.WithLabelValues(k.role)
	gauge.Inc()
	k.onEnd(gauge.Dec)
	k.log.Debug("connected")
	k.onEnd(s.closeOnExpiry(k.claims, func() { s.stop(k, ended(endTokenExpired, nil)) }))
	// Shutdown closes the connection, once per connection. Reads do not
	// use s.ctx: cancelling a read's context makes coder/websocket drop
	// the connection without a close frame.
	stop := context.AfterFunc(s.ctx, func() { s.stop(k, ended(endShutdown, nil)) })
	k.onEnd(func() { stop() })
	if k.ws != nil {
		ctx, cancel := context.WithCancel(context.Background())
		k.onEnd(cancel)
		k.onEnd(keepalive(s.cfg.PingInterval, func() bool { return s.ping(ctx, k) }))
	}
}

// setReason records why the gateway is ending the connection, if no reason
// was recorded before, and reports whether this one was recorded.
func (k *conn) setReason(e *connEnd) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.reason != nil {
		return false
	}
	k.reason = e
	return true
}

// stop ends k for the reason e carries, unless another reason was recorded
// first: it closes the connection as closeTable says, with a close
// handshake (which may take coder/websocket's 5 s to time out) or by
// dropping it (always, for an MJPEG stream). The reader then sees the end,
// and end does the rest. It may block: call it from a goroutine that may
// wait.
func (s *Server) stop(k *conn, err error) {
	e := classify(err)
	if !k.setReason(e) {
		return
	}
	k.close(e)
}

// close closes k's socket as e says.
func (k *conn) close(e *connEnd) {
	if k.ws != nil && e.reason.handshake() {
		_ = k.ws.Close(closeTable[e.reason].code, e.closeText())
		return
	}
	k.drop()
}

// drop closes k's socket at once, without a close handshake.
func (k *conn) drop() {
	if k.ws != nil {
		_ = k.ws.CloseNow()
		return
	}
	_ = k.sock.Close()
}

// end runs the connection's cleanups once, closes it, and counts and logs
// why it ended: the reason the gateway recorded, or else what its reads
// ended with.
func (s *Server) end(k *conn, readErr error) {
	k.once.Do(func() {
		e := classify(readErr)
		if k.setReason(e) && e.reason.handshake() && k.ws != nil {
			// The read loop returned a reason of the gateway's own (a bad
			// frame, say): the peer gets the close frame now.
			_ = k.ws.Close(closeTable[e.reason].code, e.closeText())
		}
		k.mu.Lock()
		e = k.reason
		k.mu.Unlock()
		for i := len(k.cleanups) - 1; i >= 1; i-- { // cleanups[0] is conns.Done: last
			k.cleanups[i]()
		}
		k.drop()
		spec := closeTable[e.reason]
		s.metrics.closed.WithLabelValues(spec.label).Inc()
		if spec.cutOff != "" {
			s.metrics.cutOff.WithLabelValues(spec.cutOff).Inc()
		}
		if e.err == nil {
			k.log.Log(context.Background(), spec.level, "connection closed", "reason", spec.label)
		} else {
			k.log.Log(context.Background(), spec.level, "connection closed", "reason", spec.label, "err", e.err)
		}
		k.cleanups[0]()
	})
}

// keepalive calls ping every interval, from a timer (no goroutine waits
// between pings), until ping returns false or the returned stop is called.
// A ping in flight when stop is called does not re-arm the timer.
func keepalive(interval time.Duration, ping func() bool) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(interval, func() {
		if !ping() {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(interval)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// ping sends one ping and ends k with a ping timeout if no pong comes
// within the write timeout. A ping that fails because the connection is
// ending for another reason (ctx is cancelled when it ends) counts nothing.
func (s *Server) ping(ctx context.Context, k *conn) bool {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
	defer cancel()
	err := k.ws.Ping(pctx)
	if err == nil {
		return true
	}
	if ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		s.stop(k, ended(endPingTimeout, fmt.Errorf("no pong within %v", s.cfg.WriteTimeout)))
	}
	return false
}
