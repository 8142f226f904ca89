package testenv

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of one upstream address (a
// real redis-server, say). It copies both ways, each chunk delayed by Delay
// in each direction without limiting throughput, as a network with that
// one-way latency would; Cut drops every connection and refuses new ones
// until Restore, as a partition would. Nothing cut reaches the upstream.
//
// Its methods are safe for concurrent use. It closes when the test ends.
type Proxy struct {
	ln       net.Listener
	upstream string
	delay    time.Duration

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
		p.wg.Add(2)
		go p.pipe(up, down)
		go p.pipe(down, up)
	}
}

// chunk is bytes read at one time, due for writing at due.
type chunk struct {
	b   []byte
	due time.Time
}

// pipe copies src to dst, each read delivered p.delay after it was read.
// When either side fails, it closes both.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	line := make(chan chunk, 4096) // data in flight: a delay line, not a bound on throughput
	go func() {
		defer close(line)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
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
