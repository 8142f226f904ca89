package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// h264Message is a version-2 H.264 stand-in message of room's layer 0.
func h264Message(room string, k frames.Kind, seq uint64) []byte {
	return testenv.H264Message(room, k, 64, 48, seq, time.Now(), testenv.H264TestPayload(k, seq))
}

// TestH264PublisherChannelAndKeyframeRequests: an H.264 publisher's
// messages travel on video_<room>@h264 and its group is kept in Redis; a
// keyframe request published on video_<room>@key (what a replica whose
// viewer fell behind sends) reaches the publisher's socket as
// {"type":"keyframe"}.
func TestH264PublisherChannelAndKeyframeRequests(t *testing.T) {
	ctx := context.Background()
	ts, rc, sub := lpGatewayOnRedis(t, func(rc *redis.Client) *redis.PubSub { return rc.Subscribe(ctx, "video_cam@h264") })
	pub := testenv.Dial(t, wsURL(ts.URL, "cam", "role=publish"), nil)
	for _, m := range [][]byte{
		h264Message("cam", frames.KindH264Config, 1), h264Message("cam", frames.KindH264Key, 1),
		h264Message("cam", frames.KindH264Delta, 2), h264Message("cam", frames.KindH264Delta, 3),
	} {
		if err := pub.SendBinary(m); err != nil {
			t.Fatal(err)
		}
	}
	want := []frames.Kind{frames.KindH264Config, frames.KindH264Key, frames.KindH264Delta, frames.KindH264Delta}
	for i, k := range want {
		select {
		case m := <-sub.Channel():
			f, err := frames.ParseBinary([]byte(m.Payload), 0, time.Time{}, 0)
			if err != nil || f.Kind != k || f.Room != "cam" {
				t.Fatalf("message %d on the channel: %+v, %v", i, f, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not published", i)
		}
	}
	if n, err := rc.LLen(ctx, "{video_cam@h264}:gop").Result(); err != nil || n != 4 {
		t.Fatalf("group in Redis: %d messages, %v", n, err)
	}
	// A keyframe request, as another replica sends it.
	testenv.WaitFor(t, 5*time.Second, "the replica subscribed to cam's keyframe requests", func() error {
		n, err := rc.PubSubNumSub(ctx, "video_cam@key").Result()
		if err != nil || n["video_cam@key"] != 1 {
			return err
		}
		return nil
	})
	if err := rc.Publish(ctx, "video_cam@key", "keyframe").Err(); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	typ, msg, err := pub.Read(rctx)
	if err != nil || typ != websocket.MessageText || string(msg) != `{"type":"keyframe"}` {
		t.Fatalf("publisher got %v %q, %v; want the keyframe request", typ, msg, err)
	}
	testenv.WaitMetric(t, 5*time.Second, ts.URL, "framecast_keyframe_requests_relayed_total", 1)
}

// TestH264PublisherBadOrder: H.264 messages a viewer could not decode from
// close the publisher with 1007 and say why.
func TestH264PublisherBadOrder(t *testing.T) {
	_, ts := startInProcess(t, nil)
	var h [frames.HeaderSize]byte
	frames.PutHeader(h[:], frames.KindH264Delta, 1, time.Now())
	v1 := append(h[:], 0, 0, 0, 1, 0x41)
	for _, tc := range []struct {
		name, reason string
		msgs         [][]byte
	}{
		{"keyframe without configuration", "does not follow its configuration", [][]byte{h264Message("cam", frames.KindH264Key, 1)}},
		{"configuration of another picture", "does not follow its configuration", [][]byte{
			h264Message("cam", frames.KindH264Config, 1), h264Message("cam", frames.KindH264Key, 2)}},
		{"delta first", "before the layer's first keyframe", [][]byte{h264Message("cam", frames.KindH264Delta, 1)}},
		{"version 1", "come with a layer block", [][]byte{v1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testenv.Dial(t, wsURL(ts.URL, "cam", "role=publish"), nil)
			for _, m := range tc.msgs {
				if err := c.SendBinary(m); err != nil {
					t.Fatal(err)
				}
			}
			lpExpectClose(t, c, websocket.StatusInvalidFramePayloadData, tc.reason)
		})
	}
}
