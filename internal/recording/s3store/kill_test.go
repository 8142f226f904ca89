package s3store_test

import (
	"context"
	"os"
	"testing"

	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/recording/store/storetest"
)

// TestAppenderProcess is the child of TestKill9LosesNothing: it appends
// records to a journal as fast as it can and reports each one done.
func TestAppenderProcess(t *testing.T) {
	redisAddr := os.Getenv("S3STORE_TEST_REDIS")
	if redisAddr == "" {
		t.Skip("the child process of TestKill9LosesNothing")
	}
	var cfg s3store.Config
	cfg.Location, cfg.Endpoint, cfg.PathStyle = os.Getenv("S3STORE_TEST_LOCATION"), os.Getenv("S3STORE_TEST_ENDPOINT"), "true"
	cfg.AccessKey, cfg.SecretKey, cfg.KeyPrefix = os.Getenv("S3STORE_TEST_KEY"), os.Getenv("S3STORE_TEST_SECRET"), "kill:"
	b, err := s3store.New(context.Background(), newRedisClient(t, redisAddr), cfg)
	if err != nil {
		t.Fatal(err)
	}
	storetest.AppendForever(t, b)
}

// TestKill9LosesNothing kills a process appending to a journal (kept in
// Redis) and checks that every record it had appended is there, whole,
// and nothing torn: a recorder's kill -9 loses only what it had not
// appended, the part it was filling.
func TestKill9LosesNothing(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	storetest.KillAppender(t, "TestAppenderProcess", []string{"S3STORE_TEST_REDIS=" + e.redis.Addr(),
		"S3STORE_TEST_LOCATION=" + cfg.Location, "S3STORE_TEST_ENDPOINT=" + cfg.Endpoint,
		"S3STORE_TEST_KEY=" + cfg.AccessKey, "S3STORE_TEST_SECRET=" + cfg.SecretKey}, 2000, func() ([]byte, error) {
		b := e.open(t, func(c *s3store.Config) { c.Location, c.KeyPrefix = cfg.Location, "kill:" })
		return b.ReadJournal(context.Background(), storetest.KillJournal)
	})
}
