package rooms

import (
	"sync"
)

// Fan-out shards.
//
// The goroutine that delivers a frame (a channel layer's single read loop,
// for Redis) queues it to each local viewer of the stream at once: a mutex
// and a slot per viewer, no write. Writing is the shards' job: each viewer
// belongs to one fan-out shard for its whole life, chosen round-robin at
// Join, and the shard calls the notify callbacks of its viewers whose
// queues got frames, which write to their sockets right there (non-blocking
// writes, see internal/gateway). So the writes spread over the machine's
// cores, and a frame costs one wake-up per shard instead of one per viewer.
//
// A shard that runs late (the machine is busy) loses nothing: the frames
// wait in the viewers' own queues, where latest-frame-wins bounds them
// (Viewer). What a shard holds per stream is at most one pending "these
// viewers have frames" entry, whatever the frame rate, so its queue is
// bounded by the number of streams, and a busy stream never pushes a quiet
// stream's frame out.
//
// A shard never blocks on a viewer: notify callbacks do not block.

// shardJob is a stream's pending pump in one shard. Each stream has one
// per shard, guarded by that shard's mu.
type shardJob struct {
	viewers []*Viewer // the stream's viewers of this shard at the newest frame
	queued  bool      // the stream is in the shard's queue
}

// fanoutShard calls its viewers' notify callbacks, from a goroutine that
// runs only while it has work, or (inline) on the goroutine that hands it
// the work.
type fanoutShard struct {
	index  int  // in hub.shards and in each stream's jobs
	inline bool // notify runs in push, under mu

	mu      sync.Mutex
	queue   []*stream // streams with viewers to notify, oldest first, each once; guarded by mu
	head    int       // queue[head:] is waiting; guarded by mu
	running bool      // a goroutine drains the queue; guarded by mu
}

// push tells the shard that viewers, all of them of this shard and of
// stream r, have frames queued.
func (s *fanoutShard) push(r *stream, viewers []*Viewer) {
	s.mu.Lock()
	if s.inline {
		notifyAll(viewers)
		s.mu.Unlock()
		return
	}
	j := &r.jobs[s.index]
	if !j.queued {
		j.queued = true
		s.queue = append(s.queue, r)
	}
	j.viewers = viewers // the newest snapshot: a viewer that left is not notified
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.run()
	}
}

func notifyAll(viewers []*Viewer) {
	for _, v := range viewers {
		if v.notify != nil {
			v.notify(v)
		}
	}
}

func (s *fanoutShard) run() {
	for {
		s.mu.Lock()
		if s.head == len(s.queue) {
			s.queue, s.head = s.queue[:0], 0
			s.running = false
			s.mu.Unlock()
			return
		}
		r := s.queue[s.head]
		s.queue[s.head] = nil
		s.head++
		if s.head > 64 && s.head > len(s.queue)/2 {
			// Under sustained load the queue never empties: move the
			// waiting streams down rather than grow the array forever.
			n := copy(s.queue, s.queue[s.head:])
			clear(s.queue[n:])
			s.queue, s.head = s.queue[:n], 0
		}
		j := &r.jobs[s.index]
		viewers := j.viewers
		*j = shardJob{}
		s.mu.Unlock()
		notifyAll(viewers)
	}
}

// viewerSet is a stream's viewers, all of them and by shard. It is
// copy-on-write: replaced under hub.mu, read without locks.
type viewerSet struct {
	all     []*Viewer
	byShard [][]*Viewer // indexed like hub.shards
}

// with returns the set plus v. Slices grow into spare capacity that
// readers, who hold their own slice headers and never look past their
// length, cannot see (writers hold hub.mu): a stream of N viewers costs O(N)
// copying to fill, not O(N²) (at 10,000 viewers full copies were ~400 MB of
// garbage, visible in RSS).
func (s *viewerSet) with(v *Viewer) *viewerSet {
	n := &viewerSet{all: appendShared(s.all, v), byShard: append([][]*Viewer(nil), s.byShard...)}
	n.byShard[v.shard.index] = appendShared(s.byShard[v.shard.index], v)
	return n
}

// without returns the set minus v.
func (s *viewerSet) without(v *Viewer) *viewerSet {
	n := &viewerSet{all: remove(s.all, v), byShard: append([][]*Viewer(nil), s.byShard...)}
	n.byShard[v.shard.index] = remove(s.byShard[v.shard.index], v)
	return n
}

func appendShared(old []*Viewer, v *Viewer) []*Viewer {
	vs := old
	if len(old) == cap(old) {
		vs = make([]*Viewer, len(old), 2*len(old)+4)
		copy(vs, old)
	}
	return append(vs, v)
}

func remove(old []*Viewer, v *Viewer) []*Viewer {
	vs := make([]*Viewer, 0, len(old))
	for _, x := range old {
		if x != v {
			vs = append(vs, x)
		}
	}
	return vs
}
