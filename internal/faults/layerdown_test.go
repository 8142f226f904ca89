package faults

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
)

// TestReplicaCutOffFromRedis: a replica that loses Redis while the others
// keep it refuses new connections (503), then closes its own (1013,
// layer_down) so that clients reconnect to a replica that relays; once
// Redis is back it serves again.
func TestReplicaCutOffFromRedis(t *testing.T) {
	r := testenv.StartRedis(t)
	proxy := testenv.StartProxy(t, r.Addr(), 0)
	cut := testenv.StartGateway(t, "GATEWAY_REDIS_URL=redis://"+proxy.Addr()+"/0", "GATEWAY_LAYER_DOWN_CLOSE=1s")
	other := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	cut.WaitReady(t, 5*time.Second)
	other.WaitReady(t, 5*time.Second)
	ws := func(g *testenv.Gateway, query string) string { return g.WSURL() + "/ws/video/cam/?" + query }
	viewer := testenv.Dial(t, ws(cut, "role=view&format=binary"), nil)
	closed := viewer.ReadUntilClosed()
	stream, err := http.Get(cut.URL() + "/video/cam/stream.mjpg")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	streamEnded := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := stream.Body.Read(buf); err != nil {
				close(streamEnded)
				return
			}
		}
	}()

	at := time.Now()
	proxy.Cut()
	testenv.WaitFor(t, 10*time.Second, "/readyz 503 on the cut replica", func() error {
		return testenv.HTTPStatus(cut.URL()+"/readyz", http.StatusServiceUnavailable)
	})
	testenv.WaitFor(t, 10*time.Second, "new WebSockets refused with 503", func() error {
		_, status, _, err := testenv.TryDial(t, ws(cut, "role=view"), nil)
		if err == nil || status != http.StatusServiceUnavailable {
			return fmt.Errorf("dial: status %d, %v", status, err)
		}
		return nil
	})
	select {
	case err := <-closed:
		if code := websocket.CloseStatus(err); code != websocket.StatusTryAgainLater {
			t.Fatalf("viewer closed with %d (%v), want 1013", code, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the cut replica kept its viewer")
	}
	select {
	case <-streamEnded:
	case <-time.After(10 * time.Second):
		t.Fatal("the cut replica kept its MJPEG stream")
	}
	t.Logf("viewer closed %.2f s after the cut", time.Since(at).Seconds())
	// Both ends count: the WebSocket's and the MJPEG stream's (every
	// connection's end goes through the close table).
	testenv.WaitMetric(t, 5*time.Second, cut.URL(), `framecast_connections_closed_total{reason="layer_down"}`, 2)
	// The other replica never noticed.
	if _, status, _, err := testenv.TryDial(t, ws(other, "role=view"), nil); err != nil {
		t.Fatalf("the healthy replica refused a viewer: %d %v", status, err)
	}

	proxy.Restore()
	testenv.WaitFor(t, 15*time.Second, "the cut replica serving again", func() error {
		c, status, _, err := testenv.TryDial(t, ws(cut, "role=view"), nil)
		if err != nil {
			return fmt.Errorf("dial: %d %v", status, err)
		}
		_ = c.CloseNow()
		return nil
	})
	// And it relays again: a frame published on the other replica reaches
	// a viewer on it.
	v := testenv.Dial(t, ws(cut, "role=view&format=binary"), nil)
	pub := testenv.Dial(t, ws(other, "role=publish"), nil)
	p := pub.Publish(t, 50*time.Millisecond, false, func(seq uint64) []byte { return testenv.JPEG(t, 32, 24, int(seq), 1000) })
	defer p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := v.ReadFrameContext(ctx); err != nil {
		t.Fatalf("no frame on the replica after Redis came back: %v", err)
	}
}
