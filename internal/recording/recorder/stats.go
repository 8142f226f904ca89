package recorder

import (
	"sync/atomic"

	"github.com/framecast/framecast/pkg/frames"
)

// storeOp names a kind of store or catalog call, for error counts.
type storeOp int

const (
	opAppend  storeOp = iota // a part or a segment's start or end appended to its journal
	opSeal                   // a segment's journal sealed into its object (or discarded)
	opIndex                  // a segment recorded in the index (Opened, Sealed)
	opRecover                // an earlier holder's segments recovered (Catalog.Recover)
	opSealDay                // a past day's log sealed
	opSpace                  // the store's free space read
	opSegment                // the segment writer refused a frame or failed to cut a part
	opRollup                 // a sealed day added to its stream's rollup (the day stays sealed)
	numStoreOps
)

var storeOpNames = [numStoreOps]string{"append", "seal", "index", "recover", "seal_day", "space", "segment", "rollup"}

// dropReason says why a frame was not recorded.
type dropReason int

const (
	dropQueue  dropReason = iota // the stream's queue was full: the store is slower than the stream
	dropPaused                   // recording paused: the store is nearly full
	dropStore                    // a store call failed and the stream waits to recover
	dropLease                    // the lease could not be renewed in time
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"queue", "paused", "store", "lease"}

// leaseChange is a change of a room's lease, as seen by this recorder.
type leaseChange int

const (
	leaseAcquired  leaseChange = iota // this recorder took a room
	leaseTakenOver                    // ... and sealed what the previous holder had left open
	leaseLost                         // this recorder lost a room it held (renewal refused or too late)
	leaseReleased                     // this recorder ended a room's recording and gave its lease up
	numLeaseChanges
)

var leaseChangeNames = [numLeaseChanges]string{"acquired", "taken_over", "lost", "released"}

type counters struct {
	bytes       [2]atomic.Uint64 // by codec
	segments    atomic.Uint64
	storeErrors [numStoreOps]atomic.Uint64
	dropped     [numDropReasons]atomic.Uint64
	leases      [numLeaseChanges]atomic.Uint64
	pauses      atomic.Uint64
}

// Stats are a recorder's counters since it started, keyed by the label
// values the gateway's metrics use.
type Stats struct {
	Rooms       int               // rooms recorded now
	Bytes       map[string]uint64 // bytes appended to the store, by codec ("jpeg", "h264")
	Segments    uint64            // segments sealed
	StoreErrors map[string]uint64 // failed calls, by operation
	Dropped     map[string]uint64 // frames not recorded, by reason
	Leases      map[string]uint64 // lease changes: acquired, taken_over, lost, released
	Pauses      uint64            // times recording paused for lack of space
	Paused      bool              // paused now
}

// Stats returns a snapshot of the recorder's counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	n := len(r.rooms)
	r.mu.Unlock()
	s := Stats{
		Rooms:       n,
		Bytes:       map[string]uint64{},
		Segments:    r.stats.segments.Load(),
		StoreErrors: map[string]uint64{},
		Dropped:     map[string]uint64{},
		Leases:      map[string]uint64{},
		Pauses:      r.stats.pauses.Load(),
		Paused:      r.paused.Load(),
	}
	for _, c := range frames.Codecs() {
		s.Bytes[c.String()] = r.stats.bytes[c].Load()
	}
	for i, name := range storeOpNames {
		s.StoreErrors[name] = r.stats.storeErrors[i].Load()
	}
	for i, name := range dropReasonNames {
		s.Dropped[name] = r.stats.dropped[i].Load()
	}
	for i, name := range leaseChangeNames {
		s.Leases[name] = r.stats.leases[i].Load()
	}
	return s
}

// StoreOps, DropReasons and LeaseChanges list the keys of Stats' maps.
func StoreOps() []string     { return storeOpNames[:] }
func DropReasons() []string  { return dropReasonNames[:] }
func LeaseChanges() []string { return leaseChangeNames[:] }
