package redislayer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/linkproxy"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

func TestHashSlot(t *testing.T) {
	for _, tc := range []struct {
		key  string
		slot int
	}{
		// Values from CLUSTER KEYSLOT on redis-server 7.0.
		{"somekey", 11058},
		{"foo{hash_tag}", 2515},
		{"hash_tag", 2515},
		{"123456789", 12739},
		{"video_a", 4783},
		{"{}video_a", redislayer.HashSlot("{}video_a")}, // empty tag: whole key
		{"", 0},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if got := redislayer.HashSlot(tc.key); got != tc.slot {
				t.Fatalf("HashSlot(%q) = %d, want %d", tc.key, got, tc.slot)
			}
		})
	}
}

// slotOwner returns the master address of each slot, as CLUSTER SLOTS
// says now.
func slotOwner(t *testing.T, c *redis.ClusterClient) func(slot int) string {
	t.Helper()
	slots, err := c.ClusterSlots(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return func(slot int) string {
		for _, s := range slots {
			if s.Start <= slot && slot <= s.End {
				return s.Nodes[0].Addr
			}
		}
		return ""
	}
}

// moveSlot moves slot, which holds no keys, from the master at addr from
// to the master at addr to, telling every node in nodes (keyed by address).
// The old owner drops the slot's sharded subscribers with a SUNSUBSCRIBE
// of its own.
func moveSlot(t *testing.T, nodes map[string]*redis.Client, slot int, from, to string) {
	t.Helper()
	ctx := context.Background()
	id := func(addr string) string {
		s, err := nodes[addr].ClusterMyID(ctx).Result()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	fromID, toID, n := id(from), id(to), strconv.Itoa(slot)
	steps := []struct {
		addr string
		args []any
	}{
		{to, []any{"CLUSTER", "SETSLOT", n, "IMPORTING", fromID}},
		{from, []any{"CLUSTER", "SETSLOT", n, "MIGRATING", toID}},
		{to, []any{"CLUSTER", "SETSLOT", n, "NODE", toID}},
		{from, []any{"CLUSTER", "SETSLOT", n, "NODE", toID}},
	}
	for addr := range nodes {
		if addr != from && addr != to {
			steps = append(steps, struct {
				addr string
				args []any
			}{addr, []any{"CLUSTER", "SETSLOT", n, "NODE", toID}})
		}
	}
	for _, s := range steps {
		if err := nodes[s.addr].Do(ctx, s.args...).Err(); err != nil {
			t.Fatalf("%v on %s: %v", s.args, s.addr, err)
		}
	}
}

// clusterRecorder collects the messages a layer delivers, per room.
type clusterRecorder struct {
	mu   sync.Mutex
	msgs map[string][]string
}

func newClusterRecorder() *clusterRecorder { return &clusterRecorder{msgs: map[string][]string{}} }

func (r *clusterRecorder) handle(room string, msg []byte) {
	r.mu.Lock()
	r.msgs[room] = append(r.msgs[room], string(msg))
	r.mu.Unlock()
}

func (r *clusterRecorder) count(room string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs[room])
}

// pickClusterRooms returns n room names whose channels hash to slots owned by the
// given node addresses, in order, all on distinct slots.
func pickClusterRooms(t *testing.T, prefix string, owner func(slot int) string, addrs ...string) []string {
	t.Helper()
	used := map[int]bool{}
	out := make([]string, 0, len(addrs))
	for _, want := range addrs {
		for i := 0; ; i++ {
			if i > 10000 {
				t.Fatalf("no room name hashes to %s", want)
			}
			room := "r" + strconv.Itoa(i)
			slot := redislayer.HashSlot(prefix + room)
			if !used[slot] && owner(slot) == want {
				used[slot] = true
				out = append(out, room)
				break
			}
		}
	}
	return out
}

func TestClusterLayerShardedPubSub(t *testing.T) {
	cluster := testenv.StartRedisCluster(t, 3)
	ctx := context.Background()
	newClient := func() *redis.ClusterClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs()})
		t.Cleanup(func() { c.Close() })
		return c
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	prefix := fmt.Sprintf("t%d_video_", time.Now().UnixNano()%100000)
	opts := redislayer.RedisOptions{Prefix: prefix, Logger: quiet, IdleTimeout: time.Second}
	ca, cb := newClient(), newClient()
	la := redislayer.NewClusterLayer(ca, opts) // the replica with the publisher
	lb := redislayer.NewClusterLayer(cb, opts) // the replica with the viewers
	t.Cleanup(func() { la.Close(); lb.Close() })

	owner := slotOwner(t, ca)
	n0, n1 := cluster.Nodes[0].Addr(), cluster.Nodes[1].Addr()
	// x and z share node 0 on different slots; y is on node 1.
	rs := pickClusterRooms(t, prefix, owner, n0, n1, n0)
	x, y, z := rs[0], rs[1], rs[2]
	for _, r := range rs {
		if got := cluster.NodeFor(t, prefix+r); got.Addr() != owner(redislayer.HashSlot(prefix+r)) {
			t.Fatalf("room %s: HashSlot routes to %s, CLUSTER KEYSLOT to %s", r, owner(redislayer.HashSlot(prefix+r)), got.Addr())
		}
	}
	t.Logf("rooms %s and %s on %s (slots %d, %d), %s on %s (slot %d)", x, z, n0,
		redislayer.HashSlot(prefix+x), redislayer.HashSlot(prefix+z), y, n1, redislayer.HashSlot(prefix+y))

	rec := newClusterRecorder()
	for _, r := range rs {
		if err := lb.Subscribe(ctx, r, rec.handle); err != nil {
			t.Fatalf("subscribe %s: %v", r, err)
		}
	}
	node := func(addr string) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		return c
	}
	nodes := map[string]*redis.Client{}
	for _, a := range cluster.Addrs() {
		nodes[a] = node(a)
	}
	// shardSubs returns each node's SHARDNUMSUB for room's channel.
	shardSubs := func(room string) map[string]int64 {
		out := map[string]int64{}
		for a, c := range nodes {
			m, err := c.PubSubShardNumSub(ctx, prefix+room).Result()
			if err != nil {
				t.Fatalf("PUBSUB SHARDNUMSUB on %s: %v", a, err)
			}
			out[a] = m[prefix+room]
		}
		return out
	}
	subscribedOnOwnerOnly := func(room string) error {
		want := owner(redislayer.HashSlot(prefix + room))
		for a, n := range shardSubs(room) {
			if a == want && n != 1 || a != want && n != 0 {
				return fmt.Errorf("room %s: SHARDNUMSUB %v, want 1 on %s only", room, shardSubs(room), want)
			}
		}
		return nil
	}
	for _, r := range rs {
		testenv.WaitFor(t, 5*time.Second, "subscription of "+r+" on its shard only", func() error {
			return subscribedOnOwnerOnly(r)
		})
	}
	testenv.WaitFor(t, 5*time.Second, "layer ready", func() error { return lb.Ready(ctx) })
	if got := lb.Shards(); got[prefix+x] != n0 || got[prefix+y] != n1 || got[prefix+z] != n0 {
		t.Fatalf("layer placed channels %v", got)
	}

	// A publisher on replica A, every room, until the test ends.
	pubCtx, stopPub := context.WithCancel(ctx)
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		for i := 0; pubCtx.Err() == nil; i++ {
			for _, r := range rs {
				_ = la.Publish(pubCtx, r, []byte(r+":"+strconv.Itoa(i)))
			}
			select {
			case <-pubCtx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stopPub(); pubWG.Wait() })

	flowing := func(what string) {
		t.Helper()
		before := map[string]int{}
		for _, r := range rs {
			before[r] = rec.count(r)
		}
		testenv.WaitFor(t, 5*time.Second, what, func() error {
			for _, r := range rs {
				if rec.count(r) < before[r]+5 {
					return fmt.Errorf("room %s: %d messages, want %d", r, rec.count(r), before[r]+5)
				}
			}
			return nil
		})
	}
	flowing("messages for rooms on two shards")

	t.Run("traffic stays on the owning shard", func(t *testing.T) {
		spublish := func() map[string]int64 {
			out := map[string]int64{}
			for a, c := range nodes {
				info, err := c.Info(ctx, "commandstats").Result()
				if err != nil {
					t.Fatal(err)
				}
				for _, line := range strings.Split(info, "\n") {
					if rest, ok := strings.CutPrefix(line, "cmdstat_spublish:calls="); ok {
						n, _ := strconv.ParseInt(strings.SplitN(rest, ",", 2)[0], 10, 64)
						out[a] = n
					}
				}
			}
			return out
		}
		// Until each owning shard has taken 20 more SPUBLISH (about 200 ms
		// of the publisher), then none may have reached the third node.
		s1, start := spublish(), time.Now()
		var s2 map[string]int64
		testenv.WaitFor(t, 5*time.Second, "20 SPUBLISH on each owning shard", func() error {
			if s2 = spublish(); s2[n0] < s1[n0]+20 || s2[n1] < s1[n1]+20 {
				return fmt.Errorf("before %v after %v", s1, s2)
			}
			return nil
		})
		n2 := cluster.Nodes[2].Addr()
		t.Logf("SPUBLISH calls in %v: %s %d, %s %d, %s %d", time.Since(start).Round(time.Millisecond),
			n0, s2[n0]-s1[n0], n1, s2[n1]-s1[n1], n2, s2[n2]-s1[n2])
		if s2[n2] != s1[n2] {
			t.Errorf("node %s owns no room but saw %d SPUBLISH", n2, s2[n2]-s1[n2])
		}
	})

	t.Run("resubscribes rooms of several slots after the connection dies", func(t *testing.T) {
		// Kill every pub/sub connection on node 0: go-redis alone would
		// resubscribe x and z in one SSUBSCRIBE and get CROSSSLOT.
		if _, err := nodes[n0].ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil {
			t.Fatal(err)
		}
		flowing("messages after the subscription connection was killed")
		for _, r := range rs {
			testenv.WaitFor(t, 5*time.Second, "one subscription of "+r, func() error { return subscribedOnOwnerOnly(r) })
		}
	})

	t.Run("follows a slot moved to another shard", func(t *testing.T) {
		// Move y's slot (it holds no keys) from node 1 to node 2. Node 1
		// then drops y's subscribers with a SUNSUBSCRIBE of its own.
		n2 := cluster.Nodes[2].Addr()
		moveSlot(t, nodes, redislayer.HashSlot(prefix+y), n1, n2)
		before := owner
		owner = func(slot int) string {
			if slot == redislayer.HashSlot(prefix+y) {
				return n2
			}
			return before(slot)
		}
		testenv.WaitFor(t, 5*time.Second, "y subscribed on its new shard only", func() error {
			return subscribedOnOwnerOnly(y)
		})
		if got := lb.Shards()[prefix+y]; got != n2 {
			t.Fatalf("layer has y on %q, want %s", got, n2)
		}
		flowing("messages after the slot moved")
	})

	t.Run("unsubscribe leaves the shard", func(t *testing.T) {
		if err := lb.Unsubscribe(ctx, x); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 5*time.Second, "no subscriber of "+x, func() error {
			for a, n := range shardSubs(x) {
				if n != 0 {
					return fmt.Errorf("%s still has %d subscribers", a, n)
				}
			}
			return nil
		})
		n := rec.count(x)
		before := rec.count(z)
		testenv.WaitFor(t, 5*time.Second, "room z still flowing", func() error {
			if rec.count(z) < before+5 {
				return fmt.Errorf("room %s: %d messages", z, rec.count(z)-before)
			}
			return nil
		})
		if got := rec.count(x); got > n+1 { // one may have been in flight
			t.Fatalf("room %s got %d messages after Unsubscribe", x, got-n)
		}
		if err := lb.Unsubscribe(ctx, y); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 5*time.Second, "no connection left to node 1", func() error {
			if _, ok := lb.Shards()[prefix+y]; ok {
				return fmt.Errorf("still subscribed")
			}
			return subscribedOnOwnerOnly(z)
		})
	})
}

func TestClusterLayerWithoutCluster(t *testing.T) {
	// With no cluster to talk to, Subscribe and Ready fail without
	// blocking, and Close stops the retries.
	testenv.RequireTool(t, "redis-server")
	port := testenv.FreePort(t)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:" + strconv.Itoa(port)},
		DialTimeout: 200 * time.Millisecond})
	defer client.Close()
	l := redislayer.NewClusterLayer(client, redislayer.RedisOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.Subscribe(ctx, "late", func(string, []byte) {}); err == nil {
		t.Fatal("Subscribe succeeded with no cluster")
	}
	if err := l.Ready(ctx); err == nil {
		t.Fatal("Ready with no cluster")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Subscribe(ctx, "x", func(string, []byte) {}); !errors.Is(err, rooms.ErrLayerClosed) {
		t.Fatalf("Subscribe after Close: %v, want ErrLayerClosed", err)
	}
	if err := l.Publish(ctx, "x", []byte("m")); !errors.Is(err, rooms.ErrLayerClosed) {
		t.Fatalf("Publish after Close: %v, want ErrLayerClosed", err)
	}
	if err := l.Ready(ctx); !errors.Is(err, rooms.ErrLayerClosed) {
		t.Fatalf("Ready after Close: %v, want ErrLayerClosed", err)
	}
	if err := l.Unsubscribe(ctx, "late"); err != nil {
		t.Fatalf("Unsubscribe after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A room's channel lives on the shard that owns its hash slot; rooms that
// must share a shard can share a hash tag.
func ExampleHashSlot() {
	fmt.Println(redislayer.HashSlot("video_lobby"))
	fmt.Println(redislayer.HashSlot("video_{site1}_cam1") == redislayer.HashSlot("video_{site1}_cam2"))
	// Output:
	// 8673
	// true
}

func BenchmarkHashSlot(b *testing.B) {
	for b.Loop() {
		redislayer.HashSlot("video_lobby_camera_1")
	}
}

// TestClusterLayerFrozenNodeDoesNotDelayOtherShards: while one master is
// frozen (SIGSTOP) and the layer resubscribes its rooms (CLUSTER SLOTS, a
// dial that waits for the frozen node), rooms on the other masters are
// subscribed and unsubscribed at once.
func TestClusterLayerFrozenNodeDoesNotDelayOtherShards(t *testing.T) {
	cluster := testenv.StartRedisCluster(t, 3)
	ctx := context.Background()
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { client.Close() })
	prefix := fmt.Sprintf("t%d_video_", time.Now().UnixNano()%100000)
	l := redislayer.NewClusterLayer(client, redislayer.RedisOptions{Prefix: prefix, Logger: quietLogger(),
		IdleTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { l.Close() })
	owner := slotOwner(t, client)
	frozen, n1 := cluster.Nodes[0], cluster.Nodes[1].Addr()
	rs := pickClusterRooms(t, prefix, owner, frozen.Addr(), n1, n1)
	x, y, w := rs[0], rs[1], rs[2] // x on the node to freeze; y stays, w comes and goes on another
	noop := func(string, []byte) {}
	for _, r := range []string{x, y} {
		if err := l.Subscribe(ctx, r, noop); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "layer ready", func() error { return l.Ready(ctx) })

	thaw := freeze(t, frozen)
	// 1.5 s: the layer gives up on the frozen node's connection after
	// 2 × IdleTimeout and resyncs; the cluster itself marks the node
	// failed only after its 2 s node timeout, which the test stays under.
	const bound = 200 * time.Millisecond
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline) && !t.Failed(); {
		for _, call := range []struct {
			what string
			do   func() error
		}{
			{"Subscribe", func() error { return l.Subscribe(ctx, w, noop) }},
			{"Unsubscribe", func() error { return l.Unsubscribe(ctx, w) }},
		} {
			start := time.Now()
			if err := call.do(); err != nil {
				t.Errorf("%s of a room on a healthy node: %v", call.what, err)
			}
			if d := time.Since(start); d > bound {
				t.Errorf("%s of a room on a healthy node took %v with another node frozen, want < %v", call.what, d, bound)
			}
		}
		time.Sleep(50 * time.Millisecond) // paces the probes over the freeze; each is timed, none waits for a condition
	}
	thaw()
	testenv.WaitFor(t, 10*time.Second, "layer ready after the thaw", func() error { return l.Ready(ctx) })
	if got := l.Shards(); got[prefix+x] != frozen.Addr() || got[prefix+y] != n1 {
		t.Fatalf("layer placed channels %v", got)
	}
}

// heldCluster is a 3-master cluster and a cluster layer whose connections
// to one master (held) go through a link proxy, so that a test can stop
// what the layer writes to that node (HoldUp) while the node's replies and
// pushes still arrive: a node that stopped reading. The layer's sockets to
// it have a small send buffer, so a held write of more than a few hundred
// kilobytes blocks.
type heldCluster struct {
	layer              *redislayer.ClusterLayer
	client             *redis.ClusterClient
	proxy              *linkproxy.Proxy
	held, other, third string                   // node addresses
	nodes              map[string]*redis.Client // direct clients of every node
	prefix             string
	receiveErrs        atomic.Int64 // read loop failures (OnError "receive")
}

func startHeldCluster(t *testing.T) *heldCluster {
	t.Helper()
	cluster := testenv.StartRedisCluster(t, 3)
	hc := &heldCluster{
		held: cluster.Nodes[0].Addr(), other: cluster.Nodes[1].Addr(), third: cluster.Nodes[2].Addr(),
		nodes:  map[string]*redis.Client{},
		prefix: fmt.Sprintf("t%d_video_", time.Now().UnixNano()%100000),
	}
	for _, a := range cluster.Addrs() {
		c := redis.NewClient(&redis.Options{Addr: a})
		t.Cleanup(func() { c.Close() })
		hc.nodes[a] = c
	}
	hc.proxy = testenv.StartProxy(t, hc.held, 0)
	hc.client = redis.NewClusterClient(&redis.ClusterOptions{
		Addrs: []string{hc.other},
		// Longer than any hold in these tests: a held write waits, it
		// does not fail.
		WriteTimeout: 10 * time.Second,
		// Short: a command the cluster client sends to the held node
		// (CLUSTER SLOTS goes to a random master) fails soon and is tried
		// on another.
		ReadTimeout: time.Second,
		Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			if addr == hc.held {
				addr = hc.proxy.Addr()
				d.Control = func(_, _ string, rc syscall.RawConn) error {
					var serr error
					err := rc.Control(func(fd uintptr) {
						serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, 16<<10)
					})
					return errors.Join(err, serr)
				}
			}
			return d.DialContext(ctx, network, addr)
		},
	})
	t.Cleanup(func() { hc.client.Close() })
	hc.layer = redislayer.NewClusterLayer(hc.client, redislayer.RedisOptions{Prefix: hc.prefix, Logger: quietLogger(),
		OnError: func(op string, _ error) {
			if op == "receive" {
				hc.receiveErrs.Add(1)
			}
		}})
	t.Cleanup(func() { hc.layer.Close() })
	return hc
}

// hold holds the layer's writes to the held node until release or the end
// of the test (before the layer closes: a held write would delay Close).
func (hc *heldCluster) hold(t *testing.T) (release func()) {
	hc.proxy.HoldUp()
	t.Cleanup(hc.proxy.ReleaseUp)
	return hc.proxy.ReleaseUp
}

// subscribers returns SHARDNUMSUB of room's channel on the node at addr.
func (hc *heldCluster) subscribers(t *testing.T, addr, room string) int64 {
	t.Helper()
	ch := hc.prefix + room
	m, err := hc.nodes[addr].PubSubShardNumSub(context.Background(), ch).Result()
	if err != nil {
		t.Fatalf("PUBSUB SHARDNUMSUB on %s: %v", addr, err)
	}
	return m[ch]
}

// want returns nil when the layer is ready and every room in subs has the
// given number of subscribers on the node at its address.
func (hc *heldCluster) want(t *testing.T, subs map[[2]string]int64) error {
	if err := hc.layer.Ready(context.Background()); err != nil {
		return err
	}
	for k, n := range subs {
		if got := hc.subscribers(t, k[0], k[1]); got != n {
			return fmt.Errorf("room %.20s: %d subscribers on %s, want %d", k[1], got, k[0], n)
		}
	}
	return nil
}

// TestClusterLayerHeldWriteHoldsNoLock: a node that stopped reading sends
// a SUNSUBSCRIBE of its own (the room's slot moved away), and the layer's
// answer, a SUNSUBSCRIBE of a 1 MB channel name, cannot be written.
// Meanwhile every other call of the layer returns at once. It fails if
// that write is made under the layer's mutex, as it once was in the read
// loop: every call then waited for the write's deadline.
func TestClusterLayerHeldWriteHoldsNoLock(t *testing.T) {
	hc := startHeldCluster(t)
	l, ctx := hc.layer, context.Background()
	owner := slotOwner(t, hc.client)
	tags := pickClusterRooms(t, "", owner, hc.held, hc.held)
	keep := "{" + tags[0] + "}"
	big := "{" + tags[1] + "}" + strings.Repeat("x", 1<<20) // more than the held sockets' buffers
	w := pickClusterRooms(t, hc.prefix, owner, hc.other)[0]
	noop := func(string, []byte) {}
	for _, r := range []string{keep, big} {
		if err := l.Subscribe(ctx, r, noop); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "both rooms subscribed on the held node", func() error {
		return hc.want(t, map[[2]string]int64{{hc.held, keep}: 1, {hc.held, big}: 1})
	})

	release := hc.hold(t)
	moveSlot(t, hc.nodes, redislayer.HashSlot(hc.prefix+big), hc.held, hc.third)
	const bound = 300 * time.Millisecond
	timed := func(what string, call func() error) {
		start := time.Now()
		if err := call(); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if d := time.Since(start); d > bound {
			t.Errorf("%s took %v while a write to another node was held, want < %v", what, d, bound)
		}
	}
	var handled time.Time // when the layer took big off the held node
	for deadline := time.Now().Add(10 * time.Second); !t.Failed(); {
		timed("Shards", func() error {
			if at := l.Shards()[hc.prefix+big]; at != hc.held && handled.IsZero() {
				handled = time.Now()
			}
			return nil
		})
		if !handled.IsZero() {
			timed("Subscribe of a room on another node", func() error { return l.Subscribe(ctx, w, noop) })
			timed("Unsubscribe of a room on another node", func() error { return l.Unsubscribe(ctx, w) })
			if time.Since(handled) > 1500*time.Millisecond { // past the old write deadline (1 s)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the layer did not act on the node's SUNSUBSCRIBE within 10 s")
		}
		time.Sleep(20 * time.Millisecond) // paces the probes over the hold; each is timed, none waits for a condition
	}
	release()
	testenv.WaitFor(t, 20*time.Second, "the moved room on its new owner only, the other still on the held node", func() error {
		return hc.want(t, map[[2]string]int64{{hc.held, keep}: 1, {hc.held, big}: 0, {hc.third, big}: 1})
	})
}

// TestClusterLayerUnsubscribeDuringResubscribe: a room unsubscribed while
// the resync loop's SSUBSCRIBE for it is still on its way (the node's
// uplink held) ends unsubscribed, and the other room of that node
// subscribed.
func TestClusterLayerUnsubscribeDuringResubscribe(t *testing.T) {
	hc := startHeldCluster(t)
	l, ctx := hc.layer, context.Background()
	rs := pickClusterRooms(t, hc.prefix, slotOwner(t, hc.client), hc.held, hc.held)
	gone, stays := rs[0], rs[1]
	noop := func(string, []byte) {}
	for _, r := range rs {
		if err := l.Subscribe(ctx, r, noop); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 10*time.Second, "both rooms subscribed", func() error {
		return hc.want(t, map[[2]string]int64{{hc.held, gone}: 1, {hc.held, stays}: 1})
	})

	release := hc.hold(t)
	errs := hc.receiveErrs.Load()
	if _, err := hc.nodes[hc.held].ClientKillByFilter(ctx, "TYPE", "pubsub").Result(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the layer to lose its subscription connection", func() error {
		if hc.receiveErrs.Load() == errs {
			return errors.New("no receive error yet")
		}
		return nil
	})
	// The resync loop places both rooms on a new connection to the held
	// node; their SSUBSCRIBEs wait behind its handshake, which is held.
	testenv.WaitFor(t, 10*time.Second, "both rooms placed again", func() error {
		if got := l.Shards(); got[hc.prefix+gone] != hc.held || got[hc.prefix+stays] != hc.held {
			return fmt.Errorf("placed %v", got)
		}
		return nil
	})
	uctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_ = l.Unsubscribe(uctx, gone) // its SUNSUBSCRIBE waits behind the SSUBSCRIBEs: the deadline may pass
	release()
	testenv.WaitFor(t, 20*time.Second, "the unsubscribed room gone, the other subscribed", func() error {
		return hc.want(t, map[[2]string]int64{{hc.held, gone}: 0, {hc.held, stays}: 1})
	})
}
