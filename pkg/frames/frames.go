// Package frames defines the framecast frame model and its wire formats.
//
// A Frame is one message of a stream (see Stream): a JPEG image, an H.264
// access unit or decoder configuration, or the event that the stream's
// publisher left, with the publisher's sequence number and capture time.
// It travels in these encodings:
//
//   - the binary message: a fixed 20-byte header followed by the payload
//     (see docs/protocol.md). This is also what crosses the channel layer, so
//     a gateway forwards the bytes it receives from Redis to binary viewers
//     without re-encoding them. A version-2 message puts a layer block
//     naming the stream in front of it (layered.go).
//   - the seed's data URL: "data:image/jpeg;base64,..." as a text message,
//     exactly what the original Django Channels sender posts.
//   - the seed's JSON envelope: {"message":"data:image/jpeg;base64,..."},
//     what the original page parses. framecast adds "seq" and "ts" fields,
//     which the seed's page ignores.
//
// Frames are immutable once built: every method may be called from many
// goroutines at once, and each encoding is computed at most once per Frame.
package frames

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Wire constants of the binary message. See docs/protocol.md.
const (
	// Version is the only binary header version this package writes and reads.
	Version = 1
	// HeaderSize is the size of the fixed binary header in bytes.
	HeaderSize = 20
)

// Kind says what a binary message carries.
type Kind uint8

const (
	// KindJPEG is a frame: the header is followed by one JPEG image.
	KindJPEG Kind = 1
	// KindOffline says the room's publisher has gone. The header carries the
	// last sequence number and the time the publisher left; no payload follows.
	KindOffline Kind = 2
	// KindH264Config is an H.264 decoder configuration: the codec string,
	// the coded size and the parameter sets (see H264Config). It comes in
	// front of every keyframe whose configuration changed, and first in a
	// group of pictures handed to a joining viewer.
	KindH264Config Kind = 3
	// KindH264Key is an H.264 access unit that starts a group of pictures
	// (an IDR picture, its parameter sets in front), in Annex-B form.
	KindH264Key Kind = 4
	// KindH264Delta is an H.264 access unit that needs the ones before it
	// back to the last keyframe, in Annex-B form.
	KindH264Delta Kind = 5
)

// IsH264 reports whether k is one of the H.264 kinds.
func (k Kind) IsH264() bool { return k >= KindH264Config && k <= KindH264Delta }

// Errors returned by the parsers. Callers match them with errors.Is; the
// returned errors wrap them with detail.
var (
	ErrEmpty       = errors.New("frames: empty message")
	ErrNotJPEG     = errors.New("frames: payload is not a JPEG image")
	ErrTooLarge    = errors.New("frames: frame too large")
	ErrBadHeader   = errors.New("frames: malformed binary header")
	ErrBadDataURL  = errors.New("frames: malformed data URL")
	ErrBadMimeType = errors.New("frames: data URL is not image/jpeg")
)

// Frame is one message of a room's stream. Build it with New or Parse*; the
// zero value is not useful. A Frame must not be modified after it is
// shared: whoever builds it sets Room and Layer first.
type Frame struct {
	// Room is the room the frame belongs to. It is not part of any wire
	// format (the channel or URL names the room); whoever builds the Frame
	// sets it before sharing the Frame.
	Room string
	// Kind says what Payload holds: an image (KindJPEG), an H.264 message
	// (KindH264Config, KindH264Key, KindH264Delta) or nothing
	// (KindOffline: the publisher has gone).
	Kind Kind
	// Seq is the publisher's sequence number, increasing by one per frame it
	// captured (gaps mean frames skipped before they reached the gateway).
	Seq uint64
	// Captured is when the image was captured, as the publisher's clock says.
	Captured time.Time
	// Payload is what Kind says: a whole JPEG (SOI FF D8 to EOI FF D9),
	// an H.264 access unit in Annex-B form, an H264Config's encoding, or
	// nothing. It aliases the binary message, so it must not be modified.
	Payload []byte
	// Layer is the frame's layer of its room: 0 for the main layer (the
	// only one of a room whose publisher sends no layers).
	Layer int
	// Width and Height are the picture's size as the publisher tagged it
	// (version-2 messages), or zero when it did not.
	Width, Height int

	wire   []byte  // version-1 header + payload; always set
	v2     layered // the version-2 message: the one parsed, or built on first use
	v2Room string  // the room v2 names, when parsed
	v2fix  layered // v2 rebuilt for Room when the parsed block named another

	jsonOnce sync.Once
	json     []byte
}

// New builds a frame of kind from its payload, encoding the binary message
// once. It checks that the payload is what kind says (a JPEG, an H.264
// message; see ParseBinary) and at most maxBytes long (maxBytes <= 0 means
// no limit). It copies payload.
func New(kind Kind, seq uint64, captured time.Time, payload []byte, maxBytes int) (*Frame, error) {
	switch {
	case kind == KindJPEG:
		if err := CheckJPEG(payload, maxBytes); err != nil {
			return nil, err
		}
	case kind.IsH264():
		if err := checkH264(kind, payload, maxBytes); err != nil {
			return nil, err
		}
	}
	wire := make([]byte, HeaderSize+len(payload))
	PutHeader(wire, kind, seq, captured)
	copy(wire[HeaderSize:], payload)
	return &Frame{Kind: kind, Seq: seq, Captured: captured, Payload: wire[HeaderSize:], wire: wire}, nil
}

// Offline builds the event that tells viewers a room's publisher has left.
func Offline(lastSeq uint64, at time.Time) *Frame {
	f, _ := New(KindOffline, lastSeq, at, nil, 0)
	return f
}

// PutHeader writes the 20-byte binary header into b[:HeaderSize].
// It panics if b is shorter than HeaderSize.
func PutHeader(b []byte, kind Kind, seq uint64, captured time.Time) {
	_ = b[HeaderSize-1]
	b[0] = Version
	b[1] = byte(kind)
	binary.BigEndian.PutUint16(b[2:4], HeaderSize)
	binary.BigEndian.PutUint64(b[4:12], seq)
	binary.BigEndian.PutUint64(b[12:20], uint64(captured.UnixMicro()))
}

// AppendBinary appends the binary message for a JPEG frame to dst: the
// header then the JPEG bytes. Publishers use it to send one message per
// frame without building a Frame.
func AppendBinary(dst []byte, seq uint64, captured time.Time, jpeg []byte) []byte {
	var h [HeaderSize]byte
	PutHeader(h[:], KindJPEG, seq, captured)
	dst = append(dst, h[:]...)
	return append(dst, jpeg...)
}

// CheckJPEG reports whether b looks like a complete JPEG of at most maxBytes
// (maxBytes <= 0 means no limit): it starts with SOI (FF D8 FF) and ends with
// EOI (FF D9). It does not decode the image.
func CheckJPEG(b []byte, maxBytes int) error {
	if len(b) == 0 {
		return ErrEmpty
	}
	if maxBytes > 0 && len(b) > maxBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), maxBytes)
	}
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 || b[2] != 0xFF {
		return fmt.Errorf("%w: missing start-of-image marker", ErrNotJPEG)
	}
	if b[len(b)-2] != 0xFF || b[len(b)-1] != 0xD9 {
		return fmt.Errorf("%w: missing end-of-image marker", ErrNotJPEG)
	}
	return nil
}

// ParseBinary parses a binary message: either the documented header followed
// by a JPEG, or bare JPEG bytes (told apart by the first byte: a header starts
// with the version, a JPEG with FF). For bare JPEGs, seq and now fill in the
// sequence number and capture time the publisher did not send.
//
// The returned frame aliases msg when msg carries a header; the caller must
// not modify msg afterwards. maxBytes limits the JPEG size (<= 0: no limit).
func ParseBinary(msg []byte, seq uint64, now time.Time, maxBytes int) (*Frame, error) {
	if len(msg) == 0 {
		return nil, ErrEmpty
	}
	if msg[0] == 0xFF {
		return New(KindJPEG, seq, now, msg, maxBytes)
	}
	if msg[0] == VersionLayered {
		return parseLayered(msg, maxBytes)
	}
	h, err := ParseHeader(msg)
	if err != nil {
		return nil, err
	}
	payload := msg[HeaderSize:]
	f := &Frame{Kind: h.Kind, Seq: h.Seq, Captured: h.Captured, Payload: payload, wire: msg}
	switch h.Kind {
	case KindJPEG:
		if err := CheckJPEG(payload, maxBytes); err != nil {
			return nil, err
		}
	case KindOffline:
		if len(payload) != 0 {
			return nil, fmt.Errorf("%w: offline event with %d payload bytes", ErrBadHeader, len(payload))
		}
	default:
		if err := checkH264(h.Kind, payload, maxBytes); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Header is the decoded fixed header of a binary message.
type Header struct {
	Kind     Kind
	Seq      uint64
	Captured time.Time
}

// ParseHeader decodes and validates the fixed header at the start of msg.
func ParseHeader(msg []byte) (Header, error) {
	if len(msg) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d", ErrBadHeader, len(msg), HeaderSize)
	}
	if msg[0] != Version {
		return Header{}, fmt.Errorf("%w: version %d, want %d", ErrBadHeader, msg[0], Version)
	}
	kind := Kind(msg[1])
	if kind < KindJPEG || kind > KindH264Delta {
		return Header{}, fmt.Errorf("%w: unknown kind %d", ErrBadHeader, msg[1])
	}
	if n := binary.BigEndian.Uint16(msg[2:4]); n != HeaderSize {
		return Header{}, fmt.Errorf("%w: header length %d, want %d", ErrBadHeader, n, HeaderSize)
	}
	return Header{
		Kind:     kind,
		Seq:      binary.BigEndian.Uint64(msg[4:12]),
		Captured: time.UnixMicro(int64(binary.BigEndian.Uint64(msg[12:20]))),
	}, nil
}

// Binary returns the version-1 binary message: header followed by the
// payload, whatever version the frame arrived in (a version-2 message holds
// it as its suffix). The slice is shared by every caller and must not be
// modified.
func (f *Frame) Binary() []byte { return f.wire }

// IsOffline reports whether f is a publisher-gone event rather than an image.
func (f *Frame) IsOffline() bool { return f.Kind == KindOffline }

const dataURLPrefix = "data:image/jpeg;base64,"

// JSON returns the seed's envelope for this frame:
//
//	{"message":"data:image/jpeg;base64,...","seq":N,"ts":MICROS}
//
// It is computed on first use and shared afterwards; callers must not modify
// it. Offline events have no JSON form and return nil.
func (f *Frame) JSON() []byte {
	if f.Kind != KindJPEG {
		return nil
	}
	f.jsonOnce.Do(func() {
		n := base64.StdEncoding.EncodedLen(len(f.Payload))
		b := make([]byte, 0, len(`{"message":"`)+len(dataURLPrefix)+n+64)
		b = append(b, `{"message":"`...)
		b = append(b, dataURLPrefix...)
		b = base64.StdEncoding.AppendEncode(b, f.Payload)
		b = append(b, `","seq":`...)
		b = strconv.AppendUint(b, f.Seq, 10)
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, f.Captured.UnixMicro(), 10)
		b = append(b, '}')
		f.json = b
	})
	return f.json
}

// AppendDataURL appends "data:image/jpeg;base64,<jpeg>" to dst: the text
// message the seed's sender posts.
func AppendDataURL(dst, jpeg []byte) []byte {
	dst = append(dst, dataURLPrefix...)
	return base64.StdEncoding.AppendEncode(dst, jpeg)
}

// ParseDataURL parses the seed sender's text message, a data URL of the form
// "data:image/jpeg;base64,..." (or "image/jpg", as the seed writes it), and
// returns the frame it holds. seq and now fill in the sequence number and
// capture time, which the seed's format does not carry. maxBytes limits the
// decoded JPEG size (<= 0: no limit); it is checked before decoding.
func ParseDataURL(msg []byte, seq uint64, now time.Time, maxBytes int) (*Frame, error) {
	if len(msg) == 0 {
		return nil, ErrEmpty
	}
	rest, ok := bytes.CutPrefix(msg, []byte("data:"))
	if !ok {
		return nil, fmt.Errorf("%w: missing \"data:\" prefix", ErrBadDataURL)
	}
	meta, b64, ok := bytes.Cut(rest, []byte(","))
	if !ok {
		return nil, fmt.Errorf("%w: missing comma", ErrBadDataURL)
	}
	mime, params, _ := bytes.Cut(meta, []byte(";"))
	if !bytes.EqualFold(mime, []byte("image/jpeg")) && !bytes.EqualFold(mime, []byte("image/jpg")) {
		return nil, fmt.Errorf("%w: %q", ErrBadMimeType, truncate(mime, 40))
	}
	if !bytes.EqualFold(params, []byte("base64")) {
		return nil, fmt.Errorf("%w: want \";base64\" encoding, got %q", ErrBadDataURL, truncate(params, 40))
	}
	n := base64.StdEncoding.DecodedLen(len(b64))
	if maxBytes > 0 && n > maxBytes+2 { // DecodedLen rounds up by up to 2 padding bytes
		return nil, fmt.Errorf("%w: about %d bytes, limit %d", ErrTooLarge, n, maxBytes)
	}
	wire := make([]byte, HeaderSize+n)
	m, err := base64.StdEncoding.Decode(wire[HeaderSize:], b64)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64: %v", ErrBadDataURL, err)
	}
	jpeg := wire[HeaderSize : HeaderSize+m]
	if err := CheckJPEG(jpeg, maxBytes); err != nil {
		return nil, err
	}
	PutHeader(wire, KindJPEG, seq, now)
	return &Frame{Kind: KindJPEG, Seq: seq, Captured: now, Payload: jpeg, wire: wire[:HeaderSize+m]}, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
