package gateway

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

// sockWriter is the one owner of the write side of a connection that
// receives frames: a viewer's, or the seed's two-way connection.
//
// coder/websocket writes every WebSocket frame such a connection carries:
// the data messages the viewer's writer hands it (Conn.Write), pings, pongs
// and the close frame. Its Conn serializes them (its methods may be called
// concurrently) and writes each one's bytes, through its bufio.Writer, into
// sockWriter.Write, so the bytes reach Write in the order they must go out.
// sockWriter is the only code that writes to the socket, and it never blocks
// its caller:
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
// cork and uncork bracket one data message written by the viewer's writer
// (one goroutine at a time): while corked, Write only queues, so the bufio
// chunk that carries the frame header and the payload after it leave in one
// writev. Slices of the message itself are queued by reference (frames are
// immutable and shared); anything else is copied, into a small scratch
// buffer while it lasts, and at most maxCopied bytes in all: a peer that
// makes the gateway queue more (pongs to pings it floods while never
// reading) fails the writer.
type sockWriter struct {
	net.Conn
	raw     syscall.RawConn // nil unless the connection is a plain *net.TCPConn
	timeout time.Duration   // a flush that takes longer fails with os.ErrDeadlineExceeded
	ctlMax  int             // most control writes in a controlWindow
	onDrain func()          // called by the flusher after it emptied the queue
	onFail  func(error)     // called by the flusher when a write fails; once

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
	// chunks (viewerWriteBuffer) without an allocation.
	scratchSize = 2 * viewerWriteBuffer
	// maxCopied bounds the bytes a writer holds in copies.
	maxCopied = 64 << 10
	// maxControlWrites bounds the writes outside data messages that the
	// peer causes (pongs and close frames; coder/websocket writes one per
	// control frame) in any controlWindow, besides the gateway's own pings.
	// A peer that makes it answer hundreds of pings a second (a ping flood
	// costs a core) is cut off.
	maxControlWrites = 100
	controlWindow    = time.Second
)

var (
	// errBacklog says a peer made the gateway queue more than maxCopied bytes.
	errBacklog = errors.New("gateway: peer does not read: write queue full")
	// errControlFlood says a peer made the gateway write too many control frames.
	errControlFlood = fmt.Errorf("gateway: more than %d control frames from the peer in %v", maxControlWrites, controlWindow)
)

// newSockWriter wraps a hijacked connection whose flushes time out after
// timeout and which the gateway pings every pingInterval. onDrain and
// onFail are set by the owner before the first write.
func newSockWriter(conn net.Conn, timeout, pingInterval time.Duration) *sockWriter {
	ctlMax := maxControlWrites + 1
	if pingInterval > 0 {
		ctlMax += int(controlWindow / pingInterval)
	}
	w := &sockWriter{Conn: conn, timeout: timeout, ctlMax: ctlMax, onDrain: func() {}, onFail: func(error) {}}
	w.wv.call = w.wv.do
	if tc, ok := conn.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			w.raw = raw
		}
	}
	return w
}

// limitSendBuffer sets the socket's kernel send buffer to bytes (a plain
// TCP connection only; a failure leaves the kernel's autotuning).
func (w *sockWriter) limitSendBuffer(bytes int) {
	if tc, ok := w.Conn.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(bytes)
	}
}

// Read reads from the socket, noting when reads end.
func (w *sockWriter) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if err != nil {
		w.readDone.Store(true)
	}
	return n, err
}

// ReadEnded reports whether a read from the socket failed. A WebSocket
// message whose reader reported its end while this is true may have been
// cut off before its final fragment: coder/websocket v1.8.15 reports a
// connection closed between two fragments as the message's end (EOF).
func (w *sockWriter) ReadEnded() bool { return w.readDone.Load() }

// Write queues p and writes what the socket takes without blocking. It
// returns len(p) once p is accepted, or the writer's error.
func (w *sockWriter) Write(p []byte) (int, error) {
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
			w.failLocked(errControlFlood)
			return 0, w.err
		}
	}
	if !w.kept(p) {
		if w.copied+len(p) > maxCopied {
			w.failLocked(errBacklog)
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
func (w *sockWriter) kept(p []byte) bool {
	if len(w.shared) == 0 {
		return false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(w.shared)))
	at := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	return at >= base && at+uintptr(len(p)) <= base+uintptr(len(w.shared))
}

// cork starts one data message: msg is the payload about to be handed to
// coder/websocket. Only the viewer's writer calls it, and then uncork.
func (w *sockWriter) cork(msg []byte) {
	w.mu.Lock()
	w.corked, w.shared = true, msg
	w.mu.Unlock()
}

// uncork ends the message cork started and writes what the socket takes.
func (w *sockWriter) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked, w.shared = false, nil
	if w.err == nil && !w.flushing && len(w.pending) > 0 {
		w.flushLocked()
	}
	return w.err
}

// Busy reports whether a data message written now would wait behind a
// flush (or fail): the viewer's writer then leaves frames in the viewer's
// queue until onDrain.
func (w *sockWriter) Busy() bool { return w.busy.Load() }

// flushLocked writes what the socket takes now and hands the rest to the
// flusher. Call with mu held, not corked, and no flush running.
func (w *sockWriter) flushLocked() {
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
func (w *sockWriter) consumeLocked(n int) {
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
func (w *sockWriter) flush() {
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
			w.onDrain()
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
	w.onFail(err)
}

func (w *sockWriter) failLocked(err error) {
	if w.err == nil {
		w.err = err
	}
	w.busy.Store(true)
}

// Close fails every later write with net.ErrClosed and closes the
// connection, which ends a blocked flush.
func (w *sockWriter) Close() error {
	w.mu.Lock()
	w.failLocked(net.ErrClosed)
	w.mu.Unlock()
	return w.Conn.Close()
}

// writeStalled reports whether err means the peer stopped reading (the
// flush outlived its deadline, or the peer let the queue fill), as opposed
// to a connection that is gone or was closed.
func writeStalled(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, errBacklog)
}

// maxIov is the most slices one non-blocking writev takes: a message's
// header chunk and payload, and a control frame or two.
const maxIov = 4

// writev is one non-blocking writev(2) through syscall.RawConn. It lives
// in the sockWriter and call is bound once, so that a write allocates
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
