// Package gatewaytest runs a gateway inside a test's own process
// (gateway.New behind an httptest server), for tests that look into its
// hub and for benchmarks that profile its hot path. Tests of the binary
// use testenv.StartGateway instead.
//
// It is a package of its own, not part of testenv, because
// internal/gateway's internal tests import testenv: testenv must not import
// the gateway.
package gatewaytest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
)

// Config returns the configuration Start begins from: the in-process
// channel layer, 2 MiB frames, 2 s write and publish timeouts, 20 s pings,
// 100 rooms, 5 s to shut down, warnings logged as text; no rate limits, no
// connection caps, no authorization.
func Config() gateway.Config {
	return gateway.Config{
		Addr: ":0", ChannelPrefix: "video_", MaxFrameBytes: 2 << 20,
		WriteTimeout: 2 * time.Second, PingInterval: 20 * time.Second,
		PublishTimeout: 2 * time.Second, ShutdownTimeout: 5 * time.Second,
		MaxRooms: 100, LogLevel: "warn", LogFormat: "text",
	}
}

// Options change what Start runs. The zero value runs Config() with its
// logs discarded.
type Options struct {
	// Config changes the configuration before the gateway starts (it may
	// replace all of it, e.g. with gateway.LoadConfig's).
	Config func(*gateway.Config)
	// Log receives the gateway's logs; nil discards them.
	Log *slog.Logger
	// Labels label every goroutine the gateway starts, hub and
	// connections, for pprof (e.g. pprof.Labels("side", "gateway")), so a
	// profile tells the gateway's CPU from the test's. Default none.
	Labels pprof.LabelSet
}

// Gateway is a gateway running in the test's process until the test ends.
type Gateway struct {
	*gateway.Server
	// HTTP serves the gateway's handler on 127.0.0.1.
	HTTP *httptest.Server
}

// URL returns http://127.0.0.1:PORT.
func (g *Gateway) URL() string { return g.HTTP.URL }

// WSURL returns ws://127.0.0.1:PORT.
func (g *Gateway) WSURL() string { return "ws" + strings.TrimPrefix(g.HTTP.URL, "http") }

// WaitReady waits until the gateway's /readyz answers 200 (its channel
// layer is up).
func (g *Gateway) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	testenv.WaitFor(t, timeout, "in-process gateway /readyz", func() error {
		return testenv.HTTPStatus(g.URL()+"/readyz", http.StatusOK)
	})
}

// Start starts a gateway on a free port of 127.0.0.1 in this process, as
// opts say, and shuts it down when the test ends (5 s deadline: open
// WebSockets get 1001, going away).
func Start(t testing.TB, opts Options) *Gateway {
	t.Helper()
	cfg := Config()
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{}
	var err error
	// Goroutines inherit their creator's labels: the hub's start in New,
	// the connections' in the server's accept loop.
	pprof.Do(context.Background(), opts.Labels, func(context.Context) {
		if g.Server, err = gateway.New(cfg, log); err == nil {
			g.HTTP = httptest.NewServer(g.Server.Handler())
		}
	})
	if err != nil {
		t.Fatalf("failed to start an in-process gateway: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = g.Server.Shutdown(ctx)
		g.HTTP.Close()
	})
	return g
}
