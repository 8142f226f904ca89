package socket

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// tcpPair returns both ends of a loopback TCP connection, the server end
// wrapped in a Writer with the given write timeout, with small socket
// buffers so that a peer that does not read fills them after a few KB.
func tcpPair(t *testing.T, timeout time.Duration, ev Events) (*Writer, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := testenv.SmallReceiveDialer(4<<10).Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	_ = server.(*net.TCPConn).SetWriteBuffer(16 << 10)
	opts := Options{WriteTimeout: timeout, PingInterval: 20 * time.Second}
	if ev != nil {
		opts.Events = ev
	}
	w := NewWriter(server, opts)
	if w.raw == nil {
		t.Fatal("a TCP connection has no RawConn")
	}
	return w, client.(*net.TCPConn)
}

// events records a Writer's callbacks.
type events struct {
	mu     sync.Mutex
	drains int
	fails  []error
}

func (e *events) Drained() { e.mu.Lock(); e.drains++; e.mu.Unlock() }

func (e *events) Failed(err error) { e.mu.Lock(); e.fails = append(e.fails, err); e.mu.Unlock() }

func (e *events) failures() []error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]error(nil), e.fails...)
}

// TestSockWriterKeepsOrderWhenTheSocketIsFull: data messages (corked, kept
// by reference) and control writes from another goroutine, written while
// the peer does not read, all arrive whole and in the order Write took
// them; the writer reports Busy while it flushes, and onDrain once done.
func TestSockWriterKeepsOrderWhenTheSocketIsFull(t *testing.T) {
	var ev events
	w, peer := tcpPair(t, 10*time.Second, &ev)
	var want bytes.Buffer
	msg := bytes.Repeat([]byte("frame-payload-"), 20<<10) // 280 KB: far more than the socket buffers
	// A data message as coder/websocket writes it: a bufio chunk (header
	// and the payload's first bytes, in a buffer it reuses), then the rest
	// of the payload straight from the message.
	w.Cork(msg)
	chunk := append([]byte("HDR"), msg[:100]...)
	mustWrite(t, w, chunk)
	clear(chunk) // coder/websocket reuses its buffer: the queued copy must not change
	mustWrite(t, w, msg[100:])
	if err := w.Uncork(); err != nil {
		t.Fatal(err)
	}
	want.WriteString("HDR")
	want.Write(msg)
	if !w.Busy() {
		t.Fatal("Busy() = false with 280 KB the peer has not read")
	}
	if w.copied != 103 {
		t.Fatalf("copied %d bytes, want only the 103-byte chunk (the payload is kept by reference)", w.copied)
	}
	// Control frames from other goroutines queue behind the message.
	for i := range 50 {
		ctl := []byte{0x8A, byte(i)}
		mustWrite(t, w, ctl)
		want.Write(ctl)
	}
	got := make([]byte, want.Len())
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("the peer read the bytes out of order or altered")
	}
	testenv.WaitFor(t, 10*time.Second, "onDrain", func() error {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		if ev.drains != 1 || w.Busy() {
			return errors.New("still flushing")
		}
		return nil
	})
	if f := ev.failures(); len(f) != 0 {
		t.Fatalf("failures: %v", f)
	}
	// Drained: the next write goes straight out.
	mustWrite(t, w, []byte("after"))
	if w.Busy() {
		t.Fatal("Busy() after a small write to an empty socket")
	}
	if _, err := io.ReadFull(peer, got[:5]); err != nil || string(got[:5]) != "after" {
		t.Fatalf("read %q, %v", got[:5], err)
	}
}

// writeBig writes a 4 MB message, far more than the socket buffers hold.
func writeBig(t *testing.T, w *Writer) {
	t.Helper()
	msg := bytes.Repeat([]byte{1}, 4<<20)
	w.Cork(msg)
	mustWrite(t, w, msg)
	if err := w.Uncork(); err != nil {
		t.Fatal(err)
	}
}

func (e *events) waitFailure(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, "the flush to fail", func() error {
		if len(e.failures()) == 0 {
			return errors.New("no failure yet")
		}
		return nil
	})
}

func mustWrite(t *testing.T, w *Writer, p []byte) {
	t.Helper()
	if n, err := w.Write(p); err != nil || n != len(p) {
		t.Fatalf("Write(%d bytes) = %d, %v", len(p), n, err)
	}
}

// TestSockWriterDeadlineEndsWithTheFlush: a flush's write deadline does
// not outlive it; writes after it, past the deadline, still go out.
func TestSockWriterDeadlineEndsWithTheFlush(t *testing.T) {
	const timeout = 500 * time.Millisecond
	var ev events
	w, peer := tcpPair(t, timeout, &ev)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	msg := bytes.Repeat([]byte{1}, 256<<10) // more than the socket takes at once: a flush runs
	flushed := func(what string) {
		t.Helper()
		testenv.WaitFor(t, 10*time.Second, what, func() error {
			if f := ev.failures(); len(f) != 0 {
				t.Fatalf("a write failed: %v", f)
			}
			if w.Busy() {
				return errors.New("flushing")
			}
			return nil
		})
	}
	w.Cork(msg)
	mustWrite(t, w, msg)
	_ = w.Uncork()
	flushed("the flush to finish")
	// Let the flush's deadline pass (no condition to poll for: the test is
	// that a write after that instant still works).
	time.Sleep(timeout + 100*time.Millisecond)
	mustWrite(t, w, []byte("after the deadline"))
	w.Cork(msg)
	mustWrite(t, w, msg)
	if err := w.Uncork(); err != nil {
		t.Fatalf("a write after a finished flush failed: %v", err)
	}
	flushed("the second flush to finish")
}

// TestSockWriterStallIsTooSlow: a peer that stops reading makes the flush
// fail once its deadline passes, as a stall; later writes fail at once.
func TestSockWriterStallIsTooSlow(t *testing.T) {
	var ev events
	w, _ := tcpPair(t, 200*time.Millisecond, &ev)
	writeBig(t, w)
	ev.waitFailure(t)
	if f := ev.failures(); len(f) != 1 || !Stalled(f[0]) {
		t.Fatalf("failures %v, want one stall", f)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after a failed flush succeeded")
	}
	if !w.Busy() {
		t.Fatal("a failed writer is not Busy")
	}
}

// TestSockWriterPeerGoneIsNotAStall is the regression test for a viewer
// that disconnects while a write is pending: the failure is the peer's
// reset, not a stall, and it comes at once, not after the write timeout.
func TestSockWriterPeerGoneIsNotAStall(t *testing.T) {
	var ev events
	w, peer := tcpPair(t, time.Minute, &ev)
	writeBig(t, w)
	if !w.Busy() {
		t.Fatal("4 MB went out at once")
	}
	start := time.Now()
	_ = peer.SetLinger(0) // close with a reset, as a vanished peer's kernel answers
	peer.Close()
	ev.waitFailure(t)
	f := ev.failures()
	if len(f) != 1 || Stalled(f[0]) {
		t.Fatalf("failures %v, want one that is not a stall", f)
	}
	if !errors.Is(f[0], syscall.ECONNRESET) && !errors.Is(f[0], syscall.EPIPE) {
		t.Fatalf("failure %v, want a reset or a broken pipe", f[0])
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the failure took %v", d)
	}
}

// TestSockWriterClosedIsNotAStall: closing the connection on the gateway's
// side ends a blocked flush with net.ErrClosed, which its owner tells from
// a peer's failure.
func TestSockWriterClosedIsNotAStall(t *testing.T) {
	var ev events
	w, _ := tcpPair(t, time.Minute, &ev)
	writeBig(t, w)
	w.Close()
	ev.waitFailure(t)
	if f := ev.failures(); len(f) != 1 || !errors.Is(f[0], net.ErrClosed) || Stalled(f[0]) {
		t.Fatalf("failures %v, want one closed-connection error", f)
	}
}

// TestSockWriterBoundsCopies: bytes that are not part of the message being
// written are copied, and a peer that makes the gateway hold more than
// MaxCopied of them fails the writer.
func TestSockWriterBoundsCopies(t *testing.T) {
	w, _ := tcpPair(t, time.Minute, nil)
	chunk := make([]byte, 8<<10)
	w.Cork(nil) // nothing is kept by reference
	var err error
	for i := 0; i < 2*MaxCopied/len(chunk)+64 && err == nil; i++ { // far past the socket buffers and the bound
		_, err = w.Write(chunk)
	}
	if !errors.Is(err, ErrBacklog) || !Stalled(err) {
		t.Fatalf("Write error %v, want ErrBacklog", err)
	}
}

// TestSockWriterControlFlood: more than maxControlWrites writes outside
// data messages within controlWindow (pongs to a ping flood) fail the
// writer with ErrControlFlood, which ends the connection as control_flood.
func TestSockWriterControlFlood(t *testing.T) {
	w, peer := tcpPair(t, time.Minute, nil)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	pong := []byte{0x8A, 0}
	var err error
	n := 0
	for ; n <= w.ctlMax && err == nil; n++ {
		_, err = w.Write(pong)
	}
	if !errors.Is(err, ErrControlFlood) || n != w.ctlMax+1 || w.ctlMax != maxControlWrites+1 {
		t.Fatalf("write %d: %v, want ErrControlFlood at write %d (limit %d)", n, err, w.ctlMax+1, w.ctlMax)
	}
}

// TestSockWriterFastPathAllocatesNothing: a message the socket takes at
// once costs no allocation.
func TestSockWriterFastPathAllocatesNothing(t *testing.T) {
	w, peer := tcpPair(t, time.Minute, nil)
	go func() { _, _ = io.Copy(io.Discard, peer) }()
	msg := bytes.Repeat([]byte{1}, 1000)
	hdr := make([]byte, WriteBuffer)
	allocs := testing.AllocsPerRun(1000, func() {
		w.Cork(msg)
		_, _ = w.Write(hdr)
		_, _ = w.Write(msg[100:])
		if err := w.Uncork(); err != nil {
			t.Fatal(err)
		}
		for w.Busy() { // the reader fell behind: poll until the flusher finished
			time.Sleep(time.Millisecond)
		}
	})
	if allocs > 0.1 {
		t.Fatalf("%v allocations per message", allocs)
	}
}
