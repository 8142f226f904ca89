package main

// S8: the real path. Viewers through Debian's nginx running the project's
// compose config (deploy/nginx/nginx.conf with its shared files), against
// viewers straight on the gateways, in the same run.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/framecast/framecast/internal/loadgen"
)

func init() {
	scenarios = append(scenarios, scenario{"S8", "through nginx: 100 viewers, 30 fps, 50 KB, via the project's nginx config vs direct", runS8})
}

// nginxProxy is a local nginx in front of the bench's gateways.
type nginxProxy struct {
	*proc
	port int
	conf string // the config as run
}

func (n *nginxProxy) ws() string { return fmt.Sprintf("ws://127.0.0.1:%d", n.port) }

// pids returns nginx's master and worker processes.
func (n *nginxProxy) pids() []int {
	pids := []int{n.pid()}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(n.pid()) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// startNginx runs deploy/nginx/nginx.conf as compose does, changed only
// where this machine differs: its own paths, a loopback port, and the
// gateways as an upstream group (compose finds them through Docker's DNS).
func (b *bench) startNginx(gws []*gateway) (*nginxProxy, error) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			return nil, fmt.Errorf("nginx is not installed (make deps installs it): %w", err)
		}
	}
	dir, err := os.MkdirTemp(b.dir, "nginx")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	src := filepath.Join(b.root, "deploy", "nginx")
	conf, err := os.ReadFile(filepath.Join(src, "nginx.conf"))
	if err != nil {
		return nil, fmt.Errorf("failed to read the project's nginx config: %w", err)
	}
	var temps, servers strings.Builder
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "%s_temp_path %s;\n", t, filepath.Join(dir, t))
	}
	for _, g := range gws {
		fmt.Fprintf(&servers, "server 127.0.0.1:%d;\n", g.port)
	}
	edits := []struct{ re, with string }{
		{`(?m)^\s*pid\s+[^;]*;`, fmt.Sprintf("daemon off;\npid %s;", filepath.Join(dir, "nginx.pid"))},
		{`(?m)^\s*error_log\s+[^;]*;`, fmt.Sprintf("error_log %s warn;", filepath.Join(dir, "error.log"))},
		{`access_log\s+/var/log/nginx/access\.log`, temps.String() + "access_log " + filepath.Join(dir, "access.log")},
		{`include\s+/etc/nginx/framecast-http\.conf;`, "include " + filepath.Join(src, "framecast-http.conf") + ";\nupstream framecast_gateways {\n" + servers.String() + "}"},
		{`include\s+/etc/nginx/framecast\.conf;`, "include " + filepath.Join(src, "framecast.conf") + ";"},
		{`(?m)^\s*set\s+\$framecast_upstream\s+[^;]*;`, ""},
		{`listen\s+80;`, fmt.Sprintf("listen 127.0.0.1:%d;", port)},
	}
	text := string(conf)
	for _, e := range edits {
		re := regexp.MustCompile(e.re)
		if !re.MatchString(text) {
			return nil, fmt.Errorf("deploy/nginx/nginx.conf has no %s any more: update the bench", e.re)
		}
		text = re.ReplaceAllLiteralString(text, e.with)
	}
	file := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		return nil, err
	}
	p, err := b.start("nginx", bin, nil, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", file)
	if err != nil {
		return nil, err
	}
	n := &nginxProxy{proc: p, port: port, conf: text}
	err = waitFor(b.ctx, 10*time.Second, "nginx /healthz", func() error {
		if n.exited() {
			return fmt.Errorf("exited: %s", n.out)
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/healthz through nginx: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		n.stop()
		return nil, err
	}
	return n, nil
}

// rssGrowthKB is the given processes' peak RSS over their RSS before the
// viewers connected, summed.
func rssGrowthKB(r *loadgen.Report, pids []int) int64 {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	var kb int64
	for _, p := range r.Procs {
		if want[p.PID] {
			kb += p.RSSPeakKB - p.RSSBeforeKB
		}
	}
	return kb
}

// cpuCores is the CPU the given processes used in the window, in cores.
func cpuCores(r *loadgen.Report, pids []int, window time.Duration) float64 {
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	var ms float64
	for _, p := range r.Procs {
		if want[p.PID] {
			ms += p.CPUMS
		}
	}
	return ms / float64(window.Milliseconds())
}

func runS8(b *bench, sec *section) error {
	gws, err := b.startGateways(2)
	if err != nil {
		return err
	}
	defer stopAll(gws)
	b.recordGateways(sec, gws)
	ng, err := b.startNginx(gws)
	if err != nil {
		return err
	}
	defer ng.stop()
	sec.commands = append(sec.commands, "nginx -p $DIR -c $DIR/nginx.conf &   # deploy/nginx/nginx.conf: own paths, loopback port, upstream group of the 2 gateways")

	window := 10 * time.Second
	if b.quick {
		window = 2 * time.Second
	}
	flags := b.window(2*time.Second, window)
	direct, err := b.loadgen(sec, append(b.loadArgs(gws, 100, 30, "binary"), flags...)...)
	if err != nil {
		return err
	}
	// Same publisher (straight to replica 1), viewers through nginx; nginx's
	// processes are watched with the gateways.
	pids := ng.pids()
	watch := pidList(gws)
	for _, p := range pids {
		watch += "," + strconv.Itoa(p)
	}
	args := []string{
		"-gateways", ng.ws(), "-publish-to", gws[0].ws(), "-viewers", "100", "-fps", "30",
		"-size", strconv.Itoa(frameSize), "-format", "binary", "-watch-pids", watch, "-redis", b.redisAddr(),
	}
	via, err := b.loadgen(sec, append(args, flags...)...)
	if err != nil {
		return err
	}
	nginxCPU := cpuCores(via, pids, window)
	gwPIDs := make([]int, len(gws))
	for i, g := range gws {
		gwPIDs[i] = g.pid()
	}

	sec.printf("Publisher on replica 1 in both runs; 100 viewers straight on the 2 replicas, then through a local nginx running `deploy/nginx/nginx.conf` (%d worker processes, Debian's nginx) spreading them over the same 2.\n\n", len(pids)-1)
	sec.printf("| measure | direct | through nginx |\n|---|---|---|\n")
	sec.printf("| delivered | %s | %s |\n", pct(direct.DeliveryRatio), pct(via.DeliveryRatio))
	sec.printf("| latency p50 | %s | %s |\n", msf(direct.Latency.P50), msf(via.Latency.P50))
	sec.printf("| latency p99 | %s | %s |\n", msf(direct.Latency.P99), msf(via.Latency.P99))
	sec.printf("| latency max | %s | %s |\n", msf(direct.Latency.Max), msf(via.Latency.Max))
	sec.printf("| max gap between frames at a viewer | %s | %s |\n", msf(direct.MaxGapMS), msf(via.MaxGapMS))
	sec.printf("| deliveries/s | %.0f (%.1f MB/s) | %.0f (%.1f MB/s) |\n", direct.DeliveriesSec, direct.MBSec, via.DeliveriesSec, via.MBSec)
	sec.printf("| gateways' CPU | %.2f cores | %.2f cores |\n", cpuCores(direct, gwPIDs, window), cpuCores(via, gwPIDs, window))
	sec.printf("| nginx's CPU | – | %.2f cores (%.1f µs per delivery) |\n", nginxCPU, nginxCPU*float64(window.Microseconds())/float64(max(via.Received, 1)))
	sec.printf("| nginx's memory per viewer | – | %.0f KB (peak RSS growth / 100) |\n", float64(rssGrowthKB(via, pids))/100)
	sec.printf("| load generator CPU per delivery | %.1f µs | %.1f µs |\n\n", direct.ClientCPUPerDeliveryUS, via.ClientCPUPerDeliveryUS)
	b.summary("S8", "latency p50 / p99 through nginx (direct)", msf(via.Latency.P50)+" / "+msf(via.Latency.P99)+" ("+msf(direct.Latency.P50)+" / "+msf(direct.Latency.P99)+")", "", "", "")
	return nil
}
