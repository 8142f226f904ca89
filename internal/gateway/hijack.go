package gateway

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of upgraded connections. coder/websocket keeps the bufio
// reader and writer that Hijack returns for the life of the connection, and
// net/http hands out 4 KiB of each: for an idle viewer that is most of its
// memory. Viewers read only control frames (pong, close: at most 127 bytes
// each), so their read buffer can be tiny. Writes of large frames bypass a
// bufio.Writer's buffer once it is full, so a small write buffer costs no
// extra copies: a frame leaves in two writes whatever the size.
const (
	viewerReadBuffer  = 256
	viewerWriteBuffer = 1024
)

// hijackWithBuffers wraps w so that, for viewers, Hijack returns buffers
// sized for them instead of net/http's defaults. Publishers (and the seed's
// two-way connections) keep the defaults: they read whole frames.
func hijackWithBuffers(w http.ResponseWriter, role string) http.ResponseWriter {
	if role != roleView {
		return w
	}
	return &smallBufferHijacker{ResponseWriter: w}
}

type smallBufferHijacker struct {
	http.ResponseWriter
}

// Hijack takes over the connection and returns small buffers, carrying over
// any bytes net/http had already read past the request.
func (h *smallBufferHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var r io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	}
	if brw.Writer.Buffered() > 0 {
		// net/http flushes the 101 response before hijacking; anything
		// still buffered would be lost by swapping writers.
		if err := brw.Writer.Flush(); err != nil {
			conn.Close()
			return nil, nil, err
		}
	}
	return conn, bufio.NewReadWriter(bufio.NewReaderSize(r, viewerReadBuffer), bufio.NewWriterSize(conn, viewerWriteBuffer)), nil
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter.
func (h *smallBufferHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }
