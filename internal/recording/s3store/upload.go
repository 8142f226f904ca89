package s3store

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// The uploader puts buffered objects into S3 once it takes writes again.
// Every open Bucket runs one, so buffered objects of a replica that died
// are uploaded by another; two that upload the same object write the
// same bytes twice, which is harmless.

// sweepEvery is how often an uploader looks for buffered objects it was
// not told about (another replica's).
const sweepEvery = 30 * time.Second

func (b *Bucket) upload(ctx context.Context) {
	defer close(b.done)
	sweep := time.NewTicker(sweepEvery)
	defer sweep.Stop()
	retry := time.NewTimer(0)
	<-retry.C
	wait := b.cfg.RetryEvery / 16
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.nudge:
		case <-sweep.C:
		case <-retry.C:
		}
		if b.drain(ctx) {
			wait = b.cfg.RetryEvery / 16
			continue
		}
		// S3 still fails: try again after a pause that doubles up to
		// RetryEvery, so that writes resume within RetryEvery of its
		// return.
		retry.Reset(wait)
		wait = min(2*wait, b.cfg.RetryEvery)
	}
}

// drain uploads every buffered object, oldest name first. It reports
// false when S3 failed a write (the rest wait for the next round).
func (b *Bucket) drain(ctx context.Context) bool {
	names, err := b.scan(ctx, "p:", "")
	if err != nil {
		if ctx.Err() == nil {
			b.cfg.Log.Warn("S3 uploader: cannot list the buffered objects in Redis", "err", err)
		}
		return false
	}
	if len(names) == 0 {
		// Nothing to retry (another replica uploaded it, retention deleted
		// it): S3 stays marked failing until an upload works, which the
		// next buffered write brings about.
		return true
	}
	uploaded := 0
	for _, name := range names {
		if ctx.Err() != nil {
			return true
		}
		data, err := b.rdb.Get(ctx, b.pendingKey(name)).Bytes()
		if errors.Is(err, redis.Nil) {
			continue // uploaded or deleted meanwhile
		}
		if err != nil {
			return false
		}
		if err := b.put(ctx, name, data); err != nil {
			if transient(err) {
				b.down(err)
				return false
			}
			// S3 will never take this one (too large, a bad request):
			// keeping it would block the buffer for good.
			b.stats.lost.Add(1)
			b.cfg.Log.Error("S3 refuses a buffered object for good; dropping it", "object", name, "bytes", len(data), "err", err)
			_ = b.drop(ctx, b.pendingKey(name))
			continue
		}
		b.up()
		uploaded++
		b.stats.uploaded.Add(1)
		if err := uploadedScript.Run(ctx, b.rdb, []string{b.pendingKey(name), b.total}, sha1Hex(data)).Err(); err != nil && ctx.Err() == nil {
			b.cfg.Log.Warn("S3 uploader: uploaded, but cannot drop the buffered copy", "object", name, "err", err)
		}
	}
	if uploaded > 0 {
		b.cfg.Log.Info("S3 uploader: buffered objects written to S3", "objects", uploaded, "bucket", b.loc.String())
	}
	return true
}
