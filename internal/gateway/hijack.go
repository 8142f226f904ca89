package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// Buffer sizes of upgraded connections that receive frames. coder/websocket
// keeps the bufio reader and writer that Hijack returns for the life of the
// connection, and net/http hands out 4 KiB of each: for an idle viewer that
// is most of its memory. Viewers read only control frames (pong, close: at
// most 127 bytes each), so their read buffer can be tiny; the seed's two-way
// connections read whole frames and keep 4 KiB. coder/websocket writes only
// control frames through the write buffer (frames go out through
// frameConn.WriteFrame), so it can be small too.
const (
	viewerReadBuffer  = 256
	seedReadBuffer    = 4096
	viewerWriteBuffer = 256
)

// frameHijacker wraps the ResponseWriter of a connection that will receive
// frames, so that Hijack hands coder/websocket a frameConn and buffers sized
// for the role. After the upgrade, conn is the frameConn.
type frameHijacker struct {
	http.ResponseWriter
	readBuffer int
	conn       *frameConn
}

// newFrameHijacker returns the wrapper for role, or nil for publishers,
// which receive no frames and keep net/http's defaults.
func newFrameHijacker(w http.ResponseWriter, role string) *frameHijacker {
	switch role {
	case roleView:
		return &frameHijacker{ResponseWriter: w, readBuffer: viewerReadBuffer}
	case roleSeed:
		return &frameHijacker{ResponseWriter: w, readBuffer: seedReadBuffer}
	}
	return nil
}

// Hijack takes over the connection and returns new buffers over a
// frameConn, carrying over any bytes net/http had already read.
func (h *frameHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the client sent right after its handshake may already sit in
	// net/http's buffer. They must end up buffered in the new reader, not
	// merely behind it: coder/websocket keeps only what is buffered
	// (Peek(Buffered())) and then resets the reader onto the raw conn.
	size := h.readBuffer
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = bytes.Clone(b)
		size = max(size, n)
	}
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), conn), size)
	if len(early) > 0 {
		if _, err := br.Peek(len(early)); err != nil { // reads only from early
			conn.Close()
			return nil, nil, err
		}
	}
	if brw.Writer.Buffered() > 0 {
		// net/http flushes the 101 response before hijacking; anything
		// still buffered would be lost by swapping writers.
		if err := brw.Writer.Flush(); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	h.conn = newFrameConn(conn)
	return h.conn, bufio.NewReadWriter(br, bufio.NewWriterSize(h.conn, viewerWriteBuffer)), nil
}

// frameConn returns the hijacked connection (nil before Hijack, or for a nil
// h). Keep it, not h: h holds net/http's response, its request and buffers.
func (h *frameHijacker) frameConn() *frameConn {
	if h == nil {
		return nil
	}
	return h.conn
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (h *frameHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// frameConn lets the gateway write pre-framed WebSocket messages straight to
// the socket, one write per frame per viewer, next to coder/websocket's own
// writes (pings, pongs, close), without the two ever interleaving.
//
// Every frame has one owner from its first byte to its last. (Go's net.Conn
// already makes each single Write call atomic with respect to other writes;
// mu extends that to coder/websocket frames written in several calls.)
// coder/websocket
// flushes its bufio writer at the end of every frame it writes, so each of
// its frames reaches Write as one or more consecutive calls, the first
// starting with the frame header: Write takes mu at a frame's first byte,
// reads the frame's length from the header, and releases mu after its last
// byte. WriteFrame holds mu for one whole frame. Calls to Write are
// serialized by coder/websocket; WriteFrame must be called by one goroutine
// at a time (the viewer's writer).
type frameConn struct {
	net.Conn
	raw       syscall.RawConn // nil if the connection has no file descriptor (no non-blocking writes)
	mu        sync.Mutex
	try       tryWrite // TryWriteFrame's system call; guarded by mu
	remaining int      // bytes left of coder/websocket's current frame; mu is held while > 0
	closed    bool     // a close frame went out: no data frame may follow (RFC 6455 5.5.1); guarded by mu
}

// tryWrite is one non-blocking write(2) through syscall.RawConn. It lives in
// the frameConn, and call is bound once, so that a write allocates nothing
// (a closure passed to RawConn.Write per call would escape to the heap:
// one allocation per frame per viewer).
type tryWrite struct {
	p    []byte
	n    int
	err  error
	call func(fd uintptr) bool // bound to do
}

func (t *tryWrite) do(fd uintptr) bool {
	t.n, t.err = syscall.Write(int(fd), t.p)
	return true // never wait for the socket: that is FinishFrame's job
}

// newFrameConn wraps a hijacked connection.
func newFrameConn(conn net.Conn) *frameConn {
	c := &frameConn{Conn: conn}
	c.try.call = c.try.do
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// Write passes coder/websocket's frames through, holding mu per frame.
func (c *frameConn) Write(p []byte) (int, error) {
	if c.remaining == 0 {
		c.mu.Lock()
		total, opcode, ok := wsFrameSize(p)
		if !ok {
			// Not a frame start we can read (coder/websocket always
			// flushes whole headers): write it unguarded past this call.
			defer c.mu.Unlock()
			return c.Conn.Write(p)
		}
		if opcode == 0x8 {
			c.closed = true
		}
		c.remaining = total
	}
	n, err := c.Conn.Write(p)
	c.remaining -= n
	if err != nil || c.remaining <= 0 {
		c.remaining = 0
		c.mu.Unlock()
	}
	return n, err
}

// WriteFrame writes one complete, pre-framed WebSocket message.
func (c *frameConn) WriteFrame(frame []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return net.ErrClosed
	}
	_, err := c.Conn.Write(frame)
	return err
}

// errWouldBlock says a non-blocking write could not start.
var errWouldBlock = errors.New("gateway: write would block")

// TryWriteFrame starts writing one pre-framed message without blocking:
// it writes what the socket takes now, with one system call. If the whole
// frame went out it returns (nil, nil) and releases the connection. If only
// part of it (or nothing) went out, it returns the rest and keeps the
// connection locked: the caller must finish the frame with FinishFrame,
// from any goroutine. If the connection is busy (coder/websocket is writing
// a control frame) or has no file descriptor, it returns errWouldBlock and
// holds nothing.
func (c *frameConn) TryWriteFrame(frame []byte) (rest []byte, err error) {
	if c.raw == nil || !c.mu.TryLock() {
		return nil, errWouldBlock
	}
	if c.closed {
		c.mu.Unlock()
		return nil, net.ErrClosed
	}
	c.try.p = frame
	err = c.raw.Write(c.try.call)
	n, werr := c.try.n, c.try.err
	c.try.p, c.try.err = nil, nil
	if err != nil {
		c.mu.Unlock()
		return nil, err
	}
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		n, werr = 0, nil
	}
	if werr != nil {
		c.mu.Unlock()
		return nil, werr
	}
	if n == len(frame) {
		c.mu.Unlock()
		return nil, nil
	}
	return frame[n:], nil
}

// FinishFrame writes the rest of a frame TryWriteFrame started, blocking
// as needed, and releases the connection.
func (c *frameConn) FinishFrame(rest []byte) error {
	defer c.mu.Unlock()
	_, err := c.Conn.Write(rest)
	return err
}

// wsFrameSize reads a WebSocket frame header at the start of p and returns
// the whole frame's size (header and payload) and its opcode.
func wsFrameSize(p []byte) (total int, opcode byte, ok bool) {
	if len(p) < 2 {
		return 0, 0, false
	}
	opcode = p[0] & 0x0F
	hdr, n := 2, int(p[1]&0x7F)
	switch n {
	case 126:
		if len(p) < 4 {
			return 0, 0, false
		}
		hdr, n = 4, int(binary.BigEndian.Uint16(p[2:4]))
	case 127:
		if len(p) < 10 {
			return 0, 0, false
		}
		hdr, n = 10, int(binary.BigEndian.Uint64(p[2:10]))
	}
	if p[1]&0x80 != 0 { // masked: a client's frame; servers do not mask
		hdr += 4
	}
	return hdr + n, opcode, true
}
