package gateway_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// testJPEG returns a real 64×48 JPEG whose pixels depend on n, padded to
// minSize bytes.
func testJPEG(t testing.TB, n, minSize int) []byte { return testenv.JPEG(t, 64, 48, n, minSize) }

// client is a real WebSocket client of a gateway.
type client struct {
	t    testing.TB
	conn *websocket.Conn
	resp *http.Response
}

func dial(t testing.TB, url string) *client {
	t.Helper()
	c, err := tryDial(t, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	return c
}

func tryDial(t testing.TB, url string, hdr http.Header) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: hdr})
	if err != nil {
		return &client{t: t, resp: resp}, err
	}
	conn.SetReadLimit(16 << 20)
	c := &client{t: t, conn: conn, resp: resp}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return c, nil
}

func (c *client) sendBinary(msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageBinary, msg)
}

func (c *client) sendText(msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, []byte(msg))
}

// read returns the next message within timeout.
func (c *client) read(timeout time.Duration) (websocket.MessageType, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.conn.Read(ctx)
}

// readFrame reads until an image frame arrives (skipping offline events)
// and decodes it from the binary or the JSON format.
func (c *client) readFrame(timeout time.Duration) (*frames.Frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		typ, msg, err := c.read(time.Until(deadline))
		if err != nil {
			return nil, err
		}
		if typ == websocket.MessageText {
			return parseJSONFrame(msg)
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

// parseJSONFrame decodes the seed's envelope the way the seed's page does:
// JSON.parse, then the data URL in "message".
func parseJSONFrame(msg []byte) (*frames.Frame, error) {
	var env struct {
		Message string `json:"message"`
		Seq     uint64 `json:"seq"`
		TS      int64  `json:"ts"`
	}
	if err := json.Unmarshal(msg, &env); err != nil {
		return nil, fmt.Errorf("not the seed's JSON envelope: %w", err)
	}
	if !strings.HasPrefix(env.Message, "data:image/jpeg;base64,") {
		return nil, fmt.Errorf("message is not a JPEG data URL: %.40q", env.Message)
	}
	jpg, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(env.Message, "data:image/jpeg;base64,"))
	if err != nil {
		return nil, err
	}
	return frames.New(frames.KindJPEG, env.Seq, time.UnixMicro(env.TS), jpg, 0)
}

// publisher sends frames in the background until stopped, so tests need
// not know when subscriptions become effective.
type publisher struct {
	stop chan struct{}
	done chan struct{}
}

func startPublishing(t testing.TB, c *client, every time.Duration, size int, seed bool) *publisher {
	p := &publisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			jpg := testJPEG(t, int(seq), size)
			var err error
			if seed {
				// Exactly what the seed's send_video.py sends.
				err = c.sendText("data:image/jpg;base64," + base64.StdEncoding.EncodeToString(jpg))
			} else {
				err = c.sendBinary(frames.AppendBinary(nil, seq, time.Now(), jpg))
			}
			if err != nil {
				return
			}
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(p.Stop)
	return p
}

func (p *publisher) Stop() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
}

// metric returns the value of one series from a gateway's /metrics.
func metric(t testing.TB, baseURL, series string) float64 {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, series+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, series+" "), "%g", &v)
			return v
		}
	}
	return 0
}
