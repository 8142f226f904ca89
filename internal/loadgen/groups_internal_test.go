package loadgen

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

func TestParseFrameVersion2(t *testing.T) {
	jpeg, _ := MakeJPEG(100, 1)
	at := time.UnixMicro(1_700_000_000_123_456)
	for _, room := range []string{"", "bench", strings.Repeat("r", frames.MaxRoomLen)} {
		for layer := range frames.MaxLayers {
			msg := frames.AppendLayered(nil, room, layer, 320, 180, 42, at, jpeg)
			seq, ts, l, ok := ParseFrame(msg)
			if !ok || seq != 42 || ts != at.UnixMicro() || l != layer {
				t.Fatalf("room %q layer %d: got seq %d ts %d layer %d ok %v", room, layer, seq, ts, l, ok)
			}
			if n := testing.AllocsPerRun(100, func() { _, _, _, _ = ParseFrame(msg) }); n != 0 {
				t.Fatalf("ParseFrame allocates %.0f times per version-2 message", n)
			}
		}
	}
	v1 := frames.AppendBinary(nil, 7, at, jpeg)
	if seq, _, l, ok := ParseFrame(v1); !ok || seq != 7 || l != NoLayer {
		t.Fatalf("version 1: seq %d layer %d ok %v", seq, l, ok)
	}
	good := frames.AppendLayered(nil, "bench", 2, 320, 180, 42, at, jpeg)
	e := frames.LayerBlockFixed + len("bench")
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for name, msg := range map[string][]byte{
		"block only":       good[:e],
		"short block":      good[:frames.LayerBlockFixed-1],
		"just the version": good[:1],
		"layer 4":          mod(func(b []byte) []byte { b[4] = 4; return b }),
		"flags":            mod(func(b []byte) []byte { b[5] = 1; return b }),
		"length too long":  mod(func(b []byte) []byte { b[3]++; return b }),
		"length too short": mod(func(b []byte) []byte { b[3]--; return b }),
		"length past end":  mod(func(b []byte) []byte { b[2], b[3] = 0xff, 0xff; return b }),
		"room too long": mod(func(b []byte) []byte {
			b[10] = frames.MaxRoomLen + 1
			b[3] = byte(frames.LayerBlockFixed + frames.MaxRoomLen + 1)
			return b
		}),
		"nested block":    append(good[:e:e], good...),
		"kind mismatch":   mod(func(b []byte) []byte { b[1] = byte(frames.KindOffline); return b }),
		"inner version 3": mod(func(b []byte) []byte { b[e] = 3; return b }),
		"inner too short": good[:e+10],
		"offline layer":   frames.OfflineLayer("bench", 1, 9, at).BinaryV2(),
	} {
		if _, _, _, ok := ParseFrame(msg); ok {
			t.Errorf("%s: parsed as a frame", name)
		}
	}
}

// sliceSource hands out prepared messages, then io.EOF.
type sliceSource struct{ msgs [][]byte }

func (s *sliceSource) Next() ([]byte, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

func (s *sliceSource) Close() error { return nil }

// TestViewerCountsLayers: a viewer keeps the layer of its last frame,
// counts layer changes from the layer bytes, counts control messages
// apart, and counts malformed layer blocks as bad messages.
func TestViewerCountsLayers(t *testing.T) {
	jpeg, _ := MakeJPEG(100, 1)
	now := time.Now()
	f := func(layer int, seq uint64) []byte {
		return frames.AppendLayered(nil, "bench", layer, 100, 100, seq, now, jpeg)
	}
	bad := f(1, 3)
	bad[4] = 9
	src := &sliceSource{msgs: [][]byte{
		[]byte(`{"type":"layers","room":"bench","layers":[]}`),
		f(0, 1), f(0, 2), bad,
		[]byte(`{"type":"layer","room":"bench","layer":2,"width":320,"height":180,"reason":"down"}`),
		f(2, 4), f(2, 5), {2}, {}, f(1, 6),
	}}
	room := &roomState{name: "bench"}
	room.from.Store(1)
	v := newViewer(src, room, FormatBinary)
	v.run()
	if !errors.Is(v.err, io.EOF) {
		t.Fatalf("run ended with %v", v.err)
	}
	switch {
	case v.received.Load() != 5 || v.frames != 5:
		t.Errorf("received %d (frames %d), want 5", v.received.Load(), v.frames)
	case v.layer != 1 || v.endedOn() != "1":
		t.Errorf("last layer %d (%s), want 1", v.layer, v.endedOn())
	case v.layerChanges != 2:
		t.Errorf("%d layer changes, want 2 (0→2→1)", v.layerChanges)
	case v.bad != 3:
		t.Errorf("%d bad messages, want 3", v.bad)
	case v.control != 2 || v.layerMsgs != 1:
		t.Errorf("%d control messages (%d layer), want 2 (1)", v.control, v.layerMsgs)
	}
	// Version-1 frames: the layer is not named; nothing changes.
	src = &sliceSource{msgs: [][]byte{frames.AppendBinary(nil, 1, now, jpeg), frames.AppendBinary(nil, 2, now, jpeg)}}
	v = newViewer(src, room, FormatBinary)
	v.run()
	if v.endedOn() != "v1" || v.layerChanges != 0 || v.bad != 0 {
		t.Errorf("version 1: ended on %s, %d changes, %d bad", v.endedOn(), v.layerChanges, v.bad)
	}
	if v := newViewer(&sliceSource{}, room, FormatBinary); v.endedOn() != "none" {
		t.Errorf("no frame: ended on %s", v.endedOn())
	}
}

func TestParseGroup(t *testing.T) {
	for in, want := range map[string]ViewerGroup{
		"tile=50:width=320&v=2":     {Name: "tile", Viewers: 50, Query: "width=320&v=2"},
		"slow=5@600:width=1280&v=2": {Name: "slow", Viewers: 5, Query: "width=1280&v=2", ThrottleKBps: 600},
		"plain=3":                   {Name: "plain", Viewers: 3},
		"thin=2@12.5":               {Name: "thin", Viewers: 2, ThrottleKBps: 12.5},
	} {
		got, err := ParseGroup(in)
		if err != nil || got != want {
			t.Errorf("ParseGroup(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if err == nil && got.String() != in {
			t.Errorf("%+v formats as %q, want %q", got, got.String(), in)
		}
	}
	for _, bad := range []string{"", "50:width=320", "=5", "a=x", "a=5@:q", "a=5@-1", "a=5@fast", "a=:width=1"} {
		if _, err := ParseGroup(bad); err == nil || !strings.Contains(err.Error(), "NAME=N[@KBPS][:QUERY]") {
			t.Errorf("ParseGroup(%q) = %v, want an error showing the form", bad, err)
		}
	}
}

func TestValidateGroups(t *testing.T) {
	for _, tt := range []struct {
		name    string
		viewers int
		groups  []ViewerGroup
		gateway string
		want    string
	}{
		{"fits", 10, []ViewerGroup{{Viewers: 5, Query: "width=320&v=2"}, {Viewers: 5, ThrottleKBps: 100}}, "", ""},
		{"too many", 10, []ViewerGroup{{Viewers: 6}, {Viewers: 5}}, "", "more than the 10"},
		{"empty", 10, []ViewerGroup{{Viewers: 0}}, "", "at least 1"},
		{"rest", 10, []ViewerGroup{{Name: "rest", Viewers: 1}}, "", "kept for the viewers in no group"},
		{"twice", 10, []ViewerGroup{{Name: "a", Viewers: 1}, {Name: "a", Viewers: 1}}, "", "used twice"},
		{"role", 10, []ViewerGroup{{Viewers: 1, Query: "role=publish"}}, "", "sets role"},
		{"format", 10, []ViewerGroup{{Viewers: 1, Query: "width=1&format=json"}}, "", "sets format"},
		{"bad query", 10, []ViewerGroup{{Viewers: 1, Query: "a=%zz"}}, "", "query"},
		{"tls", 10, []ViewerGroup{{Viewers: 1, ThrottleKBps: 10}}, "wss://127.0.0.1:1", "ws:// only"},
	} {
		gw := tt.gateway
		if gw == "" {
			gw = "ws://127.0.0.1:1"
		}
		c := Config{Gateways: []string{gw}, Viewers: tt.viewers, Groups: tt.groups}.WithDefaults()
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	c := Config{Viewers: 5, Groups: []ViewerGroup{{Viewers: 2}, {Name: "x", Viewers: 1}}}.WithDefaults()
	if c.Groups[0].Name != "g1" || c.Groups[1].Name != "x" {
		t.Errorf("names %q, %q; want g1, x", c.Groups[0].Name, c.Groups[1].Name)
	}
	if got := c.groupOf(); len(got) != 5 || got[0] != 0 || got[1] != 0 || got[2] != 1 || got[3] != 2 || got[4] != 2 {
		t.Errorf("groupOf = %v, want [0 0 1 2 2]", got)
	}
}
