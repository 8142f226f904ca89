package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
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

// msgSource yields a viewer's data messages.
type msgSource interface {
	// Next returns the next data message; it is valid until the next call.
	Next() ([]byte, error)
	// Close closes the connection; Next then fails. Any goroutine may call it.
	Close() error
}

// coderSource reads messages with coder/websocket: conn.Reader into one
// reused buffer (conn.Read would allocate a buffer per message).
type coderSource struct {
	conn *websocket.Conn
	buf  bytes.Buffer
}

func newCoderSource(conn *websocket.Conn, msgSize int) *coderSource {
	s := &coderSource{conn: conn}
	s.buf.Grow(msgSize + 4096)
	return s
}

func (s *coderSource) Next() ([]byte, error) {
	// A background context: a cancellable one costs coder/websocket a
	// context.AfterFunc per read. Close ends a blocked read.
	_, r, err := s.conn.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	s.buf.Reset()
	_, err = s.buf.ReadFrom(r)
	return s.buf.Bytes(), err
}

func (s *coderSource) Close() error { return s.conn.CloseNow() }

// viewer is one reading viewer. Its fields other than received are owned
// by its read loop until the loop returns.
type viewer struct {
	src   msgSource
	room  *roomState
	parse func([]byte) (seq uint64, captureUS int64, layer int, ok bool)

	hist     Histogram
	bytes    uint64
	maxGap   time.Duration
	last     time.Time
	received atomic.Uint64 // window frames, read live while draining
	bad      uint64        // messages that were not frames
	err      error         // why the loop ended
	lost     bool          // the loop ended before closing was set
	closing  *atomic.Bool  // set by the run before it closes the viewers

	// layer is the layer of the last frame (NoLayer: version 1, or no
	// frame yet: frames counts them); layerChanges counts frames whose
	// layer differs from the one before. control and layerMsgs count
	// the text control messages of v=2 connections, and of them the
	// "layer" announcements; they are not bad messages.
	layer        int
	frames       uint64
	layerChanges uint64
	control      uint64
	layerMsgs    uint64
	// configs counts H.264 decoder configurations (not pictures, not
	// bad messages); their bytes count in bytes when they fall in the
	// window.
	configs uint64

	// onFrame, if set, is called with the sequence number of every frame
	// (benchmarks use it to pace their publisher).
	onFrame func(seq uint64)
}

func newViewer(src msgSource, room *roomState, format string) *viewer {
	v := &viewer{src: src, room: room, parse: ParseFrame, layer: NoLayer}
	if format == FormatJSON {
		v.parse = parseJSONLayer
	}
	return v
}

var layerMsgType = []byte(`"type":"layer"`)

// endedOn names the layer of the viewer's last frame, as
// GroupReport.EndedOn counts them.
func (v *viewer) endedOn() string {
	switch {
	case v.frames == 0:
		return "none"
	case v.layer == NoLayer:
		return "v1"
	}
	return strconv.Itoa(v.layer)
}

// run reads messages until the connection ends, looking at each one's
// header only.
func (v *viewer) run() {
	for {
		msg, err := v.src.Next()
		if err != nil {
			v.err = err
			v.lost = v.closing == nil || !v.closing.Load()
			return
		}
		now := time.Now()
		seq, ts, layer, ok := v.parse(msg)
		if !ok {
			// Frames start with their version byte (1 or 2), the seed's
			// envelope with {"message": a v=2 connection's control
			// messages are the other JSON objects.
			if len(msg) > 0 && msg[0] == '{' && !bytes.HasPrefix(msg, jsonPrefix) {
				v.control++
				if bytes.Contains(msg, layerMsgType) {
					v.layerMsgs++
				}
				continue
			}
			if len(msg) > 0 && msg[0] == frames.VersionLayered {
				if k, cseq, _, _, ok := ParseMessage(msg); ok && k == frames.KindH264Config {
					v.configs++
					if from := v.room.from.Load(); from != 0 && cseq >= from {
						v.bytes += uint64(len(msg))
					}
					continue
				}
			}
			v.bad++
			continue
		}
		if layer != v.layer {
			if v.frames > 0 {
				v.layerChanges++
			}
			v.layer = layer
		}
		v.frames++
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

// dialViewer opens a viewer of room on the gateway at base; extra, if not
// empty, is appended to the query (a group's layer choice).
func (d *dialer) dialViewer(ctx context.Context, base, room, format, extra string, msgSize int) (msgSource, error) {
	query := "role=view&format=" + format
	if extra != "" {
		query += "&" + extra
	}
	c, err := d.dial(ctx, base, room, query)
	if err != nil {
		return nil, err
	}
	return newCoderSource(c, msgSize), nil
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
type connected[T any] struct {
	conns  []T    // in order
	ok     []bool // whether conns[i] connected
	failed int
	first  error // the first failure
	took   time.Duration
}

// connectAll opens n connections, the i-th with open(i), at most rate per
// second (0: no cap) and conc at a time.
func connectAll[T any](ctx context.Context, n int, rate float64, conc int,
	open func(ctx context.Context, i int) (T, error)) connected[T] {
	conns := make([]T, n)
	ok := make([]bool, n)
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
				ok[i] = errs[i] == nil
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
		if err == nil && !ok[i] {
			err = ctx.Err()
			if err == nil {
				err = errors.New("not attempted")
			}
		}
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	return connected[T]{conns: conns, ok: ok, failed: failed, first: first, took: took}
}
