package gateway

// Helpers of the security tests (auth_test.go, limits_test.go,
// input_test.go, origin_test.go, pages_security_test.go,
// redis_security_test.go). Names start with "sec" so they cannot collide
// with other tests of this package.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// secSecret is the HS256 secret of the tests' gateways: 40 bytes.
const secSecret = "framecast-test-secret-0123456789abcdefgh"

const secWait = 10 * time.Second // -race builds on a shared machine are slow

// secJPEG returns a real JPEG whose pixels depend on n, padded to size bytes.
func secJPEG(t testing.TB, n, size int) []byte { return testenv.JPEG(t, 32, 24, n, size) }

// secToken mints a token with secSecret.
func secToken(t testing.TB, room, role string, ttl time.Duration) string {
	t.Helper()
	s, err := auth.NewHMACSigner([]byte(secSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Mint(auth.Grant{Room: room, Role: role, TTL: ttl}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// secURL is the WebSocket URL of room on g with an optional query.
func secURL(g *testenv.Gateway, room, query string) string {
	u := g.WSURL() + "/ws/video/" + room + "/"
	if query != "" {
		u += "?" + query
	}
	return u
}

// secDial opens a WebSocket with extra headers. On a refused handshake it
// returns the HTTP status and body.
func secDial(t testing.TB, url string, hdr http.Header) (c *websocket.Conn, status int, body string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), secWait)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			return nil, resp.StatusCode, strings.TrimSpace(string(b)), err
		}
		return nil, 0, "", err
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c, http.StatusSwitchingProtocols, "", nil
}

// secMustDial opens a WebSocket or fails the test.
func secMustDial(t testing.TB, url string, hdr http.Header) *websocket.Conn {
	t.Helper()
	c, status, body, err := secDial(t, url, hdr)
	if err != nil {
		t.Fatalf("dial %s: %v (status %d: %s)", url, err, status, body)
	}
	return c
}

// secReadFrame reads messages from a binary-format viewer until a frame
// (not an offline event) arrives.
func secReadFrame(c *websocket.Conn, timeout time.Duration) (*frames.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageBinary {
			return nil, fmt.Errorf("viewer got a %v message", typ)
		}
		f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
		if err != nil {
			return nil, err
		}
		if !f.IsOffline() {
			return f, nil
		}
	}
}

// secWaitFrameAfter reads frames until one with Seq > seq arrives.
func secWaitFrameAfter(t testing.TB, c *websocket.Conn, seq uint64) *frames.Frame {
	t.Helper()
	deadline := time.Now().Add(secWait)
	for time.Now().Before(deadline) {
		f, err := secReadFrame(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("viewer: %v", err)
		}
		if f.Seq > seq {
			return f
		}
	}
	t.Fatalf("no frame after seq %d within %v", seq, secWait)
	return nil
}

// secCloseOf reads c until it fails and returns the error: a close from
// the gateway, or the timeout.
func secCloseOf(c *websocket.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return err
		}
	}
}

// secExpectClose fails the test unless err is a close with code and a
// reason containing reason.
func secExpectClose(t testing.TB, err error, code websocket.StatusCode, reason string) {
	t.Helper()
	var ce websocket.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("connection ended with %v, want close %d", err, code)
	}
	if ce.Code != code || !strings.Contains(ce.Reason, reason) {
		t.Fatalf("closed with %d %q, want %d with %q", ce.Code, ce.Reason, code, reason)
	}
}

// secPublisher sends header + JPEG frames with increasing sequence numbers
// every period until stopped, and watches its connection for a close.
type secPublisher struct {
	c      *websocket.Conn
	seq    atomic.Uint64 // last sequence number sent
	closed chan error    // receives the connection's end
	cancel context.CancelFunc
	done   chan struct{}
}

func secStartPublisher(t testing.TB, c *websocket.Conn, period time.Duration) *secPublisher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &secPublisher{c: c, closed: make(chan error, 1), cancel: cancel, done: make(chan struct{})}
	jpg := secJPEG(t, 1, 2000)
	go func() {
		p.closed <- secCloseOf(c, time.Hour)
	}()
	go func() {
		defer close(p.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			seq := p.seq.Load() + 1
			wctx, wcancel := context.WithTimeout(ctx, secWait)
			err := c.Write(wctx, websocket.MessageBinary, frames.AppendBinary(nil, seq, time.Now(), jpg))
			wcancel()
			if err != nil {
				return
			}
			p.seq.Store(seq)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *secPublisher) stop() {
	p.cancel()
	<-p.done
}

// secAlive fails the test if the publisher's connection has ended.
func (p *secPublisher) secAlive(t testing.TB) {
	t.Helper()
	select {
	case err := <-p.closed:
		t.Fatalf("publisher's connection ended: %v", err)
	default:
	}
}

// secMetric returns the value of one series on g's /metrics, 0 if absent.
func secMetric(t testing.TB, baseURL, series string) float64 {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && name == series {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	return 0
}

// secWaitMetric waits until a series of g's /metrics equals want.
func secWaitMetric(t testing.TB, baseURL, series string, want float64) {
	t.Helper()
	testenv.WaitFor(t, secWait, series, func() error {
		if got := secMetric(t, baseURL, series); got != want {
			return fmt.Errorf("%s = %v, want %v", series, got, want)
		}
		return nil
	})
}

// secGet GETs url and returns the response and its body.
func secGet(t testing.TB, url string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}
