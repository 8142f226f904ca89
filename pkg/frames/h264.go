package frames

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrBadH264 is returned for H.264 messages whose payload is malformed.
var ErrBadH264 = errors.New("frames: malformed H.264 message")

// H264Config is the payload of a KindH264Config message: what a WebCodecs
// VideoDecoder is configured with.
//
//	offset size field
//	0      1    codec string length n (1 to 64)
//	1      n    codec string, e.g. "avc1.42E01F" (ASCII)
//	1+n    2    coded width in pixels
//	3+n    2    coded height in pixels
//	5+n    …    the parameter sets (SPS, PPS) in Annex-B form
type H264Config struct {
	Codec         string
	Width, Height int
	ParamSets     []byte
}

// maxCodecLen bounds the codec string of an H.264 configuration.
const maxCodecLen = 64

// AppendH264Config appends c's payload to dst.
func AppendH264Config(dst []byte, c H264Config) []byte {
	dst = append(dst, byte(len(c.Codec)))
	dst = append(dst, c.Codec...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Width))
	dst = binary.BigEndian.AppendUint16(dst, uint16(c.Height))
	return append(dst, c.ParamSets...)
}

// ParseH264Config decodes a KindH264Config payload. ParamSets aliases b.
func ParseH264Config(b []byte) (H264Config, error) {
	if len(b) == 0 {
		return H264Config{}, fmt.Errorf("%w: empty configuration", ErrBadH264)
	}
	n := int(b[0])
	if n == 0 || n > maxCodecLen {
		return H264Config{}, fmt.Errorf("%w: codec string of %d bytes, want 1 to %d", ErrBadH264, n, maxCodecLen)
	}
	if len(b) < 5+n {
		return H264Config{}, fmt.Errorf("%w: configuration of %d bytes, need %d", ErrBadH264, len(b), 5+n)
	}
	codec := b[1 : 1+n]
	for _, c := range codec {
		if c < 0x21 || c > 0x7e {
			return H264Config{}, fmt.Errorf("%w: codec string %q is not printable ASCII", ErrBadH264, codec)
		}
	}
	c := H264Config{
		Codec:     string(codec),
		Width:     int(binary.BigEndian.Uint16(b[1+n:])),
		Height:    int(binary.BigEndian.Uint16(b[3+n:])),
		ParamSets: b[5+n:],
	}
	if c.Width == 0 || c.Height == 0 {
		return H264Config{}, fmt.Errorf("%w: coded size %d×%d", ErrBadH264, c.Width, c.Height)
	}
	if !hasStartCode(c.ParamSets) {
		return H264Config{}, fmt.Errorf("%w: parameter sets are not in Annex-B form (no start code)", ErrBadH264)
	}
	return c, nil
}

// hasStartCode reports whether b starts with an Annex-B start code.
func hasStartCode(b []byte) bool {
	return bytes.HasPrefix(b, []byte{0, 0, 1}) || bytes.HasPrefix(b, []byte{0, 0, 0, 1})
}

// checkH264 validates the payload of an H.264 message of kind k: a
// configuration that parses, or an access unit in Annex-B form of at most
// maxBytes (<= 0: no limit). It does not decode the pictures.
func checkH264(k Kind, payload []byte, maxBytes int) error {
	if maxBytes > 0 && len(payload) > maxBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), maxBytes)
	}
	if k == KindH264Config {
		_, err := ParseH264Config(payload)
		return err
	}
	if !hasStartCode(payload) {
		return fmt.Errorf("%w: access unit is not in Annex-B form (no start code)", ErrBadH264)
	}
	return nil
}
