package sender

import (
	"bytes"
	"image"
	"image/jpeg"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
)

// receivedLayer is one version-2 message as a test server read it.
type receivedLayer struct {
	block frames.LayerBlock
	frame *frames.Frame
	jpeg  image.Point // the JPEG's own size (image/jpeg.DecodeConfig)
}

// parseV2 parses message i, which must be a binary version-2 message.
func parseV2(t *testing.T, i int, m recvMsg) (frames.LayerBlock, *frames.Frame) {
	t.Helper()
	if m.typ != websocket.MessageBinary || len(m.data) == 0 || m.data[0] != frames.VersionLayered {
		t.Fatalf("message %d: type %v, %d bytes: want a binary version-2 message", i, m.typ, len(m.data))
	}
	lb, err := frames.ParseLayerBlock(m.data)
	if err != nil {
		t.Fatalf("message %d: %v", i, err)
	}
	f, err := frames.ParseBinary(m.data, 0, time.Time{}, 0)
	if err != nil {
		t.Fatalf("message %d: %v", i, err)
	}
	return lb, f
}

// parseLayers parses version-2 messages and groups them by picture
// (sequence number), in arrival order. A picture cut off by the end of
// msgs (its last layers still in flight) is left out.
func parseLayers(t *testing.T, msgs []recvMsg, layers int) [][]receivedLayer {
	t.Helper()
	var pics [][]receivedLayer
	for i, m := range msgs {
		lb, f := parseV2(t, i, m)
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(f.Payload))
		if err != nil {
			t.Fatalf("message %d (layer %d): JPEG does not decode: %v", i, lb.Layer, err)
		}
		l := receivedLayer{block: lb, frame: f, jpeg: image.Pt(cfg.Width, cfg.Height)}
		if n := len(pics); n > 0 && pics[n-1][0].frame.Seq == f.Seq {
			pics[n-1] = append(pics[n-1], l)
		} else {
			pics = append(pics, []receivedLayer{l})
		}
	}
	if n := len(pics); n > 0 && len(pics[n-1]) < layers {
		pics = pics[:n-1]
	}
	return pics
}

// TestSenderPublishesLayers runs a Sender with SENDER_LAYERS against a
// test WebSocket server and checks what it sends: per captured picture one
// version-2 message per layer, layers 0, 1, 2 in order, all with the
// picture's sequence number and capture time, each JPEG decoding at the
// size its layer block advertises, the capture's aspect kept and never
// upscaled.
func TestSenderPublishesLayers(t *testing.T) {
	tests := []struct {
		name    string
		source  func(t *testing.T) string // "" : the test pattern
		layers  string
		quality string
		want    []image.Point
	}{
		{"1280x720 clip", func(t *testing.T) string { return makeMP4(t, "1280x720", 10, 1) },
			"1280,640,320", "", []image.Point{{1280, 720}, {640, 360}, {320, 180}}},
		{"test pattern", nil,
			"1280,640,320", "85,70,50", []image.Point{{1280, 960}, {640, 480}, {320, 240}}},
		// A source narrower than the layers: clamped, never upscaled.
		{"narrow clip", func(t *testing.T) string { return makeMP4(t, "480x270", 10, 1) },
			"1280,640,320", "", []image.Point{{480, 270}, {480, 270}, {320, 180}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newFakeGateway(t)
			cfg := testConfig(g.url())
			cfg.Room = "cam_7"
			cfg.FPS = 10
			cfg.Layers, cfg.LayerQuality = tt.layers, tt.quality
			if tt.source != nil {
				cfg.Source = tt.source(t)
			}
			start := time.Now()
			s := startSender(t, cfg)
			msgs := g.waitMessages(t, 0, 5*len(tt.want), 30*time.Second)
			if rec := g.conn(0); rec.query != "role=publish" {
				t.Errorf("query %q, want role=publish", rec.query)
			}
			pics := parseLayers(t, msgs, len(tt.want))
			if len(pics) < 4 {
				t.Fatalf("%d whole pictures in %d messages", len(pics), len(msgs))
			}
			var last uint64
			for _, pic := range pics {
				seq, captured := pic[0].frame.Seq, pic[0].frame.Captured
				if seq <= last {
					t.Fatalf("picture seq %d after %d", seq, last)
				}
				last = seq
				if captured.Before(start.Add(-time.Second)) || captured.After(time.Now()) {
					t.Fatalf("picture %d: capture time %v outside the test", seq, captured)
				}
				if len(pic) != len(tt.want) {
					t.Fatalf("picture %d has %d messages, want one per layer (%d)", seq, len(pic), len(tt.want))
				}
				for i, l := range pic {
					if l.block.Layer != i || l.frame.Layer != i {
						t.Fatalf("picture %d: message %d is layer %d, want %d", seq, i, l.block.Layer, i)
					}
					if !l.frame.Captured.Equal(captured) {
						t.Fatalf("picture %d layer %d: capture time %v, layer 0 has %v", seq, i, l.frame.Captured, captured)
					}
					if l.block.Room != "cam_7" {
						t.Fatalf("picture %d layer %d: room %q, want cam_7", seq, i, l.block.Room)
					}
					adv := image.Pt(l.block.Width, l.block.Height)
					if adv != tt.want[i] || l.jpeg != tt.want[i] {
						t.Fatalf("picture %d layer %d: advertised %v, JPEG %v, want %v", seq, i, adv, l.jpeg, tt.want[i])
					}
				}
			}
			if err := s.stop(t); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			var sum uint64
			for i, b := range st.LayerBytes {
				if (i < len(tt.want)) != (b > 0) {
					t.Errorf("layer %d: %d bytes sent", i, b)
				}
				sum += b
			}
			if sum != st.Bytes || st.Sent < uint64(len(pics)) {
				t.Errorf("stats %+v: layer bytes sum to %d; %d pictures seen", st, sum, len(pics))
			}
		})
	}
}

// TestSenderDefaultSendsVersion1: without SENDER_LAYERS the sender sends
// version-1 messages, one per picture, exactly as before layers existed.
func TestSenderDefaultSendsVersion1(t *testing.T) {
	g := newFakeGateway(t)
	s := startSender(t, testConfig(g.url()))
	msgs := g.waitMessages(t, 0, 5, 20*time.Second)
	var last uint64
	for i, m := range msgs {
		if m.data[0] != frames.Version {
			t.Fatalf("message %d: version %d, want %d", i, m.data[0], frames.Version)
		}
		f, err := frames.ParseBinary(m.data, 0, time.Time{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq <= last {
			t.Fatalf("message %d: seq %d after %d: more than one message per picture", i, f.Seq, last)
		}
		last = f.Seq
	}
	if err := s.stop(t); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.LayerBytes[0] != st.Bytes || st.Bytes == 0 {
		t.Fatalf("stats %+v: all bytes should be layer 0's", st)
	}
}

// TestLayeredSkipsWholePictures: a server that stops reading makes the
// sender skip; whatever reached the server before the stall holds whole
// pictures only, each with every layer, in order, and the pictures keep
// coming in whole after the sender redials.
func TestLayeredSkipsWholePictures(t *testing.T) {
	g := newFakeGateway(t)
	g.stallFirstConn(7) // two pictures and part of a third, then no more reads
	cfg := testConfig(g.url())
	cfg.Layers = "1280,640,320"
	cfg.LayerQuality = "100"
	startStalledSender(t, cfg)
	msgs := g.waitMessages(t, 1, 12, 30*time.Second)
	// The new connection starts on a picture boundary: whole pictures only.
	pics := parseLayers(t, msgs, 3)
	for _, pic := range pics {
		if len(pic) != 3 {
			t.Fatalf("after reconnecting, picture %d has %d layers", pic[0].frame.Seq, len(pic))
		}
		for i, l := range pic {
			if l.block.Layer != i {
				t.Fatalf("picture %d: message %d is layer %d", pic[0].frame.Seq, i, l.block.Layer)
			}
		}
	}
	if len(pics) < 3 || pics[0][0].block.Layer != 0 {
		t.Fatalf("%d whole pictures after reconnecting", len(pics))
	}
	// On the stalled connection, the pictures before the cut are whole.
	first := parseLayers(t, g.conn(0).messages(), 3)
	for _, pic := range first {
		if len(pic) != 3 {
			t.Fatalf("stalled connection: picture %d has %d layers", pic[0].frame.Seq, len(pic))
		}
	}
}
