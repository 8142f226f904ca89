package playback_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/playback"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

var t0 = time.Date(2026, 12, 7, 14, 3, 0, 0, time.UTC)

func newLibrary(t *testing.T) (*playback.Library, *store.Dir) {
	t.Helper()
	st, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	cat := index.New(st, &index.Options{Now: func() time.Time { return now }})
	return &playback.Library{Store: st, Catalog: cat}, st
}

func readAll(t *testing.T, r *playback.Reader) []*frames.Frame {
	t.Helper()
	var out []*frames.Frame
	for {
		f, err := r.Next(context.Background())
		if errors.Is(err, playback.ErrCaughtUp) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
}

// TestSeekJPEG: a seek starts at the last JPEG at or before the time and
// reads on across segments, into the open one, exactly as recorded.
func TestSeekJPEG(t *testing.T) {
	lib, _ := newLibrary(t)
	cam := frames.Stream{Room: "cam"}
	fs := recordtest.JPEG(t, "cam", t0, 300, 100*time.Millisecond, 1) // 30 s: three segments, the last open
	recordtest.Record(t, lib.Store, lib.Catalog, cam, fs, true)
	for _, tc := range []struct {
		at   time.Time
		want uint64 // first frame's sequence number
	}{
		{t0, 1},
		{t0.Add(12340 * time.Millisecond), 124},
		{t0.Add(-time.Minute), 1}, // before any footage: the first
		{t0.Add(29950 * time.Millisecond), 300},
	} {
		r, err := lib.Seek(context.Background(), cam, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, r)
		if len(got) == 0 || got[0].Seq != tc.want {
			t.Fatalf("seek to %v: first frame %v, want seq %d", tc.at, got[:min(1, len(got))], tc.want)
		}
		want := fs[tc.want-1:]
		if len(got) != len(want) {
			t.Fatalf("seek to %v: %d frames, want %d", tc.at, len(got), len(want))
		}
		for i, f := range got {
			w := want[i]
			if f.Seq != w.Seq || !f.Captured.Equal(w.Captured) || string(f.Payload) != string(w.Payload) || f.Room != "cam" {
				t.Fatalf("seek to %v: frame %d is %d@%v, want %d@%v", tc.at, i, f.Seq, f.Captured, w.Seq, w.Captured)
			}
		}
	}
	if _, err := lib.Seek(context.Background(), cam, t0.Add(10*time.Minute)); !errors.Is(err, playback.ErrNoFootage) {
		t.Fatalf("seek past the footage: %v, want ErrNoFootage", err)
	}
}

// TestSeekH264: a seek into the middle of a group starts at its
// configuration and keyframe, whichever segment and part hold them.
func TestSeekH264(t *testing.T) {
	lib, _ := newLibrary(t)
	clip := testenv.MakeH264Clip(t, 64, 48, 240, 60) // 8 s at 30 fps, a keyframe every 2 s
	h := frames.Stream{Room: "cam", Codec: frames.CodecH264}
	fs := recordtest.H264(t, "cam", clip, t0, time.Second/30, 1)
	recordtest.Record(t, lib.Store, lib.Catalog, h, fs, false)
	at := t0.Add(3500 * time.Millisecond) // picture 106, in the group from 61 (t0+2 s)
	r, err := lib.Seek(context.Background(), h, at)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) < 2 || got[0].Kind != frames.KindH264Config || got[1].Kind != frames.KindH264Key || got[1].Seq != 61 {
		t.Fatalf("seek to 3.5 s starts with %v %v", got[0].Kind, got[1].Seq)
	}
	if last := got[len(got)-1]; last.Seq != 240 {
		t.Fatalf("read to %d, want 240", last.Seq)
	}
}

// TestPlayPacesAndHandsOverTheGroup: Play hands the viewer what it needs
// for the picture at the time sought at once, then frames at capture pace,
// and returns ErrCaughtUp at the end of the footage.
func TestPlayPacesAndHandsOverTheGroup(t *testing.T) {
	lib, _ := newLibrary(t)
	clip := testenv.MakeH264Clip(t, 64, 48, 90, 30)
	h := frames.Stream{Room: "cam", Codec: frames.CodecH264}
	fs := recordtest.H264(t, "cam", clip, t0, 20*time.Millisecond, 1) // 90 pictures in 1.8 s
	recordtest.Record(t, lib.Store, lib.Catalog, h, fs, false)
	at := t0.Add(1300 * time.Millisecond) // picture 66; its group starts at 61
	r, err := lib.Seek(context.Background(), h, at)
	if err != nil {
		t.Fatal(err)
	}
	v := rooms.NewViewer(frames.CodecH264, nil)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- playback.Play(context.Background(), r, at, start, v, true) }()
	var got []*frames.Frame
	var lastAt time.Duration
	for len(got) < 1+90-60 { // the configuration, pictures 61..90
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		f, err := v.Next(ctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d frames: %v", len(got), err)
		}
		got = append(got, f)
		lastAt = time.Since(start)
	}
	if got[0].Kind != frames.KindH264Config || got[1].Seq != 61 || got[6].Seq != 66 {
		t.Fatalf("started with %v %d … %d", got[0].Kind, got[1].Seq, got[6].Seq)
	}
	// Pictures 67..90 follow at 20 ms apiece: about 0.48 s after the seek.
	if lastAt < 400*time.Millisecond {
		t.Fatalf("the last picture came %v after the seek: not paced", lastAt)
	}
	if v.Skipped() != 0 {
		t.Fatalf("skipped %d", v.Skipped())
	}
	select {
	case err := <-done:
		if !errors.Is(err, playback.ErrCaughtUp) {
			t.Fatalf("Play ended with %v, want ErrCaughtUp", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Play did not end at the end of the footage")
	}
}

// TestDamagedSegmentIsSkipped: a sealed segment cut short on disk (a
// recorder killed mid-write that nobody recovered, or damage) is played up
// to the damage, then the next segment; nothing fails.
func TestDamagedSegmentIsSkipped(t *testing.T) {
	lib, st := newLibrary(t)
	cam := frames.Stream{Room: "cam"}
	fs := recordtest.JPEG(t, "cam", t0, 250, 100*time.Millisecond, 1) // 25 s: segments at 0, 10, 20 s
	recordtest.Record(t, lib.Store, lib.Catalog, cam, fs, false)
	obj := filepath.Join(st.Root(), "objects", index.SegmentObject(cam, t0.Add(10*time.Second)))
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(obj, data[:len(data)*2/3], 0o644); err != nil { // its index box and last parts gone
		t.Fatal(err)
	}
	r, err := lib.Seek(context.Background(), cam, t0)
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, r)
	if len(got) < 150 || got[len(got)-1].Seq != 250 {
		t.Fatalf("read %d frames, the last %d; want most of them and the last segment whole", len(got), got[len(got)-1].Seq)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq <= got[i-1].Seq {
			t.Fatalf("frames out of order at %d", i)
		}
	}
}

// TestFrameAtAndClip: a snapshot at a time is the JPEG shown then; a clip
// of a range is an MP4 of it, H.264 when recorded.
func TestFrameAtAndClip(t *testing.T) {
	lib, _ := newLibrary(t)
	cam := frames.Stream{Room: "cam"}
	recordtest.Record(t, lib.Store, lib.Catalog, cam, recordtest.JPEG(t, "cam", t0, 100, 100*time.Millisecond, 1), false)
	f, err := lib.FrameAt(context.Background(), "cam", t0.Add(5050*time.Millisecond))
	if err != nil || f.Seq != 51 {
		t.Fatalf("FrameAt 5.05 s: %v, %v; want frame 51", f, err)
	}
	if _, err := lib.FrameAt(context.Background(), "cam", t0.Add(time.Hour)); !errors.Is(err, playback.ErrNoFootage) {
		t.Fatalf("FrameAt with no footage: %v", err)
	}
	c, err := lib.Clip(context.Background(), "cam", t0.Add(2*time.Second), t0.Add(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.Frames != 21 {
		t.Fatalf("JPEG clip of 2 s: %d frames, want 21", c.Frames)
	}
	clip := testenv.MakeH264Clip(t, 64, 48, 60, 30)
	h := frames.Stream{Room: "cam", Codec: frames.CodecH264}
	recordtest.Record(t, lib.Store, lib.Catalog, h, recordtest.H264(t, "cam", clip, t0, 100*time.Millisecond, 1), false)
	c, err = lib.Clip(context.Background(), "cam", t0.Add(3500*time.Millisecond), t0.Add(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if c.Frames != 21 || !c.Start.Equal(t0.Add(3*time.Second)) { // from the keyframe at 3 s
		t.Fatalf("H.264 clip: %d frames from %v", c.Frames, c.Start)
	}
}
