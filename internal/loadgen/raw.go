package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"time"
)

// rawViewer is a minimal RFC 6455 client for the hot path of the load
// generator (-client raw): it reads the gateway's messages straight from the
// socket into one buffer, several frames per read system call when they are
// there, and hands back each data message without copying it. It answers
// pings and close frames and nothing else. coder/websocket's client reads a
// frame header through a 4 KiB bufio.Reader and the payload's rest
// separately: at least two reads per 50 KB message. Measured on two cores,
// the difference in client CPU per delivery is 5-20%, inside run-to-run
// noise, because the kernel's copy and wake-ups dominate; so coder stays the
// default, and raw serves where every cycle on the client side counts (the
// in-process BenchmarkFanout).
//
// A rawViewer is used by one goroutine; Close may be called from any.
type rawViewer struct {
	conn       net.Conn
	buf        []byte // buf[start:end] holds bytes read but not yet consumed
	start, end int
	frag       []byte // a fragmented message being reassembled
	fragOn     bool
	mask       [4]byte
}

// rawBufSize is the initial read buffer: room for two 50 KB frames. It
// grows to fit a larger frame.
const rawBufSize = 128 << 10

// maxRawFrame bounds a frame's payload, like a read limit.
const maxRawFrame = readLimit

// websocketGUID is RFC 6455's key suffix.
const websocketGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

var errRawClosed = errors.New("loadgen: the gateway closed the connection")

// dialRaw opens a WebSocket to wsURL (ws://host:port/path?query) with a
// hand-written handshake.
func dialRaw(ctx context.Context, wsURL string) (*rawViewer, error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "ws" {
		return nil, fmt.Errorf("the raw client speaks ws:// only, not %s://", u.Scheme)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	k := base64.StdEncoding.EncodeToString(key[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + k +
		"\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	// Read the response headers; bytes after them are the first frames.
	br := bufio.NewReaderSize(conn, 4096)
	status, err := br.ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("failed to read the handshake response: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 101") {
		conn.Close()
		return nil, fmt.Errorf("handshake refused: %s", strings.TrimSpace(status))
	}
	sum := sha1.Sum([]byte(k + websocketGUID))
	wantAccept := base64.StdEncoding.EncodeToString(sum[:])
	accepted := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("failed to read the handshake response: %w", err)
		}
		line = strings.TrimSpace(line)
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(strings.TrimSpace(name), "Sec-WebSocket-Accept") && strings.TrimSpace(value) == wantAccept {
			accepted = true
		}
	}
	if !accepted {
		conn.Close()
		return nil, errors.New("handshake response lacks the right Sec-WebSocket-Accept")
	}
	_ = conn.SetDeadline(time.Time{})
	r := &rawViewer{conn: conn, buf: make([]byte, rawBufSize)}
	r.end = copy(r.buf, peekBuffered(br))
	return r, nil
}

// peekBuffered returns what br has read past the headers.
func peekBuffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// Next returns the next data message's payload and whether it is text.
// The slice is valid until the next call. Control frames are handled on
// the way: pings answered, a close frame answered and reported as
// errRawClosed.
func (r *rawViewer) Next() ([]byte, error) {
	for {
		fin, op, payload, err := r.frame()
		if err != nil {
			return nil, err
		}
		switch op {
		case 0x9: // ping
			if err := r.write(0xA, payload[:min(len(payload), 125)]); err != nil {
				return nil, err
			}
			continue
		case 0xA: // pong
			continue
		case 0x8: // close: echo the code, then stop
			code := payload[:min(len(payload), 2)]
			_ = r.write(0x8, code)
			return nil, errRawClosed
		case 0x0: // continuation
			if !r.fragOn {
				return nil, errors.New("loadgen: continuation frame without a message")
			}
			r.frag = append(r.frag, payload...)
			if fin {
				r.fragOn = false
				return r.frag, nil
			}
			continue
		case 0x1, 0x2:
			if fin {
				return payload, nil
			}
			r.frag = append(r.frag[:0], payload...)
			r.fragOn = true
			continue
		default:
			return nil, fmt.Errorf("loadgen: unknown opcode %#x", op)
		}
	}
}

// frame returns the next frame, reading as much as the socket has.
func (r *rawViewer) frame() (fin bool, op byte, payload []byte, err error) {
	if err := r.fill(2); err != nil {
		return false, 0, nil, err
	}
	b := r.buf[r.start:r.end]
	fin, op = b[0]&0x80 != 0, b[0]&0x0F
	if b[1]&0x80 != 0 {
		return false, 0, nil, errors.New("loadgen: the server sent a masked frame")
	}
	hdr, n := 2, uint64(b[1]&0x7F)
	switch n {
	case 126:
		hdr = 4
	case 127:
		hdr = 10
	}
	if err := r.fill(hdr); err != nil {
		return false, 0, nil, err
	}
	b = r.buf[r.start:r.end]
	switch hdr {
	case 4:
		n = uint64(binary.BigEndian.Uint16(b[2:4]))
	case 10:
		n = binary.BigEndian.Uint64(b[2:10])
	}
	if n > maxRawFrame {
		return false, 0, nil, fmt.Errorf("loadgen: %d-byte frame is over the %d-byte limit", n, maxRawFrame)
	}
	total := hdr + int(n)
	if err := r.fill(total); err != nil {
		return false, 0, nil, err
	}
	payload = r.buf[r.start+hdr : r.start+total]
	r.start += total
	return fin, op, payload, nil
}

// fill reads until buf[start:end] holds at least n bytes, compacting or
// growing the buffer first if n would not fit after start.
func (r *rawViewer) fill(n int) error {
	if r.end-r.start >= n {
		return nil
	}
	if r.start == r.end {
		// Everything consumed: read into the front again, which stays in
		// cache, instead of walking through the whole buffer.
		r.start, r.end = 0, 0
	}
	if r.start+n > len(r.buf) {
		// Move the partial frame to the front; grow if it cannot fit. The
		// caller holds no slice into buf across fill (payloads handed out
		// by Next are valid only until the next call).
		if n > len(r.buf) {
			nb := make([]byte, max(n, 2*len(r.buf)))
			r.end = copy(nb, r.buf[r.start:r.end])
			r.buf = nb
		} else {
			r.end = copy(r.buf, r.buf[r.start:r.end])
		}
		r.start = 0
	}
	for r.end-r.start < n {
		m, err := r.conn.Read(r.buf[r.end:])
		r.end += m
		if err != nil {
			if r.end-r.start >= n {
				return nil
			}
			return err
		}
	}
	return nil
}

// write sends one masked control frame (payload ≤ 125 bytes).
func (r *rawViewer) write(op byte, payload []byte) error {
	var f [2 + 4 + 125]byte
	f[0] = 0x80 | op
	f[1] = 0x80 | byte(len(payload))
	_, _ = rand.Read(r.mask[:])
	copy(f[2:6], r.mask[:])
	for i, c := range payload {
		f[6+i] = c ^ r.mask[i%4]
	}
	_, err := r.conn.Write(f[:6+len(payload)])
	return err
}

// Close closes the connection without a close handshake.
func (r *rawViewer) Close() error { return r.conn.Close() }
