package avc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// Parameter sets captured from real encoders (the commands are in each name's
// comment); the expected fields were checked against ffprobe.
var realSPS = []struct {
	name   string
	hex    string
	codec  string
	w, h   int // after cropping
	cw, ch int // coded
	mbs    bool
	chroma uint32
}{
	// ffmpeg -f lavfi -i testsrc2=size=1280x720:rate=30 -t 1 -c:v libx264 -profile:v baseline -f h264 -
	{"x264-baseline-720p", "6742c01fd9005005bb0110000003001000000303c0f1832480", "avc1.42C01F", 1280, 720, 1280, 720, true, 1},
	// ... size=1920x1080 -frames:v 1 -c:v libx264 -profile:v high -x264opts cqm=jvt (x264 puts the matrices in the PPS)
	{"x264-high-1080p", "67640028acd940780227e5c044000003000400000300f03c60c658", "avc1.640028", 1920, 1080, 1920, 1088, true, 1},
	// ... size=1920x1080 -frames:v 2 -c:v libx264 -x264-params interlaced=1 (fields: frame_mbs_only_flag 0)
	{"x264-interlaced-1080i", "67640028acd94078044fde0220000003002000000783e2c5b2c0", "avc1.640028", 1920, 1080, 1920, 1088, false, 1},
	// ... size=1280x720 -frames:v 1 -pix_fmt yuv444p -c:v libx264 (High 4:4:4 Predictive)
	{"x264-high444-720p", "67f4001f919b280a00b76022000003000200000300781e30632c", "avc1.F4001F", 1280, 720, 1280, 720, true, 3},
	// internal/h264enc (OpenH264 2.3.1) at 1280×720, constrained baseline
	{"openh264-720p", openH264SPS720, "avc1.42C01F", 1280, 720, 1280, 720, true, 1},
	// internal/h264enc (OpenH264 2.3.1) at 640×360: 23 macroblock rows, 8 lines cropped
	{"openh264-360p", openH264SPS360, "avc1.42C016", 640, 360, 640, 368, true, 1},
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSPSRealEncoders(t *testing.T) {
	for _, c := range realSPS {
		t.Run(c.name, func(t *testing.T) {
			s, err := ParseSPS(mustHex(t, c.hex))
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Codec(); got != c.codec {
				t.Errorf("codec %s, want %s", got, c.codec)
			}
			if s.Width != c.w || s.Height != c.h || s.CodedWidth != c.cw || s.CodedHeight != c.ch {
				t.Errorf("size %d×%d coded %d×%d, want %d×%d coded %d×%d", s.Width, s.Height, s.CodedWidth, s.CodedHeight, c.w, c.h, c.cw, c.ch)
			}
			if s.FrameMBSOnly != c.mbs || s.ChromaFormatIDC != c.chroma {
				t.Errorf("frame_mbs_only %v chroma %d, want %v %d", s.FrameMBSOnly, s.ChromaFormatIDC, c.mbs, c.chroma)
			}
		})
	}
}

// TestParseSPSFromFFmpeg encodes with the machine's ffmpeg now, so that a
// change of x264's SPS writer is caught, and checks Split and Parse on a whole
// stream on the way.
func TestParseSPSFromFFmpeg(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the test runs ffmpeg")
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg not installed (make deps)")
	}
	for _, c := range []struct {
		args      []string
		codec     string
		w, h, cw  int
		ch, units int
	}{
		{[]string{"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-frames:v", "3", "-c:v", "libx264", "-profile:v", "baseline"}, "avc1.42C01F", 1280, 720, 1280, 720, 0},
		{[]string{"-f", "lavfi", "-i", "testsrc2=size=854x480:rate=30", "-frames:v", "3", "-c:v", "libx264", "-profile:v", "main"}, "avc1.4D401F", 854, 480, 864, 480, 0},
	} {
		t.Run(c.codec, func(t *testing.T) {
			args := append([]string{"-hide_banner", "-loglevel", "error"}, c.args...)
			out, err := exec.Command("ffmpeg", append(args, "-f", "h264", "-")...).Output()
			if err != nil {
				t.Fatalf("ffmpeg: %v", err)
			}
			nalus, err := Split(out)
			if err != nil {
				t.Fatal(err)
			}
			var sps []byte
			idr := 0
			for _, n := range nalus {
				switch Type(n) {
				case NALSPS:
					sps = n
				case NALIDR:
					idr++
				}
			}
			if sps == nil || idr == 0 {
				t.Fatalf("no SPS or IDR among %d NAL units", len(nalus))
			}
			s, err := ParseSPS(sps)
			if err != nil {
				t.Fatal(err)
			}
			if s.Codec() != c.codec || s.Width != c.w || s.Height != c.h || s.CodedWidth != c.cw || s.CodedHeight != c.ch {
				t.Errorf("got %s %d×%d coded %d×%d, want %s %d×%d coded %d×%d", s.Codec(), s.Width, s.Height, s.CodedWidth, s.CodedHeight, c.codec, c.w, c.h, c.cw, c.ch)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	for _, c := range []struct {
		name string
		in   string
		want []string
	}{
		{"4-byte start codes", "00000001 6742 00000001 68ce 00000001 6588", []string{"6742", "68ce", "6588"}},
		{"3-byte start codes", "000001 6742 000001 68ce", []string{"6742", "68ce"}},
		{"mixed, leading and trailing zeros", "0000000001 09f0 0000 00000001 4101 000000", []string{"09f0", "4101"}},
		{"a 00 00 03 inside a unit is not a start code", "000001 65 000003 01 ff", []string{"6500000301ff"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Split(mustHex(t, strings.ReplaceAll(c.in, " ", "")))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("%d units, want %d: %x", len(got), len(c.want), got)
			}
			for i := range got {
				if hex.EncodeToString(got[i]) != c.want[i] {
					t.Errorf("unit %d = %x, want %s", i, got[i], c.want[i])
				}
			}
		})
	}
}

func TestSplitErrors(t *testing.T) {
	for _, c := range []struct{ name, in, msg string }{
		{"empty", "", "empty"},
		{"no start code", "6742c01f", "does not begin with a start code"},
		{"one zero then 01", "00016742", "does not begin with a start code"},
		{"only zeros", "00000000", "does not begin with a start code"},
		{"start code and nothing", "00000001", "empty NAL unit"},
		{"empty unit between", "00000001 6742 00000001 00000001 68ce", "empty NAL unit"},
		{"forbidden bit", "00000001 e742", "forbidden_zero_bit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Split(mustHex(t, strings.ReplaceAll(c.in, " ", "")))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err %v, want ErrMalformed with %q", err, c.msg)
			}
		})
	}
}

func TestAppendSplitReuses(t *testing.T) {
	buf := make([][]byte, 0, 8)
	a, _ := AppendSplit(buf[:0], mustHex(t, "000001670000016801"))
	if len(a) != 2 || &a[0] != &buf[:1][0] {
		t.Fatalf("did not reuse dst: %x", a)
	}
	b, err := AppendSplit(a, mustHex(t, "0102"))
	if err == nil || len(b) != 2 {
		t.Fatalf("on error got %d units, %v; want dst back unchanged", len(b), err)
	}
}

func TestParseAccessUnit(t *testing.T) {
	key := mustHex(t, "00000001"+realSPS[0].hex+"00000001"+"68cb83cb20"+"00000001"+"65888400")
	a, err := Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Key || len(a.NALUs) != 3 || Type(a.SPS) != NALSPS || Type(a.PPS) != NALPPS {
		t.Fatalf("got key %v, %d units, sps %x pps %x", a.Key, len(a.NALUs), a.SPS, a.PPS)
	}
	if !IsKeyframe(key) {
		t.Error("IsKeyframe false on an IDR access unit")
	}
	delta := mustHex(t, "00000001419a0102")
	if a, err := Parse(delta); err != nil || a.Key || a.SPS != nil {
		t.Fatalf("delta: %+v %v", a, err)
	}
	if IsKeyframe(delta) || IsKeyframe(nil) {
		t.Error("IsKeyframe true on a delta frame or nothing")
	}
	if _, err := Parse(mustHex(t, "00000001"+realSPS[0].hex)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "no slice") {
		t.Fatalf("parameter sets only: %v, want no slice", err)
	}
}

func TestNALTypeString(t *testing.T) {
	if NALIDR.String() != "idr" || NALType(23).String() != "nal-type-23" || Type(nil) != 0 {
		t.Fatal(NALIDR, NALType(23), Type(nil))
	}
}

func TestUnescapeRBSP(t *testing.T) {
	for in, want := range map[string]string{
		"0000030100":     "00000100",
		"00000300000302": "0000000002",
		"000003":         "0000",
		"0003":           "0003", // needs two zeros before
		"aabb":           "aabb",
	} {
		if got := hex.EncodeToString(unescapeRBSP(mustHex(t, in))); got != want {
			t.Errorf("unescape %s = %s, want %s", in, got, want)
		}
	}
}

// spsWriter builds synthetic SPS units bit by bit, for the paths real encoders
// here do not take (scaling lists, picture order count type 1, bad values).
type spsWriter struct {
	bits []byte
}

func (w *spsWriter) u(n int, v uint32) *spsWriter {
	for i := n - 1; i >= 0; i-- {
		w.bits = append(w.bits, byte(v>>uint(i))&1)
	}
	return w
}

func (w *spsWriter) ue(v uint32) *spsWriter {
	v++
	n := 0
	for x := v; x > 1; x >>= 1 {
		n++
	}
	return w.u(n, 0).u(n+1, v)
}

func (w *spsWriter) se(v int32) *spsWriter {
	if v > 0 {
		return w.ue(uint32(2*v - 1))
	}
	return w.ue(uint32(-2 * v))
}

// nalu ends the RBSP (stop bit, alignment) and returns it as an SPS NAL unit
// with emulation prevention applied.
func (w *spsWriter) nalu() []byte {
	w.u(1, 1)
	for len(w.bits)%8 != 0 {
		w.bits = append(w.bits, 0)
	}
	rbsp := make([]byte, len(w.bits)/8)
	for i, b := range w.bits {
		rbsp[i/8] |= b << (7 - uint(i%8))
	}
	out := []byte{0x67}
	zeros := 0
	for _, b := range rbsp {
		if zeros >= 2 && b <= 3 {
			out = append(out, 3)
			zeros = 0
		}
		out = append(out, b)
		if b == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	return out
}

// highSPS starts a high-profile SPS up to and including the scaling matrix flag.
func highSPS(matrix bool) *spsWriter {
	w := (&spsWriter{}).u(8, 100).u(8, 0).u(8, 40).ue(0)
	w.ue(1).ue(0).ue(0).u(1, 0)
	if matrix {
		return w.u(1, 1)
	}
	return w.u(1, 0)
}

// tail writes the rest of an SPS: POC type 2, size in macroblocks, cropping.
func (w *spsWriter) tail(wMBs, hMBs uint32, frameMBSOnly bool, crop ...uint32) *spsWriter {
	w.ue(0).ue(2).ue(1).u(1, 0).ue(wMBs - 1).ue(hMBs - 1)
	if frameMBSOnly {
		w.u(1, 1)
	} else {
		w.u(1, 0).u(1, 0)
	}
	w.u(1, 1)
	if len(crop) == 4 {
		w.u(1, 1)
		for _, c := range crop {
			w.ue(c)
		}
	} else {
		w.u(1, 0)
	}
	return w.u(1, 0) // vui_parameters_present_flag
}

func TestParseSPSSynthetic(t *testing.T) {
	// Scaling lists: list 0 explicit (16 deltas), list 6 (8×8) ended early by a
	// delta that makes next 0, the rest absent.
	w := highSPS(true).u(1, 1)
	for i := range 16 {
		w.se(int32(i % 3))
	}
	w.u(5, 0).u(1, 1).se(-8).u(1, 0)
	s, err := ParseSPS(w.tail(120, 68, true, 0, 0, 0, 4).nalu())
	if err != nil {
		t.Fatal(err)
	}
	if s.Codec() != "avc1.640028" || s.Width != 1920 || s.Height != 1080 || s.CropBottom != 8 {
		t.Fatalf("scaling lists: %+v", s)
	}
	// POC type 1 with a cycle of 3.
	w = (&spsWriter{}).u(8, 77).u(8, 0x40).u(8, 30).ue(3).ue(0).ue(1).u(1, 0).se(-2).se(5).ue(3).se(1).se(-1).se(7)
	w.ue(2).u(1, 0).ue(39).ue(29).u(1, 1).u(1, 1).u(1, 1).ue(1).ue(1).ue(0).ue(0).u(1, 0)
	if s, err = ParseSPS(w.nalu()); err != nil {
		t.Fatal(err)
	}
	if s.Codec() != "avc1.4D401E" || s.ID != 3 || s.Width != 636 || s.Height != 480 || s.CropLeft != 2 {
		t.Fatalf("poc type 1: %+v", s)
	}
	// Fields: map units are field macroblock pairs, crop units double.
	if s, err = ParseSPS(highSPS(false).tail(45, 23, false, 0, 0, 0, 2).nalu()); err != nil {
		t.Fatal(err)
	}
	if s.CodedHeight != 736 || s.Height != 728 || s.FrameMBSOnly {
		t.Fatalf("fields: %+v", s)
	}
}

func TestParseSPSErrors(t *testing.T) {
	good := mustHex(t, realSPS[0].hex)
	scaling := highSPS(true).u(1, 1).se(-200)
	for _, c := range []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "empty NAL unit"},
		{"not an SPS", mustHex(t, "68cb83cb20"), "NAL unit type is 8 (pps), not 7"},
		{"forbidden bit", append([]byte{0xe7}, good[1:]...), "forbidden_zero_bit"},
		{"too short", good[:3], "too short"},
		{"truncated", good[:6], "truncated"},
		{"long Exp-Golomb", append(good[:4:4], 0, 0, 0, 0, 0, 0), "longer than 32 bits"},
		{"sps id", (&spsWriter{}).u(24, 0x42c01f).ue(32).tail(80, 45, true).nalu(), "seq_parameter_set_id 32"},
		{"chroma format", (&spsWriter{}).u(24, 0x64001f).ue(0).ue(4).tail(80, 45, true).nalu(), "chroma_format_idc 4"},
		{"bit depth", (&spsWriter{}).u(24, 0x64001f).ue(0).ue(1).ue(7).ue(0).tail(80, 45, true).nalu(), "bit_depth_minus8 7/0"},
		{"scaling delta", scaling.tail(80, 45, true).nalu(), "delta_scale -200"},
		{"poc type", (&spsWriter{}).u(24, 0x42c01f).ue(0).ue(0).ue(3).tail(80, 45, true).nalu(), "pic_order_cnt_type 3"},
		{"frame num", (&spsWriter{}).u(24, 0x42c01f).ue(0).ue(13).nalu(), "log2_max_frame_num_minus4 13"},
		{"zero-width crop", (&spsWriter{}).u(24, 0x42c01f).ue(0).tail(1, 1, true, 4, 4, 0, 0).nalu(), "leaves nothing"},
		{"too wide", (&spsWriter{}).u(24, 0x42c01f).ue(0).tail(1025, 1, true).nalu(), "out of range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseSPS(c.in)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.msg) || !strings.HasPrefix(err.Error(), "failed to parse SPS: ") {
				t.Fatalf("err %v, want ErrMalformed with %q", err, c.msg)
			}
		})
	}
}

func FuzzSPS(f *testing.F) {
	for _, c := range realSPS {
		f.Add(mustHex(f, c.hex))
	}
	f.Add(highSPS(true).u(1, 1).se(3).tail(10, 10, false, 1, 1, 1, 1).nalu())
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSPS(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if s.Width <= 0 || s.Height <= 0 || s.Width > s.CodedWidth || s.Height > s.CodedHeight || s.CodedWidth > MaxDimension || s.CodedHeight > MaxDimension {
			t.Fatalf("bad size %+v", s)
		}
		if c := s.Codec(); len(c) != len("avc1.42C01F") {
			t.Fatalf("codec %q", c)
		}
	})
}

func FuzzSplit(f *testing.F) {
	f.Add(mustHex(f, "00000001"+realSPS[0].hex+"0000000168cb83cb20000001658884"))
	f.Add(mustHex(f, "000001650000030100"))
	f.Fuzz(func(t *testing.T, b []byte) {
		nalus, err := Split(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		// Joining the units with start codes gives back a stream that splits the same.
		var again []byte
		for _, n := range nalus {
			if len(n) == 0 || n[0]&0x80 != 0 || n[len(n)-1] == 0 || bytes.Contains(n, []byte{0, 0, 1}) {
				t.Fatalf("bad unit %x", n)
			}
			again = append(append(again, 0, 0, 0, 1), n...)
		}
		n2, err := Split(again)
		if err != nil || len(n2) != len(nalus) {
			t.Fatalf("re-split: %d units, %v; want %d", len(n2), err, len(nalus))
		}
		_, _ = Parse(b)
	})
}
