package testclip

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/pkg/frames"
)

// H264Clip is a pre-encoded H.264 stream cut into access units, as tests'
// and the load generator's H.264 publishers play it.
type H264Clip struct {
	// AUs are the Annex-B access units in decoding order, without their
	// access unit delimiters.
	AUs [][]byte
	// Key[i] reports whether AUs[i] is a keyframe (an IDR picture).
	Key []bool
	// Config is the decoder configuration sent before every keyframe:
	// the codec string from the first keyframe's SPS, the coded size and
	// its SPS and PPS.
	Config frames.H264Config
}

// Keyframes counts the clip's keyframes.
func (c *H264Clip) Keyframes() int {
	n := 0
	for _, k := range c.Key {
		if k {
			n++
		}
	}
	return n
}

// Bytes is the size of all the clip's access units.
func (c *H264Clip) Bytes() int {
	n := 0
	for _, au := range c.AUs {
		n += len(au)
	}
	return n
}

// SplitH264 cuts an Annex-B stream whose access units each start with an
// access unit delimiter (x264's aud=1) into an H264Clip. The first access
// unit must be a keyframe that carries its SPS and PPS (repeat-headers=1
// puts them in front of every keyframe); every access unit must hold a
// slice.
func SplitH264(stream []byte) (*H264Clip, error) {
	nalus, err := avc.Split(stream)
	if err != nil {
		return nil, fmt.Errorf("testclip: H.264 clip: %w", err)
	}
	c := &H264Clip{}
	var cur []byte
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		au, err := avc.Parse(cur)
		if err != nil {
			return fmt.Errorf("testclip: H.264 clip: access unit %d: %w", len(c.AUs), err)
		}
		if len(c.AUs) == 0 {
			if !au.Key || au.SPS == nil || au.PPS == nil {
				return fmt.Errorf("testclip: H.264 clip: the first access unit is not a keyframe with its SPS and PPS (key %v, SPS %v, PPS %v)",
					au.Key, au.SPS != nil, au.PPS != nil)
			}
			sps, err := avc.ParseSPS(au.SPS)
			if err != nil {
				return fmt.Errorf("testclip: H.264 clip: %w", err)
			}
			ps := append(append([]byte{0, 0, 0, 1}, au.SPS...), append([]byte{0, 0, 0, 1}, au.PPS...)...)
			c.Config = frames.H264Config{Codec: sps.Codec(), Width: sps.Width, Height: sps.Height, ParamSets: ps}
		}
		c.AUs = append(c.AUs, cur)
		c.Key = append(c.Key, au.Key)
		cur = nil
		return nil
	}
	sawAUD := false
	for _, nalu := range nalus {
		if avc.Type(nalu) == avc.NALAUD {
			sawAUD = true
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		cur = append(append(cur, 0, 0, 0, 1), nalu...)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	switch {
	case !sawAUD:
		return nil, fmt.Errorf("testclip: H.264 clip: no access unit delimiters (encode with x264's aud=1)")
	case len(c.AUs) == 0:
		return nil, fmt.Errorf("testclip: H.264 clip: no access units")
	}
	return c, nil
}

// ReadH264Clip reads an Annex-B file (as MakeH264Clip writes it) and
// splits it.
func ReadH264Clip(path string) (*H264Clip, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("testclip: failed to read the H.264 clip: %w", err)
	}
	return SplitH264(b)
}

// H264ClipSpec is an H.264 clip to encode: Clip's pictures encoded by
// libx264, constrained baseline, no B-frames, an access unit delimiter in
// front of every picture and the parameter sets in front of every
// keyframe.
type H264ClipSpec struct {
	Clip Clip
	// Kbps is the target bitrate in kbit/s (-b:v, -maxrate; -bufsize half
	// of it, as S11's libx264 rows). 0: libx264's default constant quality
	// (CRF 23), no rate cap.
	Kbps int
	// GOP is the keyframe interval in pictures (-g, -keyint_min; no scene
	// cuts).
	GOP int
	// Live encodes as a camera's live encoder would: libx264's veryfast
	// preset tuned for zero latency (no look-ahead). Off: libx264's
	// defaults (preset medium, with look-ahead).
	Live bool
}

// FFmpegArgs are ffmpeg's arguments to write the clip to path.
func (s H264ClipSpec) FFmpegArgs(path string) []string {
	a := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", s.Clip.Filter(),
		"-frames:v", strconv.Itoa(s.Clip.Frames), "-c:v", "libx264"}
	if s.Live {
		a = append(a, "-preset", "veryfast", "-tune", "zerolatency")
	}
	a = append(a, "-profile:v", "baseline", "-bf", "0",
		"-g", strconv.Itoa(s.GOP), "-keyint_min", strconv.Itoa(s.GOP), "-sc_threshold", "0")
	if s.Kbps > 0 {
		a = append(a, "-b:v", fmt.Sprintf("%dk", s.Kbps), "-maxrate", fmt.Sprintf("%dk", s.Kbps), "-bufsize", fmt.Sprintf("%dk", s.Kbps/2))
	}
	return append(a, "-x264-params", "aud=1:repeat-headers=1", "-f", "h264", "-y", path)
}

// Command is the shell form of FFmpegArgs, for the record.
func (s H264ClipSpec) Command(path string) string {
	a := s.FFmpegArgs(path)
	q := make([]string, len(a))
	for i, w := range a {
		q[i] = w
		if w == "" || strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/=@+%$") != "" {
			q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return "ffmpeg " + strings.Join(q, " ")
}

// MakeH264Clip encodes s with Debian's ffmpeg into path and returns the
// clip, checking that it has one access unit per picture and a keyframe
// every s.GOP pictures.
func MakeH264Clip(ctx context.Context, s H264ClipSpec, path string) (*H264Clip, error) {
	if err := s.Clip.validate(); err != nil {
		return nil, err
	}
	if s.Kbps < 0 || s.GOP <= 0 {
		return nil, fmt.Errorf("testclip: H.264 clip %+v: the GOP must be positive, the bitrate 0 or positive", s)
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", s.FFmpegArgs(path)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("testclip: failed to encode the H.264 clip (ffmpeg with libx264: make deps): %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	c, err := ReadH264Clip(path)
	if err != nil {
		return nil, err
	}
	if len(c.AUs) != s.Clip.Frames {
		return nil, fmt.Errorf("testclip: H.264 clip: %d access units for %d pictures", len(c.AUs), s.Clip.Frames)
	}
	for i, k := range c.Key {
		if k != (i%s.GOP == 0) {
			return nil, fmt.Errorf("testclip: H.264 clip: picture %d keyframe %v, want a keyframe every %d pictures", i, k, s.GOP)
		}
	}
	return c, nil
}
