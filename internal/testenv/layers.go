package testenv

import (
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// TestLayer is one layer a layered test publisher sends: its index, and
// one real JPEG of its size sent for every picture.
type TestLayer struct {
	Index int
	JPEG  []byte
}

// TestLayers returns real JPEGs for the given widths, as a layered sender
// encodes them: layer i is widths[i] wide, 9/16 as high (1280 → 1280×720).
// Encoding a large test image takes a while: build them once per test.
func TestLayers(t testing.TB, widths ...int) []TestLayer {
	t.Helper()
	out := make([]TestLayer, len(widths))
	for i, w := range widths {
		out[i] = TestLayer{Index: i, JPEG: JPEG(t, w, w*9/16, i+1, 0)}
	}
	return out
}

// PublishLayers starts sending, every period, one version-2 message per
// layer (frames.AppendLayered, in the order given, with the picture's
// sequence number and capture time and no room in the block), as a sender
// with SENDER_LAYERS does. Each layer's width and height are read from
// its JPEG. Like Publish, it stops when the test ends.
func (c *Client) PublishLayers(t testing.TB, every time.Duration, layers []TestLayer) *Publisher {
	t.Helper()
	type sized struct {
		TestLayer
		w, h int
	}
	all := make([]sized, len(layers))
	for i, l := range layers {
		w, h, err := frames.JPEGSize(l.JPEG)
		if err != nil {
			t.Fatalf("layer %d: %v", l.Index, err)
		}
		all[i] = sized{l, w, h}
	}
	var msg []byte
	return publishEvery(t, every, func(seq uint64) error {
		now := time.Now()
		for _, l := range all {
			msg = frames.AppendLayered(msg[:0], "", l.Index, l.w, l.h, seq, now, l.JPEG)
			if err := c.SendBinary(msg); err != nil {
				return err
			}
		}
		return nil
	})
}
