package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/pmp4"

	"github.com/framecast/framecast/internal/avc"
	"github.com/framecast/framecast/pkg/frames"
)

// ErrNothingToExport: the frames hold no picture a clip can start with
// (no JPEG; no H.264 configuration followed by a keyframe).
var ErrNothingToExport = errors.New("segment: no frames to export")

// maxClipBytes keeps a clip's sample offsets within the 32-bit chunk
// offsets (stco) of a progressive MP4, with room for its moov.
const maxClipBytes = 1<<32 - 64<<20

// Clip is a progressive MP4 of recorded frames: ftyp, then moov (the
// index), then mdat, so that a player starts playing and seeking at once.
// H.264 frames make an H.264 track (the samples are the recorded access
// units, not re-encoded), which Chromium's <video> plays and seeks; JPEG
// frames make an M-JPEG track, which ffmpeg, VLC and QuickTime play but
// browsers do not. A Clip is immutable: its methods may be called from
// several goroutines at once.
type Clip struct {
	pres pmp4.Presentation
	size int64
	// Start is the first picture's capture time, End when the last one
	// stops being shown.
	Start, End time.Time
	// Frames counts the pictures.
	Frames int
	// Truncated reports that the clip stops before the frames do, at a
	// change of the stream's configuration (H.264) or picture size (JPEG):
	// one MP4 track has one. End says where it stopped; a second clip from
	// there holds the rest.
	Truncated bool
}

// NewClip builds a clip of fs, frames of one stream in the order
// recorded (Read's output, or several segments' one after the other). H.264
// clips start at the first keyframe after a configuration; frames of other
// kinds (offline events) are left out. Sample times come from capture
// times (90 kHz); the last picture lasts as long as the one before it.
func NewClip(fs []*frames.Frame) (*Clip, error) {
	c := &Clip{}
	var track *pmp4.Track
	var times []int64
	var clk clock
	var config []byte
	var width, height, size int
frames:
	for _, f := range fs {
		var payload []byte
		switch f.Kind {
		case frames.KindJPEG:
			if config != nil {
				continue // an H.264 clip
			}
			w, h, err := jpegSize(f)
			if err != nil {
				continue
			}
			if track == nil {
				width, height = w, h
				track = &pmp4.Track{ID: 1, TimeScale: Timescale, Codec: &codecs.MJPEG{Width: w, Height: h}}
			} else if w != width || h != height {
				c.Truncated = true
				break frames
			}
			payload = f.Payload
		case frames.KindH264Config:
			switch {
			case track != nil && config == nil:
				// a JPEG clip
			case track == nil:
				if _, err := h264Codec(f.Payload); err == nil {
					config = f.Payload // the last one before the first keyframe
				}
			case !bytes.Equal(config, f.Payload):
				c.Truncated = true
				break frames
			}
			continue
		case frames.KindH264Key, frames.KindH264Delta:
			if config == nil || track == nil && f.Kind != frames.KindH264Key {
				continue
			}
			nalus, err := avc.Split(f.Payload)
			if err != nil {
				continue
			}
			if payload, err = h264.AVCC(nalus).Marshal(); err != nil {
				continue
			}
			if track == nil {
				codec, _ := h264Codec(config)
				track = &pmp4.Track{ID: 1, TimeScale: Timescale, Codec: codec}
			}
		default:
			continue
		}
		if size += len(payload); size > maxClipBytes {
			return nil, fmt.Errorf("failed to export: more than %d bytes of pictures", maxClipBytes)
		}
		t := f.Captured.UnixMicro()
		if len(times) == 0 {
			clk = clock{origin: t, last: -1}
		}
		times = append(times, t)
		p := payload
		track.Samples = append(track.Samples, &pmp4.Sample{
			IsNonSyncSample: f.Kind == frames.KindH264Delta,
			PayloadSize:     uint32(len(p)),
			GetPayload:      func() ([]byte, error) { return p, nil },
		})
	}
	if track == nil || len(track.Samples) == 0 {
		return nil, ErrNothingToExport
	}
	// Durations: to the next picture; the last one as long as the one
	// before it.
	prev := int64(defaultTicks)
	dts := clk.next(times[0])
	for i, s := range track.Samples {
		if i+1 < len(times) {
			n := clk.next(times[i+1])
			prev = n - dts
			dts = n
		}
		s.Duration = uint32(prev)
	}
	c.pres.Tracks = []*pmp4.Track{track}
	c.Frames = len(track.Samples)
	c.Start = time.UnixMicro(times[0])
	c.End = time.UnixMicro(times[len(times)-1] + prev*100/9)
	var n countingWriter
	if err := c.pres.Marshal(&n); err != nil {
		return nil, fmt.Errorf("failed to export: %w", err)
	}
	c.size = n.n
	return c, nil
}

// Size returns the clip's size in bytes (for Content-Length).
func (c *Clip) Size() int64 { return c.size }

// Duration returns how long the clip plays.
func (c *Clip) Duration() time.Duration { return c.End.Sub(c.Start) }

// WriteTo writes the clip to w: the ftyp and moov first, then the
// pictures, streamed.
func (c *Clip) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	err := c.pres.Marshal(cw)
	return cw.n, err
}

// Export writes a clip of fs to w (see NewClip).
func Export(fs []*frames.Frame, w io.Writer) error {
	c, err := NewClip(fs)
	if err != nil {
		return err
	}
	_, err = c.WriteTo(w)
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.w == nil {
		c.n += int64(len(p))
		return len(p), nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// clock turns capture times (Unix µs) into 90 kHz decode times from an
// origin, rounded, and kept increasing when the publisher's clock steps
// back.
type clock struct {
	origin int64
	last   int64 // the last decode time given, -1 before the first
}

// ticks converts a capture time to ticks after the origin, rounded.
func (c *clock) ticks(t int64) int64 {
	d := t - c.origin
	if d < 0 {
		return -((-d*9 + 50) / 100)
	}
	return (d*9 + 50) / 100
}

// next returns the decode time of a sample captured at t.
func (c *clock) next(t int64) int64 {
	c.last = max(c.ticks(t), c.last+1)
	return c.last
}
