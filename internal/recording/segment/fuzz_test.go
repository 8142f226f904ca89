package segment

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// FuzzRead feeds the reader untrusted bytes (a store's objects and
// journals). It must never panic, and whatever it accepts must repair
// into a sealed segment that reads back to the same frames.
func FuzzRead(f *testing.F) {
	// Seeds without ffmpeg (every fuzz worker makes them): x264's SPS and
	// PPS, stand-in slices.
	sps, _ := hex.DecodeString("6742c01fd9005005bb0110000003001000000303c0f1832480")
	config := frames.H264Config{Codec: "avc1.42C01F", Width: 1280, Height: 720,
		ParamSets: append(append([]byte{0, 0, 0, 1}, sps...), 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80)}
	var aus [][]byte
	var keys []bool
	for i := range 12 {
		key := i%6 == 0
		au := []byte{0, 0, 1, 0x41, byte(i), 0x80}
		if key {
			au = append(append([]byte(nil), config.ParamSets...), 0, 0, 0, 1, 0x65, byte(i), 0x80)
		}
		aus, keys = append(aus, au), append(keys, key)
	}
	h := record(f, NewWriter("cam", frames.CodecH264, &Options{PartMax: 100 * time.Millisecond}),
		h264Stream(f, config, aus, keys, time.Second/30, nil), true)[0].data
	j := record(f, NewWriter("cam", frames.CodecJPEG, nil), jpegStream(f, 16, 16, 3, 40*time.Millisecond), false)[0].data
	f.Add(h)
	f.Add(h[:len(h)-7])
	f.Add(j)
	f.Add(j[:len(j)/2])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ReadIndex(data)
		fs, info, err := Read(data)
		if info == nil {
			if err == nil || len(fs) != 0 {
				t.Fatalf("no info, %d frames, err %v", len(fs), err)
			}
			return
		}
		if err != nil && !errors.Is(err, ErrTorn) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v wraps neither ErrTorn nor ErrCorrupt", err)
		}
		n := 0
		for _, p := range info.Parts {
			n += p.Frames
		}
		if n != len(fs) || info.Frames != len(fs) || info.Bytes > int64(len(data)) {
			t.Fatalf("%d frames, parts say %d, summary %d; %d of %d bytes", len(fs), n, info.Frames, info.Bytes, len(data))
		}
		fixed, info2, _ := Repair(data)
		got, info3, err := Read(fixed)
		if err != nil || !info3.Sealed || info3.Summary != info2.Summary {
			t.Fatalf("the repaired segment: %v, %+v / %+v", err, info3, info2)
		}
		if len(got) != len(fs) {
			t.Fatalf("%d frames after repair, %d before", len(got), len(fs))
		}
		for i := range fs {
			if got[i].Seq != fs[i].Seq || !bytes.Equal(got[i].Payload, fs[i].Payload) {
				t.Fatalf("frame %d differs after repair", i)
			}
		}
		if idx, err := ReadIndex(fixed); err != nil || len(idx.Parts) != len(info3.Parts) {
			t.Fatalf("the repaired segment's index: %v", err)
		}
	})
}
