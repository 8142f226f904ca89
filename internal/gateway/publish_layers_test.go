package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestLayeredPublisherChannels: a publisher's layers each travel on their
// own Redis channel, the main layer as version 1 on video_<room> (what
// older replicas read), the others as version 2 naming the room.
func TestLayeredPublisherChannels(t *testing.T) {
	ts, _, sub := lpGatewayOnRedis(t, func(rc *redis.Client) *redis.PubSub { return rc.PSubscribe(context.Background(), "video_cam*") })
	jpegs := testenv.LayerJPEGs(t, 640, 320, 160)
	pub := testenv.Dial(t, wsURL(ts.URL, "cam", "role=publish"), nil)
	pub.ReadUntilClosed()
	p := pub.PublishLayered(t, 20*time.Millisecond, "cam", jpegs)
	defer p.Stop()

	seen := map[string][]byte{}
	deadline := time.After(10 * time.Second)
	for len(seen) < 3 {
		select {
		case m := <-sub.Channel():
			seen[m.Channel] = []byte(m.Payload)
		case <-deadline:
			t.Fatalf("channels seen: %v", keys(seen))
		}
	}
	main := seen["video_cam"]
	if main == nil || main[0] != frames.Version {
		t.Fatalf("video_cam carries %v, want version-1 messages", head(main))
	}
	f, err := frames.ParseBinary(main, 0, time.Time{}, 0)
	if err != nil || !bytes.Equal(f.Payload, jpegs[0]) {
		t.Fatalf("main layer message: %v", err)
	}
	for i := 1; i < 3; i++ {
		m := seen[fmt.Sprintf("video_cam@%d", i)]
		lb, err := frames.ParseLayerBlock(m)
		if err != nil || lb.Room != "cam" || lb.Layer != i || lb.Width != []int{640, 320, 160}[i] {
			t.Fatalf("layer %d message: %+v, %v", i, lb, err)
		}
		f, err := frames.ParseBinary(m, 0, time.Time{}, 0)
		if err != nil || !bytes.Equal(f.Payload, jpegs[i]) {
			t.Fatalf("layer %d payload: %v", i, err)
		}
	}
}

// lpGatewayOnRedis starts an in-process gateway on a real Redis, and a
// Redis client of its own subscribed (confirmed) with subscribe, to watch
// what the gateway publishes.
func lpGatewayOnRedis(t *testing.T, subscribe func(*redis.Client) *redis.PubSub) (*httptest.Server, *redis.Client, *redis.PubSub) {
	t.Helper()
	r := testenv.StartRedis(t)
	_, ts := startInProcess(t, func(c *gateway.Config) { c.RedisURL = r.URL() })
	rc := redis.NewClient(&redis.Options{Addr: r.Addr()})
	t.Cleanup(func() { rc.Close() })
	sub := subscribe(rc)
	t.Cleanup(func() { sub.Close() })
	if _, err := sub.Receive(context.Background()); err != nil {
		t.Fatal(err)
	}
	return ts, rc, sub
}

// lpExpectClose reads c until it ends and fails the test unless it was
// closed with code and a reason containing reason.
func lpExpectClose(t testing.TB, c *testenv.Client, code websocket.StatusCode, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	for err == nil {
		_, _, err = c.Read(ctx)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != code || !strings.Contains(ce.Reason, reason) {
		t.Fatalf("connection ended with %v, want close %d with %q", err, code, reason)
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func head(b []byte) []byte { return b[:min(len(b), 12)] }

// TestLayeredPublisherRateCountsPictures: GATEWAY_PUBLISH_RATE counts
// captured pictures, so 3 layers at 20 pictures/s pass a limit of 30/s;
// extra messages of a picture beyond its layers are counted.
func TestLayeredPublisherRateCountsPictures(t *testing.T) {
	_, ts := startInProcess(t, func(c *gateway.Config) { c.PublishRate, c.PublishBurst = 30, 30 })
	jpegs := testenv.LayerJPEGs(t, 320, 160, 80)
	pub := testenv.Dial(t, wsURL(ts.URL, "cam", "role=publish"), nil)
	closed := pub.ReadUntilClosed()
	start := time.Now()
	p := pub.PublishLayered(t, 50*time.Millisecond, "cam", jpegs)
	testenv.WaitFor(t, 10*time.Second, "40 pictures sent", func() error {
		if p.Seq() < 40 {
			return fmt.Errorf("%d sent", p.Seq())
		}
		return nil
	})
	p.Stop()
	t.Logf("%d pictures of 3 layers in %v", p.Seq(), time.Since(start).Round(time.Millisecond))
	if n := testenv.Metric(t, ts.URL, `framecast_rejected_total{reason="rate_limited"}`); n != 0 {
		t.Fatalf("%v layer messages dropped by the publish rate", n)
	}
	select {
	case err := <-closed:
		t.Fatalf("publisher closed: %v", err)
	default:
	}

	// The same layer twice for one picture is not free: 40 copies of
	// layer 1 at once exceed the burst, and are dropped or close the
	// connection; the gateway counts them either way.
	spam := testenv.Dial(t, wsURL(ts.URL, "spam", "role=publish"), nil)
	spamClosed := spam.ReadUntilClosed()
	now := time.Now()
	_ = spam.SendBinary(frames.AppendLayered(nil, "spam", 0, 320, 180, 1, now, jpegs[0]))
	for range 40 {
		if spam.SendBinary(frames.AppendLayered(nil, "spam", 1, 160, 90, 1, now, jpegs[1])) != nil {
			break
		}
	}
	testenv.WaitFor(t, 5*time.Second, "the repeated layer counted", func() error {
		dropped := testenv.Metric(t, ts.URL, `framecast_rejected_total{reason="rate_limited"}`)
		exceeded := testenv.Metric(t, ts.URL, `framecast_rejected_total{reason="rate_exceeded"}`)
		if dropped+exceeded == 0 {
			return fmt.Errorf("nothing counted")
		}
		return nil
	})
	_ = spamClosed
}

// TestLayeredPublisherBadInput: each malformed layered message closes its
// publisher with 1007 and a reason that says what is wrong; the room's
// other publisher and its viewer carry on.
func TestLayeredPublisherBadInput(t *testing.T) {
	_, ts := startInProcess(t, nil)
	jpg := testenv.JPEG(t, 64, 36, 1, 0)
	viewer := testenv.Dial(t, wsURL(ts.URL, "cam", "role=view&format=binary"), nil)
	good := testenv.Dial(t, wsURL(ts.URL, "cam", "role=publish"), nil)
	good.ReadUntilClosed()
	gp := good.PublishLayered(t, 20*time.Millisecond, "cam", [][]byte{jpg})
	defer gp.Stop()
	now := time.Now()
	layer4 := frames.AppendLayered(nil, "cam", 1, 64, 36, 1, now, jpg)
	layer4[4] = frames.MaxLayers
	nested := frames.AppendLayered(nil, "cam", 1, 64, 36, 1, now, jpg)
	nested = append(nested[:11+3:11+3], nested...)
	for _, tc := range []struct {
		name, reason string
		msg          []byte
	}{
		{"another room", `names room "other", the URL room "cam"`, frames.AppendLayered(nil, "other", 0, 64, 36, 1, now, jpg)},
		{"layer 4", "at most 4 layers", layer4},
		{"nested block", "followed by a version-1 header", nested},
		{"offline event", "not offline events", frames.OfflineLayer("cam", 1, 1, now).BinaryV2()},
		{"not a JPEG", "not a JPEG", frames.AppendLayered(nil, "cam", 1, 64, 36, 1, now, []byte("plain text"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := testenv.Dial(t, wsURL(ts.URL, "cam", "role=publish"), nil)
			if err := bad.SendBinary(tc.msg); err != nil {
				t.Fatal(err)
			}
			lpExpectClose(t, bad, websocket.StatusInvalidFramePayloadData, tc.reason)
			sent := gp.Seq()
			lpReadUntil(t, viewer, "a frame after the bad message", func(f *frames.Frame) bool { return f.Seq > sent })
		})
	}
}

// TestLayeredPublisherOffline: when a layered publisher leaves, the main
// layer's viewers hear the room went offline (pkg/rooms tests the other
// layers' events).
func TestLayeredPublisherOffline(t *testing.T) {
	_, ts := startInProcess(t, nil)
	pub := testenv.Dial(t, wsURL(ts.URL, "cam", "role=publish"), nil)
	pub.ReadUntilClosed()
	p := pub.PublishLayered(t, 20*time.Millisecond, "cam", testenv.LayerJPEGs(t, 320, 160))
	viewer := testenv.Dial(t, wsURL(ts.URL, "cam", "role=view&format=binary"), nil)
	if f, err := viewer.ReadFrame(5 * time.Second); err != nil || f.IsOffline() {
		t.Fatalf("first frame: %+v, %v", f, err)
	}
	p.Stop()
	_ = pub.CloseNow()
	lpReadUntil(t, viewer, "the offline event", func(f *frames.Frame) bool { return f.IsOffline() })
}

// lpReadUntil reads c's binary messages (offline events included) until
// ok says yes, for at most 5 s. (A read that times out closes a
// coder/websocket connection, so the deadline is one context for all.)
func lpReadUntil(t testing.TB, c *testenv.Client, what string, ok func(*frames.Frame) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok(f) {
			return
		}
	}
}
