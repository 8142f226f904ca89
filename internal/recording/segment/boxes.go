package segment

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// framecast's own top-level boxes are ISO BMFF 'uuid' boxes (ISO/IEC
// 14496-12 §4.2: size, "uuid", a 16-byte user type, payload), which
// players skip. Each payload starts with a version byte and ends with a
// CRC-32C of everything before it in the payload.
//
// header (once, right after the init's moov):
//
//	u8  version (1)
//	u8  codec (frames.Codec)
//	u8  room name length n, then n bytes
//	i64 start: the first frame's capture time, Unix µs
//	u16 width, u16 height
//	u32 length m of the configuration message (0 for JPEG), then for H.264:
//	    u64 seq, i64 capture time (Unix µs), m-16 bytes of its payload:
//	    the configuration in effect when the segment began
//	u32 CRC-32C
//
// part (in front of every moof):
//
//	u8  version (1), u8 0
//	u32 the moof's sequence number (mfhd)
//	u32 CRC-32C of the moof and mdat boxes that follow
//	u32 message count, then per message, in the order received:
//	    u8  kind (frames.Kind)
//	    u8  form (see formSample...)
//	    u64 sequence number
//	    i64 capture time, Unix µs
//	    form-specific bytes
//	u32 CRC-32C
//
// index (last, written when the segment ends; a journal cut short by a
// crash has none):
//
//	u8  version (1), u8 0
//	u32 init size: where the first part begins
//	i64 end of the segment, Unix µs
//	u64 the last message's sequence number
//	u32 part count, then per part:
//	    u64 offset, u32 size, i64 first capture time (Unix µs),
//	    u64 first sequence number, u32 message count, u8 flags (1: the
//	    part starts with a keyframe)
//	u32 CRC-32C
//	u32 the whole box's size, so that the box can be found from the end
var (
	uuidHeader = [16]byte{0x90, 0xeb, 0x28, 0x79, 0xc4, 0x81, 0x4c, 0x6e, 0xa6, 0x26, 0xe1, 0x35, 0xd9, 0xbd, 0xf4, 0xf3}
	uuidPart   = [16]byte{0x75, 0x52, 0xe0, 0xce, 0x00, 0x09, 0x47, 0x00, 0x8a, 0x7b, 0xe2, 0x05, 0x2f, 0x95, 0xe1, 0x7e}
	uuidIndex  = [16]byte{0x8b, 0x5d, 0x1d, 0x45, 0xa5, 0x08, 0x42, 0x1b, 0xa8, 0x2c, 0x3e, 0x36, 0x07, 0x22, 0xf6, 0xaf}
)

const (
	boxVersion = 1
	// uuidHead is the size of a uuid box's header: size, type, user type.
	uuidHead = 8 + 16
	// msgHead is the fixed part of a message entry in a part box.
	msgHead = 1 + 1 + 8 + 8
	// partEntry is the size of one part's entry in the index box.
	partEntry = 8 + 4 + 8 + 8 + 4 + 1
	// indexFixed is the index box's size without its entries.
	indexFixed = uuidHead + 2 + 4 + 8 + 8 + 4 + 4 + 4
)

// Message forms in a part box: how a message's payload is rebuilt.
const (
	// formSample: the payload is the MP4 sample: a JPEG as is, or an H.264
	// access unit whose Annex-B form is its NAL units each behind a 4-byte
	// start code (what encoders write): nothing more is stored.
	formSample = 0
	// formStartCodes: an H.264 access unit with other start codes. Stored:
	// u16 NAL unit count k, then k bytes (the zero bytes in front of each
	// unit's 01), then u8 zero bytes after the last unit.
	formStartCodes = 1
	// formInline: the payload is in the box (u32 length, bytes): a
	// configuration, which is no MP4 sample, or an access unit whose start
	// codes formStartCodes cannot describe (more than 255 zeros; its
	// sample is still in the mdat for players).
	formInline = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// putUUIDHead writes a uuid box header for a box of size bytes into b.
func putUUIDHead(b []byte, size int, typ [16]byte) {
	binary.BigEndian.PutUint32(b, uint32(size))
	copy(b[4:8], "uuid")
	copy(b[8:24], typ[:])
}

// box is one top-level box found by nextBox.
type box struct {
	typ        [4]byte
	start, end int // [start, end) in the data
	payload    int // where the payload starts (after size, type and any user type)
	user       [16]byte
}

func (b box) is(t string) bool { return string(b.typ[:]) == t }

// errShort says that a box runs past the end of the data.
type errShort struct{ at, need, have int }

func (e errShort) Error() string {
	return fmt.Sprintf("box at byte %d needs %d bytes, %d left", e.at, e.need, e.have)
}

// nextBox reads the box header at off. A box that runs past the end is an
// errShort; one whose size cannot be right is another error.
func nextBox(data []byte, off int) (box, error) {
	left := len(data) - off
	if left < 8 {
		return box{}, errShort{off, 8, left}
	}
	b := box{start: off, payload: off + 8}
	size := int64(binary.BigEndian.Uint32(data[off:]))
	copy(b.typ[:], data[off+4:off+8])
	switch size {
	case 0:
		return box{}, fmt.Errorf("box %q at byte %d has size 0 (to the end of the file), which segments never use", b.typ, off)
	case 1:
		if left < 16 {
			return box{}, errShort{off, 16, left}
		}
		size = int64(binary.BigEndian.Uint64(data[off+8:]))
		b.payload += 8
	}
	hdr := int64(b.payload - off)
	if b.is("uuid") {
		hdr += 16
	}
	if size < hdr {
		return box{}, fmt.Errorf("box %q at byte %d has size %d, less than its header", b.typ, off, size)
	}
	if size > int64(left) {
		return box{}, errShort{off, int(min(size, 1<<40)), left}
	}
	b.end = off + int(size)
	if b.is("uuid") {
		copy(b.user[:], data[b.payload:])
		b.payload += 16
	}
	return b, nil
}

// reader decodes the fields of a box payload; the first read past the end
// sets bad, and every read after it returns zero.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

func (r *reader) i64() int64 { return int64(r.u64()) }

// checked splits a box payload into its body and checks the CRC-32C at its
// end (and its version byte).
func checked(payload []byte, what string) (*reader, error) {
	if len(payload) < 5 {
		return nil, fmt.Errorf("%s box of %d bytes", what, len(payload))
	}
	body := payload[:len(payload)-4]
	if got, want := crc32.Checksum(body, castagnoli), binary.BigEndian.Uint32(payload[len(body):]); got != want {
		return nil, fmt.Errorf("%s box checksum %08x, want %08x", what, got, want)
	}
	if body[0] != boxVersion {
		return nil, fmt.Errorf("%s box version %d, this reader knows %d", what, body[0], boxVersion)
	}
	return &reader{b: body[1:]}, nil
}
