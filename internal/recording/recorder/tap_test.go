package recorder

import (
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

func tapStream(codec frames.Codec) *stream {
	return &stream{r: &Recorder{}, id: frames.Stream{Room: "cam", Codec: codec}, q: make(chan item, QueueFrames)}
}

func h264Frame(t testing.TB, k frames.Kind, seq uint64) *frames.Frame {
	f, err := frames.New(k, seq, time.Now(), testenv.H264TestPayload(k, seq), 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTapDropsWholeGroups: past its queue's bound an H.264 stream's tap
// drops every delta up to the next keyframe, which it queues marked as
// following a gap; nothing blocks.
func TestTapDropsWholeGroups(t *testing.T) {
	s := tapStream(frames.CodecH264)
	seq := uint64(0)
	next := func(k frames.Kind) *frames.Frame { seq++; return h264Frame(t, k, seq) }
	s.tap(next(frames.KindH264Key))
	for range QueueFrames - 1 {
		s.tap(next(frames.KindH264Delta))
	}
	s.tap(next(frames.KindH264Delta)) // over the bound: dropped
	<-s.q                             // the writer catches up a little
	<-s.q
	<-s.q
	s.tap(next(frames.KindH264Delta)) // room now, but it follows a dropped picture
	if n := s.dropped.Load(); n != 2 || len(s.q) != QueueFrames-3 {
		t.Fatalf("dropped %d, queued %d; want 2 dropped and the room left empty", n, len(s.q))
	}
	cfg := next(frames.KindH264Config)
	s.tap(cfg)
	s.tap(next(frames.KindH264Key))
	for len(s.q) > 2 {
		if it := <-s.q; it.gap {
			t.Fatalf("frame %d before the drop marked as after a gap", it.f.Seq)
		}
	}
	if it := <-s.q; it.f != cfg || !it.gap {
		t.Fatalf("after the drop: frame %d (%v) gap %v; want the configuration, after a gap", it.f.Seq, it.f.Kind, it.gap)
	}
	if it := <-s.q; it.f.Kind != frames.KindH264Key || it.gap {
		t.Fatalf("then %v gap %v; want the keyframe", it.f.Kind, it.gap)
	}
}

// TestTapBytesBound: a JPEG stream's queue holds at most QueueBytes.
func TestTapBytesBound(t *testing.T) {
	s := tapStream(frames.CodecJPEG)
	f, err := frames.New(frames.KindJPEG, 1, time.Now(), testenv.JPEG(t, 64, 48, 1, 1<<20), 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		s.tap(f)
	}
	if len(s.q) != QueueBytes>>20 || s.dropped.Load() != uint64(20-len(s.q)) {
		t.Fatalf("queued %d MiB frames, dropped %d; want %d queued", len(s.q), s.dropped.Load(), QueueBytes>>20)
	}
}

// BenchmarkTap is the cost the recorder adds to the goroutine delivering
// a frame to viewers: the tap func. "queued" takes each frame off the
// queue again on the same goroutine (the writer's receive is counted in),
// "full" is a tap whose writer is stuck (every frame dropped).
func BenchmarkTap(b *testing.B) {
	f, err := frames.New(frames.KindJPEG, 1, time.Now(), testenv.JPEG(b, 64, 48, 1, 0), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("queued", func(b *testing.B) {
		s := tapStream(frames.CodecJPEG)
		b.ReportAllocs()
		for b.Loop() {
			s.tap(f)
			it := <-s.q
			s.qBytes.Add(-int64(len(it.f.Payload)))
		}
		if s.dropped.Load() != 0 {
			b.Fatal("dropped")
		}
	})
	b.Run("full", func(b *testing.B) {
		s := tapStream(frames.CodecJPEG)
		for range QueueFrames {
			s.tap(f)
		}
		b.ReportAllocs()
		for b.Loop() {
			s.tap(f)
		}
	})
}
