package index

import (
	"encoding/binary"
	"hash/crc32"
	"slices"
)

// A day log is a sequence of records of RecordSize bytes:
//
//	offset size field
//	0      1    magic 0xFC
//	1      1    type: 'O' a segment began, 'S' a segment was sealed,
//	            'P' a span (start, end) of the day's summary
//	2      1    version (1)
//	3      1    0
//	4      4    frames (sealed); the summary's span count ('P')
//	8      8    start, Unix µs: the segment's first frame's capture time
//	16     8    end, Unix µs (sealed)
//	24     8    bytes (sealed)
//	32     8    first sequence number (sealed)
//	40     8    last sequence number (sealed)
//	48     4    0
//	52     4    CRC-32C of bytes 0 to 51
//
// all big-endian. A record that does not check (a torn last append, or a
// damaged byte) is skipped, and the parser finds the next one that does,
// so one bad record never hides the ones after it. A sealed record of no
// frames withdraws the segment (Recover writes one for a journal it
// discards).
//
// A sealed log whose segments are all sealed begins with its summary:
// the day's spans (segments less than SpanGap apart merged), one 'P'
// record each, so that Spans reads the first few kilobytes of a past day
// instead of all its records.
const RecordSize = 56

const (
	recMagic   = 0xFC
	recVersion = 1
	recOpen    = 'O'
	recSealed  = 'S'
	recSpan    = 'P'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// seg is one segment as a day log records it: what a Catalog keeps in
// memory per segment.
type seg struct {
	start, end        int64 // Unix µs; end is 0 while open
	bytes             int64
	firstSeq, lastSeq uint64
	frames            uint32
	open              bool
}

// segSize is the memory a seg takes, for the cache's accounting.
const segSize = 48

func appendRecord(dst []byte, s seg) []byte {
	typ := byte(recSealed)
	if s.open {
		typ = recOpen
	}
	return appendTyped(dst, typ, s)
}

func appendTyped(dst []byte, typ byte, s seg) []byte {
	at := len(dst)
	dst = append(dst, recMagic, typ, recVersion, 0)
	dst = binary.BigEndian.AppendUint32(dst, s.frames)
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.start))
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.end))
	dst = binary.BigEndian.AppendUint64(dst, uint64(s.bytes))
	dst = binary.BigEndian.AppendUint64(dst, s.firstSeq)
	dst = binary.BigEndian.AppendUint64(dst, s.lastSeq)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[at:], castagnoli))
}

// decodeRecord decodes the record at the start of b, if it checks, and
// returns its type.
func decodeRecord(b []byte) (seg, byte, bool) {
	if len(b) < RecordSize || b[0] != recMagic || b[2] != recVersion || b[1] != recOpen && b[1] != recSealed && b[1] != recSpan ||
		b[3] != 0 || binary.BigEndian.Uint32(b[48:]) != 0 {
		return seg{}, 0, false
	}
	if crc32.Checksum(b[:52], castagnoli) != binary.BigEndian.Uint32(b[52:]) {
		return seg{}, 0, false
	}
	return seg{
		open:     b[1] == recOpen,
		frames:   binary.BigEndian.Uint32(b[4:]),
		start:    int64(binary.BigEndian.Uint64(b[8:])),
		end:      int64(binary.BigEndian.Uint64(b[16:])),
		bytes:    int64(binary.BigEndian.Uint64(b[24:])),
		firstSeq: binary.BigEndian.Uint64(b[32:]),
		lastSeq:  binary.BigEndian.Uint64(b[40:]),
	}, b[1], true
}

// parseLog decodes a day log's segment records, appending them to dst,
// and passes over its summary. It skips bytes that are no record
// (counted in skipped) until one checks again.
func parseLog(dst []seg, b []byte) (segs []seg, skipped int) {
	dst = slices.Grow(dst, len(b)/RecordSize)
	for len(b) >= RecordSize {
		if s, typ, ok := decodeRecord(b); ok {
			if typ != recSpan {
				dst = append(dst, s)
			}
			b = b[RecordSize:]
			continue
		}
		b = b[1:]
		skipped++
	}
	return dst, skipped + len(b)
}

// settle sorts segs by start and keeps one record per segment: the last
// sealed record of a start, else its open record; withdrawn segments go.
// Recorders append in time order, so the sort finds the log already
// sorted.
func settle(segs []seg) []seg {
	if !slices.IsSortedFunc(segs, bySegStart) {
		slices.SortStableFunc(segs, bySegStart)
	}
	out := segs[:0]
	for _, s := range segs {
		if n := len(out); n > 0 && out[n-1].start == s.start {
			if !s.open || out[n-1].open {
				out[n-1] = s
			}
			continue
		}
		out = append(out, s)
	}
	return slices.DeleteFunc(out, withdrawn)
}

func withdrawn(s seg) bool { return !s.open && s.frames == 0 }

func bySegStart(a, b seg) int {
	switch {
	case a.start < b.start:
		return -1
	case a.start > b.start:
		return 1
	}
	return 0
}

// summaryOf returns the spans of the summary at the start of a sealed
// log's first bytes b, or false when b does not begin with a whole one.
func summaryOf(b []byte) ([]span, bool) {
	first, typ, ok := decodeRecord(b)
	if !ok || typ != recSpan || int(first.frames) > len(b)/RecordSize {
		return nil, false
	}
	spans := make([]span, 0, first.frames)
	for i := range int(first.frames) {
		s, typ, ok := decodeRecord(b[i*RecordSize:])
		if !ok || typ != recSpan || s.frames != first.frames {
			return nil, false
		}
		spans = append(spans, span{s.start, s.end})
	}
	return spans, true
}

// encodeLog encodes a settled day log: its summary when no segment is
// open, then its records.
func encodeLog(segs []seg) []byte {
	spans, _ := summarySpans(segs)
	b := make([]byte, 0, (len(spans)+len(segs))*RecordSize)
	for _, sp := range spans {
		b = appendTyped(b, recSpan, seg{start: sp.start, end: sp.end, frames: uint32(len(spans))})
	}
	for _, s := range segs {
		b = appendRecord(b, s)
	}
	return b
}

// summarySpans returns the spans of a sealed log's summary: those of segs
// (settled) when none is open, else false (such a log has no summary).
func summarySpans(segs []seg) ([]span, bool) {
	if slices.ContainsFunc(segs, func(s seg) bool { return s.open }) {
		return nil, false
	}
	return spansOf(segs, func(s seg) int64 { return s.end }), true
}

// span is a range of recorded time (Unix µs).
type span struct{ start, end int64 }

// spansOf merges the ranges of segs (sorted by start, ending where end
// says) less than SpanGap apart.
func spansOf(segs []seg, end func(seg) int64) []span {
	var out []span
	gap := SpanGap.Microseconds()
	for _, s := range segs {
		e := end(s)
		if n := len(out); n > 0 && s.start-out[n-1].end <= gap {
			out[n-1].end = max(out[n-1].end, e)
			continue
		}
		out = append(out, span{s.start, e})
	}
	return out
}
