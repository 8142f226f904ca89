package testenv

import (
	"testing"
	"time"

	"github.com/framecast/framecast/internal/linkproxy"
)

// StartProxy starts a link proxy (internal/linkproxy: latency, LimitDown,
// Cut and Restore, HoldUp) on 127.0.0.1 in front of upstream (host:port),
// delaying each direction by delay (0: none). It closes when the test ends.
func StartProxy(t testing.TB, upstream string, delay time.Duration) *linkproxy.Proxy {
	t.Helper()
	p, err := linkproxy.Listen(upstream, linkproxy.Options{Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}
