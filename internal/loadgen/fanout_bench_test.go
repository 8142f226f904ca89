package loadgen

import (
	"context"
	"fmt"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/internal/testenv/gatewaytest"
	"github.com/framecast/framecast/pkg/frames"
)

// BenchmarkFanout relays frames through gateways running in this process,
// so `go test -cpuprofile` and `-memprofile` see the gateway's hot path:
//
//	go test -run='^$' -bench=BenchmarkFanout -cpuprofile cpu.out ./internal/loadgen/
//	go tool pprof -top -tagfocus=side=gateway cpu.out
//
// One op is one 50 KB frame published and relayed to every viewer. The
// publisher keeps at most two frames ahead of the slowest viewer, so the
// gateway is kept busy without frames being skipped wholesale; ns/delivery
// is the wall time per frame delivered, cpu-ns/delivery the process's CPU
// time (gateway and viewers) per frame delivered. Goroutines
// carry a pprof label, side=gateway or side=client, to tell the gateway's
// CPU from the viewers' in the profile. Allocation figures cover the whole
// process; the viewers and publisher allocate nothing per frame, so allocs/op
// is the gateway's (check with -memprofile).
//
// The redis variants start redis-server and two gateways, the publisher on
// the first and viewers split over both, as S1 does.
func BenchmarkFanout(b *testing.B) {
	for _, bc := range []struct {
		layer   string
		viewers int
		format  string
	}{
		{"memory", 100, FormatBinary},
		{"memory", 1000, FormatBinary},
		{"memory", 100, FormatJSON},
		{"redis", 100, FormatBinary},
	} {
		b.Run(fmt.Sprintf("%s/viewers=%d/%s", bc.layer, bc.viewers, bc.format), func(b *testing.B) {
			benchFanout(b, bc.layer, bc.viewers, bc.format)
		})
	}
}

// benchSize is the benchmark's JPEG size, S1's 50 KB.
const benchSize = 50000

func benchFanout(b *testing.B, layer string, nViewers int, format string) {
	// Through the environment, so that the benchmark follows renamed
	// fields: unknown settings are ignored.
	b.Setenv("GATEWAY_PUBLISH_RATE", "0")
	b.Setenv("GATEWAY_ROOM_RATE", "0")
	b.Setenv("GATEWAY_MAX_CONNECTIONS", "0")
	b.Setenv("GATEWAY_MAX_CONNECTIONS_PER_IP", "0")
	b.Setenv("GATEWAY_LOG_LEVEL", "error")
	replicas := 1
	if layer == "redis" {
		r := testenv.StartRedis(b)
		b.Setenv("GATEWAY_REDIS_URL", r.URL())
		replicas = 2
	}
	var urls []string
	for range replicas {
		urls = append(urls, startInProcessGateway(b).WSURL())
	}

	payload, _ := MakeJPEG(benchSize, 1)
	room := &roomState{name: "bench"}
	room.from.Store(1) // count every frame
	prog := newProgress(nViewers)
	d := newDialer()
	ctx := context.Background()
	viewers := make([]*viewer, nViewers)
	var wg sync.WaitGroup
	pprof.Do(ctx, pprof.Labels("side", "client"), func(ctx context.Context) {
		// coder/websocket read into a reused buffer (coderSource), as
		// cmd/loadgen's viewers read.
		cr := connectAll(ctx, nViewers, 0, 32, func(ctx context.Context, i int) (msgSource, error) {
			return d.dialViewer(ctx, urls[i%len(urls)], room.name, format, "", messageBytes(format, payload))
		})
		if cr.failed > 0 {
			b.Fatalf("%d viewers failed to connect: %v", cr.failed, cr.first)
		}
		for i, c := range cr.conns {
			v := newViewer(c, room, format)
			v.onFrame = func(seq uint64) { prog.saw(i, seq) }
			viewers[i] = v
			wg.Add(1)
			go func() {
				defer wg.Done()
				v.run()
			}()
		}
	})
	defer func() {
		for _, v := range viewers {
			_ = v.src.Close()
		}
		wg.Wait()
	}()
	pc, err := d.dial(ctx, urls[0], room.name, "role=publish")
	if err != nil {
		b.Fatal(err)
	}
	defer pc.CloseNow()
	pc.CloseRead(ctx)
	pub := newPublisher(pc, room, payload, 0)

	// Warm up until every viewer has a frame: subscriptions are made, and
	// the replicas' newest frame, if any, is flushed.
	send := func() {
		pub.seq++
		frames.PutHeader(pub.msgs[0], frames.KindJPEG, pub.seq, time.Now())
		if err := pc.Write(ctx, websocket.MessageBinary, pub.msgs[0]); err != nil {
			b.Fatalf("publish: %v", err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for !prog.reached(pub.seq, 200*time.Millisecond) || pub.seq == 0 {
		if time.Now().After(deadline) {
			b.Fatalf("viewers did not all get frame %d within 20 s", pub.seq)
		}
		send()
	}
	startSeq := pub.seq
	received0 := totalReceived(viewers)

	const depth = 2 // frames in flight beyond the slowest viewer
	var cpu0 time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 = selfCPU()
	for i := range b.N {
		if i >= depth {
			prog.wait(startSeq + uint64(i-depth+1))
		}
		send()
	}
	prog.wait(pub.seq)
	b.StopTimer()
	cpu := selfCPU() - cpu0
	deliveries := totalReceived(viewers) - received0
	// Latest-wins: a viewer whose writer is still busy when the next frame
	// comes skips the older one, so deliveries/op may be below the viewers.
	b.ReportMetric(float64(deliveries)/float64(b.N), "deliveries/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(deliveries), "ns/delivery")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(deliveries), "cpu-ns/delivery")
}

// startInProcessGateway starts a gateway in this process, configured
// from the environment as cmd/gateway is, its goroutines labelled
// side=gateway, and waits until it is ready.
func startInProcessGateway(b *testing.B) *gatewaytest.Gateway {
	b.Helper()
	cfg, err := gateway.LoadConfig()
	if err != nil {
		b.Fatal(err)
	}
	g := gatewaytest.Start(b, gatewaytest.Options{
		Config: func(c *gateway.Config) { *c = cfg },
		Labels: pprof.Labels("side", "gateway"),
	})
	g.WaitReady(b, 10*time.Second)
	return g
}

func totalReceived(vs []*viewer) uint64 {
	var n uint64
	for _, v := range vs {
		n += v.received.Load()
	}
	return n
}

// progress tracks the newest frame each viewer has seen, so the
// benchmark's publisher can wait for the slowest one.
type progress struct {
	mu     sync.Mutex
	cond   *sync.Cond
	last   []uint64
	target uint64
	behind int // viewers whose last < target
}

func newProgress(n int) *progress {
	p := &progress{last: make([]uint64, n)}
	p.cond = sync.NewCond(&p.mu)
	return p
}

// saw records that viewer i got frame seq.
func (p *progress) saw(i int, seq uint64) {
	p.mu.Lock()
	if p.last[i] < p.target && seq >= p.target {
		p.behind--
		if p.behind == 0 {
			p.cond.Signal()
		}
	}
	p.last[i] = max(p.last[i], seq)
	p.mu.Unlock()
}

func (p *progress) setTarget(seq uint64) {
	p.target = seq
	p.behind = 0
	for _, l := range p.last {
		if l < seq {
			p.behind++
		}
	}
}

// wait blocks until every viewer has seen seq or a later frame.
func (p *progress) wait(seq uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setTarget(seq)
	for p.behind > 0 {
		p.cond.Wait()
	}
}

// reached waits up to d for every viewer to see seq.
func (p *progress) reached(seq uint64, d time.Duration) bool {
	done := make(chan struct{})
	timer := time.AfterFunc(d, func() {
		p.mu.Lock()
		close(done)
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setTarget(seq)
	for p.behind > 0 {
		select {
		case <-done:
			return false
		default:
		}
		p.cond.Wait()
	}
	return true
}
