package gctune_test

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/gctune"
	"github.com/framecast/framecast/internal/testenv"
)

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		floor, live uint64
		want        int
	}{
		{64 * mb, 8 * mb, 700},  // goal 8 MB × 8 = 64 MB
		{64 * mb, 32 * mb, 100}, // goal 64 MB
		{64 * mb, 48 * mb, 50},  // 1.5 × 48 = 72 MB is above the floor: base
		{64 * mb, 200 * mb, 50}, // large heap: base
		{0, 4 * mb, 50},         // no floor: base
		{64 * mb, 60 * mb, 50},  // 6.7% would be below base
		{64 * mb, 0, 1600},      // empty heap: the runtime's minimum goal, 4 MB × 16, is the floor
		{64 * mb, 1 * mb, 1600}, // 1 MB live: the same cap
		{16 * mb, 2 * mb, 400},  // capped: 4 MB × 4 = 16 MB
	} {
		if got := gctune.Percent(50, c.floor, c.live); got != c.want {
			t.Errorf("Percent(50, %d MB, %d MB) = %d, want %d", c.floor/mb, c.live/mb, got, c.want)
		}
	}
}

// TestTunerFollowsTheLiveHeap runs the tuner on this test's own heap: small
// at first (GOGC raised far above base), then with 256 MB held live (GOGC
// back at base), then small again.
func TestTunerFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := gctune.Start(50, 64<<20)
	defer tu.Stop()

	waitGOGC := func(what string, ok func(int) bool) {
		t.Helper()
		testenv.WaitFor(t, 10*time.Second, what, func() error {
			if p := tu.GOGC(); !ok(p) {
				runtime.GC() // each collection runs the tuner's cleanup
				return fmt.Errorf("GOGC is %d", p)
			}
			return nil
		})
	}
	waitGOGC("small heap: want GOGC well above 50", func(p int) bool { return p > 500 })
	if got := runtimeGOGC(); got != tu.GOGC() {
		t.Fatalf("the runtime's GOGC is %d, the tuner's %d", got, tu.GOGC())
	}

	held := make([][]byte, 4)
	for i := range held {
		held[i] = make([]byte, 64<<20)
	}
	waitGOGC("256 MB live: want GOGC at its base", func(p int) bool { return p == 50 })
	runtime.KeepAlive(held)
	held = nil

	waitGOGC("heap small again: want GOGC raised again", func(p int) bool { return p > 500 })

	tu.Stop()
	if got := runtimeGOGC(); got != 50 {
		t.Errorf("after Stop GOGC is %d, want the base 50", got)
	}
}

// runtimeGOGC reads GOGC as the runtime has it.
func runtimeGOGC() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
