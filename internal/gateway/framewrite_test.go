package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection, the server end as
// a frameConn that can write without blocking, with small socket buffers so
// that a peer that does not read fills them after a few frames.
func tcpPair(t *testing.T) (*frameConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	_ = server.(*net.TCPConn).SetWriteBuffer(16 << 10)
	_ = client.(*net.TCPConn).SetReadBuffer(16 << 10)
	fc := newFrameConn(server)
	if fc.raw == nil {
		t.Fatal("a TCP connection has no RawConn")
	}
	return fc, client
}

// TestTryWriteFrameHandsOverWhenTheSocketIsFull: frames go out whole with
// one non-blocking write while the socket has room; once it is full,
// TryWriteFrame returns the unwritten rest with the connection still held,
// so nothing else can interleave, and FinishFrame completes it when the
// peer reads. The peer receives every byte, in order.
func TestTryWriteFrameHandsOverWhenTheSocketIsFull(t *testing.T) {
	fc, peer := tcpPair(t)
	var sent bytes.Buffer
	var rest []byte
	for i := 0; rest == nil; i++ {
		if i == 1000 {
			t.Fatal("1000 frames of 64 KB went out without the socket filling up")
		}
		frame := bytes.Repeat([]byte{byte(i)}, 64<<10)
		r, err := fc.TryWriteFrame(frame)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		sent.Write(frame)
		rest = r
	}
	if _, err := fc.TryWriteFrame([]byte("x")); !errors.Is(err, errWouldBlock) {
		t.Fatalf("a frame started while another is unfinished: %v, want errWouldBlock", err)
	}

	finished := make(chan error, 1)
	go func() { finished <- fc.FinishFrame(rest) }()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(sent.Len())))
		got <- b
	}()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("FinishFrame: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FinishFrame did not complete while the peer read")
	}
	select {
	case b := <-got:
		if !bytes.Equal(b, sent.Bytes()) {
			t.Fatalf("peer got %d bytes that differ from the %d sent", len(b), sent.Len())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("peer did not receive everything")
	}
	if r, err := fc.TryWriteFrame([]byte("after")); err != nil || r != nil {
		t.Fatalf("after FinishFrame, TryWriteFrame = %q, %v; want the connection free", r, err)
	}
}

// TestTryWriteFrameAfterClose: a closed connection or one whose close frame
// went out refuses frames with an error, and holds nothing.
func TestTryWriteFrameAfterClose(t *testing.T) {
	fc, _ := tcpPair(t)
	fc.closed = true
	if _, err := fc.TryWriteFrame([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after a close frame: %v, want net.ErrClosed", err)
	}
	fc.closed = false
	fc.Conn.Close()
	if _, err := fc.TryWriteFrame([]byte("x")); err == nil || errors.Is(err, errWouldBlock) {
		t.Fatalf("on a closed socket: %v, want an error", err)
	}
	if !fc.mu.TryLock() {
		t.Fatal("a failed TryWriteFrame kept the connection locked")
	}
	fc.mu.Unlock()

	noFD := newFrameConn(struct{ net.Conn }{fc.Conn}) // hides SyscallConn
	if _, err := noFD.TryWriteFrame([]byte("x")); !errors.Is(err, errWouldBlock) {
		t.Fatalf("without a file descriptor: %v, want errWouldBlock", err)
	}
}
