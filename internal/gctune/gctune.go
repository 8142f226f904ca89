// Package gctune keeps the garbage collector from running every few frames
// while a process's live heap is small.
//
// A gateway allocates each relayed frame afresh (the channel layer's copy,
// its WebSocket form: 50 KB or more apiece) and keeps little else, so with
// a plain GOGC its heap goal is a few MB and a busy room triggers a
// collection every few frames: measured, over a hundred per second at
// 800 frames/s, each with its write barriers, assists and freshly faulted
// pages. A heap floor fixes the goal at no less than a given size while the
// live heap is small, then steps aside (GOGC back at its base) once the live
// heap is large enough for the base percentage to give a goal above the
// floor. This is the "GOGC tuner" Uber and others run; the Go runtime has no
// floor of its own (GOMEMLIMIT is a ceiling).
package gctune

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// Tuner re-sets GOGC after every garbage collection so that the heap goal
// is max(live × (1 + base/100), floor). Its methods are safe for
// concurrent use; the tuning itself runs in the runtime's cleanup goroutine.
type Tuner struct {
	base    int
	floor   uint64
	stopped atomic.Bool

	mu      sync.Mutex // serializes Tune and Stop
	percent int        // GOGC as last set
	sample  []metrics.Sample
}

// sentinel is allocated per cycle; its cleanup runs after the collection
// that finds it unreachable. It holds a pointer so that it is not batched
// with other tiny objects, whose cleanups may be delayed.
type sentinel struct {
	_ *Tuner
	_ [8]byte
}

// Start sets GOGC to base, then keeps the heap goal at no less than floor
// bytes, re-tuning after each collection, until Stop.
func Start(base int, floor uint64) *Tuner {
	t := &Tuner{
		base:   base,
		floor:  floor,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}},
	}
	t.percent = base
	debug.SetGCPercent(base)
	t.Tune()
	t.arm()
	return t
}

func (t *Tuner) arm() {
	runtime.AddCleanup(&sentinel{}, func(t *Tuner) {
		if t.stopped.Load() {
			return
		}
		t.Tune()
		t.arm()
	}, t)
}

// Tune sets GOGC from the live heap measured by the last collection. It
// changes GOGC only when the new value differs by more than a tenth, so
// small swings of the live heap do not churn the pacer.
func (t *Tuner) Tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	p := Percent(t.base, t.floor, live)
	if math.Abs(float64(p-t.percent)) > float64(t.percent)/10 {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// heapMinimum is the runtime's smallest heap goal at GOGC 100; it scales
// with GOGC (4 MB × GOGC/100), so a raised GOGC raises it too.
const heapMinimum = 4 << 20

// Percent is the GOGC that gives a heap goal of max(live × (1 +
// base/100), floor). Near an empty heap the runtime's minimum goal, which
// grows with GOGC, is what reaches the floor, so GOGC is capped where that
// minimum equals the floor.
func Percent(base int, floor, live uint64) int {
	if live == 0 {
		live = 1
	}
	if floor <= live {
		return base
	}
	p := (float64(floor)/float64(live) - 1) * 100
	p = min(p, float64(floor)/heapMinimum*100)
	return int(max(p, float64(base)))
}

// Stop ends the tuning and sets GOGC back to base.
func (t *Tuner) Stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Swap(true) {
		return
	}
	debug.SetGCPercent(t.base)
	t.percent = t.base
}

// GOGC returns GOGC as the tuner last set it.
func (t *Tuner) GOGC() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}
