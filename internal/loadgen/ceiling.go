package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CeilingReaderEnv carries the ceiling reader's parameters, "ADDR CONNS",
// from the measuring process to the reading child it starts.
const CeilingReaderEnv = "FRAMECAST_CEILING_READER"

// ceilingWarmup is how long the ceiling's writers run before measuring, so
// the window sees the steady state rather than socket buffers filling.
const ceilingWarmup = 500 * time.Millisecond

// MeasureCeiling measures the loopback ceiling: this process writes bufSize
// buffers to conns TCP connections as fast as it can, one writer goroutine
// per connection (the gateway's shape), while a child process started with
// readerCmd reads and discards them. It returns the throughput over window,
// after a short warmup.
//
// One process writing and a second reading is the setup ANCHORS.md quotes;
// loopback throughput swings between runs, so compare figures measured in
// the same run.
func MeasureCeiling(ctx context.Context, conns, bufSize int, window time.Duration, readerCmd []string) (*CeilingReport, error) {
	if conns < 1 || bufSize < 1 || len(readerCmd) == 0 {
		return nil, errors.New("loadgen: ceiling needs connections, a buffer size and a reader command")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("failed to listen for the ceiling: %w", err)
	}
	defer ln.Close()

	var out bytes.Buffer
	cmd := exec.Command(readerCmd[0], readerCmd[1:]...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", CeilingReaderEnv, ln.Addr(), conns))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start the ceiling reader: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(err error) (*CeilingReport, error) {
		_ = cmd.Process.Kill()
		<-exited
		return nil, fmt.Errorf("%w; reader output: %s", err, strings.TrimSpace(out.String()))
	}

	_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(30 * time.Second))
	cs := make([]net.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			_ = c.Close()
		}
	}()
	for len(cs) < conns {
		c, err := ln.Accept()
		if err != nil {
			return fail(fmt.Errorf("failed to accept ceiling connection %d of %d: %w", len(cs)+1, conns, err))
		}
		cs = append(cs, c)
	}

	buf, _ := MakeJPEG(max(bufSize, MinPayloadSize), 2)
	buf = buf[:bufSize]
	var (
		total atomic.Uint64
		msgs  atomic.Uint64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				n, err := c.Write(buf)
				total.Add(uint64(n))
				msgs.Add(1)
				if err != nil {
					return
				}
			}
		}()
	}
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	ok := wait(ceilingWarmup)
	b0, m0, t0 := total.Load(), msgs.Load(), time.Now()
	ok = ok && wait(window)
	b1, m1, t1 := total.Load(), msgs.Load(), time.Now()
	stop.Store(true)
	for _, c := range cs {
		_ = c.Close() // unblocks writers stuck on full buffers
	}
	wg.Wait()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	if !ok {
		return nil, ctx.Err()
	}
	sec := t1.Sub(t0).Seconds()
	return &CeilingReport{
		Conns:    conns,
		BufBytes: bufSize,
		Seconds:  sec,
		MBSec:    float64(b1-b0) / sec / 1e6,
		MsgSec:   float64(m1-m0) / sec,
	}, nil
}

// ServeCeilingReader is the reading side of MeasureCeiling, run in a child
// process: spec is the value of CeilingReaderEnv, "ADDR CONNS". It opens
// CONNS connections to ADDR, reads and discards everything on each, and
// returns when all of them have ended.
func ServeCeilingReader(spec string) error {
	addr, n, ok := strings.Cut(strings.TrimSpace(spec), " ")
	conns, err := strconv.Atoi(n)
	if !ok || err != nil || conns < 1 {
		return fmt.Errorf("loadgen: bad %s %q, want \"ADDR CONNS\"", CeilingReaderEnv, spec)
	}
	cs := make([]net.Conn, 0, conns)
	for range conns {
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			for _, c := range cs {
				_ = c.Close()
			}
			return fmt.Errorf("failed to connect to the ceiling writer: %w", err)
		}
		cs = append(cs, c)
	}
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			buf := make([]byte, 64<<10)
			for {
				if _, err := c.Read(buf); err != nil {
					return // EOF or reset: the writer closed, the normal end
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// defaultCeilingReader runs this executable as the ceiling reader.
func defaultCeilingReader() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("failed to find this executable for the ceiling reader: %w", err)
	}
	return []string{exe, "-ceiling-reader"}, nil
}
