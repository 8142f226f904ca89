package avc

import "fmt"

// unescapeRBSP removes emulation-prevention bytes (the 03 in 00 00 03) from a
// NAL unit's payload, giving its raw byte sequence payload. It copies only when
// there is something to remove.
func unescapeRBSP(b []byte) []byte {
	zeros := 0
	var out []byte
	last := 0
	for i := 0; i < len(b); i++ {
		if zeros >= 2 && b[i] == 3 {
			if out == nil {
				out = make([]byte, 0, len(b))
			}
			out = append(out, b[last:i]...)
			last = i + 1
			zeros = 0
			continue
		}
		if b[i] == 0 {
			zeros++
		} else {
			zeros = 0
		}
	}
	if out == nil {
		return b
	}
	return append(out, b[last:]...)
}

// bitReader reads an RBSP most significant bit first, with the Exp-Golomb codes
// of H.264 clause 9.1. A read past the end sets err and returns 0; callers check
// err once after a group of reads.
type bitReader struct {
	b   []byte
	pos int // in bits
	err error
}

func (r *bitReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%s at bit %d of %d: %w", what, r.pos, len(r.b)*8, ErrMalformed)
	}
}

func (r *bitReader) u1() uint32 {
	if r.err != nil {
		return 0
	}
	if r.pos >= len(r.b)*8 {
		r.fail("truncated")
		return 0
	}
	v := uint32(r.b[r.pos>>3]>>(7-uint(r.pos&7))) & 1
	r.pos++
	return v
}

func (r *bitReader) u(n int) uint32 {
	var v uint32
	for range n {
		v = v<<1 | r.u1()
	}
	return v
}

// ue reads an unsigned Exp-Golomb code (ue(v)); codes of more than 31 leading
// zeros do not fit 32 bits and are malformed.
func (r *bitReader) ue() uint32 {
	zeros := 0
	for r.u1() == 0 {
		if r.err != nil {
			return 0
		}
		zeros++
		if zeros > 31 {
			r.fail("Exp-Golomb code longer than 32 bits")
			return 0
		}
	}
	if zeros == 0 {
		return 0
	}
	return (1<<zeros - 1) + r.u(zeros)
}

// se reads a signed Exp-Golomb code (se(v)).
func (r *bitReader) se() int32 {
	k := r.ue()
	if k&1 == 1 {
		return int32((k + 1) / 2)
	}
	return -int32(k / 2)
}
