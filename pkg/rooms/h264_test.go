package rooms_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// camH264 is the H.264 main layer of room cam.
var camH264 = frames.Stream{Room: "cam", Codec: frames.CodecH264}

func h264Frame(t testing.TB, k frames.Kind, seq uint64) *frames.Frame {
	t.Helper()
	f, err := frames.ParseBinary(testenv.H264TestMessage(k, seq, epoch.Add(time.Duration(seq)*time.Millisecond)), 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// h264Camera publishes a stream of groups of pictures: configuration and
// keyframe at seq 1, 1+gop, ..., deltas between; a keyframe request makes
// the next picture a keyframe.
type h264Camera struct {
	t   testing.TB
	p   *rooms.Publisher
	gop uint64
	seq uint64

	keyWanted atomic.Bool
	requests  atomic.Int64
}

func newH264Camera(t testing.TB, h *rooms.Hub, gop uint64) *h264Camera {
	p, err := h.NewPublisher(camH264)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	c := &h264Camera{t: t, p: p, gop: gop}
	p.OnKeyframe(func() { c.keyWanted.Store(true); c.requests.Add(1) })
	return c
}

// sent counts messages the camera sent.
func (c *h264Camera) next() int {
	c.seq++
	if wanted := c.keyWanted.Swap(false); wanted || (c.seq-1)%c.gop == 0 {
		c.p.Send(h264Frame(c.t, frames.KindH264Config, c.seq))
		c.p.Send(h264Frame(c.t, frames.KindH264Key, c.seq))
		return 2
	}
	c.p.Send(h264Frame(c.t, frames.KindH264Delta, c.seq))
	return 1
}

// send sends n pictures and waits until the hub has offered all their
// messages to v (the publisher's queue is drained by its own goroutine).
func (c *h264Camera) send(v *rooms.Viewer, n int) {
	c.t.Helper()
	want := v.Offered()
	for i := range n {
		want += uint64(c.next())
		if i%20 == 19 || i == n-1 { // within the publisher's queue (PublishQueueFrames)
			waitUntil(c.t, "the pictures offered", func() bool { return v.Offered() >= want })
		}
	}
}

// decodable checks what a viewer received is what a decoder can use: it
// starts with a configuration and a keyframe, and every delta follows the
// picture before it.
type decodable struct {
	configured, keyed bool
	last              uint64
}

func (d *decodable) take(f *frames.Frame) error {
	switch f.Kind {
	case frames.KindH264Config:
		d.configured = true
		return nil
	case frames.KindH264Key:
		if !d.configured {
			return fmt.Errorf("keyframe %d before any configuration", f.Seq)
		}
		if d.keyed && f.Seq <= d.last {
			return fmt.Errorf("keyframe %d after picture %d", f.Seq, d.last)
		}
		d.keyed, d.last = true, f.Seq
	case frames.KindH264Delta:
		if !d.keyed || f.Seq != d.last+1 {
			return fmt.Errorf("delta %d after picture %d (keyed %v): undecodable", f.Seq, d.last, d.keyed)
		}
		d.last = f.Seq
	}
	return nil
}

// TestH264JoinersGetTheGroupThenLivePictures: viewers joining while the
// camera runs each get a decodable stream (the current group, then live
// pictures, none twice, none missing).
func TestH264JoinersGetTheGroupThenLivePictures(t *testing.T) {
	h, _ := newMemoryHub(t, rooms.Options{FanoutShards: 2})
	cam := newH264Camera(t, h, 30)
	// A first viewer keeps the replica subscribed, as a live room would be.
	first := join(t, h, camH264)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cam.next()
			time.Sleep(time.Millisecond) // pacing the camera, not waiting for anything
		}
	}()
	errs := make(chan error, 40)
	var jwg sync.WaitGroup
	for i := range 40 {
		time.Sleep(3 * time.Millisecond) // spreads the joins over the camera's groups; no condition to wait for
		jwg.Add(1)
		go func() {
			defer jwg.Done()
			v := join(t, h, camH264)
			defer h.Leave(v)
			var d decodable
			for n := 0; n < 60; n++ {
				f, err := v.Next(ctx)
				if err != nil {
					errs <- fmt.Errorf("viewer %d: %v", i, err)
					return
				}
				if err := d.take(f); err != nil {
					errs <- fmt.Errorf("viewer %d, message %d: %v", i, n, err)
					return
				}
			}
			if v.Skipped() != 0 {
				errs <- fmt.Errorf("viewer %d skipped %d pictures while keeping up", i, v.Skipped())
			}
		}()
	}
	go func() {
		for range first.Wake() {
			for first.TryNext() != nil {
			}
		}
	}()
	joiners := make(chan struct{})
	go func() { jwg.Wait(); close(joiners) }()
	select {
	case <-joiners: // each checked 60 messages, or failed
	case <-time.After(20 * time.Second):
		t.Fatal("joiners did not finish")
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestH264ViewerBehindResumesAtAKeyframe: a viewer that stops reading is
// skipped to the next keyframe, never handed a broken delta; its skips are
// counted and one keyframe request reaches the camera.
func TestH264ViewerBehindResumesAtAKeyframe(t *testing.T) {
	h, _ := newMemoryHub(t, rooms.Options{})
	cam := newH264Camera(t, h, 1000) // keyframes only when asked
	v := join(t, h, camH264)
	// No group yet: the joiner asked for a keyframe.
	waitUntil(t, "the joiner's keyframe request", func() bool { return cam.requests.Load() == 1 })
	var d decodable
	cam.send(v, 4) // seq 1, the keyframe asked for, then 3 deltas
	for v.Pending() {
		if err := d.take(v.TryNext()); err != nil {
			t.Fatal(err)
		}
	}
	// Stop reading: 20 pictures arrive.
	cam.send(v, 20)
	if v.Skipped() == 0 {
		t.Fatal("nothing skipped")
	}
	// Within a second of the joiner's request: sent once the second is up.
	waitUntil(t, "a keyframe request", func() bool { return cam.requests.Load() == 2 })
	// The queue holds nothing undecodable, and deltas after the skip are
	// dropped until the requested keyframe arrives.
	for v.Pending() {
		f := v.TryNext()
		if err := d.take(f); err != nil {
			t.Fatalf("after falling behind: %v", err)
		}
	}
	cam.send(v, 2) // the keyframe asked for, a delta
	var got []frames.Kind
	for v.Pending() {
		f := v.TryNext()
		got = append(got, f.Kind)
		if err := d.take(f); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 3 || got[0] != frames.KindH264Config || got[1] != frames.KindH264Key || got[2] != frames.KindH264Delta {
		t.Fatalf("after the keyframe: kinds %v, want config, key, delta", got)
	}
	// Requests are rate-limited per stream: more skips within a second
	// ask no more.
	cam.send(v, 20)
	if n := cam.requests.Load(); n != 2 {
		t.Fatalf("%d keyframe requests, want 2 (at most one a second)", n)
	}
	if st := h.Stats(); st.KeyframeRequests != 2 {
		t.Fatalf("Stats.KeyframeRequests = %d", st.KeyframeRequests)
	}
}

// TestH264GroupBounded: a group longer than MaxGOPPictures is not kept;
// a joiner then waits for the next keyframe instead of a huge backlog.
func TestH264GroupBounded(t *testing.T) {
	h, _ := newMemoryHub(t, rooms.Options{})
	cam := newH264Camera(t, h, 10000)
	keep := join(t, h, camH264)
	defer h.Leave(keep)
	waitUntil(t, "the first viewer's keyframe request", func() bool { return cam.requests.Load() == 1 })
	cam.send(keep, rooms.MaxGOPPictures+5)
	v := join(t, h, camH264)
	if v.Pending() {
		t.Fatalf("joiner handed %v though the group exceeded %d pictures", v.TryNext().Kind, rooms.MaxGOPPictures)
	}
	waitUntil(t, "the joiner's keyframe request", func() bool { return cam.requests.Load() == 2 })
	cam.send(v, 1) // the keyframe asked for
	if f := v.TryNext(); f == nil || f.Kind != frames.KindH264Config {
		t.Fatalf("after the keyframe: %v", f)
	}
	if f := v.TryNext(); f == nil || f.Kind != frames.KindH264Key {
		t.Fatalf("after the configuration: %v", f)
	}
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}
