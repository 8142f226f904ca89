package sender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// stableAfter is how long a connection must last for the reconnect backoff
// to start again from its minimum. A gateway that accepts and then drops
// the sender at once (a bad token closed with 1008, a full server) keeps
// the backoff growing.
const stableAfter = 5 * time.Second

// closeReasonStopping is the close reason sent on shutdown.
const closeReasonStopping = "sender stopping"

// closeTimeout bounds the close handshake on shutdown. With a frame write
// in flight (at most WriteTimeout) it keeps a stop under systemd's
// TimeoutStopSec=10 of deploy/systemd/sender@.service.
const closeTimeout = 2 * time.Second

// publisher keeps one WebSocket to the gateway and writes the messages the
// encoder puts in slot. Its run method is the publish goroutine; the
// connected flag in stats is how the encoder knows whether to encode.
type publisher struct {
	cfg   Config
	slot  *messageSlot
	stats *counters
	log   *slog.Logger

	// keyframe, when set, is called (on the connection's reader goroutine)
	// for every keyframe request the gateway sends; it must not block.
	keyframe func()

	// tokenErr is the last failure to read cfg.TokenFile, logged once.
	tokenErr string
}

// publishURL returns the WebSocket URL for cfg: the room's path under the
// base URL, with role=publish for the binary protocol. It never carries the
// token: a URL ends up in proxies' access logs, so dial sends the token only
// as Authorization: Bearer.
func publishURL(cfg Config) (string, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return "", fmt.Errorf("failed to parse SENDER_URL: %w", err)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ws/video/" + cfg.Room + "/"
	u.RawPath = ""
	q := url.Values{}
	if cfg.Protocol == ProtocolBinary {
		q.Set("role", "publish")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// run dials the gateway and streams until ctx is done, redialling with
// backoff after every failure, forever. On ctx done it closes the
// connection with 1000 "sender stopping" and returns.
func (p *publisher) run(ctx context.Context) {
	target, err := publishURL(p.cfg)
	if err != nil { // Config.Validate has parsed it already
		p.log.Error("bad gateway URL", "err", err)
		return
	}
	logURL := redactURL(strings.SplitN(target, "?", 2)[0]) // no password in logs
	bo := newBackoff(p.cfg.ReconnectMin, p.cfg.ReconnectMax)
	var lastErr string
	connections := 0
	for ctx.Err() == nil {
		if p.cfg.TokenFile != "" {
			// Before every dial, so that a rotated token is used.
			p.reloadToken()
		}
		conn, err := p.dial(ctx, target)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			pause := bo.next()
			// Log each new failure once; repeats go to debug so that a
			// gateway down for an hour does not flood the journal.
			level := slog.LevelWarn
			if err.Error() == lastErr {
				level = slog.LevelDebug
			}
			lastErr = err.Error()
			p.log.Log(ctx, level, "failed to connect to gateway", "url", logURL, "err", err, "retry_in", pause.Round(time.Millisecond))
			if sleep(ctx, pause) != nil {
				return
			}
			continue
		}
		lastErr = ""
		connections++
		if connections > 1 {
			p.stats.reconnects.Add(1)
		}
		p.log.Info("connected to gateway", "url", logURL, "protocol", p.cfg.Protocol)
		start := time.Now()
		err = p.serve(ctx, conn)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) >= stableAfter {
			bo.reset()
		}
		pause := bo.next()
		level := slog.LevelWarn
		if code := websocket.CloseStatus(err); code == websocket.StatusGoingAway || code == websocket.StatusNormalClosure {
			level = slog.LevelInfo // a gateway restarting or draining: expected
		}
		p.log.Log(ctx, level, "disconnected from gateway", "err", err, "after", time.Since(start).Round(time.Millisecond), "retry_in", pause.Round(time.Millisecond))
		if sleep(ctx, pause) != nil {
			return
		}
	}
}

// reloadToken reads cfg.TokenFile into cfg.Token. A file that cannot be
// read (being replaced, removed) leaves the last token in use; the failure
// is logged once, without the file's content.
func (p *publisher) reloadToken() {
	tok, err := readTokenFile(p.cfg.TokenFile)
	if err != nil {
		if err.Error() != p.tokenErr {
			p.tokenErr = err.Error()
			p.log.Warn("failed to read token file; using the last token read", "file", p.cfg.TokenFile, "err", err)
		}
		return
	}
	if p.tokenErr != "" {
		p.tokenErr = ""
		p.log.Info("token file readable again", "file", p.cfg.TokenFile)
	}
	if p.cfg.Token != "" && tok != p.cfg.Token {
		p.log.Info("token file changed; using the new token", "file", p.cfg.TokenFile)
	}
	p.cfg.Token = tok
}

// dial opens the WebSocket, bounded by DialTimeout. The token goes only in
// the Authorization header, never in target (see publishURL).
func (p *publisher) dial(ctx context.Context, target string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	opts := &websocket.DialOptions{}
	if p.cfg.Token != "" {
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + p.cfg.Token}}
	}
	conn, resp, err := websocket.Dial(ctx, target, opts)
	if err != nil {
		// The URL holds no token, but errors may quote what they were sent
		// (a proxy echoing the request): keep the token out of the logs.
		err = redactToken(err, p.cfg.Token)
		if resp != nil {
			return nil, fmt.Errorf("failed to dial: HTTP %s: %w", resp.Status, err)
		}
		return nil, fmt.Errorf("failed to dial: %w", err)
	}
	return conn, nil
}

// redactToken returns err with token hidden from its message.
func redactToken(err error, token string) error {
	if token == "" || err == nil {
		return err
	}
	return &redactedError{err: err, r: strings.NewReplacer(token, "REDACTED", url.QueryEscape(token), "REDACTED")}
}

type redactedError struct {
	err error
	r   *strings.Replacer
}

func (e *redactedError) Error() string { return e.r.Replace(e.err.Error()) }
func (e *redactedError) Unwrap() error { return e.err }

// serve streams messages on conn until it fails, the gateway closes it, or
// ctx is done; then it closes conn. On ctx done the close is the normal
// 1000 "sender stopping" handshake, and a write in flight is allowed to
// finish (bounded by WriteTimeout) rather than cut mid-frame.
//
// Goroutines: serve itself is the writer; a reader goroutine processes
// control frames (pongs, close) and the gateway's control messages (see
// readMessages), and discards frames, which only a seed-protocol
// connection receives (the seed's route echoes the room's frames to every
// socket); a keepalive goroutine pings. Both end when serve returns.
func (p *publisher) serve(ctx context.Context, conn *websocket.Conn) error {
	// The connection's own context is not canceled by ctx: shutdown must
	// close with a handshake, which needs the reader still running.
	connCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	conn.SetReadLimit(-1) // discarded as streamed; never buffered

	readErr := make(chan error, 1)
	pingErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); readErr <- p.readMessages(connCtx, conn) }()
	go func() { defer wg.Done(); pingErr <- p.keepalive(connCtx, conn) }()

	p.slot.drop() // whatever was encoded before this connection is stale
	gen := p.stats.connGen.Add(1)
	p.stats.connected.Store(true)
	defer func() {
		p.stats.connected.Store(false)
		p.slot.drop()
		cancel()
		conn.CloseNow()
		wg.Wait()
	}()

	for {
		select {
		case <-ctx.Done():
			// A gateway that does not answer the close within closeTimeout
			// is dropped: canceling connCtx makes the reader close the
			// connection, which ends the handshake's wait.
			timer := time.AfterFunc(closeTimeout, cancel)
			err := conn.Close(websocket.StatusNormalClosure, closeReasonStopping)
			timer.Stop()
			if err != nil {
				p.log.Debug("close handshake incomplete", "err", err)
			}
			p.log.Info("closed connection to gateway", "reason", closeReasonStopping)
			return ctx.Err()
		case err := <-readErr:
			return describeClose(err)
		case err := <-pingErr:
			return err
		case <-p.slot.ready:
		}
		m := p.slot.take()
		if m == nil {
			continue
		}
		if m.gen != 0 && m.gen != gen {
			// An H.264 picture encoded for the previous connection: its
			// deltas refer to pictures this one never carried.
			p.slot.discard(m)
			continue
		}
		err := p.writePicture(connCtx, conn, m)
		key := m.key
		p.slot.release(m)
		if err != nil {
			return err
		}
		p.stats.sent.Add(1)
		if key {
			p.stats.keyframes.Add(1)
		}
	}
}

// writePicture writes every layer of m, in order, each bounded by
// WriteTimeout. Shutdown is only looked at between pictures, so a picture
// is never cut between its layers.
func (p *publisher) writePicture(ctx context.Context, conn *websocket.Conn, m *message) error {
	for i := range m.ends {
		b := m.layer(i)
		wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
		err := conn.Write(wctx, m.typ, b)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fmt.Errorf("failed to write frame within %v: %w", p.cfg.WriteTimeout, err)
			}
			return fmt.Errorf("failed to write frame: %w", err)
		}
		n := uint64(len(b))
		p.stats.bytes.Add(n)
		if m.kinds[i].IsH264() {
			p.stats.h264Bytes.Add(n)
			if p.cfg.h264() {
				p.stats.layerBytes[m.layers[i]].Add(n)
			}
		} else {
			p.stats.jpegBytes.Add(n)
			if !p.cfg.h264() {
				p.stats.layerBytes[m.layers[i]].Add(n)
			}
		}
	}
	return nil
}

// maxControlBytes bounds a control message from the gateway; longer text
// messages (the seed route's echoed data URLs) are discarded unread.
const maxControlBytes = 1 << 10

// readMessages reads conn until it fails or closes. Reading is what makes
// the library answer pings, deliver pongs to Ping and complete the close
// handshake. Text messages of at most maxControlBytes are the gateway's
// control messages: {"type":"keyframe"} counts a keyframe request and
// calls p.keyframe; other types are ignored, and messages that are not a
// JSON object with a type are logged at debug. Everything else (binary
// messages, the seed route's echoed frames) is discarded as streamed.
func (p *publisher) readMessages(ctx context.Context, conn *websocket.Conn) error {
	buf := make([]byte, maxControlBytes+1)
	for {
		typ, r, err := conn.Reader(ctx)
		if err != nil {
			return err
		}
		n := 0
		if typ == websocket.MessageText {
			n, err = io.ReadFull(r, buf)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = nil
			}
			if err != nil {
				return err
			}
		}
		if n > maxControlBytes || typ != websocket.MessageText {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
			continue
		}
		p.control(buf[:n])
	}
}

// control handles one control message from the gateway.
func (p *publisher) control(b []byte) {
	var msg struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &msg); err != nil || msg.Type == "" {
		if p.cfg.Protocol == ProtocolBinary { // the seed's route sends data URLs
			p.log.Debug("ignored a malformed message from the gateway", "message", truncateText(b, 80), "err", err)
		}
		return
	}
	switch msg.Type {
	case "keyframe":
		p.stats.keyRequests.Add(1)
		if p.keyframe != nil {
			p.keyframe()
		}
	default:
		// A newer gateway's message: not an error.
	}
}

// truncateText returns b as a string of at most n bytes, for logs.
func truncateText(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// keepalive pings every PingInterval and returns an error when a pong does
// not come within WriteTimeout. It returns nil when ctx is done.
func (p *publisher) keepalive(ctx context.Context, conn *websocket.Conn) error {
	t := time.NewTicker(p.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("failed to ping gateway within %v: %w", p.cfg.WriteTimeout, err)
		}
	}
}

// describeClose turns the reader's error into the reason the connection
// ended: the gateway's close status when it sent one.
func describeClose(err error) error {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Errorf("gateway closed the connection: %w", ce)
	}
	return fmt.Errorf("failed to read from gateway: %w", err)
}
