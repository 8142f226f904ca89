package sender

import (
	"image"
	"testing"
	"time"

	"github.com/coder/websocket"
	"gocv.io/x/gocv"

	"github.com/framecast/framecast/pkg/frames"
)

func TestScaledSize(t *testing.T) {
	tests := []struct {
		cols, rows, max int
		want            image.Point
	}{
		{640, 480, 160, image.Pt(160, 120)},
		{1280, 720, 640, image.Pt(640, 360)},
		{1920, 1080, 1000, image.Pt(1000, 563)},
		{320, 240, 640, image.Pt(320, 240)}, // never upscaled
		{640, 480, 0, image.Pt(640, 480)},   // 0 keeps
		{4000, 1, 100, image.Pt(100, 1)},    // at least one row
	}
	for _, tt := range tests {
		if got := scaledSize(tt.cols, tt.rows, tt.max); got != tt.want {
			t.Errorf("scaledSize(%d, %d, %d) = %v, want %v", tt.cols, tt.rows, tt.max, got, tt.want)
		}
	}
}

// encodePattern draws one test-pattern frame of width w and encodes it.
func encodePattern(t *testing.T, w, maxWidth, quality int) []byte {
	t.Helper()
	p := newTestPattern(w, 10)
	defer p.Close()
	m := gocv.NewMat()
	defer m.Close()
	p.draw(&m, time.Now())
	e := newEncoder(maxWidth, quality)
	defer e.Close()
	var out []byte
	if err := e.encode(m, func(l encodedLayer) { out = append([]byte(nil), l.jpeg...) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEncodeResizesAndDecodes(t *testing.T) {
	tests := []struct {
		w, max int
		want   image.Point
	}{
		{640, 160, image.Pt(160, 120)},
		{640, 0, image.Pt(640, 480)},
		{320, 640, image.Pt(320, 240)},
		{1280, 640, image.Pt(640, 480)},
	}
	for _, tt := range tests {
		b := encodePattern(t, tt.w, tt.max, 80)
		if err := frames.CheckJPEG(b, 0); err != nil {
			t.Fatalf("%dpx max %d: %v", tt.w, tt.max, err)
		}
		if got := decodeJPEG(t, b); got != tt.want {
			t.Errorf("%dpx pattern, max width %d: decoded %v, want %v", tt.w, tt.max, got, tt.want)
		}
	}
}

func TestEncodeQualityChangesSize(t *testing.T) {
	low, high := encodePattern(t, 640, 0, 10), encodePattern(t, 640, 0, 95)
	if len(low) >= len(high) {
		t.Fatalf("quality 10 gave %d bytes, quality 95 %d: quality not applied", len(low), len(high))
	}
}

func TestEncodeEmptyImage(t *testing.T) {
	e := newEncoder(0, 80)
	defer e.Close()
	m := gocv.NewMat()
	defer m.Close()
	if err := e.encode(m, func(encodedLayer) { t.Fatal("use called for an empty image") }); err == nil {
		t.Fatal("encode of an empty Mat returned nil")
	}
}

func TestWireFormats(t *testing.T) {
	jpg := encodePattern(t, 160, 0, 80)
	at := time.UnixMicro(1_700_000_000_123_456)
	info := frameInfo{seq: 42, captured: at}

	layer := encodedLayer{size: image.Pt(160, 120), jpeg: jpg}
	var m message
	formatFor(DefaultConfig())(&m, info, layer)
	if m.typ != websocket.MessageBinary {
		t.Fatalf("binary protocol message type %v", m.typ)
	}
	f, err := frames.ParseBinary(m.buf, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Seq != 42 || !f.Captured.Equal(at) || string(f.Payload) != string(jpg) {
		t.Fatalf("binary message: seq %d captured %v, %d JPEG bytes", f.Seq, f.Captured, len(f.Payload))
	}

	seed := DefaultConfig()
	seed.Protocol = ProtocolSeed
	m = message{}
	formatFor(seed)(&m, info, layer)
	if m.typ != websocket.MessageText {
		t.Fatalf("seed protocol message type %v", m.typ)
	}
	f, err = frames.ParseDataURL(m.buf, 1, time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(f.Payload) != string(jpg) {
		t.Fatal("data URL does not round-trip the JPEG")
	}
}

// TestLayeredWireFormat: with SENDER_LAYERS the layers of a picture go into
// one message, one version-2 message each, in layer order.
func TestLayeredWireFormat(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Room, cfg.Layers = "cam_2", "640,320,160"
	layers, err := cfg.layerSpecs()
	if err != nil {
		t.Fatal(err)
	}
	p := newTestPattern(640, 10)
	defer p.Close()
	img := gocv.NewMat()
	defer img.Close()
	p.draw(&img, time.Now())
	enc := newLayerEncoder(layers)
	defer enc.Close()
	at := time.UnixMicro(1_700_000_000_123_456)
	info := frameInfo{seq: 9, captured: at}
	format := formatFor(cfg)
	var m message
	for range 2 { // the second picture reuses the buffers
		m.reset()
		if err := enc.encode(img, func(l encodedLayer) { format(&m, info, l) }); err != nil {
			t.Fatal(err)
		}
	}
	if len(m.ends) != 3 || m.typ != websocket.MessageBinary {
		t.Fatalf("%d messages of type %v, want 3 binary", len(m.ends), m.typ)
	}
	for i, w := range []image.Point{{640, 480}, {320, 240}, {160, 120}} {
		f, err := frames.ParseBinary(m.layer(i), 0, time.Time{}, 0)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if f.Layer != i || f.Room != "cam_2" || f.Seq != 9 || !f.Captured.Equal(at) || f.Width != w.X || f.Height != w.Y {
			t.Fatalf("layer %d: layer %d room %q seq %d at %v, %d×%d", i, f.Layer, f.Room, f.Seq, f.Captured, f.Width, f.Height)
		}
		if got := decodeJPEG(t, f.Payload); got != w {
			t.Fatalf("layer %d decodes at %v, want %v", i, got, w)
		}
	}
}
