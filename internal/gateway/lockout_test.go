package gateway

// Tests of the room budgets (roombudget.go, pkg/rooms/budget.go): rooms
// that nobody publishes, which anyone may bring into existence where
// watching is open, never lock live rooms out of a replica. Names start
// with "lo".

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/testenv"
)

// loWait bounds each wait of these tests: a -race gateway on a shared
// machine subscribing hundreds of rooms is slow.
const loWait = 60 * time.Second

// loMulti is the URL of a multi-room connection to g subscribing rooms.
func loMulti(g *testenv.Gateway, rooms []string) string {
	return g.WSURL() + "/ws/multi/?rooms=" + strings.Join(rooms, ",")
}

// loNames returns n room names prefix0, prefix1, ...
func loNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// loFrom is the header of a request relayed by a trusted proxy for addr.
func loFrom(addr string) http.Header {
	if addr == "" {
		return nil
	}
	return http.Header{"X-Forwarded-For": {addr}}
}

// loFlood opens conns multi-room connections from addr (a proxy's
// X-Forwarded-For; "" for the test's own address), each subscribing to
// perConn rooms that nobody publishes (named from prefix), a few at a
// time, and keeps them open (reading, so pings are answered) until the
// test ends.
func loFlood(t *testing.T, g *testenv.Gateway, addr, prefix string, conns, perConn int) {
	t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, status, body, err := testenv.TryDial(t, loMulti(g, loNames(fmt.Sprintf("%s%dx", prefix, i), perConn)), loFrom(addr))
			if err != nil {
				errs <- fmt.Errorf("flood connection %d: %v (status %d: %s)", i, err, status, body)
				return
			}
			c.ReadUntilClosed()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// loRoomAnswers is what a replica has done with the subscriptions asked of
// it: rooms held, and subscriptions refused for each room budget.
func loRoomAnswers(t *testing.T, g *testenv.Gateway) (held, total, perIP, idle float64) {
	t.Helper()
	m, err := testenv.ScrapeMetrics(g.URL(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	held = m.Sum("framecast_rooms")
	total = m.Sum("framecast_rejected_total", `reason="too_many_rooms"`)
	perIP = m.Sum("framecast_rejected_total", `reason="idle_rooms_per_ip"`)
	idle = m.Sum("framecast_rejected_total", `reason="too_many_idle_rooms"`)
	return held, total, perIP, idle
}

// loWaitAnswered waits until g has held or refused n room subscriptions
// on top of base (rooms held before, refusals counted before).
func loWaitAnswered(t *testing.T, g *testenv.Gateway, base, n float64) {
	t.Helper()
	testenv.WaitFor(t, loWait, fmt.Sprintf("%v subscriptions answered", n), func() error {
		held, total, perIP, idle := loRoomAnswers(t, g)
		if got := held + total + perIP + idle - base; got < n {
			return fmt.Errorf("%v answered (rooms %v, refused: too_many_rooms %v, idle_rooms_per_ip %v, too_many_idle_rooms %v)",
				got, held, total, perIP, idle)
		}
		return nil
	})
}

// loExpectFrames reads frames of c until n arrived after seq, failing with
// how the connection ended if it ends first.
func loExpectFrames(t *testing.T, c *testenv.Client, who string, n int) {
	t.Helper()
	for i := range n {
		if _, err := c.ReadFrame(secWait); err != nil {
			t.Fatalf("%s: frame %d of %d: %v", who, i+1, n, err)
		}
	}
}

// TestIdleRoomFloodDoesNotLockOutLiveRooms is issue 22's attack: with
// watching open (GATEWAY_AUTH=publish) and two replicas on one Redis, one
// client address opens 190 multi-room connections to replica A, each
// subscribing to 20 rooms nobody publishes. A viewer of a live room whose
// camera publishes through replica B must still get in on A, and keep
// receiving frames; so must a viewer there from before; a camera wall of
// 64 offline rooms from another address still opens; and when many
// addresses fill A's budget of rooms without a publisher, live rooms,
// and a camera publishing a new room through A, still find room.
func TestIdleRoomFloodDoesNotLockOutLiveRooms(t *testing.T) {
	r := testenv.StartRedis(t)
	common := []string{"GATEWAY_REDIS_URL=" + r.URL(), "GATEWAY_AUTH=publish", "GATEWAY_JWT_SECRET=" + secSecret,
		"GATEWAY_LOG_LEVEL=error"}
	// A believes X-Forwarded-For from the test (as from nginx), so one test
	// process can be many client addresses.
	a := testenv.StartGateway(t, append(common, "GATEWAY_TRUSTED_PROXIES=127.0.0.1")...)
	b := testenv.StartGateway(t, common...)
	a.WaitReady(t, secWait)
	b.WaitReady(t, secWait)
	pub := http.Header{"Authorization": {"Bearer " + secToken(t, "*", auth.RolePublish, time.Hour)}}

	// The camera of room "live" publishes through B; a viewer watches it on A.
	cam := secStartPublisher(t, testenv.Dial(t, secURL(b, "live", "role=publish"), pub), 50*time.Millisecond)
	early := testenv.Dial(t, secURL(a, "live", "role=view&format=binary"), nil)
	loExpectFrames(t, early, "viewer on A before the flood", 3)
	// The camera of room "fresh" publishes through B too, but nobody
	// watches it on A yet: A does not hold it when the flood comes.
	camFresh := secStartPublisher(t, testenv.Dial(t, secURL(b, "fresh", "role=publish"), pub), 50*time.Millisecond)
	onB := testenv.Dial(t, secURL(b, "fresh", "role=view&format=binary"), nil)
	loExpectFrames(t, onB, "viewer on B of the room published through B", 3)

	// The flood: 190 connections (under GATEWAY_MAX_CONNECTIONS_PER_IP,
	// 200) × 20 rooms nobody publishes, from one address.
	start := time.Now()
	rss0 := testenv.Metric(t, a.URL(), "process_resident_memory_bytes")
	held0, _, _, _ := loRoomAnswers(t, a)
	loFlood(t, a, "", "x", 190, 20)
	loWaitAnswered(t, a, held0, 190*20)
	held, total, perIP, idle := loRoomAnswers(t, a)
	t.Logf("one address, 190 × 20 rooms: A holds %v rooms (%v idle); refused: too_many_rooms %v, idle_rooms_per_ip %v, too_many_idle_rooms %v (%v; RSS %+.0f MB)",
		held, testenv.Metric(t, a.URL(), "framecast_idle_rooms"), total, perIP, idle, time.Since(start).Round(time.Millisecond),
		(testenv.Metric(t, a.URL(), "process_resident_memory_bytes")-rss0)/1e6)
	// GATEWAY_MAX_IDLE_ROOMS_PER_IP (128) of them are held, the rest refused.
	if held != 1+128 || perIP != 190*20-128 || total != 0 || idle != 0 {
		t.Errorf("A holds %v rooms, refused %v per address, %v for MAX_ROOMS, %v for its idle share; want 129, %d, 0, 0",
			held, perIP, total, idle, 190*20-128)
	}

	// A viewer of a live room that A did not hold (its camera publishes
	// through B) gets in on the flooded replica and receives frames: issue
	// 22's victim, closed with 1013 "too many rooms on this gateway" before.
	late, status, body, err := testenv.TryDial(t, secURL(a, "fresh", "role=view&format=binary"), nil)
	if err != nil {
		t.Fatalf("a viewer on A of a room published through B: %v (status %d: %s)", err, status, body)
	}
	loExpectFrames(t, late, "viewer on A, after the flood, of a room published through B", 3)
	// The live room's viewer from before the flood keeps receiving frames.
	loExpectFrames(t, early, "viewer on A from before the flood", 3)

	// A camera wall of 64 rooms that are all offline, from another address,
	// opens whole.
	wall := testenv.Dial(t, loMulti(a, loNames("wall", 64)), loFrom("192.0.2.10"))
	loExpectSubscribed(t, wall, 64)

	// Many addresses together fill A's share of rooms without a publisher.
	held1, total1, perIP1, idle1 := loRoomAnswers(t, a)
	base := held1 + total1 + perIP1 + idle1
	for i := range 8 {
		loFlood(t, a, fmt.Sprintf("198.51.100.%d", i+1), fmt.Sprintf("m%d", i), 2, 64)
	}
	loWaitAnswered(t, a, base, 8*2*64)
	held, total, perIP, idle = loRoomAnswers(t, a)
	t.Logf("8 more addresses, 2 × 64 rooms each: A holds %v rooms (%v idle); refused: too_many_rooms %v, idle_rooms_per_ip %v, too_many_idle_rooms %v",
		held, testenv.Metric(t, a.URL(), "framecast_idle_rooms"), total, perIP, idle)
	// Half of GATEWAY_MAX_ROOMS (500) is the share of rooms without a
	// publisher: 128 + 64 held before, 308 more, 716 refused.
	if n := testenv.Metric(t, a.URL(), "framecast_idle_rooms"); n != 500 || idle != 8*2*64-308 || total != 0 {
		t.Errorf("A holds %v idle rooms, refused %v for its idle share and %v for MAX_ROOMS; want 500, %d, 0", n, idle, total, 8*2*64-308)
	}

	// Live rooms still get in: one published through B...
	cam2 := secStartPublisher(t, testenv.Dial(t, secURL(b, "live2", "role=publish"), pub), 50*time.Millisecond)
	testenv.WaitFor(t, secWait, "live2 listed on A", func() error {
		v, status, body, err := testenv.TryDial(t, secURL(a, "live2", "role=view&format=binary"), nil)
		if err != nil {
			return fmt.Errorf("%v (status %d: %s)", err, status, body)
		}
		defer v.CloseNow()
		_, err = v.ReadFrame(2 * time.Second)
		return err
	})
	// ... and one whose camera publishes through A itself.
	cam3 := secStartPublisher(t, testenv.Dial(t, secURL(a, "cam_a", "role=publish"), pub), 50*time.Millisecond)
	camAOnB := testenv.Dial(t, secURL(b, "cam_a", "role=view&format=binary"), nil)
	loExpectFrames(t, camAOnB, "viewer on B of the camera publishing through A", 3)
	loExpectFrames(t, late, "viewer on A of the room published through B, after the second flood", 3)
	// ... and the seed's camera connection (no role: it receives too),
	// with a publish token, into a new room: live from its join.
	seed := testenv.Dial(t, secURL(a, "seedcam", ""), pub)
	camSeed := secStartPublisher(t, seed, 50*time.Millisecond)
	seedOnB := testenv.Dial(t, secURL(b, "seedcam", "role=view&format=binary"), nil)
	loExpectFrames(t, seedOnB, "viewer on B of the seed's camera connection on A", 3)
	loExpectFrames(t, early, "viewer on A from before the flood, after the second flood", 3)
	for _, p := range []*secPublisher{cam, camFresh, cam2, cam3, camSeed} {
		p.secAlive(t)
	}
}

// loExpectSubscribed reads a multi-room connection's control messages
// until n rooms were subscribed (a `layer` message each), failing on a
// `refused` one.
func loExpectSubscribed(t *testing.T, c *testenv.Client, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loWait)
	defer cancel()
	rooms := map[string]bool{}
	for len(rooms) < n {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("after %d rooms subscribed: %v", len(rooms), err)
		}
		if typ != websocket.MessageText {
			continue
		}
		var m struct{ Type, Room, Reason string }
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("control message %q: %v", b, err)
		}
		switch m.Type {
		case "refused":
			t.Fatalf("room %s refused (%s) after %d rooms subscribed", m.Room, m.Reason, len(rooms))
		case "layer":
			rooms[m.Room] = true
		}
	}
}

// loView opens a v=2 single-room viewer of room from addr (a proxy's
// X-Forwarded-For) and returns it once the gateway answered: nil error
// when it joined the room (its `layer` message came), else how the
// connection ended.
func loView(t *testing.T, g *testenv.Gateway, room, addr string) (*testenv.Client, error) {
	t.Helper()
	c := testenv.Dial(t, secURL(g, room, "role=view&format=binary&v=2"), loFrom(addr))
	ctx, cancel := context.WithTimeout(context.Background(), secWait)
	defer cancel()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return c, err
		}
		if typ == websocket.MessageText && strings.Contains(string(b), `"type":"layer"`) {
			return c, nil
		}
	}
}

// loExpectJoined fails the test unless a viewer of room from addr joins.
func loExpectJoined(t *testing.T, g *testenv.Gateway, room, addr string) *testenv.Client {
	t.Helper()
	c, err := loView(t, g, room, addr)
	if err != nil {
		t.Fatalf("viewer of %s from %s: %v", room, addr, err)
	}
	go func() { _ = secCloseOf(c, time.Hour) }() // answer pings until the test ends
	return c
}

// loExpectRefused fails the test unless a viewer of room from addr is
// closed with 1013 and reason.
func loExpectRefused(t *testing.T, g *testenv.Gateway, room, addr, reason string) {
	t.Helper()
	_, err := loView(t, g, room, addr)
	secExpectClose(t, err, websocket.StatusTryAgainLater, reason)
}

// loMJPEG GETs room's MJPEG stream from addr and returns its status and,
// for a refusal, its body; a stream that starts is closed at once.
func loMJPEG(t *testing.T, g *testenv.Gateway, room, addr string) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), secWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL()+"/video/"+room+"/stream.mjpg", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = loFrom(addr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, "", resp.Header
	}
	b := make([]byte, 512)
	n, _ := resp.Body.Read(b)
	return resp.StatusCode, strings.TrimSpace(string(b[:n])), resp.Header
}

// TestIdleRoomBudgets: single-room WebSockets, MJPEG streams and
// snapshots of rooms nobody publishes, with GATEWAY_MAX_IDLE_ROOMS_PER_IP=3
// and GATEWAY_MAX_ROOMS=16 (8 of them for rooms without a publisher).
// An address holds 3 such rooms, more are refused (1013, MJPEG 429), an
// IPv6 /64 counts as one address; once the replica holds 8 they are
// refused to every address (1013, MJPEG 503), but a camera still
// publishes a new room and is watched; snapshots of rooms that do not
// exist hold nothing; a room that gains a publisher stops counting.
func TestIdleRoomBudgets(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_MAX_IDLE_ROOMS_PER_IP=3", "GATEWAY_MAX_ROOMS=16",
		"GATEWAY_TRUSTED_PROXIES=127.0.0.1", "GATEWAY_LOG_LEVEL=error")
	const perAddr, share = "from your address", "on this gateway"
	idleRooms := func(want float64) {
		t.Helper()
		testenv.WaitMetric(t, secWait, g.URL(), "framecast_idle_rooms", want)
	}

	// One IPv4 address: 3 offline rooms, one of them twice (a room counts
	// once however many connections hold it), then a fourth is refused.
	a := "203.0.113.1"
	for _, room := range []string{"r1", "r2", "r3", "r1"} {
		loExpectJoined(t, g, room, a)
	}
	idleRooms(3)
	loExpectRefused(t, g, "r4", a, "too many rooms without a publisher "+perAddr)
	status, body, hdr := loMJPEG(t, g, "r4", a)
	if status != http.StatusTooManyRequests || !strings.Contains(body, perAddr) || hdr.Get("Retry-After") == "" {
		t.Fatalf("MJPEG past the address's budget: %d %q (Retry-After %q), want 429 saying %q", status, body, hdr.Get("Retry-After"), perAddr)
	}

	// Snapshots of rooms that do not exist hold nothing: 404, whoever asks.
	for i := range 30 {
		resp, _ := secGet(t, fmt.Sprintf("%s/video/nx%d/snapshot.jpg", g.URL(), i), loFrom(a))
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("snapshot of a room that does not exist: %d", resp.StatusCode)
		}
	}
	if n := testenv.Metric(t, g.URL(), "framecast_rooms"); n != 3 {
		t.Fatalf("after snapshots of 30 rooms that do not exist, %v rooms held, want 3", n)
	}

	// IPv6 addresses count by /64: three addresses of one /64 share its 3.
	for i, room := range []string{"v1", "v2", "v3"} {
		loExpectJoined(t, g, room, fmt.Sprintf("2001:db8:0:1::%d", i+1))
	}
	loExpectRefused(t, g, "v4", "2001:db8:0:1::ffff", perAddr)
	// Another /64 fills the replica's share: 8 rooms without a publisher.
	for _, room := range []string{"w1", "w2"} {
		loExpectJoined(t, g, room, "2001:db8:0:2::1")
	}
	idleRooms(8)
	c := "198.51.100.7"
	loExpectRefused(t, g, "c1", c, "too many rooms without a publisher "+share)
	if status, body, _ := loMJPEG(t, g, "c1", c); status != http.StatusServiceUnavailable || !strings.Contains(body, share) {
		t.Fatalf("MJPEG past the replica's share: %d %q, want 503 saying %q", status, body, share)
	}

	// A camera publishing a new room is not a room nobody publishes: it
	// gets in, and its viewers with it (the other half of MAX_ROOMS).
	cam := secStartPublisher(t, testenv.Dial(t, secURL(g, "cam", "role=publish"), loFrom(c)), 50*time.Millisecond)
	testenv.WaitMetric(t, secWait, g.URL(), "framecast_rooms", 9) // the camera holds its room from its first frame
	viewer := testenv.Dial(t, secURL(g, "cam", "role=view&format=binary"), loFrom(c))
	loExpectFrames(t, viewer, "viewer of a camera that published into a full replica", 3)
	if status, _, _ := loMJPEG(t, g, "cam", c); status != http.StatusOK {
		t.Fatalf("MJPEG of the live room on a full replica: %d", status)
	}

	// A room that gains a publisher stops counting: r1's camera comes on,
	// and the address and the replica have room for one more offline room.
	r1 := secStartPublisher(t, testenv.Dial(t, secURL(g, "r1", "role=publish"), nil), 50*time.Millisecond)
	idleRooms(7)
	loExpectJoined(t, g, "r4", a)
	idleRooms(8)
	loExpectRefused(t, g, "r5", a, perAddr)

	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="idle_rooms_per_ip"}`, 4)
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="too_many_idle_rooms"}`, 2)
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_connections_closed_total{reason="idle_rooms_per_ip"}`, 3)
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_connections_closed_total{reason="too_many_idle_rooms"}`, 1)
	if n := testenv.Metric(t, g.URL(), `framecast_rejected_total{reason="too_many_rooms"}`); n != 0 {
		t.Fatalf("%v refused for GATEWAY_MAX_ROOMS, want 0", n)
	}
	cam.secAlive(t)
	r1.secAlive(t)
}
