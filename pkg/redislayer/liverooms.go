package redislayer

import (
	"context"
	"sync"
	"time"

	"github.com/framecast/framecast/pkg/rooms"
)

var _ rooms.RoomLiveness = (*Presence)(nil)

// liveRooms is what Presence last read of the rooms other replicas
// publish (LiveElsewhere): one read of every replica's presence serves
// every room asked about for CacheFor.
type liveRooms struct {
	mu      sync.Mutex
	rooms   map[string]struct{} // rooms with a live publisher on another replica
	err     error               // the last read's error, if it failed (rooms is then the read before)
	began   time.Time           // when the last read began; zero: never
	reading chan struct{}       // closed when the read in flight ends; nil when none is
}

// liveFreshFor is how old a read may be for LiveElsewhere asked fresh:
// a refusal waits for a read begun this recently, and a flood of refusals
// costs Redis at most one read per liveFreshFor.
const liveFreshFor = 200 * time.Millisecond

// LiveElsewhere reports whether another live replica has a live publisher
// of any stream of room (as PublishedElsewhere judges one: a frame within
// TTL plus a heartbeat Interval), from every replica's presence as read
// from Redis at most CacheFor ago, or, fresh, at most 200 ms ago (for a
// refusal: a camera that started on another replica counts as soon as
// that replica's heartbeat said so, which it does at once on a new
// publisher's first frame). However many rooms are asked about, Redis is
// read at most once per CacheFor, or per 200 ms while fresh answers are
// asked for: by one goroutine of its own, bounded by Interval, that every
// caller waits for until its ctx ends (it then gets the answer of the read
// before, and ctx's error). A failed read is reported to the callers that
// waited for it and then answered from the read before (or as "no") until
// the next is due, so that while Redis is down joins do not each wait
// for it.
func (p *Presence) LiveElsewhere(ctx context.Context, room string, fresh bool) (bool, error) {
	maxAge := p.opts.CacheFor
	if fresh {
		maxAge = min(maxAge, liveFreshFor)
	}
	l := &p.live
	for waited := false; ; {
		l.mu.Lock()
		_, live := l.rooms[room]
		if !l.began.IsZero() && time.Since(l.began) < maxAge {
			var err error
			if waited {
				err = l.err
			}
			l.mu.Unlock()
			return live, err
		}
		if l.reading == nil {
			began := time.Now()
			l.reading = make(chan struct{})
			go p.readLive(l.reading, began)
		}
		reading := l.reading // one begun too long ago for maxAge: wait for it, then read again
		l.mu.Unlock()
		select {
		case <-reading:
			waited = true
		case <-ctx.Done():
			return live, ctx.Err()
		}
	}
}

// readLive reads which rooms other replicas publish into p.live, then
// closes done; the read began at began.
func (p *Presence) readLive(done chan struct{}, began time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.Interval)
	defer cancel()
	recs, err := p.read(ctx)
	var live map[string]struct{}
	if err == nil {
		live = make(map[string]struct{})
		// As PublishedElsewhere: a record is up to Interval old.
		oldest := time.Now().Add(-p.opts.TTL - p.opts.Interval)
		for _, rec := range recs {
			for _, r := range rec.Rooms {
				if r.Publishers > 0 && r.Live && r.LastFrame.After(oldest) {
					live[r.Stream.Room] = struct{}{}
				}
			}
		}
	} else {
		p.onError("presence_read", err)
	}
	l := &p.live
	l.mu.Lock()
	if err == nil {
		l.rooms = live
	}
	l.err, l.began, l.reading = err, began, nil
	l.mu.Unlock()
	close(done)
}
