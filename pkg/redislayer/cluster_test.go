package redislayer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

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
		s1 := spublish()
		time.Sleep(300 * time.Millisecond)
		s2 := spublish()
		n2 := cluster.Nodes[2].Addr()
		t.Logf("SPUBLISH calls in 300 ms: %s %d, %s %d, %s %d", n0, s2[n0]-s1[n0], n1, s2[n1]-s1[n1], n2, s2[n2]-s1[n2])
		if s2[n0] <= s1[n0] || s2[n1] <= s1[n1] {
			t.Errorf("owning shards saw no SPUBLISH: before %v after %v", s1, s2)
		}
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
		slot := strconv.Itoa(redislayer.HashSlot(prefix + y))
		id := func(addr string) string {
			s, err := nodes[addr].ClusterMyID(ctx).Result()
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		from, to := id(n1), id(n2)
		steps := []struct {
			addr string
			args []any
		}{
			{n2, []any{"CLUSTER", "SETSLOT", slot, "IMPORTING", from}},
			{n1, []any{"CLUSTER", "SETSLOT", slot, "MIGRATING", to}},
			{n2, []any{"CLUSTER", "SETSLOT", slot, "NODE", to}},
			{n1, []any{"CLUSTER", "SETSLOT", slot, "NODE", to}},
			{n0, []any{"CLUSTER", "SETSLOT", slot, "NODE", to}},
		}
		for _, s := range steps {
			if err := nodes[s.addr].Do(ctx, s.args...).Err(); err != nil {
				t.Fatalf("%v on %s: %v", s.args, s.addr, err)
			}
		}
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
		time.Sleep(50 * time.Millisecond) // pace the probes over the freeze
	}
	thaw()
	testenv.WaitFor(t, 10*time.Second, "layer ready after the thaw", func() error { return l.Ready(ctx) })
	if got := l.Shards(); got[prefix+x] != frozen.Addr() || got[prefix+y] != n1 {
		t.Fatalf("layer placed channels %v", got)
	}
}
