package gateway

// Helpers of the security tests (auth_test.go, limits_test.go,
// input_test.go, origin_test.go, pages_security_test.go,
// redis_security_test.go). Names start with "sec" so they cannot collide
// with other tests of this package.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
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

// secWaitFrameAfter reads frames until one with Seq > seq arrives.
func secWaitFrameAfter(t testing.TB, c *testenv.Client, seq uint64) *frames.Frame {
	t.Helper()
	deadline := time.Now().Add(secWait)
	for time.Now().Before(deadline) {
		f, err := c.ReadFrame(time.Until(deadline))
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
func secCloseOf(c *testenv.Client, timeout time.Duration) error {
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
// every period until the test ends, and watches its connection for a close.
type secPublisher struct {
	*testenv.Publisher
	closed <-chan error // receives the connection's end
}

func secStartPublisher(t testing.TB, c *testenv.Client, period time.Duration) *secPublisher {
	t.Helper()
	closed := c.ReadUntilClosed()
	jpg := secJPEG(t, 1, 2000)
	return &secPublisher{Publisher: c.Publish(t, period, false, func(uint64) []byte { return jpg }), closed: closed}
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
