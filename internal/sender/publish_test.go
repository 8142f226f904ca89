package sender

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"gocv.io/x/gocv"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// fakeGateway is an in-test WebSocket server that records what a sender
// does: each connection's request and messages, and how it was closed.
type fakeGateway struct {
	srv *httptest.Server

	// onConn, when set, runs instead of the default reader for connection n
	// (0-based). It must return when ctx is done.
	onConn func(ctx context.Context, n int, c *websocket.Conn, rec *connRecord)

	mu    sync.Mutex
	conns []*connRecord
	stop  chan struct{}
	wg    sync.WaitGroup
}

type connRecord struct {
	mu       sync.Mutex
	path     string
	query    string
	auth     string
	msgs     []recvMsg
	closeErr error // what the read loop ended with
	ended    bool
}

type recvMsg struct {
	typ  websocket.MessageType
	data []byte
}

func (r *connRecord) add(m recvMsg) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *connRecord) messages() []recvMsg {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recvMsg(nil), r.msgs...)
}

func (r *connRecord) end() (ended bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended, r.closeErr
}

func newFakeGateway(t *testing.T) *fakeGateway {
	g := &fakeGateway{stop: make(chan struct{})}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(func() {
		close(g.stop)
		g.srv.Close()
		g.wg.Wait()
	})
	return g
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	g.wg.Add(1)
	defer g.wg.Done()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	c.SetReadLimit(-1)
	rec := &connRecord{path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization")}
	g.mu.Lock()
	n := len(g.conns)
	g.conns = append(g.conns, rec)
	g.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-g.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if g.onConn != nil {
		g.onConn(ctx, n, c, rec)
		return
	}
	readAll(ctx, c, rec)
}

// readAll records messages until the connection ends.
func readAll(ctx context.Context, c *websocket.Conn, rec *connRecord) {
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			rec.mu.Lock()
			rec.closeErr, rec.ended = err, true
			rec.mu.Unlock()
			return
		}
		rec.add(recvMsg{typ, b})
	}
}

func (g *fakeGateway) url() string { return "ws" + strings.TrimPrefix(g.srv.URL, "http") }

func (g *fakeGateway) conn(i int) *connRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	if i < len(g.conns) {
		return g.conns[i]
	}
	return nil
}

func (g *fakeGateway) numConns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// waitMessages waits until connection i has received at least n messages.
func (g *fakeGateway) waitMessages(t *testing.T, i, n int, timeout time.Duration) []recvMsg {
	t.Helper()
	var msgs []recvMsg
	testenv.WaitFor(t, timeout, fmt.Sprintf("%d messages on connection %d", n, i), func() error {
		c := g.conn(i)
		if c == nil {
			return fmt.Errorf("only %d connections", g.numConns())
		}
		if msgs = c.messages(); len(msgs) < n {
			return fmt.Errorf("%d messages", len(msgs))
		}
		return nil
	})
	return msgs
}

// testConfig is a fast sender configuration: the test pattern, small
// frames, short pauses, no status line.
func testConfig(url string) Config {
	c := DefaultConfig()
	c.URL = url
	c.Source = "test"
	c.Width = 160
	c.FPS = 25
	c.StatusInterval = 0
	c.ReconnectMin = 10 * time.Millisecond
	c.ReconnectMax = 100 * time.Millisecond
	c.WriteTimeout = 2 * time.Second
	return c
}

// runningSender is a Sender whose Run goroutine the test controls.
type runningSender struct {
	*Sender
	cancel context.CancelFunc
	done   chan error
}

// startSender runs a Sender for cfg until the test stops it or ends.
func startSender(t *testing.T, cfg Config) *runningSender {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rs := &runningSender{Sender: s, cancel: cancel, done: make(chan error, 1)}
	go func() { rs.done <- s.Run(ctx) }()
	t.Cleanup(func() { rs.stop(t) })
	return rs
}

// stop cancels Run and waits for it to return; it may be called twice.
func (rs *runningSender) stop(t *testing.T) error {
	t.Helper()
	rs.cancel()
	select {
	case err, ok := <-rs.done:
		if ok {
			close(rs.done)
		}
		return err
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel")
		return nil
	}
}

func TestSenderBinaryProtocol(t *testing.T) {
	g := newFakeGateway(t)
	cfg := testConfig(g.url())
	cfg.Token = "tok.123"
	cfg.Room = "cam_1"
	s := startSender(t, cfg)
	start := time.Now()

	msgs := g.waitMessages(t, 0, 10, 20*time.Second)
	rec := g.conn(0)
	if rec.path != "/ws/video/cam_1/" || rec.query != "role=publish" {
		t.Errorf("request %s?%s, want /ws/video/cam_1/?role=publish (no token in the URL)", rec.path, rec.query)
	}
	if rec.auth != "Bearer tok.123" {
		t.Errorf("Authorization %q, want Bearer tok.123", rec.auth)
	}
	var last uint64
	for i, m := range msgs {
		if m.typ != websocket.MessageBinary {
			t.Fatalf("message %d: type %v, want binary", i, m.typ)
		}
		f, err := frames.ParseBinary(m.data, 0, time.Time{}, 0)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if f.Seq <= last {
			t.Fatalf("message %d: seq %d after %d", i, f.Seq, last)
		}
		last = f.Seq
		if f.Captured.Before(start.Add(-time.Second)) || f.Captured.After(time.Now()) {
			t.Fatalf("message %d: capture time %v outside the test", i, f.Captured)
		}
		if sz := decodeJPEG(t, f.Payload); sz.X != 160 || sz.Y != 120 {
			t.Fatalf("message %d: %v JPEG, want 160×120", i, sz)
		}
	}

	if err := s.stop(t); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	testenv.WaitFor(t, 5*time.Second, "server to see the close", func() error {
		if ended, _ := rec.end(); !ended {
			return errors.New("connection still open")
		}
		return nil
	})
	_, err := rec.end()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "sender stopping" {
		t.Fatalf("connection ended with %v, want 1000 \"sender stopping\"", err)
	}
	st := s.Stats()
	if st.Sent < 10 || st.Captured < st.Sent || st.Bytes == 0 || st.Connected || st.Reconnects != 0 {
		t.Fatalf("stats after stop: %+v", st)
	}
}

// TestSenderSeedProtocol speaks the seed's protocol to a server that, like
// the seed's Django consumer, echoes every frame back to the sender as
// JSON, larger than the WebSocket library's default 32 KiB read limit.
func TestSenderSeedProtocol(t *testing.T) {
	g := newFakeGateway(t)
	g.onConn = func(ctx context.Context, n int, c *websocket.Conn, rec *connRecord) {
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				rec.mu.Lock()
				rec.closeErr, rec.ended = err, true
				rec.mu.Unlock()
				return
			}
			rec.add(recvMsg{typ, b})
			echo := append(append([]byte(`{"message":"`), b...), `"}`...)
			if err := c.Write(ctx, websocket.MessageText, echo); err != nil {
				return
			}
		}
	}
	cfg := testConfig(g.url())
	cfg.Protocol = ProtocolSeed
	cfg.Width = 640
	cfg.Quality = 95
	s := startSender(t, cfg)

	msgs := g.waitMessages(t, 0, 5, 20*time.Second)
	rec := g.conn(0)
	if rec.path != "/ws/video/demo/" || rec.query != "" || rec.auth != "" {
		t.Errorf("request %s?%s auth %q, want /ws/video/demo/ with no query", rec.path, rec.query, rec.auth)
	}
	for i, m := range msgs {
		if m.typ != websocket.MessageText || !strings.HasPrefix(string(m.data), "data:image/jpeg;base64,") {
			t.Fatalf("message %d: type %v %.30q, want a text data URL", i, m.typ, m.data)
		}
		f, err := frames.ParseDataURL(m.data, 1, time.Now(), 0)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if sz := decodeJPEG(t, f.Payload); sz.X != 640 || sz.Y != 480 {
			t.Fatalf("message %d: %v JPEG, want 640×480", i, sz)
		}
	}
	if len(msgs[0].data) < 32<<10 {
		t.Logf("echoes are only %d bytes; the read-limit case is not exercised", len(msgs[0].data))
	}
	if st := s.Stats(); st.Reconnects != 0 {
		t.Fatalf("echoed frames broke the connection: %+v", st)
	}
}

// TestSenderReconnects: the server closes the first connection with 1001
// (a gateway restarting); the sender redials and frames resume.
func TestSenderReconnects(t *testing.T) {
	g := newFakeGateway(t)
	g.onConn = func(ctx context.Context, n int, c *websocket.Conn, rec *connRecord) {
		if n == 0 {
			for range 5 {
				typ, b, err := c.Read(ctx)
				if err != nil {
					return
				}
				rec.add(recvMsg{typ, b})
			}
			c.Close(websocket.StatusGoingAway, "server shutting down")
			return
		}
		readAll(ctx, c, rec)
	}
	s := startSender(t, testConfig(g.url()))
	msgs := g.waitMessages(t, 1, 5, 20*time.Second)
	first := g.conn(0).messages()
	f0, _ := frames.ParseBinary(first[len(first)-1].data, 0, time.Time{}, 0)
	f1, err := frames.ParseBinary(msgs[0].data, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if f1.Seq <= f0.Seq {
		t.Fatalf("after reconnecting, seq %d does not follow %d", f1.Seq, f0.Seq)
	}
	if st := s.Stats(); st.Reconnects < 1 || !st.Connected {
		t.Fatalf("stats after reconnect: %+v", st)
	}
}

// TestSenderSkipsWhenSocketSlow: a server that stops reading makes writes
// block; the sender skips frames instead of queueing them, then the write
// timeout drops the connection and the sender redials.
func TestSenderSkipsWhenSocketSlow(t *testing.T) {
	g := newFakeGateway(t)
	g.stallFirstConn(0)
	cfg := testConfig(g.url())
	cfg.Width = 1280 // large frames fill the socket buffers within a second
	cfg.Quality = 100
	s := startStalledSender(t, cfg)
	// The stalled connection is cut by the write timeout and replaced.
	g.waitMessages(t, 1, 3, 30*time.Second)
	if st := s.Stats(); st.Reconnects < 1 {
		t.Fatalf("stats after the stall: %+v", st)
	}
}

// stallFirstConn makes g's first connection read n messages, then stop
// reading, so that the sender's writes fill the TCP buffers; later
// connections read everything.
func (g *fakeGateway) stallFirstConn(n int) {
	g.onConn = func(ctx context.Context, i int, c *websocket.Conn, rec *connRecord) {
		if i > 0 {
			readAll(ctx, c, rec)
			return
		}
		for range n {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			rec.add(recvMsg{typ, b})
		}
		<-ctx.Done()
	}
}

// startStalledSender starts a 30 fps sender of cfg with a 1.5 s write
// timeout and waits until it skipped frames on a stalled socket.
func startStalledSender(t *testing.T, cfg Config) *runningSender {
	t.Helper()
	cfg.FPS = 30
	cfg.WriteTimeout = 1500 * time.Millisecond
	s := startSender(t, cfg)
	testenv.WaitFor(t, 30*time.Second, "frames skipped on the stalled socket", func() error {
		if st := s.Stats(); st.Skipped == 0 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	return s
}

// TestSenderUnreachableGateway: with no gateway, capture runs, nothing is
// encoded or counted as sent, and Run still stops at once on cancel.
func TestSenderUnreachableGateway(t *testing.T) {
	cfg := testConfig(fmt.Sprintf("ws://127.0.0.1:%d", testenv.FreePort(t)))
	s := startSender(t, cfg)
	testenv.WaitFor(t, 10*time.Second, "frames captured", func() error {
		if st := s.Stats(); st.Captured < 5 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	start := time.Now()
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("Run took %v to return while redialling", el)
	}
	if st := s.Stats(); st.Sent != 0 || st.Connected {
		t.Fatalf("stats %+v", st)
	}
}

// TestMissingCameraIsRetried: a camera device absent at start is not a
// start error; the sender keeps trying to open it.
func TestMissingCameraIsRetried(t *testing.T) {
	g := newFakeGateway(t)
	cfg := testConfig(g.url())
	cfg.Source = "/dev/video97"
	s := startSender(t, cfg)
	g.waitMessages(t, 0, 0, 10*time.Second) // connects without frames
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Captured != 0 {
		t.Fatalf("captured frames from a missing camera: %+v", st)
	}
}

// flakySource delivers n frames of the test pattern, then fails.
type flakySource struct {
	*testPattern
	n int
}

func (f *flakySource) Read(ctx context.Context, m *gocv.Mat) error {
	if f.n == 0 {
		return errReadFailed
	}
	f.n--
	return f.testPattern.Read(ctx, m)
}

// TestCaptureReopensFailedSource: an open that fails and a source that
// stops delivering are both retried; sequence numbers keep increasing.
func TestCaptureReopensFailedSource(t *testing.T) {
	cfg := testConfig("ws://unused:1")
	var stats counters
	slot := newFrameSlot()
	defer slot.Close()
	c := newCapturer(cfg, sourceSpec{kind: sourceTest, index: -1}, slot, &stats, testLogger(t))
	var mu sync.Mutex
	opens := 0
	c.open = func() (frameSource, error) {
		mu.Lock()
		defer mu.Unlock()
		opens++
		switch opens {
		case 1:
			return nil, errors.New("camera busy")
		case 2:
			return &flakySource{testPattern: newTestPattern(64, 100), n: 3}, nil
		default:
			return newTestPattern(64, 100), nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	back := gocv.NewMat()
	done := make(chan struct{})
	go func() { defer close(done); c.run(ctx, &back) }()
	front := gocv.NewMat()
	defer front.Close()
	var seqs []uint64
	testenv.WaitFor(t, 10*time.Second, "frames after the source came back", func() error {
		if info, ok := slot.take(&front); ok {
			seqs = append(seqs, info.seq)
		}
		if st := stats.snapshot(); st.Captured < 10 || st.SourceReopens < 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	cancel()
	<-done
	back.Close()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("seq %d after %d", seqs[i], seqs[i-1])
		}
	}
	if opens < 3 {
		t.Fatalf("source opened %d times, want >= 3", opens)
	}
}

// TestTokenNeverLogged: dial errors quote the URL; the token must not
// reach the logs.
func TestTokenNeverLogged(t *testing.T) {
	var buf lockedBuffer
	cfg := testConfig(fmt.Sprintf("ws://127.0.0.1:%d", testenv.FreePort(t)))
	cfg.Token = "s3cr3t+tok/en"
	s, err := New(cfg, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testenv.WaitFor(t, 10*time.Second, "a failed dial in the log", func() error {
		if !strings.Contains(buf.String(), "failed to connect") {
			return errors.New("not yet")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, secret := range []string{cfg.Token, "s3cr3t", url.QueryEscape(cfg.Token)} {
		if strings.Contains(out, secret) {
			t.Fatalf("log shows the token (%q):\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "REDACTED") {
		t.Logf("dial errors no longer quote the URL:\n%s", out)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStopWithUnresponsiveGateway: a gateway that never answers the close
// handshake delays a stop by closeTimeout, not by the library's longer waits.
func TestStopWithUnresponsiveGateway(t *testing.T) {
	g := newFakeGateway(t)
	g.onConn = func(ctx context.Context, n int, c *websocket.Conn, rec *connRecord) {
		rec.add(recvMsg{})
		<-ctx.Done() // never reads: no pong, no close reply
	}
	s := startSender(t, testConfig(g.url()))
	g.waitMessages(t, 0, 1, 10*time.Second)
	testenv.WaitFor(t, 10*time.Second, "frames written", func() error {
		if st := s.Stats(); st.Sent < 3 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	start := time.Now()
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > closeTimeout+2*time.Second {
		t.Fatalf("stop took %v with an unresponsive gateway, want about %v", el, closeTimeout)
	}
}
