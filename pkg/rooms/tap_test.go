package rooms_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// seqTap collects what a tap sees.
type seqTap struct {
	mu   sync.Mutex
	seqs []uint64
}

func (s *seqTap) fn(f *frames.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !f.IsOffline() {
		s.seqs = append(s.seqs, f.Seq)
	}
}

func (s *seqTap) got() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seqs)
}

// TestTapSeesEveryFrameInOrder: a tap (a recorder) sees every frame of its
// stream, in order, while a viewer that does not read skips; a tap alone
// keeps the stream subscribed, and Untap lets it go.
func TestTapSeesEveryFrameInOrder(t *testing.T) {
	hub, layer := newMemoryHub(t, rooms.Options{FanoutShards: 2})
	rec := &seqTap{}
	tap, err := hub.Tap(context.Background(), st("lobby"), rec.fn)
	if err != nil {
		t.Fatal(err)
	}
	stuck := join(t, hub, st("lobby")) // never reads
	const n = 200
	for seq := uint64(1); seq <= n; seq++ {
		publish(t, layer, "lobby", seq)
	}
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if got := rec.got(); !slices.Equal(got, want) {
		t.Fatalf("tap saw %d frames %v…, want 1..%d in order", len(got), got[:min(10, len(got))], n)
	}
	testenv.WaitFor(t, 5*time.Second, "the stuck viewer to skip", func() error {
		if stuck.Skipped() == 0 {
			return errors.New("nothing skipped")
		}
		return nil
	})
	hub.Leave(stuck)
	publish(t, layer, "lobby", n+1) // the tap alone keeps the stream subscribed
	if got := rec.got(); got[len(got)-1] != n+1 {
		t.Fatalf("after the viewer left the tap saw %v last", got[len(got)-1])
	}
	hub.Untap(tap)
	hub.Untap(tap) // idempotent
	if s := hub.Stats(); s.Streams != 0 || s.Rooms != 0 {
		t.Fatalf("after Untap: %+v", s)
	}
	publish(t, layer, "lobby", n+2)
	if got := rec.got(); got[len(got)-1] != n+1 {
		t.Fatalf("the tap saw frame %d after Untap", got[len(got)-1])
	}
}

// TestTapCountsAgainstMaxRooms: a tap holds its room like a viewer.
func TestTapCountsAgainstMaxRooms(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{MaxRooms: 1})
	if _, err := hub.Tap(context.Background(), st("a"), func(*frames.Frame) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := hub.Tap(context.Background(), st("b"), func(*frames.Frame) {}); !errors.Is(err, rooms.ErrTooManyRooms) {
		t.Fatalf("second room's tap: %v, want ErrTooManyRooms", err)
	}
	// Another stream of the same room is the same room.
	if _, err := hub.Tap(context.Background(), frames.Stream{Room: "a", Codec: frames.CodecH264}, func(*frames.Frame) {}); err != nil {
		t.Fatalf("the room's H.264 stream: %v", err)
	}
}

// TestStandaloneViewer: a viewer no hub feeds (a player of recordings)
// keeps its codec's discipline: JPEG skips to the newest frames, H.264 to
// the next keyframe, and nothing asks a publisher for a keyframe.
func TestStandaloneViewer(t *testing.T) {
	var notified atomic.Int64
	v := rooms.NewViewer(frames.CodecJPEG, func(*rooms.Viewer) { notified.Add(1) })
	for seq := uint64(1); seq <= 5; seq++ {
		v.Offer(frame(t, seq))
	}
	if notified.Load() != 5 {
		t.Fatalf("notified %d times, want 5", notified.Load())
	}
	var got []uint64
	for f := v.TryNext(); f != nil; f = v.TryNext() {
		got = append(got, f.Seq)
	}
	if !slices.Equal(got, []uint64{4, 5}) || v.Skipped() != 3 {
		t.Fatalf("JPEG viewer took %v, skipped %d; want [4 5], 3", got, v.Skipped())
	}

	p := rooms.NewViewer(frames.CodecH264, nil)
	p.Offer(h264Frame(t, frames.KindH264Config, 1))
	p.Offer(h264Frame(t, frames.KindH264Key, 1))
	for seq := uint64(2); seq <= 20; seq++ {
		p.Offer(h264Frame(t, frames.KindH264Delta, seq))
	}
	p.Offer(h264Frame(t, frames.KindH264Config, 21))
	p.Offer(h264Frame(t, frames.KindH264Key, 21))
	var d decodable
	var kinds []frames.Kind
	for f := p.TryNext(); f != nil; f = p.TryNext() {
		kinds = append(kinds, f.Kind)
		if err := d.take(f); err != nil {
			t.Fatal(err)
		}
	}
	if p.Skipped() == 0 || kinds[len(kinds)-1] != frames.KindH264Key {
		t.Fatalf("H.264 viewer took %v, skipped %d; want a skip to the keyframe", kinds, p.Skipped())
	}
}

// TestSwitchFloor: after SetFloor, JPEG pictures not newer than the floor
// are dropped until a newer one comes; H.264 pictures are never dropped
// (a switch hands over a group, older or not).
func TestSwitchFloor(t *testing.T) {
	take := func(v *rooms.Viewer) (seqs []string) {
		for f := v.TryNext(); f != nil; f = v.TryNext() {
			seqs = append(seqs, fmt.Sprint(f.Seq))
		}
		return seqs
	}
	v := rooms.NewViewer(frames.CodecJPEG, nil)
	v.Offer(frame(t, 5))
	v.Offer(frame(t, 6))
	v.Offer(frame(t, 7))
	v.SetFloor(6)
	if got := take(v); !slices.Equal(got, []string{"7"}) {
		t.Fatalf("with floor 6: %v, want [7]", got)
	}
	v.SetFloor(10)
	v.Offer(frame(t, 9))
	v.Offer(frame(t, 11))
	v.Offer(frame(t, 4)) // after the floor's newer frame, kept
	if got := take(v); !slices.Equal(got, []string{"11", "4"}) {
		t.Fatalf("with floor 10: %v, want [11 4]", got)
	}
	v.SetFloor(300)
	v.Offer(frame(t, 2)) // far below: the publisher counts again, kept
	v.Offer(frame(t, 3))
	if got := take(v); !slices.Equal(got, []string{"2", "3"}) {
		t.Fatalf("with floor 300: %v, want [2 3]", got)
	}
	h := rooms.NewViewer(frames.CodecH264, nil)
	h.SetFloor(10)
	h.Offer(h264Frame(t, frames.KindH264Config, 3))
	h.Offer(h264Frame(t, frames.KindH264Key, 3))
	if got := take(h); !slices.Equal(got, []string{"3", "3"}) {
		t.Fatalf("H.264 with floor 10: %v, want the group [3 3]", got)
	}
}

// TestRequestKeyframeReachesThePublisher: Hub.RequestKeyframe (what a
// recorder starting mid-group calls) reaches the stream's publisher
// through the channel layer, at most once a second.
func TestRequestKeyframeReachesThePublisher(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{})
	cam := newH264Camera(t, hub, 1000)
	hub.RequestKeyframe(camH264)
	waitUntil(t, "the keyframe request", func() bool { return cam.requests.Load() == 1 })
	hub.RequestKeyframe(camH264)
	hub.RequestKeyframe(frames.Stream{Room: "nowhere", Codec: frames.CodecH264}) // unknown here: nothing
	hub.RequestKeyframe(st("cam"))                                               // JPEG: no keyframes
	if n := hub.Stats().KeyframeRequests; n != 1 {
		t.Fatalf("%d requests sent within a second, want 1", n)
	}
}
