package segment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// t0 is the capture time of the tests' first frames.
var t0 = time.Date(2026, 12, 7, 14, 3, 0, 125_000_000, time.UTC)

func mustFrame(t testing.TB, k frames.Kind, seq uint64, at time.Time, payload []byte) *frames.Frame {
	t.Helper()
	f, err := frames.New(k, seq, at.Truncate(time.Microsecond), payload, 0) // µs, as on the wire
	if err != nil {
		t.Fatalf("frame %d: %v", seq, err)
	}
	return f
}

// h264Stream makes the messages a publisher sends for access units aus
// (keyframes where key says), as framecast's sender does: a configuration
// in front of every keyframe with the keyframe's sequence number and
// capture time. Picture i is captured at t0 + i×interval + jitter(i).
func h264Stream(t testing.TB, config frames.H264Config, aus [][]byte, key []bool, interval time.Duration, jitter func(int) time.Duration) []*frames.Frame {
	t.Helper()
	cfg := frames.AppendH264Config(nil, config)
	var out []*frames.Frame
	for i, au := range aus {
		at := t0.Add(time.Duration(i) * interval)
		if jitter != nil {
			at = at.Add(jitter(i))
		}
		seq := uint64(100 + i)
		kind := frames.KindH264Delta
		if key[i] {
			kind = frames.KindH264Key
			out = append(out, mustFrame(t, frames.KindH264Config, seq, at, cfg))
		}
		out = append(out, mustFrame(t, kind, seq, at, au))
	}
	return out
}

// ffmpegAUs encodes n pictures with ffmpeg's libx264 (baseline, no
// B-frames, a keyframe every gop) and cuts its Annex-B output at the
// access unit delimiters, keeping every byte as ffmpeg wrote it (x264
// mixes 3- and 4-byte start codes). testenv.MakeH264Clip runs the same
// encoder but rewrites every start code to 4 bytes, which would hide
// exactly what the round trip must keep. It returns the access units, which
// are keyframes, and the configuration of the first keyframe.
func ffmpegAUs(t testing.TB, w, h, n, gop int) ([][]byte, []bool, frames.H264Config) {
	t.Helper()
	testenv.RequireTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=30", w, h), "-frames:v", strconv.Itoa(n),
		"-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-bf", "0",
		"-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0",
		"-x264-params", "aud=1:repeat-headers=1", "-f", "h264", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, stderr.String())
	}
	nalus, err := avc.Split(out)
	if err != nil {
		t.Fatal(err)
	}
	// An access unit runs from its delimiter's start code to the next one's.
	var starts []int
	for _, nalu := range nalus {
		if avc.Type(nalu) == avc.NALAUD {
			at := cap(out) - cap(nalu) - 3 // its 00 00 01
			for at > 0 && out[at-1] == 0 {
				at-- // the zeros in front belong to the start code
			}
			starts = append(starts, at)
		}
	}
	var aus [][]byte
	var keys []bool
	var config frames.H264Config
	for i, s := range starts {
		end := len(out)
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		au := out[s:end]
		a, err := avc.Parse(au)
		if err != nil {
			t.Fatal(err)
		}
		if a.Key && config.Codec == "" {
			config = configOf(t, au)
		}
		aus = append(aus, au)
		keys = append(keys, a.Key)
	}
	if len(aus) != n || !keys[0] {
		t.Fatalf("%d access units, want %d", len(aus), n)
	}
	return aus, keys, config
}

// recorded is one segment a test recorded.
type recorded struct {
	data []byte
	sum  Summary
	in   []*frames.Frame // the frames given to it
}

// record drives w with fs the way a recorder does (see Writer) and
// returns the segments, the last one ended when end is set, else left as
// a journal (its data without an index box). When w has a segment open
// already, the first one returned holds only what record added to it.
func record(t testing.TB, w *Writer, fs []*frames.Frame, end bool) []recorded {
	t.Helper()
	var segs []recorded
	if w.Open() {
		segs = append(segs, recorded{})
	}
	cur := func() *recorded { return &segs[len(segs)-1] }
	for _, f := range fs {
		switch w.Step(f) {
		case StepSkip:
			continue
		case StepSegment:
			if w.Open() {
				b, sum, err := w.End()
				if err != nil {
					t.Fatal(err)
				}
				cur().data = append(cur().data, b...)
				cur().sum = sum
			}
			b, err := w.Begin(f)
			if err != nil {
				t.Fatal(err)
			}
			segs = append(segs, recorded{data: b})
		case StepPart:
			b, err := w.Flush()
			if err != nil {
				t.Fatal(err)
			}
			cur().data = append(cur().data, b...)
			fallthrough
		case StepAdd:
			if err := w.Add(f); err != nil {
				t.Fatal(err)
			}
		}
		cur().in = append(cur().in, f)
	}
	if len(segs) == 0 {
		return nil
	}
	if end {
		b, sum, err := w.End()
		if err != nil {
			t.Fatal(err)
		}
		cur().data = append(cur().data, b...)
		cur().sum = sum
	} else {
		b, err := w.Flush()
		if err != nil {
			t.Fatal(err)
		}
		cur().data = append(cur().data, b...)
	}
	return segs
}

// sameFrames checks that got are want, message by message, in kind,
// sequence number, capture time and payload.
func sameFrames(t testing.TB, got, want []*frames.Frame) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Kind != w.Kind || g.Seq != w.Seq || !g.Captured.Equal(w.Captured) || !bytes.Equal(g.Payload, w.Payload) {
			t.Fatalf("frame %d: kind %d seq %d at %v, %d bytes; want kind %d seq %d at %v, %d bytes (payload equal: %v)",
				i, g.Kind, g.Seq, g.Captured, len(g.Payload), w.Kind, w.Seq, w.Captured, len(w.Payload), bytes.Equal(g.Payload, w.Payload))
		}
	}
}

// probe is what ffprobe says about a file.
type probe struct {
	Streams []struct {
		CodecName    string `json:"codec_name"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		NbReadFrames string `json:"nb_read_frames"`
		NbFrames     string `json:"nb_frames"`
		Duration     string `json:"duration"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
	} `json:"format"`
	Packets []struct {
		PTSTime string `json:"pts_time"`
		DTSTime string `json:"dts_time"`
	} `json:"packets"`
}

// ffprobe decodes every frame of data with ffprobe (-count_frames) and
// returns what it reports; ffprobe's complaints fail the test.
func ffprobe(t testing.TB, data []byte, ext string) probe {
	t.Helper()
	testenv.RequireTool(t, "ffprobe")
	path := filepath.Join(t.TempDir(), "probe."+ext)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format", "-show_packets",
		"-print_format", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe: %v: %s", err, stderr.String())
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Streams) != 1 {
		t.Fatalf("ffprobe finds %d streams", len(p.Streams))
	}
	return p
}

// topBoxes lists the top-level box types of an MP4 file.
func topBoxes(t testing.TB, data []byte) []string {
	t.Helper()
	var types []string
	for off := 0; off < len(data); {
		b, err := nextBox(data, off)
		if err != nil {
			t.Fatalf("box at %d: %v", off, err)
		}
		types = append(types, string(b.typ[:]))
		off = b.end
	}
	return types
}

// jpegStream makes n JPEG frames of w×h captured every interval.
func jpegStream(t testing.TB, w, h, n int, interval time.Duration) []*frames.Frame {
	t.Helper()
	out := make([]*frames.Frame, n)
	for i := range out {
		out[i] = mustFrame(t, frames.KindJPEG, uint64(i+1), t0.Add(time.Duration(i)*interval), testenv.JPEG(t, w, h, i, 0))
	}
	return out
}

// configOf is the configuration of a keyframe, as the sender makes it.
func configOf(t testing.TB, key []byte) frames.H264Config {
	t.Helper()
	a, err := avc.Parse(key)
	if err != nil || a.SPS == nil || a.PPS == nil {
		t.Fatalf("not a keyframe with SPS and PPS: %v", err)
	}
	sps, err := avc.ParseSPS(a.SPS)
	if err != nil {
		t.Fatal(err)
	}
	ps := append(append([]byte{0, 0, 0, 1}, a.SPS...), append([]byte{0, 0, 0, 1}, a.PPS...)...)
	return frames.H264Config{Codec: sps.Codec(), Width: sps.Width, Height: sps.Height, ParamSets: ps}
}
