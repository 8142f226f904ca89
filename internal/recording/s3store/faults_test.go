package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
)

var minioGet = minio.GetObjectOptions{}

func readAll(t testing.TB, o *minio.Object) string {
	t.Helper()
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// waitUploaded waits until b has uploaded n buffered objects in all and
// takes writes again.
func waitUploaded(t testing.TB, b *s3store.Bucket, n uint64) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, "the buffered objects uploaded", func() error {
		if st := b.Stats(); st.Uploaded < n || !st.Healthy {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
}

// inS3 returns object's bytes as the S3 server has them ("" and an error
// when it has none).
func (e *env) inS3(t testing.TB, b *s3store.Bucket, object string) (string, error) {
	t.Helper()
	o, err := e.s3.Client(t).GetObject(context.Background(), e.bucket, b.Location().Prefix+object, minioGet)
	if err != nil {
		return "", err
	}
	defer o.Close()
	got, err := io.ReadAll(o)
	return string(got), err
}

// buffered returns how many buffered objects Redis holds for any store.
func (e *env) buffered(t testing.TB) int {
	t.Helper()
	keys, err := e.rdb.Keys(context.Background(), "*:p:*").Result() // a test's small Redis: KEYS is fine here
	if err != nil {
		t.Fatal(err)
	}
	return len(keys)
}

// TestServerStopped: with S3 stopped, journals still take appends (they
// are in Redis), Seal and Put buffer in Redis and succeed, what was
// buffered reads back, what only S3 has fails with ErrUnavailable; once
// S3 is back the buffered objects are uploaded, with no restart.
func TestServerStopped(t *testing.T) {
	e := newEnv(t)
	b := e.open(t)
	ctx := context.Background()
	if err := b.Put(ctx, "seg/old", []byte("old")); err != nil {
		t.Fatal(err)
	}
	e.s3.Stop()
	const j, o = "seg/cam/h264/1", "seg/cam/h264/2026/12/07/1.mp4"
	for _, part := range []string{"init;", "part 1;", "part 2;"} {
		if err := b.Append(ctx, j, []byte(part)); err != nil {
			t.Fatalf("Append with S3 stopped: %v", err)
		}
	}
	start := time.Now()
	if err := b.Seal(ctx, j, o); err != nil {
		t.Fatalf("Seal with S3 stopped: %v", err)
	}
	sealed := time.Now()
	if err := b.Put(ctx, "idx/cam/h264/cutoff", []byte("cutoff")); err != nil {
		t.Fatalf("Put with S3 stopped: %v", err)
	}
	t.Logf("with S3 stopped, Seal took %v (a refused PUT), Put %v (straight to the buffer)", sealed.Sub(start), time.Since(sealed))
	if st := b.Stats(); st.Buffered != 2 || st.Healthy {
		t.Fatalf("stats %+v, want 2 buffered", st)
	}
	if _, err := b.ReadJournal(ctx, j); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the sealed journal is still there: %v", err)
	}
	if got, err := b.Read(ctx, o, 5, 6); err != nil || string(got) != "part 1" {
		t.Fatalf("a range of the buffered object: %q, %v", got, err)
	}
	if got, err := b.Read(ctx, o, 0, -1); err != nil || string(got) != "init;part 1;part 2;" {
		t.Fatalf("the buffered object: %q, %v", got, err)
	}
	if _, err := b.Read(ctx, o, 100, 1); !errors.Is(err, store.ErrBadRange) {
		t.Fatalf("past the buffered object's end: %v", err)
	}
	if _, err := b.Read(ctx, "seg/old", 0, -1); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("an object only S3 has: %v, want ErrUnavailable", err)
	}
	if _, err := b.List(ctx, "seg/"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("List with S3 stopped: %v, want ErrUnavailable", err)
	}
	if err := b.Delete(ctx, "seg/old"); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Delete with S3 stopped: %v, want ErrUnavailable", err)
	}
	if js, err := b.Journals(ctx, ""); err != nil || len(js) != 0 {
		t.Fatalf("Journals with S3 stopped: %v, %v", js, err)
	}

	e.s3.Restart()
	waitUploaded(t, b, 2)
	if got, err := e.inS3(t, b, o); err != nil || got != "init;part 1;part 2;" {
		t.Fatalf("in S3 after the restart: %q, %v", got, err)
	}
	if got, err := e.inS3(t, b, "idx/cam/h264/cutoff"); err != nil || got != "cutoff" {
		t.Fatalf("in S3 after the restart: %q, %v", got, err)
	}
	if n := e.buffered(t); n != 0 {
		t.Fatalf("%d buffered objects left in Redis", n)
	}
	objs, err := b.List(ctx, "seg/")
	if err != nil || len(objs) != 2 {
		t.Fatalf("List after the restart: %v, %v", objs, err)
	}
	puts := b.Stats().Puts
	if err := b.Append(ctx, j, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := b.Seal(ctx, j, o); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Puts != puts+1 || st.Buffered != 2 {
		t.Fatalf("a Seal after S3 came back did not go straight to S3: %+v", st)
	}
}

// TestBuffersUpToTheBound: a journal takes appends up to JournalMax, the
// store up to BufferMax (journals and buffered objects together); past
// them Append fails with ErrFull, leaving the journal as it was, and is
// counted. When S3 takes the buffered objects, appends work again.
func TestBuffersUpToTheBound(t *testing.T) {
	e := newEnv(t)
	const rec = 64 << 10
	b := e.open(t, func(c *s3store.Config) { c.JournalMax, c.BufferMax = 4*rec, 1<<20 })
	ctx := context.Background()
	part := bytes.Repeat([]byte{7}, rec)
	for i := range 5 {
		err := b.Append(ctx, "seg/cam/jpeg/1", part)
		if i < 4 && err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if i == 4 && !errors.Is(err, store.ErrFull) {
			t.Fatalf("an append past JournalMax: %v, want ErrFull", err)
		}
	}
	if got, _ := b.ReadJournal(ctx, "seg/cam/jpeg/1"); len(got) != 4*rec {
		t.Fatalf("the journal holds %d bytes after a refused append, want %d", len(got), 4*rec)
	}
	if err := b.Discard(ctx, "seg/cam/jpeg/1"); err != nil {
		t.Fatal(err)
	}

	e.s3.Stop()
	sealed, refused := 0, error(nil)
	for seg := 0; refused == nil && seg < 100; seg++ {
		j := fmt.Sprintf("seg/cam/jpeg/%d", 100+seg)
		for range 3 {
			if refused = b.Append(ctx, j, part); refused != nil {
				break
			}
		}
		if refused == nil {
			if err := b.Seal(ctx, j, j+".mp4"); err != nil {
				t.Fatal(err)
			}
			sealed++
		}
	}
	if !errors.Is(refused, store.ErrFull) || !strings.Contains(refused.Error(), "S3 has been failing writes") {
		t.Fatalf("past BufferMax with S3 stopped: %v, want ErrFull saying why", refused)
	}
	st := b.Stats()
	t.Logf("with S3 stopped: %d segments of %d KiB buffered, then %v; stats %+v", sealed, 3*rec>>10, refused, st)
	if sealed != 5 || st.Buffered != 5 || st.Refused != 2 || st.BufferBytes > 1<<20 {
		t.Fatalf("%d segments buffered (want 5 of 192 KiB in 1 MiB), stats %+v", sealed, st)
	}
	e.s3.Restart()
	waitUploaded(t, b, 5)
	for seg := range sealed {
		j := fmt.Sprintf("seg/cam/jpeg/%d", 100+seg)
		if got, err := e.inS3(t, b, j+".mp4"); err != nil || len(got) != 3*rec {
			t.Fatalf("%s in S3: %d bytes, %v", j, len(got), err)
		}
	}
	if err := b.Append(ctx, "seg/cam/jpeg/999", part); err != nil {
		t.Fatalf("Append once S3 took the buffer: %v", err)
	}
}

// TestSlowServer: behind a link with 150 ms each way, a Seal whose
// deadline passes before S3 answers buffers instead and returns at once;
// the uploader, with the configured timeout, gets it through. A read that
// S3 cannot answer in time is ErrUnavailable. A cut link is a stopped
// server.
func TestSlowServer(t *testing.T) {
	e := newEnv(t)
	p := testenv.StartProxy(t, e.s3.Endpoint, 150*time.Millisecond)
	b := e.open(t, func(c *s3store.Config) { c.Endpoint = p.Addr(); c.Timeout = 5 * time.Second })
	ctx := context.Background()
	if err := b.Append(ctx, "seg/cam/h264/1", bytes.Repeat([]byte{1}, 256<<10)); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	err := b.Seal(sctx, "seg/cam/h264/1", "seg/cam/h264/1.mp4")
	took := time.Since(start)
	cancel()
	if err != nil || took > time.Second {
		t.Fatalf("Seal past its deadline: %v after %v, want it buffered at once", err, took)
	}
	if st := b.Stats(); st.Buffered != 1 {
		t.Fatalf("stats %+v", st)
	}
	waitUploaded(t, b, 1)
	rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = b.Read(rctx, "seg/cam/h264/1.mp4", 0, 10)
	cancel()
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("a read S3 cannot answer in time: %v, want ErrUnavailable", err)
	}
	start = time.Now()
	if got, err := b.Read(ctx, "seg/cam/h264/1.mp4", 0, 10); err != nil || len(got) != 10 {
		t.Fatalf("a slow read: %d bytes, %v", len(got), err)
	}
	t.Logf("a 10-byte read over a 150 ms link: %v", time.Since(start))

	p.Cut()
	if err := b.Put(ctx, "meta/x", []byte("x")); err != nil {
		t.Fatalf("Put on a cut link: %v", err)
	}
	p.Restore()
	waitUploaded(t, b, 2)
	if got, err := e.inS3(t, b, "meta/x"); err != nil || got != "x" {
		t.Fatalf("after the link came back: %q, %v", got, err)
	}
}

// TestFullAndReadOnlyBucket: S3 refusing writes because its disk is full,
// then because it is read-only: writes are buffered, reads of what it has
// go on, and once it takes writes again (space freed, remounted) the
// buffer is uploaded.
func TestFullAndReadOnlyBucket(t *testing.T) {
	dir := testenv.MountTmpfs(t, 4<<20)
	e := &env{s3: testenv.StartS3In(t, dir), redis: testenv.StartRedis(t), bucket: "recordings"}
	e.s3.CreateBucket(t, e.bucket)
	e.rdb = newRedisClient(t, e.redis.Addr())
	b := e.open(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte{1}, 1<<20)
	var filled []string
	for i := 0; ; i++ {
		name := fmt.Sprintf("seg/fill/%d", i)
		puts := b.Stats().Puts
		if err := b.Put(ctx, name, big); err != nil {
			t.Fatal(err)
		}
		if b.Stats().Puts == puts {
			break // buffered: S3 refused it
		}
		filled = append(filled, name)
		if i > 10 {
			t.Fatal("a 4 MiB tmpfs took 10 MiB")
		}
	}
	st := b.Stats()
	t.Logf("full after %d MiB: stats %+v", len(filled), st)
	if st.Buffered != 1 || st.Healthy {
		t.Fatalf("stats %+v", st)
	}
	if got, err := b.Read(ctx, filled[0], 0, 4); err != nil || len(got) != 4 {
		t.Fatalf("reading from a full S3: %v", err)
	}
	if err := b.Delete(ctx, filled...); err != nil {
		t.Fatalf("Delete on a full S3: %v", err)
	}
	waitUploaded(t, b, 1)

	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
	if err := b.Put(ctx, "meta/ro", []byte("ro")); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Buffered != 2 || st.Healthy {
		t.Fatalf("a write to a read-only S3: stats %+v", st)
	}
	if out, err := exec.Command("mount", "-o", "remount,rw", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-write: %v: %s", err, out)
	}
	waitUploaded(t, b, 2)
	if got, err := e.inS3(t, b, "meta/ro"); err != nil || got != "ro" {
		t.Fatalf("after remounting: %q, %v", got, err)
	}
}
