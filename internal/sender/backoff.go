package sender

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff yields exponentially growing pauses with jitter: each pause is
// drawn uniformly from [d/2, d], and d doubles per failure from min up to
// max. Half the pause is random so that many senders cut off by the same
// gateway restart do not redial in lockstep. A backoff is used by one
// goroutine.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max}
}

// next returns the pause before the next attempt and grows the one after.
func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	}
	d := b.cur
	b.cur = min(b.cur*2, b.max)
	half := d / 2
	return half + rand.N(d-half+1)
}

// reset starts again from min, after a success.
func (b *backoff) reset() { b.cur = 0 }

// sleep waits for d or until ctx is done, returning ctx.Err() then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
