// Package testenv starts the real parts framecast's tests run against:
// redis-server on a free port, the project's own binaries as processes, and
// helpers to poll for a condition with a deadline instead of sleeping.
//
// Every helper registers its cleanup with t.Cleanup. Processes are killed
// when the test ends, and their output is logged on failure.
//
// In short mode (go test -short, as `make stress` runs) a test runs only if
// it needs nothing outside its own process: RequireTool and Binary skip
// the test instead of finding a tool or building a binary, so every test
// that starts redis-server, nginx, Chromium, ffmpeg, Docker or the
// project's own binaries through this package skips.
package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// InCI reports whether the tests run under CI (CI=true), where missing
// system tools are failures instead of skips: `make test` installs them.
func InCI() bool { return os.Getenv("CI") == "true" }

// RequireTool returns the path of an executable, or skips the test when it is
// missing outside CI and fails it under CI. In short mode it skips the test.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: the test needs %s", name)
	}
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if InCI() {
		t.Fatalf("%s is not installed; `make deps` installs it", name)
	}
	t.Skipf("%s is not installed; run `make deps`", name)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("failed to find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitFor polls cond (see Poll) until it returns nil or timeout passes,
// then fails the test with the last error cond returned.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
	}
}

// Poll calls cond until it returns nil or timeout passes, and returns nil
// or cond's last error: WaitFor for a condition whose failure is not the
// test's (a retry loop, a probe). It waits 10 ms after the first call,
// doubling up to 100 ms between calls.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	step := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(step) // the polling step: cond is asked again, up to the deadline
		if step < 100*time.Millisecond {
			step *= 2
		}
	}
}

// RepoRoot returns the module root (the folder holding go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var (
	buildMu    sync.Mutex
	buildCache = map[string]string{}
	buildDir   string
)

// Binary builds ./cmd/<name> once per test process (with -race when the tests
// run with it) and returns the path of the executable. In short mode it
// skips the test.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: the test runs cmd/%s", name)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildCache[name]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "framecast-bin-")
		if err != nil {
			t.Fatalf("failed to create build dir: %v", err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, name)
	args := []string{"build", "-o", out}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/"+name)
	cmd := exec.Command("go", args...)
	cmd.Dir = RepoRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("failed to build cmd/%s: %v\n%s", name, err, b)
	}
	buildCache[name] = out
	return out
}

// Process is a child process started by Start.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
	err  error
}

// Start runs bin with args and extra environment variables, kills it when
// the test ends, and logs its output if the test failed.
func Start(t testing.TB, name, bin string, env []string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	buf := &SyncBuffer{}
	cmd.Stdout = buf
	cmd.Stderr = buf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("failed to start %s: %v", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, out: buf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("--- output of %s ---\n%s", name, Tail(buf.String(), 8000))
		}
	})
	return p
}

// Output returns what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Signal sends sig to the process (SIGCONT, SIGSTOP, SIGTERM...).
func (p *Process) Signal(sig syscall.Signal) error { return p.Cmd.Process.Signal(sig) }

// Kill kills the process with SIGKILL and waits for it to exit.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGCONT)
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Wait waits up to timeout for the process to exit and returns its error.
func (p *Process) Wait(timeout time.Duration) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.err
	case <-time.After(timeout):
		return false, nil
	}
}

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Redis is a redis-server started for one test.
type Redis struct {
	Port int
	Dir  string
	Proc *Process
	t    testing.TB
	args []string
}

// URL returns redis://127.0.0.1:PORT/0.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.Port) }

// Addr returns 127.0.0.1:PORT.
func (r *Redis) Addr() string { return fmt.Sprintf("127.0.0.1:%d", r.Port) }

// StartRedis starts a real redis-server on a free port with no persistence
// and waits until it answers PING.
func StartRedis(t testing.TB, extraArgs ...string) *Redis {
	t.Helper()
	RequireTool(t, "redis-server")
	r := &Redis{Port: FreePort(t), Dir: t.TempDir(), t: t, args: extraArgs}
	r.start()
	return r
}

func (r *Redis) start() {
	r.t.Helper()
	bin := RequireTool(r.t, "redis-server")
	args := append([]string{
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.Dir,
		"--protected-mode", "no",
	}, r.args...)
	r.Proc = Start(r.t, "redis-server:"+strconv.Itoa(r.Port), bin, nil, args...)
	WaitFor(r.t, 10*time.Second, "redis-server to answer PING", func() error {
		if r.Proc.Exited() {
			return fmt.Errorf("redis-server exited: %s", r.Proc.Output())
		}
		return r.Ping()
	})
}

// Ping sends a raw PING and expects +PONG.
func (r *Redis) Ping() error {
	_, err := r.Command("PING")
	return err
}

// Command sends one inline command to the server and returns the first line
// of the reply (enough for PING, INFO fields are read with Info).
func (r *Redis) Command(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	buf := make([]byte, 64<<10)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	reply := string(buf[:n])
	if strings.HasPrefix(reply, "-") {
		return "", fmt.Errorf("redis error: %s", strings.TrimSpace(reply))
	}
	return reply, nil
}

// Kill kills the server with SIGKILL.
func (r *Redis) Kill() { r.Proc.Kill() }

// Restart starts the server again on the same port after Kill.
func (r *Redis) Restart() { r.start() }

// Gateway is a gateway binary started for one test.
type Gateway struct {
	Port int
	Proc *Process
}

// URL returns http://127.0.0.1:PORT.
func (g *Gateway) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", g.Port) }

// WSURL returns ws://127.0.0.1:PORT.
func (g *Gateway) WSURL() string { return fmt.Sprintf("ws://127.0.0.1:%d", g.Port) }

// StartGateway builds and starts cmd/gateway on a free port with the given
// GATEWAY_* environment, and waits until /healthz answers.
func StartGateway(t testing.TB, env ...string) *Gateway {
	t.Helper()
	return StartGatewayOn(t, FreePort(t), env...)
}

// StartGatewayOn is StartGateway on a given port, so that a test can start
// a gateway where another one was.
func StartGatewayOn(t testing.TB, port int, env ...string) *Gateway {
	t.Helper()
	bin := Binary(t, "gateway")
	g := &Gateway{Port: port}
	env = append([]string{"GATEWAY_ADDR=127.0.0.1:" + strconv.Itoa(g.Port)}, env...)
	g.Proc = Start(t, "gateway:"+strconv.Itoa(g.Port), bin, env)
	WaitFor(t, 20*time.Second, "gateway /healthz", func() error {
		if g.Proc.Exited() {
			return fmt.Errorf("gateway exited: %s", g.Proc.Output())
		}
		return HTTPStatus(g.URL()+"/healthz", http.StatusOK)
	})
	return g
}

// WaitReady waits until the gateway's /readyz answers 200.
func (g *Gateway) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, "gateway /readyz", func() error { return HTTPStatus(g.URL()+"/readyz", http.StatusOK) })
}

// HTTPStatus GETs url and returns an error unless it answers with want.
func HTTPStatus(url string, want int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != want {
		return fmt.Errorf("GET %s: status %d, want %d", url, resp.StatusCode, want)
	}
	return nil
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a child
// process's stdout and stderr), bounded to a few MB.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 4<<20 { // keep memory bounded for chatty processes
		s.b.Reset()
		s.b.WriteString("[output truncated]\n")
	}
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tail returns the last n bytes of s, marked as cut when it is longer.
func Tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// MountTmpfs mounts a tmpfs of size bytes on a fresh folder and unmounts
// it when the test ends; it skips the test where mounting is not allowed
// (it needs root).
func MountTmpfs(t testing.TB, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
