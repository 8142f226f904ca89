package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// startLimitedGateway starts the gateway binary with its open-file limit
// set to soft and hard (by the shell's ulimit, as systemd's LimitNOFILE= or
// docker's --ulimit would), and waits until /healthz answers.
func startLimitedGateway(t *testing.T, soft, hard int, env ...string) *testenv.Gateway {
	t.Helper()
	g := &testenv.Gateway{Port: testenv.FreePort(t)}
	env = append([]string{"GATEWAY_ADDR=127.0.0.1:" + strconv.Itoa(g.Port)}, env...)
	script := fmt.Sprintf(`ulimit -Sn %d && ulimit -Hn %d && exec "$0"`, soft, hard)
	g.Proc = testenv.Start(t, "gateway:"+strconv.Itoa(g.Port), "/bin/sh", env, "-c", script, testenv.Binary(t, "gateway"))
	testenv.WaitFor(t, 20*time.Second, "gateway /healthz", func() error {
		if g.Proc.Exited() {
			return fmt.Errorf("gateway exited: %s", g.Proc.Output())
		}
		return testenv.HTTPStatus(g.URL()+"/healthz", http.StatusOK)
	})
	return g
}

// openFilesLimit reads the soft and hard open-file limits of process pid
// from /proc, independently of what the process logs.
func openFilesLimit(t *testing.T, pid int) (soft, hard string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Max open files\s+(\S+)\s+(\S+)`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no open-file limit in /proc/%d/limits:\n%s", pid, b)
	}
	return m[1], m[2]
}

// TestOpenFileLimitRaisedAndReported: a gateway started with a soft limit
// of 64 under a hard limit of 256 runs with 256 (read from /proc, not from
// its log), logs the limit, and warns when GATEWAY_MAX_CONNECTIONS does not
// fit under it.
func TestOpenFileLimitRaisedAndReported(t *testing.T) {
	for _, tt := range []struct {
		maxConns string
		warn     bool
	}{
		{"10000", true}, // the default: 10,000 connections cannot fit in 256 files
		{"100", false},
	} {
		t.Run("max_connections="+tt.maxConns, func(t *testing.T) {
			g := startLimitedGateway(t, 64, 256, "GATEWAY_MAX_CONNECTIONS="+tt.maxConns)
			if soft, hard := openFilesLimit(t, g.Proc.Cmd.Process.Pid); soft != "256" || hard != "256" {
				t.Errorf("open-file limit %s (soft) / %s (hard), want 256 / 256", soft, hard)
			}
			out := g.Proc.Output()
			if !strings.Contains(out, `level=INFO msg="open-file limit" soft=256 hard=256`) {
				t.Errorf("the raised limit is not in the log:\n%s", out)
			}
			if warned := strings.Contains(out, "open-file limit is below GATEWAY_MAX_CONNECTIONS"); warned != tt.warn {
				t.Errorf("warning about GATEWAY_MAX_CONNECTIONS logged: %v, want %v:\n%s", warned, tt.warn, out)
			}
		})
	}
}

// TestAcceptErrorLoggedAtWarn: when the gateway runs out of file
// descriptors, net/http's accept loop fails with "too many open files" and
// retries every few milliseconds. Those errors are logged at WARN (they
// were at DEBUG, invisible at the default level), and rate-limited.
func TestAcceptErrorLoggedAtWarn(t *testing.T) {
	const limit = 48 // soft = hard: Go cannot raise it
	g := startLimitedGateway(t, limit, limit)
	// Idle connections: each holds one of the gateway's files until
	// ReadHeaderTimeout (10 s); those past the limit wait in the backlog.
	var conns []net.Conn
	for range limit + 16 {
		c, err := net.DialTimeout("tcp", strings.TrimPrefix(g.URL(), "http://"), 2*time.Second)
		if err != nil {
			t.Fatalf("failed to dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
	}
	warnLine := regexp.MustCompile(`(?m)^.*level=WARN msg="http server error".*too many open files.*$`)
	start := time.Now()
	testenv.WaitFor(t, 8*time.Second, "an accept error at WARN", func() error {
		if !warnLine.MatchString(g.Proc.Output()) {
			return errors.New("not logged yet")
		}
		return nil
	})
	// The accept loop fails, retrying every 5 ms to 1 s, until the first
	// idle connections time out and free their files: unlimited, that is
	// over 15 lines. The log takes a burst, then one line per period.
	_ = conns[0].SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := conns[0].Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the first idle connection was not closed by ReadHeaderTimeout: %v", err)
	}
	elapsed := time.Since(start)
	lines := warnLine.FindAllString(g.Proc.Output(), -1)
	allowed := 5 + int(elapsed/(5*time.Second)) + 1 // burst, rate, one in flight
	t.Logf("%d accept-error lines in %v; first: %s", len(lines), elapsed.Round(time.Millisecond), lines[0])
	if len(lines) > allowed {
		t.Fatalf("%d accept-error lines in %v, want at most %d (rate-limited):\n%s", len(lines), elapsed, allowed, strings.Join(lines, "\n"))
	}
}
