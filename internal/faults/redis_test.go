package faults_test

import (
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// goroutineSlack is how far above its baseline a gateway's goroutine count
// may settle once every client has gone. The scrape itself runs on one
// goroutine; the rest covers a timer callback (a ping, the presence or
// frame-cache writers) that happens to run at the instant of a scrape.
// A leak per reconnect attempt, per viewer or per publisher would be far
// above it: the test makes dozens of each.
const goroutineSlack = 3

// startReplicas starts Redis and two gateways on it, A and B, and waits
// until both are ready.
func startReplicas(t *testing.T, env ...string) (*testenv.Redis, *testenv.Gateway, *testenv.Gateway) {
	t.Helper()
	r := testenv.StartRedis(t)
	// GATEWAY_LAYER_DOWN_CLOSE=0: these tests take Redis away from every
	// replica and check that connections outlive the outage; the default
	// closes them after 2 s so that clients move to replicas that still
	// reach Redis (TestReplicaCutOffFromRedis).
	env = gatewayEnv(append([]string{"GATEWAY_REDIS_URL=" + r.URL(), "GATEWAY_LAYER_DOWN_CLOSE=0"}, env...)...)
	a := testenv.StartGateway(t, env...)
	b := testenv.StartGateway(t, env...)
	for _, g := range []*testenv.Gateway{a, b} {
		testenv.WaitFor(t, 10*time.Second, "gateway /readyz", func() error { return wantStatus(g.URL()+"/readyz", http.StatusOK) })
	}
	return r, a, b
}

// steadyGoroutines returns a gateway's go_goroutines once two scrapes in a
// row agree: the count with nothing connected.
func steadyGoroutines(t *testing.T, g *testenv.Gateway) float64 {
	t.Helper()
	last := -1.0
	var n float64
	testenv.WaitFor(t, 10*time.Second, "a steady goroutine count", func() error {
		n = testenv.Metric(t, g.URL(), "go_goroutines")
		if n == last {
			return nil
		}
		last = n
		return fmt.Errorf("go_goroutines moved to %v", n)
	})
	return n
}

// TestRedisKilledAndRestarted kills Redis under a live room twice: viewers on
// both replicas get frames captured after each restart within 2 s of it,
// with no gateway restart; and once every client has left, each gateway's
// goroutine count is back at its baseline, so neither the reconnect loops
// nor the connections that lived through the outages left goroutines behind.
// (TestRedisRestartMidStream in internal/gateway covers one restart and
// /readyz; this adds repeated outages, many viewers and the leak check.)
func TestRedisKilledAndRestarted(t *testing.T) {
	const (
		room     = "cam"
		cycles   = 2
		downFor  = 1500 * time.Millisecond // several reconnect attempts: the layer backs off 50 ms → 500 ms
		resumeIn = 2 * time.Second
	)
	r, a, b := startReplicas(t)
	gws := []*testenv.Gateway{a, b}
	baseline := make([]float64, len(gws))
	for i, g := range gws {
		baseline[i] = steadyGoroutines(t, g)
	}

	pub := startPublisher(t, "pub", a.WSURL(), room, 30, 20_000, 1)
	var viewers []*viewer
	for i := range 4 {
		for j, g := range gws {
			viewers = append(viewers, startViewer(t, fmt.Sprintf("%c%d", 'A'+j, i), g.WSURL(), room))
		}
	}
	for _, v := range viewers {
		v.await(t, 10*time.Second, "a first frame", frameCapturedAfter(time.Time{}))
	}
	peak := make([]float64, len(gws))
	for i, g := range gws {
		peak[i] = testenv.Metric(t, g.URL(), "go_goroutines")
	}

	for cycle := 1; cycle <= cycles; cycle++ {
		r.Kill()
		killed := time.Now()
		testenv.WaitFor(t, 10*time.Second, "/readyz 503 and /healthz 200 with Redis dead", func() error {
			for _, g := range gws {
				if err := wantStatus(g.URL()+"/readyz", http.StatusServiceUnavailable); err != nil {
					return err
				}
				if err := wantStatus(g.URL()+"/healthz", http.StatusOK); err != nil {
					return err
				}
			}
			return nil
		})
		// Keep Redis down for a fixed time, the fault's length: long
		// enough for the layers to fail several reconnect attempts.
		<-time.After(time.Until(killed.Add(downFor)))
		r.Restart()
		back := time.Now()
		var slowest time.Duration
		for _, v := range viewers {
			m := v.await(t, time.Until(back.Add(resumeIn)), "a frame captured after Redis came back", frameCapturedAfter(back))
			slowest = max(slowest, m.at.Sub(back))
		}
		for i, g := range gws {
			if g.Proc.Exited() {
				t.Fatalf("gateway %s exited while Redis was down:\n%s", g.URL(), g.Proc.Output())
			}
			peak[i] = max(peak[i], testenv.Metric(t, g.URL(), "go_goroutines"))
		}
		t.Logf("outage %d: Redis down %v; all %d viewers had a fresh frame %v after it came back",
			cycle, back.Sub(killed).Round(time.Millisecond), len(viewers), slowest.Round(time.Millisecond))
	}
	for _, g := range gws {
		testenv.WaitFor(t, 5*time.Second, "/readyz 200 after the outages", func() error { return wantStatus(g.URL()+"/readyz", http.StatusOK) })
	}
	if err := pub.failure(); err != nil {
		t.Fatalf("the publisher's connection broke during the outages: %v", err)
	}

	// Everyone leaves; the viewers' writers exit after 2 s without frames.
	pub.stop(true)
	for _, v := range viewers {
		v.close()
	}
	for i, g := range gws {
		// Back under the limit and staying there for a second: a viewer's
		// writer lingers for a moment after its connection ends, and a count
		// caught on its way down is not the settled one.
		var n float64
		var under time.Time
		testenv.WaitFor(t, 15*time.Second, fmt.Sprintf("gateway %s back to %v goroutines (+%d) for 1 s", g.URL(), baseline[i], goroutineSlack), func() error {
			n = testenv.Metric(t, g.URL(), "go_goroutines")
			switch {
			case n > baseline[i]+goroutineSlack:
				under = time.Time{}
				return fmt.Errorf("%v goroutines", n)
			case under.IsZero():
				under = time.Now()
			}
			if time.Since(under) < time.Second {
				return fmt.Errorf("%v goroutines for %v", n, time.Since(under).Round(time.Millisecond))
			}
			return nil
		})
		t.Logf("gateway %s: %v goroutines before any client, %v at most with clients, %v after they left",
			g.URL(), baseline[i], peak[i], n)
	}
}

// TestRedisFrozen stops Redis with SIGSTOP for 5 s, the worst kind of
// outage: connections stay open and nothing answers. The gateways stay
// healthy (/healthz 200 throughout) and report not-ready (/readyz 503)
// during the freeze; the publisher's replica keeps reading its frames (its
// latest-wins slot in front of Redis drops the ones Redis cannot take), so
// the camera's writes never wait: with 200 KB frames at 30 fps a reader
// that stopped would fill the socket buffers within a second or two and
// stall the writes for the rest of the freeze. After SIGCONT, frames
// captured after it reach viewers on both replicas within a few seconds.
func TestRedisFrozen(t *testing.T) {
	const (
		room     = "cam"
		freeze   = 5 * time.Second
		timeouts = 2 * time.Second // GATEWAY_PUBLISH_TIMEOUT and GATEWAY_WRITE_TIMEOUT
		// maxWrite is the longest a publisher's write may take: a fraction
		// of the timeouts, which a gateway blocked on Redis would exceed.
		maxWrite = timeouts / 4
		fps      = 30
		resumeIn = 5 * time.Second
		// readyzBudget is how long /readyz may take: the 1 s it gives
		// Redis, and slack for -race.
		readyzBudget = 2 * time.Second
	)
	r, a, b := startReplicas(t, "GATEWAY_PUBLISH_TIMEOUT=2s", "GATEWAY_WRITE_TIMEOUT=2s")
	gws := []*testenv.Gateway{a, b}
	pub := startPublisher(t, "pub", a.WSURL(), room, fps, 200<<10, 1)
	va := startViewer(t, "A", a.WSURL(), room)
	vb := startViewer(t, "B", b.WSURL(), room)
	for _, v := range []*viewer{va, vb} {
		v.await(t, 10*time.Second, "a first frame", frameCapturedAfter(time.Time{}))
	}

	health := startHealthPoller(gws, 100*time.Millisecond)
	in0 := testenv.Metric(t, a.URL(), "framecast_frames_in_total")
	dropped0 := testenv.Metric(t, a.URL(), "framecast_publish_dropped_total")

	if err := r.Proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()

	// /readyz must answer 503 during the freeze, and within its own budget:
	// the handler gives Redis 1 s to answer a PING. Both replicas at once.
	var wg sync.WaitGroup
	readyz := make([]string, len(gws))
	for i, g := range gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			code, err := status(g.URL()+"/readyz", 4*time.Second)
			took := time.Since(start)
			readyz[i] = fmt.Sprintf("%d %v after %v", code, err, took.Round(time.Millisecond))
			if err != nil || code != http.StatusServiceUnavailable || took > readyzBudget {
				t.Errorf("/readyz of %s during the freeze: %s; want 503 within %v (its 1 s budget for Redis's PING)",
					g.URL(), readyz[i], readyzBudget)
			}
		}()
	}
	wg.Wait()

	// How many frames the publisher's replica has accepted 3.5 s into the
	// freeze. The scrape runs beside the freeze: it waits up to 1 s on the
	// frozen Redis for framecast_layer_ready and reads the counters within
	// that time, so they count at least the frames written before it began.
	<-time.After(time.Until(stopped.Add(3500 * time.Millisecond)))
	scraped := time.Now()
	counters := make(chan [2]float64, 1)
	go func() {
		m, err := testenv.ScrapeMetrics(a.URL(), 15*time.Second)
		if err != nil {
			t.Errorf("scrape during the freeze: %v", err)
		}
		counters <- [2]float64{m.Sum("framecast_frames_in_total"), m.Sum("framecast_publish_dropped_total")}
	}()
	<-time.After(time.Until(stopped.Add(freeze)))
	if err := r.Proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()

	for _, v := range []*viewer{vb, va} {
		m := v.await(t, resumeIn, "a frame captured after SIGCONT", frameCapturedAfter(resumed))
		t.Logf("viewer %s: fresh frame %v after SIGCONT", v.name, m.at.Sub(resumed).Round(time.Millisecond))
	}
	for _, g := range gws {
		testenv.WaitFor(t, resumeIn, "/readyz 200 after SIGCONT", func() error { return wantStatus(g.URL()+"/readyz", http.StatusOK) })
		if g.Proc.Exited() {
			t.Fatalf("gateway %s exited:\n%s", g.URL(), g.Proc.Output())
		}
	}
	polls, failures := health.stop()
	c := <-counters
	in1, dropped1 := c[0], c[1]

	if err := pub.failure(); err != nil {
		t.Fatalf("the publisher's connection broke during the freeze: %v", err)
	}
	wrote, longest := pub.writeStats(stopped, resumed)
	wroteBeforeScrape, _ := pub.writeStats(stopped, scraped)
	_, longestOverall := pub.writeStats(time.Time{}, time.Now())
	t.Logf("freeze %v: /readyz answered %q; publisher wrote %d frames, longest write %v (%v over the whole test); "+
		"replica A's scrape 3.5 s in: %.0f frames accepted since the freeze began (%d written by then), %.0f replaced in its slot; "+
		"/healthz polled %d times",
		resumed.Sub(stopped).Round(time.Millisecond), readyz, wrote,
		longest.Round(time.Microsecond), longestOverall.Round(time.Microsecond), in1-in0, wroteBeforeScrape, dropped1-dropped0, polls)
	for _, f := range failures {
		t.Errorf("/healthz failed during the freeze: %s", f)
	}
	if minWrites := int(freeze.Seconds() * fps * 0.8); wrote < minWrites {
		t.Errorf("the publisher wrote %d frames in the %v freeze, want at least %d: its writes were held up", wrote, freeze, minWrites)
	}
	if longest > maxWrite {
		t.Errorf("a publisher write took %v during the freeze, want under %v (a quarter of the %v timeouts)", longest, maxWrite, timeouts)
	}
	if accepted := in1 - in0; accepted < 0.8*float64(wroteBeforeScrape) {
		t.Errorf("replica A accepted %.0f frames while the publisher wrote %d: it stopped reading its publisher", accepted, wroteBeforeScrape)
	}
	if dropped1-dropped0 < 1 {
		t.Errorf("the publisher slot dropped no frame while Redis was frozen: did publishing block somewhere else?")
	}
}

// healthPoller GETs every gateway's /healthz at a fixed period and records
// each answer that is not a 200 within a second.
type healthPoller struct {
	stopc chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	polls    int
	failures []string
}

func startHealthPoller(gws []*testenv.Gateway, every time.Duration) *healthPoller {
	h := &healthPoller{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			for _, g := range gws {
				start := time.Now()
				code, err := status(g.URL()+"/healthz", time.Second)
				h.mu.Lock()
				h.polls++
				if err != nil || code != http.StatusOK {
					h.failures = append(h.failures, fmt.Sprintf("%s at %s: %d %v (after %v)",
						g.URL(), start.Format("15:04:05.000"), code, err, time.Since(start).Round(time.Millisecond)))
				}
				h.mu.Unlock()
			}
			select {
			case <-h.stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

// stop stops polling and returns the number of polls and the failures.
func (h *healthPoller) stop() (int, []string) {
	close(h.stopc)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.polls, h.failures
}
