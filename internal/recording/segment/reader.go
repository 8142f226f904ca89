package segment

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4/codecs"

	"github.com/framecast/framecast/pkg/frames"
)

// Errors of the reader. The returned errors wrap them with the offset and
// the reason.
var (
	// ErrTorn: the data ends inside a box: a journal whose writer was
	// killed mid-write, or a byte range cut short. What came before it is
	// returned.
	ErrTorn = errors.New("segment: torn")
	// ErrCorrupt: bytes that are not what a Writer writes: a checksum that
	// does not match, a part whose box and moof disagree, an unexpected
	// box. What came before it is returned.
	ErrCorrupt = errors.New("segment: corrupt")
)

// Info describes a segment as read.
type Info struct {
	// Stream is the recorded stream: its room, layer 0, its codec.
	Stream frames.Stream
	// Width and Height are the pictures' size (the JPEGs', or the H.264
	// configuration's).
	Width, Height int
	// Config is the H.264 configuration in effect when the segment began
	// (also its first frame when the publisher sent it there, as
	// framecast's sender does); nil for JPEG.
	Config *frames.Frame
	// Summary is what the index records. When the segment was not ended
	// (a journal), End is estimated from the last sample's duration and
	// Bytes counts the whole parts read.
	Summary
	// InitSize is where the first part begins.
	InitSize int64
	// Parts locates each part read.
	Parts []PartInfo
	// Sealed reports whether the segment ends with its index box (End
	// wrote it): false for a journal still being written, or cut short.
	Sealed bool
}

// Read parses a segment, or the journal of one being written, into its
// frames, exactly as they were given to the Writer (kind, sequence number,
// capture time, payload; Room set, Layer 0, Width and Height from the
// segment). When the data ends inside a part (ErrTorn) or holds a bad one
// (ErrCorrupt), Read returns the frames of the parts before it, the info
// so far, and the error, for the caller to log. Info is nil only when not
// even the init could be read.
func Read(data []byte) ([]*frames.Frame, *Info, error) {
	info, err := ReadInit(data)
	if err != nil {
		return nil, nil, err
	}
	fs, err := info.read(data, int(info.InitSize), true)
	return fs, info, err
}

// ReadInit parses the start of a segment: its MP4 init and header box.
// data may be any prefix holding them (Info.InitSize bytes; a few hundred
// bytes plus the configuration). Info's Summary and Parts are left empty.
func ReadInit(data []byte) (*Info, error) {
	ftyp, err := nextBox(data, 0)
	if err != nil {
		return nil, bad(err, "init")
	}
	moov, err := nextBox(data, ftyp.end)
	if err != nil {
		return nil, bad(err, "init")
	}
	if !ftyp.is("ftyp") || !moov.is("moov") {
		return nil, fmt.Errorf("%w: starts with boxes %q, %q, not ftyp, moov", ErrCorrupt, ftyp.typ, moov.typ)
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(data[:moov.end])); err != nil {
		return nil, fmt.Errorf("%w: MP4 init: %v", ErrCorrupt, err)
	}
	if len(init.Tracks) != 1 || init.Tracks[0].ID != 1 || init.Tracks[0].TimeScale != Timescale {
		return nil, fmt.Errorf("%w: MP4 init is not one track 1 at %d Hz", ErrCorrupt, Timescale)
	}
	hdr, err := nextBox(data, moov.end)
	if err != nil {
		return nil, bad(err, "header")
	}
	if !hdr.is("uuid") || hdr.user != uuidHeader {
		return nil, fmt.Errorf("%w: box %q after the moov is not framecast's header", ErrCorrupt, hdr.typ)
	}
	info, err := parseHeader(data[hdr.payload:hdr.end])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	switch c := init.Tracks[0].Codec.(type) {
	case *codecs.H264:
		if info.Stream.Codec != frames.CodecH264 {
			return nil, fmt.Errorf("%w: an H.264 track in a %s segment", ErrCorrupt, info.Stream.Codec)
		}
	case *codecs.MJPEG:
		if info.Stream.Codec != frames.CodecJPEG || c.Width != info.Width || c.Height != info.Height {
			return nil, fmt.Errorf("%w: an M-JPEG %d×%d track in a %s %d×%d segment", ErrCorrupt, c.Width, c.Height, info.Stream.Codec, info.Width, info.Height)
		}
	default:
		return nil, fmt.Errorf("%w: a track of codec %T", ErrCorrupt, c)
	}
	info.InitSize = int64(hdr.end)
	return info, nil
}

// bad turns a box-reading error into ErrTorn or ErrCorrupt.
func bad(err error, where string) error {
	if errors.As(err, new(errShort)) {
		return fmt.Errorf("%w: %s: %v", ErrTorn, where, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrCorrupt, where, err)
}

func parseHeader(payload []byte) (*Info, error) {
	r, err := checked(payload, "header")
	if err != nil {
		return nil, err
	}
	info := &Info{}
	info.Stream.Codec = frames.Codec(r.u8())
	info.Stream.Room = string(r.take(int(r.u8())))
	info.Start = time.UnixMicro(r.i64())
	info.Width, info.Height = int(r.u16()), int(r.u16())
	cfg := r.take(int(r.u32()))
	if r.bad || len(r.b) != 0 {
		return nil, fmt.Errorf("header box of %d bytes does not add up", len(payload))
	}
	if err := info.Stream.Valid(); err != nil {
		return nil, fmt.Errorf("header box: %v", err)
	}
	switch {
	case info.Stream.Codec == frames.CodecH264 && len(cfg) >= 16:
		c, err := frames.New(frames.KindH264Config, binary.BigEndian.Uint64(cfg), time.UnixMicro(int64(binary.BigEndian.Uint64(cfg[8:]))), cfg[16:], 0)
		if err != nil {
			return nil, fmt.Errorf("header box: configuration: %v", err)
		}
		info.setFrame(c)
		info.Config = c
	case info.Stream.Codec == frames.CodecH264 || len(cfg) != 0:
		return nil, fmt.Errorf("header box: a %s segment with %d bytes of configuration", info.Stream.Codec, len(cfg))
	}
	return info, nil
}

// setFrame fills in what a frame read from this segment shares with it.
func (info *Info) setFrame(f *frames.Frame) {
	f.Room, f.Layer, f.Width, f.Height = info.Stream.Room, 0, info.Width, info.Height
}

// ReadParts parses the whole parts at the start of data, which begins at
// offset in the segment described by info (from ReadInit): a byte range
// from a part's offset (see ReadIndex) to another's, or to the end. It
// returns their frames and where each part is. It stops without error at
// the index box; at a part cut short or corrupt it returns the frames
// before it and ErrTorn or ErrCorrupt.
func ReadParts(info *Info, data []byte, offset int64) ([]*frames.Frame, []PartInfo, error) {
	sub := &Info{Stream: info.Stream, Width: info.Width, Height: info.Height, InitSize: info.InitSize}
	fs, err := sub.read(data, 0, false)
	for i := range sub.Parts {
		sub.Parts[i].Offset += offset
	}
	return fs, sub.Parts, err
}

// read parses the parts in data from off, appending to info.Parts and
// filling its Summary; whole is true when data is the whole segment (its
// offsets are the segment's, and its index box is checked).
func (info *Info) read(data []byte, off int, whole bool) ([]*frames.Frame, error) {
	var out []*frames.Frame
	var p partReader
	endEstimate := info.Start.UnixMicro()
	info.End = info.Start
	info.Bytes = int64(off)
	for off < len(data) {
		b, err := nextBox(data, off)
		if err != nil {
			return out, bad(err, fmt.Sprintf("box at byte %d", off))
		}
		switch {
		case b.is("uuid") && b.user == uuidPart:
			fs, end, next, err := p.read(info, data, b)
			if err != nil {
				return out, err
			}
			first := fs[0]
			info.Parts = append(info.Parts, PartInfo{Offset: int64(off), Size: int64(next - off), Start: first.Captured,
				FirstSeq: first.Seq, Frames: len(fs), Key: p.key})
			if info.Frames == 0 {
				info.FirstSeq = first.Seq
			}
			info.Frames += len(fs)
			info.LastSeq = fs[len(fs)-1].Seq
			out = append(out, fs...)
			endEstimate = end
			off = next
			info.Bytes = int64(off)
		case b.is("uuid") && b.user == uuidIndex:
			if whole {
				idx, err := parseIndex(data[b.start:b.end])
				if err == nil && b.end != len(data) {
					err = fmt.Errorf("%d bytes after it", len(data)-b.end)
				}
				if err == nil {
					err = idx.matches(info)
				}
				if err != nil {
					return out, fmt.Errorf("%w: index box at byte %d: %v", ErrCorrupt, off, err)
				}
				info.Sealed = true
				info.End = idx.End
				info.Bytes = int64(b.end)
			}
			return out, nil
		case b.is("free") || b.is("skip"):
			off = b.end
		default:
			return out, fmt.Errorf("%w: unexpected box %q at byte %d", ErrCorrupt, b.typ, off)
		}
		info.End = time.UnixMicro(endEstimate)
	}
	return out, nil
}

// partReader parses parts; it keeps its scratch space between them.
type partReader struct {
	parts fmp4.Parts
	key   bool // the last part read starts with a keyframe
}

// read parses the part whose box is b: the box, then its moof and mdat.
// It returns the part's frames, the end of its last sample (Unix µs,
// estimated from the sample's duration) and where the part ends.
func (p *partReader) read(info *Info, data []byte, b box) ([]*frames.Frame, int64, int, error) {
	fail := func(format string, a ...any) ([]*frames.Frame, int64, int, error) {
		return nil, 0, 0, fmt.Errorf("%w: part at byte %d: %s", ErrCorrupt, b.start, fmt.Sprintf(format, a...))
	}
	moof, err := nextBox(data, b.end)
	if err != nil {
		return nil, 0, 0, bad(err, fmt.Sprintf("part at byte %d: moof", b.start))
	}
	mdat, err := nextBox(data, moof.end)
	if err != nil {
		return nil, 0, 0, bad(err, fmt.Sprintf("part at byte %d: mdat", b.start))
	}
	if !moof.is("moof") || !mdat.is("mdat") {
		return fail("boxes %q, %q after the part box, not moof, mdat", moof.typ, mdat.typ)
	}
	r, err := checked(data[b.payload:b.end], "part")
	if err != nil {
		return fail("%v", err)
	}
	r.u8()
	seqNum := r.u32()
	if got, want := crc32.Checksum(data[moof.start:mdat.end], castagnoli), r.u32(); got != want {
		return fail("moof and mdat checksum %08x, the part box says %08x", got, want)
	}
	count := int(r.u32())
	if count == 0 || count > maxPartMessages {
		return fail("%d messages", count)
	}
	p.parts = p.parts[:0]
	if err := p.parts.Unmarshal(data[moof.start:mdat.end]); err != nil {
		return fail("moof: %v", err)
	}
	if len(p.parts) != 1 || len(p.parts[0].Tracks) != 1 || p.parts[0].Tracks[0].ID != 1 {
		return fail("not one part of track 1")
	}
	if p.parts[0].SequenceNumber != seqNum {
		return fail("moof sequence number %d, the part box says %d", p.parts[0].SequenceNumber, seqNum)
	}
	track := p.parts[0].Tracks[0]
	samples := track.Samples
	fs := make([]*frames.Frame, 0, count)
	var lastTime int64
	var lastDur uint32
	p.key = info.Stream.Codec == frames.CodecJPEG
	firstSample := true
	for range count {
		kind, form := frames.Kind(r.u8()), r.u8()
		seq, captured := r.u64(), r.i64()
		if r.bad {
			return fail("part box ends inside message %d", len(fs))
		}
		if codec, ok := kind.Codec(); !ok || codec != info.Stream.Codec {
			return fail("a kind-%d message in a %s segment", kind, info.Stream.Codec)
		}
		var payload []byte
		if kind != frames.KindH264Config {
			if len(samples) == 0 {
				return fail("more messages than the moof's %d samples", len(track.Samples))
			}
			s := samples[0]
			samples = samples[1:]
			lastTime, lastDur = captured, s.Duration
			if firstSample {
				p.key = p.key || kind == frames.KindH264Key
				firstSample = false
			}
			switch {
			case form == formInline:
			case kind == frames.KindJPEG && form == formSample:
				payload = s.Payload
			case form == formSample:
				payload = annexB(s.Payload, nil)
			case form == formStartCodes:
				n := int(r.u16())
				payload = annexB(s.Payload, r.take(n+1))
			default:
				return fail("message %d: form %d for kind %d", len(fs), form, kind)
			}
			if payload == nil && form != formInline {
				return fail("message %d: sample is not AVCC in the shape its box says", len(fs))
			}
		}
		if form == formInline {
			payload = r.take(int(r.u32()))
		}
		if r.bad {
			return fail("part box ends inside message %d", len(fs))
		}
		f, err := frames.New(kind, seq, time.UnixMicro(captured), payload, 0)
		if err != nil {
			return fail("message %d: %v", len(fs), err)
		}
		info.setFrame(f)
		fs = append(fs, f)
	}
	if len(r.b) != 0 || len(samples) != 0 {
		return fail("%d bytes and %d samples left over", len(r.b), len(samples))
	}
	return fs, lastTime + int64(lastDur)*100/9, mdat.end, nil
}

// annexB rebuilds an access unit's Annex-B form from its AVCC sample:
// each NAL unit behind zeros[i] zero bytes and 01 (3 zeros when zeros is
// nil), zeros[n] zero bytes after the last. It returns nil when the
// sample is not AVCC with len(zeros)-1 units.
func annexB(avcc []byte, zeros []byte) []byte {
	size, n := 0, 0
	for b := avcc; len(b) > 0; n++ {
		if len(b) < 4 {
			return nil
		}
		l := int(binary.BigEndian.Uint32(b))
		if l == 0 || l > len(b)-4 {
			return nil
		}
		size += l
		b = b[4+l:]
	}
	if n == 0 || zeros != nil && len(zeros) != n+1 {
		return nil
	}
	if zeros == nil {
		size += 4 * n
	} else {
		for _, z := range zeros {
			size += int(z) + 1
		}
		size--
	}
	out := make([]byte, 0, size)
	for i, b := 0, avcc; len(b) > 0; i++ {
		l := int(binary.BigEndian.Uint32(b))
		z := 3
		if zeros != nil {
			z = int(zeros[i])
		}
		for range z {
			out = append(out, 0)
		}
		out = append(out, 1)
		out = append(out, b[4:4+l]...)
		b = b[4+l:]
	}
	if zeros != nil {
		for range zeros[n] {
			out = append(out, 0)
		}
	}
	return out
}

// Index is what a sealed segment's index box says: enough to read any
// part by byte range without reading the rest, and to summarize the
// segment (Summary) without reading its parts.
type Index struct {
	// InitSize is the size of the init and header box: bytes [0,
	// InitSize) are what ReadInit needs.
	InitSize int64
	// End is the segment's end (Summary.End).
	End time.Time
	// LastSeq is its last message's sequence number (the first part's
	// FirstSeq is the first's).
	LastSeq uint64
	// Parts locates every part.
	Parts []PartInfo
}

// IndexTail is how many bytes from a sealed segment's end hold its index
// box, for segments of up to about 120 parts; ReadIndex says how many it
// needs when they are more.
const IndexTail = 4096

// ShortTailError is ReadIndex's error when the tail it was given is
// shorter than the index box: Need bytes from the end hold it.
type ShortTailError struct{ Need int }

func (e *ShortTailError) Error() string {
	return fmt.Sprintf("segment: the index box needs the last %d bytes", e.Need)
}

// ReadIndex parses the index box at the end of a sealed segment from the
// segment's last bytes (IndexTail of them is usually enough; when not, the
// error is a *ShortTailError saying how many). A segment that was never
// ended has no index box: ErrCorrupt; read it whole with Read.
func ReadIndex(tail []byte) (*Index, error) {
	if len(tail) < 4 {
		return nil, &ShortTailError{Need: indexFixed}
	}
	size := int(binary.BigEndian.Uint32(tail[len(tail)-4:]))
	if size < indexFixed || size > 1<<30 {
		return nil, fmt.Errorf("%w: no index box at the end (size field %d)", ErrCorrupt, size)
	}
	if size > len(tail) {
		return nil, &ShortTailError{Need: size}
	}
	return parseIndex(tail[len(tail)-size:])
}

// parseIndex parses a whole index box.
func parseIndex(b []byte) (*Index, error) {
	bx, err := nextBox(b, 0)
	if err != nil || bx.end != len(b) || !bx.is("uuid") || bx.user != uuidIndex {
		return nil, fmt.Errorf("%w: not an index box", ErrCorrupt)
	}
	payload := b[bx.payload:bx.end]
	if len(payload) < 4 || int(binary.BigEndian.Uint32(payload[len(payload)-4:])) != len(b) {
		return nil, fmt.Errorf("%w: the index box's size at its end is not its size", ErrCorrupt)
	}
	r, err := checked(payload[:len(payload)-4], "index")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	r.u8()
	idx := &Index{InitSize: int64(r.u32()), End: time.UnixMicro(r.i64()), LastSeq: r.u64()}
	n := int(r.u32())
	if n != (len(r.b))/partEntry || len(r.b)%partEntry != 0 {
		return nil, fmt.Errorf("%w: index box with %d parts in %d bytes", ErrCorrupt, n, len(r.b))
	}
	idx.Parts = make([]PartInfo, n)
	for i := range idx.Parts {
		idx.Parts[i] = PartInfo{Offset: int64(r.u64()), Size: int64(r.u32()), Start: time.UnixMicro(r.i64()),
			FirstSeq: r.u64(), Frames: int(r.u32()), Key: r.u8()&1 != 0}
	}
	return idx, nil
}

// Summary returns the summary of the segment from its index alone; size
// is the segment's size.
func (idx *Index) Summary(size int64) Summary {
	s := Summary{Start: idx.End, End: idx.End, Bytes: size, LastSeq: idx.LastSeq}
	if len(idx.Parts) > 0 {
		s.Start, s.FirstSeq = idx.Parts[0].Start, idx.Parts[0].FirstSeq
	}
	for _, p := range idx.Parts {
		s.Frames += p.Frames
	}
	return s
}

// matches checks the index against the parts read.
func (idx *Index) matches(info *Info) error {
	if idx.LastSeq != info.LastSeq {
		return fmt.Errorf("it says the last message is %d, the segment's is %d", idx.LastSeq, info.LastSeq)
	}
	if idx.InitSize != info.InitSize || len(idx.Parts) != len(info.Parts) {
		return fmt.Errorf("it lists %d parts after byte %d; the segment has %d after byte %d",
			len(idx.Parts), idx.InitSize, len(info.Parts), info.InitSize)
	}
	for i, p := range idx.Parts {
		q := info.Parts[i]
		if p.Offset != q.Offset || p.Size != q.Size || !p.Start.Equal(q.Start) || p.FirstSeq != q.FirstSeq || p.Frames != q.Frames || p.Key != q.Key {
			return fmt.Errorf("part %d: it says %+v, the segment has %+v", i, p, q)
		}
	}
	return nil
}

// Repair turns the bytes of a segment that was never ended (the journal
// of a recorder that died) into a sealed segment: the whole parts it
// holds, then an index box. It returns the new bytes, their info, and the
// error that cut the journal short (ErrTorn, ErrCorrupt) for the caller to
// log. A segment already sealed comes back as it is. When info.Frames is
// 0 there is nothing to keep: discard the journal.
func Repair(data []byte) ([]byte, *Info, error) {
	_, info, err := Read(data)
	if info == nil {
		return nil, nil, err
	}
	if info.Sealed {
		return data[:info.Bytes], info, err
	}
	out := appendIndex(bytes.Clone(data[:info.Bytes]), info.InitSize, info.End.UnixMicro(), info.LastSeq, info.Parts)
	info.Bytes = int64(len(out))
	info.Sealed = true
	return out, info, err
}
