package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/redis/go-redis/v9"
)

// TestRecordingsRebuild: `gateway recordings rebuild` regenerates lost
// index logs from the segments alone, for one room or all of them.
func TestRecordingsRebuild(t *testing.T) {
	dir := t.TempDir()
	st, err := store.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pic := testenv.JPEG(t, 32, 24, 1, 0)
	start := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	for _, room := range []string{"lobby", "yard"} {
		var fs []*frames.Frame
		for i := range 5 {
			f, _ := frames.New(frames.KindJPEG, uint64(i+1), start.Add(time.Duration(i)*time.Second), pic, 0)
			fs = append(fs, f)
		}
		s := frames.Stream{Room: room}
		recordtest.Record(t, st, index.New(st, nil), s, fs, false)
		// The logs are lost: only the segments are left.
		if err := st.Discard(ctx, index.DayLog(s, start)); err != nil {
			t.Fatal(err)
		}
	}
	spans := func(room string) int {
		sp, err := index.New(st, nil).Spans(ctx, room, start.Add(-time.Minute), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return len(sp)
	}
	if spans("lobby") != 0 {
		t.Fatal("spans before any index was written")
	}
	bin := testenv.Binary(t, "gateway")
	out, err := exec.Command(bin, "recordings", "rebuild", "-room", "lobby", "-store", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lobby: 1 segments") {
		t.Fatalf("rebuild -room lobby: %v\n%s", err, out)
	}
	if spans("lobby") != 1 || spans("yard") != 0 {
		t.Fatalf("spans after rebuilding lobby: %d, yard %d", spans("lobby"), spans("yard"))
	}
	cmd := exec.Command(bin, "recordings", "rebuild", "-all")
	cmd.Env = []string{"GATEWAY_RECORD_STORE=" + dir}
	if out, err = cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "yard: 1 segments") {
		t.Fatalf("rebuild -all: %v\n%s", err, out)
	}
	if spans("yard") != 1 {
		t.Fatal("yard has no span after rebuild -all")
	}
	if out, err := exec.Command(bin, "recordings", "rebuild").CombinedOutput(); err == nil {
		t.Fatalf("rebuild without -room or -all succeeded: %s", out)
	}
}

// TestRecordingsRebuildS3: the rebuild command opens an s3:// store as a
// gateway does (its GATEWAY_S3_* settings, journals in Redis) and
// regenerates its logs from the segments in the bucket.
func TestRecordingsRebuildS3(t *testing.T) {
	srv := testenv.StartS3(t)
	srv.CreateBucket(t, "rec")
	r := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	st, err := s3store.New(ctx, rdb, s3store.Config{Location: "s3://rec/cams", Endpoint: srv.Endpoint,
		PathStyle: "true", AccessKey: srv.AccessKey, SecretKey: srv.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	start := time.Now().Add(-time.Hour).Truncate(time.Microsecond)
	s := frames.Stream{Room: "lobby"}
	recordtest.Record(t, st, index.New(st, nil), s, recordtest.JPEG(t, "lobby", start, 5, time.Second, 1), false)
	if err := st.Delete(ctx, index.DayLog(s, start)); err != nil { // the day's log is lost
		t.Fatal(err)
	}
	if err := st.Discard(ctx, index.DayLog(s, start)); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Binary(t, "gateway"), "recordings", "rebuild", "-all")
	cmd.Env = []string{"GATEWAY_RECORD_STORE=s3://rec/cams", "GATEWAY_S3_ENDPOINT=" + srv.Endpoint, "GATEWAY_S3_TLS=false",
		"GATEWAY_S3_PATH_STYLE=true", "GATEWAY_REDIS_URL=" + r.URL(), "AWS_ACCESS_KEY_ID=" + srv.AccessKey, "AWS_SECRET_ACCESS_KEY=" + srv.SecretKey}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "lobby: 1 segments") {
		t.Fatalf("rebuild -all on S3: %v\n%s", err, out)
	}
	sp, err := index.New(st, nil).Spans(ctx, "lobby", start.Add(-time.Minute), time.Now())
	if err != nil || len(sp) != 1 {
		t.Fatalf("spans after the rebuild: %v, %v", sp, err)
	}
}
