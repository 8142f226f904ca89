// Package socket owns the write side of the gateway's client connections:
// Writer is the one writer of a socket, and Hijack and Hijacker hand it,
// with buffers sized for the connection's role, to the code that speaks
// the protocol on top (coder/websocket for WebSockets, the gateway itself
// for MJPEG streams).
//
// # What it assumes of coder/websocket
//
// These assumptions are written here once, and each is pinned by a test in
// websocket_test.go that fails if an upgrade of coder/websocket breaks it:
//
//   - Accept hijacks the connection and writes every frame it sends (data
//     messages, pings, pongs, the close frame) through the bufio.Writer
//     that Hijack returns, and keeps that buffer for the connection's life.
//     A data message's payload larger than the buffer reaches Write as a
//     slice of the caller's message (bufio writes it straight through), so
//     a corked message is queued by reference, not copied
//     (TestWebsocketQueuesPayloadByReference). With a 128-byte buffer a
//     frame's header and the first bytes of its payload come in one chunk.
//   - It keeps the bufio.Reader Hijack returns, reading only what that
//     reader holds before its own reads (TestHijackKeepsEarlyBytes).
//   - v1.8.15 reports a connection that closes between two fragments of a
//     message as that message's end (io.EOF from the message reader), not
//     as an error: a reader must check ReadEnded before trusting a
//     message's end (TestWebsocketTruncatedMessageLooksWhole).
//   - Control frames the peer causes (a pong per ping, the close reply) are
//     written outside any data message, one Write each, which is what the
//     control-write budget counts (TestWebsocketPongsCountAsControlWrites).
package socket

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Events are what a Writer tells its owner. They are fixed when the Writer
// is made, before anything can fire them, and called from the flusher's
// goroutine; they must not block.
type Events interface {
	// Drained says the flusher emptied the queue: data messages written
	// now go out at once again.
	Drained()
	// Failed says a write failed; every later Write fails too. It is
	// called once, by the flusher (a failed Write also returns its error).
	Failed(err error)
}

// Options configure a Writer.
type Options struct {
	// WriteTimeout bounds one flush: a peer that takes nothing for this
	// long fails the writer with an error for which Stalled is true.
	WriteTimeout time.Duration
	// PingInterval is how often the owner pings the peer (0: never); it
	// widens the control-write budget by the pongs' share.
	PingInterval time.Duration
	// Events receive the flusher's news; nil ignores it.
	Events Events
}

// Writer is the one owner of the write side of a connection that
// receives frames: a viewer's, the seed's two-way connection, an MJPEG
// stream (a publisher's, too, for its pongs and close frame).
//
// The protocol on top (coder/websocket's Conn, or the gateway's MJPEG
// framing) hands Write every byte the connection carries, in order:
// coder/websocket serializes its frames (its methods may be called
// concurrently) and writes each one's bytes through the bufio.Writer
// Hijack returned. Writer is the only code that writes to the socket, and
// it never blocks its caller:
//
//   - Write appends p to a queue of pending slices and, unless corked or a
//     flush is running, writes what the socket takes now with one
//     non-blocking writev(2) (plain *net.TCPConn only).
//   - Whatever the socket does not take is left to the flusher, a goroutine
//     that exists only while bytes are pending: it writes them with blocking
//     writes under a write deadline and, while it runs, is the socket's only
//     writer; bytes written meanwhile queue behind it.
//
// No byte is parsed: where one WebSocket frame ends is coder/websocket's
// business, and a FIFO of bytes keeps its frames whole whatever its calls.
//
// Cork and Uncork bracket one data message written by the owner's writer
// (one goroutine at a time): while corked, Write only queues, so the bufio
// chunk that carries the frame header and the payload after it leave in one
// writev. Slices of the message itself are queued by reference (frames are
// immutable and shared); anything else is copied, into a small scratch
// buffer while it lasts, and at most MaxCopied bytes in all: a peer that
// makes the gateway queue more (pongs to pings it floods while never
// reading) fails the writer with ErrBacklog.
//
// Concurrency: Write, Busy, ReadEnded and Close may be called from any
// goroutine; Cork and Uncork by one writer at a time; Read by one reader.
type Writer struct {
	net.Conn
	raw     syscall.RawConn // nil unless the connection is a plain *net.TCPConn
	timeout time.Duration   // a flush that takes longer fails with os.ErrDeadlineExceeded
	ctlMax  int             // most control writes in a controlWindow
	events  Events          // never nil; fixed at construction

	busy     atomic.Bool // a flush is running or the writer failed: a data message now would queue
	readDone atomic.Bool // a read from the socket failed (EOF, reset, closed)

	mu       sync.Mutex // guards everything below
	pending  [][]byte   // accepted, not yet written, in order
	copied   int        // bytes copied into pending since it was last empty
	flushing bool       // the flusher owns the socket
	corked   bool
	shared   []byte // while corked: the immutable message whose slices are kept by reference
	err      error  // sticky: every Write after a failure returns it
	scratch  [scratchSize]byte
	used     int      // scratch[:used] is referenced by pending or a flusher batch
	batch    [][]byte // the flusher's slices, reused
	wv       writev
	ctlStart time.Time // start of the current control-write window
	ctlCount int       // writes outside a data message in that window
}

const (
	// scratchSize holds the copies of one or two of coder/websocket's bufio
	// chunks (WriteBuffer) without an allocation.
	scratchSize = 2 * WriteBuffer
	// MaxCopied bounds the bytes a writer holds in copies.
	MaxCopied = 64 << 10
	// maxControlWrites bounds the writes outside data messages that the
	// peer causes (pongs and close frames; coder/websocket writes one per
	// control frame) in any controlWindow, besides the gateway's own pings.
	// A peer that makes it answer hundreds of pings a second (a ping flood
	// costs a core) is cut off.
	maxControlWrites = 100
	controlWindow    = time.Second
)

var (
	// ErrBacklog says a peer made the writer queue more than MaxCopied bytes.
	ErrBacklog = errors.New("socket: peer does not read: write queue full")
	// ErrControlFlood says a peer made the writer write too many control frames.
	ErrControlFlood = fmt.Errorf("socket: more than %d control frames from the peer in %v", maxControlWrites, controlWindow)
)

// ignoreEvents is the Events of a Writer made without any.
type ignoreEvents struct{}

func (ignoreEvents) Drained()     {}
func (ignoreEvents) Failed(error) {}

// NewWriter wraps conn, a hijacked connection. Hijack and Hijacker make
// one; tests make their own.
func NewWriter(conn net.Conn, opts Options) *Writer {
	ctlMax := maxControlWrites + 1
	if opts.PingInterval > 0 {
		ctlMax += int(controlWindow / opts.PingInterval)
	}
	events := opts.Events
	if events == nil {
		events = ignoreEvents{}
	}
	w := &Writer{Conn: conn, timeout: opts.WriteTimeout, ctlMax: ctlMax, events: events}
	w.wv.call = w.wv.do
	if tc, ok := conn.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	return w
}

// LimitSendBuffer sets the socket's kernel send buffer to bytes (a plain
// TCP connection only; a failure leaves the kernel's autotuning).
func (w *Writer) LimitSendBuffer(bytes int) {
	if tc, ok := w.Conn.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(bytes)
	}
}

// Read reads from the socket, noting when reads end.
func (w *Writer) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err != nil {
		w.readDone.Store(true)
	}
	return n, err
}

// ReadEnded reports whether a read from the socket failed. A WebSocket
// message whose reader reported its end while this is true may have been
// cut off before its final fragment (see the package doc).
func (w *Writer) ReadEnded() bool { return w.readDone.Load() }

// Write queues p and writes what the socket takes without blocking. It
// returns len(p) once p is accepted, or the writer's error.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.corked {
		if now := time.Now(); now.Sub(w.ctlStart) > controlWindow {
			w.ctlStart, w.ctlCount = now, 0
		}
		if w.ctlCount++; w.ctlCount > w.ctlMax {
			w.failLocked(ErrControlFlood)
			return 0, w.err
		}
	}
	if !w.kept(p) {
		if w.copied+len(p) > MaxCopied {
			w.failLocked(ErrBacklog)
			return 0, w.err
		}
		w.copied += len(p)
		if w.used+len(p) <= len(w.scratch) {
			n := copy(w.scratch[w.used:], p)
			p = w.scratch[w.used : w.used+n : w.used+n]
			w.used += n
		} else {
			p = append([]byte(nil), p...)
		}
	}
	w.pending = append(w.pending, p)
	if !w.corked && !w.flushing {
		w.flushLocked()
	}
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// kept reports whether p lies within the shared message: then it can be
// queued by reference.
func (w *Writer) kept(p []byte) bool {
	if len(w.shared) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(w.shared)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return at >= base && at+uintptr(len(p)) <= base+uintptr(len(w.shared))
}

// Cork starts one data message: msg is the payload about to be written
// (through coder/websocket, or directly). Only the owner's writer calls
// it, and then Uncork.
func (w *Writer) Cork(msg []byte) {
	w.mu.Lock()
	w.corked, w.shared = true, msg
	w.mu.Unlock()
}

// Uncork ends the message Cork started and writes what the socket takes.
func (w *Writer) Uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked, w.shared = false, nil
	if w.err == nil && !w.flushing && len(w.pending) > 0 {
		w.flushLocked()
	}
	return w.err
}

// Busy reports whether a data message written now would wait behind a
// flush (or fail): the owner's writer then leaves frames in its queues
// until Events.Drained.
func (w *Writer) Busy() bool { return w.busy.Load() }

// flushLocked writes what the socket takes now and hands the rest to the
// flusher. Call with mu held, not corked, and no flush running.
func (w *Writer) flushLocked() {
	for w.raw != nil && len(w.pending) > 0 {
		n, full, err := w.wv.write(w.raw, w.pending)
		if err != nil {
			w.failLocked(err)
			return
		}
		w.consumeLocked(n)
		if full {
			break
		}
	}
	if len(w.pending) == 0 {
		w.pending = w.pending[:0]
		w.copied, w.used = 0, 0
		return
	}
	w.flushing = true
	w.busy.Store(true)
	go w.flush()
}

// consumeLocked drops the first n written bytes from pending.
func (w *Writer) consumeLocked(n int) {
	i := 0
	for ; i < len(w.pending) && n >= len(w.pending[i]); i++ {
		n -= len(w.pending[i])
	}
	if i < len(w.pending) {
		w.pending[i] = w.pending[i][n:]
	}
	rest := copy(w.pending, w.pending[i:])
	clear(w.pending[rest:])
	w.pending = w.pending[:rest]
}

// flush is the flusher: it owns the socket until the queue is empty.
func (w *Writer) flush() {
	err := w.Conn.SetWriteDeadline(time.Now().Add(w.timeout))
	for err == nil {
		w.mu.Lock()
		if w.err != nil {
			err = w.err
			w.mu.Unlock()
			break
		}
		if len(w.pending) == 0 {
			// The deadline must not outlive the flush: the non-blocking
			// writes after it would fail with it (RawConn.Write checks it).
			if err = w.Conn.SetWriteDeadline(time.Time{}); err != nil {
				w.mu.Unlock()
				break
			}
			w.flushing = false
			w.copied, w.used = 0, 0
			w.busy.Store(false)
			w.mu.Unlock()
			w.events.Drained()
			return
		}
		batch := append(w.batch[:0], w.pending...)
		clear(w.pending)
		w.pending = w.pending[:0]
		w.mu.Unlock()
		bufs := net.Buffers(batch)
		_, err = bufs.WriteTo(w.Conn) // writev on TCP; blocks until written or the deadline
		clear(batch)
		w.mu.Lock()
		w.batch = batch[:0]
		w.mu.Unlock()
	}
	w.mu.Lock()
	w.failLocked(err)
	err = w.err
	w.mu.Unlock()
	w.events.Failed(err)
}

func (w *Writer) failLocked(err error) {
	if w.err == nil {
		w.err = err
	}
	w.busy.Store(true)
}

// Close fails every later write with net.ErrClosed and closes the
// connection, which ends a blocked flush.
func (w *Writer) Close() error {
	w.mu.Lock()
	w.failLocked(net.ErrClosed)
	w.mu.Unlock()
	return w.Conn.Close()
}

// Stalled reports whether err, a write's, means the peer stopped reading
// (the flush outlived its deadline, or the peer let the queue fill), as
// opposed to a connection that is gone or was closed.
func Stalled(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, ErrBacklog)
}

// maxIov is the most slices one non-blocking writev takes: a message's
// header chunk and payload, and a control frame or two.
const maxIov = 4

// writev is one non-blocking writev(2) through syscall.RawConn. It lives
// in the Writer and call is bound once, so that a write allocates
// nothing (a closure passed to RawConn.Write per call would escape).
type writev struct {
	iov   [maxIov]syscall.Iovec
	cnt   int
	n     int
	errno syscall.Errno
	call  func(fd uintptr) bool // bound to do
}

func (t *writev) do(fd uintptr) bool {
	r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&t.iov[0])), uintptr(t.cnt))
	t.n, t.errno = int(r), e
	return true // never wait for the socket: that is the flusher's job
}

// write writes what the socket takes of bufs now. full reports that it took
// less than offered (or nothing: EAGAIN).
func (t *writev) write(raw syscall.RawConn, bufs [][]byte) (n int, full bool, err error) {
	t.cnt = 0
	offered := 0
	for _, b := range bufs {
		if t.cnt == maxIov {
			break
		}
		if len(b) > 0 {
			t.iov[t.cnt].Base = &b[0]
			t.iov[t.cnt].SetLen(len(b))
			t.cnt++
			offered += len(b)
		}
	}
	if t.cnt == 0 {
		return 0, false, nil
	}
	err = raw.Write(t.call)
	n, errno := t.n, t.errno
	clear(t.iov[:t.cnt]) // do not pin the buffers
	switch {
	case err != nil:
		return 0, false, err
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		return 0, true, nil
	case errno != 0:
		return 0, false, errno
	}
	return n, n < offered, nil
}
