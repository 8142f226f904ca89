package recorder_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recorder"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

func read(t *testing.T, st store.Store, s frames.Stream) []*frames.Frame {
	fs, _ := recordtest.Read(t, st, s)
	return fs
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

type rig struct {
	t   *testing.T
	hub *rooms.Hub
	st  *store.Dir
	cat *index.Catalog
}

func newRig(t *testing.T) *rig {
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, hub: rooms.NewHub(rooms.NewMemoryLayer(), rooms.Options{Logger: quiet()}), st: st, cat: index.New(st, nil)}
}

func (g *rig) recorder(leases recorder.Leases) *recorder.Recorder {
	r := recorder.New(g.hub, g.st, g.cat, leases, recorder.LocalRooms{Hub: g.hub}, &recorder.Options{
		Segment: segment.Options{Target: 2 * time.Second},
		Logger:  quiet(),
	})
	r.Start()
	g.t.Cleanup(func() { _ = r.Stop(context.Background()) })
	return r
}

// sent remembers the capture time of every frame published.
type sent struct {
	mu sync.Mutex
	at map[uint64]time.Time
}

// publishJPEG sends n real JPEG frames to room at fps, captured now.
func (g *rig) publishJPEG(room string, fps, n int, rec *sent) {
	g.t.Helper()
	p, err := g.hub.NewPublisher(frames.Stream{Room: room})
	if err != nil {
		g.t.Fatal(err)
	}
	defer p.Close()
	pics := [][]byte{testenv.JPEG(g.t, 64, 48, 1, 2000), testenv.JPEG(g.t, 64, 48, 2, 2000)}
	tick := time.NewTicker(time.Second / time.Duration(fps))
	defer tick.Stop()
	for i := 1; i <= n; i++ {
		<-tick.C // the publisher's pace
		at := time.Now().Truncate(time.Microsecond)
		f, err := frames.New(frames.KindJPEG, uint64(i), at, pics[i%2], 0)
		if err != nil {
			g.t.Fatal(err)
		}
		rec.mu.Lock()
		rec.at[uint64(i)] = at
		rec.mu.Unlock()
		p.Send(f)
	}
}

// checkExact: the recorded frames are consecutive from the first recorded
// to last, each with the capture time it was sent with.
func checkExact(t *testing.T, fs []*frames.Frame, rec *sent, last uint64) {
	t.Helper()
	if len(fs) == 0 {
		t.Fatal("nothing recorded")
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i, f := range fs {
		if i > 0 && f.Seq != fs[i-1].Seq+1 {
			t.Fatalf("frame %d after %d: a gap", f.Seq, fs[i-1].Seq)
		}
		if !f.Captured.Equal(rec.at[f.Seq]) {
			t.Fatalf("frame %d captured %v, sent as %v", f.Seq, f.Captured, rec.at[f.Seq])
		}
	}
	if got := fs[len(fs)-1].Seq; got != last {
		t.Fatalf("last frame recorded %d, want %d", got, last)
	}
}

// TestRecordsJPEGExactly: a room with a publisher is recorded from shortly
// after it appears; Stop seals the open segment; what reads back is every
// frame from the first recorded on, with its sequence number and capture
// time.
func TestRecordsJPEGExactly(t *testing.T) {
	g := newRig(t)
	r := g.recorder(recorder.NewMemoryLeases().For("a"))
	rec := &sent{at: map[uint64]time.Time{}}
	g.publishJPEG("lobby", 30, 150, rec) // 5 s
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := frames.Stream{Room: "lobby"}
	fs := read(t, g.st, s)
	checkExact(t, fs, rec, 150)
	if fs[0].Seq > 60 {
		t.Errorf("recording began at frame %d: more than 2 s after the publisher", fs[0].Seq)
	}
	segs, _ := g.cat.Day(context.Background(), s, time.Now())
	for _, sg := range segs {
		if sg.Open {
			t.Errorf("segment %v still open after Stop", sg.Start)
		}
	}
	if len(segs) < 2 {
		t.Errorf("%d segments; want 2 s ones", len(segs))
	}
	st := r.Stats()
	if st.Segments != uint64(len(segs)) || st.Bytes["jpeg"] == 0 || st.Leases["acquired"] != 1 || st.Leases["released"] != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestOneRecorderPerRoom: two recorders of one replica's rooms (one lease
// table) never both record a room; when the holder stops, the other takes
// the room over and the recording goes on.
func TestOneRecorderPerRoom(t *testing.T) {
	g := newRig(t)
	table := recorder.NewMemoryLeases()
	a := g.recorder(table.For("a"))
	b := g.recorder(table.For("b"))
	rec := &sent{at: map[uint64]time.Time{}}
	done := make(chan struct{})
	go func() { defer close(done); g.publishJPEG("lobby", 30, 240, rec) }() // 8 s
	var first, second *recorder.Recorder
	testenv.WaitFor(t, 5*time.Second, "a recorder to take the room", func() error {
		na, nb := a.Stats().Rooms, b.Stats().Rooms
		switch {
		case na+nb > 1:
			t.Fatalf("both recorders record the room")
		case na == 1:
			first, second = a, b
		case nb == 1:
			first, second = b, a
		default:
			return errors.New("nobody records it")
		}
		return nil
	})
	if err := first.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 3*time.Second, "the other recorder to take over", func() error {
		if second.Stats().Rooms != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	<-done
	if err := second.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs := read(t, g.st, frames.Stream{Room: "lobby"})
	// The handover loses what arrived between the first's last frame and
	// the second's tap; the rest is exact.
	maxGap := time.Duration(0)
	for i := 1; i < len(fs); i++ {
		maxGap = max(maxGap, fs[i].Captured.Sub(fs[i-1].Captured))
	}
	if maxGap > time.Second {
		t.Errorf("a graceful handover left a gap of %v", maxGap)
	}
	if last := fs[len(fs)-1].Seq; last != 240 {
		t.Errorf("last frame recorded %d, want 240", last)
	}
	t.Logf("%d frames recorded, longest gap %v", len(fs), maxGap)
}

// TestRecordsH264 records a real H.264 stream that starts mid-group: the
// recording starts at a configuration and keyframe (asked for), and every
// access unit reads back byte for byte.
func TestRecordsH264(t *testing.T) {
	g := newRig(t)
	clip := testenv.MakeH264Clip(t, 320, 240, 90, 60)
	r := g.recorder(recorder.NewMemoryLeases().For("a"))
	id := frames.Stream{Room: "cam", Codec: frames.CodecH264}
	p, err := g.hub.NewPublisher(id)
	if err != nil {
		t.Fatal(err)
	}
	var asked bool
	var mu sync.Mutex
	next := 0 // the clip's next picture; a keyframe request jumps to the next keyframe
	p.OnKeyframe(func() {
		mu.Lock()
		defer mu.Unlock()
		asked = true
		for i := next; i < len(clip.AUs); i++ {
			if clip.Key[i] {
				next = i
				return
			}
		}
		next = 0
	})
	cfg := frames.AppendH264Config(nil, clip.Config)
	sentAU := map[uint64][]byte{}
	tick := time.NewTicker(time.Second / 30)
	defer tick.Stop()
	for seq := uint64(1); seq <= 240; seq++ {
		<-tick.C // the publisher's pace
		mu.Lock()
		i := next
		next = (next + 1) % len(clip.AUs)
		mu.Unlock()
		at := time.Now().Truncate(time.Microsecond)
		kind := frames.KindH264Delta
		if clip.Key[i] {
			kind = frames.KindH264Key
			f, _ := frames.New(frames.KindH264Config, seq, at, cfg, 0)
			p.Send(f)
		}
		f, err := frames.New(kind, seq, at, clip.AUs[i], 0)
		if err != nil {
			t.Fatal(err)
		}
		sentAU[seq] = clip.AUs[i]
		p.Send(f)
	}
	p.Close()
	if err := r.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs := read(t, g.st, id)
	if len(fs) == 0 || fs[0].Kind != frames.KindH264Config {
		t.Fatalf("recording starts with %v, want a configuration", fs[0].Kind)
	}
	pics := 0
	for _, f := range fs {
		if f.Kind == frames.KindH264Config {
			continue
		}
		pics++
		if string(f.Payload) != string(sentAU[f.Seq]) {
			t.Fatalf("picture %d differs from what was sent", f.Seq)
		}
	}
	if fs[len(fs)-1].Seq != 240 || pics < 180 {
		t.Fatalf("%d pictures recorded, the last %d; want most of 240, up to the last", pics, fs[len(fs)-1].Seq)
	}
	mu.Lock()
	defer mu.Unlock()
	if !asked {
		t.Error("the recorder never asked for a keyframe")
	}
	t.Logf("%d pictures recorded of 240, from %d", pics, fs[0].Seq)
}

// TestSealsPastDays: a room's log of a past day left as a journal (its
// recorder died before the day ended) is sealed into an object by the
// next recorder of the room.
func TestSealsPastDays(t *testing.T) {
	g := newRig(t)
	s := frames.Stream{Room: "lobby"}
	past := time.Now().Add(-48 * time.Hour).Truncate(time.Microsecond)
	ctx := context.Background()
	if err := g.cat.Sealed(ctx, s, segment.Summary{Start: past, End: past.Add(time.Second), Bytes: 1, Frames: 1}); err != nil {
		t.Fatal(err)
	}
	log := index.DayLog(s, past)
	if _, err := g.st.ReadJournal(ctx, log); err != nil {
		t.Fatalf("the past day's log is not a journal: %v", err)
	}
	g.recorder(recorder.NewMemoryLeases().For("a"))
	done := make(chan struct{})
	go func() { defer close(done); g.publishJPEG("lobby", 10, 30, &sent{at: map[uint64]time.Time{}}) }()
	defer func() { <-done }()
	testenv.WaitFor(t, 5*time.Second, "the past day's log sealed", func() error {
		if _, err := g.st.ReadJournal(ctx, log); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("journal still there (%v)", err)
		}
		if _, err := g.st.Read(ctx, log, 0, -1); err != nil {
			return err
		}
		return nil
	})
}
