package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// Tests of the recording side with real parts: redis-server, gateway
// processes recording into a real directory (or a small tmpfs), real
// WebSocket publishers and viewers. Prefixed "rec".

// recPublisher publishes JPEG frames to a room at a fixed rate,
// remembering each frame's capture time as sent.
type recPublisher struct {
	*testenv.Publisher
	mu sync.Mutex
	at map[uint64]time.Time
}

func recPublish(t *testing.T, base, room string, every time.Duration, pics [][]byte) *recPublisher {
	t.Helper()
	c := testenv.Dial(t, wsURL(base, room, "role=publish"), nil)
	c.ReadUntilClosed()
	p := &recPublisher{at: map[uint64]time.Time{}}
	p.Publisher = c.PublishTimed(t, every, func(seq uint64) []byte { return pics[int(seq)%len(pics)] },
		func(seq uint64, at time.Time) {
			p.mu.Lock()
			p.at[seq] = at
			p.mu.Unlock()
		})
	return p
}

func (p *recPublisher) sentAt(seq uint64) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.at[seq]
}

// recStopRead stops gs with SIGTERM (which seals their open segments) and
// reads back what they recorded of s.
func recStopRead(t *testing.T, dir string, s frames.Stream, gs ...*testenv.Gateway) ([]*frames.Frame, []index.Segment) {
	t.Helper()
	for _, g := range gs {
		if err := g.Proc.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if exited, _ := g.Proc.Wait(15 * time.Second); !exited {
			t.Fatal("a gateway did not stop on SIGTERM")
		}
	}
	st, err := store.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return recordtest.Read(t, st, s)
}

// recCheck: the frames are in publishing order with no repeat (so no two
// recorders wrote the same time), each with its capture time exactly as
// published; it returns the longest gap between consecutive frames.
func recCheck(t *testing.T, fs []*frames.Frame, p *recPublisher) (gap time.Duration, at time.Time) {
	t.Helper()
	if len(fs) == 0 {
		t.Fatal("nothing recorded")
	}
	for i, f := range fs {
		if want := p.sentAt(f.Seq); !f.Captured.Equal(want) {
			t.Fatalf("frame %d: captured %v, published as %v", f.Seq, f.Captured, want)
		}
		if i == 0 {
			continue
		}
		if f.Seq <= fs[i-1].Seq {
			t.Fatalf("frame %d recorded after frame %d: a repeat or a reorder", f.Seq, fs[i-1].Seq)
		}
		if d := f.Captured.Sub(fs[i-1].Captured); d > gap {
			gap, at = d, fs[i-1].Captured
		}
	}
	return gap, at
}

func recEnv(redisURL, dir string) []string {
	return []string{"GATEWAY_REDIS_URL=" + redisURL, "GATEWAY_RECORD=*", "GATEWAY_RECORD_STORE=" + dir,
		"GATEWAY_RECORD_SEGMENT=2s", "GATEWAY_RECORD_MIN_FREE=1MiB"}
}

func recRooms(g *testenv.Gateway) float64 {
	m, err := testenv.ScrapeMetrics(g.URL(), 2*time.Second)
	if err != nil {
		return -1
	}
	return m.Sum("framecast_recording_rooms")
}

// recHolder waits until exactly one of gs records the room and returns
// it.
func recHolder(t *testing.T, timeout time.Duration, gs ...*testenv.Gateway) *testenv.Gateway {
	t.Helper()
	var holder *testenv.Gateway
	testenv.WaitFor(t, timeout, "one recorder to hold the room", func() error {
		holder = nil
		n := 0
		for _, g := range gs {
			if recRooms(g) == 1 {
				holder = g
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d recorders hold it", n)
		}
		return nil
	})
	return holder
}

// recSealed waits until g has sealed at least n segments.
func recSealed(t *testing.T, g *testenv.Gateway, n float64) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d sealed segments", int(n)), func() error {
		if got := testenv.Metric(t, g.URL(), "framecast_recording_segments_total"); got < n {
			return fmt.Errorf("%v segments", got)
		}
		return nil
	})
}

// recKillHolder waits for one of a and b to record the room and seal a
// segment, kills it with SIGKILL, and waits for the other to take the room
// over and seal a segment of its own. It returns the other, when the kill
// was, and how long the takeover took.
func recKillHolder(t *testing.T, a, b *testenv.Gateway) (other *testenv.Gateway, killed time.Time, took time.Duration) {
	t.Helper()
	holder := recHolder(t, 10*time.Second, a, b)
	other = a
	if holder == a {
		other = b
	}
	recSealed(t, holder, 1)
	holder.Proc.Kill()
	killed = time.Now()
	testenv.WaitFor(t, 5*time.Second, "the other replica to take the room over", func() error {
		if recRooms(other) != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	took = time.Since(killed)
	recSealed(t, other, 1)
	return other, killed, took
}

// TestRecordingTakeoverAfterKill: two recording replicas and one the
// camera publishes to; the recording one is killed with SIGKILL; the
// other takes the room over within 2 s, and the recording read back has
// frames from both holders, a gap of at most 2 s, and every frame's
// sequence number and capture time exactly as published.
func TestRecordingTakeoverAfterKill(t *testing.T) {
	redis := testenv.StartRedis(t)
	dir := t.TempDir()
	a := testenv.StartGateway(t, recEnv(redis.URL(), dir)...)
	b := testenv.StartGateway(t, recEnv(redis.URL(), dir)...)
	cam := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+redis.URL())
	pics := [][]byte{testenv.JPEG(t, 160, 120, 1, 6000), testenv.JPEG(t, 160, 120, 2, 6000)}
	pub := recPublish(t, cam.URL(), "lobby", 33*time.Millisecond, pics)

	other, killed, took := recKillHolder(t, a, b)
	lastBefore := pub.Seq()
	if n := testenv.Metric(t, other.URL(), "framecast_recording_lease_changes_total", `change="taken_over"`); n != 1 {
		t.Errorf("taken_over = %v on the new holder, want 1 (it recovered the dead one's segment)", n)
	}
	// Playback on the new holder lists the recording as one span across
	// the takeover (index.SpanGap is 2 s).
	var listed struct {
		Spans []index.Span `json:"spans"`
	}
	from := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
	if getJSON(t, other.URL()+"/video/lobby/recordings?from="+from, &listed); len(listed.Spans) != 1 {
		t.Errorf("GET /video/lobby/recordings: %+v; want one span", listed)
	}
	pub.Stop()
	fs, segs := recStopRead(t, dir, frames.Stream{Room: "lobby"}, other)
	gap, at := recCheck(t, fs, pub)
	recTakeover(t, "the kill", killed, took, len(fs), len(segs), gap, at)
	before, after := 0, 0
	for _, f := range fs {
		if f.Captured.Before(killed) {
			before++
		} else {
			after++
		}
	}
	if before == 0 || after == 0 || fs[len(fs)-1].Seq != pub.Seq() {
		t.Errorf("frames before the kill: %d, after: %d, last %d of %d (last before the kill %d); want both holders' frames up to the last",
			before, after, fs[len(fs)-1].Seq, pub.Seq(), lastBefore)
	}
	for _, sg := range segs {
		if sg.Open {
			t.Errorf("segment %v still open after the new holder stopped", sg.Start)
		}
	}
	st, _ := store.NewDir(dir)
	spans, err := index.New(st, nil).Spans(context.Background(), "lobby", time.Now().Add(-time.Hour), time.Now())
	if err != nil || len(spans) != 1 {
		t.Errorf("spans %+v, %v; want one span across the takeover", spans, err)
	}
}

// TestRecordingCutOffFromRedis: the holder loses Redis (a partition); it
// stops recording before its lease can have expired, the other replica
// takes the room over, and when the network heals the old holder does not
// write again: the recording has no repeated frame.
func TestRecordingCutOffFromRedis(t *testing.T) {
	redis := testenv.StartRedis(t)
	dir := t.TempDir()
	proxy := testenv.StartProxy(t, redis.Addr(), 0)
	cam := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+redis.URL())
	pics := [][]byte{testenv.JPEG(t, 160, 120, 3, 6000)}
	pub := recPublish(t, cam.URL(), "hall", 33*time.Millisecond, pics)
	a := testenv.StartGateway(t, recEnv("redis://"+proxy.Addr()+"/0", dir)...)
	if h := recHolder(t, 10*time.Second, a); h != a {
		t.Fatal("a does not record")
	}
	b := testenv.StartGateway(t, recEnv(redis.URL(), dir)...)
	recSealed(t, a, 1)
	proxy.Cut()
	cut := time.Now()
	testenv.WaitFor(t, 5*time.Second, "b to take the room over", func() error {
		if recRooms(b) != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	took := time.Since(cut)
	testenv.WaitFor(t, 3*time.Second, "a to give the room up", func() error {
		if recRooms(a) != 0 {
			return errors.New("a still records")
		}
		return nil
	})
	if n := testenv.Metric(t, a.URL(), "framecast_recording_lease_changes_total", `change="lost"`); n != 1 {
		t.Errorf("a's lost leases: %v, want 1", n)
	}
	proxy.Restore()
	// a hears frames again through its restored subscription; it must
	// not record them: b holds the room.
	recSealed(t, b, 2)
	if recRooms(a) != 0 {
		t.Error("a records the room again after the network healed, while b holds it")
	}
	pub.Stop()
	fs, segs := recStopRead(t, dir, frames.Stream{Room: "hall"}, a, b)
	gap, at := recCheck(t, fs, pub)
	recTakeover(t, "the cut", cut, took, len(fs), len(segs), gap, at)
}

// recTakeover logs a takeover after what happened at when, and checks it
// took at most 2 s and left a gap of at most 2 s in the recording.
func recTakeover(t *testing.T, what string, when time.Time, took time.Duration, frames, segs int, gap time.Duration, gapAt time.Time) {
	t.Helper()
	t.Logf("taken over %v after %s; %d frames in %d segments; longest gap %v at %v (%s at %v)",
		took.Round(time.Millisecond), what, frames, segs, gap.Round(time.Millisecond), gapAt.Format("15:04:05.000"),
		what, when.Format("15:04:05.000"))
	if took > 2*time.Second {
		t.Errorf("the takeover took %v after %s, want ≤ 2 s", took, what)
	}
	if gap > 2*time.Second {
		t.Errorf("the recording's gap is %v, want ≤ 2 s", gap)
	}
}

// recMountTmpfs mounts a tmpfs of size bytes on a new folder, or skips the
// test when this process may not mount (not root).
func recMountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the full-disk test mounts a small tmpfs, which needs root (make test runs as root in CI)")
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		if testenv.InCI() {
			t.Fatalf("mount -t tmpfs: %v: %s", err, out)
		}
		t.Skipf("cannot mount a tmpfs here (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

func recFree(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// TestRecordingFullDisk records a 1.35 MB/s stream into a 24 MiB tmpfs for
// 70 s (about four times its size): retention keeps the filesystem from
// filling, recording goes on (recent footage is found through the index),
// and a live viewer on the same gateway gets at least 99% of the frames.
func TestRecordingFullDisk(t *testing.T) {
	const (
		size    = 24 << 20
		minFree = 6 << 20
		run     = 70 * time.Second
	)
	dir := recMountTmpfs(t, size)
	g := testenv.StartGateway(t, "GATEWAY_RECORD=*", "GATEWAY_RECORD_STORE="+dir, "GATEWAY_RECORD_SEGMENT=2s",
		fmt.Sprintf("GATEWAY_RECORD_MIN_FREE=%d", minFree))
	var pics [][]byte
	for i := range 4 {
		pics = append(pics, testenv.JPEG(t, 320, 240, i, 45000))
	}
	viewer := testenv.Dial(t, wsURL(g.URL(), "vault", "role=view&format=binary"), nil)
	var got atomic.Int64
	var firstSeq atomic.Uint64
	go func() {
		for {
			f, err := viewer.ReadFrame(10 * time.Second)
			if err != nil {
				return
			}
			firstSeq.CompareAndSwap(0, f.Seq)
			got.Add(1)
		}
	}()
	pub := recPublish(t, g.URL(), "vault", 33*time.Millisecond, pics)

	lowest := int64(size)
	stop := time.Now().Add(run)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(stop) {
		<-tick.C // the sampling period of free space
		if f := recFree(dir); f >= 0 && f < lowest {
			lowest = f
		}
	}
	pub.Stop()
	sent := pub.Seq()
	testenv.WaitFor(t, 5*time.Second, "the viewer to read the last frames", func() error {
		if n := uint64(got.Load()); n+firstSeq.Load()-1 < sent*99/100 {
			return fmt.Errorf("viewer got %d of %d", n, sent-firstSeq.Load()+1)
		}
		return nil
	})
	m, err := testenv.ScrapeMetrics(g.URL(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	written := m.Sum("framecast_recording_bytes_total")
	deleted := m.Sum("framecast_retention_deleted_bytes_total", `cause="free_space"`)
	t.Logf("wrote %.1f MB (%.1f× the filesystem) in %v; retention deleted %.1f MB for free space; lowest free %.1f MiB (floor %d MiB); "+
		"store errors %v, dropped %v (paused %v); viewer got %d of %d frames",
		written/1e6, written/size, run, deleted/1e6, float64(lowest)/(1<<20), minFree>>20,
		m.Sum("framecast_recording_store_errors_total"), m.Sum("framecast_recording_dropped_frames_total"),
		m.Sum("framecast_recording_dropped_frames_total", `reason="paused"`), got.Load(), sent-firstSeq.Load()+1)
	if written < 3*size {
		t.Errorf("only %.1f MB written: the test did not fill the filesystem several times", written/1e6)
	}
	if lowest < minFree/4 {
		t.Errorf("free space fell to %d bytes, below a quarter of MIN_FREE", lowest)
	}
	if n := m.Sum("framecast_recording_store_errors_total", `op="append"`); n != 0 {
		t.Errorf("%v failed appends: the store filled", n)
	}
	if deleted == 0 {
		t.Error("retention deleted nothing for free space")
	}
	st, _ := store.NewDir(dir)
	cat := index.New(st, nil)
	recent, err := cat.Find(context.Background(), frames.Stream{Room: "vault"}, time.Now().Add(-5*time.Second))
	if err != nil || time.Since(recent.Start) > 8*time.Second {
		t.Errorf("recent footage: %+v, %v; want a segment of the last seconds", recent, err)
	}
	if n := uint64(got.Load()); n < (sent-firstSeq.Load()+1)*99/100 {
		t.Errorf("the live viewer got %d of %d frames", n, sent-firstSeq.Load()+1)
	}
}

// TestRecordingTakeoverH264: as TestRecordingTakeoverAfterKill for a room
// that sends H.264 only, with a keyframe every 2 s (the sender's default):
// the new holder asks for a keyframe, so its recording starts at once
// rather than at the next group, and what is recorded decodes from its
// first picture: a configuration first, every delta right after the
// picture before it.
func TestRecordingTakeoverH264(t *testing.T) {
	redis := testenv.StartRedis(t)
	dir := t.TempDir()
	a := testenv.StartGateway(t, recEnv(redis.URL(), dir)...)
	b := testenv.StartGateway(t, recEnv(redis.URL(), dir)...)
	cam := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+redis.URL())
	clip := testenv.MakeH264Clip(t, 320, 240, 120, 60)
	c := testenv.Dial(t, wsURL(cam.URL(), "dock", "role=publish"), nil)
	pub := c.PublishH264(t, 33*time.Millisecond, "dock", clip)

	other, killed, took := recKillHolder(t, a, b)
	pub.Stop()
	fs, segs := recStopRead(t, dir, frames.Stream{Room: "dock", Codec: frames.CodecH264}, other)
	if len(fs) == 0 || fs[0].Kind != frames.KindH264Config {
		t.Fatalf("the recording starts with %d frames, want a configuration first", len(fs))
	}
	var gap time.Duration
	var gapAt time.Time
	keyed := false
	for i, f := range fs[1:] {
		prev := fs[i]
		if d := f.Captured.Sub(prev.Captured); d > gap {
			gap, gapAt = d, prev.Captured
		}
		switch f.Kind {
		case frames.KindH264Config:
			keyed = false
		case frames.KindH264Key:
			if prev.Kind != frames.KindH264Config {
				t.Fatalf("keyframe %d without its configuration in front", f.Seq)
			}
			keyed = true
		case frames.KindH264Delta:
			if !keyed && prev.Kind != frames.KindH264Key || f.Seq != prev.Seq+1 {
				t.Fatalf("delta %d after %v %d: it cannot be decoded", f.Seq, prev.Kind, prev.Seq)
			}
		}
	}
	recTakeover(t, "the kill", killed, took, len(fs), len(segs), gap, gapAt)
	t.Logf("%d keyframe requests", pub.Requests.Load())
	if last := fs[len(fs)-1].Seq; last != pub.Seq() {
		t.Errorf("last picture recorded %d, want the last sent, %d", last, pub.Seq())
	}
}

// TestRecordingPausesWhenNothingLeft: something other than recordings
// fills the store's filesystem; retention deletes every sealed segment and
// still finds too little, so recording pauses (counted) rather than fail
// write after write; once the space is back it resumes by itself.
func TestRecordingPausesWhenNothingLeft(t *testing.T) {
	const minFree = 6 << 20
	dir := recMountTmpfs(t, 16<<20)
	g := testenv.StartGateway(t, "GATEWAY_RECORD=*", "GATEWAY_RECORD_STORE="+dir, "GATEWAY_RECORD_SEGMENT=2s",
		fmt.Sprintf("GATEWAY_RECORD_MIN_FREE=%d", minFree))
	pics := [][]byte{testenv.JPEG(t, 320, 240, 1, 20000), testenv.JPEG(t, 320, 240, 2, 20000)}
	pub := recPublish(t, g.URL(), "shed", 33*time.Millisecond, pics)
	defer pub.Stop()
	metric := func(series string, match ...string) float64 { return testenv.Metric(t, g.URL(), series, match...) }
	recSealed(t, g, 1)

	// Another program fills the filesystem to 1 MiB of free space.
	filler, err := os.Create(dir + "/filler")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	for recFree(dir) > 1<<20 {
		if _, err := filler.Write(chunk); err != nil {
			break // full already
		}
	}
	filler.Close()
	testenv.WaitFor(t, 10*time.Second, "recording to pause", func() error {
		if metric("framecast_recording_paused") != 1 {
			return fmt.Errorf("not paused; %.1f MiB free", float64(recFree(dir))/(1<<20))
		}
		return nil
	})
	if n := metric("framecast_retention_short_total"); n < 1 {
		t.Errorf("retention never said it had too little to delete (%v)", n)
	}
	paused := metric("framecast_recording_dropped_frames_total", `reason="paused"`)
	testenv.WaitFor(t, 5*time.Second, "frames dropped while paused", func() error {
		if n := metric("framecast_recording_dropped_frames_total", `reason="paused"`); n <= paused {
			return fmt.Errorf("%v", n)
		}
		return nil
	})

	// The other program's file goes: recording resumes by itself.
	if err := os.Remove(dir + "/filler"); err != nil {
		t.Fatal(err)
	}
	segs := metric("framecast_recording_segments_total")
	testenv.WaitFor(t, 10*time.Second, "recording to resume", func() error {
		if metric("framecast_recording_paused") != 0 {
			return errors.New("still paused")
		}
		if n := metric("framecast_recording_segments_total"); n < segs+1 {
			return fmt.Errorf("no new segment yet (%v)", n)
		}
		return nil
	})
	t.Logf("pauses %v, frames dropped while paused %v, failed appends %v",
		metric("framecast_recording_pauses_total"), metric("framecast_recording_dropped_frames_total", `reason="paused"`),
		metric("framecast_recording_store_errors_total", `op="append"`))
}
