package testenv

import (
	"net"
	"net/http"
	"syscall"
)

// SmallReceiveDialer dials with a receive buffer of n bytes, set before the
// connection is made so that the TCP window is negotiated from it: a peer
// that does not read then holds about n bytes. Set after connecting (with
// SetReadBuffer), loopback's window may already be scaled for far more,
// and how much a stalled client absorbs varies from run to run.
func SmallReceiveDialer(n int) *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
		}); err != nil {
			return err
		}
		return serr
	}}
}

// SmallReceiveClient is an HTTP client (for websocket.DialOptions) whose
// connections have SmallReceiveDialer(n)'s receive buffer.
func SmallReceiveClient(n int) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: SmallReceiveDialer(n).DialContext}}
}
