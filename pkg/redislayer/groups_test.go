package redislayer_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// grFrame is an H.264 stand-in frame of kind k for picture seq.
func grFrame(t testing.TB, k frames.Kind, seq uint64) *frames.Frame {
	t.Helper()
	f, err := frames.ParseBinary(testenv.H264TestMessage(k, seq, time.Now()), 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestGroupOfPicturesAcrossReplicas: a viewer joining an H.264 stream on
// a replica that never carried it is handed the current group of pictures
// from Redis at once (configuration, keyframe, every delta since), then
// the live pictures with none missing or repeated.
func TestGroupOfPicturesAcrossReplicas(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := newReplica(t, r), newReplica(t, r)
	stream := frames.Stream{Room: "cam", Codec: frames.CodecH264}
	pub, err := a.hub.NewPublisher(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var requests atomic.Int64
	pub.OnKeyframe(func() { requests.Add(1) })
	var seq uint64
	send := func() {
		seq++
		if (seq-1)%100 == 0 {
			pub.Send(grFrame(t, frames.KindH264Config, seq))
			pub.Send(grFrame(t, frames.KindH264Key, seq))
			return
		}
		pub.Send(grFrame(t, frames.KindH264Delta, seq))
	}
	for range 40 {
		send()
		// A camera's pace, not a wait: the 41 messages fit the
		// publisher's queue (rooms.PublishQueueFrames) even at once.
		time.Sleep(2 * time.Millisecond)
	}
	testenv.WaitFor(t, 5*time.Second, "the group in Redis", func() error {
		n, err := a.client.LLen(context.Background(), "{video_cam@h264}:gop").Result()
		if err != nil || n != 41 {
			return fmt.Errorf("%d messages, %v", n, err)
		}
		return nil
	})
	// The camera keeps sending while B's viewer joins.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
				send()
			}
		}
	}()
	joined := time.Now()
	v, err := b.hub.Join(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(joined)
	defer b.hub.Leave(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var kinds []frames.Kind
	var last uint64
	first := time.Time{}
	for len(kinds) < 80 {
		f, err := v.Next(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(kinds), err)
		}
		if first.IsZero() {
			first = time.Now()
		}
		kinds = append(kinds, f.Kind)
		switch {
		case len(kinds) == 1 && f.Kind != frames.KindH264Config,
			len(kinds) == 2 && (f.Kind != frames.KindH264Key || f.Seq != 1):
			t.Fatalf("message %d: kind %d seq %d; want the configuration, then keyframe 1", len(kinds), f.Kind, f.Seq)
		case len(kinds) > 2 && f.Seq != last+1:
			t.Fatalf("message %d: picture %d after %d", len(kinds), f.Seq, last)
		}
		last = f.Seq
	}
	close(stop)
	<-done
	t.Logf("join took %v; first message %v after the join began", took, first.Sub(joined))
	if requests.Load() != 0 {
		t.Errorf("%d keyframe requests: the group was there", requests.Load())
	}
	// B now holds the group itself: a second joiner there starts from
	// memory, at the same keyframe.
	v2, err := b.hub.Join(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	defer b.hub.Leave(v2)
	if f, err := v2.Next(ctx); err != nil || f.Kind != frames.KindH264Config {
		t.Fatalf("second joiner: %+v, %v", f, err)
	}
	if f, err := v2.Next(ctx); err != nil || f.Kind != frames.KindH264Key || f.Seq != 1 {
		t.Fatalf("second joiner's keyframe: %+v, %v", f, err)
	}
}

// TestGroupOfPicturesDroppedPastItsBound: a group longer than
// MaxGOPPictures is deleted from Redis, and a cold joiner asks for a
// keyframe instead; the publisher's replica hears the request.
func TestGroupOfPicturesDroppedPastItsBound(t *testing.T) {
	r := testenv.StartRedis(t)
	a, b := newReplica(t, r), newReplica(t, r)
	stream := frames.Stream{Room: "cam", Codec: frames.CodecH264}
	pub, err := a.hub.NewPublisher(stream)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var requests atomic.Int64
	pub.OnKeyframe(func() { requests.Add(1) })
	pub.Send(grFrame(t, frames.KindH264Config, 1))
	pub.Send(grFrame(t, frames.KindH264Key, 1))
	for seq := uint64(2); seq <= rooms.MaxGOPPictures+10; seq++ {
		pub.Send(grFrame(t, frames.KindH264Delta, seq))
		if seq%20 == 0 {
			// Within the publisher's queue (rooms.PublishQueueFrames): a
			// delta it cannot hold would end the group early.
			testenv.WaitFor(t, 5*time.Second, "the publisher's queue drained", func() error {
				if n := a.hub.Stats().Published; n < seq+1 { // the configuration, then pictures 1..seq
					return fmt.Errorf("%d of %d messages published", n, seq+1)
				}
				return nil
			})
		}
	}
	testenv.WaitFor(t, 5*time.Second, "the group deleted", func() error {
		n, err := a.client.Exists(context.Background(), "{video_cam@h264}:gop").Result()
		if err != nil || n != 0 {
			return fmt.Errorf("exists %d, %v", n, err)
		}
		return nil
	})
	v, err := b.hub.Join(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	defer b.hub.Leave(v)
	if v.Pending() {
		t.Fatalf("handed %v with no group to start from", v.TryNext().Kind)
	}
	testenv.WaitFor(t, 5*time.Second, "the keyframe request at the publisher", func() error {
		if requests.Load() == 0 {
			return fmt.Errorf("none")
		}
		return nil
	})
}
