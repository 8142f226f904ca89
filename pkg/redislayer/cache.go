package redislayer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// FrameCacheOptions configures a RedisFrameCache. The zero value is usable.
type FrameCacheOptions struct {
	// KeyPrefix is prepended to every key. Default "framecast:", so a
	// room's frame is at "framecast:last:<room>".
	KeyPrefix string
	// Interval is the shortest time between two writes of one room's frame,
	// and how long a read is reused. Default 500ms: at most 2 writes per
	// second per room, whatever the room's frame rate.
	Interval time.Duration
	// TTL is how long a written frame lives in Redis. The writer refreshes
	// it while the room's publisher is connected, even if no new frame
	// comes, so it only expires when the publisher's replica is gone.
	// Default 10s.
	TTL time.Duration
	// Logger receives write failures, once per burst. Default slog.Default().
	Logger *slog.Logger
	// OnError, if set, is called for every failed Redis operation with the
	// operation's name ("cache_write", "cache_read"). It must not block.
	OnError func(op string, err error)
}

// RedisFrameCache keeps the newest frame of each room that has a publisher
// on this replica in Redis, and reads other replicas' rooms from there.
//
// Key layout: "<KeyPrefix>last:<room>" holds the room's newest frame as a
// binary message (the 20-byte header then the JPEG, see package frames),
// with a TTL. The writer (Run) sends one pipelined round trip per Interval
// for all of the replica's published rooms: SET ... PX for each room with a
// new frame, PEXPIRE for each room whose frame did not change, DEL for each
// room whose last local publisher left. It reads frames from the hub, never
// from the publisher's path, so a slow Redis delays the cache, never a frame.
//
// Reads (Latest) are reused for Interval per room, so snapshot requests and
// joins cost Redis at most one GET per room per Interval per replica.
//
// RedisFrameCache is safe for concurrent use.
type RedisFrameCache struct {
	client redis.UniversalClient
	opts   FrameCacheOptions
	log    *slog.Logger

	reads  readMemo[*frames.Frame]      // room -> last frame read, reused for Interval
	layers readMemo[[]frames.LayerInfo] // room -> last layer list read, reused for Interval
}

// readMemo keeps each room's last read from Redis for a while, bounded by
// maxCachedReads rooms. It is safe for concurrent use.
type readMemo[T any] struct {
	mu sync.Mutex
	m  map[string]memoRead[T]
}

type memoRead[T any] struct {
	v  T
	at time.Time
}

// get returns room's read if it is younger than ttl.
func (m *readMemo[T]) get(room string, now time.Time, ttl time.Duration) (T, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.m[room]
	if !ok || now.Sub(r.at) >= ttl {
		var zero T
		return zero, false
	}
	return r.v, true
}

// put records room's read made at now, dropping stale entries when full.
func (m *readMemo[T]) put(room string, v T, now time.Time, ttl time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string]memoRead[T])
	}
	if len(m.m) >= maxCachedReads {
		for k, r := range m.m {
			if now.Sub(r.at) >= ttl {
				delete(m.m, k)
			}
		}
	}
	if len(m.m) < maxCachedReads {
		m.m[room] = memoRead[T]{v: v, at: now}
	}
}

// maxCachedReads bounds the read memo; past it, stale entries are dropped.
const maxCachedReads = 4096

var (
	_ rooms.FrameCache   = (*RedisFrameCache)(nil)
	_ rooms.LayerCatalog = (*RedisFrameCache)(nil)
)

// NewRedisFrameCache returns a frame cache on client. It does not own client.
func NewRedisFrameCache(client redis.UniversalClient, opts FrameCacheOptions) *RedisFrameCache {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = "framecast:"
	}
	if opts.Interval <= 0 {
		opts.Interval = 500 * time.Millisecond
	}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &RedisFrameCache{
		client: client,
		opts:   opts,
		log:    opts.Logger.With("component", "frame-cache"),
	}
}

// Key returns the Redis key of stream's newest frame.
func (c *RedisFrameCache) Key(stream frames.Stream) string {
	return c.opts.KeyPrefix + "last:" + stream.String()
}

// Latest returns stream's newest frame from Redis, or nil when there is
// none.
func (c *RedisFrameCache) Latest(ctx context.Context, stream frames.Stream) (*frames.Frame, error) {
	now := time.Now()
	name := stream.String()
	if f, ok := c.reads.get(name, now, c.opts.Interval); ok {
		return f, nil
	}
	b, err := c.client.Get(ctx, c.Key(stream)).Bytes()
	var f *frames.Frame
	switch {
	case errors.Is(err, redis.Nil):
	case err != nil:
		c.onError("cache_read", err)
		return nil, fmt.Errorf("failed to read the cached frame of %q: %w", name, err)
	default:
		f, err = frames.ParseBinary(b, 0, time.Time{}, 0)
		if err != nil || f.IsOffline() {
			c.onError("cache_read", fmt.Errorf("bad cached frame: %v", err))
			f = nil
		} else {
			f.Room, f.Layer = stream.Room, stream.Layer // the key names the stream, whatever the message says
		}
	}
	c.reads.put(name, f, now, c.opts.Interval)
	return f, nil
}

// FrameSource is what the cache writer reads from a replica's hub: its
// local streams, each stream's newest live frame and each room's layers.
// *rooms.Hub satisfies it. Its methods must be safe for concurrent use and
// must not block.
type FrameSource interface {
	Streams() []rooms.StreamInfo
	Latest(stream frames.Stream) *frames.Frame
	LocalLayers(room string) []frames.LayerInfo
}

// Run writes the newest frame of every room with a local publisher on hub
// every Interval until ctx ends. Call it once, in its own goroutine.
func (c *RedisFrameCache) Run(ctx context.Context, hub FrameSource) {
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	w := cacheWriter{c: c, written: make(map[frames.Stream]writtenFrame), deletes: make(map[frames.Stream]bool),
		layers: make(map[string]writtenLayers)}
	for {
		select {
		case <-ctx.Done():
			// Leave the frames to their TTL: a replica restarting under a
			// rolling update keeps its rooms' first frames for the others.
			return
		case <-t.C:
			w.flush(ctx, hub)
		}
	}
}

// cacheWriter remembers what Run wrote, to write each frame once, and which
// rooms' frames it must still delete. It is used by Run's goroutine only.
type cacheWriter struct {
	c       *RedisFrameCache
	written map[frames.Stream]writtenFrame
	// deletes are rooms no longer published here whose keys are not known
	// to be deleted yet: kept until a write round succeeds, so a failed
	// round's DELs are sent again instead of leaving stale frames behind
	// for the whole TTL.
	deletes map[frames.Stream]bool
	layers  map[string]writtenLayers // room -> layer list written
	failing bool
}

type writtenLayers struct {
	v  string // the JSON written
	at time.Time
}

type writtenFrame struct {
	f  *frames.Frame
	at time.Time // when the key's TTL was last set
}

// flush writes new frames, refreshes the TTLs of unchanged ones halfway
// through their life, and deletes the frames of rooms no longer published
// here, in one round trip.
func (w *cacheWriter) flush(ctx context.Context, hub FrameSource) {
	c := w.c
	now := time.Now()
	pipe := c.client.Pipeline()
	seen := make(map[frames.Stream]bool, len(w.written))
	infos := hub.Streams()
	for _, info := range infos {
		id := info.Stream
		if info.Publishers == 0 || id.Codec != frames.CodecJPEG {
			continue // H.264 streams have no single newest frame to cache: joiners get the group
		}
		f := hub.Latest(id)
		if f == nil {
			continue
		}
		seen[id] = true
		prev, ok := w.written[id]
		switch {
		case !ok || prev.f != f:
			pipe.Set(ctx, c.Key(id), id.Message(f), c.opts.TTL)
		case now.Sub(prev.at) >= c.opts.TTL/2:
			pipe.PExpire(ctx, c.Key(id), c.opts.TTL)
		default:
			continue
		}
		w.written[id] = writtenFrame{f: f, at: now}
	}
	w.flushLayers(ctx, hub, pipe, infos, now)
	for room := range w.written {
		if !seen[room] {
			w.deletes[room] = true
			delete(w.written, room)
		}
	}
	for room := range w.deletes {
		if seen[room] {
			delete(w.deletes, room) // published here again: SET above
			continue
		}
		pipe.Del(ctx, c.Key(room))
	}
	if pipe.Len() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Interval)
	defer cancel()
	if _, err := pipe.Exec(ctx); err != nil {
		c.onError("cache_write", err)
		// Write everything again next time: some commands may have failed.
		// w.deletes stays, so the DELs are sent again too.
		clear(w.written)
		clear(w.layers)
		if !w.failing {
			w.failing = true
			c.log.Warn("failed to write frames to the Redis cache; retrying", "err", err)
		}
		return
	}
	clear(w.deletes)
	if w.failing {
		w.failing = false
		c.log.Info("writing frames to the Redis cache again")
	}
}

func (c *RedisFrameCache) onError(op string, err error) {
	if c.opts.OnError != nil {
		c.opts.OnError(op, err)
	}
}
