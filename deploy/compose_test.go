package deploy_test

// TestComposeUp runs the repository's docker-compose.yml on a real Docker
// engine: images built, every healthcheck passed, frames through nginx to
// Go clients and a headless Chromium, scaling to five replicas, a replica
// killed and one cut off from Redis, the recorders and gateways moved onto
// an S3 server with deploy/compose-s3.yml, and `down -v` leaving nothing
// behind.
//
// There is no container registry here: deploy/testimages/build.sh first
// makes local stand-ins for the base images the Dockerfiles name (skipping
// those that exist). The test is skipped only where no Docker engine
// answers. Everything it starts belongs to the compose project
// composeProject and is removed when the test ends, passed or failed, and
// before it starts (what a killed earlier run left).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

const (
	// composeProject names every container, network and volume the test
	// makes (label com.docker.compose.project).
	composeProject = "framecastcomposetest"
	// composeHost is where docker-compose.yml publishes nginx.
	composeHost = "localhost:8080"
	// composeBudget bounds the whole test, image builds from nothing
	// included, below the `go test -timeout` that `make test` gives it, so
	// the test's own cleanup still runs when it is exceeded.
	composeBudget = 28 * time.Minute
	// reconnectBudget is how soon frames must flow again after a replica
	// dies or loses Redis (issue 15).
	reconnectBudget = 5 * time.Second
)

// composeRun drives docker and docker-compose for one test.
type composeRun struct {
	t       *testing.T
	ctx     context.Context // ends at the test's budget
	docker  string
	compose string
	file    string
	// s3 is deploy/compose-s3.yml, given after file to every docker-compose
	// command once set (step 9); `down` always gives it, so that its
	// service and volume go too.
	s3  string
	env []string // the environment without FRAMECAST_* and COMPOSE_*
}

// requireDocker returns the docker CLI, or skips the test when no Docker
// engine answers: the only reason this test may skip, besides short mode
// (go test -short runs no external process, as testenv.RequireTool).
func requireDocker(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the test needs a Docker engine")
	}
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no Docker engine: docker is not installed; the compose test needs one")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, docker, "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		t.Skipf("no Docker engine answers (docker info: %v: %s); the compose test needs one", err, bytes.TrimSpace(out))
	}
	return docker
}

// run runs a command under the test's budget and returns its combined
// output.
func (c *composeRun) run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = c.env
	cmd.Dir = filepath.Dir(c.file)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("failed to run %s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, testenv.Tail(string(out), 6000))
	}
	return string(out), nil
}

// dc runs docker-compose on the repository's file in the test's project.
func (c *composeRun) dc(timeout time.Duration, args ...string) (string, error) {
	files := []string{"-p", composeProject, "-f", c.file}
	if c.s3 != "" {
		files = append(files, "-f", c.s3)
	}
	return c.run(timeout, c.compose, append(files, args...)...)
}

// mustDC is dc that fails the test.
func (c *composeRun) mustDC(timeout time.Duration, args ...string) string {
	c.t.Helper()
	out, err := c.dc(timeout, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// mustDocker runs docker and fails the test on an error.
func (c *composeRun) mustDocker(args ...string) string {
	c.t.Helper()
	out, err := c.run(time.Minute, c.docker, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

// leftovers lists what of the project still exists: containers, networks,
// volumes.
func (c *composeRun) leftovers() (string, error) {
	var all []string
	filter := "label=com.docker.compose.project=" + composeProject
	for _, what := range [][]string{
		{"ps", "-a", "--format", "container {{.Names}} ({{.Status}})", "--filter", filter},
		{"network", "ls", "--format", "network {{.Name}}", "--filter", filter},
		{"volume", "ls", "--format", "volume {{.Name}}", "--filter", filter},
	} {
		out, err := c.run(time.Minute, c.docker, what...)
		if err != nil {
			return "", err
		}
		if s := strings.TrimSpace(out); s != "" {
			all = append(all, s)
		}
	}
	return strings.Join(all, "\n"), nil
}

// down removes the project's containers, networks and volumes and reports
// anything left. It runs without the test's budget: cleanup must happen
// after the budget too.
func (c *composeRun) down() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	saved := c.ctx
	c.ctx = ctx
	defer func() { c.ctx = saved }()
	// -t 5: no need to wait out the gateways' 30 s drain here. With the S3
	// override, whether or not step 9 ran: its service and volume go too.
	files := []string{"-p", composeProject, "-f", c.file, "-f", filepath.Join(filepath.Dir(c.file), "deploy", "compose-s3.yml")}
	if _, err := c.run(2*time.Minute, c.compose, append(files, "down", "-v", "--remove-orphans", "-t", "5")...); err != nil {
		return err
	}
	left, err := c.leftovers()
	if err != nil {
		return err
	}
	if left != "" {
		return fmt.Errorf("still there after `docker-compose down -v`:\n%s", left)
	}
	return nil
}

// container is one running container of the project.
type container struct {
	ID, Name, Service string
	WebIP             string // its address on the compose network `web`
}

// containers returns the project's containers of a service, running ones
// only, sorted by name.
func (c *composeRun) containers(service string) []container {
	c.t.Helper()
	ids := strings.Fields(c.mustDocker("ps", "-q",
		"--filter", "label=com.docker.compose.project="+composeProject,
		"--filter", "label=com.docker.compose.service="+service))
	var cs []container
	for _, id := range ids {
		out := c.mustDocker("inspect", "-f",
			`{{.Name}} {{with index .NetworkSettings.Networks "`+composeProject+`_web"}}{{.IPAddress}}{{end}}`, id)
		f := strings.Fields(out)
		ct := container{ID: id, Name: strings.TrimPrefix(f[0], "/"), Service: service}
		if len(f) > 1 {
			ct.WebIP = f[1]
		}
		cs = append(cs, ct)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs
}

// waitHealthy waits until n containers of service run and each reports
// healthy (or, for a service without a healthcheck, running).
func (c *composeRun) waitHealthy(service string, n int, timeout time.Duration) []container {
	c.t.Helper()
	var cs []container
	testenv.WaitFor(c.t, timeout, fmt.Sprintf("%d healthy %s container(s)", n, service), func() error {
		cs = c.containers(service)
		if len(cs) != n {
			return fmt.Errorf("%d running", len(cs))
		}
		for _, ct := range cs {
			st := c.mustDocker("inspect", "-f", "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", ct.ID)
			if st != "running healthy" && st != "running none" {
				return fmt.Errorf("%s is %s", ct.Name, st)
			}
		}
		return nil
	})
	return cs
}

// replicaStats is what one gateway's /metrics says about its connections.
type replicaStats struct {
	Viewers, Publishers int
	LayerReady          bool
}

// stats reads a gateway's /metrics on the compose network: per replica,
// which nginx (a random replica) cannot tell.
func stats(ct container) (replicaStats, error) {
	var s replicaStats
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(ct.WebIP, "8000") + "/metrics")
	if err != nil {
		return s, fmt.Errorf("failed to read %s's metrics: %w", ct.Name, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, _ := strconv.ParseFloat(value, 64)
		switch name {
		case `framecast_connections{role="view"}`:
			s.Viewers = int(v)
		case `framecast_connections{role="publish"}`, `framecast_connections{role="seed"}`:
			s.Publishers += int(v)
		case "framecast_layer_ready":
			s.LayerReady = v == 1
		}
	}
	return s, sc.Err()
}

// readyz returns the status code of a gateway's /readyz.
func readyz(ct container) (int, error) {
	client := http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get("http://" + net.JoinHostPort(ct.WebIP, "8000") + "/readyz")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// viewer is a binary WebSocket viewer through nginx, counting frames.
type viewer struct {
	frames  atomic.Int64
	last    atomic.Int64 // receive time of the newest frame, Unix ns
	seq     atomic.Uint64
	done    chan struct{}
	closing atomic.Bool
	mu      sync.Mutex
	conn    *websocket.Conn // guarded by mu
	err     error           // the last connection's end; guarded by mu
}

// viewerURL is a binary viewer of room demo through nginx.
const viewerURL = "ws://" + composeHost + "/ws/video/demo/?role=view&format=binary"

func dialOnce(ctx context.Context) (*websocket.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, viewerURL, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to open a viewer through nginx: %w", err)
	}
	conn.SetReadLimit(4 << 20)
	return conn, nil
}

// dialViewer opens a binary viewer of room demo through nginx. It reads
// until Close is called and, as the viewer page does, reconnects (through
// nginx, so to any replica) when the gateway closes it.
func dialViewer(ctx context.Context) (*viewer, error) {
	conn, err := dialOnce(ctx)
	if err != nil {
		return nil, err
	}
	v := &viewer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		for {
			v.read(conn)
			for {
				if v.closing.Load() || ctx.Err() != nil {
					return
				}
				// A reconnecting client's pause, as quick as the page's first
				// retry: pacing, not a wait for a condition.
				time.Sleep(100 * time.Millisecond)
				if conn, err = dialOnce(ctx); err == nil {
					break
				}
			}
			v.mu.Lock()
			v.conn = conn
			v.mu.Unlock()
			if v.closing.Load() { // Close may have closed the previous one
				_ = conn.CloseNow()
				return
			}
		}
	}()
	return v, nil
}

// read counts conn's frames until it ends.
func (v *viewer) read(conn *websocket.Conn) {
	for {
		_, msg, err := conn.Read(context.Background())
		if err != nil {
			v.mu.Lock()
			v.err = err
			v.mu.Unlock()
			return
		}
		h, err := frames.ParseHeader(msg)
		if err != nil || h.Kind != frames.KindJPEG {
			continue
		}
		if !bytes.HasPrefix(msg[frames.HeaderSize:], []byte{0xFF, 0xD8}) {
			continue
		}
		v.seq.Store(h.Seq)
		v.last.Store(time.Now().UnixNano())
		v.frames.Add(1)
	}
}

// Close ends the viewer and waits for its reader.
func (v *viewer) Close() {
	v.closing.Store(true)
	v.mu.Lock()
	conn := v.conn
	v.mu.Unlock()
	_ = conn.Close(websocket.StatusNormalClosure, "")
	<-v.done
}

// frameSince reports nil once the viewer got a frame after t.
func (v *viewer) frameSince(t time.Time) error {
	if v.last.Load() > t.UnixNano() {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.err != nil {
		return fmt.Errorf("no frame since %s (%d in all; last connection ended: %w)", t.Format("15:04:05.000"), v.frames.Load(), v.err)
	}
	return fmt.Errorf("no frame since %s (%d in all)", t.Format("15:04:05.000"), v.frames.Load())
}

// pageStats is the viewer page's window.framecast (web/static/viewer.js).
type pageStats struct {
	State       string  `json:"state"`
	Frames      int     `json:"frames"`
	Drawn       int     `json:"drawn"`
	Connects    int     `json:"connects"`
	LastFrameAt float64 `json:"lastFrameAt"` // Date.now() in ms
	Width       int     `json:"width"`
}

// page is the viewer page in a headless Chromium.
type page struct{ ctx context.Context }

// openPage starts Chromium (flags: shared/FIELD-NOTES.md) on the viewer
// page of room demo through nginx.
func openPage(t *testing.T) *page {
	t.Helper()
	exe := testenv.RequireTool(t, "chromium")
	out := &testenv.SyncBuffer{}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe), chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.CombinedOutput(out))
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		if t.Failed() {
			t.Logf("--- chromium output ---\n%s", testenv.Tail(out.String(), 4000))
		}
	})
	// The first action starts the browser: no timeout, which would stop it.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("failed to start chromium: %v\n%s", err, out.String())
	}
	p := &page{ctx: ctx}
	nctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(nctx, chromedp.Navigate("http://"+composeHost+"/video/demo/")); err != nil {
		t.Fatalf("failed to open the viewer page through nginx: %v", err)
	}
	return p
}

// stats reads the page's counters.
func (p *page) stats() (pageStats, error) {
	var s pageStats
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	js, err := chromedp.Run(ctx, chromedp.Evaluate[string]("JSON.stringify(window.framecast)"))
	if err != nil {
		return s, fmt.Errorf("failed to read window.framecast: %w", err)
	}
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		return s, fmt.Errorf("failed to decode window.framecast %q: %w", js, err)
	}
	return s, nil
}

// frameSince reports nil once the page is live with a frame received after t.
func (p *page) frameSince(t time.Time) error {
	s, err := p.stats()
	if err != nil {
		return err
	}
	if s.State != "live" || s.LastFrameAt <= float64(t.UnixMilli()) {
		return fmt.Errorf("page %+v: no frame since %s", s, t.Format("15:04:05.000"))
	}
	return nil
}

// httpGet GETs a path through nginx.
func httpGet(ctx context.Context, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+composeHost+path, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
}

func TestComposeUp(t *testing.T) {
	docker := requireDocker(t)
	compose := requireTool(t, "docker-compose")
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), composeBudget)
	defer cancel()
	c := &composeRun{t: t, ctx: ctx, docker: docker, compose: compose, file: filepath.Join(root, "docker-compose.yml")}
	for _, kv := range os.Environ() {
		// As a fresh checkout meets the file: its defaults.
		if !strings.HasPrefix(kv, "FRAMECAST_") && !strings.HasPrefix(kv, "COMPOSE_") {
			c.env = append(c.env, kv)
		}
	}
	phase := time.Now()
	logPhase := func(what string) {
		t.Logf("%s: %.1f s", what, time.Since(phase).Seconds())
		phase = time.Now()
	}

	// What a killed earlier run left; then the same at the end, always.
	if err := c.down(); err != nil {
		t.Fatalf("failed to remove an earlier run's project: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := c.dc(time.Minute, "logs", "--no-color", "--tail", "40"); err == nil {
				t.Logf("--- docker-compose logs ---\n%s", testenv.Tail(out, 12000))
			}
		}
		if err := c.down(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if l, err := net.Listen("tcp", "127.0.0.1:8080"); err != nil {
		t.Fatalf("port 8080, where docker-compose.yml publishes nginx, is taken: %v", err)
	} else {
		l.Close()
	}

	// 1. Base images: local stand-ins for what a registry would serve.
	if out, err := c.run(15*time.Minute, filepath.Join(root, "deploy", "testimages", "build.sh")); err != nil {
		t.Fatalf("failed to make the base images: %v", err)
	} else {
		t.Logf("deploy/testimages/build.sh:\n%s", strings.TrimSpace(out))
	}
	logPhase("base images")

	// 2. Up, with the project's images built from the real Dockerfiles.
	c.mustDC(15*time.Minute, "up", "-d", "--build")
	logPhase("docker-compose up -d --build")
	c.waitHealthy("redis", 1, time.Minute)
	gateways := c.waitHealthy("gateway", 3, 2*time.Minute)
	nginx := c.waitHealthy("nginx", 1, time.Minute)[0]
	c.waitHealthy("sender", 1, time.Minute)
	c.waitHealthy("recorder", 2, 2*time.Minute)
	if st := c.mustDocker("ps", "-a", "--format", "{{.Status}}",
		"--filter", "label=com.docker.compose.project="+composeProject,
		"--filter", "label=com.docker.compose.service=token"); !strings.HasPrefix(st, "Exited (0)") {
		t.Fatalf("token service: %q, want Exited (0)", st)
	}
	nginxStarted := c.mustDocker("inspect", "-f", "{{.State.StartedAt}}", nginx.ID)
	logPhase("healthchecks")

	checkImages(t, c)

	// 3. Frames through nginx: binary, the seed's JSON, snapshot, MJPEG,
	// the room list.
	first, err := dialViewer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	testenv.WaitFor(t, 30*time.Second, "binary frames through nginx", func() error {
		if n := first.frames.Load(); n < 3 {
			return fmt.Errorf("%d frames", n)
		}
		return nil
	})
	checkJSONViewer(t, ctx)
	checkSnapshotAndMJPEG(t, ctx)
	checkRoomList(t, ctx)
	logPhase("frames through nginx")

	// 3b. The recorders record the demo room into the recordings volume,
	// and the gateways play it back through nginx.
	checkRecording(t, c)
	checkPlayback(t, ctx)
	logPhase("recording and playback")

	// 4. The viewer page in Chromium shows live frames.
	pg := openPage(t)
	testenv.WaitFor(t, 20*time.Second, "live frames drawn on the viewer page", func() error {
		s, err := pg.stats()
		if err != nil {
			return err
		}
		if s.State != "live" || s.Drawn < 5 || s.Width == 0 {
			return fmt.Errorf("page %+v", s)
		}
		return nil
	})
	logPhase("viewer page")

	// 5. Five replicas; new viewers spread over all of them, with nginx
	// neither restarted nor reloaded.
	c.mustDC(5*time.Minute, "up", "-d", "--scale", "gateway=5")
	gateways = c.waitHealthy("gateway", 5, 2*time.Minute)
	if got := c.mustDocker("inspect", "-f", "{{.State.StartedAt}}", nginx.ID); got != nginxStarted {
		t.Fatalf("nginx restarted by the scale-up: started %s, then %s", nginxStarted, got)
	}
	spreadViewers(t, ctx, gateways)
	logPhase("scale to 5")

	// 6. A replica killed mid-stream: the sender and the page reconnect.
	first.Close()
	killReplicas(t, c, pg)
	logPhase("replica killed")

	// Back to five before the next fault.
	c.mustDC(5*time.Minute, "up", "-d", "--scale", "gateway=5")
	gateways = c.waitHealthy("gateway", 5, 2*time.Minute)

	// 7. A replica cut off from Redis.
	if gap := cutFromRedis(t, c, gateways, pg); gap != nil {
		t.Errorf("a replica cut off from Redis: %v", gap)
	}
	logPhase("replica cut off from Redis")

	// 8. nginx's access log keeps paths, not query strings (issue 12: the
	// sender's and viewer page's tokens).
	// (Its error log still quotes a failed request's line, query and all:
	// docs/deployment.md says so.)
	var access []string
	for _, line := range strings.Split(c.mustDC(time.Minute, "logs", "--no-color", "nginx"), "\n") {
		if strings.Contains(line, ` HTTP/1.1" `) {
			access = append(access, line)
		}
	}
	logs := strings.Join(access, "\n")
	if !strings.Contains(logs, `"GET /ws/video/demo/ HTTP/1.1" 101`) {
		t.Errorf("nginx's access log has no WebSocket request line with its path:\n%s", testenv.Tail(logs, 3000))
	}
	if strings.Contains(logs, "token=") {
		t.Errorf("nginx's access log holds a query-string token:\n%s", testenv.Tail(logs, 3000))
	}

	// 9. Recordings in S3 (deploy/compose-s3.yml): its S3 server's image
	// builds here, the recorders and gateways move onto the bucket, and
	// what they record there plays back through nginx.
	first.Close()
	c.s3 = filepath.Join(root, "deploy", "compose-s3.yml")
	switched := time.Now()
	c.mustDC(10*time.Minute, "up", "-d", "--build", "--scale", "gateway=3")
	logPhase("docker-compose up with compose-s3.yml")
	c.waitHealthy("s3", 1, time.Minute)
	c.waitHealthy("recorder", 2, 2*time.Minute)
	c.waitHealthy("gateway", 3, 2*time.Minute)
	checkImages(t, c)
	checkS3Recording(t, c, switched)
	checkPlayback(t, ctx)
	logPhase("recording to and playback from S3")

	// 10. Down: nothing of the project is left.
	if err := c.down(); err != nil {
		t.Fatal(err)
	}
	logPhase("docker-compose down -v")

}

// checkPlayback: any gateway, through nginx, lists the demo room's
// recorded spans and plays its recording from a time inside them on a
// WebSocket (the JSON format the seed's page reads), the frames captured
// then.
func checkPlayback(t *testing.T, ctx context.Context) {
	t.Helper()
	var list struct {
		Spans []struct{ Start, End time.Time }
	}
	testenv.WaitFor(t, 30*time.Second, "a recorded span through nginx", func() error {
		resp, err := httpGet(ctx, "/video/demo/recordings")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("recordings: %s", resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			return err
		}
		if len(list.Spans) == 0 || list.Spans[len(list.Spans)-1].End.Sub(list.Spans[len(list.Spans)-1].Start) < 4*time.Second {
			return fmt.Errorf("spans %+v", list.Spans)
		}
		return nil
	})
	span := list.Spans[len(list.Spans)-1]
	at := span.Start.Add(2 * time.Second)
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	url := fmt.Sprintf("ws://%s/ws/video/demo/?role=view&format=json&at=%d", composeHost, at.UnixMilli())
	conn, _, err := websocket.Dial(dctx, url, nil)
	if err != nil {
		t.Fatalf("playback through nginx: %v", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(16 << 20)
	_, msg, err := conn.Read(dctx)
	if err != nil {
		t.Fatalf("playback through nginx: %v", err)
	}
	f, err := testenv.ParseJSONFrame(msg)
	if err != nil {
		t.Fatalf("playback through nginx: %v", err)
	}
	if d := f.Captured.Sub(at); d > 2*time.Second || d < -2*time.Second {
		t.Fatalf("played back a frame captured %v from the time asked (%v)", d, at)
	}
	t.Logf("played back through nginx from %v: frame %d captured %v from it", at.Format(time.RFC3339), f.Seq, f.Captured.Sub(at))
}

// checkRecording: the two recorder replicas record the demo room into the
// `recordings` volume: a sealed segment appears, found through the index
// (no listing), and reads back as frames in publishing order, so no two
// recorders wrote the room at once. The volume is read by copying it out of
// a recorder (docker cp): the image has no shell.
func checkRecording(t *testing.T, c *composeRun) {
	t.Helper()
	recs := c.containers("recorder")
	if len(recs) != 2 {
		t.Fatalf("%d recorder containers, want 2", len(recs))
	}
	demo := frames.Stream{Room: "demo"}
	testenv.WaitFor(t, 90*time.Second, "a sealed segment of the demo room in the recordings volume", func() error {
		dir, err := os.MkdirTemp("", "framecast-recordings-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if _, err := c.run(time.Minute, c.docker, "cp", recs[0].ID+":/recordings/.", dir); err != nil {
			return err
		}
		st, err := store.NewDir(dir)
		if err != nil {
			return err
		}
		ctx := context.Background()
		segs, err := index.New(st, nil).Day(ctx, demo, time.Now())
		if err != nil {
			return err
		}
		for _, sg := range segs {
			if sg.Open {
				continue
			}
			data, err := st.Read(ctx, sg.Object, 0, -1)
			if err != nil {
				return err
			}
			fs, _, err := segment.Read(data)
			if err != nil || len(fs) == 0 {
				return fmt.Errorf("segment %s: %d frames, %v", sg.Object, len(fs), err)
			}
			for i := 1; i < len(fs); i++ {
				if fs[i].Seq <= fs[i-1].Seq {
					t.Fatalf("segment %s: frame %d after %d", sg.Object, fs[i].Seq, fs[i-1].Seq)
				}
			}
			t.Logf("recorded: %s, %d frames, %d bytes", sg.Object, len(fs), len(data))
			return nil
		}
		return fmt.Errorf("%d segments, none sealed yet", len(segs))
	})
}

// checkS3Recording: with compose-s3.yml, the recorders write the demo
// room's sealed segments into the S3 server's bucket (versitygw keeps an
// object as a file under its folder /data/recordings, copied out here), and
// the gateways list spans from the bucket only: none begins before the
// switch, though the recordings volume holds minutes from before it.
func checkS3Recording(t *testing.T, c *composeRun, switched time.Time) {
	t.Helper()
	s3 := c.containers("s3")[0]
	testenv.WaitFor(t, 90*time.Second, "a sealed segment of the demo room in the S3 bucket", func() error {
		dir, err := os.MkdirTemp("", "framecast-s3-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if _, err := c.run(time.Minute, c.docker, "cp", s3.ID+":/data/recordings/.", dir); err != nil {
			return err
		}
		var objects []string
		err = filepath.WalkDir(filepath.Join(dir, "framecast", "seg", "demo"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".mp4") {
				objects = append(objects, p)
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("no segment of the demo room under the bucket's framecast/ prefix yet: %w", err)
		}
		for _, p := range objects {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fs, _, err := segment.Read(data)
			if err != nil || len(fs) == 0 {
				return fmt.Errorf("object %s: %d frames, %v", p, len(fs), err)
			}
			if fs[0].Captured.Before(switched.Add(-2 * time.Second)) {
				t.Fatalf("object %s begins at %v, before the switch to S3 at %v", p, fs[0].Captured, switched)
			}
			t.Logf("recorded in S3: %s, %d frames, %d bytes", strings.TrimPrefix(p, dir), len(fs), len(data))
			return nil
		}
		return fmt.Errorf("no sealed segment in the bucket yet")
	})
	resp, err := httpGet(c.ctx, "/video/demo/recordings")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Spans []struct{ Start, End time.Time }
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Spans) == 0 {
		t.Fatalf("recordings through nginx on S3: %s, %+v, %v", resp.Status, list, err)
	}
	if first := list.Spans[0].Start; first.Before(switched.Add(-2 * time.Second)) {
		t.Fatalf("a gateway on S3 lists a span from %v, before the switch at %v: it reads the recordings volume", first, switched)
	}
}

// checkImages: the gateway image is small and non-root; the sender's user
// is not root. Sizes go to the log (docs/deployment.md quotes them).
func checkImages(t *testing.T, c *composeRun) {
	for _, img := range []struct {
		name, user string
		maxMB      float64
	}{
		{"framecast/gateway:latest", "nonroot:nonroot", 40},
		{"framecast/sender:latest", "sender", 0},
		{"framecast/versitygw:latest", "nonroot:nonroot", 60},
	} {
		if img.name == "framecast/versitygw:latest" && c.s3 == "" {
			continue // built in step 9
		}
		out := c.mustDocker("image", "inspect", "-f", "{{.Size}} {{.Config.User}}", img.name)
		f := strings.Fields(out)
		size, _ := strconv.ParseFloat(f[0], 64)
		mb := size / 1e6
		t.Logf("%s: %.1f MB, user %s", img.name, mb, strings.Join(f[1:], " "))
		if len(f) < 2 || f[1] != img.user {
			t.Errorf("%s runs as %q, want %q", img.name, strings.Join(f[1:], " "), img.user)
		}
		if img.maxMB > 0 && mb > img.maxMB {
			t.Errorf("%s is %.1f MB, want at most %.0f MB (a static binary on distroless)", img.name, mb, img.maxMB)
		}
	}
}

// checkJSONViewer: the seed's page protocol, {"message": "data:image/jpeg;base64,..."}.
func checkJSONViewer(t *testing.T, ctx context.Context) {
	t.Helper()
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, "ws://"+composeHost+"/ws/video/demo/?format=json", nil)
	if err != nil {
		t.Fatalf("failed to open a JSON viewer through nginx: %v", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(8 << 20)
	for {
		typ, msg, err := conn.Read(dctx)
		if err != nil {
			t.Fatalf("JSON viewer: no frame: %v", err)
		}
		var m struct {
			Message string `json:"message"`
		}
		if typ != websocket.MessageText || json.Unmarshal(msg, &m) != nil {
			t.Fatalf("JSON viewer: got %v message %.80q, want the seed's JSON", typ, msg)
		}
		b64, ok := strings.CutPrefix(m.Message, "data:image/jpeg;base64,")
		if !ok {
			continue // an offline notice, say
		}
		jpeg, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || !bytes.HasPrefix(jpeg, []byte{0xFF, 0xD8}) {
			t.Fatalf("JSON viewer: data URL is not a base64 JPEG (%v)", err)
		}
		return
	}
}

// checkSnapshotAndMJPEG: snapshot.jpg and the first part of stream.mjpg.
func checkSnapshotAndMJPEG(t *testing.T, ctx context.Context) {
	t.Helper()
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	// Any replica answers from the newest frame that the sender's replica
	// caches in Redis (GATEWAY_FRAME_CACHE_INTERVAL): poll for it.
	testenv.WaitFor(t, 10*time.Second, "snapshot.jpg through nginx", func() error {
		resp, err := httpGet(rctx, "/video/demo/snapshot.jpg")
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || !bytes.HasPrefix(body, []byte{0xFF, 0xD8}) {
			return fmt.Errorf("%s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
		}
		return nil
	})

	resp, err := httpGet(rctx, "/video/demo/stream.mjpg")
	if err != nil {
		t.Fatalf("stream.mjpg: %v", err)
	}
	defer resp.Body.Close()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != 200 || err != nil || mt != "multipart/x-mixed-replace" || params["boundary"] == "" {
		t.Fatalf("stream.mjpg: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for i := 0; i < 2; i++ {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("stream.mjpg: part %d: %v", i, err)
		}
		jpeg, err := io.ReadAll(part)
		if err != nil || !bytes.HasPrefix(jpeg, []byte{0xFF, 0xD8}) {
			t.Fatalf("stream.mjpg: part %d is not a JPEG (%v)", i, err)
		}
	}
}

// checkRoomList: /api/rooms lists room demo, live.
func checkRoomList(t *testing.T, ctx context.Context) {
	t.Helper()
	testenv.WaitFor(t, 15*time.Second, "room demo in /api/rooms", func() error {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		resp, err := httpGet(rctx, "/api/rooms")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var list struct {
			Rooms []struct {
				Name string `json:"name"`
				Live bool   `json:"live"`
			} `json:"rooms"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
			return fmt.Errorf("failed to decode /api/rooms (%s): %w", resp.Status, err)
		}
		for _, r := range list.Rooms {
			if r.Name == "demo" && r.Live {
				return nil
			}
		}
		return fmt.Errorf("rooms %+v", list.Rooms)
	})
}

// spreadViewers opens viewers through nginx until each replica has some,
// and checks that they all get frames.
func spreadViewers(t *testing.T, ctx context.Context, gateways []container) {
	t.Helper()
	var vs []*viewer
	defer func() {
		for _, v := range vs {
			v.Close()
		}
	}()
	counts := map[string]int{}
	testenv.WaitFor(t, 45*time.Second, "viewers on every one of the 5 replicas", func() error {
		if len(vs) < 100 {
			for i := 0; i < 10; i++ {
				v, err := dialViewer(ctx)
				if err != nil {
					return err
				}
				vs = append(vs, v)
			}
		}
		var missing []string
		for _, g := range gateways {
			s, err := stats(g)
			if err != nil {
				return err
			}
			counts[g.Name] = s.Viewers
			if s.Viewers == 0 {
				missing = append(missing, g.Name)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d viewers, per replica %v; none on %v", len(vs), counts, missing)
		}
		return nil
	})
	t.Logf("%d viewers through nginx over 5 replicas: %v", len(vs), counts)
	since := time.Now()
	testenv.WaitFor(t, 10*time.Second, "frames to every viewer", func() error {
		for i, v := range vs {
			if err := v.frameSince(since); err != nil {
				return fmt.Errorf("viewer %d: %w", i, err)
			}
		}
		return nil
	})
}

// locate returns the replicas that host the publisher and the given
// number of viewers (the page, and the test's first viewer).
func locate(gateways []container) (publisher container, viewers []container, err error) {
	for _, g := range gateways {
		s, err := stats(g)
		if err != nil {
			return publisher, nil, err
		}
		if s.Publishers > 0 {
			publisher = g
		}
		for i := 0; i < s.Viewers; i++ {
			viewers = append(viewers, g)
		}
	}
	if publisher.ID == "" {
		return publisher, viewers, errors.New("no replica has the sender")
	}
	return publisher, viewers, nil
}

// killReplicas kills the sender's replica, then, if the page was not
// there, the page's: each time the page gets frames again within
// reconnectBudget (after the first kill, that needs the sender to have
// reconnected to another replica).
func killReplicas(t *testing.T, c *composeRun, pg *page) {
	t.Helper()
	pageHit := false // the page's replica was killed
	for round := 0; round < 2; round++ {
		var pub container
		var views []container
		testenv.WaitFor(t, 15*time.Second, "the sender and the page located", func() error {
			var err error
			pub, views, err = locate(c.containers("gateway"))
			if err == nil && len(views) != 1 {
				err = fmt.Errorf("%d viewers, want only the page's", len(views))
			}
			return err
		})
		pageReplica := views[0]
		victim := pub
		if round == 1 {
			if pageHit {
				return // the first kill covered both
			}
			victim = pageReplica
		}
		pageHit = pageHit || victim.ID == pageReplica.ID
		before, err := pg.stats()
		if err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		c.mustDocker("kill", victim.ID)
		t.Logf("killed %s (the sender there: %v; the page there: %v)", victim.Name, victim.ID == pub.ID, victim.ID == pageReplica.ID)
		testenv.WaitFor(t, reconnectBudget, "frames at the page after the kill", func() error {
			// A frame sent before the kill may still arrive just after it.
			return pg.frameSince(at.Add(200 * time.Millisecond))
		})
		after, _ := pg.stats()
		t.Logf("page live again %.2f s after the kill; its connects %d -> %d", time.Since(at).Seconds(), before.Connects, after.Connects)
		if victim.ID == pageReplica.ID && after.Connects <= before.Connects {
			t.Errorf("the page's replica was killed but the page did not reconnect (connects %d -> %d)", before.Connects, after.Connects)
		}
	}
}

// waitReadyz waits until a replica's /readyz answers code.
func waitReadyz(t *testing.T, ct container, code int, timeout time.Duration) {
	t.Helper()
	testenv.WaitFor(t, timeout, fmt.Sprintf("%s's /readyz %d", ct.Name, code), func() error {
		got, err := readyz(ct)
		if err != nil {
			return err
		}
		if got != code {
			return fmt.Errorf("/readyz %d", got)
		}
		return nil
	})
}

// everyoneGetsFrames reports nil once the page and every viewer got a
// frame after t.
func everyoneGetsFrames(pg *page, vs []*viewer, t time.Time) error {
	if err := pg.frameSince(t); err != nil {
		return err
	}
	for i, v := range vs {
		if err := v.frameSince(t); err != nil {
			return fmt.Errorf("viewer %d of %d: %w", i, len(vs), err)
		}
	}
	return nil
}

// cutFromRedis disconnects the sender's replica from Redis' network, with
// the page and ten more viewers spread over the replicas, then reconnects
// it. Checked strictly: that replica's /readyz goes 503 and, once
// reconnected, 200 again; it then serves new viewers and every viewer gets
// frames. Returned instead of failing the test: whether frames reached
// everyone, and viewers arriving during the cut, within reconnectBudget.
// With the sender (or a viewer) on a replica that has lost Redis they do
// not: the gateway keeps its WebSockets open and keeps accepting new ones
// while its channel layer is down, and nginx cannot see /readyz.
func cutFromRedis(t *testing.T, c *composeRun, gateways []container, pg *page) (gap error) {
	t.Helper()
	var pub container
	testenv.WaitFor(t, 15*time.Second, "the sender located", func() error {
		var err error
		pub, _, err = locate(gateways)
		return err
	})
	var vs []*viewer
	defer func() {
		for _, v := range vs {
			v.Close()
		}
	}()
	dial := func(n int) []*viewer {
		var fresh []*viewer
		for i := 0; i < n; i++ {
			v, err := dialViewer(c.ctx)
			if err != nil {
				t.Fatal(err)
			}
			fresh = append(fresh, v)
		}
		vs = append(vs, fresh...)
		return fresh
	}
	dial(10)
	_, views, err := locate(gateways)
	if err != nil {
		t.Fatal(err)
	}
	onVictim := 0
	for _, v := range views {
		if v.ID == pub.ID {
			onVictim++
		}
	}

	network := composeProject + "_redis"
	at := time.Now()
	c.mustDocker("network", "disconnect", network, pub.ID)
	t.Logf("disconnected %s (the sender's replica, %d of 11 viewers) from %s", pub.Name, onVictim, network)
	connected := false
	defer func() {
		if !connected {
			_, _ = c.run(time.Minute, c.docker, "network", "connect", network, pub.ID)
		}
	}()
	waitReadyz(t, pub, http.StatusServiceUnavailable, 10*time.Second)
	t.Logf("%s: /readyz 503 %.2f s after the cut", pub.Name, time.Since(at).Seconds())

	var gaps []string
	if err := testenv.Poll(reconnectBudget-time.Since(at), func() error {
		return everyoneGetsFrames(pg, vs, at.Add(200*time.Millisecond))
	}); err != nil {
		gaps = append(gaps, fmt.Sprintf("within %v of the cut, not every viewer got frames: %v", reconnectBudget, err))
	}
	since := time.Now()
	fresh := dial(10)
	if err := testenv.Poll(reconnectBudget, func() error { return everyoneGetsFrames(pg, fresh, since) }); err != nil {
		gaps = append(gaps, fmt.Sprintf("viewers arriving during the cut got no frames within %v: %v", reconnectBudget, err))
	}

	c.mustDocker("network", "connect", network, pub.ID)
	connected = true
	back := time.Now()
	waitReadyz(t, pub, http.StatusOK, 15*time.Second)
	t.Logf("%s: /readyz 200 %.2f s after reconnecting", pub.Name, time.Since(back).Seconds())
	testenv.WaitFor(t, 15*time.Second, "frames for every viewer after the reconnect", func() error {
		return everyoneGetsFrames(pg, vs, back)
	})
	// It serves again: a new viewer that lands on it gets frames.
	testenv.WaitFor(t, 30*time.Second, "a new viewer on "+pub.Name+" getting frames", func() error {
		before, err := stats(pub)
		if err != nil {
			return err
		}
		v := dial(1)[0]
		after, err := stats(pub)
		if err != nil {
			return err
		}
		if after.Viewers <= before.Viewers {
			return errors.New("the new viewer went to another replica")
		}
		start := time.Now()
		return testenv.Poll(3*time.Second, func() error { return v.frameSince(start) })
	})
	if len(gaps) > 0 {
		return errors.New(strings.Join(gaps, "; "))
	}
	return nil
}
