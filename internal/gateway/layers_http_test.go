package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// Tests of snapshot.jpg?width=N and stream.mjpg?width=N (issue 13 item 6),
// helpers prefixed "lh".

// lhWidths are the publisher's layers: 1280×720, 640×360, 320×180.
var lhWidths = []int{1280, 640, 320}

// lhCases: the width asked for and the layer width served.
var lhCases = []struct{ query, want int }{
	{0, 1280}, // no width: the main layer
	{1, 320},
	{320, 320},
	{321, 640},
	{640, 640},
	{641, 1280},
	{1280, 1280},
	{5000, 1280}, // none wide enough: the widest
}

func lhQuery(width int) string {
	if width == 0 {
		return ""
	}
	return "?width=" + strconv.Itoa(width)
}

// lhPublish starts a publisher of room on the gateway at base sending the
// three layers of lhWidths, 10 pictures a second.
func lhPublish(t *testing.T, base, room string) {
	t.Helper()
	c := testenv.Dial(t, soWS(base, room, "role=publish"), nil)
	c.ReadUntilClosed()
	c.PublishLayers(t, 100*time.Millisecond, testenv.TestLayers(t, lhWidths...))
}

// lhDecodedWidth decodes a JPEG and returns its width.
func lhDecodedWidth(b []byte) (int, error) {
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		return 0, fmt.Errorf("not a JPEG: %w", err)
	}
	return img.Bounds().Dx(), nil
}

// lhSnapshotWidth GETs room's snapshot with the width query and returns the
// decoded width of the image served.
func lhSnapshotWidth(base, room string, width int) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/video/"+room+"/snapshot.jpg"+lhQuery(width), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", resp.Status, b)
	}
	return lhDecodedWidth(b)
}

// lhMJPEG opens room's MJPEG stream with the width query and returns a
// function reading the decoded width of each next part.
func lhMJPEG(t *testing.T, base, room string, width int) func() (int, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/video/"+room+"/stream.mjpg"+lhQuery(width), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET stream.mjpg%s: %s", lhQuery(width), resp.Status)
	}
	mr := multipart.NewReader(resp.Body, "frame")
	return func() (int, error) {
		p, err := mr.NextPart()
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return 0, err
		}
		return lhDecodedWidth(b)
	}
}

// TestSnapshotAndMJPEGServeTheLayerAsked: a publisher on replica A sends
// three layers of real JPEGs; on A and on replica B (one real Redis) each
// width asked gets a JPEG that decodes at the layer width the rule picks,
// from snapshot.jpg and from stream.mjpg.
func TestSnapshotAndMJPEGServeTheLayerAsked(t *testing.T) {
	r := testenv.StartRedis(t)
	a := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	b := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	a.WaitReady(t, 10*time.Second)
	b.WaitReady(t, 10*time.Second)
	lhPublish(t, a.URL(), "cam")

	for _, g := range []struct {
		name string
		gw   *testenv.Gateway
	}{{"publisher's replica", a}, {"other replica", b}} {
		t.Run(g.name, func(t *testing.T) {
			// B learns the layer list and the layers' frames through Redis.
			testenv.WaitFor(t, 10*time.Second, "the smallest layer's snapshot", func() error {
				w, err := lhSnapshotWidth(g.gw.URL(), "cam", 1)
				if err == nil && w != 320 {
					err = fmt.Errorf("width=1 served %d pixels wide", w)
				}
				return err
			})
			for _, tc := range lhCases {
				got, err := lhSnapshotWidth(g.gw.URL(), "cam", tc.query)
				if err != nil || got != tc.want {
					t.Errorf("snapshot.jpg%s: %d pixels wide (%v), want %d", lhQuery(tc.query), got, err, tc.want)
				}
			}
			for _, tc := range lhCases {
				next := lhMJPEG(t, g.gw.URL(), "cam", tc.query)
				for i := range 2 { // the first part (from memory or the cache) and a live one
					got, err := next()
					if err != nil || got != tc.want {
						t.Errorf("stream.mjpg%s part %d: %d pixels wide (%v), want %d", lhQuery(tc.query), i, got, err, tc.want)
					}
				}
			}
		})
	}
}

// TestMJPEGWidthFollowsLayersThatAppearLater: a stream asking for 320
// pixels opened before the room is live gets the main layer (all there
// is), and moves to the 320-pixel layer once the publisher sends layers.
func TestMJPEGWidthFollowsLayersThatAppearLater(t *testing.T) {
	_, ts := soInProcess(t, nil)
	early := testenv.Dial(t, soWS(ts.URL, "late", "role=publish"), nil)
	early.ReadUntilClosed()
	// A one-layer publisher first: the stream's only choice is the main layer.
	main := early.Publish(t, 100*time.Millisecond, false, func(uint64) []byte { return soJPEG(t, 1280, 720, 1, 0) })
	next := lhMJPEG(t, ts.URL, "late", 320)
	if w, err := next(); err != nil || w != 1280 {
		t.Fatalf("first part: %d pixels wide (%v), want the main layer's 1280", w, err)
	}
	main.Stop()
	lhPublish(t, ts.URL, "late")
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, err := next()
		if err != nil {
			t.Fatal(err)
		}
		if w == 320 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d pixels wide 10 s after the room got layers", w)
		}
	}
}

// TestBadWidthIs400: a width that is not a whole number of pixels from 1
// to 65535 gets 400 with a message saying so, on both endpoints.
func TestBadWidthIs400(t *testing.T) {
	_, ts := soInProcess(t, nil)
	for _, path := range []string{"snapshot.jpg", "stream.mjpg"} {
		for _, q := range []string{"width=", "width=abc", "width=0", "width=-5", "width=1.5", "width=65536", "width=1&width=2"} {
			resp, body := soGet(t, ts.URL+"/video/cam/"+path+"?"+q)
			want := "width must be a whole number of pixels from 1 to 65535"
			if strings.Contains(q, "&") {
				want = "width is given 2 times"
			}
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), want) {
				t.Errorf("GET %s?%s: %s %q, want 400 saying %q", path, q, resp.Status, body, want)
			}
		}
	}
}
