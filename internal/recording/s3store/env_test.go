package s3store_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/testenv"
)

// env is a real S3 server (versitygw) and a real redis-server for one
// test; open makes a fresh store on them (its own key prefix in the
// bucket and in Redis).
type env struct {
	s3     *testenv.S3
	redis  *testenv.Redis
	rdb    *redis.Client
	bucket string
	n      atomic.Int64
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{s3: testenv.StartS3(t), redis: testenv.StartRedis(t), bucket: "recordings"}
	e.s3.CreateBucket(t, e.bucket)
	e.rdb = newRedisClient(t, e.redis.Addr())
	return e
}

func newRedisClient(t testing.TB, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// config returns the Config of a fresh store on e.
func (e *env) config(t testing.TB) s3store.Config {
	n := e.n.Add(1)
	return s3store.Config{
		Location: fmt.Sprintf("s3://%s/t%d", e.bucket, n), Endpoint: e.s3.Endpoint, PathStyle: "true",
		AccessKey: e.s3.AccessKey, SecretKey: e.s3.SecretKey,
		KeyPrefix: fmt.Sprintf("test%d:", n), RetryEvery: 200 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// open opens a store with e.config, changed by mutate; it is closed when
// the test ends.
func (e *env) open(t testing.TB, mutate ...func(*s3store.Config)) *s3store.Bucket {
	t.Helper()
	cfg := e.config(t)
	for _, m := range mutate {
		m(&cfg)
	}
	b, err := s3store.New(context.Background(), e.rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// testWriter sends a store's log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Requests counts S3 requests by kind (PUT, GET, HEAD, LIST, DELETE: a
// DeleteObjects batch or one DELETE), wrapping a transport.
type Requests struct {
	mu     sync.Mutex
	counts map[string]int
	next   http.RoundTripper
}

func newRequests() *Requests {
	return &Requests{counts: map[string]int{}, next: s3store.NewTransport()}
}

// RoundTrip implements http.RoundTripper.
func (r *Requests) RoundTrip(req *http.Request) (*http.Response, error) {
	kind := req.Method
	q := req.URL.Query()
	switch {
	case req.Method == http.MethodGet && (q.Has("list-type") || q.Has("prefix") || q.Has("location")):
		kind = "LIST"
		if q.Has("location") {
			kind = "LOCATION"
		}
	case req.Method == http.MethodPost && q.Has("delete"):
		kind = "DELETE"
	}
	r.mu.Lock()
	r.counts[kind]++
	r.mu.Unlock()
	return r.next.RoundTrip(req)
}

// Take returns the counts so far and starts again from zero.
func (r *Requests) Take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.counts
	r.counts = map[string]int{}
	return c
}
