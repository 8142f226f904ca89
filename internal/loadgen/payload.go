package loadgen

import (
	"errors"
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
