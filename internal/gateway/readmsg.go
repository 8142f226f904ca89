package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
)

// readBudget bounds the memory a replica holds in messages that are still
// being read: bytes buffered for a message count from its first byte until
// it ends (then they are a frame, or garbage). A client that starts many
// large messages and never finishes them can pin no more than the budget
// before new large messages are refused. It is safe for concurrent use.
type readBudget struct {
	max  int64 // 0: no budget
	used atomic.Int64
}

// reserve takes n bytes from the budget, or reports that they would pass it.
func (b *readBudget) reserve(n int64) bool {
	if b == nil || b.max == 0 {
		return true
	}
	if b.used.Add(n) > b.max {
		b.used.Add(-n)
		return false
	}
	return true
}

func (b *readBudget) release(n int64) {
	if b != nil && b.max != 0 {
		b.used.Add(-n)
	}
}

// Errors of messageReader.read; both end the connection (closeTable).
var (
	errReadBudget   = errors.New("gateway: unfinished messages of all connections are at the read budget")
	errMessageLimit = errors.New("gateway: message over this connection's limit")
)

// messageReader reads one connection's messages into buffers sized to what
// it reads now: each message gets a fresh buffer that starts at about the
// size of the one before, grows by doubling, and becomes the frame's own
// memory, trimmed to within a quarter of its length. Nothing large stays
// allocated between messages, so an idle publisher holds no read buffer,
// and a frame costs about its size once. One goroutine at a time.
type messageReader struct {
	budget *readBudget
	limit  int // most bytes a message may have; 0: coder/websocket's read limit alone
	last   int // length of the previous message
}

// minReadBuffer is the smallest buffer a message starts with.
const minReadBuffer = 4 << 10

// read reads r to its end.
func (m *messageReader) read(r io.Reader) ([]byte, error) {
	size := max(m.last+m.last/8, minReadBuffer)
	if m.limit > 0 {
		size = min(size, m.limit+1)
	}
	held := int64(size)
	if !m.budget.reserve(held) {
		return nil, errReadBudget
	}
	defer func() { m.budget.release(held) }()
	buf := make([]byte, 0, size)
	for {
		if len(buf) == cap(buf) {
			grow := cap(buf)
			if !m.budget.reserve(int64(grow)) {
				return nil, errReadBudget
			}
			held += int64(grow)
			buf = slices.Grow(buf, grow)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if m.limit > 0 && len(buf) > m.limit {
			return nil, fmt.Errorf("%w of %d bytes", errMessageLimit, m.limit)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	m.last = len(buf)
	if cap(buf)-len(buf) > len(buf)/4+minReadBuffer {
		buf = bytes.Clone(buf) // the frame keeps this: no more than it needs
	}
	return buf, nil
}
