package testenv

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/promtext"
	"github.com/framecast/framecast/pkg/frames"
)

// The tests' client of a gateway: dial, read frames, publish, read
// /metrics. One copy for internal/gateway, internal/faults and internal/e2e.

// clientTimeout bounds one dial, one write and one /metrics read: -race
// builds on a shared machine are slow.
const clientTimeout = 10 * time.Second

// noKeepAlive is the HTTP client of handshakes and scrapes. Without
// keep-alives no idle connection holds a goroutine in a gateway between two
// requests, so its go_goroutines counts only its own (plus the one serving
// the scrape).
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// Client is a real WebSocket connection to a gateway: a viewer, a publisher
// or the seed's two-way connection. The embedded Conn is coder/websocket's:
// one goroutine may read while another writes, no more. The connection is
// dropped when the test ends.
type Client struct {
	*websocket.Conn
	Resp *http.Response // the handshake's response

	binary bool // the URL asks for format=binary: ReadFrame wants binary messages
}

// TryDial opens a WebSocket to url with extra request headers. On success
// status is 101; on a refused handshake it returns the HTTP status and body
// with the error (status 0 if no response came).
func TryDial(t testing.TB, url string, hdr http.Header) (c *Client, status int, body string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: noKeepAlive, HTTPHeader: hdr})
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			return nil, resp.StatusCode, strings.TrimSpace(string(b)), fmt.Errorf("failed to connect to %s: %w", url, err)
		}
		return nil, 0, "", fmt.Errorf("failed to connect to %s: %w", url, err)
	}
	conn.SetReadLimit(16 << 20) // far above any frame
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &Client{Conn: conn, Resp: resp, binary: formatOf(url) == "binary"}, http.StatusSwitchingProtocols, "", nil
}

// Dial is TryDial that fails the test if the handshake fails.
func Dial(t testing.TB, url string, hdr http.Header) *Client {
	t.Helper()
	c, status, body, err := TryDial(t, url, hdr)
	if err != nil {
		t.Fatalf("%v (status %d: %s)", err, status, body)
	}
	return c
}

func formatOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Query().Get("format")
}

// SendBinary writes one binary message.
func (c *Client) SendBinary(msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	return c.Write(ctx, websocket.MessageBinary, msg)
}

// SendText writes one text message.
func (c *Client) SendText(msg string) error {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, []byte(msg))
}

// ReadMessage returns the next message within timeout.
func (c *Client) ReadMessage(timeout time.Duration) (websocket.MessageType, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Read(ctx)
}

// ReadFrame reads until an image frame arrives within timeout, skipping
// offline events, and decodes it: a binary message (header + JPEG) when the
// URL asked for format=binary, else the seed's JSON envelope. A message of
// the other type is an error.
func (c *Client) ReadFrame(timeout time.Duration) (*frames.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.ReadFrameContext(ctx)
}

// ReadFrameContext is ReadFrame until ctx ends.
func (c *Client) ReadFrameContext(ctx context.Context) (*frames.Frame, error) {
	for {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		if want := c.messageType(); typ != want {
			return nil, fmt.Errorf("got a %v message, want %v", typ, want)
		}
		if typ == websocket.MessageText {
			return ParseJSONFrame(msg)
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

func (c *Client) messageType() websocket.MessageType {
	if c.binary {
		return websocket.MessageBinary
	}
	return websocket.MessageText
}

// ParseJSONFrame decodes the seed's envelope the way the seed's page does:
// JSON.parse, then the JPEG data URL in "message" (with framecast's "seq"
// and "ts").
func ParseJSONFrame(msg []byte) (*frames.Frame, error) {
	var env struct {
		Message string `json:"message"`
		Seq     uint64 `json:"seq"`
		TS      int64  `json:"ts"`
	}
	if err := json.Unmarshal(msg, &env); err != nil {
		return nil, fmt.Errorf("not the seed's JSON envelope: %w", err)
	}
	b64, ok := strings.CutPrefix(env.Message, "data:image/jpeg;base64,")
	if !ok {
		return nil, fmt.Errorf("message is not a JPEG data URL: %.40q", env.Message)
	}
	jpg, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("bad base64 in the data URL: %w", err)
	}
	return frames.New(frames.KindJPEG, env.Seq, time.UnixMicro(env.TS), jpg, 0)
}

// ReadUntilClosed reads and discards everything c receives from now on,
// which answers pings and the gateway's close handshake, and returns a
// channel that receives why the connection ended. Nothing else may read c
// afterwards.
func (c *Client) ReadUntilClosed() <-chan error {
	ended := make(chan error, 1)
	go func() {
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				ended <- err
				return
			}
		}
	}()
	return ended
}

// Publisher sends a frame on a Client at a fixed period, in the background,
// until Stop or a failed write, so tests need not know when subscriptions
// take effect. Frames are numbered 1, 2, 3...
type Publisher struct {
	seq  atomic.Uint64 // last frame sent
	stop chan struct{}
	once sync.Once
	done chan struct{}
}

// Publish starts sending jpeg(seq) every period: as header + JPEG, or with
// seed as exactly what the seed's send_video.py sends, a text
// "data:image/jpg;base64,..." message. The publisher stops when the test
// ends; the connection stays open until then.
func (c *Client) Publish(t testing.TB, every time.Duration, seed bool, jpeg func(seq uint64) []byte) *Publisher {
	var msg []byte
	return publishEvery(t, every, func(seq uint64) error {
		jpg := jpeg(seq)
		if seed {
			return c.SendText("data:image/jpg;base64," + base64.StdEncoding.EncodeToString(jpg))
		}
		msg = frames.AppendBinary(msg[:0], seq, time.Now(), jpg)
		return c.SendBinary(msg)
	})
}

// PublishTimed is Publish (binary) that tells sent each frame's sequence
// number and capture time, as the header carries it (µs), before sending
// it: tests that check recorded capture times keep them.
func (c *Client) PublishTimed(t testing.TB, every time.Duration, jpeg func(seq uint64) []byte, sent func(seq uint64, captured time.Time)) *Publisher {
	var msg []byte
	return publishEvery(t, every, func(seq uint64) error {
		at := time.Now().Truncate(time.Microsecond)
		sent(seq, at)
		msg = frames.AppendBinary(msg[:0], seq, at, jpeg(seq))
		return c.SendBinary(msg)
	})
}

// publishEvery calls send(seq) for seq 1, 2, 3... every period on a
// goroutine of its own, until Stop, the test's end or a failed send.
func publishEvery(t testing.TB, every time.Duration, send func(seq uint64) error) *Publisher {
	p := &Publisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			if send(seq) != nil {
				return
			}
			p.seq.Store(seq)
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

// PublishLayered starts sending, every period, one picture as a version-2
// message per layer: layer i is jpegs[i] (a real JPEG, whose size the
// layer block states), all with the picture's sequence number. room is
// what the layer blocks name (the URL's room, or "").
func (c *Client) PublishLayered(t testing.TB, every time.Duration, room string, jpegs [][]byte) *Publisher {
	t.Helper()
	sizes := make([][2]int, len(jpegs))
	for i, j := range jpegs {
		w, h, err := frames.JPEGSize(j)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		sizes[i] = [2]int{w, h}
	}
	p := &Publisher{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		var msg []byte
		for seq := uint64(1); ; seq++ {
			now := time.Now()
			for i, j := range jpegs {
				msg = frames.AppendLayered(msg[:0], room, i, sizes[i][0], sizes[i][1], seq, now, j)
				if err := c.SendBinary(msg); err != nil {
					return
				}
			}
			p.seq.Store(seq)
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

// LayerJPEGs returns a real JPEG per width, each 16:9.
func LayerJPEGs(t testing.TB, widths ...int) [][]byte {
	out := make([][]byte, len(widths))
	for i, w := range widths {
		out[i] = JPEG(t, w, w*9/16, i, 0)
	}
	return out
}

// Seq returns the number of the last frame sent.
func (p *Publisher) Seq() uint64 { return p.seq.Load() }

// Stop stops sending and waits for a write in progress. It is idempotent.
func (p *Publisher) Stop() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

// ScrapeMetrics reads the /metrics of the gateway at baseURL
// (http://host:port) within timeout.
func ScrapeMetrics(baseURL string, timeout time.Duration) (promtext.Metrics, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return promtext.Scrape(ctx, baseURL+"/metrics")
}

// Metric returns the sum of the samples of series on the gateway at
// baseURL (see promtext.Metrics.Sum), 0 if it has none; it fails the test if
// /metrics cannot be read.
func Metric(t testing.TB, baseURL, series string, match ...string) float64 {
	t.Helper()
	m, err := ScrapeMetrics(baseURL, clientTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return m.Sum(series, match...)
}

// WaitMetric waits up to timeout until Metric(series) equals want.
func WaitMetric(t testing.TB, timeout time.Duration, baseURL, series string, want float64) {
	t.Helper()
	WaitFor(t, timeout, series, func() error {
		if got := Metric(t, baseURL, series); got != want {
			return fmt.Errorf("%s = %v, want %v", series, got, want)
		}
		return nil
	})
}
