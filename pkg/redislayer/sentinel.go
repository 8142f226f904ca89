package redislayer

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions says how to reach the sentinels that monitor a master.
type SentinelOptions struct {
	// Addrs are the sentinels' host:port addresses; they are tried in turn.
	Addrs []string
	// MasterName is the monitored master's name (sentinel monitor <name>).
	MasterName string
	// Username and Password authenticate to the sentinels, if they need it.
	Username, Password string
	// Logger receives master switches and lost sentinel connections.
	// Default slog.Default().
	Logger *slog.Logger
}

// FollowSentinels calls onSwitch with the new master's address each time
// the sentinels announce (+switch-master) that MasterName moved, until ctx
// ends. It listens to one sentinel at a time, moving to the next when the
// connection fails; after each (re)connection it also asks the sentinel
// for the master's address (SENTINEL GET-MASTER-ADDR-BY-NAME) and calls
// onSwitch if it changed meanwhile, so a switch announced while it was
// not listening is not missed.
//
// go-redis's failover client moves its command connections by itself, but
// not a subscription connection: a demoted master keeps it open, and
// messages published on the new master do not reach it. Pass
// (*RedisLayer).Reconnect as onSwitch. onSwitch runs on this goroutine.
func FollowSentinels(ctx context.Context, opts SentinelOptions, onSwitch func(addr string)) {
	if len(opts.Addrs) == 0 {
		return
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	log := opts.Logger.With("component", "sentinel-watch", "master", opts.MasterName)
	var known string // the master's address as last seen
	pause := 100 * time.Millisecond
	for i := 0; ctx.Err() == nil; i++ {
		addr := opts.Addrs[i%len(opts.Addrs)]
		err := followOne(ctx, addr, opts, &known, onSwitch, log)
		if ctx.Err() != nil {
			return
		}
		log.Debug("sentinel connection lost; trying the next", "sentinel", addr, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		if (i+1)%len(opts.Addrs) == 0 {
			pause = min(pause*2, 2*time.Second) // a full round failed
		}
	}
}

// followOne listens to one sentinel until its connection fails.
func followOne(ctx context.Context, addr string, opts SentinelOptions, known *string,
	onSwitch func(string), log *slog.Logger) error {
	sc := redis.NewSentinelClient(&redis.Options{
		Addr: addr, Username: opts.Username, Password: opts.Password,
		DialTimeout: 2 * time.Second, MaxRetries: -1,
	})
	defer sc.Close()
	ps := sc.Subscribe(ctx, "+switch-master")
	defer ps.Close()
	// Wait for the confirmation: from now on no switch goes unheard.
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		return err
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	hp, err := sc.GetMasterAddrByName(qctx, opts.MasterName).Result()
	cancel()
	if err != nil {
		return err
	}
	if len(hp) == 2 {
		now := net.JoinHostPort(hp[0], hp[1])
		if *known != "" && now != *known {
			log.Info("redis master changed while not listening", "from", *known, "to", now)
			onSwitch(now)
		}
		*known = now
	}
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				pinged = true
				continue
			}
			return err
		}
		pinged = false
		m, ok := msg.(*redis.Message)
		if !ok {
			continue
		}
		// <master-name> <old-ip> <old-port> <new-ip> <new-port>
		f := strings.Fields(m.Payload)
		if len(f) != 5 || f[0] != opts.MasterName {
			continue
		}
		now := net.JoinHostPort(f[3], f[4])
		log.Info("redis master switched; moving the subscription", "from", net.JoinHostPort(f[1], f[2]), "to", now)
		*known = now
		onSwitch(now)
	}
}
