package socket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
)

// The tests in this file pin what the package doc says Writer and Hijacker
// assume of coder/websocket. If one fails after an upgrade, the assumption
// broke: read the package doc before changing the test.

// accepted is the server side of one test WebSocket.
type accepted struct {
	c *websocket.Conn
	w *Writer
}

// serve starts a server whose handler upgrades through a Hijacker with
// opts and hands the connection to the test.
func serve(t *testing.T, readBuffer int, opts Options) (url string, conns <-chan accepted) {
	t.Helper()
	ch := make(chan accepted, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := NewHijacker(w, readBuffer, opts)
		c, err := websocket.Accept(h, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		c.SetReadLimit(1 << 20)
		ch <- accepted{c: c, w: h.Writer()}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http"), ch
}

func take(t *testing.T, conns <-chan accepted) accepted {
	t.Helper()
	select {
	case a := <-conns:
		t.Cleanup(func() { a.c.CloseNow() })
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted")
	}
	return accepted{}
}

// TestWebsocketQueuesPayloadByReference pins that coder/websocket writes a
// large message's payload through the Hijack's bufio.Writer as a slice of
// the caller's message: while the peer reads nothing, the Writer holds the
// whole message queued, yet has copied only the small first chunk.
func TestWebsocketQueuesPayloadByReference(t *testing.T) {
	url, conns := serve(t, ViewerReadBuffer, Options{WriteTimeout: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A client that takes little before it reads: its receive buffer is
	// set before connecting, so that the window it advertises stays small
	// (set after, loopback's autotuned window can take the whole message).
	client, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: testenv.SmallReceiveClient(4 << 10)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.CloseNow()
	client.SetReadLimit(8 << 20)
	a := take(t, conns)
	a.w.LimitSendBuffer(4 << 10)
	msg := bytes.Repeat([]byte("0123456789abcdef"), 256<<10/16) // 256 KB: more than the socket takes at once
	a.w.Cork(msg)
	if err := a.c.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatal(err)
	}
	if err := a.w.Uncork(); err != nil {
		t.Fatal(err)
	}
	a.w.mu.Lock()
	copied, pending := a.w.copied, len(a.w.pending)
	a.w.mu.Unlock()
	if pending == 0 {
		t.Fatal("the socket took 256 KB at once: the test did not hold anything back")
	}
	if copied > 2*WriteBuffer {
		t.Fatalf("copied %d bytes of a 256 KB message; want at most the %d-byte chunks around the header (the payload by reference)", copied, 2*WriteBuffer)
	}
	typ, got, err := client.Read(ctx)
	if err != nil || typ != websocket.MessageBinary || !bytes.Equal(got, msg) {
		t.Fatalf("read %v, %d bytes, %v; want the message whole", typ, len(got), err)
	}
}

// TestHijackKeepsEarlyBytes pins that a message the client sends in the
// same packet as its handshake survives the hijack: net/http has read it
// already, and coder/websocket keeps only what the bufio.Reader it is
// handed holds.
func TestHijackKeepsEarlyBytes(t *testing.T) {
	url, conns := serve(t, ViewerReadBuffer, Options{WriteTimeout: time.Minute})
	addr := strings.TrimPrefix(url, "ws://")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b bytes.Buffer
	b.WriteString("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	b.Write(clientFrame(true, websocket.MessageText, []byte("early")))
	if _, err := conn.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
	a := take(t, conns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, got, err := a.c.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(got) != "early" {
		t.Fatalf("read %v %q, %v; want the early text message", typ, got, err)
	}
}

// TestWebsocketTruncatedMessageLooksWhole pins coder/websocket v1.8.15's
// behaviour that a connection closed between two fragments of a message
// ends the message's reader with io.EOF, as if the message were whole:
// only ReadEnded tells. Publishers rely on the check (the gateway refuses
// such a message). If this test fails because the reader now returns an
// error, the ReadEnded check may go; if it fails otherwise, look again.
func TestWebsocketTruncatedMessageLooksWhole(t *testing.T) {
	url, conns := serve(t, FrameReadBuffer, Options{WriteTimeout: time.Minute})
	conn := handshake(t, strings.TrimPrefix(url, "ws://"))
	a := take(t, conns)
	if _, err := conn.Write(clientFrame(false, websocket.MessageBinary, []byte("first fragment"))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, r, err := a.c.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("first fragment"))
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatalf("reading the first fragment: %v", err)
	}
	conn.Close() // before the final fragment
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("the message's reader failed (%v): coder/websocket now reports a cut-off message; see the package doc", err)
	}
	if len(rest) != 0 || !a.w.ReadEnded() {
		t.Fatalf("after the cut: %d more bytes, ReadEnded %v; want none and true", len(rest), a.w.ReadEnded())
	}
}

// TestWebsocketPongsCountAsControlWrites pins that each pong coder/websocket
// answers a ping with is one Write outside a data message: a peer that
// pings faster than the control-write budget is cut off with
// ErrControlFlood, which the connection's reader returns.
func TestWebsocketPongsCountAsControlWrites(t *testing.T) {
	url, conns := serve(t, ViewerReadBuffer, Options{WriteTimeout: time.Minute})
	conn := handshake(t, strings.TrimPrefix(url, "ws://"))
	a := take(t, conns)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	readErr := make(chan error, 1)
	go func() {
		_, _, err := a.c.Reader(ctx)
		readErr <- err
	}()
	go func() { _, _ = io.Copy(io.Discard, conn) }()
	var pings bytes.Buffer
	for range a.w.ctlMax + 10 {
		pings.Write(clientFrame(true, websocket.MessageType(9), nil)) // opcode 9: ping
	}
	if _, err := conn.Write(pings.Bytes()); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrControlFlood) {
			t.Fatalf("reader ended with %v, want ErrControlFlood", err)
		}
	case <-ctx.Done():
		t.Fatal("a ping flood did not end the connection")
	}
}

// handshake opens a raw WebSocket client connection to addr.
func handshake(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(conn, 1024)), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v, %v", resp, err)
	}
	return conn
}

// clientFrame encodes one masked client frame (RFC 6455 §5.2).
func clientFrame(fin bool, op websocket.MessageType, payload []byte) []byte {
	b0 := byte(op) & 0x0F
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		out = append(out, 0x80|byte(n))
	case n <= 0xFFFF:
		out = append(out, 0x80|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	out = append(out, mask[:]...)
	for i, c := range payload {
		out = append(out, c^mask[i%4])
	}
	return out
}
