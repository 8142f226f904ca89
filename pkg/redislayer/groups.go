package redislayer

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/pkg/rooms"
)

// Groups of pictures of H.264 streams (see rooms.GroupLayer).
//
// The group of a stream is a Redis list at "{<channel>}:gop" (the braces
// put it in the channel's cluster slot, so a Cluster layer's pipeline
// reaches one node): the configuration, the keyframe and the deltas since,
// as the channel carries them. The publisher's replica writes it in the
// same pipeline as the PUBLISH of each message, before it, so a replica
// that subscribes and then reads the list misses nothing (what it reads
// twice, it drops by sequence number). The list expires GroupTTL after
// its last write: a publisher's replica that dies leaves no stale group.

// GroupTTL is how long a group of pictures outlives its last write.
const GroupTTL = 10 * time.Second

func groupKey(channel string) string { return "{" + channel + "}:gop" }

// addGroupOps queues the list commands for msg, before its publish.
func addGroupOps(ctx context.Context, p redis.Pipeliner, key string, op rooms.GroupOp, msg []byte) {
	switch op {
	case rooms.GroupStart:
		p.Del(ctx, key)
		p.RPush(ctx, key, msg)
	case rooms.GroupAppend:
		p.RPush(ctx, key, msg)
	case rooms.GroupDrop:
		p.Del(ctx, key)
	}
}

// publishGroup is PublishBatch that also keeps the stream's group, for
// both layers: publish adds one message's PUBLISH or SPUBLISH.
func publishGroup(ctx context.Context, pipe redis.Pipeliner, ch string, msgs [][]byte, ops []rooms.GroupOp,
	onError func(string, error), publish func(redis.Pipeliner, string, []byte)) error {
	key := groupKey(ch)
	pushed := false
	for i, msg := range msgs {
		addGroupOps(ctx, pipe, key, ops[i], msg)
		pushed = pushed || ops[i] == rooms.GroupStart || ops[i] == rooms.GroupAppend
		publish(pipe, ch, msg)
	}
	if pushed {
		pipe.PExpire(ctx, key, GroupTTL)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		onError("publish", err)
		return fmt.Errorf("failed to publish %d messages to %q: %w", len(msgs), ch, err)
	}
	return nil
}

// readGroup returns the group kept for ch, oldest message first.
func readGroup(ctx context.Context, c redis.Cmdable, ch string, onError func(string, error)) ([][]byte, error) {
	vals, err := c.LRange(ctx, groupKey(ch), 0, -1).Result()
	if err != nil {
		onError("group_read", err)
		return nil, fmt.Errorf("failed to read the group of pictures of %q: %w", ch, err)
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}

var (
	_ rooms.GroupLayer = (*RedisLayer)(nil)
	_ rooms.GroupLayer = (*ClusterLayer)(nil)
)

// PublishGroup implements rooms.GroupLayer.
func (l *RedisLayer) PublishGroup(ctx context.Context, room string, msgs [][]byte, ops []rooms.GroupOp) error {
	if l.closed.Load() {
		return rooms.ErrLayerClosed
	}
	return publishGroup(ctx, l.client.Pipeline(), l.Channel(room), msgs, ops, l.onError,
		func(p redis.Pipeliner, ch string, msg []byte) { p.Publish(ctx, ch, msg) })
}

// Group implements rooms.GroupLayer.
func (l *RedisLayer) Group(ctx context.Context, room string) ([][]byte, error) {
	if l.closed.Load() {
		return nil, rooms.ErrLayerClosed
	}
	return readGroup(ctx, l.client, l.Channel(room), l.onError)
}

// PublishGroup implements rooms.GroupLayer.
func (l *ClusterLayer) PublishGroup(ctx context.Context, room string, msgs [][]byte, ops []rooms.GroupOp) error {
	if l.closed.Load() {
		return rooms.ErrLayerClosed
	}
	return publishGroup(ctx, l.client.Pipeline(), l.Channel(room), msgs, ops, l.onError,
		func(p redis.Pipeliner, ch string, msg []byte) { p.SPublish(ctx, ch, msg) })
}

// Group implements rooms.GroupLayer.
func (l *ClusterLayer) Group(ctx context.Context, room string) ([][]byte, error) {
	if l.closed.Load() {
		return nil, rooms.ErrLayerClosed
	}
	return readGroup(ctx, l.client, l.Channel(room), l.onError)
}
