package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
)

// bench holds what the scenarios share: the built binaries, redis-server,
// and the record of every command run.
type bench struct {
	ctx     context.Context
	root    string
	dir     string // temporary folder: binaries, redis
	quick   bool
	gateway string // the gateway binary the scenarios start

	redis     *proc
	redisPort int
	machine   machine
	sections  []*section
	total     time.Duration
	raw       []rawReport

	optimizations string // the performance log's before/after table

	summaryRows []summaryRow
	s1          *loadgen.Report // S1's report, which S4 compares with
}

// proc is a child process the driver started.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

// section is one scenario's output in docs/benchmarks.md.
type section struct {
	id, title string
	body      strings.Builder // Markdown tables and notes
	commands  []string
	failed    string
	took      time.Duration
	other     []float64 // machine cores busy outside gateways and loadgen, per run
}

type rawReport struct {
	Scenario string          `json:"scenario"`
	Command  string          `json:"command"`
	Report   *loadgen.Report `json:"report"`
}

func (s *section) printf(format string, args ...any) { fmt.Fprintf(&s.body, format, args...) }

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s benchdriver: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// newBench builds what the scenarios run. gatewayBin, if set, is a
// gateway binary to use instead of building ./cmd/gateway: another
// revision's, for paired runs under one driver and load generator.
func newBench(ctx context.Context, root string, quick bool, gatewayBin string) (*bench, error) {
	dir, err := os.MkdirTemp("", "framecast-bench-")
	if err != nil {
		return nil, err
	}
	b := &bench{ctx: ctx, root: root, dir: dir, quick: quick, gateway: filepath.Join(dir, "gateway")}
	raiseFileLimit()
	build := []string{"gateway", "loadgen"}
	if gatewayBin != "" {
		if b.gateway, err = filepath.Abs(gatewayBin); err == nil {
			_, err = os.Stat(b.gateway)
		}
		if err != nil {
			b.close()
			return nil, fmt.Errorf("gateway binary: %w", err)
		}
		build = build[1:]
	}
	for _, name := range build {
		b.logf("building cmd/%s", name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "./cmd/"+name)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.close()
			return nil, fmt.Errorf("failed to build cmd/%s: %v\n%s", name, err, out)
		}
	}
	b.machine = describeMachine(ctx)
	if gatewayBin != "" {
		b.machine.Gateway = b.gateway
	}
	if err := b.startRedis(); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *bench) close() {
	if b.redis != nil {
		b.redis.stop()
	}
	_ = os.RemoveAll(b.dir)
}

// raiseFileLimit lifts the soft open-file limit to the hard one; children
// inherit it. S3 holds 10,000 connections on each side.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func fileLimit() uint64 {
	var l syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (b *bench) start(name, bin string, env []string, args ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 10 s, then kills.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("timed out waiting for %s: %w", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *bench) redisAddr() string { return fmt.Sprintf("127.0.0.1:%d", b.redisPort) }

func (b *bench) startRedis() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return fmt.Errorf("redis-server is not installed (apt-get install redis-server): %w", err)
	}
	if b.redisPort, err = freePort(); err != nil {
		return err
	}
	b.redis, err = b.start("redis-server", bin, nil,
		"--port", strconv.Itoa(b.redisPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--dir", b.dir)
	if err != nil {
		return err
	}
	return waitFor(b.ctx, 10*time.Second, "redis-server", func() error {
		if b.redis.exited() {
			return fmt.Errorf("redis-server exited: %s", b.redis.out)
		}
		_, err := loadgen.RedisInfoField(b.ctx, b.redisAddr(), "server", "process_id")
		return err
	})
}

// gateway is a gateway process started for one scenario.
type gateway struct {
	*proc
	port int
	env  []string
}

func (g *gateway) ws() string { return fmt.Sprintf("ws://127.0.0.1:%d", g.port) }

// benchLimits lift the gateway's abuse limits, which a benchmark trips by
// design: one client address opens thousands of connections (S3: 10,000 on
// one replica) and publishers go far above a camera's rate (S2).
var benchLimits = []string{
	"GATEWAY_PUBLISH_RATE=0",
	"GATEWAY_ROOM_RATE=0",
	"GATEWAY_MAX_CONNECTIONS=0",
	"GATEWAY_MAX_CONNECTIONS_PER_IP=0",
}

// startGateways starts n fresh gateways on the shared Redis and waits until
// each is ready.
func (b *bench) startGateways(n int, extraEnv ...string) ([]*gateway, error) {
	var gws []*gateway
	for i := range n {
		port, err := freePort()
		if err != nil {
			stopAll(gws)
			return nil, err
		}
		env := []string{
			fmt.Sprintf("GATEWAY_ADDR=127.0.0.1:%d", port),
			"GATEWAY_REDIS_URL=redis://" + b.redisAddr() + "/0",
			"GATEWAY_LOG_LEVEL=warn",
		}
		env = append(env, benchLimits...)
		env = append(env, extraEnv...)
		p, err := b.start(fmt.Sprintf("gateway%d", i+1), b.gateway, env)
		if err != nil {
			stopAll(gws)
			return nil, err
		}
		g := &gateway{proc: p, port: port, env: env}
		gws = append(gws, g)
		err = waitFor(b.ctx, 20*time.Second, g.name+" /readyz", func() error {
			if g.exited() {
				return fmt.Errorf("exited: %s", g.out)
			}
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("/readyz: %s", resp.Status)
			}
			return nil
		})
		if err != nil {
			stopAll(gws)
			return nil, err
		}
	}
	return gws, nil
}

func stopAll(gws []*gateway) {
	for _, g := range gws {
		g.stop()
	}
}

// gatewayCommand is how a gateway was started, for the record.
func gatewayCommand(g *gateway) string {
	return strings.Join(g.env, " ") + " $BIN/gateway"
}

// quietBusy is the machine's busy CPU (in cores) under which a run may
// start: the gateways and Redis idle between runs, so anything above it is
// someone else's work that would skew the figures.
const quietBusy = 0.3

// waitQuiet waits up to a minute (quick mode, whose figures are not worth
// publishing anyway: 5 s) for the machine to be quiet, sampling /proc/stat
// over half a second at a time, and logs when it had to wait.
func (b *bench) waitQuiet() {
	wait := time.Minute
	if b.quick {
		wait = 5 * time.Second
	}
	deadline := time.Now().Add(wait)
	for waited := false; ; waited = true {
		m0, err := loadgen.ReadMachineCPU()
		time.Sleep(500 * time.Millisecond)
		m1, err1 := loadgen.ReadMachineCPU()
		if err != nil || err1 != nil || m1.Total <= m0.Total {
			return
		}
		cores := float64(runtime.NumCPU())
		busy := float64(m1.Busy-m0.Busy) / float64(m1.Total-m0.Total) * cores
		if busy < quietBusy {
			if waited {
				b.logf("machine quiet again (%.2f cores busy)", busy)
			}
			return
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.logf("machine still busy (%.2f cores) after %v: running anyway", busy, wait)
			return
		}
		if !waited {
			b.logf("machine busy (%.2f cores outside the benchmark): waiting for it to settle", busy)
		}
	}
}

// loadgen runs cmd/loadgen with args (plus -json -q), records the command
// in sec and returns its report.
func (b *bench) loadgen(sec *section, args ...string) (*loadgen.Report, error) {
	b.waitQuiet()
	args = append(args, "-json", "-q")
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	cmdline := "$BIN/loadgen " + strings.Join(quoted, " ")
	sec.commands = append(sec.commands, cmdline)
	b.logf("%s", cmdline)
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(b.dir, "loadgen"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep loadgen.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		if runErr != nil {
			return nil, fmt.Errorf("loadgen failed: %v: %s", runErr, strings.TrimSpace(stderr.String()))
		}
		return nil, fmt.Errorf("loadgen printed no report: %v", err)
	}
	b.raw = append(b.raw, rawReport{Scenario: sec.id, Command: cmdline, Report: &rep})
	if rep.MachineBusyCores > 0 {
		sec.other = append(sec.other, rep.OtherBusyCores)
	}
	for _, e := range rep.Errors {
		b.logf("  loadgen: %s", e)
	}
	if runErr != nil {
		return &rep, fmt.Errorf("loadgen failed: %v: %s", runErr, strings.TrimSpace(stderr.String()))
	}
	return &rep, nil
}

func (b *bench) writeRaw(path string) error {
	data, err := json.MarshalIndent(b.raw, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// machine describes where the benchmark ran.
type machine struct {
	CPUs, CPUModel, Kernel, Go, Redis, Date, LoadAvg, Commit string
	Gateway                                                  string // a gateway binary given with -gateway
}

func describeMachine(ctx context.Context) machine {
	m := machine{
		CPUs: strconv.Itoa(runtime.NumCPU()),
		Date: time.Now().UTC().Format("2006-01-02 15:04 MST"),
	}
	if out, err := exec.CommandContext(ctx, "nproc").Output(); err == nil {
		m.CPUs = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimLeft(v, " \t:"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		m.Go = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "redis-server", "--version").Output(); err == nil {
		m.Redis = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	m.Commit = "unknown"
	if out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if strings.HasSuffix(m.Commit, "-dirty") {
			m.Commit = strings.TrimSuffix(m.Commit, "-dirty") + " plus uncommitted changes"
		}
	}
	return m
}

func pidList(gws []*gateway) string {
	var s []string
	for _, g := range gws {
		s = append(s, strconv.Itoa(g.pid()))
	}
	return strings.Join(s, ",")
}

func wsList(gws []*gateway) string {
	var s []string
	for _, g := range gws {
		s = append(s, g.ws())
	}
	return strings.Join(s, ",")
}

// shellQuote returns a as a shell word: unchanged if it holds nothing the
// shell would read specially (a group's query holds &), else in single
// quotes.
func shellQuote(a string) string {
	if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/=@+%$") == "" {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}
