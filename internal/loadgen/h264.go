package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/pkg/frames"
)

// H264Clip is a pre-encoded H.264 stream cut into access units, as the
// H.264 publisher plays it.
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
		return nil, fmt.Errorf("loadgen: H.264 clip: %w", err)
	}
	c := &H264Clip{}
	var cur []byte
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		au, err := avc.Parse(cur)
		if err != nil {
			return fmt.Errorf("loadgen: H.264 clip: access unit %d: %w", len(c.AUs), err)
		}
		if len(c.AUs) == 0 {
			if !au.Key || au.SPS == nil || au.PPS == nil {
				return fmt.Errorf("loadgen: H.264 clip: the first access unit is not a keyframe with its SPS and PPS (key %v, SPS %v, PPS %v)",
					au.Key, au.SPS != nil, au.PPS != nil)
			}
			sps, err := avc.ParseSPS(au.SPS)
			if err != nil {
				return fmt.Errorf("loadgen: H.264 clip: %w", err)
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
		return nil, fmt.Errorf("loadgen: H.264 clip: no access unit delimiters (encode with x264's aud=1)")
	case len(c.AUs) == 0:
		return nil, fmt.Errorf("loadgen: H.264 clip: no access units")
	}
	return c, nil
}

// ReadH264Clip reads an Annex-B file (as MakeH264Clip writes it) and
// splits it.
func ReadH264Clip(path string) (*H264Clip, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loadgen: failed to read the H.264 clip: %w", err)
	}
	return SplitH264(b)
}

// H264ClipSpec is the H.264 clip the benchmark plays: the project's test
// clip (internal/testclip: testsrc2 with noise=alls=8:allf=t) encoded by
// libx264, constrained baseline, no B-frames, an access unit delimiter in
// front of every picture and the parameter sets in front of every
// keyframe.
type H264ClipSpec struct {
	Clip testclip.Clip
	// KBps is the target bitrate in kbit/s (-b:v, -maxrate; -bufsize half
	// of it, as S11's libx264 rows).
	Kbps int
	// GOP is the keyframe interval in pictures (-g, -keyint_min; no scene
	// cuts).
	GOP int
}

// FFmpegArgs are ffmpeg's arguments to write the clip to path.
func (s H264ClipSpec) FFmpegArgs(path string) []string {
	return []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", s.Clip.Filter(),
		"-frames:v", strconv.Itoa(s.Clip.Frames),
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-profile:v", "baseline", "-bf", "0",
		"-g", strconv.Itoa(s.GOP), "-keyint_min", strconv.Itoa(s.GOP), "-sc_threshold", "0",
		"-b:v", fmt.Sprintf("%dk", s.Kbps), "-maxrate", fmt.Sprintf("%dk", s.Kbps), "-bufsize", fmt.Sprintf("%dk", s.Kbps/2),
		"-x264-params", "aud=1:repeat-headers=1", "-f", "h264", "-y", path}
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
	if s.Kbps <= 0 || s.GOP <= 0 || s.Clip.Frames <= 0 {
		return nil, fmt.Errorf("loadgen: H.264 clip %+v: bitrate, GOP and frames must be positive", s)
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", s.FFmpegArgs(path)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("loadgen: failed to encode the H.264 clip (ffmpeg with libx264: make deps): %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	c, err := ReadH264Clip(path)
	if err != nil {
		return nil, err
	}
	if len(c.AUs) != s.Clip.Frames {
		return nil, fmt.Errorf("loadgen: H.264 clip: %d access units for %d pictures", len(c.AUs), s.Clip.Frames)
	}
	for i, k := range c.Key {
		if k != (i%s.GOP == 0) {
			return nil, fmt.Errorf("loadgen: H.264 clip: picture %d keyframe %v, want a keyframe every %d pictures", i, k, s.GOP)
		}
	}
	return c, nil
}

// h264Message builds the version-2 H.264 message of kind k for room's
// layer 0: the layer block, a version-1 header (sequence and capture time
// 0, rewritten per picture with frames.PutHeader at h264Head(room)) and
// payload.
func h264Message(room string, k frames.Kind, w, h int, payload []byte) []byte {
	b := frames.AppendLayered(make([]byte, 0, frames.LayerBlockFixed+len(room)+frames.HeaderSize+len(payload)),
		room, 0, w, h, 0, time.Unix(0, 0), payload)
	b[1] = byte(k)
	frames.PutHeader(b[h264Head(room):], k, 0, time.Unix(0, 0))
	return b
}

// h264Head is where the version-1 header starts in room's version-2
// messages.
func h264Head(room string) int { return frames.LayerBlockFixed + len(room) }

// h264Source is what an H.264 publisher plays: the clip's messages, built
// once per room, and the keyframe requests its connection receives.
type h264Source struct {
	clip   *H264Clip
	config []byte   // the configuration message
	msgs   [][]byte // per access unit: its keyframe or delta message
	head   int      // where the version-1 header starts in every message
	next   int      // the access unit the next picture sends

	// jump is set by the request reader when the gateway asks for a
	// keyframe; the publisher clears it and skips to the clip's next one.
	jump     atomic.Bool
	requests atomic.Uint64 // keyframe requests received
	keys     uint64        // keyframes sent (publisher goroutine only)
}

func newH264Source(room string, clip *H264Clip) *h264Source {
	w, h := clip.Config.Width, clip.Config.Height
	s := &h264Source{
		clip:   clip,
		config: h264Message(room, frames.KindH264Config, w, h, frames.AppendH264Config(nil, clip.Config)),
		head:   h264Head(room),
	}
	for i, au := range clip.AUs {
		k := frames.KindH264Delta
		if clip.Key[i] {
			k = frames.KindH264Key
		}
		s.msgs = append(s.msgs, h264Message(room, k, w, h, au))
	}
	return s
}

// picture returns the messages of the next picture, numbered seq and
// captured now: the configuration and a keyframe, or a delta. After a
// keyframe request it is the clip's next keyframe (looping). The
// messages are rewritten in place: they are valid until the next call.
// Only the publisher's goroutine calls it.
func (s *h264Source) picture(seq uint64, now time.Time) [][]byte {
	if s.jump.Swap(false) {
		for !s.clip.Key[s.next] {
			s.next = (s.next + 1) % len(s.msgs)
		}
	}
	i := s.next
	s.next = (s.next + 1) % len(s.msgs)
	msg := s.msgs[i]
	frames.PutHeader(msg[s.head:], frames.Kind(msg[1]), seq, now)
	if !s.clip.Key[i] {
		return [][]byte{msg}
	}
	s.keys++
	frames.PutHeader(s.config[s.head:], frames.KindH264Config, seq, now)
	return [][]byte{s.config, msg}
}

// readRequests reads the publisher's connection until it ends, counting
// {"type":"keyframe"} requests and setting jump. It runs on its own
// goroutine: reading also answers the gateway's pings and the close
// handshake.
func (s *h264Source) readRequests(conn *websocket.Conn) {
	for {
		typ, msg, err := conn.Read(context.Background())
		if err != nil {
			return
		}
		var m struct {
			Type string `json:"type"`
		}
		if typ == websocket.MessageText && json.Unmarshal(msg, &m) == nil && m.Type == "keyframe" {
			s.requests.Add(1)
			s.jump.Store(true)
		}
	}
}
