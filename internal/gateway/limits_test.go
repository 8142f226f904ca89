package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestPublishLimiter pins the rate limit's definition on a synthetic clock:
// a burst passes, frames over the rate are dropped, and the connection is
// cut once more than burst frames are dropped within excessWindow, but not
// when the drops are spread out.
func TestPublishLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	t.Run("burst then drops then cut", func(t *testing.T) {
		l := newPublishLimiter(10, 5)
		for i := 0; i < 5; i++ {
			if err := l.admit(t0); err != nil {
				t.Fatalf("frame %d of the burst: %v", i, err)
			}
		}
		for i := 0; i < 5; i++ { // drops 1..5: at the limit, not over it
			if err := l.admit(t0); err != errFrameDropped {
				t.Fatalf("drop %d: %v", i+1, err)
			}
		}
		if err := l.admit(t0); !errors.Is(err, errRateExceeded) {
			t.Fatalf("6th drop at once: %v, want errRateExceeded", err)
		}
		// 100 ms later the bucket has a token again: frames pass.
		if err := l.admit(t0.Add(100 * time.Millisecond)); err != nil {
			t.Fatalf("after a refill: %v", err)
		}
	})
	t.Run("sixth drop within the window cuts", func(t *testing.T) {
		l := newPublishLimiter(0.001, 5) // no refill within the test
		for i := 0; i < 5; i++ {
			_ = l.admit(t0)
		}
		for i := 1; i <= 5; i++ {
			if err := l.admit(t0.Add(time.Duration(i) * 100 * time.Millisecond)); err != errFrameDropped {
				t.Fatalf("drop %d: %v", i, err)
			}
		}
		if err := l.admit(t0.Add(time.Second)); !errors.Is(err, errRateExceeded) {
			t.Fatalf("6th drop within %v: %v, want errRateExceeded", excessWindow, err)
		}
	})
	t.Run("drops spread over more than the window", func(t *testing.T) {
		l := newPublishLimiter(0.001, 5)
		for i := 0; i < 5; i++ {
			_ = l.admit(t0)
		}
		for i := 1; i <= 50; i++ { // one drop every 500 ms: 4 per window
			if err := l.admit(t0.Add(time.Duration(i) * 500 * time.Millisecond)); err != errFrameDropped {
				t.Fatalf("drop %d: %v", i, err)
			}
		}
	})
	t.Run("no limit", func(t *testing.T) {
		l := newPublishLimiter(0, 0)
		for i := 0; i < 10000; i++ {
			if err := l.admit(t0); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestPublishRateLimit runs a real gateway at 0.5 frames/s with a burst of
// 5: of 8 frames sent at once, 5 are published and 3 dropped and counted,
// and the publisher stays; a flood then closes it with 1008.
func TestPublishRateLimit(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_PUBLISH_RATE=0.5", "GATEWAY_PUBLISH_BURST=5")
	viewer := testenv.Dial(t, secURL(g, "r", "role=view&format=binary"), nil)
	pub := testenv.Dial(t, secURL(g, "r", "role=publish"), nil)
	closed := make(chan error, 1)
	go func() { closed <- secCloseOf(pub, time.Hour) }()
	ctx := t.Context()
	jpg := secJPEG(t, 1, 1000)
	for i := 1; i <= 8; i++ {
		if err := pub.Write(ctx, websocket.MessageBinary, frames.AppendBinary(nil, uint64(i), time.Now(), jpg)); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="rate_limited"}`, 3)
	if got := testenv.Metric(t, g.URL(), "framecast_frames_in_total"); got != 5 {
		t.Fatalf("frames_in = %v, want the burst of 5", got)
	}
	if f, err := viewer.ReadFrame(secWait); err != nil || f.Seq > 5 {
		t.Fatalf("viewer got %v, %v; want one of the first 5 frames", f, err)
	}
	select {
	case err := <-closed:
		t.Fatalf("publisher closed after 3 drops: %v", err)
	default:
	}

	for i := 9; i <= 30; i++ {
		if err := pub.Write(ctx, websocket.MessageBinary, frames.AppendBinary(nil, uint64(i), time.Now(), jpg)); err != nil {
			break // the gateway may already have closed it
		}
	}
	select {
	case err := <-closed:
		secExpectClose(t, err, websocket.StatusPolicyViolation, "publish rate exceeded")
	case <-time.After(secWait):
		t.Fatal("flooding publisher not closed")
	}
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="rate_exceeded"}`, 1)
}

// TestPublishWithinRateLosesNothing: a publisher at a quarter of the rate
// (25 fps against 100/s, burst 20) never has a frame dropped.
func TestPublishWithinRateLosesNothing(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_PUBLISH_RATE=100", "GATEWAY_PUBLISH_BURST=20")
	pub := testenv.Dial(t, secURL(g, "r", "role=publish"), nil)
	go func() { _ = secCloseOf(pub, time.Hour) }()
	jpg := secJPEG(t, 1, 1000)
	tick := time.NewTicker(40 * time.Millisecond)
	defer tick.Stop()
	for i := 1; i <= 40; i++ {
		if err := pub.Write(t.Context(), websocket.MessageBinary, frames.AppendBinary(nil, uint64(i), time.Now(), jpg)); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	testenv.WaitMetric(t, secWait, g.URL(), "framecast_frames_in_total", 40)
	if got := testenv.Metric(t, g.URL(), `framecast_rejected_total{reason="rate_limited"}`); got != 0 {
		t.Fatalf("%v frames dropped", got)
	}
}

// TestClientAddr: X-Forwarded-For counts only from trusted proxies, and
// then its right-most untrusted address is the client.
func TestClientAddr(t *testing.T) {
	proxies, err := parseTrustedProxies([]string{"10.0.0.0/8", "fd00::1"})
	if err != nil {
		t.Fatal(err)
	}
	l := &limits{proxies: proxies, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy", "203.0.113.5:1234", nil, "203.0.113.5"},
		{"untrusted peer's XFF ignored", "203.0.113.5:1234", []string{"198.51.100.1"}, "203.0.113.5"},
		{"trusted peer, one hop", "10.1.2.3:1234", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client-forged left part ignored", "10.1.2.3:1234", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted proxies", "10.1.2.3:1234", []string{"1.1.1.1, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers", "10.1.2.3:1234", []string{"1.1.1.1", "198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"trusted peer without XFF", "10.1.2.3:1234", nil, "10.1.2.3"},
		{"all trusted: left-most", "10.1.2.3:1234", []string{"10.4.4.4, 10.5.5.5"}, "10.4.4.4"},
		{"garbage stops the walk", "10.1.2.3:1234", []string{"198.51.100.1, bogus, 10.5.5.5"}, "10.5.5.5"},
		{"hop with a port", "10.1.2.3:1234", []string{"198.51.100.7:5555"}, "198.51.100.7"},
		{"IPv6 proxy", "[fd00::1]:443", []string{"2001:db8::42"}, "2001:db8::42"},
		{"IPv4-mapped peer", "[::ffff:10.1.2.3]:80", []string{"198.51.100.1"}, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := l.clientAddr(r); got != netip.MustParseAddr(tc.want) {
				t.Fatalf("clientAddr = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestConnLimiter(t *testing.T) {
	l := newConnLimiter(3, 2)
	a, b := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	r1, err := l.acquire(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.acquire(a); err != nil {
		t.Fatal(err)
	}
	if _, err := l.acquire(a); err == nil {
		t.Fatal("third connection from one address admitted")
	}
	if _, err := l.acquire(b); err != nil {
		t.Fatal(err)
	}
	if _, err := l.acquire(netip.MustParseAddr("198.51.100.3")); err == nil {
		t.Fatal("fourth connection admitted at a limit of 3")
	}
	r1()
	r1() // idempotent
	if _, err := l.acquire(a); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	// IPv6 addresses in one /64 share a count.
	l6 := newConnLimiter(0, 1)
	if _, err := l6.acquire(netip.MustParseAddr("2001:db8:1:2::1")); err != nil {
		t.Fatal(err)
	}
	if _, err := l6.acquire(netip.MustParseAddr("2001:db8:1:2:ffff::9")); err == nil {
		t.Fatal("second address of the same /64 admitted at a per-address limit of 1")
	}
	if _, err := l6.acquire(netip.MustParseAddr("2001:db8:1:3::1")); err != nil {
		t.Fatal(err)
	}
}

// TestConnectionLimits runs a real gateway behind a "proxy" (the test, on
// 127.0.0.1, trusted): per-address and per-replica limits answer 429
// before the upgrade, count by the X-Forwarded-For client, and free a slot
// when a connection ends.
func TestConnectionLimits(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_MAX_CONNECTIONS_PER_IP=2", "GATEWAY_MAX_CONNECTIONS=5",
		"GATEWAY_TRUSTED_PROXIES=127.0.0.1/32")
	url := secURL(g, "r", "role=view&format=binary")
	from := func(xff string) http.Header { return http.Header{"X-Forwarded-For": {xff}} }

	first := testenv.Dial(t, url, from("198.51.100.1"))
	testenv.Dial(t, url, from("198.51.100.1"))
	_, status, body, _ := testenv.TryDial(t, url, from("198.51.100.1"))
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too many connections from your address") {
		t.Fatalf("third connection from one client: %d %q", status, body)
	}
	testenv.Dial(t, url, from("198.51.100.1, 198.51.100.2")) // forged left part: the client is .2
	testenv.Dial(t, url, from("198.51.100.2"))
	_, status, _, _ = testenv.TryDial(t, url, from("198.51.100.2"))
	if status != http.StatusTooManyRequests {
		t.Fatalf("third connection from .2 (one with a forged XFF): %d", status)
	}
	testenv.Dial(t, url, from("198.51.100.3, 127.0.0.1")) // a trusted hop is skipped: the client is .3
	_, status, body, _ = testenv.TryDial(t, url, from("198.51.100.4"))
	if status != http.StatusTooManyRequests || !strings.Contains(body, "connection limit") {
		t.Fatalf("sixth connection at a replica limit of 5: %d %q", status, body)
	}
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="too_many_connections_per_ip"}`, 2)
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="too_many_connections"}`, 1)

	// Closing a connection frees its slot.
	_ = first.Close(websocket.StatusNormalClosure, "")
	testenv.WaitFor(t, secWait, "the closed connection's slot to free", func() error {
		c, status, _, err := testenv.TryDial(t, url, from("198.51.100.1"))
		if err != nil {
			return fmt.Errorf("status %d: %v", status, err)
		}
		_ = c.CloseNow()
		return nil
	})
}

// TestForwardedForFromUntrustedPeer: without GATEWAY_TRUSTED_PROXIES a
// client cannot dodge the per-address limit with X-Forwarded-For, and the
// gateway warns once that it ignores the header.
func TestForwardedForFromUntrustedPeer(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_MAX_CONNECTIONS_PER_IP=2")
	url := secURL(g, "r", "role=view")
	for i := 1; i <= 2; i++ {
		testenv.Dial(t, url, http.Header{"X-Forwarded-For": {fmt.Sprintf("198.51.100.%d", i)}})
	}
	if _, status, _, _ := testenv.TryDial(t, url, http.Header{"X-Forwarded-For": {"198.51.100.3"}}); status != http.StatusTooManyRequests {
		t.Fatalf("third connection from 127.0.0.1 with a new XFF: %d, want 429", status)
	}
	testenv.WaitFor(t, secWait, "one X-Forwarded-For warning", func() error {
		if n := strings.Count(g.Proc.Output(), "ignoring X-Forwarded-For"); n != 1 {
			return fmt.Errorf("%d warnings", n)
		}
		return nil
	})
}

// TestViewerCannotPush: a viewer that sends a data message, small or large,
// is closed with 1008 and its connection is gone at once on the gateway
// (coder/websocket's CloseRead kept it 15 s); the room's other viewer keeps
// receiving frames.
func TestViewerCannotPush(t *testing.T) {
	g := testenv.StartGateway(t)
	other := testenv.Dial(t, secURL(g, "r", "role=view&format=binary"), nil)
	p := secStartPublisher(t, testenv.Dial(t, secURL(g, "r", "role=publish"), nil), 20*time.Millisecond)
	secWaitFrameAfter(t, other, 0)
	for _, tc := range []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
		big  bool // larger than socket buffers take at once
	}{
		{"text", websocket.MessageText, []byte("hello"), false},
		{"a frame", websocket.MessageBinary, frames.AppendBinary(nil, 1, time.Now(), secJPEG(t, 1, 1000)), false},
		{"64 KiB, over the 1 KiB read limit", websocket.MessageBinary, make([]byte, 64<<10), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := testenv.Dial(t, secURL(g, "r", "role=view&format=binary"), nil)
			testenv.WaitMetric(t, secWait, g.URL(), `framecast_connections{role="view"}`, 2)
			werr := v.Write(context.Background(), tc.typ, tc.msg)
			err := secCloseOf(v, secWait)
			if werr == nil || !tc.big {
				secExpectClose(t, err, websocket.StatusPolicyViolation, "unexpected data message")
			} // else the gateway closed while the payload was still on its way: the client may see a reset
			testenv.WaitMetric(t, secWait, g.URL(), `framecast_connections{role="view"}`, 1)
			secWaitFrameAfter(t, other, p.Seq())
			p.secAlive(t)
		})
	}
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="viewer_sent_data"}`, 3)
}

// TestMaxRooms: with GATEWAY_MAX_ROOMS=2, a publisher (at its first frame),
// a viewer or a seed connection of a third room is closed with 1013 and a
// reason; once a room empties, the third room works.
func TestMaxRooms(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_MAX_ROOMS=2")
	jpg := secJPEG(t, 1, 500)
	// A publisher holds a room from its first frame.
	first := testenv.Dial(t, secURL(g, "room1", "role=publish"), nil)
	second := testenv.Dial(t, secURL(g, "room2", "role=publish"), nil)
	for _, c := range []*testenv.Client{first, second} {
		if err := c.Write(t.Context(), websocket.MessageBinary, jpg); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, secWait, "2 rooms", func() error {
		if n := testenv.Metric(t, g.URL(), "framecast_rooms"); n != 2 {
			return fmt.Errorf("%v rooms", n)
		}
		return nil
	})
	for _, q := range []string{"role=publish", "role=view&format=binary", ""} {
		c := testenv.Dial(t, secURL(g, "room3", q), nil)
		if q == "role=publish" {
			if err := c.Write(t.Context(), websocket.MessageBinary, jpg); err != nil {
				t.Fatal(err)
			}
		}
		secExpectClose(t, secCloseOf(c, secWait), websocket.StatusTryAgainLater, "too many rooms")
	}
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="too_many_rooms"}`, 3)
	_ = first.Close(websocket.StatusNormalClosure, "")
	testenv.WaitFor(t, secWait, "room3 to open once room1 is gone", func() error {
		v, _, _, err := testenv.TryDial(t, secURL(g, "room3", "role=view&format=binary"), nil)
		if err != nil {
			return err
		}
		defer v.CloseNow()
		p, _, _, err := testenv.TryDial(t, secURL(g, "room3", "role=publish"), nil)
		if err != nil {
			return err
		}
		defer p.CloseNow()
		if err := p.Write(t.Context(), websocket.MessageBinary, secJPEG(t, 3, 500)); err != nil {
			return err
		}
		_, err = v.ReadFrame(2 * time.Second)
		return err
	})
}
