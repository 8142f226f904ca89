package frames_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

var paramSets = []byte{0, 0, 0, 1, 0x67, 0x42, 0xC0, 0x1F, 0, 0, 0, 1, 0x68, 0xCE, 0x38, 0x80}

func TestH264ConfigRoundTrip(t *testing.T) {
	c := frames.H264Config{Codec: "avc1.42C01F", Width: 1280, Height: 720, ParamSets: paramSets}
	msg := frames.AppendLayered(nil, "cam", 0, 1280, 720, 9, ts, nil)
	// AppendLayered writes a JPEG kind; build an H.264 message by hand.
	payload := frames.AppendH264Config(nil, c)
	msg = msg[:0]
	msg = append(msg, layerBlock(frames.KindH264Config, "cam", 0, 1280, 720)...)
	h := header(1, byte(frames.KindH264Config), 20, 9, ts.UnixMicro())
	msg = append(append(msg, h...), payload...)
	f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Kind != frames.KindH264Config || !f.Kind.IsH264() {
		t.Fatalf("kind %d", f.Kind)
	}
	got, err := frames.ParseH264Config(f.Payload)
	if err != nil || got.Codec != c.Codec || got.Width != 1280 || got.Height != 720 || string(got.ParamSets) != string(paramSets) {
		t.Fatalf("config %+v, %v", got, err)
	}
}

func layerBlock(kind frames.Kind, room string, layer, w, h int) []byte {
	b := frames.AppendLayered(nil, room, layer, w, h, 0, ts, nil)
	b = b[:frames.LayerBlockFixed+len(room)]
	b[1] = byte(kind)
	return b
}

func TestH264MessagesRejected(t *testing.T) {
	au := []byte{0, 0, 0, 1, 0x65, 0x88, 0x84}
	good := frames.AppendH264Config(nil, frames.H264Config{Codec: "avc1.42E01F", Width: 640, Height: 480, ParamSets: paramSets})
	for name, c := range map[string]struct {
		kind    frames.Kind
		payload []byte
		want    string
	}{
		"config empty":        {frames.KindH264Config, nil, "empty configuration"},
		"config codec 0":      {frames.KindH264Config, []byte{0, 1, 1, 1, 1}, "codec string of 0 bytes"},
		"config short":        {frames.KindH264Config, good[:8], "need"},
		"config codec binary": {frames.KindH264Config, append([]byte{2, 0x01, 0x02}, good[13:]...), "printable"},
		"config zero size":    {frames.KindH264Config, frames.AppendH264Config(nil, frames.H264Config{Codec: "avc1", ParamSets: paramSets}), "coded size 0×0"},
		"config no start":     {frames.KindH264Config, frames.AppendH264Config(nil, frames.H264Config{Codec: "avc1", Width: 2, Height: 2, ParamSets: []byte{0x67}}), "Annex-B"},
		"key not annex-b":     {frames.KindH264Key, au[4:], "Annex-B"},
		"delta empty":         {frames.KindH264Delta, nil, "Annex-B"},
	} {
		t.Run(name, func(t *testing.T) {
			msg := append(header(1, byte(c.kind), 20, 1, 1), c.payload...)
			_, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
			if !errors.Is(err, frames.ErrBadH264) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want ErrBadH264 with %q", err, c.want)
			}
		})
	}
	msg := append(header(1, byte(frames.KindH264Delta), 20, 1, 1), au...)
	if _, err := frames.ParseBinary(msg, 0, time.Time{}, 3); !errors.Is(err, frames.ErrTooLarge) {
		t.Fatalf("over maxBytes: %v", err)
	}
	if f, err := frames.ParseBinary(msg, 0, time.Time{}, 0); err != nil || f.Kind != frames.KindH264Delta {
		t.Fatalf("a delta: %v", err)
	}
}
