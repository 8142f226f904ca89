package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/pkg/frames"
)

// MakeH264Clip encodes n pictures of ffmpeg's moving test pattern at w×h
// (30 fps, no noise) with libx264's default quality, a keyframe every gop
// pictures (testclip.MakeH264Clip).
func MakeH264Clip(t testing.TB, w, h, n, gop int) *testclip.H264Clip {
	t.Helper()
	RequireTool(t, "ffmpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	spec := testclip.H264ClipSpec{Clip: testclip.Clip{Width: w, Height: h, FPS: 30, Frames: n}, GOP: gop}
	c, err := testclip.MakeH264Clip(ctx, spec, filepath.Join(t.TempDir(), "clip.h264"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// H264Message is a version-2 H.264 message: layer 0 of room, kind k.
func H264Message(room string, k frames.Kind, w, h int, seq uint64, captured time.Time, payload []byte) []byte {
	b := frames.AppendLayered(nil, room, 0, w, h, seq, captured, nil)
	b = b[:frames.LayerBlockFixed+len(room)]
	b[1] = byte(k)
	var hdr [frames.HeaderSize]byte
	frames.PutHeader(hdr[:], k, seq, captured)
	return append(append(b, hdr[:]...), payload...)
}

// H264Publisher plays an H.264 clip on a publisher connection, looping, the
// way cmd/sender does in h264 mode: a configuration in front of every
// keyframe; a keyframe request ({"type":"keyframe"}) makes it jump to the
// clip's next keyframe. Pictures are numbered 1, 2, 3...
type H264Publisher struct {
	*Publisher
	Requests atomic.Int64 // keyframe requests received
	Keys     atomic.Int64 // keyframes sent
}

// PublishH264 starts playing clip on c every period, as room's layer 0.
// It reads c (the keyframe requests), so nothing else may.
func (c *Client) PublishH264(t testing.TB, every time.Duration, room string, clip *testclip.H264Clip) *H264Publisher {
	t.Helper()
	p := &H264Publisher{}
	jump := make(chan struct{}, 1)
	go func() {
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				return
			}
			var m struct{ Type string }
			if typ == websocket.MessageText && json.Unmarshal(msg, &m) == nil && m.Type == "keyframe" {
				p.Requests.Add(1)
				select {
				case jump <- struct{}{}:
				default:
				}
			}
		}
	}()
	i := 0
	w, h := clip.Config.Width, clip.Config.Height
	p.Publisher = publishEvery(t, every, func(seq uint64) error {
		select {
		case <-jump:
			for !clip.Key[i] {
				i = (i + 1) % len(clip.AUs)
			}
		default:
		}
		now := time.Now()
		kind := frames.KindH264Delta
		if clip.Key[i] {
			kind = frames.KindH264Key
			if err := c.SendBinary(H264Message(room, frames.KindH264Config, w, h, seq, now, frames.AppendH264Config(nil, clip.Config))); err != nil {
				return err
			}
			p.Keys.Add(1)
		}
		err := c.SendBinary(H264Message(room, kind, w, h, seq, now, clip.AUs[i]))
		i = (i + 1) % len(clip.AUs)
		return err
	})
	return p
}

// H264TestPayload is a stand-in payload of an H.264 message of kind k
// for picture seq, which the gateway and the hub accept (Annex B, a
// configuration that parses) and no decoder needs to: for tests of
// delivery order, not of pictures.
func H264TestPayload(k frames.Kind, seq uint64) []byte {
	switch k {
	case frames.KindH264Config:
		return frames.AppendH264Config(nil, frames.H264Config{Codec: "avc1.42E01F", Width: 64, Height: 48,
			ParamSets: []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xCE}})
	case frames.KindH264Key:
		return []byte{0, 0, 0, 1, 0x65, byte(seq)}
	}
	return []byte{0, 0, 0, 1, 0x41, byte(seq)}
}

// H264TestMessage is the version-1 message of an H.264 stand-in picture
// (H264TestPayload), as the channel layer would deliver it.
func H264TestMessage(k frames.Kind, seq uint64, captured time.Time) []byte {
	var h [frames.HeaderSize]byte
	frames.PutHeader(h[:], k, seq, captured)
	return append(h[:], H264TestPayload(k, seq)...)
}

// H264Reader reads an H.264 viewer's connection (control messages and
// version-2 H.264 messages) and checks that what it is handed can be
// decoded from its first keyframe on: a configuration first, every delta
// right after the picture before it. Stream collects the access units it
// got, Annex B, for ffmpeg.
type H264Reader struct {
	C       *Client
	Stream  bytes.Buffer
	Pics    int      // access units in Stream
	Keys    int      // keyframes among them
	Resumed int      // keyframes after a missing picture
	Layer   []string // reasons of the `layer` messages, which must say codec h264
	last    uint64
	config  bool
	keyed   bool
}

// Read reads one message and checks it.
func (r *H264Reader) Read(ctx context.Context) error {
	typ, msg, err := r.C.Read(ctx)
	if err != nil {
		return err
	}
	if typ == websocket.MessageText {
		var m struct{ Type, Codec, Reason string }
		if err := json.Unmarshal(msg, &m); err != nil {
			return fmt.Errorf("control message %q: %v", msg, err)
		}
		if m.Type == "layer" {
			if m.Codec != "h264" {
				return fmt.Errorf("layer message %s without codec h264", msg)
			}
			r.Layer = append(r.Layer, m.Reason)
		}
		return nil
	}
	f, err := frames.ParseBinary(msg, 0, time.Time{}, 0)
	if err != nil {
		return err
	}
	switch f.Kind {
	case frames.KindH264Config:
		if _, err := frames.ParseH264Config(f.Payload); err != nil {
			return err
		}
		r.config = true
		return nil
	case frames.KindH264Key:
		if !r.config {
			return fmt.Errorf("keyframe %d before a configuration", f.Seq)
		}
		if r.keyed && f.Seq != r.last+1 {
			r.Resumed++
		}
		r.keyed = true
		r.Keys++
	case frames.KindH264Delta:
		if !r.keyed || f.Seq != r.last+1 {
			return fmt.Errorf("delta %d after picture %d (keyed %v): it cannot be decoded", f.Seq, r.last, r.keyed)
		}
	default:
		return fmt.Errorf("a kind-%d message on an H.264 subscription", f.Kind)
	}
	r.Stream.Write(f.Payload)
	r.Pics++
	r.last = f.Seq
	return nil
}
