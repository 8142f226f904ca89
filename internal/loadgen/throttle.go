package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// ThrottleProxy is a loopback TCP proxy in the load generator's process
// that stands for a slow link: every connection accepted on it is joined to
// a new connection to the target (a gateway), and the bytes from the target
// to the client (gateway → viewer) go through a token bucket of that
// connection's own, Rate bytes a second; the other direction is copied as
// it comes. It does not look at what it carries, so one proxy serves one
// target; viewers connect to ws://Addr() instead of the gateway.
//
// Pacing is done in small reads (at most throttleChunk bytes, then a wait
// for their tokens), and the socket to the target gets a small receive
// buffer (throttleRcvBuf) and Ethernet-sized segments (throttleMSS), so
// the target feels the slow link within a
// fraction of a second, as a gateway does a viewer on a thin uplink: its
// writes stop being taken whole and its latest-frame-wins queue skips,
// instead of megabytes of loopback buffers hiding the limit for seconds.
//
// Close may be called from any goroutine, once or more.
type ThrottleProxy struct {
	ln     net.Listener
	target string
	rate   float64 // bytes per second per connection

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

const (
	// throttleChunk is the largest read the paced direction makes.
	throttleChunk = 4096
	// throttleBurst is how much time's worth of tokens a bucket holds: it
	// absorbs a late wake-up of the pacing goroutine without letting the
	// link run above its rate for longer than that.
	throttleBurst = 20 * time.Millisecond
	// throttleRcvBuf is the receive buffer asked for on the socket to the
	// target (Linux doubles it for its bookkeeping).
	throttleRcvBuf = 32 << 10
	// throttleMSS is the segment size the socket to the target announces,
	// an Ethernet link's. Loopback's 64 KiB segments make the target's
	// send buffer autotune to megabytes from its first congestion window
	// (10 segments): measured, 2.8 MB queued in the gateway's socket, 3.5 s
	// of latency at 800 kB/s, and a gateway that never saw the link slow.
	throttleMSS = 1460
)

// ListenThrottle starts a throttling proxy to target (host:port) on a free
// loopback port, pacing target → client to bytesPerSec per connection. It
// runs until Close.
func ListenThrottle(target string, bytesPerSec float64) (*ThrottleProxy, error) {
	if bytesPerSec <= 0 {
		return nil, fmt.Errorf("loadgen: throttle rate %v bytes/s must be positive", bytesPerSec)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen for the throttling proxy: %w", err)
	}
	p := &ThrottleProxy{ln: ln, target: target, rate: bytesPerSec, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *ThrottleProxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines to end.
func (p *ThrottleProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track adds c to the connections Close closes; false if the proxy is
// closed already (c is then closed).
func (p *ThrottleProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *ThrottleProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		_ = c.Close()
	}
}

func (p *ThrottleProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// serve joins client to a new connection to the target until either ends.
func (p *ThrottleProxy) serve(client net.Conn) {
	d := net.Dialer{Timeout: dialTimeout, Control: func(_, _ string, rc syscall.RawConn) error {
		// Before connect, so that the window the target sees is small
		// from the first byte.
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = errors.Join(
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, throttleRcvBuf),
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, throttleMSS))
		}); err != nil {
			return err
		}
		return serr
	}}
	up, err := d.DialContext(context.Background(), "tcp", p.target)
	if err != nil {
		p.untrack(client)
		return
	}
	if !p.track(up) {
		p.untrack(client)
		return
	}
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(up, client) // viewer → gateway: handshake, pongs, control messages
		done <- struct{}{}
	}()
	go func() {
		_ = pace(client, up, p.rate)
		done <- struct{}{}
	}()
	<-done
	p.untrack(client, up) // ends the other direction too
	<-done
}

// pace copies src to dst at most rate bytes a second, in reads of at most
// throttleChunk bytes, until either side fails.
func pace(dst io.Writer, src io.Reader, rate float64) error {
	buf := make([]byte, throttleChunk)
	b := newTokenBucket(rate, time.Now())
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if wait := b.take(n, time.Now()); wait > 0 {
				time.Sleep(wait)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// tokenBucket paces a byte stream: rate tokens (bytes) a second, holding
// at most burst. Taking more than there are puts it in debt, which the
// caller waits out. Not safe for concurrent use.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate float64, now time.Time) *tokenBucket {
	burst := max(rate*throttleBurst.Seconds(), throttleChunk)
	return &tokenBucket{rate: rate, burst: burst, tokens: burst, last: now}
}

// take spends n tokens at now and returns how long to wait before the n
// bytes may go.
func (b *tokenBucket) take(n int, now time.Time) time.Duration {
	b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0
	}
	return time.Duration(-b.tokens / b.rate * float64(time.Second))
}
