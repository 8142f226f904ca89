package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/loadgen"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// Clients of the fault tests: a binary viewer that records every message it
// receives, a publisher that records how long each of its writes took, and
// a /metrics reader. Each reads and writes with reused buffers, so the test
// process (under -race) does little per frame and measures the gateways,
// not itself.

// wsURL returns the WebSocket URL of room on the gateway at base
// (ws://host:port).
func wsURL(base, room, query string) string {
	return base + "/ws/video/" + room + "/?" + query
}

// message is one message a viewer received.
type message struct {
	at       time.Time // arrival
	kind     frames.Kind
	seq      uint64
	captured time.Time // from the header: the publisher's send time
	size     int       // bytes of the whole message, header included
}

// latency is the time from capture to arrival.
func (m message) latency() time.Duration { return m.at.Sub(m.captured) }

// viewer is a binary-format viewer (role=view&format=binary). Its read loop
// parses every message with frames.ParseBinary (header, SOI/EOI, the
// offline event's empty payload) and records it; a message that does not
// parse ends the loop with an error, which the test reports.
type viewer struct {
	name string
	conn *websocket.Conn
	done chan struct{}

	mu   sync.Mutex
	msgs []message // guarded by mu
	err  error     // guarded by mu: why the read loop ended
	bad  error     // guarded by mu: a message that did not parse, if one came
}

// startViewer connects a binary viewer of room on the gateway at base and
// starts its read loop. It is closed when the test ends.
func startViewer(t testing.TB, name, base, room string) *viewer {
	t.Helper()
	c := testenv.Dial(t, wsURL(base, room, "role=view&format=binary"), nil)
	v := &viewer{name: name, conn: c.Conn, done: make(chan struct{})}
	go v.run()
	t.Cleanup(func() {
		v.close()
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.bad != nil {
			t.Error(v.bad)
		}
	})
	return v
}

func (v *viewer) run() {
	defer close(v.done)
	var buf bytes.Buffer
	for {
		typ, r, err := v.conn.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			v.mu.Lock()
			v.err = err
			v.mu.Unlock()
			return
		}
		now := time.Now()
		f, err := frames.ParseBinary(buf.Bytes(), 0, time.Time{}, 0)
		switch {
		case err != nil:
		case typ != websocket.MessageBinary:
			err = fmt.Errorf("a %v message, want binary", typ)
		case buf.Bytes()[0] == 0xFF:
			err = fmt.Errorf("a bare JPEG, not a binary frame message")
		}
		v.mu.Lock()
		if err != nil {
			v.bad = fmt.Errorf("viewer %s got a bad message: %w", v.name, err)
			v.err = v.bad
			v.mu.Unlock()
			_ = v.conn.CloseNow()
			return
		}
		v.msgs = append(v.msgs, message{at: now, kind: f.Kind, seq: f.Seq, captured: f.Captured, size: buf.Len()})
		v.mu.Unlock()
	}
}

// close closes the connection normally and waits for the read loop.
func (v *viewer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go func() { <-ctx.Done(); _ = v.conn.CloseNow() }()
	_ = v.conn.Close(websocket.StatusNormalClosure, "")
	<-v.done
}

// ended returns why the read loop ended, or nil while it runs.
func (v *viewer) ended() error {
	select {
	case <-v.done:
	default:
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err == nil {
		return fmt.Errorf("viewer %s: connection ended", v.name)
	}
	return v.err
}

// find returns the first recorded message matching match.
func (v *viewer) find(match func(message) bool) (message, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, m := range v.msgs {
		if match(m) {
			return m, true
		}
	}
	return message{}, false
}

// await waits up to timeout for a message matching match and returns it.
// It fails the test if the viewer's connection ends first.
func (v *viewer) await(t testing.TB, timeout time.Duration, what string, match func(message) bool) message {
	t.Helper()
	var got message
	testenv.WaitFor(t, timeout, fmt.Sprintf("viewer %s: %s", v.name, what), func() error {
		if m, ok := v.find(match); ok {
			got = m
			return nil
		}
		if err := v.ended(); err != nil {
			t.Fatalf("viewer %s ended while waiting for %s: %v", v.name, what, err)
		}
		return fmt.Errorf("not yet (%d messages so far)", v.count())
	})
	return got
}

func (v *viewer) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.msgs)
}

// framesIn returns the JPEG frames that arrived in [from, to).
func (v *viewer) framesIn(from, to time.Time) []message {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []message
	for _, m := range v.msgs {
		if m.kind == frames.KindJPEG && !m.at.Before(from) && m.at.Before(to) {
			out = append(out, m)
		}
	}
	return out
}

// frameCapturedAfter matches a JPEG frame captured after t: proof that the
// relay carried something sent after t, not a frame already in flight.
func frameCapturedAfter(t time.Time) func(message) bool {
	return func(m message) bool { return m.kind == frames.KindJPEG && m.captured.After(t) }
}

// publisher sends one prebuilt binary frame message (header + a JPEG-shaped
// payload, see loadgen.MakeJPEG) at a fixed rate, rewriting the header in
// place with the sequence number and the send time as capture time. It
// records how long every write took: a gateway that stopped reading would
// show here once the socket buffers between them filled.
type publisher struct {
	name string
	conn *websocket.Conn
	msg  []byte
	fps  float64

	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	seq atomic.Uint64 // last sequence number sent

	mu     sync.Mutex
	writes []write // guarded by mu
	err    error   // guarded by mu: a failed write, which ends the loop
}

// write is one frame write of a publisher.
type write struct {
	at   time.Time // start
	took time.Duration
}

// startPublisher connects a publisher (role=publish) of room on the gateway
// at base and sends size-byte frames at fps, numbered from firstSeq.
func startPublisher(t testing.TB, name, base, room string, fps float64, size int, firstSeq uint64) *publisher {
	t.Helper()
	c := testenv.Dial(t, wsURL(base, room, "role=publish"), nil).Conn
	// Nothing is sent to publishers, but the close handshake and pongs are
	// processed only while something reads.
	c.CloseRead(context.Background())
	payload, err := loadgen.MakeJPEG(size, firstSeq)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &publisher{
		name: name, conn: c, fps: fps, cancel: cancel, done: make(chan struct{}),
		msg: frames.AppendBinary(make([]byte, 0, frames.HeaderSize+size), 0, time.Now(), payload),
	}
	p.seq.Store(firstSeq - 1)
	go p.run(ctx)
	t.Cleanup(func() { p.stop(false) })
	return p
}

func (p *publisher) run(ctx context.Context) {
	defer close(p.done)
	tick := time.NewTicker(time.Duration(float64(time.Second) / p.fps))
	defer tick.Stop()
	for {
		seq := p.seq.Load() + 1
		start := time.Now()
		frames.PutHeader(p.msg, frames.KindJPEG, seq, start)
		// Not ctx: cancelling a write's context makes coder/websocket drop
		// the connection, and stop decides how the connection ends. The
		// timeout only keeps a broken test from hanging.
		wctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := p.conn.Write(wctx, websocket.MessageBinary, p.msg)
		cancel()
		took := time.Since(start)
		p.mu.Lock()
		p.writes = append(p.writes, write{at: start, took: took})
		if err != nil {
			p.err = err
		}
		p.mu.Unlock()
		if err != nil {
			return
		}
		p.seq.Store(seq)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// stop stops sending and ends the connection: with a close handshake
// (1000) if graceful, else by dropping the TCP connection, as a camera
// that loses its network does. It is idempotent.
func (p *publisher) stop(graceful bool) {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		if graceful {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go func() { <-ctx.Done(); _ = p.conn.CloseNow() }()
			_ = p.conn.Close(websocket.StatusNormalClosure, "")
			return
		}
		_ = p.conn.CloseNow()
	})
}

// failure returns the error that ended the send loop, if any.
func (p *publisher) failure() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// writeStats returns the number of writes that started in [from, to) and
// the longest of them.
func (p *publisher) writeStats(from, to time.Time) (n int, longest time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.writes {
		if !w.at.Before(from) && w.at.Before(to) {
			n++
			longest = max(longest, w.took)
		}
	}
	return n, longest
}

// noKeepAlive is the tests' HTTP client. Without keep-alives no idle
// connection holds a goroutine in a gateway between two requests, so
// go_goroutines counts the gateway's own goroutines only (plus the one
// serving the scrape).
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// status GETs url and returns its status code.
func status(url string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// wantStatus returns an error unless GET url answers want.
func wantStatus(url string, want int) error {
	code, err := status(url, 3*time.Second)
	if err != nil {
		return err
	}
	if code != want {
		return fmt.Errorf("GET %s = %d, want %d", url, code, want)
	}
	return nil
}

// quantile returns the q-quantile (nearest rank) of ds, 0 if empty.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// latencies returns the capture-to-arrival latencies of msgs.
func latencies(msgs []message) []time.Duration {
	out := make([]time.Duration, len(msgs))
	for i, m := range msgs {
		out[i] = m.latency()
	}
	return out
}

// maxGap returns the longest time between two consecutive arrivals.
func maxGap(msgs []message) time.Duration {
	var g time.Duration
	for i := 1; i < len(msgs); i++ {
		g = max(g, msgs[i].at.Sub(msgs[i-1].at))
	}
	return g
}

// gatewayEnv is the environment every gateway of these tests gets, before
// a test's own settings (later entries win).
func gatewayEnv(extra ...string) []string {
	return append([]string{"GATEWAY_LOG_LEVEL=info"}, extra...)
}
