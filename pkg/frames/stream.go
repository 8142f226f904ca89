package frames

import (
	"fmt"
	"strconv"
	"strings"
)

// Codec is how a stream's pictures are coded. The zero value is JPEG, so
// a LayerInfo's codec is left out of its JSON for JPEG layers, as it was
// before H.264 existed.
type Codec uint8

const (
	// CodecJPEG streams carry one whole JPEG per frame: any frame can be
	// shown alone.
	CodecJPEG Codec = iota
	// CodecH264 streams carry H.264 access units and decoder
	// configurations (KindH264Config, KindH264Key, KindH264Delta): a
	// delta needs every picture back to its keyframe.
	CodecH264
	numCodecs
)

var codecNames = [numCodecs]string{CodecJPEG: "jpeg", CodecH264: "h264"}

// Codecs returns every codec, JPEG first: the order in which a room's
// layers are listed.
func Codecs() []Codec { return []Codec{CodecJPEG, CodecH264} }

// String returns "jpeg" or "h264": the name of the codec in queries,
// control messages, metrics labels and the recording store.
func (c Codec) String() string {
	if c < numCodecs {
		return codecNames[c]
	}
	return "codec(" + strconv.Itoa(int(c)) + ")"
}

// ParseCodec reads a codec name: "jpeg" (or "", the default) or "h264".
func ParseCodec(s string) (Codec, error) {
	switch s {
	case "", "jpeg":
		return CodecJPEG, nil
	case "h264":
		return CodecH264, nil
	}
	return 0, fmt.Errorf("codec must be jpeg or h264, not %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (c Codec) MarshalText() ([]byte, error) {
	if c >= numCodecs {
		return nil, fmt.Errorf("frames: unknown codec %d", c)
	}
	return []byte(c.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Codec) UnmarshalText(b []byte) error {
	v, err := ParseCodec(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// Codec returns the codec of the streams that carry messages of kind k,
// and false for offline events, which any stream carries.
func (k Kind) Codec() (Codec, bool) {
	switch {
	case k == KindJPEG:
		return CodecJPEG, true
	case k.IsH264():
		return CodecH264, true
	}
	return 0, false
}

// Stream names one stream of a room: one of its layers in one codec. A
// room's JPEG layers and its H.264 layers are numbered apart (JPEG layer 0
// is the main layer every older client receives).
//
// Its String form is the stream's name on the channel layer (Redis channel
// prefix+name), in presence records, frame-cache keys and metrics:
//
//	room          JPEG layer 0 (the seed's channel video_<room>)
//	room@i        JPEG layer i, 1 ≤ i < MaxLayers
//	room@h264     H.264 layer 0
//	room@h264.i   H.264 layer i
//
// ValidRoom refuses "@" in room names, so no client names a stream by
// accident.
type Stream struct {
	Room  string
	Layer int
	Codec Codec
}

// String returns the stream's name (see Stream).
func (s Stream) String() string {
	switch {
	case s.Codec == CodecH264 && s.Layer > 0:
		return s.Room + "@h264." + strconv.Itoa(s.Layer)
	case s.Codec == CodecH264:
		return s.Room + "@h264"
	case s.Layer > 0:
		return s.Room + "@" + strconv.Itoa(s.Layer)
	}
	return s.Room
}

// Message returns f, a frame of the stream, as the channel layer and the
// frame cache carry it: version 1 on the main stream (JPEG layer 0, the
// seed's channel, which every replica reads), version 2, naming the room
// and layer, on every other. Set f.Room and f.Layer first.
func (s Stream) Message(f *Frame) []byte {
	if s == (Stream{Room: s.Room}) {
		return f.Binary()
	}
	return f.BinaryV2()
}

// KeyframeChannel is the channel on which viewers of the room's H.264
// layers ask its publisher for a keyframe: "<room>@key". Requests name the
// room, not a layer: a sender starts a new group on every layer at once.
func (s Stream) KeyframeChannel() string { return s.Room + "@key" }

// Valid reports whether s names a stream: a valid room, a layer index
// below MaxLayers and a known codec.
func (s Stream) Valid() error {
	switch {
	case !ValidRoom(s.Room):
		return fmt.Errorf("frames: %q is not a room name (1 to %d characters from A-Z, a-z, 0-9 and _)", s.Room, MaxRoomLen)
	case s.Layer < 0 || s.Layer >= MaxLayers:
		return fmt.Errorf("frames: layer %d is outside 0..%d", s.Layer, MaxLayers-1)
	case s.Codec >= numCodecs:
		return fmt.Errorf("frames: unknown codec %d", s.Codec)
	}
	return nil
}

// ParseStream is String's inverse: the stream a name names. A name that is
// not a valid room or a room's stream is an error.
func ParseStream(name string) (Stream, error) {
	room, rest, layered := strings.Cut(name, "@")
	s := Stream{Room: room}
	if layered {
		switch {
		case rest == "h264":
			s.Codec = CodecH264
		case strings.HasPrefix(rest, "h264."):
			s.Codec = CodecH264
			s.Layer = layerIndex(rest[len("h264."):])
		default:
			s.Layer = layerIndex(rest)
		}
		if s.Layer == 0 && s.Codec == CodecJPEG || s.Layer < 0 {
			return Stream{}, fmt.Errorf("frames: %q is not a stream name", name)
		}
	}
	if err := s.Valid(); err != nil {
		return Stream{}, err
	}
	return s, nil
}

// layerIndex reads a layer index 1..MaxLayers-1, or returns -1.
func layerIndex(s string) int {
	if len(s) != 1 || s[0] < '1' || s[0] >= '0'+MaxLayers {
		return -1
	}
	return int(s[0] - '0')
}

// ValidRoom reports whether name is a valid room name: 1 to MaxRoomLen
// characters from [A-Za-z0-9_], the seed's \w+ route restricted to ASCII
// and bounded.
func ValidRoom(name string) bool {
	if len(name) == 0 || len(name) > MaxRoomLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// MarshalText implements encoding.TextMarshaler: the stream's name.
func (s Stream) MarshalText() ([]byte, error) {
	if err := s.Valid(); err != nil {
		return nil, err
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseStream.
func (s *Stream) UnmarshalText(b []byte) error {
	v, err := ParseStream(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}
