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
// ClusterLayer is safe for concurrent use.
type ClusterLayer struct {
	client *redis.ClusterClient
	opts   RedisOptions
	log    *slog.Logger

	handlers sync.Map // channel name -> roomHandler; written under mu, read by the read loops without it

	closed atomic.Bool // set under mu by Close; read without it by Publish and Ready

	// mu guards everything below, and each shard's chans and pendingUnsub.
	// It is never held across a round trip or a dial (CLUSTER SLOTS,
	// SSUBSCRIBE on a connection still connecting, closing a connection):
	// a frozen node delays only the calls that go to it, never the other
	// shards' rooms.
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

	chans        map[string]bool // channels subscribed here; guarded by layer.mu
	pendingUnsub map[string]int  // SUNSUBSCRIBEs we sent whose replies are due; guarded by layer.mu
}

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
	s, err := l.assignLocked(ch, cr)
	l.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	if err := l.ssubscribe(ctx, s, ch); err != nil {
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
	s.pendingUnsub[ch]++
	l.mu.Unlock()
	if err := s.ps.SUnsubscribe(ctx, ch); err != nil {
		l.onError("unsubscribe", err)
		l.mu.Lock()
		l.breakShardLocked(s)
		l.mu.Unlock()
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
// it if needed (without dialing yet). The caller then calls ssubscribe
// without mu.
func (l *ClusterLayer) assignLocked(ch string, cr *clusterRoom) (*shardSub, error) {
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
	return s, nil
}

// ssubscribe sends SSUBSCRIBE ch on s, which assignLocked chose; call it
// without mu. One channel per SSUBSCRIBE: a command's channels must share
// a slot. A room unsubscribed or moved while the command was on its way
// is unsubscribed there again, so no connection keeps a channel nobody
// wants.
func (l *ClusterLayer) ssubscribe(ctx context.Context, s *shardSub, ch string) error {
	err := s.ps.SSubscribe(ctx, ch)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.breakShardLocked(s)
		return err
	}
	if cr := l.rooms[ch]; (cr == nil || cr.shard != s) && l.shards[s.addr] == s && !l.closed.Load() {
		// The connection answered SSUBSCRIBE just now: this write does
		// not wait.
		s.pendingUnsub[ch]++
		if err := s.ps.SUnsubscribe(ctx, ch); err != nil {
			l.breakShardLocked(s)
		}
	}
	return nil
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
		chans:        make(map[string]bool),
		pendingUnsub: make(map[string]int),
	}
	l.shards[addr] = s
	l.wg.Add(1)
	go l.readLoop(ctx, s)
	return s
}

// dropShardLocked closes s, which holds no channel the layer still wants.
// The connection closes on a goroutine of its own: closing waits for a
// dial in progress, which must not hold mu.
func (l *ClusterLayer) dropShardLocked(s *shardSub) {
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
	if l.shards[s.addr] != s {
		return // already replaced
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
// room whose slot moved, on its owner. It holds mu only to decide; the
// commands and dials run without it.
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
	type move struct {
		s  *shardSub
		ch string
	}
	var leave, join []move
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
			// The slot moved: leave the old owner (if it still talks to us).
			delete(old.chans, ch)
			cr.shard = nil
			if len(old.chans) == 0 {
				l.dropShardLocked(old)
			} else {
				old.pendingUnsub[ch]++
				leave = append(leave, move{old, ch})
			}
		}
		s, err := l.assignLocked(ch, cr)
		if err != nil {
			firstErr = firstOf(firstErr, err)
			continue
		}
		join = append(join, move{s, ch})
	}
	l.mu.Unlock()
	for _, m := range leave {
		if err := m.s.ps.SUnsubscribe(ctx, m.ch); err != nil {
			l.mu.Lock()
			l.breakShardLocked(m.s)
			l.mu.Unlock()
		}
	}
	for _, m := range join {
		if err := l.ssubscribe(ctx, m.s, m.ch); err != nil {
			firstErr = firstOf(firstErr, fmt.Errorf("failed to subscribe to %q on %s: %w", m.ch, m.s.addr, err))
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
	// Forget it in go-redis too, or a reconnect would subscribe it here again.
	s.pendingUnsub[ch]++
	ctx, cancel := context.WithTimeout(l.ctx, time.Second)
	defer cancel()
	if err := s.ps.SUnsubscribe(ctx, ch); err != nil {
		l.breakShardLocked(s)
		return
	}
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
