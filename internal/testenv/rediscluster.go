package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RedisCLI runs redis-cli with args and returns its trimmed output. It
// fails when redis-cli exits non-zero or prints an error reply.
func RedisCLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	bin := RequireTool(t, "redis-cli")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("redis-cli %s: %w: %s", strings.Join(args, " "), err, s)
	}
	if strings.HasPrefix(s, "ERR") || strings.HasPrefix(s, "(error)") {
		return s, fmt.Errorf("redis-cli %s: %s", strings.Join(args, " "), s)
	}
	return s, nil
}

// RedisCluster is a Redis Cluster of masters without replicas, started for
// one test.
type RedisCluster struct {
	Nodes []*Redis
}

// Addrs returns the nodes' 127.0.0.1:PORT addresses.
func (c *RedisCluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// NodeFor returns the node that owns key's slot, asking CLUSTER KEYSLOT
// and CLUSTER NODES.
func (c *RedisCluster) NodeFor(t testing.TB, key string) *Redis {
	t.Helper()
	port := strconv.Itoa(c.Nodes[0].Port)
	out, err := RedisCLI(t, "-p", port, "CLUSTER", "KEYSLOT", key)
	if err != nil {
		t.Fatal(err)
	}
	slot, err := strconv.Atoi(out)
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s: %q", key, out)
	}
	nodes, err := RedisCLI(t, "-p", port, "CLUSTER", "NODES")
	if err != nil {
		t.Fatal(err)
	}
	// <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || !strings.Contains(f[2], "master") {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || slot < a || slot > b {
				continue
			}
			for _, n := range c.Nodes {
				if n.Addr() == addr {
					return n
				}
			}
		}
	}
	t.Fatalf("no node owns slot %d of %q:\n%s", slot, key, nodes)
	return nil
}

// StartRedisCluster starts n redis-server processes with cluster mode on,
// joins them with `redis-cli --cluster create` as n masters without
// replicas, and waits until every node reports cluster_state:ok.
func StartRedisCluster(t testing.TB, n int) *RedisCluster {
	t.Helper()
	RequireTool(t, "redis-cli")
	c := &RedisCluster{}
	for range n {
		// The config file is relative to the node's own --dir.
		c.Nodes = append(c.Nodes, StartRedis(t, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := RedisCLI(t, args...); err != nil {
		t.Fatalf("failed to create the cluster: %v\n%s", err, out)
	}
	WaitFor(t, 15*time.Second, "cluster_state:ok on every node", func() error {
		for _, node := range c.Nodes {
			out, err := RedisCLI(t, "-p", strconv.Itoa(node.Port), "CLUSTER", "INFO")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "cluster_state:ok") {
				return fmt.Errorf("node %s: cluster not ok yet", node.Addr())
			}
			if !strings.Contains(out, "cluster_known_nodes:"+strconv.Itoa(n)) {
				return fmt.Errorf("node %s does not know every node yet", node.Addr())
			}
		}
		return nil
	})
	return c
}

// Sentinel is a Redis master, one replica and one sentinel monitoring the
// master as MasterName with quorum 1, started for one test.
type Sentinel struct {
	Master, Replica, Sentinel *Redis
	MasterName                string
}

// StartSentinel starts a master, a replica of it and a sentinel with
// down-after-milliseconds 1000 and failover-timeout 5000, and waits until
// the replica is in sync and the sentinel knows it.
func StartSentinel(t testing.TB) *Sentinel {
	t.Helper()
	s := &Sentinel{MasterName: "mymaster"}
	s.Master = StartRedis(t, "--repl-diskless-sync-delay", "0")
	s.Replica = StartRedis(t, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port))

	dir := t.TempDir()
	port := FreePort(t)
	conf := filepath.Join(dir, "sentinel.conf")
	body := fmt.Sprintf(`port %d
bind 127.0.0.1
protected-mode no
dir %s
sentinel monitor %s 127.0.0.1 %d 1
sentinel down-after-milliseconds %[3]s 1000
sentinel failover-timeout %[3]s 5000
sentinel parallel-syncs %[3]s 1
`, port, dir, s.MasterName, s.Master.Port)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := RequireTool(t, "redis-server")
	r := &Redis{Port: port, Dir: dir, t: t}
	r.Proc = Start(t, "redis-sentinel:"+strconv.Itoa(port), bin, nil, conf, "--sentinel")
	WaitFor(t, 10*time.Second, "redis-sentinel to answer PING", func() error {
		if r.Proc.Exited() {
			return fmt.Errorf("sentinel exited: %s", r.Proc.Output())
		}
		return r.Ping()
	})
	s.Sentinel = r
	WaitFor(t, 15*time.Second, "replica in sync and known to the sentinel", func() error {
		info, err := RedisCLI(t, "-p", strconv.Itoa(s.Replica.Port), "INFO", "replication")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replica not in sync yet")
		}
		reps, err := RedisCLI(t, "-p", strconv.Itoa(port), "SENTINEL", "REPLICAS", s.MasterName)
		if err != nil {
			return err
		}
		if !strings.Contains(reps, strconv.Itoa(s.Replica.Port)) {
			return fmt.Errorf("sentinel does not know the replica yet: %q", reps)
		}
		return nil
	})
	return s
}

// Addr returns the sentinel's 127.0.0.1:PORT address.
func (s *Sentinel) Addr() string { return s.Sentinel.Addr() }

// MasterPort asks the sentinel which port the master is on now.
func (s *Sentinel) MasterPort(t testing.TB) (int, error) {
	t.Helper()
	out, err := RedisCLI(t, "-p", strconv.Itoa(s.Sentinel.Port), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
	if err != nil {
		return 0, err
	}
	lines := strings.Fields(out)
	if len(lines) != 2 {
		return 0, fmt.Errorf("unexpected answer %q", out)
	}
	return strconv.Atoi(lines[1])
}

// Failover asks the sentinel to fail over now, retrying while it has no
// eligible replica yet (NOGOODSLAVE), and returns once the sentinel names
// the old replica as the master.
func (s *Sentinel) Failover(t testing.TB) {
	t.Helper()
	// On a loaded machine a failover can be accepted and then abandoned
	// (the replica looked lagging, the failover timed out): ask again until
	// the sentinel names the replica as master.
	WaitFor(t, 45*time.Second, "the sentinel to switch master", func() error {
		p, err := s.MasterPort(t)
		if err != nil {
			return err
		}
		if p == s.Replica.Port {
			return nil
		}
		if _, err := RedisCLI(t, "-p", strconv.Itoa(s.Sentinel.Port), "SENTINEL", "FAILOVER", s.MasterName); err != nil {
			return fmt.Errorf("SENTINEL FAILOVER: %w", err)
		}
		return Poll(8*time.Second, func() error {
			if p, err := s.MasterPort(t); err != nil || p != s.Replica.Port {
				return fmt.Errorf("master on port %d (%v)", p, err)
			}
			return nil
		})
	})
}
