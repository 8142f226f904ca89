package redislayer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/pkg/rooms"
)

// RedisOptions configures a RedisLayer. The zero value is usable.
type RedisOptions struct {
	// Prefix is prepended to room names to form channel names.
	// Default "video_", the seed's group name prefix.
	Prefix string
	// Logger receives state changes (connection lost, restored). Default
	// slog.Default().
	Logger *slog.Logger
	// OnError, if set, is called for every failed Redis operation with the
	// operation's name ("publish", "subscribe", "receive", ...). It must not
	// block: it runs on the read loop.
	OnError func(op string, err error)
	// IdleTimeout is how long the read loop waits for a message before it
	// pings the subscription connection; a second silent IdleTimeout means
	// the connection is dead and it is replaced. Default 5s.
	IdleTimeout time.Duration
}

// RedisLayer is a channel layer on Redis pub/sub. Each frame is one PUBLISH
// to channel Prefix+room; each RedisLayer holds one subscription connection,
// shared by all its rooms, and one read loop that hands messages to the
// rooms' handlers.
//
// go-redis reconnects and resubscribes the subscription connection by itself
// when Redis restarts; RedisLayer adds a ping when the connection is quiet so
// a half-open connection is noticed, and backs off between failed attempts.
//
// RedisLayer is safe for concurrent use.
type RedisLayer struct {
	client redis.UniversalClient
	opts   RedisOptions
	log    *slog.Logger

	// mu guards ps and every write of handlers (the read loop reads
	// handlers without it). It is never held across a Redis round trip, so
	// one room's slow SUBSCRIBE does not hold up the others' calls; go-redis
	// writes SUBSCRIBE and UNSUBSCRIBE without waiting for the reply, and
	// serializes them on the one connection, which is slow only while it
	// (re)connects.
	mu       sync.Mutex
	ps       *redis.PubSub
	handlers sync.Map // channel name -> roomHandler

	ready  atomic.Bool
	closed atomic.Bool
	cancel context.CancelFunc
	done   chan struct{}
}

type roomHandler struct {
	room string
	h    rooms.Handler
}

var (
	_ rooms.Layer          = (*RedisLayer)(nil)
	_ rooms.BatchPublisher = (*RedisLayer)(nil)
)

// NewRedisLayer starts a channel layer on client. The layer does not own
// client: Close stops the layer's subscription, and the caller closes client.
func NewRedisLayer(client redis.UniversalClient, opts RedisOptions) *RedisLayer {
	if opts.Prefix == "" {
		opts.Prefix = "video_"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &RedisLayer{
		client: client,
		opts:   opts,
		log:    opts.Logger.With("component", "redis-layer"),
		ps:     client.Subscribe(ctx),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	go l.readLoop(ctx)
	return l
}

// Channel returns the Redis channel name of room.
func (l *RedisLayer) Channel(room string) string { return l.opts.Prefix + room }

// Publish sends msg to room's channel with one PUBLISH.
func (l *RedisLayer) Publish(ctx context.Context, room string, msg []byte) error {
	if l.closed.Load() {
		return rooms.ErrLayerClosed
	}
	if err := l.client.Publish(ctx, l.Channel(room), msg).Err(); err != nil {
		l.onError("publish", err)
		return fmt.Errorf("failed to publish to %q: %w", l.Channel(room), err)
	}
	return nil
}

// PublishBatch sends msgs to room's channel, in order, as one pipeline of
// PUBLISH commands: one round trip for all of them.
func (l *RedisLayer) PublishBatch(ctx context.Context, room string, msgs [][]byte) error {
	if l.closed.Load() {
		return rooms.ErrLayerClosed
	}
	return publishPipelined(ctx, l.client.Pipeline(), l.Channel(room), msgs, l.onError,
		func(p redis.Pipeliner, ch string, msg []byte) { p.Publish(ctx, ch, msg) })
}

// publishPipelined queues one publish command per message on pipe, with
// add, and sends them in one round trip.
func publishPipelined(ctx context.Context, pipe redis.Pipeliner, ch string, msgs [][]byte,
	onError func(string, error), add func(redis.Pipeliner, string, []byte)) error {
	for _, msg := range msgs {
		add(pipe, ch, msg)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		onError("publish", err)
		return fmt.Errorf("failed to publish %d messages to %q: %w", len(msgs), ch, err)
	}
	return nil
}

// Subscribe subscribes room's channel on the shared connection. If Redis is
// unreachable the subscription is still recorded, and go-redis makes it when
// the connection comes back; the error is returned for logging.
func (l *RedisLayer) Subscribe(ctx context.Context, room string, h rooms.Handler) error {
	ch := l.Channel(room)
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return rooms.ErrLayerClosed
	}
	l.handlers.Store(ch, roomHandler{room: room, h: h})
	ps := l.ps
	l.mu.Unlock()
	// If replace swaps ps meanwhile, it subscribes ch on the new one.
	if err := ps.Subscribe(ctx, ch); err != nil {
		l.onError("subscribe", err)
		return fmt.Errorf("failed to subscribe to %q: %w", ch, err)
	}
	return nil
}

// Unsubscribe unsubscribes room's channel.
func (l *RedisLayer) Unsubscribe(ctx context.Context, room string) error {
	ch := l.Channel(room)
	l.mu.Lock()
	l.handlers.Delete(ch)
	ps, closed := l.ps, l.closed.Load()
	l.mu.Unlock()
	if closed {
		return nil // Close dropped every subscription, as MemoryLayer's does
	}
	// If replace swaps ps meanwhile, it drops ch from the new one.
	if err := ps.Unsubscribe(ctx, ch); err != nil {
		l.onError("unsubscribe", err)
		return fmt.Errorf("failed to unsubscribe from %q: %w", ch, err)
	}
	return nil
}

// Ready returns nil when Redis answers PING and the subscription connection
// is up, and rooms.ErrLayerClosed after Close.
func (l *RedisLayer) Ready(ctx context.Context) error {
	if l.closed.Load() {
		return rooms.ErrLayerClosed
	}
	if err := l.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis unreachable: %w", err)
	}
	if !l.ready.Load() {
		return errors.New("redis subscription connection is down")
	}
	return nil
}

// Close stops the read loop and closes the subscription connection. Later
// calls of the layer's methods return rooms.ErrLayerClosed; Close is idempotent.
func (l *RedisLayer) Close() error {
	l.mu.Lock()
	if l.closed.Swap(true) {
		l.mu.Unlock()
		<-l.done
		return nil
	}
	// replace checks ctx under mu, so it never opens a connection after
	// this Close has closed the current one.
	l.cancel()
	err := l.ps.Close()
	l.mu.Unlock()
	<-l.done
	return err
}

func (l *RedisLayer) onError(op string, err error) {
	if l.opts.OnError != nil {
		l.opts.OnError(op, err)
	}
}

func (l *RedisLayer) pubsub() *redis.PubSub {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ps
}

// Reconnect replaces the subscription connection with a new one holding the
// same rooms, even though the old one still answers. With a Sentinel
// failover client the new connection goes to the master the sentinels name
// now: call it when they announce a new master (see FollowSentinels), since
// a demoted master keeps its subscribers connected, but no longer receives
// what is published on the new one, until the sentinels reconfigure it.
// The read loop logs the switch as a lost and restored connection.
func (l *RedisLayer) Reconnect() {
	l.replace(context.Background())
}

// replace closes a subscription connection that stopped answering and opens
// a new one with the same channels. It holds mu only to swap the
// connection: subscribing the channels on the new one (a dial, which may
// wait for a frozen Redis) runs outside it.
func (l *RedisLayer) replace(ctx context.Context) {
	l.mu.Lock()
	if ctx.Err() != nil || l.closed.Load() {
		l.mu.Unlock()
		return // Close has closed l.ps; do not open another
	}
	chans := l.channelsLocked()
	_ = l.ps.Close()
	ps := l.client.Subscribe(ctx)
	l.ps = ps
	l.mu.Unlock()
	if len(chans) == 0 {
		return
	}
	// Records the channels even when Redis is down: go-redis subscribes
	// them when it connects.
	_ = ps.Subscribe(ctx, chans...)
	// A room unsubscribed meanwhile may have sent its UNSUBSCRIBE before
	// this SUBSCRIBE: drop it again. Under mu, so that a Subscribe of the
	// room from now on is written after this UNSUBSCRIBE.
	l.mu.Lock()
	defer l.mu.Unlock()
	var gone []string
	for _, ch := range chans {
		if _, ok := l.handlers.Load(ch); !ok {
			gone = append(gone, ch)
		}
	}
	if len(gone) > 0 && l.ps == ps && !l.closed.Load() {
		_ = ps.Unsubscribe(ctx, gone...)
	}
}

// channelsLocked lists the subscribed channels. Call it with mu held.
func (l *RedisLayer) channelsLocked() []string {
	var chans []string
	l.handlers.Range(func(k, _ any) bool {
		chans = append(chans, k.(string))
		return true
	})
	return chans
}

// readLoop receives messages and hands them to room handlers. It never
// blocks on a handler for longer than the handler takes (handlers do not
// block), so a slow viewer cannot hold up Redis.
func (l *RedisLayer) readLoop(ctx context.Context) {
	defer close(l.done)
	var (
		pingSent bool
		down     bool
		backoff  = 50 * time.Millisecond
		failures int
	)
	ps := l.pubsub()
	// Connect now, so Ready reflects reality before the first subscription.
	if err := ps.Ping(ctx); err == nil {
		pingSent = true
	}
	for ctx.Err() == nil {
		ps = l.pubsub()
		msg, err := ps.ReceiveTimeout(ctx, l.opts.IdleTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if pingSent {
					l.markDown(&down, fmt.Errorf("no answer to ping within %v", l.opts.IdleTimeout))
					l.replace(ctx)
					// Connect the new subscription now: otherwise it waits
					// for the next idle timeout, and Ready with it.
					pingSent = l.pubsub().Ping(ctx) == nil
					continue
				}
				if perr := ps.Ping(ctx); perr == nil {
					pingSent = true
				}
				continue
			}
			l.onError("receive", err)
			l.markDown(&down, err)
			failures++
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 500*time.Millisecond)
			// Ping makes go-redis reconnect and resubscribe now rather than
			// on the next frame.
			if perr := ps.Ping(ctx); perr == nil {
				pingSent = true
			}
			continue
		}
		pingSent = false
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			l.markUp(&down, failures)
			failures = 0
			if v, ok := l.handlers.Load(m.Channel); ok {
				rh := v.(roomHandler)
				// The payload string is never modified: view it as bytes
				// instead of copying a frame per message.
				rh.h(rh.room, unsafe.Slice(unsafe.StringData(m.Payload), len(m.Payload)))
			}
		case *redis.Subscription, *redis.Pong:
			l.markUp(&down, failures)
			failures = 0
		}
	}
}

func (l *RedisLayer) markDown(down *bool, err error) {
	l.ready.Store(false)
	if !*down {
		*down = true
		l.log.Warn("redis subscription connection lost; reconnecting", "err", err)
	}
}

func (l *RedisLayer) markUp(down *bool, failures int) {
	l.ready.Store(true)
	if *down {
		*down = false
		l.log.Info("redis subscription connection restored", "failed_attempts", failures)
	}
}
