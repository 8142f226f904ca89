package s3store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
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
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := b.Append(context.Background(), "seg/cam/h264/1", storetest.Record(i)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(out, i)
		out.Flush()
	}
}

// TestKill9LosesNothing kills a process appending to a journal (kept in
// Redis) and checks that every record it had appended is there, whole,
// and nothing torn: a recorder's kill -9 loses only what it had not
// appended, the part it was filling.
func TestKill9LosesNothing(t *testing.T) {
	e := newEnv(t)
	cfg := e.config(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestAppenderProcess$")
	cmd.Env = append(os.Environ(), "S3STORE_TEST_REDIS="+e.redis.Addr(), "S3STORE_TEST_LOCATION="+cfg.Location,
		"S3STORE_TEST_ENDPOINT="+cfg.Endpoint, "S3STORE_TEST_KEY="+cfg.AccessKey, "S3STORE_TEST_SECRET="+cfg.SecretKey)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	last := -1
	for sc.Scan() {
		if last, _ = strconv.Atoi(sc.Text()); last >= 2000 {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() {
		last, _ = strconv.Atoi(sc.Text())
	}
	cmd.Wait()
	if last < 0 {
		t.Fatal("the appender reported nothing")
	}
	b := e.open(t, func(c *s3store.Config) { c.Location, c.KeyPrefix = cfg.Location, "kill:" })
	data, err := b.ReadJournal(context.Background(), "seg/cam/h264/1")
	if err != nil {
		t.Fatal(err)
	}
	n := storetest.CheckRecords(t, data)
	if n < last+1 {
		t.Fatalf("%d records in the journal, the killed process had appended %d", n, last+1)
	}
	t.Logf("killed after %d reported appends; %d records in the journal", last+1, n)
}
