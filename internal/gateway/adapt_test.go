package gateway

import (
	"testing"
	"time"
)

// TestAdaptationRule walks the rule of docs/protocol.md through a viewer
// on a 3-layer room that asked for the widest layer: down on skips after
// the hold, up after the probe hold, the probe hold doubling on a quick
// fall-back and reset after 30 s without a move.
func TestAdaptationRule(t *testing.T) {
	var a adaptation
	t0 := time.Unix(1000, 0)
	a.reset(t0)
	var offered, skipped uint64
	check := func(at time.Duration, newOffered, newSkipped uint64, pos int) string {
		offered, skipped = offered+newOffered, skipped+newSkipped
		now := t0.Add(at)
		a.observe(now, offered, skipped, nil)
		return a.decide(now, pos, 0, 3)
	}
	check(0, 0, 0, 0) // the first check takes the counters as they are
	if d := check(time.Second, 20, 10, 0); d != "" {
		t.Fatalf("moved %q within the hold after the start", d)
	}
	if d := check(2*time.Second, 20, 1, 0); d != moveDown {
		t.Fatalf("11 of 40 frames skipped in 2 s: %q, want down", d)
	}
	a.moved(t0.Add(2*time.Second), moveDown)
	if d := check(5*time.Second, 20, 1, 1); d != "" {
		t.Fatalf("1 skip of 20: %q, want no move", d)
	}
	for s := 6; s < 15; s++ {
		if d := check(time.Duration(s)*time.Second, 20, 0, 1); d != "" {
			t.Fatalf("at %d s: %q before the 10 s probe hold passed", s, d)
		}
	}
	if d := check(15*time.Second, 20, 0, 1); d != moveUp {
		t.Fatalf("10 s clean below the asked layer: %q, want up", d)
	}
	a.moved(t0.Add(15*time.Second), moveUp)
	check(16*time.Second, 20, 10, 0)
	if d := check(17*time.Second, 20, 10, 0); d != moveDown {
		t.Fatalf("skipping after the probe: %q, want down", d)
	}
	a.moved(t0.Add(17*time.Second), moveDown)
	if a.probeHold != 2*probeHoldMin {
		t.Fatalf("probe hold %v after a quick fall-back, want %v", a.probeHold, 2*probeHoldMin)
	}
	for range 5 {
		a.lastUp = a.lastMove
		a.moved(a.lastMove.Add(time.Second), moveDown)
	}
	if a.probeHold != probeHoldMax {
		t.Fatalf("probe hold %v, want at most %v", a.probeHold, probeHoldMax)
	}
	a.decide(a.lastMove.Add(stableReset), 1, 0, 3)
	if a.probeHold != probeHoldMin {
		t.Fatalf("probe hold %v after 30 s without a move, want %v", a.probeHold, probeHoldMin)
	}
	if d := a.decide(a.lastMove.Add(time.Hour), 0, 0, 3); d != "" {
		t.Fatalf("at the asked layer with no skips: %q", d)
	}
}
