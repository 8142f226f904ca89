package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/jpeg"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestSenderLayersAcrossReplicas: the real sender with three layers
// publishes to one gateway process; viewers on another, sharing a real
// Redis, ask for each width (and for none) and get JPEGs that decode at
// the width their layer has.
func TestSenderLayersAcrossReplicas(t *testing.T) {
	r := testenv.StartRedis(t)
	a := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	b := testenv.StartGateway(t, "GATEWAY_REDIS_URL="+r.URL())
	a.WaitReady(t, 10*time.Second)
	b.WaitReady(t, 10*time.Second)
	testenv.Start(t, "sender", testenv.Binary(t, "sender"), []string{
		"SENDER_URL=" + a.WSURL(), "SENDER_ROOM=cam", "SENDER_SOURCE=test", "SENDER_FPS=10",
		"SENDER_LAYERS=1280,640,320", "SENDER_STATUS_INTERVAL=0",
	})
	for _, c := range []struct {
		query       string
		width, v2   int // width wanted; v2: 1 if version-2 messages are expected
		layerWanted int
	}{
		{"role=view&format=binary&v=2&width=1280", 1280, 1, 0},
		{"role=view&format=binary&v=2&width=600", 640, 1, 1},
		{"role=view&format=binary&v=2&width=320", 320, 1, 2},
		{"role=view&format=binary&v=2&width=100", 320, 1, 2},
		{"role=view&format=binary&layer=1", 640, 0, 1},
		{"role=view&format=binary", 1280, 0, 0}, // no choice: the main layer, version 1
		{"role=view&format=json&width=320", 320, 0, 2},
	} {
		t.Run(c.query, func(t *testing.T) {
			v := testenv.Dial(t, b.WSURL()+"/ws/video/cam/?"+c.query, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			// The first frames may come from the main layer while B learns
			// the room's layers (a viewer that dialled before the sender's
			// first frame): read until one of the width wanted arrives.
			for {
				typ, msg, err := v.Read(ctx)
				if err != nil {
					t.Fatalf("no frame %d wide: %v", c.width, err)
				}
				var f *frames.Frame
				if strings.Contains(c.query, "format=json") {
					f, err = testenv.ParseJSONFrame(msg)
				} else if typ == 2 {
					f, err = frames.ParseBinary(msg, 0, time.Time{}, 0)
				} else {
					continue // a control message
				}
				if err != nil {
					t.Fatal(err)
				}
				if f.IsOffline() {
					continue
				}
				cfg, err := jpeg.DecodeConfig(bytes.NewReader(f.Payload))
				if err != nil {
					t.Fatalf("frame %d does not decode: %v", f.Seq, err)
				}
				if cfg.Width != c.width {
					continue
				}
				if c.v2 == 1 {
					lb, err := frames.ParseLayerBlock(msg)
					if err != nil || lb.Room != "cam" || lb.Layer != c.layerWanted || lb.Width != c.width {
						t.Fatalf("layer block %+v, %v; want layer %d, %d wide, room cam", lb, err, c.layerWanted, c.width)
					}
				} else if typ == 2 && msg[0] != frames.Version {
					t.Fatalf("a version-%d message to a version-1 viewer", msg[0])
				}
				t.Logf("%s: %d×%d JPEG, frame %d", c.query, cfg.Width, cfg.Height, f.Seq)
				return
			}
		})
	}
	if err := testenv.HTTPStatus(b.URL()+"/video/cam/snapshot.jpg?width=320", 200); err != nil {
		t.Fatal(fmt.Errorf("snapshot of the small layer on B: %w", err))
	}
}
