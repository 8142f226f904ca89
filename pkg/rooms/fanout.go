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
// chosen round-robin at Join, and each shard offers frames to its viewers
// one at a time, in the order the frames reached the hub. A gateway's notify
// callback may write to the viewer's socket right there (a non-blocking
// write), so the shards spread that work over the machine's cores, and a
// frame costs one wake-up per shard instead of one per viewer.
//
// A viewer's offers run on its shard one at a time: on the shard's
// goroutine, or, for a hub with one shard, on the delivering goroutine with
// the shard's mutex held. With the viewer's FIFO queue and its first-frame
// rule (Viewer.offerFirst), that is what keeps a viewer's frames in order.
//
// A shard never blocks on a viewer: offers and notify callbacks do not
// block. Latest-frame-wins holds per room in the shard too: a room has at
// most one frame waiting in a shard's queue. When the shard's goroutine
// falls behind (the machine is out of CPU), a room's newer frame replaces
// its waiting one, which is counted as skipped for every viewer it would
// have reached, as a viewer's own queue would have done; other rooms'
// frames are untouched. So a shard's queue holds at most one entry per room.

// shardJob is a room's frame waiting in one shard. Each Room has one per
// shard, guarded by that shard's mu.
type shardJob struct {
	f       *frames.Frame
	viewers []*Viewer // the room's viewers of this shard when f arrived
	at      int64     // when the hub took f (Hub.now)
	queued  bool      // the room is in the shard's queue
}

// fanoutShard offers frames to its viewers, from a goroutine that runs
// only while it has work, or (inline) on the goroutine that hands them over.
type fanoutShard struct {
	hub    *Hub
	index  int  // in hub.shards and in each Room's jobs
	inline bool // offers run in push, under mu

	mu      sync.Mutex
	queue   []*Room // rooms with a waiting frame, oldest first, each once; guarded by mu
	head    int     // queue[head:] is waiting; guarded by mu
	running bool    // a goroutine drains the queue; guarded by mu
}

// push hands the shard room r's frame f for viewers, all of them of this
// shard.
func (s *fanoutShard) push(r *Room, f *frames.Frame, viewers []*Viewer, at int64) {
	s.mu.Lock()
	if s.inline {
		for _, v := range viewers {
			v.offer(f, at)
		}
		s.mu.Unlock()
		return
	}
	j := &r.jobs[s.index]
	if j.queued {
		if !j.f.IsOffline() {
			for _, v := range j.viewers {
				v.skipped.Add(1)
			}
			s.hub.skipped.Add(uint64(len(j.viewers)))
		}
	} else {
		j.queued = true
		s.queue = append(s.queue, r)
	}
	j.f, j.viewers, j.at = f, viewers, at
	s.startLocked()
}

// startLocked starts the shard's goroutine if it is not running and
// unlocks mu.
func (s *fanoutShard) startLocked() {
	start := !s.running
	s.running = true
	s.mu.Unlock()
	if start {
		go s.run()
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
			// waiting rooms down rather than grow the array forever.
			n := copy(s.queue, s.queue[s.head:])
			clear(s.queue[n:])
			s.queue, s.head = s.queue[:n], 0
		}
		j := &r.jobs[s.index]
		f, viewers, at := j.f, j.viewers, j.at
		*j = shardJob{}
		s.mu.Unlock()
		for _, v := range viewers {
			v.offer(f, at)
		}
	}
}

// viewerSet is a room's viewers, all of them and by shard. It is
// copy-on-write: replaced under hub.mu, read without locks.
type viewerSet struct {
	all     []*Viewer
	byShard [][]*Viewer // indexed like hub.shards
}

// with returns the set plus v. Slices grow into spare capacity that
// readers, who hold their own slice headers and never look past their
// length, cannot see (writers hold hub.mu): a room of N viewers costs O(N)
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
