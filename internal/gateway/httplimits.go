package gateway

import (
	"log"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// HTTP limits: how long and how much a client may send before a handler
// runs. They bound what a connection that is not (yet) a WebSocket can hold:
// a file descriptor and a few KB, for seconds.
//
// How they meet WebSockets and streams (net/http, checked in Go 1.26):
// ReadHeaderTimeout is a read deadline on the connection until the request's
// header is read, then cleared; Hijack (the WebSocket upgrade) clears every
// deadline again, and so does the background read net/http starts under a
// handler once a request has no body left (an MJPEG stream outlives a 2 s
// ReadTimeout). ReadTimeout would thus bound bodies too, but only by those
// internals; refuseBodies sets its own deadline only on requests that
// declare a body, and answers them with a clear 413.
const (
	// maxHeaderBytes caps a request's line and header. net/http adds 4 KiB
	// of buffer slack, so a header over 12 KiB is answered 431 and the
	// connection closed. Browsers send 1-2 KB (a view token in the URL is
	// ~300 bytes); nginx's default buffers refuse lines over 8 KiB anyway.
	maxHeaderBytes = 8 << 10
	// readHeaderTimeout bounds the time to send a request's header.
	readHeaderTimeout = 10 * time.Second
	// bodyReadTimeout bounds the time to send a request's body. No route
	// takes a body: a request that declares one is answered 413 at once and
	// its connection is closed after at most this long (net/http reads up to
	// 256 KiB of a refused body so that its answer reaches the client).
	bodyReadTimeout = 5 * time.Second
	// idleTimeout closes keep-alive connections (page loads, scrapers)
	// that send no next request: they count against no limit.
	idleTimeout = 120 * time.Second
)

// newHTTPServer returns the http.Server that serves h with the limits above
// and logs its own errors through log (see serverErrorLog).
func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           refuseBodies(h),
		ReadHeaderTimeout: readHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       idleTimeout,
		ErrorLog:          newServerErrorLog(log),
	}
}

// refuseBodies answers 413 to any request that declares a body (a
// Content-Length above 0, or chunked), before h sees it, and bounds the time
// the client gets to send that body by bodyReadTimeout. Without it, a client
// trickling a declared body held its connection for as long as it liked:
// net/http reads the rest of a small unread body before answering.
func refuseBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 {
			h.ServeHTTP(w, r)
			return
		}
		// The deadline bounds net/http's read of the refused body after
		// this answer; the connection is not reused.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyReadTimeout))
		w.Header().Set("Connection", "close")
		http.Error(w, "request body not accepted", http.StatusRequestEntityTooLarge)
	})
}

// Rate of the http.Server's own error lines: serverErrorLogBurst at once,
// then one per serverErrorLogEvery. Under file-descriptor exhaustion the
// accept loop retries up to 200 times a second and each retry is a line.
const (
	serverErrorLogBurst = 5
	serverErrorLogEvery = 5 * time.Second
)

// serverErrorLog is the io.Writer behind http.Server.ErrorLog. The server's
// errors (accept failures such as "too many open files", panics in
// handlers, misuse of a ResponseWriter) mean the replica is in trouble or
// has a bug: each line is logged at WARN, rate-limited, and the lines
// dropped by the limit are counted in the next line let through
// (suppressed=N). Write is safe for concurrent use.
type serverErrorLog struct {
	log *slog.Logger
	now func() time.Time // time.Now; a fixed clock in tests

	mu         sync.Mutex
	limit      *rate.Limiter
	suppressed int
}

func newServerErrorLog(l *slog.Logger) *log.Logger {
	return log.New(newServerErrorWriter(l, time.Now), "", 0)
}

func newServerErrorWriter(l *slog.Logger, now func() time.Time) *serverErrorLog {
	return &serverErrorLog{
		log:   l,
		now:   now,
		limit: rate.NewLimiter(rate.Every(serverErrorLogEvery), serverErrorLogBurst),
	}
}

func (e *serverErrorLog) Write(p []byte) (int, error) {
	e.mu.Lock()
	if !e.limit.AllowN(e.now(), 1) {
		e.suppressed++
		e.mu.Unlock()
		return len(p), nil
	}
	suppressed := e.suppressed
	e.suppressed = 0
	e.mu.Unlock()
	args := []any{"err", strings.TrimSpace(string(p))}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	e.log.Warn("http server error", args...)
	return len(p), nil
}
