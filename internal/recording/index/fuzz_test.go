package index

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzParseLog feeds day-log bytes from a store to the parser: no panic,
// every record it returns encodes back to bytes found in the input, and
// settling is idempotent.
func FuzzParseLog(f *testing.F) {
	var b []byte
	for i := range 4 {
		b = appendRecord(b, seg{start: int64(i * 10), open: true})
		b = appendRecord(b, seg{start: int64(i * 10), end: int64(i*10 + 10), bytes: 99, frames: 3, firstSeq: 1, lastSeq: 3})
	}
	f.Add(b)
	f.Add(b[:len(b)-3])
	f.Add(append([]byte{1, 2, 3}, b[5:]...))
	f.Add([]byte{})
	f.Add(encodeLog(settle(func() []seg { s, _ := parseLog(nil, b); return s }())))
	f.Fuzz(func(t *testing.T, data []byte) {
		if spans, ok := summaryOf(data); ok && len(spans)*RecordSize > len(data) {
			t.Fatalf("a summary of %d spans in %d bytes", len(spans), len(data))
		}
		segs, skipped := parseLog(nil, data)
		if len(segs)*RecordSize+skipped > len(data) || (len(data)-skipped)%RecordSize != 0 {
			t.Fatalf("%d records and %d skipped bytes in %d bytes", len(segs), skipped, len(data))
		}
		for _, s := range segs {
			if !bytes.Contains(data, appendRecord(nil, s)) {
				t.Fatalf("record %+v is not in the input", s)
			}
		}
		once := settle(slices.Clone(segs))
		if twice := settle(slices.Clone(once)); !slices.Equal(once, twice) {
			t.Fatal("settle is not idempotent")
		}
		if !slices.IsSortedFunc(once, bySegStart) {
			t.Fatal("settled records are not sorted")
		}
		again, _ := parseLog(nil, encodeLog(once))
		if !slices.Equal(again, once) {
			t.Fatal("an encoded log does not parse back")
		}
	})
}

// FuzzParseCutoff: the cutoff object parser never panics and accepts
// only what appendCutoff writes.
func FuzzParseCutoff(f *testing.F) {
	f.Add(appendCutoff(nil, 1796652180125000))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		if v, ok := parseCutoff(data); ok && !bytes.Equal(appendCutoff(nil, v), data) {
			t.Fatalf("accepted %x as %d", data, v)
		}
	})
}

// FuzzParseRollup: the rollup parser never panics and accepts only what
// encodeRollup writes.
func FuzzParseRollup(f *testing.F) {
	f.Add(encodeRollup(&rollup{from: 20000, through: 20030, logs: map[int64]rolledLog{
		20001: {spans: []span{{1, 2}, {3, 4}}}, 20002: {open: true}, 20003: {spans: []span{}}}}))
	f.Add(encodeRollup(&rollup{from: -5, through: -5, logs: map[int64]rolledLog{}}))
	f.Add([]byte("FCRU"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, ok := parseRollup(data); ok && !bytes.Equal(encodeRollup(r), data) {
			t.Fatalf("accepted %x as %+v", data, r)
		}
	})
}
