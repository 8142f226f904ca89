package redislayer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/pkg/rooms"
)

// ClusterLayer is a channel layer on Redis Cluster's sharded pub/sub
// (Redis 7+). Each frame is one SPUBLISH to channel Prefix+room, which the
// cluster delivers only within the shard that owns the channel's hash slot:
// a room's traffic touches one shard, so adding shards adds capacity.
//
// Subscriptions: a connection may SSUBSCRIBE only channels its node owns,
// so the layer keeps one subscription connection per master node that owns
// at least one subscribed room, and routes each room's channel to the node
// that owns its slot (from CLUSTER SLOTS). Each connection has its own read
// loop; handlers of rooms on different shards may therefore run
// concurrently, but one room's messages arrive on one loop at a time.
//
// go-redis's PubSub resubscribes all of a connection's sharded channels in
// one SSUBSCRIBE after a reconnect, which Redis refuses with CROSSSLOT when
// they span slots. So the layer never lets a broken connection heal itself:
// any error on a shard's connection (dead node, failover, MOVED, CROSSSLOT,
// a ping left unanswered), and any SUNSUBSCRIBE the server sends on its own
// (the slot moved away), throws the connection away; a resync loop then
// reads CLUSTER SLOTS again and subscribes each room on its slot's current
// owner, one channel per SSUBSCRIBE, backing off while the cluster is down.
//
// Each connection's SSUBSCRIBE and SUNSUBSCRIBE commands are decided under
// the layer's mutex, queued on the connection in that order, and written by
// the connection's own write loop without the mutex: the order on the wire
// is the order of the decisions (a room unsubscribed while its SSUBSCRIBE
// is still on its way ends unsubscribed), and a node that stops reading
// holds up only its own write loop, never the mutex, the read loops or the
// other shards.
//
// ClusterLayer is safe for concurrent use.
type ClusterLayer struct {
	client *redis.ClusterClient
	opts   RedisOptions
	log    *slog.Logger

	handlers sync.Map // channel name -> roomHandler; written under mu, read by the read loops without it

	closed atomic.Bool // set under mu by Close; read without it by Publish and Ready

	// mu guards everything below, and each shard's chans, pendingUnsub,
	// queue and dropped. It is never held across a round trip, a write or
	// a dial (CLUSTER SLOTS, SSUBSCRIBE, SUNSUBSCRIBE, closing a
	// connection): commands to a node are queued under it and written by
	// that node's write loop (writeLoop), so a frozen node delays only the
	// calls that go to it, never the other shards' rooms.
	mu     sync.Mutex
	rooms  map[string]*clusterRoom // channel name -> subscribed room
	shards map[string]*shardSub    // node address -> its subscription connection
	slots  []slotRange             // slot owners from the last CLUSTER SLOTS, sorted

	resync chan struct{} // wakes the resync loop; buffered, size 1
	down   atomic.Bool   // a room is waiting for a subscription
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // resync loop and shard read loops
}

// clusterRoom is one subscribed room. shard is nil while the room waits for
// the resync loop to place it.
type clusterRoom struct {
	shard *shardSub
}

// shardSub is the subscription connection to one master node.
type shardSub struct {
	addr   string
	client *redis.Client // owned: one node, its own pub/sub connection
	ps     *redis.PubSub
	cancel context.CancelFunc
	ready  atomic.Bool
	wake   chan struct{} // tells writeLoop that queue has commands; buffered, size 1

	chans        map[string]bool // channels subscribed here; guarded by layer.mu
	pendingUnsub map[string]int  // SUNSUBSCRIBEs queued whose replies are due; guarded by layer.mu
	queue        []shardCmd      // commands for writeLoop to write, in order; guarded by layer.mu
	dropped      bool            // closed or closing: nothing more is queued; guarded by layer.mu
}

// shardCmd is one SSUBSCRIBE or SUNSUBSCRIBE of one channel, queued for a
// shard's write loop.
type shardCmd struct {
	unsubscribe bool
	ch          string
	done        chan error // receives the write's result; buffered, size 1
}

// errShardClosed is the result of a command whose connection was closed
// before the command was written.
var errShardClosed = errors.New("subscription connection closed")

type slotRange struct {
	start, end int
	addr       string
}

var (
	_ rooms.Layer          = (*ClusterLayer)(nil)
	_ rooms.BatchPublisher = (*ClusterLayer)(nil)
)

// NewClusterLayer starts a channel layer on a Redis Cluster client. The
// layer does not own client: Close stops the layer's subscriptions, and the
// caller closes client. The layer opens its own subscription connections to
// the master nodes, with client's credentials, TLS and dial settings.
func NewClusterLayer(client *redis.ClusterClient, opts RedisOptions) *ClusterLayer {
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
	l := &ClusterLayer{
		client: client,
		opts:   opts,
		log:    opts.Logger.With("component", "redis-cluster-layer"),
		rooms:  make(map[string]*clusterRoom),
		shards: make(map[string]*shardSub),
		resync: make(chan struct{}, 1),
		ctx:    ctx,
		cancel: cancel,
	}
	l.wg.Add(1)
	go l.resyncLoop()
	return l
}

// Channel returns the Redis channel name of room.
func (l *ClusterLayer) Channel(room string) string { return l.opts.Prefix + room }

// Publish sends msg to room's channel with one SPUBLISH, which the cluster
// client routes to the node owning the channel's slot.
func (l *ClusterLayer) Publish(ctx context.Context, room string, msg []byte) error {
	if l.closed.Load() {
		return rooms.ErrLayerClosed
	}
	if err := l.client.SPublish(ctx, l.Channel(room), msg).Err(); err != nil {
		l.onError("publish", err)
		return fmt.Errorf("failed to publish to %q: %w", l.Channel(room), err)
	}
	return nil
}

// PublishBatch sends msgs to room's channel, in order, as one pipeline of
// SPUBLISH commands: one round trip to the node owning the channel's slot.
func (l *ClusterLayer) PublishBatch(ctx context.Context, room string, msgs [][]byte) error {
	if l.closed.Load() {
		return rooms.ErrLayerClosed
	}
	return publishPipelined(ctx, l.client.Pipeline(), l.Channel(room), msgs, l.onError,
		func(p redis.Pipeliner, ch string, msg []byte) { p.SPublish(ctx, ch, msg) })
}

// Subscribe subscribes room's channel on the connection to the node that
// owns its slot. If that fails the subscription is still recorded, and the
// layer makes it when the cluster answers again; the error is returned for
// logging.
func (l *ClusterLayer) Subscribe(ctx context.Context, room string, h rooms.Handler) error {
	ch := l.Channel(room)
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return rooms.ErrLayerClosed
	}
	l.handlers.Store(ch, roomHandler{room: room, h: h})
	cr := l.rooms[ch]
	if cr == nil {
		cr = &clusterRoom{}
		l.rooms[ch] = cr
	}
	placed, needSlots := cr.shard != nil, len(l.slots) == 0
	l.mu.Unlock()
	if placed {
		return nil
	}
	fail := func(err error) error {
		l.onError("subscribe", err)
		l.mu.Lock()
		l.kickLocked()
		l.mu.Unlock()
		return fmt.Errorf("failed to subscribe to %q: %w", ch, err)
	}
	if needSlots {
		slots, err := l.loadSlots(ctx)
		if err != nil {
			return fail(err)
		}
		l.mu.Lock()
		if len(l.slots) == 0 {
			l.slots = slots
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	if l.closed.Load() || l.rooms[ch] != cr || cr.shard != nil {
		l.mu.Unlock()
		return nil // unsubscribed, or placed by the resync loop, meanwhile
	}
	done, err := l.assignLocked(ch, cr)
	l.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	if err := wait(ctx, done); err != nil {
		return fail(err)
	}
	return nil
}

// Unsubscribe unsubscribes room's channel.
func (l *ClusterLayer) Unsubscribe(ctx context.Context, room string) error {
	ch := l.Channel(room)
	l.mu.Lock()
	l.handlers.Delete(ch)
	cr := l.rooms[ch]
	delete(l.rooms, ch)
	if cr == nil || cr.shard == nil || l.closed.Load() {
		l.mu.Unlock()
		return nil // Close dropped every subscription
	}
	s := cr.shard
	delete(s.chans, ch)
	if len(s.chans) == 0 {
		l.dropShardLocked(s)
		l.mu.Unlock()
		return nil
	}
	done := l.unsubscribeLocked(s, ch)
	l.mu.Unlock()
	if err := wait(ctx, done); err != nil {
		l.onError("unsubscribe", err)
		return fmt.Errorf("failed to unsubscribe from %q: %w", ch, err)
	}
	return nil
}

// Ready returns nil when the cluster answers PING and every subscribed room
// has a live subscription connection, and rooms.ErrLayerClosed after Close.
func (l *ClusterLayer) Ready(ctx context.Context) error {
	if l.closed.Load() {
		return rooms.ErrLayerClosed
	}
	if err := l.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis cluster unreachable: %w", err)
	}
	if l.down.Load() {
		return errors.New("redis cluster: a room's subscription is being restored")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for addr, s := range l.shards {
		if !s.ready.Load() {
			return fmt.Errorf("redis cluster: subscription connection to %s is down", addr)
		}
	}
	return nil
}

// Close stops the read loops and closes the subscription connections.
// Later calls of the layer's methods return rooms.ErrLayerClosed (Unsubscribe:
// nil); Close is idempotent.
func (l *ClusterLayer) Close() error {
	l.mu.Lock()
	if l.closed.Swap(true) {
		l.mu.Unlock()
		l.wg.Wait()
		return nil
	}
	l.cancel()
	for _, s := range l.shards {
		l.dropShardLocked(s)
	}
	l.mu.Unlock()
	l.wg.Wait()
	return nil
}

// Shards returns, for tests and diagnostics, the node address each
// subscribed room's channel is currently subscribed on ("" while it waits).
func (l *ClusterLayer) Shards() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.rooms))
	for ch, cr := range l.rooms {
		addr := ""
		if cr.shard != nil {
			addr = cr.shard.addr
		}
		out[ch] = addr
	}
	return out
}

func (l *ClusterLayer) onError(op string, err error) {
	if l.opts.OnError != nil {
		l.opts.OnError(op, err)
	}
}

// kickLocked wakes the resync loop. It never blocks.
func (l *ClusterLayer) kickLocked() {
	l.down.Store(true)
	select {
	case l.resync <- struct{}{}:
	default:
	}
}

// loadSlots reads the slot owners with CLUSTER SLOTS. Call it without mu.
func (l *ClusterLayer) loadSlots(ctx context.Context) ([]slotRange, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	cs, err := l.client.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("failed to read cluster slots: %w", err)
	}
	slots := make([]slotRange, 0, len(cs))
	for _, s := range cs {
		if len(s.Nodes) == 0 || s.Nodes[0].Addr == "" {
			continue
		}
		slots = append(slots, slotRange{start: s.Start, end: s.End, addr: s.Nodes[0].Addr})
	}
	if len(slots) == 0 {
		return nil, errors.New("failed to read cluster slots: no slot has a master")
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].start < slots[j].start })
	return slots, nil
}

// ownerLocked returns the address of the master that owns slot.
func (l *ClusterLayer) ownerLocked(slot int) (string, error) {
	i := sort.Search(len(l.slots), func(i int) bool { return l.slots[i].end >= slot })
	if i < len(l.slots) && l.slots[i].start <= slot {
		return l.slots[i].addr, nil
	}
	return "", fmt.Errorf("no master owns slot %d", slot)
}

// assignLocked records ch on the connection to its slot's owner, opening
// it if needed (without dialing yet), and queues its SSUBSCRIBE there (one
// channel per SSUBSCRIBE: a command's channels must share a slot). The
// returned channel receives the write's result; wait for it without mu.
func (l *ClusterLayer) assignLocked(ch string, cr *clusterRoom) (<-chan error, error) {
	addr, err := l.ownerLocked(HashSlot(ch))
	if err != nil {
		return nil, err
	}
	s := l.shards[addr]
	if s == nil {
		s = l.newShardLocked(addr)
	}
	s.chans[ch] = true
	cr.shard = s
	return l.queueLocked(s, shardCmd{ch: ch}), nil
}

// unsubscribeLocked queues SUNSUBSCRIBE ch on s, whose reply the read loop
// then expects. The caller has taken ch out of s.chans.
func (l *ClusterLayer) unsubscribeLocked(s *shardSub, ch string) <-chan error {
	s.pendingUnsub[ch]++
	return l.queueLocked(s, shardCmd{unsubscribe: true, ch: ch})
}

// queueLocked queues c for s's write loop and returns c's result channel.
// On a dropped connection nothing more is written (see notWritten).
func (l *ClusterLayer) queueLocked(s *shardSub, c shardCmd) <-chan error {
	c.done = make(chan error, 1)
	if s.dropped {
		c.done <- c.notWritten()
		return c.done
	}
	s.queue = append(s.queue, c)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return c.done
}

// notWritten is the result of c when its connection closed before c was
// written: SUNSUBSCRIBE succeeds (a closed connection holds no
// subscription), SSUBSCRIBE fails (the room waits for the resync loop).
func (c shardCmd) notWritten() error {
	if c.unsubscribe {
		return nil
	}
	return errShardClosed
}

// wait returns the result of a queued command, or ctx's error if ctx ends
// first (the command is written all the same).
func wait(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// writeLoop writes s's queued commands in order, without mu. It is the
// only writer of SSUBSCRIBE and SUNSUBSCRIBE on s, so the node sees them in
// the order they were decided. A failed write breaks the connection; the
// commands queued behind it are not written. It ends once s is dropped,
// after answering every command queued until then.
func (l *ClusterLayer) writeLoop(ctx context.Context, s *shardSub) {
	defer l.wg.Done()
	for {
		l.mu.Lock()
		cmds, dropped := s.queue, s.dropped
		s.queue = nil
		l.mu.Unlock()
		for _, c := range cmds {
			if dropped {
				c.done <- c.notWritten()
				continue
			}
			var err error
			if c.unsubscribe {
				err = s.ps.SUnsubscribe(ctx, c.ch)
			} else {
				err = s.ps.SSubscribe(ctx, c.ch)
			}
			c.done <- err
			if err != nil {
				l.mu.Lock()
				l.breakShardLocked(s)
				l.mu.Unlock()
				dropped = true
			}
		}
		if dropped {
			// Once dropped, nothing more is queued (queueLocked): answer
			// what was queued behind the failure, and end.
			l.mu.Lock()
			rest := s.queue
			s.queue = nil
			l.mu.Unlock()
			for _, c := range rest {
				c.done <- c.notWritten()
			}
			return
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			// Dropped (dropShardLocked sets dropped, then cancels): the
			// next round answers what is queued, and ends.
			l.mu.Lock()
			l.dropShardLocked(s)
			l.mu.Unlock()
		}
	}
}

// newShardLocked opens a subscription connection to the master at addr and
// starts its read loop.
func (l *ClusterLayer) newShardLocked(addr string) *shardSub {
	client := redis.NewClient(nodeOptions(l.client.Options(), addr))
	ctx, cancel := context.WithCancel(l.ctx)
	s := &shardSub{
		addr:         addr,
		client:       client,
		ps:           client.SSubscribe(ctx),
		cancel:       cancel,
		wake:         make(chan struct{}, 1),
		chans:        make(map[string]bool),
		pendingUnsub: make(map[string]int),
	}
	l.shards[addr] = s
	l.wg.Add(2)
	go l.readLoop(ctx, s)
	go l.writeLoop(ctx, s)
	return s
}

// dropShardLocked closes s, which holds no channel the layer still wants.
// The connection closes on a goroutine of its own: closing waits for a
// dial or a write in progress, which must not hold mu.
func (l *ClusterLayer) dropShardLocked(s *shardSub) {
	if s.dropped {
		return
	}
	s.dropped = true
	if l.shards[s.addr] == s {
		delete(l.shards, s.addr)
	}
	s.cancel()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		_ = s.ps.Close()
		_ = s.client.Close()
	}()
}

// breakShardLocked closes a failed connection and leaves its rooms for the
// resync loop to place again.
func (l *ClusterLayer) breakShardLocked(s *shardSub) {
	if s.dropped {
		return // already closed, its rooms already waiting or placed elsewhere
	}
	for ch := range s.chans {
		if cr := l.rooms[ch]; cr != nil && cr.shard == s {
			cr.shard = nil
		}
	}
	l.dropShardLocked(s)
	l.kickLocked()
}

// resyncLoop places every room that waits for a subscription, after reading
// the slot owners again. It backs off from 100 ms to 2 s while it fails.
func (l *ClusterLayer) resyncLoop() {
	defer l.wg.Done()
	const minPause, maxPause = 100 * time.Millisecond, 2 * time.Second
	pause := minPause
	failures := 0
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.resync:
		}
		for {
			// A short pause first: errors come in bursts (a node's death
			// breaks several rooms at once) and one CLUSTER SLOTS serves all.
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(pause):
			}
			err := l.resyncOnce()
			if err == nil {
				if failures > 0 {
					l.log.Info("redis cluster subscriptions restored", "failed_attempts", failures)
				}
				failures, pause = 0, minPause
				break
			}
			if failures == 0 {
				l.log.Warn("redis cluster subscriptions lost; resubscribing", "err", err)
			}
			failures++
			pause = min(pause*2, maxPause)
		}
	}
}

// resyncOnce reads CLUSTER SLOTS and subscribes every waiting room, and any
// room whose slot moved, on its owner. It holds mu only to decide and queue
// the commands; the write loops write them without it.
func (l *ClusterLayer) resyncOnce() error {
	if l.closed.Load() {
		return nil
	}
	// Drain a kick that arrived while we were pausing: this pass covers it.
	select {
	case <-l.resync:
	default:
	}
	ctx, cancel := context.WithTimeout(l.ctx, 5*time.Second)
	defer cancel()
	slots, err := l.loadSlots(ctx)
	if err != nil {
		l.down.Store(true)
		return err
	}
	type join struct {
		addr, ch string
		done     <-chan error
	}
	var joins []join
	var firstErr error
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return nil
	}
	l.slots = slots
	for ch, cr := range l.rooms {
		owner, err := l.ownerLocked(HashSlot(ch))
		if err != nil {
			firstErr = firstOf(firstErr, err)
			continue
		}
		if cr.shard != nil && cr.shard.addr == owner {
			continue
		}
		if old := cr.shard; old != nil {
			// The slot moved: leave the old owner (if it still talks to
			// us; a failed write breaks that connection).
			delete(old.chans, ch)
			cr.shard = nil
			if len(old.chans) == 0 {
				l.dropShardLocked(old)
			} else {
				l.unsubscribeLocked(old, ch)
			}
		}
		done, err := l.assignLocked(ch, cr)
		if err != nil {
			firstErr = firstOf(firstErr, err)
			continue
		}
		joins = append(joins, join{cr.shard.addr, ch, done})
	}
	l.mu.Unlock()
	for _, j := range joins {
		if err := wait(ctx, j.done); err != nil {
			firstErr = firstOf(firstErr, fmt.Errorf("failed to subscribe to %q on %s: %w", j.ch, j.addr, err))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, cr := range l.rooms {
		if cr.shard == nil {
			firstErr = firstOf(firstErr, errors.New("a room is still waiting for a subscription"))
			break
		}
	}
	if firstErr != nil {
		l.down.Store(true)
		return firstErr
	}
	l.down.Store(false)
	// A kick during this pass (a read loop failing after we placed its
	// rooms) stays queued and runs another pass.
	return nil
}

func firstOf(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// shardFailed is called by s's read loop when its connection fails.
func (l *ClusterLayer) shardFailed(s *shardSub, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() || l.shards[s.addr] != s {
		return
	}
	l.log.Warn("redis cluster subscription connection lost; resubscribing its rooms", "node", s.addr, "rooms", len(s.chans), "err", err)
	l.breakShardLocked(s)
}

// unsubscribed handles a SUNSUBSCRIBE reply on s. A reply to our own
// SUNSUBSCRIBE is expected; any other means the server dropped the channel
// because its slot no longer lives on that node, and the room must be
// subscribed on the new owner.
func (l *ClusterLayer) unsubscribed(s *shardSub, ch string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := s.pendingUnsub[ch]; n > 0 {
		if n == 1 {
			delete(s.pendingUnsub, ch)
		} else {
			s.pendingUnsub[ch] = n - 1
		}
		return
	}
	cr := l.rooms[ch]
	if l.closed.Load() || cr == nil || cr.shard != s {
		return
	}
	l.log.Info("redis cluster moved a room's channel; resubscribing", "channel", ch, "from", s.addr)
	delete(s.chans, ch)
	cr.shard = nil
	// Forget it in go-redis too, or a reconnect would subscribe it here
	// again. Queued, not written: the read loop never waits on a write
	// (a failed one breaks the connection).
	l.unsubscribeLocked(s, ch)
	l.kickLocked()
}

// readLoop receives s's messages and hands them to room handlers. Any
// failure ends it: the resync loop replaces the connection.
func (l *ClusterLayer) readLoop(ctx context.Context, s *shardSub) {
	defer l.wg.Done()
	pingSent := false
	// Connect now, so Ready reflects reality before the first message.
	if err := s.ps.Ping(ctx); err == nil {
		pingSent = true
	}
	for ctx.Err() == nil {
		msg, err := s.ps.ReceiveTimeout(ctx, l.opts.IdleTimeout)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pingSent {
				if perr := s.ps.Ping(ctx); perr == nil {
					pingSent = true
					continue
				}
			}
			if errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("no answer to ping within %v", l.opts.IdleTimeout)
			}
			s.ready.Store(false)
			l.onError("receive", err)
			l.shardFailed(s, err)
			return
		}
		pingSent = false
		switch m := msg.(type) {
		case *redis.Message:
			s.ready.Store(true)
			if v, ok := l.handlers.Load(m.Channel); ok {
				rh := v.(roomHandler)
				// The payload string is never modified: view it as bytes
				// instead of copying a frame per message.
				rh.h(rh.room, unsafe.Slice(unsafe.StringData(m.Payload), len(m.Payload)))
			}
		case *redis.Subscription:
			s.ready.Store(true)
			if m.Kind == "sunsubscribe" {
				l.unsubscribed(s, m.Channel)
			}
		case *redis.Pong:
			s.ready.Store(true)
		}
	}
}

// nodeOptions returns the options of a connection to one node of the
// cluster co describes: same credentials, TLS and dialing.
func nodeOptions(co *redis.ClusterOptions, addr string) *redis.Options {
	return &redis.Options{
		Addr:                       addr,
		ClientName:                 co.ClientName,
		Dialer:                     co.Dialer,
		OnConnect:                  co.OnConnect,
		Protocol:                   co.Protocol,
		Username:                   co.Username,
		Password:                   co.Password,
		CredentialsProvider:        co.CredentialsProvider,
		CredentialsProviderContext: co.CredentialsProviderContext,
		DialTimeout:                co.DialTimeout,
		ReadTimeout:                co.ReadTimeout,
		WriteTimeout:               co.WriteTimeout,
		TLSConfig:                  co.TLSConfig,
		ContextTimeoutEnabled:      co.ContextTimeoutEnabled,
		MaxRetries:                 -1, // the layer retries, on the right node
		PoolSize:                   1,
		DisableIdentity:            co.DisableIdentity,
	}
}

// HashSlot returns the Redis Cluster hash slot of key (0..16383): CRC16
// (XMODEM) of the key, or of its hash tag (the part between the first "{"
// and the next "}", when not empty), modulo 16384, as CLUSTER KEYSLOT does.
func HashSlot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^key[i]]
	}
	return int(crc) & 16383
}

var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()
