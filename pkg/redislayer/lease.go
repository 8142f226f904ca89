package redislayer

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// LeaseOptions configures Leases. The zero value is usable.
type LeaseOptions struct {
	// KeyPrefix is prepended to every key. Default "framecast:", so the
	// lease named "record/cam" is the key "framecast:lease:record/cam".
	KeyPrefix string
	// Holder names this holder in the lease keys' values. Default
	// NewReplicaID(): unique per process, so a restarted replica never
	// mistakes its predecessor's leases for its own.
	Holder string
	// OnError, if set, is called for every failed Redis operation with the
	// operation's name ("lease_acquire", "lease_renew", "lease_release").
	// It must not block.
	OnError func(op string, err error)
}

// Leases are named, expiring, exclusive locks in Redis: at most one
// holder has a lease at a time, until it releases it or stops renewing it
// for its TTL. The recorder takes one per recorded room, and retention one
// for the deployment.
//
// Key layout: "<KeyPrefix>lease:<name>" holds the holder's name, with a
// PX expiry. Acquire is SET NX PX (or, for a lease this holder has, PEXPIRE);
// Renew and Release compare the value with this holder's name and PEXPIRE
// or DEL it in one Lua script, so a holder whose lease expired and was
// taken by another can neither extend nor delete the new holder's. Each
// call is one pipelined round trip for all the names given. The keys are
// single-key commands, so this works alike on one Redis, Sentinel and
// Cluster (scripts are loaded on every master, and pipelines split by slot).
//
// A lease's safety is the holder's to keep: Redis starts a TTL when it
// runs the command, after the holder sent it, so a holder that counts its
// lease valid until the send time plus the TTL never counts it valid after
// Redis has let it expire (clocks' rates assumed equal over a TTL).
//
// Leases is safe for concurrent use.
type Leases struct {
	client redis.UniversalClient
	opts   LeaseOptions
}

// NewLeases returns the leases of one holder on client. It does not own
// client.
func NewLeases(client redis.UniversalClient, opts LeaseOptions) *Leases {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "framecast:"
	}
	if opts.Holder == "" {
		opts.Holder = NewReplicaID()
	}
	return &Leases{client: client, opts: opts}
}

// Holder returns this holder's name.
func (l *Leases) Holder() string { return l.opts.Holder }

// Key returns the Redis key of the lease called name.
func (l *Leases) Key(name string) string { return l.opts.KeyPrefix + "lease:" + name }

// acquireScript takes a free lease, or extends one this holder has.
var acquireScript = redis.NewScript(`
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then return 1 end
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("PEXPIRE", KEYS[1], ARGV[2])
	return 1
end
return 0`)

// renewScript extends a lease this holder has.
var renewScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("PEXPIRE", KEYS[1], ARGV[2]) end
return 0`)

// releaseScript deletes a lease this holder has.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end
return 0`)

// Acquire tries to take each lease in names for ttl (a lease this holder
// has already is extended), and reports which this holder has now.
func (l *Leases) Acquire(ctx context.Context, names []string, ttl time.Duration) ([]bool, error) {
	held, err := l.run(ctx, acquireScript, names, ttl)
	if err != nil {
		l.onError("lease_acquire", err)
		return nil, fmt.Errorf("failed to acquire leases: %w", err)
	}
	return held, nil
}

// Renew extends for ttl each lease in names that this holder has, and
// reports which it still has. A lease that expired, or that another
// holder took meanwhile, is false: the caller has lost it.
func (l *Leases) Renew(ctx context.Context, names []string, ttl time.Duration) ([]bool, error) {
	held, err := l.run(ctx, renewScript, names, ttl)
	if err != nil {
		l.onError("lease_renew", err)
		return nil, fmt.Errorf("failed to renew leases: %w", err)
	}
	return held, nil
}

// Release gives up the leases in names that this holder has; the others
// are left as they are.
func (l *Leases) Release(ctx context.Context, names []string) error {
	if _, err := l.run(ctx, releaseScript, names, 0); err != nil {
		l.onError("lease_release", err)
		return fmt.Errorf("failed to release leases: %w", err)
	}
	return nil
}

// run runs script for every name in one pipeline (EVALSHA, loading the
// script where a server does not know it yet) and returns which answered
// non-zero.
func (l *Leases) run(ctx context.Context, script *redis.Script, names []string, ttl time.Duration) ([]bool, error) {
	if len(names) == 0 {
		return nil, nil
	}
	ms := strconv.FormatInt(max(1, ttl.Milliseconds()), 10)
	for attempt := 0; ; attempt++ {
		pipe := l.client.Pipeline()
		cmds := make([]*redis.Cmd, len(names))
		for i, name := range names {
			cmds[i] = script.EvalSha(ctx, pipe, []string{l.Key(name)}, l.opts.Holder, ms)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && attempt == 0 && isNoScript(err) {
			if err := script.Load(ctx, l.client).Err(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		out := make([]bool, len(names))
		for i, c := range cmds {
			n, err := c.Int64()
			if err != nil {
				return nil, err
			}
			out[i] = n != 0
		}
		return out, nil
	}
}

func isNoScript(err error) bool { return redis.HasErrorPrefix(err, "NOSCRIPT") }

func (l *Leases) onError(op string, err error) {
	if l.opts.OnError != nil {
		l.opts.OnError(op, err)
	}
}
