// Package fdlimit raises the process's open-file limit (RLIMIT_NOFILE) to
// its hard maximum. Every WebSocket, MJPEG stream and HTTP connection of the
// gateway is a file descriptor; when they run out, accept fails with "too
// many open files" and every new client stalls, health checks included.
//
// Go (1.19+) already raises the soft limit at start, to the hard limit minus
// one since Go 1.24; Raise makes the gateway's limit explicit, whatever the
// Go version, and returns it so that it can be logged.
package fdlimit

// Limit is an open-file limit: Soft is what the process may open, Hard the
// most an unprivileged process may raise Soft to.
type Limit struct {
	Soft, Hard uint64
}
