package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// startMessage starts a binary message on c with one non-final fragment of
// n bytes (the rest of the message never comes), from a goroutine.
func startMessage(t *testing.T, c *websocket.Conn, p []byte) {
	t.Helper()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w, err := c.Writer(ctx, websocket.MessageBinary)
		if err == nil {
			_, _ = w.Write(p) // a fragment without FIN: the message stays open
		}
	}()
}

// closeCode waits for the gateway to close c and returns the close status.
func closeCode(t *testing.T, c *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
}

// TestSeedConnectionWithoutTokenReadsLikeAViewer is the regression test for
// the unauthenticated memory pin: with GATEWAY_AUTH=publish, a seed
// connection without a token (admitted as a viewer that may publish once
// it shows a token) that starts a 2.7 MB message is closed with 1008 after
// a viewer's read limit, not buffered.
func TestSeedConnectionWithoutTokenReadsLikeAViewer(t *testing.T) {
	_, ts := startInProcess(t, func(c *gateway.Config) {
		c.Auth = gateway.AuthPublish
		c.JWTSecret = auth.Secret("hostile-test-secret-0123456789abcdefghij")
	})
	c := testenv.Dial(t, wsURL(ts.URL, "pin", ""), nil).Conn
	startMessage(t, c, bytes.Repeat([]byte{0xFF}, 2700<<10))
	if code := closeCode(t, c); code != websocket.StatusPolicyViolation {
		t.Fatalf("close status %d, want 1008", code)
	}
	testenv.WaitFor(t, 5*time.Second, "the close counted", func() error {
		if v := testenv.Metric(t, ts.URL, `framecast_connections_closed_total{reason="forbidden"}`); v != 1 {
			return fmt.Errorf("closed{forbidden} = %v", v)
		}
		return nil
	})
}

// TestUnfinishedMessageTimesOut: a message that does not end within
// GATEWAY_MESSAGE_TIMEOUT closes its connection with 1008.
func TestUnfinishedMessageTimesOut(t *testing.T) {
	_, ts := startInProcess(t, func(c *gateway.Config) { c.MessageTimeout = 300 * time.Millisecond })
	c := testenv.Dial(t, wsURL(ts.URL, "slow", "role=publish"), nil).Conn
	start := time.Now()
	startMessage(t, c, bytes.Repeat([]byte{0xFF}, 100<<10))
	if code := closeCode(t, c); code != websocket.StatusPolicyViolation {
		t.Fatalf("close status %d, want 1008", code)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("closed after %v, before the message timeout", d)
	}
	testenv.WaitFor(t, 5*time.Second, "the close counted", func() error {
		if v := testenv.Metric(t, ts.URL, `framecast_connections_closed_total{reason="message_timeout"}`); v != 1 {
			return fmt.Errorf("closed{message_timeout} = %v", v)
		}
		return nil
	})
}

// TestReadBudgetRefusesNewLargeMessages: once unfinished messages hold the
// replica's read budget, the next large message closes its connection with
// 1013, and publishers with ordinary frames keep publishing.
func TestReadBudgetRefusesNewLargeMessages(t *testing.T) {
	_, ts := startInProcess(t, func(c *gateway.Config) { c.ReadBudgetMB = 2 })
	viewer := testenv.Dial(t, wsURL(ts.URL, "budget", "role=view&format=binary"), nil)
	var hogs []*websocket.Conn
	for range 2 {
		c := testenv.Dial(t, wsURL(ts.URL, "hog", "role=publish"), nil).Conn
		startMessage(t, c, bytes.Repeat([]byte{0xFF}, 1500<<10))
		hogs = append(hogs, c)
	}
	refused := 0
	for _, c := range hogs {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, _, err := c.Read(ctx)
		cancel()
		if websocket.CloseStatus(err) == websocket.StatusTryAgainLater {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("%d of 2 messages of 1.5 MB refused under a 2 MB budget, want 1", refused)
	}
	pub := testenv.Dial(t, wsURL(ts.URL, "budget", "role=publish"), nil)
	if err := pub.SendBinary(frames.AppendBinary(nil, 1, time.Now(), testJPEG(t, 1, 10<<10))); err != nil {
		t.Fatal(err)
	}
	if f, err := viewer.ReadFrame(5 * time.Second); err != nil || f.Seq != 1 {
		t.Fatalf("an ordinary frame under a full budget: %v, %v", f, err)
	}
}

// TestMessageCutBetweenFragmentsIsNotAFrame: coder/websocket v1.8.15
// reports a connection that closed between two fragments of a message as
// the message's end; the gateway must not relay what it read as a frame.
func TestMessageCutBetweenFragmentsIsNotAFrame(t *testing.T) {
	_, ts := startInProcess(t, nil)
	viewer := testenv.Dial(t, wsURL(ts.URL, "cut", "role=view&format=binary"), nil)
	frame := func(seq uint64) []byte { return frames.AppendBinary(nil, seq, time.Now(), testJPEG(t, int(seq), 2000)) }

	// A raw client: the upgrade, then one binary fragment without FIN
	// holding a whole frame, then the TCP connection closes.
	cut, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET /ws/video/cut/?role=publish HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", strings.TrimPrefix(ts.URL, "http://"))
	if _, err := cut.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(cut)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v", resp, err)
	}
	payload := frame(1)
	// Binary, no FIN, masked with key 0 (RFC 6455 5.2), 16-bit length; then
	// a ping (control frames may come between fragments): its pong says
	// the gateway has read the whole fragment.
	msg := append([]byte{0x02, 0x80 | 126, byte(len(payload) >> 8), byte(len(payload)), 0, 0, 0, 0}, payload...)
	msg = append(msg, 0x89, 0x80, 0, 0, 0, 0)
	if _, err := cut.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = cut.SetReadDeadline(time.Now().Add(5 * time.Second))
	pong := make([]byte, 2)
	if _, err := io.ReadFull(br, pong); err != nil || pong[0] != 0x8A {
		t.Fatalf("no pong after the fragment: % x, %v", pong, err)
	}
	cut.Close()
	testenv.WaitFor(t, 5*time.Second, "the cut connection to end", func() error {
		if v := testenv.Metric(t, ts.URL, `framecast_connections{role="publish"}`); v != 0 {
			return fmt.Errorf("%v publishers", v)
		}
		return nil
	})
	// A whole message from another publisher is the next thing the viewer
	// gets: frame 1 was never relayed.
	pub := testenv.Dial(t, wsURL(ts.URL, "cut", "role=publish"), nil)
	if err := pub.SendBinary(frame(2)); err != nil {
		t.Fatal(err)
	}
	f, err := viewer.ReadFrame(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if f.Seq != 2 {
		t.Fatalf("viewer got frame %d first: the cut message was relayed", f.Seq)
	}
}

// TestIdleRoomCostsAboutOneFrame: rooms whose publisher sent one large frame
// and went idle (no viewers) hold about that frame, not read buffers and
// copies besides: at most 1.5 frames of heap per room.
func TestIdleRoomCostsAboutOneFrame(t *testing.T) {
	const rooms, size = 20, 2 << 20
	_, ts := startInProcess(t, func(c *gateway.Config) { c.MaxFrameBytes = 4 << 20 })
	jpg := testJPEG(t, 1, size)
	msg := frames.AppendBinary(nil, 1, time.Now(), jpg)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	for i := range rooms {
		pub := testenv.Dial(t, wsURL(ts.URL, fmt.Sprintf("idle%d", i), "role=publish"), nil)
		if err := pub.SendBinary(msg); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "every room's frame", func() error {
		if v := testenv.Metric(t, ts.URL, "framecast_frames_in_total"); v != rooms {
			return fmt.Errorf("%v frames in", v)
		}
		return nil
	})
	grew := float64(heap()) - float64(before)
	perRoom := grew / rooms / float64(len(msg))
	t.Logf("heap grew %.1f MB for %d rooms of a %d KB frame: %.2f frames per room", grew/1e6, rooms, len(msg)>>10, perRoom)
	if perRoom > 1.5 {
		t.Fatalf("an idle room holds %.2f frames of heap, want at most 1.5", perRoom)
	}
}

// TestRoomRateHoldsAcrossPublishers: several publishers of one room (each
// under its own rate) are allowed, but together they get no more than the
// room's rate; the excess is dropped and counted, and nobody is closed.
func TestRoomRateHoldsAcrossPublishers(t *testing.T) {
	const pubs, each, rate, burst = 4, 40, 20, 5
	_, ts := startInProcess(t, func(c *gateway.Config) { c.RoomRate, c.RoomBurst = rate, burst })
	msg := frames.AppendBinary(nil, 1, time.Now(), testJPEG(t, 1, 2000))
	start := time.Now()
	for range pubs {
		pub := testenv.Dial(t, wsURL(ts.URL, "flood", "role=publish"), nil)
		for range each {
			if err := pub.SendBinary(msg); err != nil {
				t.Fatal(err)
			}
		}
	}
	testenv.WaitFor(t, 10*time.Second, "every frame accounted for", func() error {
		in := testenv.Metric(t, ts.URL, "framecast_frames_in_total")
		dropped := testenv.Metric(t, ts.URL, `framecast_rejected_total{reason="room_rate"}`)
		if in+dropped != pubs*each {
			return fmt.Errorf("%v in + %v dropped of %d", in, dropped, pubs*each)
		}
		return nil
	})
	elapsed := time.Since(start).Seconds()
	in := testenv.Metric(t, ts.URL, "framecast_frames_in_total")
	if max := burst + rate*elapsed + 1; in > max || in < burst {
		t.Fatalf("room accepted %v frames in %.2f s, want %d to %.0f", in, elapsed, burst, max)
	}
	if v := testenv.Metric(t, ts.URL, "framecast_room_rate_dropped_total"); v != pubs*each-in {
		t.Fatalf("room_rate_dropped_total = %v, want %v", v, pubs*each-in)
	}
	if v := testenv.Metric(t, ts.URL, `framecast_connections{role="publish"}`); v != pubs {
		t.Fatalf("%v publishers connected, want all %d", v, pubs)
	}
}
