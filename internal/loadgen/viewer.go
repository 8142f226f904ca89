package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// readLimit is the viewers' WebSocket read limit: far above any frame, so a
// large -size never trips coder/websocket's 32 KiB default.
const readLimit = 64 << 20

// dialTimeout bounds one viewer or publisher handshake.
const dialTimeout = 15 * time.Second

// roomState is what a room's publisher and viewers share.
type roomState struct {
	name string
	// from is the first sequence number of the measured window, 0 while
	// warming up. The publisher stores it before sending that frame, so a
	// viewer never sees a window frame before it can tell it is one.
	from atomic.Uint64
	// sent counts frames sent in the window.
	sent atomic.Uint64
	// viewers is the number of reading viewers of the room.
	viewers int
}

// viewer is one reading viewer. Its fields other than received are owned
// by its read loop until the loop returns.
type viewer struct {
	conn  *websocket.Conn
	room  *roomState
	parse func([]byte) (uint64, int64, bool)

	buf      bytes.Buffer
	hist     Histogram
	bytes    uint64
	maxGap   time.Duration
	last     time.Time
	received atomic.Uint64 // window frames, read live while draining
	bad      uint64        // messages that were not frames
	err      error         // why the loop ended
	lost     bool          // the loop ended before closing was set
	closing  *atomic.Bool  // set by the run before it closes the viewers

	// onFrame, if set, is called with the sequence number of every frame
	// (benchmarks use it to pace their publisher).
	onFrame func(seq uint64)
}

func newViewer(conn *websocket.Conn, room *roomState, format string, msgSize int) *viewer {
	v := &viewer{conn: conn, room: room, parse: ParseBinaryFrame}
	if format == FormatJSON {
		v.parse = ParseJSONFrame
	}
	v.buf.Grow(msgSize + 4096)
	return v
}

// run reads messages until the connection ends. It reads each message
// into the viewer's reused buffer (conn.Read would allocate one per
// message) and looks at the header only.
func (v *viewer) run() {
	// A background context: a cancellable one costs coder/websocket a
	// context.AfterFunc per message. The loop ends when the conn is closed.
	ctx := context.Background()
	for {
		_, r, err := v.conn.Reader(ctx)
		if err == nil {
			v.buf.Reset()
			_, err = v.buf.ReadFrom(r)
		}
		if err != nil {
			v.err = err
			v.lost = v.closing == nil || !v.closing.Load()
			return
		}
		now := time.Now()
		msg := v.buf.Bytes()
		seq, ts, ok := v.parse(msg)
		if !ok {
			v.bad++
			continue
		}
		if v.onFrame != nil {
			v.onFrame(seq)
		}
		if from := v.room.from.Load(); from == 0 || seq < from {
			continue // warming up
		}
		v.hist.Record(now.UnixMicro() - ts)
		if !v.last.IsZero() {
			v.maxGap = max(v.maxGap, now.Sub(v.last))
		}
		v.last = now
		v.bytes += uint64(len(msg))
		v.received.Add(1)
	}
}

// dialer opens WebSocket connections to gateways.
type dialer struct {
	client *http.Client
}

func newDialer() *dialer {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = -1 // every connection is hijacked: nothing to keep
	return &dialer{client: &http.Client{Transport: tr}}
}

// dial opens a connection to room on the gateway at base with the given
// query ("role=view&format=binary").
func (d *dialer) dial(ctx context.Context, base, room, query string) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	u := base + "/ws/video/" + room + "/?" + query
	c, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient:      d.client,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("failed to connect to %s: %s: %w", u, resp.Status, err)
		}
		return nil, fmt.Errorf("failed to connect to %s: %w", u, err)
	}
	c.SetReadLimit(readLimit)
	return c, nil
}

// connected is the outcome of connectAll.
type connected struct {
	conns  []*websocket.Conn // in order; nil where a connection failed
	failed int
	first  error // the first failure
	took   time.Duration
}

// connectAll opens n connections, the i-th with open(i), at most rate per
// second (0: no cap) and conc at a time.
func connectAll(ctx context.Context, n int, rate float64, conc int,
	open func(ctx context.Context, i int) (*websocket.Conn, error)) connected {
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	var next atomic.Int64
	start := time.Now()
	done := make(chan struct{})
	workers := min(conc, max(n, 1))
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if rate > 0 {
					at := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
					if d := time.Until(at); d > 0 {
						t := time.NewTimer(d)
						select {
						case <-t.C:
						case <-ctx.Done():
							t.Stop()
							return
						}
					}
				}
				conns[i], errs[i] = open(ctx, i)
			}
		}()
	}
	for range workers {
		<-done
	}
	took := time.Since(start)
	failed := 0
	var first error
	for i, err := range errs {
		if err == nil && conns[i] == nil {
			err = ctx.Err()
		}
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	return connected{conns: conns, failed: failed, first: first, took: took}
}
