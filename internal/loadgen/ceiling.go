package loadgen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CeilingWriterEnv carries the ceiling writer's parameters, "ADDR CONNS
// BYTES", from the measuring process to the writing child it starts.
const CeilingWriterEnv = "FRAMECAST_CEILING_WRITER"

// The ceiling's window starts once socket buffers have filled. Until they
// are full the writers run ahead of the readers and take the CPU the
// readers need (at a thousand connections the kernel lets them buffer a
// gigabyte or more), so a window that starts early reads too little.
// After ceilingWarmup the bytes in flight (the writer's wchar less the
// bytes read) are checked every ceilingSettle; the window starts when
// twice in a row they changed by less than ceilingSteady of what was read
// meanwhile (readers draining a backlog are not steady either), or after
// ceilingMaxWarmup.
const (
	ceilingWarmup    = 500 * time.Millisecond
	ceilingSettle    = 250 * time.Millisecond
	ceilingSteady    = 0.05
	ceilingMaxWarmup = 10 * time.Second
)

// ceilingReadSize is each ceiling reader's buffer: several frames, so a
// reader that fell behind catches up in few system calls.
const ceilingReadSize = 256 << 10

// MeasureCeiling measures the loopback ceiling: the most frame bytes per
// second this machine moves from one process writing to conns TCP
// connections to another process reading them. It is the limit a gateway
// relaying frames of frameBytes to conns viewers on this machine works
// under, and the figure the benchmarks compare delivered payload with.
//
// The writer is a child process started with writerCmd (CeilingWriterEnv
// carries its parameters; see ServeCeilingWriter): as many writer threads
// as it has cores, each writing whole frames in turn to its share of the
// connections, one blocking write system call per frame per connection.
// A gateway writes a frame to a socket with one write too, but non-blocking
// and from shard goroutines that do other work besides, so this is an
// upper bound on what any writer of whole frames achieves. This process
// reads and counts what arrives, one thread per core polling its share of
// the connections into one buffer (see ceilingReaders): cheaper than any
// WebSocket viewer. Once the socket buffers are full (see ceilingWarmup),
// bytes read over window are the ceiling; the writer's wchar in
// /proc/PID/io over the same window (bytes its write system calls took)
// is reported beside it as the kernel's count, equal to it within what
// the socket buffers' fill changed.
//
// Loopback throughput swings between runs on shared machines: compare
// figures measured in the same run.
func MeasureCeiling(ctx context.Context, conns, frameBytes int, window time.Duration, writerCmd []string) (*CeilingReport, error) {
	if conns < 1 || frameBytes < MinPayloadSize || len(writerCmd) == 0 {
		return nil, errors.New("loadgen: ceiling needs connections, a frame size and a writer command")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen for the ceiling: %w", err)
	}
	defer ln.Close()

	var out strings.Builder
	var outMu sync.Mutex
	cmd := exec.Command(writerCmd[0], writerCmd[1:]...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", CeilingWriterEnv, ln.Addr(), conns, frameBytes))
	cmd.Stdout, cmd.Stderr = lockedWriter{&outMu, &out}, lockedWriter{&outMu, &out}
	// The writer stops when its standard input ends: closing it here is
	// the normal end, and an end of this process stops it too.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("failed to start the ceiling writer: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start the ceiling writer: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var cs []net.Conn
	var readers *ceilingReaders
	stop := func() {
		if readers != nil {
			readers.stop() // before the sockets close under them
		}
		_ = stdin.Close()
		for _, c := range cs {
			_ = c.Close() // also ends writes blocked on a full socket
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	fail := func(err error) (*CeilingReport, error) {
		stop()
		outMu.Lock()
		defer outMu.Unlock()
		return nil, fmt.Errorf("%w; writer output: %s", err, strings.TrimSpace(out.String()))
	}

	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	for len(cs) < conns {
		c, err := ln.Accept()
		if err != nil {
			return fail(fmt.Errorf("failed to accept ceiling connection %d of %d: %w", len(cs)+1, conns, err))
		}
		cs = append(cs, c)
	}
	if readers, err = startCeilingReaders(cs); err != nil {
		return fail(err)
	}

	pid := cmd.Process.Pid
	type edge struct {
		read, wchar uint64
		wcharErr    error
		writer      ProcSample
		writerErr   error
		reader      time.Duration
		at          time.Time
	}
	sample := func() edge {
		var e edge
		e.wchar, e.wcharErr = ReadWchar(pid)
		e.writer, e.writerErr = ReadProc(pid)
		e.reader = selfCPU()
		e.read, e.at = readers.total.Load(), time.Now()
		return e
	}
	began := time.Now()
	if !sleepUntil(ctx, began.Add(ceilingWarmup)) {
		return fail(ctx.Err())
	}
	e0 := sample()
	for steady := 0; steady < 2 && e0.wcharErr == nil && time.Since(began) < ceilingMaxWarmup; {
		if !sleepUntil(ctx, time.Now().Add(ceilingSettle)) {
			return fail(ctx.Err())
		}
		e := sample()
		grew := (float64(e.wchar) - float64(e.read)) - (float64(e0.wchar) - float64(e0.read))
		if e.wcharErr == nil && math.Abs(grew) < ceilingSteady*float64(e.read-e0.read) {
			steady++
		} else {
			steady = 0
		}
		e0 = e
	}
	warm := time.Since(began)
	if !sleepUntil(ctx, time.Now().Add(window)) {
		return fail(ctx.Err())
	}
	e1 := sample()
	select {
	case err := <-exited:
		exited <- err // for stop
		return fail(fmt.Errorf("the ceiling writer ended during the window: %v", err))
	default:
	}
	stop()

	outMu.Lock()
	writers, _ := strconv.Atoi(strings.TrimPrefix(firstLine(out.String()), "writers "))
	outMu.Unlock()
	sec := e1.at.Sub(e0.at).Seconds()
	rep := &CeilingReport{
		Conns:       conns,
		BufBytes:    frameBytes,
		Writers:     writers,
		Seconds:     sec,
		WarmupSec:   warm.Seconds(),
		MBSec:       float64(e1.read-e0.read) / sec / 1e6,
		MsgSec:      float64(e1.read-e0.read) / float64(frameBytes) / sec,
		ReaderCores: (e1.reader - e0.reader).Seconds() / sec,
	}
	if e0.wcharErr == nil && e1.wcharErr == nil {
		rep.WcharMBSec = float64(e1.wchar-e0.wchar) / sec / 1e6
	}
	if e0.writerErr == nil && e1.writerErr == nil {
		rep.WriterCores = (e1.writer.CPU - e0.writer.CPU).Seconds() / sec
	}
	return rep, nil
}

// ServeCeilingWriter is the writing side of MeasureCeiling, run in a child
// process: spec is the value of CeilingWriterEnv, "ADDR CONNS BYTES". It
// opens CONNS connections to ADDR, prints "writers N" on its standard
// output, and writes frames of BYTES to them from N threads (N =
// GOMAXPROCS, the cores it may use), thread i owning connections i, i+N,
// i+2N, ...: one blocking write(2) per frame per connection in turn,
// bypassing Go's poller, as the cheapest writer of whole frames. It
// returns when its standard input ends or every connection has failed
// (the reader closed them: the normal end).
func ServeCeilingWriter(spec string) error {
	f := strings.Fields(spec)
	var conns, size int
	var err1, err2 error
	if len(f) == 3 {
		conns, err1 = strconv.Atoi(f[1])
		size, err2 = strconv.Atoi(f[2])
	}
	if len(f) != 3 || err1 != nil || err2 != nil || conns < 1 || size < MinPayloadSize {
		return fmt.Errorf("loadgen: bad %s %q, want \"ADDR CONNS BYTES\"", CeilingWriterEnv, spec)
	}
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			_ = c.Close()
		}
	}()
	fds := make([]int, 0, conns)
	for range conns {
		c, err := net.DialTimeout("tcp", f[0], 10*time.Second)
		if err != nil {
			return fmt.Errorf("failed to connect to the ceiling reader: %w", err)
		}
		cs = append(cs, c)
		fd, err := blockingFD(c.(*net.TCPConn))
		if err != nil {
			return err
		}
		fds = append(fds, fd)
	}
	frame, _ := MakeJPEG(size, 2)
	writers := min(runtime.GOMAXPROCS(0), conns)
	fmt.Printf("writers %d\n", writers)

	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			mine := make([]int, 0, conns/writers+1)
			for i := w; i < len(fds); i += writers {
				mine = append(mine, fds[i])
			}
			for len(mine) > 0 {
				for i := 0; i < len(mine); {
					if writeFrame(mine[i], frame) != nil {
						mine = append(mine[:i], mine[i+1:]...)
						continue
					}
					i++
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	select {
	case <-done:
	case <-finished:
	}
	return nil
}

// blockingFD returns c's file descriptor switched to blocking mode. The
// caller keeps c (its finalizer would close the descriptor) and writes
// with system calls of its own; Go's poller no longer serves c.
func blockingFD(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("failed to reach a ceiling socket: %w", err)
	}
	var fd int
	var serr error
	if err := rc.Control(func(s uintptr) {
		fd = int(s)
		serr = syscall.SetNonblock(fd, false)
	}); err != nil {
		return 0, fmt.Errorf("failed to reach a ceiling socket: %w", err)
	}
	if serr != nil {
		return 0, fmt.Errorf("failed to make a ceiling socket blocking: %w", serr)
	}
	return fd, nil
}

// writeFrame writes all of frame to the blocking socket fd: one write(2),
// more only if a signal interrupts it part way.
func writeFrame(fd int, frame []byte) error {
	for len(frame) > 0 {
		n, err := syscall.Write(fd, frame)
		if err == syscall.EINTR || err == syscall.EAGAIN {
			continue
		}
		if err != nil {
			return err
		}
		frame = frame[n:]
	}
	return nil
}

// ReadWchar returns /proc/PID/io's wchar: the bytes pid has passed to
// write system calls (sockets included) since it started.
func ReadWchar(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, fmt.Errorf("failed to read process %d's I/O counters: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "wchar:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no wchar in /proc/%d/io", pid)
}

// defaultCeilingWriter runs this executable as the ceiling writer.
func defaultCeilingWriter() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("failed to find this executable for the ceiling writer: %w", err)
	}
	return []string{exe, "-ceiling-writer"}, nil
}

// lockedWriter serializes writes to w: a child's stdout and stderr are
// copied by two goroutines.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
