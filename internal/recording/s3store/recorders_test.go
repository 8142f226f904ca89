package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestRecordersOnS3 runs the recorder on the S3 store end to end: gateway
// processes recording room lobby into versitygw with their journals in
// Redis, a camera publishing to a third one. The recording replica is
// killed with SIGKILL: the other takes over and seals what the dead one
// left in Redis (the recording's gap at most 2 s). Then the S3 server is
// stopped for a while: recording goes on into the Redis buffer, a live
// viewer notices nothing, and once S3 is back the buffer is uploaded with
// no restart. What is read back from the bucket is every frame with its
// sequence number and capture time as published, with no gap but the
// takeover's.
func TestRecordersOnS3(t *testing.T) {
	e := newEnv(t)
	loc := "s3://" + e.bucket + "/e2e"
	env := []string{"GATEWAY_REDIS_URL=" + e.redis.URL(), "GATEWAY_RECORD=*", "GATEWAY_RECORD_STORE=" + loc,
		"GATEWAY_RECORD_SEGMENT=2s", "GATEWAY_RECORD_MIN_FREE=1MiB", "GATEWAY_S3_ENDPOINT=" + e.s3.Endpoint,
		"GATEWAY_S3_TLS=false", "GATEWAY_S3_PATH_STYLE=true", "GATEWAY_S3_TIMEOUT=2s",
		"AWS_ACCESS_KEY_ID=" + e.s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + e.s3.SecretKey}
	a := testenv.StartGateway(t, env...)
	b := testenv.StartGateway(t, env...)
	cam := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+e.redis.URL())

	pics := [][]byte{testenv.JPEG(t, 160, 120, 1, 6000), testenv.JPEG(t, 160, 120, 2, 6000)}
	var mu sync.Mutex
	sent := map[uint64]time.Time{}
	c := testenv.Dial(t, "ws"+strings.TrimPrefix(cam.URL(), "http")+"/ws/video/lobby/?role=publish", nil)
	c.ReadUntilClosed()
	pub := c.PublishTimed(t, 50*time.Millisecond, func(seq uint64) []byte { return pics[int(seq)%2] },
		func(seq uint64, at time.Time) { mu.Lock(); sent[seq] = at; mu.Unlock() })

	rooms := func(g *testenv.Gateway) float64 {
		m, err := testenv.ScrapeMetrics(g.URL(), 2*time.Second)
		if err != nil {
			return -1
		}
		return m.Sum("framecast_recording_rooms")
	}
	sealed := func(g *testenv.Gateway, n float64) {
		t.Helper()
		testenv.WaitFor(t, 15*time.Second, fmt.Sprintf("%v sealed segments", n), func() error {
			if got := testenv.Metric(t, g.URL(), "framecast_recording_segments_total"); got < n {
				return fmt.Errorf("%v segments", got)
			}
			return nil
		})
	}
	var holder, other *testenv.Gateway
	testenv.WaitFor(t, 10*time.Second, "one recorder to hold the room", func() error {
		ra, rb := rooms(a), rooms(b)
		switch {
		case ra == 1 && rb == 0:
			holder, other = a, b
		case rb == 1 && ra == 0:
			holder, other = b, a
		default:
			return fmt.Errorf("rooms held: %v and %v", ra, rb)
		}
		return nil
	})
	sealed(holder, 1)
	holder.Proc.Kill()
	killed := time.Now()
	testenv.WaitFor(t, 5*time.Second, "the other replica to take the room over", func() error {
		if rooms(other) != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	t.Logf("taken over %v after the kill", time.Since(killed).Round(time.Millisecond))
	sealed(other, 2)

	// S3 stops for 5 s: a viewer of the room keeps getting frames, the
	// recorder keeps recording (segments buffered in Redis).
	viewer := testenv.Dial(t, "ws"+strings.TrimPrefix(other.URL(), "http")+"/ws/video/lobby/?format=binary", nil)
	segsBefore := testenv.Metric(t, other.URL(), "framecast_recording_segments_total")
	e.s3.Stop()
	stopped := time.Now()
	var got int
	var longest time.Duration
	last := time.Now()
	for time.Since(stopped) < 5*time.Second {
		if _, err := viewer.ReadFrame(2 * time.Second); err != nil {
			t.Fatalf("the live viewer with S3 stopped: %v", err)
		}
		got++
		longest, last = max(longest, time.Since(last)), time.Now()
	}
	t.Logf("with S3 stopped for 5 s: the viewer got %d frames, longest wait %v", got, longest.Round(time.Millisecond))
	if longest > time.Second {
		t.Errorf("a live viewer waited %v for a frame while S3 was stopped", longest)
	}
	buffered := testenv.Metric(t, other.URL(), "framecast_record_s3_buffered_total")
	if buffered < 1 || testenv.Metric(t, other.URL(), "framecast_recording_segments_total") <= segsBefore {
		t.Errorf("with S3 stopped: %v segments buffered, recording did not go on", buffered)
	}
	e.s3.Restart()
	testenv.WaitFor(t, 15*time.Second, "the buffer uploaded", func() error {
		if up := testenv.Metric(t, other.URL(), "framecast_record_s3_uploaded_total"); up < buffered {
			return fmt.Errorf("%v of %v uploaded", up, buffered)
		}
		if testenv.Metric(t, other.URL(), "framecast_record_s3_writes_healthy") != 1 {
			return errors.New("writes still buffered")
		}
		return nil
	})
	sealed(other, testenv.Metric(t, other.URL(), "framecast_recording_segments_total")+1)
	pub.Stop()
	if err := other.Proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exited, _ := other.Proc.Wait(15 * time.Second); !exited {
		t.Fatal("the recorder did not stop on SIGTERM")
	}

	st := e.open(t, func(c *s3store.Config) { c.Location, c.KeyPrefix = loc, "framecast:" })
	if n := e.buffered(t); n != 0 {
		t.Errorf("%d objects still buffered in Redis", n)
	}
	fs, segs := recordtest.Read(t, st, frames.Stream{Room: "lobby"})
	if len(fs) == 0 {
		t.Fatal("nothing recorded")
	}
	var gap time.Duration
	var gapAt time.Time
	for i, f := range fs {
		mu.Lock()
		want := sent[f.Seq]
		mu.Unlock()
		if !f.Captured.Equal(want) {
			t.Fatalf("frame %d: captured %v, published as %v", f.Seq, f.Captured, want)
		}
		if i > 0 && f.Seq <= fs[i-1].Seq {
			t.Fatalf("frame %d recorded after frame %d", f.Seq, fs[i-1].Seq)
		}
		if i > 0 && f.Captured.Sub(fs[i-1].Captured) > gap {
			gap, gapAt = f.Captured.Sub(fs[i-1].Captured), fs[i-1].Captured
		}
	}
	t.Logf("read back from S3: %d frames in %d segments, last %d of %d published; longest gap %v at %v (killed at %v, S3 stopped at %v)",
		len(fs), len(segs), fs[len(fs)-1].Seq, pub.Seq(), gap.Round(time.Millisecond),
		gapAt.Format("15:04:05.000"), killed.Format("15:04:05.000"), stopped.Format("15:04:05.000"))
	if gap > 2*time.Second {
		t.Errorf("a gap of %v in the recording", gap)
	}
	if gapAt.After(stopped.Add(-time.Second)) {
		t.Errorf("the longest gap is at %v, during the S3 outage, not the takeover", gapAt)
	}
	for _, sg := range segs {
		if sg.Open {
			t.Errorf("segment %v still open after the recorder stopped", sg.Start)
		}
	}
	spans, err := index.New(st, nil).Spans(context.Background(), "lobby", time.Now().Add(-time.Hour), time.Now())
	if err != nil || len(spans) != 1 {
		t.Errorf("spans %+v, %v; want one across the takeover and the outage", spans, err)
	}
}
