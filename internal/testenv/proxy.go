package testenv

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of one upstream address (a
// real redis-server, say). It copies both ways, each chunk delayed by Delay
// in each direction without limiting throughput, as a network with that
// one-way latency would; Cut drops every connection and refuses new ones
// until Restore, as a partition would. Nothing cut reaches the upstream.
// LimitDown caps what it reads from the upstream, as a slow downlink would:
// the upstream's writes then back up in its socket.
//
// Its methods are safe for concurrent use. It closes when the test ends.
type Proxy struct {
	ln       net.Listener
	upstream string
	delay    time.Duration
	down     atomic.Int64 // bytes per second read from the upstream; 0: no limit

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool // open sockets, both sides; guarded by mu
	wg    sync.WaitGroup
}

// StartProxy listens on a free port and proxies to upstream (host:port),
// delaying each direction by delay (0: none).
func StartProxy(t testing.TB, upstream string, delay time.Duration) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen for the proxy: %v", err)
	}
	p := &Proxy{ln: ln, upstream: upstream, delay: delay, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every proxied connection and refuses (closes at once) new
// ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// LimitDown limits every connection's upstream-to-client direction to
// bytesPerSecond (0: no limit), from the next read on. Connections made
// afterwards also get a small receive buffer on the upstream side, so the
// limit backs up into the upstream's socket within tens of kilobytes.
func (p *Proxy) LimitDown(bytesPerSecond int) { p.down.Store(int64(bytesPerSecond)) }

// Restore lets new connections through again after Cut.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut {
			down.Close()
			continue
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		if p.cut || p.conns == nil {
			p.mu.Unlock()
			down.Close()
			up.Close()
			continue
		}
		p.conns[down], p.conns[up] = true, true
		p.mu.Unlock()
		if tc, ok := up.(*net.TCPConn); ok && p.down.Load() > 0 {
			_ = tc.SetReadBuffer(limitedReadBuffer)
		}
		p.wg.Add(2)
		go p.pipe(up, down, false)
		go p.pipe(down, up, true)
	}
}

// chunk is bytes read at one time, due for writing at due.
type chunk struct {
	b   []byte
	due time.Time
}

// limitedReadBuffer is the upstream socket's receive buffer under
// LimitDown.
const limitedReadBuffer = 32 << 10

// pipe copies src to dst, each read delivered p.delay after it was read;
// fromUpstream reads are paced to LimitDown. When either side fails, it
// closes both.
func (p *Proxy) pipe(dst, src net.Conn, fromUpstream bool) {
	defer p.wg.Done()
	line := make(chan chunk, 4096) // data in flight: a delay line, not a bound on throughput
	go func() {
		defer close(line)
		var next time.Time // when the paced reader may read again
		for {
			size := 32 << 10
			limit := int64(0)
			if fromUpstream {
				limit = p.down.Load()
			}
			if limit > 0 {
				size = int(max(1024, min(int64(size), limit/50))) // reads of at most 20 ms of the rate
				if d := time.Until(next); d > 0 {
					time.Sleep(d) // the link's pace, by design
				}
			}
			buf := make([]byte, size)
			n, err := src.Read(buf)
			if limit > 0 && n > 0 {
				// At most 100 ms of unused rate carries over (a burst).
				if floor := time.Now().Add(-time.Second / 10); next.Before(floor) {
					next = floor
				}
				next = next.Add(time.Duration(int64(n) * int64(time.Second) / limit))
			}
			if n > 0 {
				line <- chunk{b: buf[:n], due: time.Now().Add(p.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		p.drop(dst, src)
		for range line { // let the reader end
		}
	}()
	for c := range line {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d) // the network's latency, by design
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}

// drop closes and forgets conns.
func (p *Proxy) drop(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(p.conns, c)
	}
}

// close closes the listener and every connection, and waits for the
// copying goroutines.
func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}
