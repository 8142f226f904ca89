package loadgen

import (
	"bytes"

	"github.com/framecast/framecast/pkg/frames"
)

// NoLayer is the layer ParseFrame reports for a version-1 message, which
// does not name its layer.
const NoLayer = -1

// ParseBinaryFrame reads the sequence number and capture time (unix µs) from
// a binary viewer message, version 1 or 2, looking at its headers only. ok
// is false for anything but a well-formed picture: a JPEG frame or an H.264
// keyframe or delta (offline events and H.264 configurations are not
// pictures).
func ParseBinaryFrame(msg []byte) (seq uint64, captureUS int64, ok bool) {
	seq, captureUS, _, ok = ParseFrame(msg)
	return seq, captureUS, ok
}

// ParseFrame is ParseBinaryFrame that also returns the layer a version-2
// message names (NoLayer for version 1). A version-2 message's layer block
// (docs/protocol.md, "Version-2 messages") is checked and skipped by its
// length field without being decoded: no allocation per message, and a
// version-1 message costs one byte compare more than before. A block that
// is short, names a layer past frames.MaxLayers, has flags, a length that
// does not match its room length, or an inner message of another kind or
// version makes ok false.
func ParseFrame(msg []byte) (seq uint64, captureUS int64, layer int, ok bool) {
	kind, seq, captureUS, layer, ok := ParseMessage(msg)
	if !ok || !isPicture(kind) {
		return 0, 0, NoLayer, false
	}
	return seq, captureUS, layer, true
}

// isPicture reports whether a message of kind k is one picture: a JPEG
// frame, an H.264 keyframe or delta.
func isPicture(k frames.Kind) bool {
	return k == frames.KindJPEG || k == frames.KindH264Key || k == frames.KindH264Delta
}

// ParseMessage is ParseFrame for every kind of binary message (offline
// events and H.264 configurations included), returning the kind: the
// headers as frames.PeekMessage reads them.
func ParseMessage(msg []byte) (kind frames.Kind, seq uint64, captureUS int64, layer int, ok bool) {
	m, err := frames.PeekMessage(msg)
	if err != nil {
		return 0, 0, 0, NoLayer, false
	}
	layer = NoLayer
	if m.Layered {
		layer = m.Layer
	}
	return m.Kind, m.Seq, m.Captured.UnixMicro(), layer, true
}

// parseJSONLayer is ParseJSONFrame with the viewer parser's signature: the
// seed's envelope never names a layer.
func parseJSONLayer(msg []byte) (uint64, int64, int, bool) {
	seq, ts, ok := ParseJSONFrame(msg)
	return seq, ts, NoLayer, ok
}

// jsonTail is how far from the end of a JSON message the "seq" and "ts"
// fields are looked for: they follow the data URL, and two 20-digit numbers
// with their keys fit well within it.
const jsonTail = 96

var (
	jsonPrefix = []byte(`{"message":"data:image/jpeg;base64,`)
	jsonSeqKey = []byte(`"seq":`)
	jsonTSKey  = []byte(`"ts":`)
)

// ParseJSONFrame reads "seq" and "ts" from the gateway's JSON envelope
//
//	{"message":"data:image/jpeg;base64,...","seq":N,"ts":MICROS}
//
// without unmarshalling it: it checks the prefix and scans only the last
// bytes, where the two fields are. A load generator that decoded 67 KB of
// JSON per message would measure itself, not the gateway.
func ParseJSONFrame(msg []byte) (seq uint64, captureUS int64, ok bool) {
	if !bytes.HasPrefix(msg, jsonPrefix) || msg[len(msg)-1] != '}' {
		return 0, 0, false
	}
	tail := msg[max(len(jsonPrefix), len(msg)-jsonTail):]
	i := bytes.LastIndex(tail, jsonSeqKey)
	j := bytes.LastIndex(tail, jsonTSKey)
	if i < 0 || j < 0 {
		return 0, 0, false
	}
	s, ok1 := parseInt(tail[i+len(jsonSeqKey):])
	t, ok2 := parseInt(tail[j+len(jsonTSKey):])
	if !ok1 || !ok2 || s < 0 {
		return 0, 0, false
	}
	return uint64(s), t, true
}

// parseInt parses the decimal integer at the start of b, stopping at the
// first byte that is not a digit. It needs at least one digit.
func parseInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	var v int64
	n := 0
	for ; n < len(b) && n < 19 && b[n] >= '0' && b[n] <= '9'; n++ {
		v = v*10 + int64(b[n]-'0')
	}
	if n == 0 || (n < len(b) && b[n] >= '0' && b[n] <= '9') {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}
