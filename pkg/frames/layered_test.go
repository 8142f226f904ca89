package frames_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// sizedJPEG encodes a real w×h JPEG.
func sizedJPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	img := image.NewGray(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 60}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestLayeredRoundTrip(t *testing.T) {
	jpg := sizedJPEG(t, 320, 180)
	msg := frames.AppendLayered(nil, "cam1", 2, 320, 180, 42, ts, jpg)
	f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Layer != 2 || f.Width != 320 || f.Height != 180 || f.Room != "cam1" || f.Seq != 42 || !f.Captured.Equal(ts) {
		t.Fatalf("parsed %+v", f)
	}
	if !bytes.Equal(f.Payload, jpg) {
		t.Fatal("payload differs")
	}
	v2 := f.BinaryV2()
	if &v2[0] != &msg[0] || len(v2) != len(msg) {
		t.Fatal("BinaryV2 of a parsed version-2 message is not the message itself")
	}
	v1 := f.Binary()
	if &v1[0] != &msg[len(msg)-len(v1)] {
		t.Fatal("Binary is not a suffix of the version-2 message")
	}
	g, err := frames.ParseBinary(v1, 0, time.Time{}, 0)
	if err != nil || g.Seq != 42 || !bytes.Equal(g.Payload, jpg) {
		t.Fatalf("version-1 suffix does not parse as the frame: %v", err)
	}
}

func TestBinaryV2BuiltForVersion1Frames(t *testing.T) {
	jpg := sizedJPEG(t, 64, 48)
	f, err := frames.ParseBinary(frames.AppendBinary(nil, 7, ts, jpg), 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Room = "lobby"
	f.Layer = 1
	b := f.BinaryV2()
	g, err := frames.ParseBinary(b, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The size comes from the JPEG's frame header when no publisher sent it.
	if g.Room != "lobby" || g.Layer != 1 || g.Width != 64 || g.Height != 48 || g.Seq != 7 {
		t.Fatalf("built %+v", g)
	}
	if &f.BinaryV2()[0] != &b[0] {
		t.Fatal("BinaryV2 built twice")
	}
}

func TestBinaryV2RenamesForTheFramesRoom(t *testing.T) {
	jpg := sizedJPEG(t, 16, 16)
	f, err := frames.ParseBinary(frames.AppendLayered(nil, "", 0, 16, 16, 1, ts, jpg), 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Room = "cam9" // the gateway names the URL's room
	g, err := frames.ParseBinary(f.BinaryV2(), 0, time.Time{}, 0)
	if err != nil || g.Room != "cam9" {
		t.Fatalf("room %q, err %v", g.Room, err)
	}
}

func TestParseLayeredRejects(t *testing.T) {
	jpg := jpegLike(64)
	good := frames.AppendLayered(nil, "r", 1, 10, 10, 1, ts, jpg)
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string]struct {
		msg  []byte
		want string
	}{
		"short":            {good[:5], "need 11"},
		"layer too high":   {mut(func(b []byte) []byte { b[4] = frames.MaxLayers; return b }), "at most 4 layers"},
		"flags":            {mut(func(b []byte) []byte { b[5] = 1; return b }), "flags"},
		"block length":     {mut(func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:4], 40); return b }), "layer block length"},
		"room too long":    {mut(func(b []byte) []byte { b[10] = 65; return b }), "room name of 65"},
		"kind mismatch":    {mut(func(b []byte) []byte { b[1] = 2; return b }), "layer block says kind 2"},
		"bare jpeg inside": {cat(good[:12], jpg), "followed by a version-1 header"},
		"nested":           {cat(good[:12], good), "followed by a version-1 header"},
		"not a jpeg":       {cat(good[:12], header(1, 1, 20, 1, 1), []byte("nope")), "not a JPEG"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := frames.ParseBinary(c.msg, 0, time.Time{}, 0)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one containing %q", err, c.want)
			}
			if !errors.Is(err, frames.ErrBadHeader) && !errors.Is(err, frames.ErrNotJPEG) {
				t.Fatalf("err %v is neither ErrBadHeader nor ErrNotJPEG", err)
			}
		})
	}
	if _, err := frames.ParseBinary(frames.AppendLayered(nil, "r", 0, 1, 1, 1, ts, jpegLike(100)), 0, time.Time{}, 50); !errors.Is(err, frames.ErrTooLarge) {
		t.Fatalf("over maxBytes: %v", err)
	}
}

func TestJPEGSize(t *testing.T) {
	for _, sz := range [][2]int{{1, 1}, {320, 180}, {1280, 720}, {641, 479}} {
		w, h, err := frames.JPEGSize(sizedJPEG(t, sz[0], sz[1]))
		if err != nil || w != sz[0] || h != sz[1] {
			t.Fatalf("%v: got %d×%d, %v", sz, w, h, err)
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, 33, 17))
	img.Set(1, 1, color.White)
	var buf bytes.Buffer
	_ = jpeg.Encode(&buf, img, nil)
	if w, h, err := frames.JPEGSize(buf.Bytes()); err != nil || w != 33 || h != 17 {
		t.Fatalf("colour JPEG: %d×%d %v", w, h, err)
	}
	for name, b := range map[string][]byte{"empty": nil, "not jpeg": []byte("hello"), "no SOF": jpegLike(64), "truncated": sizedJPEG(t, 8, 8)[:30]} {
		if _, _, err := frames.JPEGSize(b); !errors.Is(err, frames.ErrNotJPEG) {
			t.Errorf("%s: err %v, want ErrNotJPEG", name, err)
		}
	}
}

func FuzzParseLayered(f *testing.F) {
	f.Add(frames.AppendLayered(nil, "r", 1, 10, 10, 1, ts, jpegLike(32)))
	f.Fuzz(func(t *testing.T, msg []byte) {
		fr, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
		if err != nil {
			return
		}
		fr.Room = "x"
		if _, err := frames.ParseBinary(fr.BinaryV2(), 0, time.Time{}, 0); err != nil {
			t.Fatalf("BinaryV2 of a parsed frame does not parse: %v", err)
		}
	})
}

// TestAppendLayeredKind: H.264 messages built with AppendLayeredKind parse
// with their kind in the layer block and the header, and the JPEG case is
// byte for byte AppendLayered's.
func TestAppendLayeredKind(t *testing.T) {
	cfg := frames.AppendH264Config(nil, frames.H264Config{Codec: "avc1.42C01F", Width: 640, Height: 360,
		ParamSets: []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xCE}})
	for _, tt := range []struct {
		kind    frames.Kind
		payload []byte
	}{
		{frames.KindH264Config, cfg},
		{frames.KindH264Key, []byte{0, 0, 0, 1, 0x65, 0x88}},
		{frames.KindH264Delta, []byte{0, 0, 0, 1, 0x41, 0x9a}},
	} {
		msg := frames.AppendLayeredKind(nil, tt.kind, "cam1", 1, 640, 360, 7, ts, tt.payload)
		lb, err := frames.ParseLayerBlock(msg)
		if err != nil || lb.Kind != tt.kind || lb.Layer != 1 || lb.Width != 640 || lb.Height != 360 || lb.Room != "cam1" {
			t.Fatalf("kind %d: layer block %+v, %v", tt.kind, lb, err)
		}
		f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
		if err != nil || f.Kind != tt.kind || f.Seq != 7 || !f.Captured.Equal(ts) || f.Layer != 1 {
			t.Fatalf("kind %d: parsed %+v, %v", tt.kind, f, err)
		}
	}
	jpg := sizedJPEG(t, 32, 16)
	if a, b := frames.AppendLayeredKind(nil, frames.KindJPEG, "r", 0, 32, 16, 3, ts, jpg), frames.AppendLayered(nil, "r", 0, 32, 16, 3, ts, jpg); !bytes.Equal(a, b) {
		t.Fatal("the JPEG case differs from AppendLayered")
	}
}
