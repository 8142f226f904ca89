package frames_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/framecast/framecast/pkg/frames"
)

func TestStreamNames(t *testing.T) {
	cases := []struct {
		s    frames.Stream
		name string
	}{
		{frames.Stream{Room: "cam"}, "cam"},
		{frames.Stream{Room: "cam", Layer: 1}, "cam@1"},
		{frames.Stream{Room: "cam", Layer: 3}, "cam@3"},
		{frames.Stream{Room: "cam", Codec: frames.CodecH264}, "cam@h264"},
		{frames.Stream{Room: "cam_2", Layer: 2, Codec: frames.CodecH264}, "cam_2@h264.2"},
	}
	for _, c := range cases {
		if got := c.s.String(); got != c.name {
			t.Errorf("%+v.String() = %q, want %q", c.s, got, c.name)
		}
		got, err := frames.ParseStream(c.name)
		if err != nil || got != c.s {
			t.Errorf("ParseStream(%q) = %+v, %v; want %+v", c.name, got, err, c.s)
		}
	}
	// No other name is a stream: ParseStream refuses it, and ValidRoom
	// refuses every one of them, so no client can name one.
	for _, name := range []string{"", "cam@0", "cam@4", "cam@x", "cam@", "cam@-1", "cam@h264.0", "cam@h264.4",
		"cam@h264.", "cam@h2640", "cam@key", "@1", "a b@1", "cam@1@1", strings.Repeat("x", 65) + "@1"} {
		if s, err := frames.ParseStream(name); err == nil {
			t.Errorf("ParseStream(%q) = %+v, want an error", name, s)
		}
		if frames.ValidRoom(name) {
			t.Errorf("ValidRoom(%q) is true", name)
		}
	}
	if got := (frames.Stream{Room: "cam", Layer: 2, Codec: frames.CodecH264}).KeyframeChannel(); got != "cam@key" {
		t.Errorf("KeyframeChannel = %q, want cam@key", got)
	}
}

func TestValidRoom(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"a", true},
		{"lobby", true},
		{"Room_42", true},
		{"_", true},
		{"0", true},
		{strings.Repeat("x", 64), true},
		{"", false},
		{strings.Repeat("x", 65), false},
		{"a-b", false},
		{"ü", false},
		{"caf\u00e9", false},
		{"../x", false},
		{"a b", false},
		{"a.b", false},
		{"a/b", false},
		{"a\x00", false},
		{"a\n", false},
		{"video_*", false},
		{"cam@1", false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.name), func(t *testing.T) {
			if got := frames.ValidRoom(tt.name); got != tt.want {
				t.Fatalf("ValidRoom(%q) = %v, want %v", tt.name, got, tt.want)
			}
		})
	}
}

func TestCodecText(t *testing.T) {
	for _, c := range []struct {
		in   string
		want frames.Codec
		ok   bool
	}{{"", frames.CodecJPEG, true}, {"jpeg", frames.CodecJPEG, true}, {"h264", frames.CodecH264, true},
		{"H264", 0, false}, {"vp8", 0, false}} {
		got, err := frames.ParseCodec(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseCodec(%q) = %v, %v", c.in, got, err)
		}
	}
	// A JPEG layer's JSON leaves the codec out, as before H.264 existed.
	b, _ := json.Marshal([]frames.LayerInfo{{Index: 0, Width: 640, Height: 480}, {Index: 1, Width: 320, Height: 240, Codec: frames.CodecH264}})
	if want := `[{"layer":0,"width":640,"height":480},{"layer":1,"width":320,"height":240,"codec":"h264"}]`; string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
	var back []frames.LayerInfo
	if err := json.Unmarshal(b, &back); err != nil || back[1].Codec != frames.CodecH264 || back[0].Codec != frames.CodecJPEG {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`[{"layer":0,"codec":"vp8"}]`), &back); err == nil {
		t.Fatal("an unknown codec parsed")
	}
	for k, want := range map[frames.Kind]frames.Codec{frames.KindJPEG: frames.CodecJPEG, frames.KindH264Config: frames.CodecH264,
		frames.KindH264Key: frames.CodecH264, frames.KindH264Delta: frames.CodecH264} {
		if got, ok := k.Codec(); !ok || got != want {
			t.Errorf("Kind(%d).Codec() = %v, %v", k, got, ok)
		}
	}
	if _, ok := frames.KindOffline.Codec(); ok {
		t.Error("an offline event has a codec")
	}
}
