package gateway_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
)

// dialSmallBuffer dials a viewer whose TCP receive buffer is small, so that
// a viewer that does not read fills the path after a few frames.
func dialSmallBuffer(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: testenv.SmallReceiveClient(8 << 10)})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// TestViewerGoneWhileWritePendingIsNotTooSlow is the regression test for a
// viewer that disconnects while a write to it is pending: it is counted as
// gone at once, not as too slow (cut_off_total{reason="slow"}) when the
// write timeout passes.
func TestViewerGoneWhileWritePendingIsNotTooSlow(t *testing.T) {
	_, ts := startInProcess(t, func(c *gateway.Config) { c.WriteTimeout = 3 * time.Second })
	stuck := dialSmallBuffer(t, wsURL(ts.URL, "gone", "role=view&format=binary"))
	pub := testenv.Dial(t, wsURL(ts.URL, "gone", "role=publish"), nil)
	startPublishing(t, pub, 5*time.Millisecond, 256<<10, false)
	// The viewer's frames pile up: latest-frame-wins starts skipping.
	testenv.WaitFor(t, 10*time.Second, "the unread viewer to skip frames", func() error {
		if v := testenv.Metric(t, ts.URL, "framecast_frames_skipped_total"); v < 1 {
			return fmt.Errorf("%v skipped", v)
		}
		return nil
	})
	_ = stuck.CloseNow() // with unread data: the kernel answers with a reset
	testenv.WaitFor(t, 10*time.Second, "the viewer counted as gone", func() error {
		if v := testenv.Metric(t, ts.URL, `framecast_connections_closed_total{reason="gone"}`); v != 1 {
			return fmt.Errorf("closed{gone} = %v", v)
		}
		return nil
	})
	// Past the write timeout, it is still not "too slow".
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if v := testenv.Metric(t, ts.URL, `framecast_viewers_cut_off_total{reason="slow"}`); v != 0 {
			t.Fatalf("a viewer that disconnected was counted as too slow (%v)", v)
		}
		time.Sleep(200 * time.Millisecond) // watching for a negative over the window: no condition to wait for
	}
}

// TestCloseTable: the reasons a client can cause reach it as the close code
// and text docs/protocol.md lists, and each end is counted under its label
// once, with no ping timeout counted for connections the gateway closed.
func TestCloseTable(t *testing.T) {
	_, ts := startInProcess(t, func(c *gateway.Config) {
		c.PingInterval = 20 * time.Millisecond // pings in flight when the gateway closes
		c.MaxFrameBytes = 64 << 10
	})
	closes := func(label string) float64 {
		return testenv.Metric(t, ts.URL, fmt.Sprintf(`framecast_connections_closed_total{reason=%q}`, label))
	}
	for _, tc := range []struct {
		name, label string
		query       string
		send        func(c *testenv.Client) error
		code        websocket.StatusCode
	}{
		{"bad frame", "bad_frame", "role=publish",
			func(c *testenv.Client) error { return c.SendBinary([]byte("not a frame")) }, websocket.StatusInvalidFramePayloadData},
		{"too large", "too_large", "role=publish",
			func(c *testenv.Client) error { return c.SendText(strings.Repeat("x", 2<<20)) }, websocket.StatusMessageTooBig},
		{"viewer sends data", "viewer_sent_data", "role=view",
			func(c *testenv.Client) error { return c.SendText("hello") }, websocket.StatusPolicyViolation},
		{"peer closes", "normal", "role=view",
			func(c *testenv.Client) error { return c.Conn.Close(websocket.StatusNormalClosure, "bye") }, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := closes(tc.label)
			c := testenv.Dial(t, wsURL(ts.URL, "closes", tc.query), nil)
			_ = tc.send(c)
			if tc.code != -1 {
				_, _, err := c.Conn.Read(context.Background())
				if got := websocket.CloseStatus(err); got != tc.code {
					t.Fatalf("close status %d (%v), want %d", got, err, tc.code)
				}
			}
			testenv.WaitFor(t, 10*time.Second, "the close counted", func() error {
				if got := closes(tc.label); got != before+1 {
					return fmt.Errorf("closed{%s} = %v, want %v", tc.label, got, before+1)
				}
				return nil
			})
		})
	}
	if v := testenv.Metric(t, ts.URL, `framecast_viewers_cut_off_total{reason="ping_timeout"}`); v != 0 {
		t.Fatalf("%v connections the gateway closed were counted as ping timeouts", v)
	}
}

// TestCloseTableIsDocumented: docs/protocol.md lists every label of the
// gateway's close table, so the doc and the code cannot drift apart.
func TestCloseTableIsDocumented(t *testing.T) {
	doc, err := os.ReadFile(testenv.RepoRoot(t) + "/docs/protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	labels := gateway.CloseLabels()
	if len(labels) < 10 {
		t.Fatalf("close table has %d labels", len(labels))
	}
	seen := map[string]bool{}
	for _, l := range labels {
		if seen[l] {
			t.Fatalf("label %q twice in the close table", l)
		}
		seen[l] = true
		if !regexp.MustCompile("(?m)^\\|.*`" + regexp.QuoteMeta(l) + "`.*\\|").Match(doc) {
			t.Errorf("docs/protocol.md has no table row for close reason %q", l)
		}
	}
}
