package loadgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
)

// MinPayloadSize is the smallest JPEG-shaped payload MakeJPEG builds: SOI
// with the first byte of a marker, and EOI.
const MinPayloadSize = 5

// MakeJPEG returns a JPEG-shaped payload of exactly size bytes: it starts
// with FF D8 FF (SOI and a marker), ends with FF D9 (EOI), and holds
// pseudo-random bytes in between, seeded by seed so runs are reproducible.
// It passes frames.CheckJPEG; it is not a decodable image, which nothing on
// the relay path needs. Build it once per run: every frame reuses it.
func MakeJPEG(size int, seed uint64) ([]byte, error) {
	if size < MinPayloadSize {
		return nil, errors.New("loadgen: payload size must be at least 5 bytes")
	}
	b := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 0; i < size; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < size; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	b[0], b[1], b[2] = 0xFF, 0xD8, 0xFF
	b[size-2], b[size-1] = 0xFF, 0xD9
	return b, nil
}

// sofSegment is the length of the frame header (SOF0) MakeSizedJPEG
// writes after SOI: marker, length, precision, height, width, and three
// components of three bytes.
const sofSegment = 2 + 2 + 1 + 2 + 2 + 1 + 3*3

// MinSizedPayload is the smallest payload MakeSizedJPEG builds.
const MinSizedPayload = 2 + sofSegment + 2

// MakeSizedJPEG is MakeJPEG with a baseline frame header (SOF0) after SOI
// that gives the picture's width and height, as a real encoder writes it,
// so that frames.JPEGSize reads the size. A gateway reads the size of a
// layer from its JPEG where the message does not carry it (the main layer
// travels as version 1): without it, a layered room's main layer would
// look 0 pixels wide and sort below every other layer.
func MakeSizedJPEG(size int, seed uint64, width, height int) ([]byte, error) {
	if size < MinSizedPayload {
		return nil, fmt.Errorf("loadgen: a sized payload needs at least %d bytes, not %d", MinSizedPayload, size)
	}
	if width < 1 || width > 65535 || height < 1 || height > 65535 {
		return nil, fmt.Errorf("loadgen: size %dx%d must be 1-65535 each way", width, height)
	}
	b, err := MakeJPEG(size, seed)
	if err != nil {
		return nil, err
	}
	sof := b[2 : 2+sofSegment]
	sof[0], sof[1] = 0xFF, 0xC0
	binary.BigEndian.PutUint16(sof[2:4], sofSegment-2)
	sof[4] = 8
	binary.BigEndian.PutUint16(sof[5:7], uint16(height))
	binary.BigEndian.PutUint16(sof[7:9], uint16(width))
	sof[9] = 3
	for c := range 3 {
		sof[10+3*c], sof[11+3*c], sof[12+3*c] = byte(c+1), 0x11, byte(min(c, 1))
	}
	return b, nil
}
