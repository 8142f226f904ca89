package redislayer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// LayersKey returns the Redis key of room's layer list: JSON, an array of
// {"layer","width","height"} ordered by layer, written by the replica that
// publishes the room with the same TTL as its newest frame.
func (c *RedisFrameCache) LayersKey(room string) string { return c.opts.KeyPrefix + "layers:" + room }

// Layers returns room's layer list from Redis, or none when no replica
// publishes it. Reads are reused for Interval per room.
func (c *RedisFrameCache) Layers(ctx context.Context, room string) ([]frames.LayerInfo, error) {
	m, err := c.LayersOf(ctx, []string{room})
	return m[room], err
}

// LayersOf returns the layer lists of rooms, leaving out those no replica
// publishes: the ones read within Interval from memory, the others in one
// pipelined round trip (a Cluster client splits it by node). A list that
// is not what a replica writes is reported through OnError and counts as
// none.
func (c *RedisFrameCache) LayersOf(ctx context.Context, rooms []string) (map[string][]frames.LayerInfo, error) {
	now := time.Now()
	out := make(map[string][]frames.LayerInfo, len(rooms))
	var miss []string
	for _, room := range rooms {
		if l, ok := c.layers.get(room, now, c.opts.Interval); ok {
			if len(l) > 0 {
				out[room] = l
			}
			continue
		}
		miss = append(miss, room)
	}
	if len(miss) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(miss))
	// Exec's own error is the first command's that failed, redis.Nil (a
	// room nobody publishes) included: each command is looked at instead.
	_, _ = c.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, room := range miss {
			cmds[i] = p.Get(ctx, c.LayersKey(room))
		}
		return nil
	})
	for i, room := range miss {
		b, err := cmds[i].Bytes()
		var l []frames.LayerInfo
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			c.onError("cache_read", err)
			return nil, fmt.Errorf("failed to read the layer list of %q: %w", room, err)
		default:
			if err := json.Unmarshal(b, &l); err != nil || !validLayers(l) {
				c.onError("cache_read", fmt.Errorf("bad layer list of %q: %q", room, b))
				l = nil
			}
		}
		c.layers.put(room, l, now, c.opts.Interval)
		if len(l) > 0 {
			out[room] = l
		}
	}
	return out, nil
}

// validLayers reports whether l is a list another replica could have
// written: 1 to MaxLayers layers of each codec (JPEG, then H.264), each
// codec's indexes increasing within range.
func validLayers(l []frames.LayerInfo) bool {
	if len(l) == 0 || len(l) > 2*frames.MaxLayers {
		return false
	}
	for i, x := range l {
		if x.Codec > frames.CodecH264 || x.Index < 0 || x.Index >= frames.MaxLayers || x.Width < 0 || x.Height < 0 {
			return false
		}
		if i > 0 {
			p := l[i-1]
			if p.Codec == x.Codec && x.Index <= p.Index || p.Codec == frames.CodecH264 && x.Codec == frames.CodecJPEG {
				return false
			}
		}
	}
	return true
}

// flushLayers adds to pipe the layer lists of the rooms published here
// (infos are the hub's streams): SET when a list changed, PEXPIRE halfway
// through its life, DEL when the room is no longer published here.
func (w *cacheWriter) flushLayers(ctx context.Context, hub FrameSource, pipe redis.Pipeliner, infos []rooms.StreamInfo, now time.Time) {
	c := w.c
	published := make(map[string]bool)
	for _, info := range infos {
		room := info.Stream.Room
		if info.Publishers == 0 || published[room] {
			continue
		}
		published[room] = true
		l := hub.LocalLayers(room)
		if len(l) == 0 {
			continue
		}
		b, _ := json.Marshal(l)
		prev, ok := w.layers[room]
		switch {
		case !ok || prev.v != string(b):
			pipe.Set(ctx, c.LayersKey(room), b, c.opts.TTL)
		case now.Sub(prev.at) >= c.opts.TTL/2:
			pipe.PExpire(ctx, c.LayersKey(room), c.opts.TTL)
		default:
			continue
		}
		w.layers[room] = writtenLayers{v: string(b), at: now}
	}
	for room := range w.layers {
		if !published[room] {
			pipe.Del(ctx, c.LayersKey(room))
			delete(w.layers, room)
		}
	}
}
