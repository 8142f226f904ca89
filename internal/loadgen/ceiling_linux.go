package loadgen

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// ceilingPollMS bounds how long a ceiling reader waits for data before it
// looks whether it should stop.
const ceilingPollMS = 50

// ceilingReaders read the ceiling's connections in this process: one
// thread per core (GOMAXPROCS), each with an epoll set over its share of
// the connections and one buffer it reads every ready socket into, so the
// destination of every copy stays in the core's cache. Go's own reads (a
// goroutine per connection, each with its buffer) cost more per byte at a
// thousand connections, and the ceiling wants the cheapest reader.
type ceilingReaders struct {
	total atomic.Uint64 // bytes read
	quit  atomic.Bool
	wg    sync.WaitGroup
	once  sync.Once
}

// startCeilingReaders starts reading cs. The caller keeps cs open until
// stop has returned.
func startCeilingReaders(cs []net.Conn) (*ceilingReaders, error) {
	r := &ceilingReaders{}
	n := min(runtime.GOMAXPROCS(0), len(cs))
	for t := range n {
		ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			r.stop()
			return nil, fmt.Errorf("failed to create the ceiling's epoll set: %w", err)
		}
		for i := t; i < len(cs); i += n {
			fd, err := socketFD(cs[i])
			if err == nil {
				ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}
				err = syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev)
			}
			if err != nil {
				_ = syscall.Close(ep)
				r.stop()
				return nil, fmt.Errorf("failed to watch a ceiling connection: %w", err)
			}
		}
		r.wg.Add(1)
		go r.read(ep)
	}
	return r, nil
}

// read reads every socket epoll set ep reports ready, once per report
// (level-triggered: one still holding data is reported again), until quit.
func (r *ceilingReaders) read(ep int) {
	defer r.wg.Done()
	defer syscall.Close(ep)
	runtime.LockOSThread()
	buf := make([]byte, ceilingReadSize)
	evs := make([]syscall.EpollEvent, 128)
	for !r.quit.Load() {
		k, err := syscall.EpollWait(ep, evs, ceilingPollMS)
		if err != nil && err != syscall.EINTR {
			return
		}
		var got uint64
		for _, e := range evs[:max(k, 0)] {
			// Reads are non-blocking (Go's sockets are): EAGAIN just
			// means another report raced this one.
			if m, _ := syscall.Read(int(e.Fd), buf); m > 0 {
				got += uint64(m)
			}
		}
		r.total.Add(got)
	}
}

// stop stops the readers and waits for them; it may be called again.
func (r *ceilingReaders) stop() {
	r.once.Do(func() {
		r.quit.Store(true)
		r.wg.Wait()
	})
}

// socketFD returns c's file descriptor; the caller keeps c open while it
// uses it.
func socketFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("%T has no file descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd int
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return 0, err
	}
	return fd, nil
}
