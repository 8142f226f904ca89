package recorder

import (
	"context"
	"sync"
	"time"
)

// Leases are named, expiring, exclusive locks shared by the replicas that
// record: redislayer.Leases across replicas, MemoryLeases within one
// process. The recorder holds one per room it records ("record/<room>");
// retention one per deployment. Every method takes a batch of names and
// makes one round trip. Implementations are safe for concurrent use.
type Leases interface {
	// Acquire tries to take each lease for ttl (one this holder has is
	// extended) and reports which this holder has now.
	Acquire(ctx context.Context, names []string, ttl time.Duration) ([]bool, error)
	// Renew extends for ttl the leases this holder has, and reports which
	// it still has: false means lost (expired, or taken by another).
	Renew(ctx context.Context, names []string, ttl time.Duration) ([]bool, error)
	// Release gives up the leases this holder has; others are untouched.
	Release(ctx context.Context, names []string) error
}

// MemoryLeases is a lease table in memory, for one replica without Redis
// (and for tests: each For(holder) is one holder). It is safe for
// concurrent use.
type MemoryLeases struct {
	mu  sync.Mutex
	now func() time.Time
	m   map[string]memoryLease
}

type memoryLease struct {
	holder string
	until  time.Time
}

// NewMemoryLeases returns an empty lease table.
func NewMemoryLeases() *MemoryLeases {
	return &MemoryLeases{now: time.Now, m: map[string]memoryLease{}}
}

// For returns the table's Leases as seen by holder.
func (t *MemoryLeases) For(holder string) Leases { return memoryHolder{t, holder} }

type memoryHolder struct {
	t      *MemoryLeases
	holder string
}

var _ Leases = memoryHolder{}

func (h memoryHolder) Acquire(_ context.Context, names []string, ttl time.Duration) ([]bool, error) {
	return h.each(names, func(l memoryLease, ok bool, now time.Time) (memoryLease, bool, bool) {
		if ok && l.holder != h.holder && now.Before(l.until) {
			return l, false, false
		}
		return memoryLease{h.holder, now.Add(ttl)}, true, true
	}), nil
}

func (h memoryHolder) Renew(_ context.Context, names []string, ttl time.Duration) ([]bool, error) {
	return h.each(names, func(l memoryLease, ok bool, now time.Time) (memoryLease, bool, bool) {
		if !ok || l.holder != h.holder || !now.Before(l.until) {
			return l, false, false
		}
		return memoryLease{h.holder, now.Add(ttl)}, true, true
	}), nil
}

func (h memoryHolder) Release(_ context.Context, names []string) error {
	t := h.t
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range names {
		if l, ok := t.m[n]; ok && l.holder == h.holder {
			delete(t.m, n)
		}
	}
	return nil
}

// each applies f to every named lease under the table's lock: f returns
// the lease to store (if store) and the caller's answer.
func (h memoryHolder) each(names []string, f func(l memoryLease, ok bool, now time.Time) (memoryLease, bool, bool)) []bool {
	t := h.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	out := make([]bool, len(names))
	for i, n := range names {
		l, ok := t.m[n]
		nl, store, held := f(l, ok, now)
		if store {
			t.m[n] = nl
		}
		out[i] = held
	}
	return out
}
