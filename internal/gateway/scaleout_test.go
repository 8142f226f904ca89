package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// soFast are presence settings short enough for tests: a replica's rooms
// show within 200 ms and drop out 1 s after it dies.
var soFast = []string{"GATEWAY_PRESENCE_INTERVAL=200ms", "GATEWAY_PRESENCE_TTL=1s"}

func TestPresenceAcrossGateways(t *testing.T) {
	r := testenv.StartRedis(t)
	env := append([]string{"GATEWAY_REDIS_URL=" + r.URL()}, soFast...)
	a := testenv.StartGateway(t, append(env, "GATEWAY_REPLICA_ID=gw-a")...)
	b := testenv.StartGateway(t, append(env, "GATEWAY_REPLICA_ID=gw-b")...)
	a.WaitReady(t, 10*time.Second)
	b.WaitReady(t, 10*time.Second)

	// lobby: published on A, watched once on A and twice on B.
	// studio: published on A, watched nowhere.
	soStartPublisher(t, soWS(a.URL(), "lobby", "role=publish"), 50*time.Millisecond, soJPEG(t, 64, 48, 4, 0))
	soStartPublisher(t, soWS(a.URL(), "studio", "role=publish"), 50*time.Millisecond, soJPEG(t, 64, 48, 5, 0))
	testenv.Dial(t, soWS(a.URL(), "lobby", "role=view&format=binary"), nil)
	vb1 := testenv.Dial(t, soWS(b.URL(), "lobby", "role=view&format=binary"), nil)
	testenv.Dial(t, soWS(b.URL(), "lobby", "role=view&format=binary"), nil)

	for _, g := range []*testenv.Gateway{a, b} {
		testenv.WaitFor(t, 5*time.Second, "rooms of both replicas on "+g.URL(), func() error {
			lobby, err := soRoom(g.URL(), "lobby")
			if err != nil {
				return err
			}
			if lobby.Viewers != 3 || lobby.Publishers != 1 || !lobby.Live || lobby.Replicas != 2 {
				return fmt.Errorf("lobby: %+v; want 3 viewers, 1 publisher, live, on 2 replicas", lobby)
			}
			studio, err := soRoom(g.URL(), "studio")
			if err != nil {
				return err
			}
			if studio.Viewers != 0 || studio.Publishers != 1 || !studio.Live {
				return fmt.Errorf("studio: %+v", studio)
			}
			return nil
		})
	}

	// B's index lists A's rooms, with thumbnails B can serve: studio's
	// from the Redis frame cache, since B holds no frame of it.
	_, page := soGet(t, b.URL()+"/")
	for _, want := range []string{`href="/video/studio/"`, `<img class="thumb" src="/video/studio/snapshot.jpg?width=1"`,
		`<img class="thumb" src="/video/lobby/snapshot.jpg?width=1"`, "3 viewers"} {
		if !strings.Contains(string(page), want) {
			t.Fatalf("B's index page lacks %s:\n%s", want, page)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "studio's snapshot on B", func() error {
		return testenv.HTTPStatus(b.URL()+"/video/studio/snapshot.jpg", http.StatusOK)
	})

	// A viewer leaving shows within the heartbeat.
	_ = vb1.CloseNow()
	testenv.WaitFor(t, 5*time.Second, "2 lobby viewers", func() error {
		lobby, err := soRoom(a.URL(), "lobby")
		if err != nil {
			return err
		}
		if lobby.Viewers != 2 {
			return fmt.Errorf("lobby: %+v", lobby)
		}
		return nil
	})

	// B dies without a word: its viewer drops out once its TTL (1 s) passes.
	if err := b.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	testenv.WaitFor(t, 5*time.Second, "the dead replica's viewers to drop out", func() error {
		lobby, err := soRoom(a.URL(), "lobby")
		if err != nil {
			return err
		}
		if lobby.Viewers != 1 || lobby.Replicas != 1 {
			return fmt.Errorf("lobby: %+v", lobby)
		}
		return nil
	})
	t.Logf("a killed replica's rooms dropped out after %v", time.Since(killed).Round(time.Millisecond))
}

// TestFirstFrameFromAnotherReplica: a room published on A at 1 frame/s; a
// viewer joining on B, which has no viewer of that room, gets an image at
// once from the Redis frame cache instead of waiting up to a second.
func TestFirstFrameFromAnotherReplica(t *testing.T) {
	r := testenv.StartRedis(t)
	a := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	b := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	a.WaitReady(t, 10*time.Second)
	b.WaitReady(t, 10*time.Second)
	pub := soStartPublisher(t, soWS(a.URL(), "slow", "role=publish"), time.Second, soJPEG(t, 320, 240, 6, 0))

	client := redis.NewClient(&redis.Options{Addr: r.Addr()})
	defer client.Close()
	testenv.WaitFor(t, 5*time.Second, "the room's frame in the cache", func() error {
		n, err := client.Exists(context.Background(), "framecast:last:slow").Result()
		if err != nil || n != 1 {
			return fmt.Errorf("framecast:last:slow exists: %d, %v", n, err)
		}
		return nil
	})

	limit := 100 * time.Millisecond
	if soRace {
		limit = 500 * time.Millisecond // the gateway runs with -race too
	}
	var worst time.Duration
	for i := 0; i < 3; i++ {
		// B has no viewer of slow: it holds no frame and is not subscribed.
		testenv.WaitFor(t, 5*time.Second, "B to have no viewer of slow", func() error {
			if n := testenv.Metric(t, b.URL(), "framecast_rooms"); n != 0 {
				return fmt.Errorf("%v rooms on B", n)
			}
			return nil
		})
		c := testenv.Dial(t, soWS(b.URL(), "slow", "role=view&format=binary"), nil)
		open := time.Now()
		f, err := c.ReadFrame(5 * time.Second)
		took := time.Since(open)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("join %d on the other replica: first frame (seq %d, newest %d) %v after the WebSocket opened",
			i+1, f.Seq, pub.Seq(), took.Round(10*time.Microsecond))
		worst = max(worst, took)
		_ = c.CloseNow()
	}
	if worst > limit {
		t.Fatalf("first frame took up to %v, want under %v", worst, limit)
	}
}

func TestGatewaysOnRedisCluster(t *testing.T) {
	cluster := testenv.StartRedisCluster(t, 3)
	env := append([]string{"GATEWAY_REDIS_CLUSTER_ADDRS=" + strings.Join(cluster.Addrs(), ",")}, soFast...)
	a := testenv.StartGateway(t, env...)
	b := testenv.StartGateway(t, env...)
	a.WaitReady(t, 10*time.Second)
	b.WaitReady(t, 10*time.Second)

	// Two rooms whose channels live on different shards.
	owner := func(room string) *testenv.Redis { return cluster.NodeFor(t, "video_"+room) }
	first := "cam0"
	var second string
	for i := 1; second == ""; i++ {
		if room := "cam" + strconv.Itoa(i); owner(room) != owner(first) {
			second = room
		}
	}
	ctx := context.Background()
	nodes := map[*testenv.Redis]*redis.Client{}
	for _, n := range cluster.Nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addr()})
		defer c.Close()
		nodes[n] = c
	}
	t.Logf("room %s on %s, room %s on %s", first, owner(first).Addr(), second, owner(second).Addr())

	for _, room := range []string{first, second} {
		soStartPublisher(t, soWS(a.URL(), room, "role=publish"), 20*time.Millisecond, soJPEG(t, 64, 48, 7, 0))
		v := testenv.Dial(t, soWS(b.URL(), room, "role=view&format=binary"), nil)
		// Frames flow from A to B, and keep flowing.
		var last uint64
		for i := 0; i < 10; i++ {
			f, err := v.ReadFrame(10 * time.Second)
			if err != nil {
				t.Fatalf("room %s: %v", room, err)
			}
			if f.Seq <= last {
				t.Fatalf("room %s: frame %d after %d", room, f.Seq, last)
			}
			last = f.Seq
		}
		// Only the owning shard has the subscription.
		testenv.WaitFor(t, 5*time.Second, "room "+room+" subscribed on its shard only", func() error {
			for n, c := range nodes {
				got, err := c.PubSubShardNumSub(ctx, "video_"+room).Result()
				if err != nil {
					return err
				}
				want := int64(0)
				if n == owner(room) {
					want = 1
				}
				if got["video_"+room] != want {
					return fmt.Errorf("SHARDNUMSUB video_%s on %s: %d, want %d", room, n.Addr(), got["video_"+room], want)
				}
			}
			return nil
		})
	}

	// The frames went out as SPUBLISH on the owning shards only: the third
	// shard saw none, and no node saw an unsharded PUBLISH.
	calls := func(c *redis.Client, cmd string) int {
		info, err := c.Info(ctx, "commandstats").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(info, "\n") {
			if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
				n, _ := strconv.Atoi(strings.SplitN(rest, ",", 2)[0])
				return n
			}
		}
		return 0
	}
	for n, c := range nodes {
		sp, p := calls(c, "spublish"), calls(c, "publish")
		t.Logf("%s: %d SPUBLISH, %d PUBLISH", n.Addr(), sp, p)
		if p != 0 {
			t.Errorf("%s saw %d unsharded PUBLISH", n.Addr(), p)
		}
		switch {
		case n == owner(first) || n == owner(second):
			if sp == 0 {
				t.Errorf("%s owns a room but saw no SPUBLISH", n.Addr())
			}
		case sp != 0:
			t.Errorf("%s owns no room but saw %d SPUBLISH", n.Addr(), sp)
		}
	}

	// Presence and the frame cache work on the cluster too.
	testenv.WaitFor(t, 5*time.Second, "both rooms listed on B", func() error {
		for _, room := range []string{first, second} {
			s, err := soRoom(b.URL(), room)
			if err != nil {
				return err
			}
			if s.Viewers != 1 || s.Publishers != 1 || s.Replicas != 2 {
				return fmt.Errorf("%s: %+v", room, s)
			}
		}
		return nil
	})
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs()})
	defer cc.Close()
	testenv.WaitFor(t, 5*time.Second, "both rooms' frames in the cache", func() error {
		for _, room := range []string{first, second} {
			b, err := cc.Get(ctx, "framecast:last:"+room).Bytes()
			if err != nil {
				return fmt.Errorf("framecast:last:%s: %w", room, err)
			}
			if _, err := frames.ParseBinary(b, 0, time.Time{}, 0); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestGatewaysFollowSentinelFailover(t *testing.T) {
	s := testenv.StartSentinel(t)
	env := append([]string{"GATEWAY_REDIS_SENTINEL_ADDRS=" + s.Addr(), "GATEWAY_REDIS_SENTINEL_MASTER=" + s.MasterName}, soFast...)
	a := testenv.StartGateway(t, env...)
	b := testenv.StartGateway(t, env...)
	a.WaitReady(t, 10*time.Second)
	b.WaitReady(t, 10*time.Second)

	pub := soStartPublisher(t, soWS(a.URL(), "hall", "role=publish"), 20*time.Millisecond, soJPEG(t, 64, 48, 8, 0))
	v := testenv.Dial(t, soWS(b.URL(), "hall", "role=view&format=binary"), nil)
	if _, err := v.ReadFrame(10 * time.Second); err != nil {
		t.Fatalf("no frame before the failover: %v", err)
	}
	numSub := func(r *testenv.Redis) (int64, error) {
		c := redis.NewClient(&redis.Options{Addr: r.Addr()})
		defer c.Close()
		m, err := c.PubSubNumSub(context.Background(), "video_hall").Result()
		return m["video_hall"], err
	}
	if n, err := numSub(s.Master); err != nil || n != 1 {
		t.Fatalf("subscribers on the master before the failover: %d, %v", n, err)
	}

	// Keep reading in the background: frames must resume within 5 s.
	type got struct {
		seq uint64
		at  time.Time
	}
	arrivals := make(chan got, 1024)
	go func() {
		for {
			f, err := v.ReadFrame(30 * time.Second)
			if err != nil {
				close(arrivals)
				return
			}
			arrivals <- got{f.Seq, time.Now()}
		}
	}()

	start := time.Now()
	s.Failover(t)
	switched := time.Now()
	seqAtSwitch := pub.Seq()
	t.Logf("sentinel switched master to %s after %v (frame %d)", s.Replica.Addr(), switched.Sub(start).Round(time.Millisecond), seqAtSwitch)

	// Frames published well after the switch (50 frames = 1 s later) must
	// reach B: the demoted master no longer gets them, so B's subscription
	// must have moved. No gap between frames may reach 5 s.
	want := seqAtSwitch + 50
	deadline := time.After(5 * time.Second)
	var resumedAt time.Time
	lastAt, maxGap := start, time.Duration(0)
	for resumedAt.IsZero() {
		select {
		case g, ok := <-arrivals:
			if !ok {
				t.Fatal("viewer connection closed during the failover")
			}
			maxGap = max(maxGap, g.at.Sub(lastAt))
			lastAt = g.at
			if g.seq >= want {
				resumedAt = g.at
			}
		case <-deadline:
			t.Fatalf("no frame %d (published 1 s after the switch) within 5 s; publisher at %d, longest gap %v",
				want, pub.Seq(), maxGap)
		}
	}
	t.Logf("frame %d arrived %v after the switch; longest gap between frames %v",
		want, resumedAt.Sub(switched).Round(time.Millisecond), maxGap.Round(time.Millisecond))
	if maxGap >= 5*time.Second {
		t.Fatalf("frames stopped for %v", maxGap)
	}
	// B's subscription followed the master: it is on the new master, and
	// the demoted one has none.
	testenv.WaitFor(t, 5*time.Second, "the subscription on the new master", func() error {
		nNew, err := numSub(s.Replica)
		if err != nil {
			return err
		}
		nOld, err := numSub(s.Master)
		if err != nil {
			return err
		}
		if nNew != 1 || nOld != 0 {
			return fmt.Errorf("subscribers: new master %d, old master %d", nNew, nOld)
		}
		return nil
	})
	a.WaitReady(t, 5*time.Second)
	b.WaitReady(t, 5*time.Second)
}

func TestScaleOutConfig(t *testing.T) {
	base := func() gateway.Config {
		return gateway.Config{
			Addr: ":0", ChannelPrefix: "video_", MaxFrameBytes: 2 << 20,
			WriteTimeout: time.Second, PingInterval: time.Second, PublishTimeout: time.Second,
			ShutdownTimeout: time.Second, LogLevel: "info", LogFormat: "text",
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func(*gateway.Config)
		want   string // "" = valid; else the setting the error must name
	}{
		{"defaults", func(*gateway.Config) {}, ""},
		{"cluster", func(c *gateway.Config) {
			c.RedisClusterAddrs = []string{"10.0.0.1:6379", "redis-1:6379"}
			c.RedisPassword = "pw"
		}, ""},
		{"sentinel", func(c *gateway.Config) {
			c.RedisSentinelAddrs = []string{"s1:26379"}
			c.RedisSentinelMaster = "mymaster"
			c.RedisUsername, c.RedisPassword, c.RedisSentinelPassword = "app", "pw", "spw"
		}, ""},
		{"url and cluster", func(c *gateway.Config) {
			c.RedisURL = "redis://localhost:6379/0"
			c.RedisClusterAddrs = []string{"a:1"}
		}, "GATEWAY_REDIS_URL"},
		{"cluster and sentinel", func(c *gateway.Config) {
			c.RedisClusterAddrs = []string{"a:1"}
			c.RedisSentinelAddrs = []string{"b:2"}
			c.RedisSentinelMaster = "m"
		}, "GATEWAY_REDIS_URL"},
		{"sentinel without master", func(c *gateway.Config) { c.RedisSentinelAddrs = []string{"s1:26379"} }, "GATEWAY_REDIS_SENTINEL_MASTER"},
		{"master without sentinels", func(c *gateway.Config) { c.RedisSentinelMaster = "m" }, "GATEWAY_REDIS_SENTINEL_ADDRS"},
		{"cluster address without port", func(c *gateway.Config) { c.RedisClusterAddrs = []string{"redis-0"} }, "GATEWAY_REDIS_CLUSTER_ADDRS"},
		{"sentinel address with bad port", func(c *gateway.Config) {
			c.RedisSentinelAddrs = []string{"s1:x"}
			c.RedisSentinelMaster = "m"
		}, "GATEWAY_REDIS_SENTINEL_ADDRS"},
		{"password with url", func(c *gateway.Config) {
			c.RedisURL = "redis://localhost:6379/0"
			c.RedisPassword = "pw"
		}, "GATEWAY_REDIS_PASSWORD"},
		{"username without redis", func(c *gateway.Config) { c.RedisUsername = "app" }, "GATEWAY_REDIS_USERNAME"},
		{"sentinel password in cluster mode", func(c *gateway.Config) {
			c.RedisClusterAddrs = []string{"a:1"}
			c.RedisSentinelPassword = "x"
		}, "GATEWAY_REDIS_SENTINEL_PASSWORD"},
		{"presence ttl too short", func(c *gateway.Config) {
			c.PresenceInterval, c.PresenceTTL = 3*time.Second, 5*time.Second
		}, "GATEWAY_PRESENCE_TTL"},
		{"negative cache interval", func(c *gateway.Config) { c.FrameCacheInterval = -time.Second }, "GATEWAY_FRAME_CACHE_INTERVAL"},
		{"key prefix with a glob", func(c *gateway.Config) { c.RedisKeyPrefix = "fc*" }, "GATEWAY_REDIS_KEY_PREFIX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("Validate accepted it; want an error naming %s", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want+":"):
				t.Fatalf("Validate: %v; want it to name %s", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Fatalf("the error shows a password: %v", err)
			}
		})
	}
}
