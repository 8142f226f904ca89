//go:build !linux

package loadgen

import (
	"errors"
	"net"
	"sync/atomic"
)

// ceilingReaders is Linux-only (epoll); elsewhere the ceiling is not
// measured.
type ceilingReaders struct{ total atomic.Uint64 }

func startCeilingReaders([]net.Conn) (*ceilingReaders, error) {
	return nil, errors.New("loadgen: the loopback ceiling is measured on Linux only")
}

func (*ceilingReaders) stop() {}
