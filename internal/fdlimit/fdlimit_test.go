//go:build unix

package fdlimit

import (
	"syscall"
	"testing"
)

// TestRaise: after Raise the process may open as many files as its hard
// limit allows (Go's own start-up raise stops one short of it).
func TestRaise(t *testing.T) {
	lim, err := Raise()
	if err != nil {
		t.Fatal(err)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	if lim.Soft != rl.Max || lim.Hard != rl.Max || rl.Cur != rl.Max {
		t.Fatalf("Raise = %+v; getrlimit %d/%d; want soft = hard = %d", lim, rl.Cur, rl.Max, rl.Max)
	}
}
