package avc

import (
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every error about bad input.
var ErrMalformed = errors.New("avc: malformed input")

// NALType is the nal_unit_type of a NAL unit (the low 5 bits of its first byte).
type NALType uint8

// The NAL unit types a relay cares about (ITU-T H.264 table 7-1).
const (
	NALSlice    NALType = 1  // coded slice of a non-IDR picture
	NALSliceA   NALType = 2  // slice data partition A
	NALIDR      NALType = 5  // coded slice of an IDR picture
	NALSEI      NALType = 6  // supplemental enhancement information
	NALSPS      NALType = 7  // sequence parameter set
	NALPPS      NALType = 8  // picture parameter set
	NALAUD      NALType = 9  // access unit delimiter
	NALFiller   NALType = 12 // filler data
	NALSPSExt   NALType = 13 // sequence parameter set extension
	NALPrefix   NALType = 14 // prefix NAL unit (SVC)
	NALSubsetSP NALType = 15 // subset sequence parameter set (SVC/MVC)
)

var nalTypeNames = map[NALType]string{
	NALSlice: "slice", NALSliceA: "slice-partition-a", NALIDR: "idr", NALSEI: "sei",
	NALSPS: "sps", NALPPS: "pps", NALAUD: "aud", NALFiller: "filler",
	NALSPSExt: "sps-ext", NALPrefix: "prefix", NALSubsetSP: "subset-sps",
}

func (t NALType) String() string {
	if s, ok := nalTypeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("nal-type-%d", uint8(t))
}

// Type returns the type of a NAL unit (without start code). An empty unit has
// type 0 (unspecified).
func Type(nalu []byte) NALType {
	if len(nalu) == 0 {
		return 0
	}
	return NALType(nalu[0] & 0x1f)
}

// Split splits an Annex-B byte stream (NAL units each preceded by a 3- or 4-byte
// start code 00 00 01 / 00 00 00 01) into its NAL units, without start codes.
// The units alias b. Zero bytes before the first start code and after a unit
// (trailing_zero_8bits) are dropped.
//
// It fails on an empty stream, a stream that does not begin with a start code,
// an empty NAL unit, and a NAL unit whose forbidden_zero_bit is set.
func Split(b []byte) ([][]byte, error) {
	return AppendSplit(nil, b)
}

// AppendSplit is Split appending to dst, so that a caller can reuse a slice
// across access units. On error it returns dst as it was given.
func AppendSplit(dst [][]byte, b []byte) ([][]byte, error) {
	n0 := len(dst)
	if len(b) == 0 {
		return dst, fmt.Errorf("failed to split Annex-B stream: empty: %w", ErrMalformed)
	}
	// Find the first start code: only zero bytes may come before it.
	i := 0
	for i < len(b) && b[i] == 0 {
		i++
	}
	if i < 2 || i == len(b) || b[i] != 1 {
		return dst, fmt.Errorf("failed to split Annex-B stream: does not begin with a start code (00 00 01): %w", ErrMalformed)
	}
	start := i + 1
	for {
		end, next := nextStartCode(b, start)
		nalu := b[start:end]
		for len(nalu) > 0 && nalu[len(nalu)-1] == 0 {
			nalu = nalu[:len(nalu)-1]
		}
		if len(nalu) == 0 {
			return dst[:n0], fmt.Errorf("failed to split Annex-B stream: empty NAL unit at byte %d: %w", start, ErrMalformed)
		}
		if nalu[0]&0x80 != 0 {
			return dst[:n0], fmt.Errorf("failed to split Annex-B stream: NAL unit at byte %d has forbidden_zero_bit set: %w", start, ErrMalformed)
		}
		dst = append(dst, nalu)
		if next < 0 {
			return dst, nil
		}
		start = next
	}
}

// nextStartCode finds the next 00 00 01 at or after from. It returns where the
// current unit ends and where the next one begins (-1 at the end of b).
func nextStartCode(b []byte, from int) (end, next int) {
	for i := from; i+2 < len(b); i++ {
		if b[i+2] > 1 {
			i += 2 // no start code can end at i, i+1 or i+2
			continue
		}
		if b[i] == 0 && b[i+1] == 0 && b[i+2] == 1 {
			return i, i + 3
		}
	}
	return len(b), -1
}

// AccessUnit is what Parse finds in one access unit.
type AccessUnit struct {
	// NALUs are the access unit's NAL units, without start codes, aliasing the input.
	NALUs [][]byte
	// Key reports whether the access unit holds an IDR slice (NAL type 5): a
	// decoder can start here (given the SPS and PPS).
	Key bool
	// SPS and PPS are the first sequence and picture parameter sets in the
	// access unit, nil if it has none.
	SPS, PPS []byte
}

// Parse splits an Annex-B access unit and classifies it. It fails as Split
// does, and when the unit holds no slice at all (nothing to decode).
func Parse(au []byte) (AccessUnit, error) {
	nalus, err := Split(au)
	if err != nil {
		return AccessUnit{}, err
	}
	a := AccessUnit{NALUs: nalus}
	slices := 0
	for _, n := range nalus {
		switch Type(n) {
		case NALIDR:
			a.Key = true
			slices++
		case NALSlice, NALSliceA:
			slices++
		case NALSPS:
			if a.SPS == nil {
				a.SPS = n
			}
		case NALPPS:
			if a.PPS == nil {
				a.PPS = n
			}
		}
	}
	if slices == 0 {
		return AccessUnit{}, fmt.Errorf("failed to parse access unit: no slice among %d NAL units: %w", len(nalus), ErrMalformed)
	}
	return a, nil
}

// IsKeyframe reports whether an Annex-B access unit holds an IDR slice. A stream
// that does not split is not a keyframe.
func IsKeyframe(au []byte) bool {
	a, err := Parse(au)
	return err == nil && a.Key
}
