package gateway

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/pkg/redislayer"
	"github.com/framecast/framecast/pkg/rooms"
)

// Redis modes, chosen by which of the Redis settings is set.
const (
	redisNone     = ""         // in-process layer, one replica
	redisURL      = "redis"    // GATEWAY_REDIS_URL: one Redis, PUBLISH/SUBSCRIBE
	redisCluster  = "cluster"  // GATEWAY_REDIS_CLUSTER_ADDRS: sharded pub/sub
	redisSentinel = "sentinel" // GATEWAY_REDIS_SENTINEL_ADDRS: the master the sentinels name
)

// redisMode returns which Redis the configuration asks for.
func (c *Config) redisMode() string {
	switch {
	case c.RedisURL != "":
		return redisURL
	case len(c.RedisClusterAddrs) > 0:
		return redisCluster
	case len(c.RedisSentinelAddrs) > 0:
		return redisSentinel
	}
	return redisNone
}

// validateScaleOut checks the Redis mode, presence and frame-cache
// settings; Validate calls it.
func (c *Config) validateScaleOut() error {
	set := 0
	for _, on := range []bool{c.RedisURL != "", len(c.RedisClusterAddrs) > 0, len(c.RedisSentinelAddrs) > 0} {
		if on {
			set++
		}
	}
	if set > 1 {
		return settingError("REDIS_URL", "set one of %[1]s_REDIS_URL, %[1]s_REDIS_CLUSTER_ADDRS and %[1]s_REDIS_SENTINEL_ADDRS, not several", EnvPrefix)
	}
	for name, addrs := range map[string][]string{"REDIS_CLUSTER_ADDRS": c.RedisClusterAddrs, "REDIS_SENTINEL_ADDRS": c.RedisSentinelAddrs} {
		for _, a := range addrs {
			if _, port, err := net.SplitHostPort(strings.TrimSpace(a)); err != nil || port == "" {
				return settingError(name, "%q is not host:port", a)
			} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				return settingError(name, "%q has no valid port", a)
			}
		}
	}
	if len(c.RedisSentinelAddrs) > 0 && c.RedisSentinelMaster == "" {
		return settingError("REDIS_SENTINEL_MASTER", "must name the monitored master when %s_REDIS_SENTINEL_ADDRS is set", EnvPrefix)
	}
	if c.RedisSentinelMaster != "" && len(c.RedisSentinelAddrs) == 0 {
		return settingError("REDIS_SENTINEL_ADDRS", "must list the sentinels when %s_REDIS_SENTINEL_MASTER is set", EnvPrefix)
	}
	mode := c.redisMode()
	if mode != redisCluster && mode != redisSentinel {
		for name, v := range map[string]string{"REDIS_USERNAME": c.RedisUsername, "REDIS_PASSWORD": string(c.RedisPassword)} {
			if v != "" {
				return settingError(name, "applies to %[1]s_REDIS_CLUSTER_ADDRS and %[1]s_REDIS_SENTINEL_ADDRS only; "+
					"with %[1]s_REDIS_URL put credentials in the URL (redis://user:password@host:port/0)", EnvPrefix)
			}
		}
	}
	if c.RedisSentinelPassword != "" && mode != redisSentinel {
		return settingError("REDIS_SENTINEL_PASSWORD", "applies to %s_REDIS_SENTINEL_ADDRS only", EnvPrefix)
	}
	// Zero values mean the defaults, so a Config built in code without
	// these fields works (package redislayer applies the same defaults).
	if strings.ContainsAny(c.RedisKeyPrefix, " \t\r\n*?[]") {
		return settingError("REDIS_KEY_PREFIX", "%q must hold no spaces or glob characters", c.RedisKeyPrefix)
	}
	if strings.ContainsAny(c.ReplicaID, " \t\r\n*?[]") {
		return settingError("REPLICA_ID", "%q must hold no spaces or glob characters", c.ReplicaID)
	}
	for name, d := range map[string]time.Duration{
		"PRESENCE_INTERVAL": c.PresenceInterval, "PRESENCE_TTL": c.PresenceTTL,
		"FRAME_CACHE_INTERVAL": c.FrameCacheInterval, "FRAME_CACHE_TTL": c.FrameCacheTTL,
	} {
		if d < 0 {
			return settingError(name, "%v must be positive", d)
		}
	}
	pi, pt := orDefault(c.PresenceInterval, 3*time.Second), orDefault(c.PresenceTTL, 10*time.Second)
	if pt < 2*pi {
		return settingError("PRESENCE_TTL", "%v must be at least twice %s_PRESENCE_INTERVAL (%v), or one late heartbeat hides the replica's rooms",
			pt, EnvPrefix, pi)
	}
	ci, ct := orDefault(c.FrameCacheInterval, 500*time.Millisecond), orDefault(c.FrameCacheTTL, 10*time.Second)
	if ct < 2*ci {
		return settingError("FRAME_CACHE_TTL", "%v must be at least twice %s_FRAME_CACHE_INTERVAL (%v)", ct, EnvPrefix, ci)
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// scaleOut holds what a replica runs only with Redis: its presence
// heartbeats and its frame cache writer.
type scaleOut struct {
	presence *redislayer.Presence
	cache    *redislayer.RedisFrameCache
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// connectRedis builds the Redis client and the channel layer the
// configuration asks for (nothing connects yet: go-redis dials lazily), or
// the in-process layer without Redis.
func (s *Server) connectRedis() error {
	cfg := &s.cfg
	onError := func(op string, _ error) { s.metrics.redisErrors.WithLabelValues(op).Inc() }
	layerOpts := redislayer.RedisOptions{Prefix: cfg.ChannelPrefix, Logger: s.log, OnError: onError}
	client, err := newRedisClient(cfg)
	if err != nil {
		return err
	}
	s.redis = client
	switch cfg.redisMode() {
	case redisNone:
		s.layer = rooms.NewMemoryLayer()
		return nil
	case redisCluster:
		s.layer = redislayer.NewClusterLayer(client.(*redis.ClusterClient), layerOpts)
	default:
		s.layer = redislayer.NewRedisLayer(client, layerOpts)
	}
	s.scale = &scaleOut{
		cache: redislayer.NewRedisFrameCache(s.redis, redislayer.FrameCacheOptions{
			KeyPrefix: cfg.RedisKeyPrefix,
			Interval:  cfg.FrameCacheInterval,
			TTL:       cfg.FrameCacheTTL,
			Logger:    s.log,
			OnError:   onError,
		}),
		// Made before the hub, which asks it whether other replicas
		// publish a room (rooms.Options.Presence); it lists the hub's
		// rooms once the hub exists.
		presence: redislayer.NewPresence(s.redis, hubRooms{s}, redislayer.PresenceOptions{
			KeyPrefix: cfg.RedisKeyPrefix,
			ReplicaID: cfg.ReplicaID,
			Interval:  cfg.PresenceInterval,
			TTL:       cfg.PresenceTTL,
			Logger:    s.log,
			OnError:   onError,
		}),
	}
	return nil
}

// hubRooms lists the server's hub's rooms for its presence.
type hubRooms struct{ s *Server }

func (h hubRooms) Streams() []rooms.StreamInfo { return h.s.hub.Streams() }

// frameCache returns the hub's first-frame cache, or nil without Redis.
func (s *Server) frameCache() rooms.FrameCache {
	if s.scale == nil {
		return nil
	}
	return s.scale.cache
}

// layerCatalog returns where the hub learns other replicas' layer lists,
// or nil without Redis.
func (s *Server) layerCatalog() rooms.LayerCatalog {
	if s.scale == nil {
		return nil
	}
	return s.scale.cache
}

// publisherPresence returns the hub's view of the other replicas'
// publishers, or nil without Redis.
func (s *Server) publisherPresence() rooms.PublisherPresence {
	if s.scale == nil {
		return nil
	}
	return s.scale.presence
}

// startScaleOut starts the presence heartbeats and the frame cache writer.
// Call it once the hub exists.
func (s *Server) startScaleOut() {
	if s.scale == nil {
		return
	}
	sc := s.scale
	ctx, cancel := context.WithCancel(context.Background())
	sc.cancel = cancel
	sc.wg.Add(2)
	go func() {
		defer sc.wg.Done()
		sc.presence.Run(ctx)
	}()
	go func() {
		defer sc.wg.Done()
		sc.cache.Run(ctx, s.hub)
	}()
	if rl, ok := s.layer.(*redislayer.RedisLayer); ok && s.cfg.redisMode() == redisSentinel {
		// The failover client moves commands to a new master by itself,
		// but not the layer's subscription: move it on +switch-master.
		sc.wg.Add(1)
		go func() {
			defer sc.wg.Done()
			redislayer.FollowSentinels(ctx, redislayer.SentinelOptions{
				Addrs:      trimAll(s.cfg.RedisSentinelAddrs),
				MasterName: s.cfg.RedisSentinelMaster,
				Password:   string(s.cfg.RedisSentinelPassword),
				Logger:     s.log,
			}, func(string) { rl.Reconnect() })
		}()
	}
}

// stopScaleOut stops the heartbeats, removing this replica's presence at
// once, and the cache writer. It is idempotent.
func (s *Server) stopScaleOut() {
	if s.scale == nil || s.scale.cancel == nil {
		return
	}
	s.scale.cancel()
	s.scale.wg.Wait()
}

// roomList returns the rooms of every replica (with Redis) or of this one.
// When Redis cannot be read it falls back to this replica's rooms.
func (s *Server) roomList(ctx context.Context) []rooms.RoomSummary {
	var list []rooms.RoomSummary
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if s.scale == nil || s.scale.presence == nil {
		list = rooms.Summarize(s.hub.Streams())
	} else {
		var err error
		if list, err = s.scale.presence.Rooms(ctx); err != nil {
			s.log.Debug("listing this replica's rooms only", "err", err)
		}
	}
	for i := range list {
		if list[i].Live {
			list[i].Layers, _ = s.hub.AllLayers(ctx, list[i].Name) // unread: listed without layers
		}
	}
	return list
}

// layerName names the channel layer in logs.
func (s *Server) layerName() string {
	if m := s.cfg.redisMode(); m != redisNone {
		return m
	}
	return "in-process"
}

// newRedisClient returns the go-redis client of the Redis cfg names (one
// server, Sentinel or Cluster), or nil when it names none.
func newRedisClient(cfg *Config) (redis.UniversalClient, error) {
	switch cfg.redisMode() {
	case redisURL:
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, settingError("REDIS_URL", "%v", withoutURL(err))
		}
		opt.ContextTimeoutEnabled = true
		return redis.NewClient(opt), nil
	case redisSentinel:
		// A failover client is a *redis.Client whose connections, the
		// subscription's included, dial the master the sentinels name now;
		// the sentinels drop clients of a demoted master, and RedisLayer's
		// subscription reconnects to the new one.
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName:       cfg.RedisSentinelMaster,
			SentinelAddrs:    trimAll(cfg.RedisSentinelAddrs),
			SentinelPassword: string(cfg.RedisSentinelPassword),
			Username:         cfg.RedisUsername,
			Password:         string(cfg.RedisPassword),
			// Every call carries a deadline (publish, readiness, presence):
			// honour it on the socket, not only go-redis's 5 s read timeout,
			// so a frozen Redis cannot hold /readyz or a publish past it.
			ContextTimeoutEnabled: true,
		}), nil
	case redisCluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs:    trimAll(cfg.RedisClusterAddrs),
			Username: cfg.RedisUsername,
			Password: string(cfg.RedisPassword),
			// See the sentinel case.
			ContextTimeoutEnabled: true,
		}), nil
	}
	return nil, nil
}

func trimAll(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
