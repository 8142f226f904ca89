package gateway_test

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestThrottledViewerMovesDown: a viewer behind a link slower than the
// main layer's rate skips frames, moves down a layer (a `layer` message,
// reason down, counted) and then receives frames without a gap of more
// than a second. The same link with adapt=0 stays on the main layer.
func TestThrottledViewerMovesDown(t *testing.T) {
	g := testenv.StartGateway(t)
	// 10 pictures a second of about 125, 35 and 10 KB (the test JPEGs'
	// sizes): 1.25 MB/s on the main layer, 350 KB/s on layer 1.
	pics := lyPictures(t, 2, nil)
	t.Logf("layer sizes %d, %d, %d bytes", len(pics[0][0]), len(pics[0][1]), len(pics[0][2]))
	lyPublish(t, soWS(g.URL(), "slow", "role=publish"), "", 100*time.Millisecond, pics)
	lyWaitLayers(t, g.URL(), "slow")
	const link = 600 << 10 // bytes per second

	viewer := func(query string) *testenv.Client {
		p := testenv.StartProxy(t, "127.0.0.1:"+strconv.Itoa(g.Port), 0)
		p.LimitDown(link)
		c := testenv.Dial(t, "ws://"+p.Addr()+"/ws/video/slow/?"+lyV2(query), nil)
		l := lyUntil(t, c, 10*time.Second, "the first layer message", func(m lyMsg) bool { return m.Type == "layer" })
		if l.Layer != 0 || l.Reason != "asked" {
			t.Fatalf("first layer message %+v", l)
		}
		return c
	}
	downs := func() float64 { return testenv.Metric(t, g.URL(), `framecast_layer_moves_total{direction="down"}`) }

	before := downs()
	c := viewer("width=1280")
	start := time.Now()
	m := lyUntil(t, c, 20*time.Second, "a move down", func(m lyMsg) bool { return m.Type == "layer" })
	if m.Reason != "down" || m.Layer != 1 || m.Width != 640 {
		t.Fatalf("layer message %+v, want layer 1 for reason down", m)
	}
	t.Logf("moved down to layer %d after %v", m.Layer, time.Since(start).Round(time.Millisecond))
	if got := downs(); got < before+1 {
		t.Fatalf("framecast_layer_moves_total{direction=down} = %v, want > %v", got, before)
	}
	// The next 5 s (before any probe up, 10 s on): frames keep coming.
	last, worst, n := time.Now(), time.Duration(0), 0
	layerNow := m.Layer
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); {
		m, err := lyRead(c, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == "layer" {
			t.Logf("then moved to layer %d (%s)", m.Layer, m.Reason)
			layerNow = m.Layer
			continue
		}
		if m.Frame == nil {
			continue
		}
		if m.Block.Layer != layerNow {
			continue // queued before the move
		}
		worst, last = max(worst, m.At.Sub(last)), m.At
		n++
	}
	t.Logf("after the move: %d frames in 5 s, longest gap %v", n, worst.Round(time.Millisecond))
	if worst > time.Second || n < 20 {
		t.Fatalf("after the move: %d frames in 5 s, longest gap %v; want no gap over 1 s", n, worst)
	}

	_ = c.CloseNow()
	testenv.WaitMetric(t, 10*time.Second, g.URL(), `framecast_connections{role="view"}`, 0)
	fixed := viewer("width=1280&adapt=0")
	before = downs()
	frames := 0
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); {
		m, err := lyRead(fixed, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == "layer" {
			t.Fatalf("adapt=0 viewer moved: %+v", m)
		}
		if m.Frame != nil && m.Block.Layer != 0 {
			t.Fatalf("adapt=0 viewer got layer %d", m.Block.Layer)
		}
		if m.Frame != nil {
			frames++
		}
	}
	t.Logf("adapt=0 viewer: %d main-layer frames in 6 s through the %d KB/s link", frames, link>>10)
	if got := downs(); got != before {
		t.Fatalf("moves down went from %v to %v while only the adapt=0 viewer was throttled", before, got)
	}
}

// redisOutputBytes reads total_net_output_bytes from INFO stats.
func redisOutputBytes(t testing.TB, r *testenv.Redis) int64 {
	t.Helper()
	info, err := r.Command("INFO", "stats")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`total_net_output_bytes:(\d+)`).FindStringSubmatch(info)
	if m == nil {
		t.Fatalf("no total_net_output_bytes in INFO stats: %.200s", info)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// TestRedisOutputPerLayer: with a 3-layer publisher on replica A and
// viewers of the small layer on replica B, Redis sends each picture once,
// as the small layer's message, to B's one subscription: about that
// message's size per picture, with 1 viewer as with 100.
func TestRedisOutputPerLayer(t *testing.T) {
	r := testenv.StartRedis(t)
	a := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	b := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL(), "GATEWAY_MAX_CONNECTIONS_PER_IP=500")
	sizes := []int{60 << 10, 15 << 10, 4 << 10}
	pics := lyPictures(t, 2, sizes)
	pub := lyPublish(t, soWS(a.URL(), "wall", "role=publish"), "", 100*time.Millisecond, pics)
	lyWaitLayers(t, b.URL(), "wall")
	small := frames.Stream{Room: "wall", Layer: 2}.String()
	// The small layer's message on Redis: the layer block, the version-1
	// header and the JPEG.
	// (The JPEG is padded to sizes[2] unless it encodes larger.)
	msgSize := float64(11+len("wall")+20) + float64(len(pics[0][2])+len(pics[1][2]))/2

	var clients []*testenv.Client
	measure := func(viewers int) float64 {
		for len(clients) < viewers {
			c := testenv.Dial(t, soWS(b.URL(), "wall", lyV2("width=320")), nil)
			lyUntil(t, c, 10*time.Second, "a small-layer frame", func(m lyMsg) bool { return m.Frame != nil && m.Block.Layer == 2 })
			c.ReadUntilClosed()
			clients = append(clients, c)
		}
		testenv.WaitFor(t, 10*time.Second, "one subscription of "+small, func() error {
			for _, ch := range []string{"video_wall", "video_wall@1", "video_" + small} {
				reply, err := r.Command("PUBSUB", "NUMSUB", ch)
				if err != nil {
					return err
				}
				want := ":0\r\n"
				if ch == "video_"+small {
					want = ":1\r\n"
				}
				if !strings.HasSuffix(reply, want) {
					return fmt.Errorf("PUBSUB NUMSUB %s = %q, want %q", ch, reply, want)
				}
			}
			return nil
		})
		time.Sleep(time.Second) // let joins' cache reads pass: they are not per-frame output (a measurement window, not a wait for a condition)
		b0, s0 := redisOutputBytes(t, r), pub.seq.Load()
		time.Sleep(4 * time.Second) // the measuring window: bytes over pictures in it
		b1, s1 := redisOutputBytes(t, r), pub.seq.Load()
		perFrame := float64(b1-b0) / float64(s1-s0)
		t.Logf("%d viewers of layer 2 on B: Redis sent %d bytes for %d pictures: %.0f bytes per picture (small layer's message %.0f bytes, main layer %d)",
			viewers, b1-b0, s1-s0, perFrame, msgSize, len(pics[0][0]))
		if perFrame > 1.5*msgSize || perFrame < 0.9*msgSize {
			t.Fatalf("%.0f bytes per picture, want about %.0f (one small-layer message to one replica)", perFrame, msgSize)
		}
		return perFrame
	}
	one := measure(1)
	hundred := measure(100)
	if ratio := hundred / one; ratio > 1.2 || ratio < 0.8 {
		t.Fatalf("bytes per picture with 100 viewers / with 1 = %.2f, want within 20%%", ratio)
	}
}
