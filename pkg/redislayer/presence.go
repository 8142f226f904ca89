package redislayer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// PresenceOptions configures a Presence. The zero value is usable.
type PresenceOptions struct {
	// KeyPrefix is prepended to every key. Default "framecast:".
	KeyPrefix string
	// ReplicaID names this replica. Default: NewReplicaID().
	ReplicaID string
	// Interval is the heartbeat period. Default 3s.
	Interval time.Duration
	// TTL is how long a heartbeat counts: a replica that stops beating
	// (killed, partitioned) drops out of the room list this long after its
	// last beat. Default 10s; it should be at least 2 × Interval.
	TTL time.Duration
	// CacheFor is how long Rooms reuses what it read, so that page views
	// do not each cost a round of reads. Default 1s.
	CacheFor time.Duration
	// Logger receives heartbeat failures, once per burst. Default
	// slog.Default().
	Logger *slog.Logger
	// OnError, if set, is called for every failed Redis operation with the
	// operation's name ("presence_write", "presence_read"). It must not block.
	OnError func(op string, err error)
}

// Presence tells every replica which rooms this replica has, through Redis
// keys that expire unless refreshed, and lists the rooms of all replicas.
// No clean shutdown is needed: a replica that dies drops out after TTL.
//
// Key layout (KeyPrefix "framecast:"):
//
//	framecast:presence:<replica>  string, PX TTL: this replica's local streams,
//	                              JSON {"replica","at","rooms":[rooms.StreamInfo...]}
//	framecast:replicas            sorted set: member <replica>, score = the
//	                              unix ms at which its presence key expires
//
// Each heartbeat is one pipelined round trip: SET presence PX TTL, ZADD
// replicas, and ZREMRANGEBYSCORE replicas -inf <now> to prune the dead.
// Its cost is per replica, not per frame: with 3s heartbeats, one write
// round per replica every 3 s whatever the number of rooms or frames.
// Rooms reads ZRANGEBYSCORE replicas <now> +inf, then GETs each live
// replica's key in one pipeline, at most once per CacheFor. The keys are
// plain keys, so this works alike on one Redis, Sentinel and Cluster (where
// they spread over slots; the pipeline is split per node by the client).
//
// Presence is safe for concurrent use.
type Presence struct {
	client redis.UniversalClient
	hub    StreamLister
	opts   PresenceOptions
	log    *slog.Logger

	kick chan struct{} // buffered, size 1: beat now (PublishersChanged)

	mu       sync.Mutex
	cached   []rooms.RoomSummary
	cachedAt time.Time
	failing  bool

	live liveRooms // the rooms other replicas publish, as last read (liverooms.go)
}

// StreamLister lists a replica's local streams: what presence announces.
// *rooms.Hub satisfies it. Streams must be safe for concurrent use and
// must not block.
type StreamLister interface {
	Streams() []rooms.StreamInfo
}

// NewPresence returns the presence of hub's replica on client. It does not
// own client. Call Run to start the heartbeats.
func NewPresence(client redis.UniversalClient, hub StreamLister, opts PresenceOptions) *Presence {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "framecast:"
	}
	if opts.ReplicaID == "" {
		opts.ReplicaID = NewReplicaID()
	}
	if opts.Interval <= 0 {
		opts.Interval = 3 * time.Second
	}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.CacheFor <= 0 {
		opts.CacheFor = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Presence{
		client: client,
		hub:    hub,
		kick:   make(chan struct{}, 1),
		opts:   opts,
		log:    opts.Logger.With("component", "presence", "replica", opts.ReplicaID),
	}
}

// NewReplicaID returns "<hostname>-<8 random hex digits>": the pod name
// under Kubernetes, and unique even for replicas sharing a host.
func NewReplicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "gateway"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// ReplicaID returns this replica's name in the presence keys.
func (p *Presence) ReplicaID() string { return p.opts.ReplicaID }

func (p *Presence) key(replica string) string { return p.opts.KeyPrefix + "presence:" + replica }
func (p *Presence) indexKey() string          { return p.opts.KeyPrefix + "replicas" }

// presenceRecord is the JSON stored in a replica's presence key.
type presenceRecord struct {
	Replica string             `json:"replica"`
	At      int64              `json:"at"` // unix ms of the heartbeat
	Rooms   []rooms.StreamInfo `json:"rooms"`
}

// Run beats every Interval until ctx ends, then removes this replica's
// presence at once (best effort: if that fails, the TTL does it).
func (p *Presence) Run(ctx context.Context) {
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		p.beatLogged(ctx)
		select {
		case <-ctx.Done():
			p.leave()
			return
		case <-t.C:
		case <-p.kick:
		}
	}
}

var _ rooms.PublisherPresence = (*Presence)(nil)

// PublishersChanged makes Run beat now, so that the other replicas see a
// new publisher of a stream, or the last one leaving, at once rather than
// at the next heartbeat. It never blocks.
func (p *Presence) PublishersChanged(frames.Stream) {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// PublishedElsewhere reports whether another live replica has a live
// publisher of stream: one whose replica saw the stream's newest frame no
// longer than TTL (plus a heartbeat Interval) ago. A replica whose old
// connection of a camera that moved elsewhere has not timed out yet lists
// a publisher too, but its frames stop: it counts only for TTL after its
// last frame. It reads Redis each time (no reuse): call it when a stream's
// last local publisher leaves, not per frame.
func (p *Presence) PublishedElsewhere(ctx context.Context, stream frames.Stream) (bool, error) {
	recs, err := p.read(ctx)
	if err != nil {
		p.onError("presence_read", err)
		return false, err
	}
	// A record is up to Interval old; replicas' clocks are assumed to
	// agree to well within TTL.
	oldest := time.Now().Add(-p.opts.TTL - p.opts.Interval)
	for _, rec := range recs {
		for _, r := range rec.Rooms {
			if r.Stream == stream && r.Publishers > 0 && r.Live && r.LastFrame.After(oldest) {
				return true, nil
			}
		}
	}
	return false, nil
}

func (p *Presence) beatLogged(ctx context.Context) {
	err := p.Beat(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err != nil && ctx.Err() == nil && !p.failing:
		p.failing = true
		p.log.Warn("failed to write presence; other replicas may not list this replica's rooms", "err", err)
	case err == nil && p.failing:
		p.failing = false
		p.log.Info("writing presence again")
	}
}

// Beat writes this replica's local rooms once.
func (p *Presence) Beat(ctx context.Context) error {
	now := time.Now()
	rec, err := json.Marshal(presenceRecord{Replica: p.opts.ReplicaID, At: now.UnixMilli(), Rooms: p.hub.Streams()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.Interval)
	defer cancel()
	pipe := p.client.Pipeline()
	pipe.Set(ctx, p.key(p.opts.ReplicaID), rec, p.opts.TTL)
	pipe.ZAdd(ctx, p.indexKey(), redis.Z{Score: float64(now.Add(p.opts.TTL).UnixMilli()), Member: p.opts.ReplicaID})
	pipe.ZRemRangeByScore(ctx, p.indexKey(), "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
	if _, err := pipe.Exec(ctx); err != nil {
		p.onError("presence_write", err)
		return fmt.Errorf("failed to write presence: %w", err)
	}
	return nil
}

// leave deletes this replica's presence.
func (p *Presence) leave() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	pipe := p.client.Pipeline()
	pipe.Del(ctx, p.key(p.opts.ReplicaID))
	pipe.ZRem(ctx, p.indexKey(), p.opts.ReplicaID)
	if _, err := pipe.Exec(ctx); err != nil {
		p.onError("presence_write", err)
	}
}

// Rooms lists the rooms of every live replica, sorted by name, with this
// replica's own rooms as they are now rather than as of its last beat. When
// Redis cannot be read it returns this replica's rooms and the error; either
// answer is reused for CacheFor.
func (p *Presence) Rooms(ctx context.Context) ([]rooms.RoomSummary, error) {
	p.mu.Lock()
	if p.cached != nil && time.Since(p.cachedAt) < p.opts.CacheFor {
		out := p.cached
		p.mu.Unlock()
		return out, nil
	}
	p.mu.Unlock()

	local := p.hub.Streams()
	others, err := p.read(ctx)
	if err != nil {
		p.onError("presence_read", err)
		// Reused like a good read, so that while Redis is down page views
		// do not each wait for it.
		out := rooms.Summarize(local)
		p.mu.Lock()
		p.cached, p.cachedAt = out, time.Now()
		p.mu.Unlock()
		return out, err
	}
	all := make([][]rooms.StreamInfo, 0, len(others)+1)
	for _, rec := range others {
		all = append(all, rec.Rooms)
	}
	out := rooms.Summarize(append(all, local)...)
	p.mu.Lock()
	p.cached, p.cachedAt = out, time.Now()
	p.mu.Unlock()
	return out, nil
}

// read returns the records of the other live replicas.
func (p *Presence) read(ctx context.Context) ([]presenceRecord, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	ids, err := p.client.ZRangeByScore(ctx, p.indexKey(), &redis.ZRangeBy{Min: now, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("failed to list replicas: %w", err)
	}
	pipe := p.client.Pipeline()
	cmds := make([]*redis.StringCmd, 0, len(ids))
	for _, id := range ids {
		if id != p.opts.ReplicaID {
			cmds = append(cmds, pipe.Get(ctx, p.key(id)))
		}
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("failed to read presence: %w", err)
	}
	out := make([]presenceRecord, 0, len(cmds))
	for _, cmd := range cmds {
		b, err := cmd.Bytes()
		if err != nil {
			continue // expired between the two reads
		}
		var rec presenceRecord
		if err := json.Unmarshal(b, &rec); err != nil {
			continue
		}
		out = append(out, rec)
	}
	return out, nil
}

func (p *Presence) onError(op string, err error) {
	if p.opts.OnError != nil {
		p.opts.OnError(op, err)
	}
}
