package segment

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/internal/h264enc"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestRoundTripH264 records real encoders' output and reads it back: every
// message comes back byte for byte, and ffprobe decodes every picture.
func TestRoundTripH264(t *testing.T) {
	ffAUs, ffKeys, ffConfig := ffmpegAUs(t, 320, 240, 150, 45)
	clip := testenv.MakeH264Clip(t, 320, 240, 150, 60)
	ohAUs, ohKeys, ohConfig := openH264AUs(t, 150)
	jitter := func(i int) time.Duration { return time.Duration(i*7919%2000) * time.Microsecond }
	for _, c := range []struct {
		name   string
		aus    [][]byte
		keys   []bool
		config frames.H264Config
		opt    *Options
		segs   int
	}{
		// x264's own start codes (3 and 4 bytes) and access unit delimiters.
		{"ffmpeg-raw", ffAUs, ffKeys, ffConfig, nil, 1},
		{"ffmpeg-raw-2s-segments", ffAUs, ffKeys, ffConfig, &Options{Target: 2 * time.Second}, 2},
		{"testenv-clip", clip.AUs, clip.Key, clip.Config, &Options{Target: 1500 * time.Millisecond}, 3},
		// What framecast's sender sends: OpenH264, a keyframe every second.
		{"openh264", ohAUs, ohKeys, ohConfig, &Options{Target: 1500 * time.Millisecond}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := h264Stream(t, c.config, c.aus, c.keys, time.Second/30, jitter)
			w := NewWriter("cam", frames.CodecH264, c.opt)
			segs := record(t, w, in, true)
			if len(segs) != c.segs {
				t.Fatalf("%d segments, want %d", len(segs), c.segs)
			}
			var all []*frames.Frame
			for i, s := range segs {
				got, info, err := Read(s.data)
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				sameFrames(t, got, s.in)
				all = append(all, got...)
				if !info.Sealed || info.Summary != s.sum || info.Bytes != int64(len(s.data)) {
					t.Fatalf("segment %d: info %+v sealed %v, writer's summary %+v (%d bytes)", i, info.Summary, info.Sealed, s.sum, len(s.data))
				}
				if idx, err := ReadIndex(s.data); err != nil || idx.Summary(int64(len(s.data))) != s.sum {
					t.Fatalf("segment %d: the index box's summary %+v, %v; want %+v", i, idx.Summary(int64(len(s.data))), err, s.sum)
				}
				if info.Stream != (frames.Stream{Room: "cam", Codec: frames.CodecH264}) || info.Width != 320 || info.Height != 240 {
					t.Fatalf("segment %d: stream %v %d×%d", i, info.Stream, info.Width, info.Height)
				}
				if info.Config == nil || !bytes.Equal(info.Config.Payload, s.in[0].Payload) || s.in[0].Kind != frames.KindH264Config {
					t.Fatalf("segment %d does not begin with its configuration", i)
				}
				for j, p := range info.Parts {
					if p.Frames > 0 && j > 0 && p.Start.Sub(info.Parts[j-1].Start) > time.Second+34*time.Millisecond {
						t.Errorf("segment %d part %d starts %v after the one before", i, j, p.Start.Sub(info.Parts[j-1].Start))
					}
				}
				for _, f := range got {
					if f.Room != "cam" || f.Layer != 0 || f.Width != 320 {
						t.Fatalf("frame %d: room %q layer %d width %d", f.Seq, f.Room, f.Layer, f.Width)
					}
				}
				if i > 0 && !segs[i-1].sum.End.Equal(s.sum.Start) {
					t.Errorf("segment %d starts at %v, the one before ends at %v", i, s.sum.Start, segs[i-1].sum.End)
				}
				pictures := 0
				for _, f := range s.in {
					if f.Kind != frames.KindH264Config {
						pictures++
					}
				}
				p := ffprobe(t, s.data, "mp4")
				if st := p.Streams[0]; st.CodecName != "h264" || st.Width != 320 || st.NbReadFrames != strconv.Itoa(pictures) {
					t.Fatalf("segment %d: ffprobe: %+v, want h264 320 wide, %d frames", i, st, pictures)
				}
				checkTimes(t, p, s.in)
			}
			sameFrames(t, all, in)
		})
	}
}

// checkTimes checks that ffprobe's packet times are the capture times
// (relative to the first one) to the 90 kHz clock.
func checkTimes(t *testing.T, p probe, in []*frames.Frame) {
	t.Helper()
	var pics []*frames.Frame
	for _, f := range in {
		if f.Kind != frames.KindH264Config {
			pics = append(pics, f)
		}
	}
	if len(p.Packets) != len(pics) {
		t.Fatalf("%d packets, %d pictures", len(p.Packets), len(pics))
	}
	for i, pk := range p.Packets {
		got, err := strconv.ParseFloat(pk.DTSTime, 64)
		if err != nil {
			t.Fatalf("packet %d: dts %q", i, pk.DTSTime)
		}
		want := pics[i].Captured.Sub(in[0].Captured).Seconds()
		if math.Abs(got-want) > 1.0/90000 {
			t.Fatalf("packet %d: dts %.6f s, captured %.6f s after the segment's start", i, got, want)
		}
	}
}

// openH264AUs encodes n pictures of the project's test clip at 320×240
// with OpenH264 (internal/h264enc, as cmd/sender does), a keyframe every
// second.
func openH264AUs(t *testing.T, n int) ([][]byte, []bool, frames.H264Config) {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg")
	c := testclip.Clip{Width: 320, Height: 240, FPS: 30, Frames: n, Noise: 8}
	r, err := testclip.Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	enc, err := h264enc.New(h264enc.Options{Width: 320, Height: 240, FPS: 30, KeyInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	var aus [][]byte
	var keys []bool
	for {
		pic, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		au, key, err := enc.Encode(pic, false)
		if err != nil {
			t.Fatal(err)
		}
		aus = append(aus, bytes.Clone(au))
		keys = append(keys, key)
	}
	return aus, keys, configOf(t, aus[0])
}

// TestStartCodeForms: access units whose start codes are not the common
// 00 00 00 01 still come back byte for byte.
func TestStartCodeForms(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 64, 48, 2, 2)
	nalus := [][]byte{{0x09, 0xF0}, {0x06, 0x05, 0x01, 0x80}, {0x65, 0x88, 0x84, 0x00, 0x21}}
	build := func(zeros []int, tail int) []byte {
		var b []byte
		for i, n := range nalus {
			b = append(b, make([]byte, zeros[i])...)
			b = append(append(b, 1), n...)
		}
		return append(b, make([]byte, tail)...)
	}
	for _, c := range []struct {
		name  string
		zeros []int
		tail  int
		form  byte
	}{
		{"four-byte", []int{3, 3, 3}, 0, formSample},
		{"three-byte", []int{2, 2, 2}, 0, formStartCodes},
		{"mixed", []int{3, 2, 3}, 0, formStartCodes},
		{"trailing-zeros", []int{3, 3, 3}, 2, formStartCodes},
		{"long-start-code", []int{3, 6, 3}, 0, formStartCodes},
		{"many-zeros", []int{3, 300, 3}, 0, formInline},
		{"many-trailing", []int{3, 3, 3}, 256, formInline},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := build(c.zeros, c.tail)
			in := []*frames.Frame{
				mustFrame(t, frames.KindH264Config, 1, t0, frames.AppendH264Config(nil, clip.Config)),
				mustFrame(t, frames.KindH264Key, 1, t0, key),
				mustFrame(t, frames.KindH264Delta, 2, t0.Add(time.Second/30), build([]int{2, 3, 2}, 1)),
			}
			w := NewWriter("cam", frames.CodecH264, nil)
			segs := record(t, w, in, true)
			m := message{kind: frames.KindH264Key, payload: key}
			m.nalus, _ = avc.Split(key)
			m.setForm()
			if m.form != c.form {
				t.Errorf("form %d, want %d", m.form, c.form)
			}
			got, _, err := Read(segs[0].data)
			if err != nil {
				t.Fatal(err)
			}
			sameFrames(t, got, in)
		})
	}
}

// TestSteps checks where segments and parts begin.
func TestSteps(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 64, 48, 2, 2)
	cfg := frames.AppendH264Config(nil, clip.Config)
	other := clip.Config
	other.Width = 80
	cfg2 := frames.AppendH264Config(nil, other)
	jpeg := testenv.JPEG(t, 64, 48, 1, 0)
	jpeg2 := testenv.JPEG(t, 32, 48, 1, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	type in struct {
		kind frames.Kind
		at   time.Time
		want Step
		mod  func(*frames.Frame)
	}
	for _, c := range []struct {
		name  string
		codec frames.Codec
		steps []in
	}{
		{"jpeg", frames.CodecJPEG, []in{
			{frames.KindOffline, ms(0), StepSkip, nil},
			{frames.KindJPEG, ms(0), StepSegment, nil},
			{frames.KindJPEG, ms(33), StepAdd, nil},
			{frames.KindJPEG, ms(999), StepAdd, nil},
			{frames.KindJPEG, ms(1000), StepPart, nil}, // a second after the part's first
			{frames.KindJPEG, ms(1100), StepAdd, nil},
			{frames.KindJPEG, ms(10000), StepSegment, nil}, // the target
			{frames.KindJPEG, ms(10033), StepAdd, nil},
			{frames.KindJPEG, ms(12100), StepSegment, nil}, // a pause of over 2 s
			{frames.KindJPEG, ms(12000), StepSegment, nil}, // time went back
			{frames.KindJPEG, ms(12033), StepAdd, nil},
			{frames.KindJPEG, ms(12066), StepSegment, func(f *frames.Frame) { *f = *mustFrame(t, frames.KindJPEG, 99, ms(12066), jpeg2) }},
			{frames.KindJPEG, ms(12099), StepAdd, func(f *frames.Frame) { f.Layer = 1 }}, // not our layer: see below
			{frames.KindH264Key, ms(12100), StepSkip, nil},
		}},
		{"h264", frames.CodecH264, []in{
			{frames.KindH264Delta, ms(0), StepSkip, nil},
			{frames.KindH264Key, ms(0), StepSkip, nil}, // no configuration yet
			{frames.KindH264Config, ms(33), StepSegment, nil},
			{frames.KindH264Key, ms(33), StepAdd, nil},
			{frames.KindH264Delta, ms(66), StepAdd, nil},
			{frames.KindH264Delta, ms(1033), StepPart, nil},
			{frames.KindH264Config, ms(1066), StepPart, nil}, // every keyframe starts a part
			{frames.KindH264Key, ms(1066), StepAdd, nil},
			{frames.KindH264Key, ms(1100), StepPart, nil}, // a keyframe without a configuration
			{frames.KindH264Delta, ms(1133), StepAdd, nil},
			{frames.KindH264Delta, ms(10100), StepPart, nil}, // past the target: a delta cannot begin a segment
			{frames.KindH264Config, ms(10133), StepSegment, nil},
			{frames.KindH264Key, ms(10133), StepAdd, nil},
			{frames.KindH264Delta, ms(10166), StepAdd, nil},
			{frames.KindH264Config, ms(10200), StepSegment, func(f *frames.Frame) { *f = *mustFrame(t, frames.KindH264Config, 9, ms(10200), cfg2) }},
			{frames.KindH264Key, ms(10200), StepAdd, nil},
			{frames.KindH264Key, ms(20200), StepSegment, nil}, // a keyframe alone can begin one too
			{frames.KindJPEG, ms(20233), StepSkip, nil},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := NewWriter("cam", c.codec, nil)
			for i, s := range c.steps {
				var payload []byte
				switch s.kind {
				case frames.KindJPEG:
					payload = jpeg
				case frames.KindH264Config:
					payload = cfg
				case frames.KindH264Key:
					payload = clip.AUs[0]
				case frames.KindH264Delta:
					payload = clip.AUs[1]
				}
				f := mustFrame(t, s.kind, uint64(i), s.at, payload)
				want := s.want
				if s.mod != nil {
					s.mod(f)
					if f.Layer != 0 {
						want = StepSkip
					}
				}
				got := w.Step(f)
				if got != want {
					t.Fatalf("step %d (kind %d at +%v): %s, want %s", i, s.kind, s.at.Sub(t0), got, want)
				}
				switch got {
				case StepSegment:
					if w.Open() {
						if _, _, err := w.End(); err != nil {
							t.Fatal(err)
						}
					}
					if _, err := w.Begin(f); err != nil {
						t.Fatal(err)
					}
				case StepPart:
					if _, err := w.Flush(); err != nil {
						t.Fatal(err)
					}
					fallthrough
				case StepAdd:
					if err := w.Add(f); err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
				}
			}
		})
	}
}

func TestOverdue(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 64, 48, 2, 2)
	w := NewWriter("cam", frames.CodecH264, &Options{Target: time.Second})
	in := []*frames.Frame{mustFrame(t, frames.KindH264Config, 1, t0, frames.AppendH264Config(nil, clip.Config)),
		mustFrame(t, frames.KindH264Key, 1, t0, clip.AUs[0])}
	for i := 2; i < 100; i++ {
		in = append(in, mustFrame(t, frames.KindH264Delta, uint64(i), t0.Add(time.Duration(i)*time.Second/30), clip.AUs[1]))
	}
	record(t, w, in[:90], false) // 2.97 s: target 1 s + MaxGap 2 s
	if w.Overdue() {
		t.Fatal("overdue before the target and MaxGap")
	}
	record(t, w, in[90:], false)
	if !w.Overdue() {
		t.Fatal("not overdue 3.3 s into a 1 s segment without a keyframe")
	}
}

// TestErrors: calls out of turn and frames that cannot be recorded fail
// with the package's errors and leave the writer usable.
func TestErrors(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 64, 48, 2, 2)
	cfg := mustFrame(t, frames.KindH264Config, 1, t0, frames.AppendH264Config(nil, clip.Config))
	key := mustFrame(t, frames.KindH264Key, 1, t0, clip.AUs[0])
	w := NewWriter("cam", frames.CodecH264, nil)
	if err := w.Add(key); !errors.Is(err, ErrOrder) {
		t.Fatalf("Add before Begin: %v", err)
	}
	if _, err := w.Begin(key); !errors.Is(err, ErrOrder) {
		t.Fatalf("Begin with a keyframe and no configuration: %v", err)
	}
	if _, _, err := w.End(); !errors.Is(err, ErrOrder) {
		t.Fatalf("End before Begin: %v", err)
	}
	noSPS := frames.AppendH264Config(nil, frames.H264Config{Codec: "avc1.42E01F", Width: 64, Height: 48, ParamSets: []byte{0, 0, 0, 1, 0x68, 0xCE}})
	if _, err := w.Begin(mustFrame(t, frames.KindH264Config, 1, t0, noSPS)); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("Begin with a configuration without SPS: %v", err)
	}
	if _, err := w.Begin(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Begin(cfg); !errors.Is(err, ErrOrder) {
		t.Fatalf("Begin twice: %v", err)
	}
	bad := mustFrame(t, frames.KindH264Key, 2, t0, []byte{0, 0, 1, 0, 0, 1, 0x65})
	if err := w.Add(bad); !errors.Is(err, ErrBadFrame) {
		t.Fatalf("Add of an access unit with an empty NAL unit: %v", err)
	}
	if err := w.Add(key); err != nil {
		t.Fatal(err)
	}
	late := mustFrame(t, frames.KindH264Delta, 3, t0.Add(2*time.Second), clip.AUs[1])
	if err := w.Add(late); !errors.Is(err, ErrOrder) {
		t.Fatalf("Add of a frame that needs a new part: %v", err)
	}
	b, sum, err := w.End()
	if err != nil || sum.Frames != 2 || len(b) == 0 {
		t.Fatalf("End: %d frames, %v", sum.Frames, err)
	}
}

// TestJPEG records JPEG streams: exact round trip, ffprobe reads the
// M-JPEG track, a size change begins a segment.
func TestJPEG(t *testing.T) {
	in := append(jpegStream(t, 64, 48, 45, 40*time.Millisecond), jpegStream(t, 32, 32, 10, 40*time.Millisecond)...)
	for i, f := range in[45:] {
		in[45+i] = mustFrame(t, frames.KindJPEG, uint64(46+i), t0.Add(time.Duration(45+i)*40*time.Millisecond), f.Payload)
	}
	w := NewWriter("lobby", frames.CodecJPEG, &Options{Target: time.Second})
	segs := record(t, w, in, true)
	wantSizes := [][2]int{{64, 48}, {64, 48}, {32, 32}}
	if len(segs) != len(wantSizes) {
		t.Fatalf("%d segments, want %d", len(segs), len(wantSizes))
	}
	var all []*frames.Frame
	for i, s := range segs {
		got, info, err := Read(s.data)
		if err != nil {
			t.Fatal(err)
		}
		sameFrames(t, got, s.in)
		all = append(all, got...)
		if info.Width != wantSizes[i][0] || info.Height != wantSizes[i][1] || info.Config != nil {
			t.Fatalf("segment %d: %d×%d config %v", i, info.Width, info.Height, info.Config)
		}
		p := ffprobe(t, s.data, "mp4")
		if st := p.Streams[0]; st.CodecName != "mjpeg" || st.Width != wantSizes[i][0] || st.NbReadFrames != strconv.Itoa(len(s.in)) {
			t.Fatalf("segment %d: ffprobe %+v", i, st)
		}
		checkTimes(t, p, s.in)
	}
	sameFrames(t, all, in)
}

// journal records fs without ending the segment: what a recorder killed
// after its last Flush leaves. It returns the bytes, the frames of each
// part, and where each part ends.
func journal(t *testing.T, fs []*frames.Frame) ([]byte, [][]*frames.Frame, []int) {
	t.Helper()
	w := NewWriter("cam", frames.CodecH264, nil)
	segs := record(t, w, fs, false)
	if len(segs) != 1 {
		t.Fatalf("%d segments", len(segs))
	}
	_, info, err := Read(segs[0].data)
	if err != nil {
		t.Fatal(err)
	}
	var parts [][]*frames.Frame
	var ends []int
	i := 0
	for _, p := range info.Parts {
		parts = append(parts, segs[0].in[i:i+p.Frames])
		i += p.Frames
		ends = append(ends, int(p.Offset+p.Size))
	}
	return segs[0].data, parts, ends
}

// TestTornJournal cuts a journal at many points inside its last part:
// Read returns the parts before it and ErrTorn, never a partial part.
func TestTornJournal(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 160, 120, 75, 30)
	in := h264Stream(t, clip.Config, clip.AUs, clip.Key, time.Second/30, nil)
	data, parts, ends := journal(t, in)
	if len(parts) < 3 {
		t.Fatalf("%d parts", len(parts))
	}
	n := len(parts)
	var before []*frames.Frame
	for _, p := range parts[:n-1] {
		before = append(before, p...)
	}
	lastStart := ends[n-2]
	cuts := []int{lastStart + 1, lastStart + 8, lastStart + 30, len(data) - 1}
	for cut := lastStart; cut < len(data); cut += 997 {
		cuts = append(cuts, cut)
	}
	for _, cut := range cuts {
		t.Run(strconv.Itoa(cut), func(t *testing.T) {
			got, info, err := Read(data[:cut])
			if cut == lastStart {
				if err != nil {
					t.Fatalf("cut at a part boundary: %v", err)
				}
			} else if !errors.Is(err, ErrTorn) {
				t.Fatalf("err %v, want ErrTorn", err)
			}
			sameFrames(t, got, before)
			if info.Bytes != int64(lastStart) || len(info.Parts) != n-1 || info.Sealed {
				t.Fatalf("info: %d bytes, %d parts, sealed %v", info.Bytes, len(info.Parts), info.Sealed)
			}
		})
	}
	for _, cut := range []int{0, 5, 20, int(ends[0]) - len(parts[0][0].Payload)} {
		if _, info, err := Read(data[:cut]); info != nil && len(info.Parts) > 0 || err == nil {
			t.Errorf("cut at %d: info %v, err %v", cut, info, err)
		}
	}
}

// TestCorruptPart: a part whose box and moof disagree, or whose bytes
// changed, is refused with ErrCorrupt after the parts before it.
func TestCorruptPart(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 160, 120, 75, 30)
	in := h264Stream(t, clip.Config, clip.AUs, clip.Key, time.Second/30, nil)
	data, parts, ends := journal(t, in)
	second := ends[0] // where the second part begins
	for _, c := range []struct {
		name string
		mod  func(b []byte)
	}{
		{"mdat-byte", func(b []byte) { b[ends[1]-10] ^= 0x40 }},
		{"box-byte", func(b []byte) { b[second+uuidHead+20] ^= 1 }},
		{"sequence-number", func(b []byte) {
			// the box says another moof sequence number, with a right checksum
			p := b[second+uuidHead : second+int(beU32(b[second:]))]
			p[5]++
			putCRC(p)
		}},
		{"message-count", func(b []byte) {
			p := b[second+uuidHead : second+int(beU32(b[second:]))]
			p[13]--
			putCRC(p)
		}},
		{"box-type", func(b []byte) { copy(b[second+4:], "free") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(data)
			c.mod(b)
			got, _, err := Read(b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, want ErrCorrupt", err)
			}
			t.Log(err)
			sameFrames(t, got, parts[0])
		})
	}
}

func beU32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func putCRC(p []byte) {
	body := p[:len(p)-4]
	c := crc32.Checksum(body, castagnoli)
	p[len(p)-4], p[len(p)-3], p[len(p)-2], p[len(p)-1] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
}

// TestRepairAndRanges: a torn journal is repaired into a sealed segment
// whose index box lets a reader fetch any part by byte range.
func TestRepairAndRanges(t *testing.T) {
	clip := testenv.MakeH264Clip(t, 160, 120, 120, 30)
	in := h264Stream(t, clip.Config, clip.AUs, clip.Key, time.Second/30, nil)
	data, parts, _ := journal(t, in)
	torn := data[:len(data)-100]
	fixed, info, err := Repair(torn)
	if !errors.Is(err, ErrTorn) || info == nil || !info.Sealed {
		t.Fatalf("Repair: %v, %+v", err, info)
	}
	var want []*frames.Frame
	for _, p := range parts[:len(parts)-1] {
		want = append(want, p...)
	}
	got, info2, err := Read(fixed)
	if err != nil || !info2.Sealed || info2.Summary != info.Summary || info2.Bytes != int64(len(fixed)) {
		t.Fatalf("Read(repaired): %v sealed %v %+v / %+v", err, info2.Sealed, info2.Summary, info.Summary)
	}
	sameFrames(t, got, want)
	again, _, err := Repair(fixed)
	if err != nil || !bytes.Equal(again, fixed) {
		t.Fatalf("Repair of a sealed segment changed it: %v", err)
	}
	if p := ffprobe(t, fixed, "mp4"); p.Streams[0].CodecName != "h264" {
		t.Fatal("ffprobe does not read the repaired segment")
	}

	// Byte ranges: the index from the tail, the init, then parts 2 and 3.
	idx, err := ReadIndex(fixed[len(fixed)-IndexTail:])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadIndex(fixed[len(fixed)-40:]); !errors.As(err, new(*ShortTailError)) {
		t.Fatalf("ReadIndex of a short tail: %v", err)
	}
	if len(idx.Parts) != len(info2.Parts) || idx.InitSize != info2.InitSize || !idx.End.Equal(info2.End) {
		t.Fatalf("index %+v, segment %+v", idx, info2)
	}
	initInfo, err := ReadInit(fixed[:idx.InitSize])
	if err != nil {
		t.Fatal(err)
	}
	from, to := idx.Parts[1].Offset, idx.Parts[2].Offset+idx.Parts[2].Size
	rng, pis, err := ReadParts(initInfo, fixed[from:to], from)
	if err != nil {
		t.Fatal(err)
	}
	sameFrames(t, rng, append(append([]*frames.Frame(nil), parts[1]...), parts[2]...))
	if pis[0] != idx.Parts[1] || pis[1] != idx.Parts[2] {
		t.Fatalf("ReadParts' parts %+v, index %+v", pis, idx.Parts[1:3])
	}
	if _, _, err := ReadParts(initInfo, fixed[from:to-1], from); !errors.Is(err, ErrTorn) {
		t.Fatalf("a range cut short: %v", err)
	}

	// A journal holding only its init repairs to a segment of no frames.
	w := NewWriter("cam", frames.CodecH264, nil)
	b, err := w.Begin(in[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, info, err := Repair(b); err != nil || info.Frames != 0 {
		t.Fatalf("Repair of an init only: %v, %+v", err, info)
	}
}

// TestTimerFlush: a part flushed by a timer (the publisher paused) guesses
// its last duration; the next part's decode time follows the capture
// times again.
func TestTimerFlush(t *testing.T) {
	in := jpegStream(t, 32, 32, 20, 100*time.Millisecond)
	for i := 5; i < len(in); i++ { // a 1.1 s pause after the fifth frame
		in[i] = mustFrame(t, frames.KindJPEG, in[i].Seq, in[i].Captured.Add(time.Second), in[i].Payload)
	}
	w := NewWriter("cam", frames.CodecJPEG, nil)
	data, err := w.Begin(in[0])
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range in[1:] {
		if i == 4 { // the timer fires before frame 5 arrives
			b, err := w.Flush()
			if err != nil || len(b) == 0 {
				t.Fatalf("timer Flush: %d bytes, %v", len(b), err)
			}
			data = append(data, b...)
		}
		switch s := w.Step(f); s {
		case StepPart:
			b, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			data = append(data, b...)
		case StepAdd:
		default:
			t.Fatalf("frame %d: %s", f.Seq, s)
		}
		if err := w.Add(f); err != nil {
			t.Fatal(err)
		}
	}
	b, sum, err := w.End()
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, b...)
	got, _, err := Read(data)
	if err != nil {
		t.Fatal(err)
	}
	sameFrames(t, got, in)
	if want := in[len(in)-1].Captured.Add(100 * time.Millisecond); !sum.End.Equal(want) {
		t.Errorf("End %v, want %v (the last frame plus the interval before it)", sum.End, want)
	}
	checkTimes(t, ffprobe(t, data, "mp4"), in)
}
