// Package linkproxy is a TCP proxy that stands for the network link between
// clients and one upstream (a gateway, a redis-server): latency each way, a
// slow downlink, a partition, an uplink that stops. Tests start it through
// testenv.StartProxy; the load generator gives a viewer group's viewers
// their slow links with it.
//
// It needs nothing but the standard library, so that cmd/loadgen can use it
// without linking test helpers.
package linkproxy

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options configure a Proxy. The zero value copies both ways at once.
type Options struct {
	// Delay is the one-way latency added to each direction: every chunk
	// is delivered Delay after it was read, without limiting throughput.
	// 0: none.
	Delay time.Duration
	// Down limits each connection's upstream → client direction to this
	// many bytes a second (LimitDown changes it later). 0: no limit.
	Down float64
}

// Proxy is a TCP proxy on 127.0.0.1 in front of one upstream address.
// Every connection accepted on it is joined to a new connection to the
// upstream, and bytes are copied both ways, as Options say:
//
//   - Delay holds each chunk back as a network with that one-way latency
//     would.
//   - LimitDown paces each connection's upstream → client direction with a
//     token bucket of its own, as a slow downlink would. Pacing is done in
//     small reads (at most pacedChunk bytes, then a wait for their tokens),
//     and a paced connection's socket to the upstream gets a small receive
//     buffer (pacedRcvBuf) and Ethernet-sized segments (pacedMSS), so the
//     upstream feels the slow link within a fraction of a second, as a
//     gateway does a viewer on a thin link: its writes stop being taken
//     whole and its latest-frame-wins queue skips, instead of megabytes of
//     loopback buffers hiding the limit for seconds.
//   - Cut drops every connection and refuses new ones until Restore, as a
//     partition would. Nothing cut reaches the upstream.
//   - HoldUp stops the client → upstream direction until ReleaseUp, as an
//     upstream that stopped reading (a frozen process) would, connections
//     left open. Clients are read through a small receive buffer
//     (clientRcvBuf), so a held client's writes back up into its own socket
//     within tens of kilobytes and then block.
//
// Its methods are safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream string
	delay    time.Duration
	down     atomic.Uint64 // math.Float64bits of the downlink's bytes per second; 0: no limit
	closing  chan struct{} // closed by Close

	mu     sync.Mutex
	cut    bool
	closed bool
	held   chan struct{}         // while HoldUp: closed by ReleaseUp; nil otherwise
	conns  map[net.Conn]struct{} // open sockets, both sides
	wg     sync.WaitGroup        // accept loop and connections
}

const (
	// readSize is the largest read of a direction that is not paced.
	readSize = 32 << 10
	// pacedChunk is the largest read a paced direction makes; at low
	// rates reads are 20 ms of the rate, at least minPacedChunk.
	pacedChunk    = 4096
	minPacedChunk = 1024
	// pacedBurst is how much time's worth of tokens a bucket holds: it
	// absorbs a late wake-up of the pacing goroutine without letting the
	// link run above its rate for longer than that.
	pacedBurst = 20 * time.Millisecond
	// pacedRcvBuf is the receive buffer asked for on a paced connection's
	// socket to the upstream (Linux doubles it for its bookkeeping).
	pacedRcvBuf = 32 << 10
	// pacedMSS is the segment size a paced connection's socket to the
	// upstream announces, an Ethernet link's. Loopback's 64 KiB segments
	// make the upstream's send buffer autotune to megabytes from its first
	// congestion window (10 segments): measured, 2.8 MB queued in a
	// gateway's socket, 3.5 s of latency at 800 kB/s, and a gateway that
	// never saw the link slow.
	pacedMSS = 1460
	// clientRcvBuf is the receive buffer of the sockets the proxy reads
	// clients from (set on the listener, which accepted sockets inherit):
	// loopback's autotuning would let a held client write megabytes into
	// the proxy's socket before its own writes block.
	clientRcvBuf = 64 << 10
	// dialTimeout bounds the dial to the upstream.
	dialTimeout = 10 * time.Second
)

// Listen starts a proxy to upstream (host:port) on a free loopback port.
// It runs until Close.
func Listen(upstream string, opts Options) (*Proxy, error) {
	if opts.Delay < 0 || opts.Down < 0 || math.IsNaN(opts.Down) || math.IsInf(opts.Down, 0) {
		return nil, fmt.Errorf("linkproxy: bad options %+v: delay and rate must be finite, 0 or positive", opts)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		return setsockopt(rc, syscall.SOL_SOCKET, syscall.SO_RCVBUF, clientRcvBuf)
	}}
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen for the link proxy: %w", err)
	}
	p := &Proxy{ln: ln, upstream: upstream, delay: opts.Delay, closing: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.down.Store(math.Float64bits(opts.Down))
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// LimitDown limits every connection's upstream → client direction to
// bytesPerSecond (0: no limit), from each connection's next read on.
// Connections made while a limit is set also get the small receive buffer
// and segments of a paced connection (see Proxy).
func (p *Proxy) LimitDown(bytesPerSecond float64) {
	if bytesPerSecond < 0 || math.IsNaN(bytesPerSecond) || math.IsInf(bytesPerSecond, 0) {
		bytesPerSecond = 0
	}
	p.down.Store(math.Float64bits(bytesPerSecond))
}

func (p *Proxy) downRate() float64 { return math.Float64frombits(p.down.Load()) }

// Cut closes every proxied connection and refuses (closes at once) new
// ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		_ = c.Close()
	}
}

// Restore lets new connections through again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

// HoldUp stops copying client → upstream on every connection, open or new,
// until ReleaseUp; what a client writes meanwhile waits in the sockets.
// The upstream → client direction keeps flowing.
func (p *Proxy) HoldUp() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
}

// ReleaseUp lets what HoldUp held go on.
func (p *Proxy) ReleaseUp() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
}

// Close stops accepting, closes every proxied connection and waits for the
// proxy's goroutines to end. It may be called more than once.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	close(p.closing)
	err := p.ln.Close()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track adds cs to the connections Cut and Close close; false (and cs
// closed) if the proxy is cut or closed.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut || p.closed {
		for _, c := range cs {
			_ = c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

// untrack closes and forgets cs.
func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(p.conns, c)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(c) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

// serve joins client to a new connection to the upstream until either
// side ends, or the proxy is cut or closed.
func (p *Proxy) serve(client net.Conn) {
	d := net.Dialer{Timeout: dialTimeout}
	if p.downRate() > 0 {
		// Before connect, so that the window the upstream sees is small
		// from the first byte.
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return errors.Join(
				setsockopt(rc, syscall.SOL_SOCKET, syscall.SO_RCVBUF, pacedRcvBuf),
				setsockopt(rc, syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, pacedMSS))
		}
	}
	up, err := d.Dial("tcp", p.upstream)
	if err != nil {
		p.untrack(client)
		return
	}
	if !p.track(up) {
		p.untrack(client)
		return
	}
	ended := make(chan struct{}) // closed when the first direction ends
	var once sync.Once
	end := func() {
		once.Do(func() {
			close(ended)
			p.untrack(client, up) // ends the other direction too
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer end()
		p.copy(up, client, true, ended)
	}()
	go func() {
		defer wg.Done()
		defer end()
		p.copy(client, up, false, ended)
	}()
	wg.Wait()
}

// chunk is bytes read at one time, due for writing at due.
type chunk struct {
	b   []byte
	due time.Time
}

// copy copies src to dst until either fails or ended closes: client →
// upstream when upward (held by HoldUp), upstream → client otherwise
// (paced by LimitDown); each chunk delayed by p.delay.
func (p *Proxy) copy(dst, src net.Conn, upward bool, ended <-chan struct{}) {
	direct := func(b []byte) bool { _, err := dst.Write(b); return err == nil }
	write := direct
	if p.delay > 0 {
		line := make(chan chunk, 4096) // data in flight: a delay line, not a bound on throughput
		lineDone := make(chan struct{})
		defer func() {
			close(line)
			<-lineDone
		}()
		go func() {
			defer close(lineDone)
			for c := range line {
				if d := time.Until(c.due); d > 0 {
					time.Sleep(d) // the link's latency, by design
				}
				if !direct(c.b) {
					_ = src.Close() // ends the reader
					for range line {
					}
					return
				}
			}
		}()
		write = func(b []byte) bool {
			select {
			case line <- chunk{b: b, due: time.Now().Add(p.delay)}:
				return true
			case <-ended:
				return false
			}
		}
	}
	var (
		bucket *tokenBucket
		buf    []byte
	)
	for {
		size, rate := readSize, 0.0
		if !upward {
			rate = p.downRate()
		}
		if rate > 0 {
			size = int(min(pacedChunk, max(minPacedChunk, rate*pacedBurst.Seconds())))
			if bucket == nil || bucket.rate != rate {
				bucket = newTokenBucket(rate, time.Now())
			}
		}
		if p.delay > 0 || len(buf) < size {
			buf = make([]byte, size) // the delay line keeps each chunk
		}
		n, err := src.Read(buf[:size])
		if n > 0 {
			if upward && !p.waitUp(ended) {
				return
			}
			if rate > 0 {
				if wait := bucket.take(n, time.Now()); wait > 0 {
					time.Sleep(wait) // the link's pace, by design
				}
			}
			if !write(buf[:n]) {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// waitUp returns once the client → upstream direction is not held, true,
// or false if the connection or the proxy ended first.
func (p *Proxy) waitUp(ended <-chan struct{}) bool {
	p.mu.Lock()
	held := p.held
	p.mu.Unlock()
	if held == nil {
		return true
	}
	select {
	case <-held:
		return true
	case <-ended:
		return false
	case <-p.closing:
		return false
	}
}

func setsockopt(rc syscall.RawConn, level, opt, value int) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), level, opt, value)
	}); err != nil {
		return err
	}
	return serr
}

// tokenBucket paces a byte stream: rate tokens (bytes) a second, holding
// at most burst. Taking more than there are puts it in debt, which the
// caller waits out. Not safe for concurrent use.
type tokenBucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func newTokenBucket(rate float64, now time.Time) *tokenBucket {
	burst := max(rate*pacedBurst.Seconds(), pacedChunk)
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
