package gateway

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
)

// TestServerErrorLogRateLimited: the http.Server's error lines go to the
// log at WARN, serverErrorLogBurst at once, then one per
// serverErrorLogEvery carrying the count of lines dropped meanwhile.
func TestServerErrorLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1_800_000_000, 0)
	w := newServerErrorWriter(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	for i := range 100 {
		fmt.Fprintf(w, "http: Accept error: accept tcp: too many open files; retrying in %dms\n", i)
	}
	if n := strings.Count(buf.String(), "\n"); n != serverErrorLogBurst {
		t.Fatalf("100 errors at once logged %d lines, want %d:\n%s", n, serverErrorLogBurst, buf.String())
	}
	if !strings.Contains(buf.String(), `level=WARN msg="http server error" err="http: Accept error: accept tcp: too many open files; retrying in 0ms"`) {
		t.Fatalf("first line not at WARN with the error:\n%s", buf.String())
	}
	buf.Reset()
	now = now.Add(serverErrorLogEvery)
	fmt.Fprintln(w, "http: panic serving 127.0.0.1:1: boom")
	want := fmt.Sprintf(`err="http: panic serving 127.0.0.1:1: boom" suppressed=%d`, 100-serverErrorLogBurst)
	if !strings.Contains(buf.String(), want) || strings.Count(buf.String(), "\n") != 1 {
		t.Fatalf("after %v: %q, want one line with %s", serverErrorLogEvery, buf.String(), want)
	}
}

// gatewayAddr returns the host:port of g.
func gatewayAddr(g *testenv.Gateway) string { return "127.0.0.1:" + strconv.Itoa(g.Port) }

// procStatusKB returns a field of /proc/PID/status in kB (VmRSS, VmHWM).
func procStatusKB(t testing.TB, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^` + field + `:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no %s in /proc/%d/status", field, pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// openFiles counts the file descriptors process pid holds.
func openFiles(t testing.TB, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// trickleResult is what one client trickling a declared body saw.
type trickleResult struct {
	status  string        // the response's status line; "" if none came
	answer  time.Duration // time to the status line
	closed  time.Duration // time to the end of the connection; 0 if still open
	readErr error
}

// trickleBody sends head (a request declaring a body), then one byte of
// body every period until the connection ends or timeout passes, and
// reports when the answer came and when the connection ended.
func trickleBody(addr, head string, period, timeout time.Duration) trickleResult {
	var res trickleResult
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		res.readErr = err
		return res
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte(head)); err != nil {
		res.readErr = err
		return res
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
			}
		}
	}()
	_ = c.SetReadDeadline(start.Add(timeout))
	br := bufio.NewReader(c)
	if line, err := br.ReadString('\n'); err == nil {
		res.status, res.answer = strings.TrimSpace(line), time.Since(start)
	}
	_, err = br.ReadBytes(0) // the rest of the answer, until the connection ends
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		res.readErr = err
	} else {
		res.closed = time.Since(start)
	}
	close(stop)
	wg.Wait()
	return res
}

// TestTricklingBodyCutOff: requests that declare a body (no route takes
// one) and send it one byte every 500 ms are answered 413 at once and their
// connections closed within bodyReadTimeout, on every route, a WebSocket
// upgrade's included; the gateway's files come back. A WebSocket opened
// before is not cut by any deadline.
func TestTricklingBodyCutOff(t *testing.T) {
	g := testenv.StartGateway(t)
	pid := g.Proc.Cmd.Process.Pid

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	viewer, _, err := websocket.Dial(ctx, g.WSURL()+"/ws/video/demo/?role=view", nil)
	if err != nil {
		t.Fatalf("viewer failed to dial: %v", err)
	}
	defer viewer.CloseNow()
	viewer.CloseRead(ctx) // processes pongs

	heads := map[string]string{
		"content-length": "GET /healthz HTTP/1.1\r\nHost: gw\r\nContent-Length: 1000\r\n\r\n",
		"chunked":        "GET /api/rooms HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n",
		"post":           "POST /video/demo/ HTTP/1.1\r\nHost: gw\r\nContent-Length: 200000\r\n\r\n",
		"websocket": "GET /ws/video/demo/?role=view HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
			"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 1000\r\n\r\n",
	}
	kinds := []string{"content-length", "chunked", "post", "websocket"}
	const clients = 200
	const timeout = bodyReadTimeout + 4*time.Second
	baseFDs := openFiles(t, pid)
	results := make([]trickleResult, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = trickleBody(gatewayAddr(g), heads[kinds[i%len(kinds)]], 500*time.Millisecond, timeout)
		}()
	}
	// What the clients hold at most, sampled until they are done: for the
	// log only. The baseline can count a file the gateway closes meanwhile
	// (StartGateway's readiness probe's kept-alive connection), so "all 200
	// held" was off by one now and then (CI: "199 files held", then -1);
	// what is asserted is each client's own view below, and that the files
	// come back.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	heldFDs := 0
	for sampling := true; sampling; {
		select {
		case <-done:
			sampling = false
		case <-time.After(20 * time.Millisecond): // the sampling period
			heldFDs = max(heldFDs, openFiles(t, pid)-baseFDs)
		}
	}

	var slowest time.Duration
	refused, closed := 0, 0
	for _, r := range results {
		if strings.HasPrefix(r.status, "HTTP/1.1 413") && r.answer <= 2*time.Second {
			refused++
		}
		if r.closed > 0 && r.closed <= bodyReadTimeout+2*time.Second {
			closed++
		}
		slowest = max(slowest, r.closed)
	}
	t.Logf("%d trickling clients held at most %d files at once; %d answered 413 at once, %d closed within %v (slowest %v)",
		clients, heldFDs, refused, closed, bodyReadTimeout+2*time.Second, slowest.Round(time.Millisecond))
	for i, r := range results {
		kind := kinds[i%len(kinds)]
		if !strings.HasPrefix(r.status, "HTTP/1.1 413") || r.answer > 2*time.Second {
			t.Fatalf("%s client %d: answer %q after %v, want 413 at once (err %v)", kind, i, r.status, r.answer, r.readErr)
		}
		if r.closed == 0 || r.closed > bodyReadTimeout+2*time.Second {
			t.Fatalf("%s client %d: connection still open after %v (closed %v), want closed within %v", kind, i, timeout, r.closed, bodyReadTimeout)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "the gateway's files back", func() error {
		if n := openFiles(t, pid) - baseFDs; n > 5 {
			return fmt.Errorf("%d files more than before the trickling clients", n)
		}
		return nil
	})

	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	defer pcancel()
	if err := viewer.Ping(pctx); err != nil {
		t.Fatalf("the WebSocket opened before the trickling clients died: %v", err)
	}
}

// hugeHeader sends a request whose header never ends: a line that grows
// in 16 KiB steps up to total bytes. It returns the answer's status line
// ("" if none came within timeout) and how many bytes were sent.
func hugeHeader(addr string, total int, timeout time.Duration) (status string, sent int, err error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return "", 0, err
	}
	defer c.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Pad: "))
		sent += n
		chunk := bytes.Repeat([]byte("a"), 16<<10)
		for err == nil && sent < total {
			n, err = c.Write(chunk)
			sent += n
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close() // ends the writer
	wg.Wait()
	return strings.TrimSpace(line), sent, err
}

// TestHugeHeaderRefused: 200 clients each sending a header that never ends
// (up to 1 MB) are answered 431 after a few KB, and the gateway's memory
// stays flat; a header of 6 KiB (a long cookie) is still served.
func TestHugeHeaderRefused(t *testing.T) {
	g := testenv.StartGateway(t)
	pid := g.Proc.Cmd.Process.Pid

	c, err := net.DialTimeout("tcp", gatewayAddr(g), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: gw\r\nCookie: %s\r\nConnection: close\r\n\r\n", strings.Repeat("c", 6<<10))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "HTTP/1.1 200") {
		t.Fatalf("a 6 KiB header: %q, %v; want 200", line, err)
	}

	const clients, total = 200, 1 << 20
	before := procStatusKB(t, pid, "VmHWM")
	type result struct {
		status string
		sent   int
		err    error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r result
			r.status, r.sent, r.err = hugeHeader(gatewayAddr(g), total, readHeaderTimeout+5*time.Second)
			results[i] = r
		}()
	}
	wg.Wait()
	growth := procStatusKB(t, pid, "VmHWM") - before
	t.Logf("%d clients sending never-ending headers of up to %d bytes: gateway peak RSS grew %d kB, RSS now %d kB",
		clients, total, growth, procStatusKB(t, pid, "VmRSS"))
	for i, r := range results {
		if !strings.HasPrefix(r.status, "HTTP/1.1 431") {
			t.Fatalf("client %d: answer %q (%v) after sending %d header bytes, want 431", i, r.status, r.err, r.sent)
		}
	}
	// Measured: 13 MB (the heap grows to the GC floor before collecting),
	// 62 MB in a race-built binary. Without the cap: 391 MB, 1.1 GB.
	if growth > 128<<10 {
		t.Fatalf("gateway peak RSS grew %d kB for %d refused headers, want < 128 MB", growth, clients)
	}
	if err := testenv.HTTPStatus(g.URL()+"/healthz", 200); err != nil {
		t.Fatal(err)
	}
}
