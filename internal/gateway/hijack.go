package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"time"
)

// Buffer sizes of upgraded connections that receive frames. coder/websocket
// keeps the bufio reader and writer that Hijack returns for the life of the
// connection, and net/http hands out 4 KiB of each: for an idle viewer that
// is most of its memory. Viewers read only control frames (pong, close: at
// most 127 bytes each), so their read buffer can be tiny; the seed's two-way
// connections read whole frames and keep 4 KiB. The write buffer only
// carries a frame's header and the first bytes after it (bufio writes the
// rest of a large payload straight through to the sockWriter), so it can be
// small too.
const (
	viewerReadBuffer  = 256
	seedReadBuffer    = 4096
	viewerWriteBuffer = 128
)

// frameHijacker wraps the ResponseWriter of a WebSocket connection, so that
// Hijack hands coder/websocket a sockWriter (the one owner of the socket's
// write side, which also sees the end of its reads) and buffers sized for
// the role. After the upgrade, conn is the sockWriter.
type frameHijacker struct {
	http.ResponseWriter
	readBuffer   int
	writeTimeout time.Duration
	pingInterval time.Duration
	conn         *sockWriter
}

// newFrameHijacker returns the wrapper for a connection of role.
// Publishers receive no frames, but their pongs and close frames go through
// a sockWriter too: every connection has the same single writer.
func newFrameHijacker(w http.ResponseWriter, role string, writeTimeout, pingInterval time.Duration) *frameHijacker {
	size := seedReadBuffer // the seed's two-way connections and publishers read whole frames
	if role == roleView {
		size = viewerReadBuffer
	}
	return &frameHijacker{ResponseWriter: w, readBuffer: size, writeTimeout: writeTimeout, pingInterval: pingInterval}
}

// Hijack takes over the connection and returns new buffers over a
// sockWriter, carrying over any bytes net/http had already read.
func (h *frameHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// Bytes the client sent right after its handshake may already sit in
	// net/http's buffer. They must end up buffered in the new reader, not
	// merely behind it: coder/websocket keeps only what is buffered
	// (Peek(Buffered())) and then resets the reader onto the raw conn.
	h.conn = newSockWriter(conn, h.writeTimeout, h.pingInterval)
	size := h.readBuffer
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = bytes.Clone(b)
		size = max(size, n)
	}
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), h.conn), size)
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
	return h.conn, bufio.NewReadWriter(br, bufio.NewWriterSize(h.conn, viewerWriteBuffer)), nil
}

// sockWriter returns the hijacked connection (nil before Hijack, or for a
// nil h). Keep it, not h: h holds net/http's response, its request and
// buffers.
func (h *frameHijacker) sockWriter() *sockWriter {
	if h == nil {
		return nil
	}
	return h.conn
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (h *frameHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }
