package rooms

import (
	"sync"

	"github.com/framecast/framecast/pkg/frames"
)

// Fan-out shards.
//
// A frame's offers to a room's viewers run on the hub's fan-out shards, not
// on the goroutine that delivers the frame (a channel layer's single read
// loop, for Redis): each viewer belongs to one shard for its whole life,
// chosen round-robin at Join, and each shard offers frames to its viewers in
// the order they were delivered. A gateway's notify callback may write to
// the viewer's socket right there (a non-blocking write), so the shards
// spread that work over the machine's cores, and a frame costs one wake-up
// per shard instead of one per viewer.
//
// A shard never blocks on a viewer: offers and notify callbacks do not
// block. Its queue is bounded: when a shard falls maxShardQueue frames
// behind (the machine is out of CPU), its oldest image frame is dropped and
// counted as skipped for every viewer it would have reached, as a viewer's
// own slot would have done.

// maxShardQueue bounds a shard's queue in frames (of any rooms).
const maxShardQueue = 16

type fanoutJob struct {
	f       *frames.Frame
	viewers []*Viewer
}

// fanoutShard offers queued frames to its viewers from a goroutine that
// runs only while the queue is not empty.
type fanoutShard struct {
	hub     *Hub
	mu      sync.Mutex
	queue   []fanoutJob // guarded by mu
	running bool        // a goroutine drains queue; guarded by mu
}

// push queues a frame for viewers, all of them of this shard.
func (s *fanoutShard) push(f *frames.Frame, viewers []*Viewer) {
	s.mu.Lock()
	if len(s.queue) >= maxShardQueue {
		s.dropOldestLocked()
	}
	s.queue = append(s.queue, fanoutJob{f: f, viewers: viewers})
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.run()
	}
}

// dropOldestLocked drops the oldest queued image frame, counting it as
// skipped by its viewers. Offline events are kept: they are rare and
// viewers must see them.
func (s *fanoutShard) dropOldestLocked() {
	for i, j := range s.queue {
		if j.f.IsOffline() {
			continue
		}
		for _, v := range j.viewers {
			v.skipped.Add(1)
		}
		s.hub.skipped.Add(uint64(len(j.viewers)))
		s.queue = append(s.queue[:i], s.queue[i+1:]...)
		return
	}
}

func (s *fanoutShard) run() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		// Pop the head in place: the queue keeps one backing array of at
		// most maxShardQueue jobs for its life, instead of allocating one
		// per burst.
		j := s.queue[0]
		n := copy(s.queue, s.queue[1:])
		s.queue[n] = fanoutJob{} // do not pin the frame
		s.queue = s.queue[:n]
		s.mu.Unlock()
		for _, v := range j.viewers {
			v.offer(j.f)
		}
	}
}

// viewerSet is a room's viewers, all of them and by shard. It is
// copy-on-write: replaced under hub.mu, read without locks.
type viewerSet struct {
	all     []*Viewer
	byShard [][]*Viewer // nil when the hub has no shards
}

// with returns the set plus v. Slices grow into spare capacity that
// readers, who hold their own slice headers and never look past their
// length, cannot see (writers hold hub.mu): a room of N viewers costs O(N)
// copying to fill, not O(N²) (at 10,000 viewers full copies were ~400 MB of
// garbage, visible in RSS).
func (s *viewerSet) with(v *Viewer) *viewerSet {
	n := &viewerSet{all: appendShared(s.all, v)}
	if s.byShard != nil {
		n.byShard = append([][]*Viewer(nil), s.byShard...)
		n.byShard[v.shard] = appendShared(s.byShard[v.shard], v)
	}
	return n
}

// without returns the set minus v.
func (s *viewerSet) without(v *Viewer) *viewerSet {
	n := &viewerSet{all: remove(s.all, v)}
	if s.byShard != nil {
		n.byShard = append([][]*Viewer(nil), s.byShard...)
		n.byShard[v.shard] = remove(s.byShard[v.shard], v)
	}
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
