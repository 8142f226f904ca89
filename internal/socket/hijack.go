package socket

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of hijacked connections that receive frames. coder/websocket
// keeps the bufio reader and writer that Hijack returns for the life of the
// connection, and net/http hands out 4 KiB of each: for an idle viewer that
// is most of its memory. Viewers read only control frames (pong, close: at
// most 127 bytes each), so their read buffer can be tiny; connections that
// read whole frames (publishers, the seed's two-way ones) keep 4 KiB. The
// write buffer only carries a frame's header and the first bytes after it
// (bufio writes the rest of a large payload straight through to the
// Writer), so it can be small too.
const (
	ViewerReadBuffer = 256
	FrameReadBuffer  = 4096
	WriteBuffer      = 128
)

// Hijacker wraps the ResponseWriter of a request about to be upgraded to a
// WebSocket, so that the Hijack coder/websocket calls hands it a Writer
// (the one owner of the socket's write side, which also sees the end of
// its reads) and buffers of ReadBuffer and WriteBuffer bytes.
type Hijacker struct {
	http.ResponseWriter
	readBuffer int
	opts       Options
	w          *Writer
}

// NewHijacker returns the wrapper of w; readBuffer is ViewerReadBuffer or
// FrameReadBuffer.
func NewHijacker(w http.ResponseWriter, readBuffer int, opts Options) *Hijacker {
	return &Hijacker{ResponseWriter: w, readBuffer: readBuffer, opts: opts}
}

// Hijack takes over the connection and returns new buffers over a Writer,
// carrying over any bytes net/http had already read.
func (h *Hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w, early, err := Hijack(h.ResponseWriter, h.opts)
	if err != nil {
		return nil, nil, err
	}
	h.w = w
	// Bytes the client sent right after its handshake may already sit in
	// net/http's buffer. They must end up buffered in the new reader, not
	// merely behind it: coder/websocket keeps only what is buffered
	// (Peek(Buffered())) and then resets the reader onto the raw conn.
	size := max(h.readBuffer, len(early))
	br := bufio.NewReaderSize(io.MultiReader(bytes.NewReader(early), w), size)
	if len(early) > 0 {
		if _, err := br.Peek(len(early)); err != nil { // reads only from early
			w.Conn.Close()
			return nil, nil, err
		}
	}
	return w, bufio.NewReadWriter(br, bufio.NewWriterSize(w, WriteBuffer)), nil
}

// Writer returns the hijacked connection's Writer (nil before Hijack).
// Keep it, not h: h holds net/http's response, its request and buffers.
func (h *Hijacker) Writer() *Writer { return h.w }

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (h *Hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// Hijack takes over the connection of w, a response not yet written, and
// returns its Writer and the bytes net/http had read beyond the request
// (a client's first messages; nil mostly). The caller writes the response
// itself (an MJPEG stream's head, say), through the Writer.
func Hijack(w http.ResponseWriter, opts Options) (*Writer, []byte, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	if brw.Writer.Buffered() > 0 {
		// net/http flushes the 101 response before hijacking; anything
		// still buffered would be lost by swapping writers.
		if err := brw.Writer.Flush(); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return NewWriter(conn, opts), early, nil
}
