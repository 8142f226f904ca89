package gatewaytest_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/internal/testenv/gatewaytest"
)

// TestStart: the gateway serves its routes, and when the test that
// started it ends, its WebSockets close with 1001 (going away).
func TestStart(t *testing.T) {
	closed := make(chan error, 1)
	t.Run("gateway", func(t *testing.T) {
		g := gatewaytest.Start(t, gatewaytest.Options{})
		g.WaitReady(t, 5*time.Second)
		if err := testenv.HTTPStatus(g.URL()+"/healthz", http.StatusOK); err != nil {
			t.Fatal(err)
		}
		c, _, err := websocket.Dial(context.Background(), g.WSURL()+"/ws/video/lobby/?role=view&format=binary", nil)
		if err != nil {
			t.Fatal(err)
		}
		go func() { // reads until the close, answering it
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := c.Read(ctx)
			closed <- err
		}()
	})
	if err := <-closed; websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after the test ended: %v, want close 1001", err)
	}
}
