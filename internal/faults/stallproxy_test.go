package faults_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// stallProxy is a TCP proxy on 127.0.0.1 in front of one upstream address.
// Until told otherwise, it copies both ways.
//
// Stall makes it stop reading from the upstream side of every connection
// while keeping the sockets open: the upstream's writes fill its send
// buffer and the proxy's receive buffer, then block, exactly as when a
// client's network stalls (no ACKs, a zero window). The client's own data
// keeps flowing upstream (its pongs, say).
//
// Freeze stops both directions: the upstream neither receives nor can
// deliver anything, and no FIN or RST reaches it, as when a client loses
// power or its network silently.
type stallProxy struct {
	ln        net.Listener
	upstream  string
	stallDown chan struct{} // closed by Stall and Freeze: stop reading upstream
	stallUp   chan struct{} // closed by Freeze: stop reading the client
	stallOne  sync.Once
	freezeOne sync.Once
	done      chan struct{} // closed by close
	doneOne   sync.Once
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn // guarded by mu: every socket, closed by close
}

// startStallProxy listens on a free port and proxies to upstream
// (host:port). It is closed when the test ends.
func startStallProxy(t testing.TB, upstream string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to listen for the proxy: %v", err)
	}
	p := &stallProxy{ln: ln, upstream: upstream, stallDown: make(chan struct{}), stallUp: make(chan struct{}), done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr returns the proxy's host:port.
func (p *stallProxy) Addr() string { return p.ln.Addr().String() }

// Stall stops reading from the upstream side, now and for good.
func (p *stallProxy) Stall() { p.stallOne.Do(func() { close(p.stallDown) }) }

// Freeze stops reading from both sides, now and for good.
func (p *stallProxy) Freeze() {
	p.Stall()
	p.freezeOne.Do(func() { close(p.stallUp) })
}

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		if !p.track(down, up) {
			return
		}
		p.wg.Add(2)
		go func() { // client → upstream: stops at Freeze
			defer p.wg.Done()
			p.copyUntil(p.stallUp, up, down)
		}()
		go func() { // upstream → client: stops at Stall
			defer p.wg.Done()
			p.copyUntil(p.stallDown, down, up)
		}()
	}
}

// track records conns for close; false if the proxy is closing.
func (p *stallProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		for _, c := range conns {
			c.Close()
		}
		return false
	default:
	}
	p.conns = append(p.conns, conns...)
	return true
}

// copyUntil copies src to dst until src ends or stall is closed; then it
// stops reading src but leaves both sockets open until the proxy closes.
// What a read in progress returns after stall closed, data or the end of
// the stream, is lost in the network: nothing more reaches dst, not even a
// FIN.
func (p *stallProxy) copyUntil(stall chan struct{}, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-stall:
			<-p.done
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = dst.(*net.TCPConn).CloseWrite()
			}
			return
		}
	}
}

// close closes the listener and every connection, and waits for the
// copying goroutines.
func (p *stallProxy) close() {
	p.doneOne.Do(func() {
		p.mu.Lock()
		close(p.done)
		conns := p.conns
		p.mu.Unlock()
		p.ln.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	p.wg.Wait()
}
