package frames

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"
)

// Version 2 messages: a short layer block in front of a version-1 message.
//
//	offset size field
//	0      1    version: 2
//	1      1    kind: the inner message's kind
//	2      2    block length E: the inner message starts at E (11 + room length)
//	4      1    layer index: 0 is the room's main layer
//	5      1    flags: 0 (reserved)
//	6      2    width in pixels (0: unknown)
//	8      2    height in pixels (0: unknown)
//	10     1    room name length (0 to 64)
//	11     …    room name
//	E      20   the version-1 header (version 1, kind, 20, sequence, capture time)
//	E+20   …    payload
//
// Because the last bytes of a version-2 message are a whole version-1
// message, one buffer serves both: Binary is a suffix of BinaryV2, and a
// gateway forwards either without copying. See docs/protocol.md.
const (
	// VersionLayered is the version of the layer block.
	VersionLayered = 2
	// LayerBlockFixed is the size of the layer block without the room name.
	LayerBlockFixed = 11
	// MaxLayers is how many layers a room may have (indexes 0 to 3).
	MaxLayers = 4
	// MaxRoomLen is the longest room name a layer block carries.
	MaxRoomLen = 64
)

// LayerInfo names one layer of a room and the size of its pictures. A
// room's JPEG and H.264 layers are numbered apart; JSON leaves the codec
// out for JPEG layers.
type LayerInfo struct {
	Index  int   `json:"layer"`
	Width  int   `json:"width"`
	Height int   `json:"height"`
	Codec  Codec `json:"codec,omitempty"`
}

// layered is the lazily built version-2 form of a frame that arrived as
// version 1.
type layered struct {
	once sync.Once
	b    []byte
}

// AppendLayered appends a version-2 JPEG frame message to dst: the layer
// block for layer (width × height, room; room may be empty when the URL
// names it), then the version-1 message. Publishers of layered rooms send
// it (cmd/sender does).
func AppendLayered(dst []byte, room string, layer, width, height int, seq uint64, captured time.Time, jpeg []byte) []byte {
	dst = appendLayerBlock(dst, KindJPEG, room, layer, width, height)
	return AppendBinary(dst, seq, captured, jpeg)
}

// AppendLayeredKind appends a version-2 message of any payload kind to
// dst: the layer block for layer (width × height, room) with kind, then the
// version-1 header with kind, seq and captured, then payload, unchecked.
// H.264 publishers send their configurations, keyframes and deltas with it
// (cmd/sender with SENDER_CODEC=h264); AppendLayered is its JPEG case.
func AppendLayeredKind(dst []byte, kind Kind, room string, layer, width, height int, seq uint64, captured time.Time, payload []byte) []byte {
	dst = appendLayerBlock(dst, kind, room, layer, width, height)
	var h [HeaderSize]byte
	PutHeader(h[:], kind, seq, captured)
	return append(append(dst, h[:]...), payload...)
}

func appendLayerBlock(dst []byte, kind Kind, room string, layer, width, height int) []byte {
	var b [LayerBlockFixed]byte
	b[0] = VersionLayered
	b[1] = byte(kind)
	binary.BigEndian.PutUint16(b[2:4], uint16(LayerBlockFixed+len(room)))
	b[4] = byte(layer)
	binary.BigEndian.PutUint16(b[6:8], uint16(width))
	binary.BigEndian.PutUint16(b[8:10], uint16(height))
	b[10] = byte(len(room))
	dst = append(dst, b[:]...)
	return append(dst, room...)
}

// LayerBlock is the decoded layer block of a version-2 message.
type LayerBlock struct {
	Kind          Kind
	Layer         int
	Width, Height int
	Room          string
	Len           int // where the inner version-1 message starts
}

// ParseLayerBlock decodes and validates the layer block at the start of a
// version-2 message. It does not look at the inner message.
func ParseLayerBlock(msg []byte) (LayerBlock, error) {
	e, err := checkLayerBlock(msg)
	if err != nil {
		return LayerBlock{}, err
	}
	return LayerBlock{
		Kind:   Kind(msg[1]),
		Layer:  int(msg[4]),
		Width:  int(binary.BigEndian.Uint16(msg[6:8])),
		Height: int(binary.BigEndian.Uint16(msg[8:10])),
		Room:   string(msg[11:e]),
		Len:    e,
	}, nil
}

// checkLayerBlock validates the layer block at the start of msg and
// returns its length, where the inner message starts.
func checkLayerBlock(msg []byte) (int, error) {
	if len(msg) < LayerBlockFixed {
		return 0, fmt.Errorf("%w: %d bytes, need %d for a layer block", ErrBadHeader, len(msg), LayerBlockFixed)
	}
	if msg[0] != VersionLayered {
		return 0, fmt.Errorf("%w: version %d, want %d", ErrBadHeader, msg[0], VersionLayered)
	}
	e := int(binary.BigEndian.Uint16(msg[2:4]))
	n := int(msg[10])
	switch {
	case n > MaxRoomLen:
		return 0, fmt.Errorf("%w: room name of %d bytes, limit %d", ErrBadHeader, n, MaxRoomLen)
	case e != LayerBlockFixed+n:
		return 0, fmt.Errorf("%w: layer block length %d, want %d", ErrBadHeader, e, LayerBlockFixed+n)
	case len(msg) < e:
		return 0, fmt.Errorf("%w: %d bytes, layer block needs %d", ErrBadHeader, len(msg), e)
	case int(msg[4]) >= MaxLayers:
		return 0, fmt.Errorf("%w: layer %d, rooms have at most %d layers", ErrBadHeader, msg[4], MaxLayers)
	case msg[5] != 0:
		return 0, fmt.Errorf("%w: flags %#x, want 0", ErrBadHeader, msg[5])
	}
	return e, nil
}

// MessageHeader is what the headers of a binary message say: the
// version-1 header, and for a version-2 message the layer its block
// names.
type MessageHeader struct {
	Header
	Layer   int  // 0 for a version-1 message
	Layered bool // a version-2 message
}

// PeekMessage decodes the headers of a binary message, version 1 or 2,
// without looking at its payload or copying anything: the cheap look a
// gateway takes at a publisher's message before it parses it, and a load
// generator at every message it receives. ParseBinary checks the rest.
func PeekMessage(msg []byte) (MessageHeader, error) {
	var m MessageHeader
	if len(msg) > 0 && msg[0] == VersionLayered {
		e, err := checkLayerBlock(msg)
		if err != nil {
			return m, err
		}
		m.Layer, m.Layered = int(msg[4]), true
		kind := Kind(msg[1])
		msg = msg[e:]
		if len(msg) < 2 || msg[0] != Version || Kind(msg[1]) != kind {
			return m, fmt.Errorf("%w: the layer block's kind %d is not its inner header's", ErrBadHeader, kind)
		}
	}
	h, err := ParseHeader(msg)
	m.Header = h
	return m, err
}

// parseLayered parses a version-2 message (see ParseBinary).
func parseLayered(msg []byte, maxBytes int) (*Frame, error) {
	lb, err := ParseLayerBlock(msg)
	if err != nil {
		return nil, err
	}
	inner := msg[lb.Len:]
	if len(inner) == 0 || inner[0] != Version {
		return nil, fmt.Errorf("%w: a layer block must be followed by a version-%d header", ErrBadHeader, Version)
	}
	f, err := ParseBinary(inner, 0, time.Time{}, maxBytes)
	if err != nil {
		return nil, err
	}
	if f.Kind != lb.Kind {
		return nil, fmt.Errorf("%w: layer block says kind %d, header kind %d", ErrBadHeader, lb.Kind, f.Kind)
	}
	f.Layer, f.Width, f.Height = lb.Layer, lb.Width, lb.Height
	f.Room = lb.Room
	f.v2.once.Do(func() { f.v2.b = msg })
	f.v2Room = lb.Room
	return f, nil
}

// BinaryV2 returns the frame's version-2 message, naming f.Room, its layer
// and its size. It is built on first use (for a frame that arrived as
// version 1, or whose block named another room or none) and shared
// afterwards; callers must not modify it. Set f.Room, and for an image
// whose size the publisher did not send, leave Width and Height zero:
// they are read from the JPEG's frame header.
func (f *Frame) BinaryV2() []byte {
	f.v2.once.Do(func() { f.v2.b = f.buildV2() })
	if f.v2Room != f.Room { // the block named no room or another name: rebuild once for f.Room
		f.v2fix.once.Do(func() { f.v2fix.b = f.buildV2() })
		return f.v2fix.b
	}
	return f.v2.b
}

func (f *Frame) buildV2() []byte {
	w, h := f.Width, f.Height
	if w == 0 && f.Kind == KindJPEG {
		w, h, _ = JPEGSize(f.Payload)
	}
	b := make([]byte, 0, LayerBlockFixed+len(f.Room)+len(f.wire))
	b = appendLayerBlock(b, f.Kind, f.Room, f.Layer, w, h)
	return append(b, f.wire...)
}

// Size returns the picture's size: as the publisher tagged it, or for an
// untagged JPEG as its frame header says; zero when neither tells.
func (f *Frame) Size() (width, height int) {
	if f.Width != 0 || f.Kind != KindJPEG {
		return f.Width, f.Height
	}
	w, h, _ := JPEGSize(f.Payload)
	return w, h
}

// OfflineLayer is Offline for one layer of a room.
func OfflineLayer(room string, layer int, lastSeq uint64, at time.Time) *Frame {
	f := Offline(lastSeq, at)
	f.Room, f.Layer = room, layer
	return f
}

// JPEGSize reads a JPEG's width and height from its frame header (SOFn),
// walking the marker segments before it. It does not decode the image.
func JPEGSize(b []byte) (width, height int, err error) {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 0, 0, fmt.Errorf("%w: missing start-of-image marker", ErrNotJPEG)
	}
	i := 2
	for i+4 <= len(b) {
		if b[i] != 0xFF {
			return 0, 0, fmt.Errorf("%w: no marker at offset %d", ErrNotJPEG, i)
		}
		m := b[i+1]
		if m == 0xFF { // fill byte
			i++
			continue
		}
		n := int(binary.BigEndian.Uint16(b[i+2 : i+4]))
		switch {
		case m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC:
			if i+9 > len(b) {
				return 0, 0, fmt.Errorf("%w: truncated frame header", ErrNotJPEG)
			}
			return int(binary.BigEndian.Uint16(b[i+7 : i+9])), int(binary.BigEndian.Uint16(b[i+5 : i+7])), nil
		case m == 0xDA || m == 0xD9:
			return 0, 0, fmt.Errorf("%w: no frame header before the scan", ErrNotJPEG)
		}
		if n < 2 {
			return 0, 0, fmt.Errorf("%w: bad segment length at offset %d", ErrNotJPEG, i)
		}
		i += 2 + n
	}
	return 0, 0, fmt.Errorf("%w: no frame header", ErrNotJPEG)
}
