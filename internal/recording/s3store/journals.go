package s3store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/recording/store"
)

// Journals and buffered objects in Redis. Each script touches one store's
// keys only, which share a hash tag (one Cluster slot), so it runs
// atomically on one node: an append is in whole or not at all, and the
// bytes counter moves with the keys.

func (b *Bucket) journalKey(name string) string { return b.base + "j:" + name }
func (b *Bucket) pendingKey(name string) string { return b.base + "p:" + name }

// appendScript appends ARGV[1] to journal KEYS[1] and renews its TTL
// (ARGV[4] ms), counting the bytes in KEYS[2], unless the journal would
// pass ARGV[2] bytes (answer {1, its size}) or the store ARGV[3] (answer
// {2, the store's bytes}). Answer {0, the store's bytes} when appended.
var appendScript = redis.NewScript(`
local n = string.len(ARGV[1])
local cur = redis.call('STRLEN', KEYS[1])
if cur + n > tonumber(ARGV[2]) then return {1, cur} end
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if total + n > tonumber(ARGV[3]) then return {2, total} end
redis.call('APPEND', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {0, redis.call('INCRBY', KEYS[2], n)}
`)

// dropScript deletes keys KEYS[1..n-1] and takes their bytes off the
// count in KEYS[n]. It answers the store's bytes.
var dropScript = redis.NewScript(`
local freed = 0
for i = 1, #KEYS - 1 do
  local n = redis.call('STRLEN', KEYS[i])
  if redis.call('DEL', KEYS[i]) == 1 then freed = freed + n end
end
local total = tonumber(redis.call('GET', KEYS[#KEYS]) or '0')
if freed > 0 then
  total = redis.call('DECRBY', KEYS[#KEYS], freed)
  if total < 0 then redis.call('SET', KEYS[#KEYS], 0); total = 0 end
end
return total
`)

// stashScript turns journal KEYS[1] into buffered object KEYS[2] (a
// RENAME: its bytes stay counted), with TTL ARGV[1] ms, replacing an
// older buffered copy (whose bytes it takes off the count in KEYS[3]).
// It answers -1 when the journal is gone, else the store's bytes.
var stashScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local old = redis.call('STRLEN', KEYS[2])
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
if old > 0 then return redis.call('DECRBY', KEYS[3], old) end
return tonumber(redis.call('GET', KEYS[3]) or '0')
`)

// stashDataScript sets buffered object KEYS[1] to ARGV[1] with TTL ARGV[3]
// ms, counting in KEYS[2], unless the store would pass ARGV[2] bytes
// (answer -1). Else it answers the store's bytes.
var stashDataScript = redis.NewScript(`
local n = string.len(ARGV[1])
local old = redis.call('STRLEN', KEYS[1])
local total = tonumber(redis.call('GET', KEYS[2]) or '0')
if total - old + n > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return redis.call('INCRBY', KEYS[2], n - old)
`)

// readPendingScript answers false when buffered object KEYS[1] does not
// exist, else {its size, its bytes from ARGV[1] to ARGV[2] (inclusive;
// -1: the end), or "" when ARGV[1] is at or past the end}.
var readPendingScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local size = redis.call('STRLEN', KEYS[1])
local from = tonumber(ARGV[1])
if from >= size then return {size, ''} end
return {size, redis.call('GETRANGE', KEYS[1], from, tonumber(ARGV[2]))}
`)

// uploadedScript deletes buffered object KEYS[1] if it still holds what
// was uploaded (its SHA-1 is ARGV[1]): a newer copy buffered meanwhile
// stays for the next round. It takes the bytes off the count in KEYS[2].
var uploadedScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v or redis.sha1hex(v) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
local total = redis.call('DECRBY', KEYS[2], string.len(v))
if total < 0 then redis.call('SET', KEYS[2], 0) end
return 1
`)

func ms(d time.Duration) int64 { return d.Milliseconds() }

// appendJournal runs appendScript, recounting the store's bytes once when
// the count says the buffer is full (journals that expired are still
// counted until a recount).
func (b *Bucket) appendJournal(ctx context.Context, journal string, rec []byte) error {
	for attempt := 0; ; attempt++ {
		res, err := appendScript.Run(ctx, b.rdb, []string{b.journalKey(journal), b.total},
			rec, b.cfg.JournalMax, b.cfg.BufferMax, ms(b.cfg.JournalTTL)).Int64Slice()
		if err != nil {
			return redisError(err)
		}
		switch res[0] {
		case 0:
			b.stats.bufferBytes.Store(res[1])
			return nil
		case 1:
			b.stats.refused.Add(1)
			return fmt.Errorf("%w: the journal would pass %d bytes (JournalMax) with %d more", store.ErrFull, b.cfg.JournalMax, len(rec))
		}
		b.stats.bufferBytes.Store(res[1])
		if attempt == 0 && b.recount(ctx) {
			continue
		}
		b.stats.refused.Add(1)
		return fmt.Errorf("%w: Redis holds %d bytes of journals and buffered objects, the bound is %d (BufferMax)%s",
			store.ErrFull, res[1], b.cfg.BufferMax, b.whyFull())
	}
}

// whyFull says why the buffer filled, for ErrFull's message.
func (b *Bucket) whyFull() string {
	if !b.healthy.Load() {
		return ": S3 has been failing writes, so sealed segments wait in Redis"
	}
	return ""
}

// recountEvery is how often, at most, a full count is checked by summing
// the keys (a SCAN).
const recountEvery = 10 * time.Second

// recount sets the bytes counter to the sum of the store's keys, at most
// once per recountEvery, and reports whether it did. Appends running
// meanwhile may be miscounted by their size: the bound is approximate by
// that much, until the next recount.
func (b *Bucket) recount(ctx context.Context) bool {
	b.recountMu.Lock()
	defer b.recountMu.Unlock()
	if time.Since(b.lastRecount) < recountEvery {
		return false
	}
	b.lastRecount = time.Now()
	var sum int64
	for _, kind := range []string{"j:", "p:"} {
		keys, err := b.scanKeys(ctx, b.base+kind)
		if err != nil {
			return false
		}
		for batch := range slices.Chunk(keys, 500) {
			cmds, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range batch {
					p.StrLen(ctx, k)
				}
				return nil
			})
			if err != nil && !errors.Is(err, redis.Nil) {
				return false
			}
			for _, c := range cmds {
				sum += c.(*redis.IntCmd).Val()
			}
		}
	}
	if err := b.rdb.Set(ctx, b.total, sum, 0).Err(); err != nil {
		return false
	}
	b.stats.bufferBytes.Store(sum)
	return true
}

// drop deletes journals or buffered objects by key.
func (b *Bucket) drop(ctx context.Context, keys ...string) error {
	total, err := dropScript.Run(ctx, b.rdb, append(keys, b.total)).Int64()
	if err != nil {
		return redisError(err)
	}
	b.stats.bufferBytes.Store(total)
	return nil
}

// stash turns a journal into a buffered object and wakes the uploader.
func (b *Bucket) stash(ctx context.Context, journal, object string) error {
	total, err := stashScript.Run(ctx, b.rdb, []string{b.journalKey(journal), b.pendingKey(object), b.total},
		ms(b.cfg.JournalTTL)).Int64()
	if err != nil {
		return redisError(err)
	}
	if total < 0 {
		return fmt.Errorf("%w (no such journal)", store.ErrNotFound)
	}
	b.stats.bufferBytes.Store(total)
	b.stats.buffered.Add(1)
	b.wake()
	return nil
}

// stashData buffers a Put's bytes and wakes the uploader.
func (b *Bucket) stashData(ctx context.Context, object string, data []byte) error {
	total, err := stashDataScript.Run(ctx, b.rdb, []string{b.pendingKey(object), b.total},
		data, b.cfg.BufferMax, ms(b.cfg.JournalTTL)).Int64()
	if err != nil {
		return redisError(err)
	}
	if total < 0 {
		b.stats.refused.Add(1)
		return fmt.Errorf("%w: S3 fails writes and Redis holds its bound of %d bytes (BufferMax)", store.ErrFull, b.cfg.BufferMax)
	}
	b.stats.bufferBytes.Store(total)
	b.stats.buffered.Add(1)
	b.wake()
	return nil
}

// readPending reads a byte range of a buffered object: ok is false when
// there is none of that name.
func (b *Bucket) readPending(ctx context.Context, object string, off, n int64) (data []byte, ok bool, err error) {
	end := int64(-1)
	if n > 0 {
		end = off + n - 1
	}
	res, err := readPendingScript.Run(ctx, b.rdb, []string{b.pendingKey(object)}, off, end).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fail("read", object, redisError(err))
	}
	size, _ := res[0].(int64)
	s, _ := res[1].(string)
	if off > size {
		return nil, true, fail("read", object, fmt.Errorf("%w: offset %d of %d bytes", store.ErrBadRange, off, size))
	}
	if n == 0 {
		s = ""
	}
	return []byte(s), true, nil
}

// pendingObjects lists the buffered objects whose names start with
// prefix, with their sizes.
func (b *Bucket) pendingObjects(ctx context.Context, prefix string) ([]store.Object, error) {
	names, err := b.scan(ctx, "p:", prefix)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	cmds, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, n := range names {
			p.StrLen(ctx, b.pendingKey(n))
		}
		return nil
	})
	if err != nil {
		return nil, redisError(err)
	}
	out := make([]store.Object, len(names))
	for i, n := range names {
		out[i] = store.Object{Name: n, Size: cmds[i].(*redis.IntCmd).Val()}
	}
	return out, nil
}

// scan returns the names (sorted) of the store's keys of a kind ("j:",
// "p:") whose names start with prefix.
func (b *Bucket) scan(ctx context.Context, kind, prefix string) ([]string, error) {
	keys, err := b.scanKeys(ctx, b.base+kind+prefix)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, strings.TrimPrefix(k, b.base+kind))
	}
	slices.Sort(names)
	return slices.Compact(names), nil // SCAN may return a key twice
}

// scanBatch is SCAN's COUNT: keys looked at per round trip.
const scanBatch = 1000

// scanKeys returns the keys starting with prefix: SCAN with the prefix as
// its pattern, on the node that holds the store's slot in a Cluster.
func (b *Bucket) scanKeys(ctx context.Context, prefix string) ([]string, error) {
	var c redis.Cmdable = b.rdb
	if cc, ok := b.rdb.(*redis.ClusterClient); ok {
		node, err := cc.MasterForKey(ctx, b.total)
		if err != nil {
			return nil, redisError(err)
		}
		c = node
	}
	var keys []string
	it := c.Scan(ctx, 0, globEscape(prefix)+"*", scanBatch).Iterator()
	for it.Next(ctx) {
		keys = append(keys, it.Val())
	}
	if err := it.Err(); err != nil {
		return nil, redisError(err)
	}
	return keys, nil
}

// globEscape escapes Redis glob pattern characters.
func globEscape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}
