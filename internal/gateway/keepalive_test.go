package gateway

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// TestKeepaliveStopWithPingInFlight is the regression test for a ping
// that was in flight when its connection stopped: once it completes, it
// must not re-arm the timer.
func TestKeepaliveStopWithPingInFlight(t *testing.T) {
	const interval = 5 * time.Millisecond
	var pings atomic.Int32
	inFlight := make(chan struct{})
	release := make(chan struct{})
	stop := keepalive(interval, func() bool {
		if pings.Add(1) == 1 {
			close(inFlight)
			<-release // the pong is on its way
		}
		return true
	})
	<-inFlight
	stop()
	close(release)
	// Twenty intervals with the timer stopped: not one more ping. (A
	// negative can only be watched for a while; twenty intervals are far
	// more than the one the re-armed timer would wait.)
	time.Sleep(20 * interval) // a negative is watched for a while: see above
	if n := pings.Load(); n != 1 {
		t.Fatalf("%d pings after stop, want only the one in flight", n)
	}
}

// TestKeepalivePingsUntilAPingFails: pings repeat every interval and stop
// for good once one fails.
func TestKeepalivePingsUntilAPingFails(t *testing.T) {
	var pings atomic.Int32
	stop := keepalive(time.Millisecond, func() bool { return pings.Add(1) < 3 })
	defer stop()
	testenv.WaitFor(t, 5*time.Second, "three pings", func() error {
		if pings.Load() < 3 {
			return errNoPingYet
		}
		return nil
	})
	time.Sleep(20 * time.Millisecond) // twenty intervals more: a negative (no fourth ping) is watched for a while
	if n := pings.Load(); n != 3 {
		t.Fatalf("%d pings, want 3: none after the failed one", n)
	}
}

var errNoPingYet = errorString("not three pings yet")

type errorString string

func (e errorString) Error() string { return string(e) }
