package loadgen

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/pkg/frames"
)

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
	clip   *testclip.H264Clip
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

func newH264Source(room string, clip *testclip.H264Clip) *h264Source {
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
