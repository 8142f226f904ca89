package gateway_test

import (
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
)

// testJPEG returns a real 64×48 JPEG whose pixels depend on n, padded to
// minSize bytes.
func testJPEG(t testing.TB, n, minSize int) []byte { return testenv.JPEG(t, 64, 48, n, minSize) }

// startPublishing publishes frames of size bytes on c every period until
// the test ends, a different picture each (testJPEG); seed sends them as the
// seed's sender does, text data URLs.
func startPublishing(t testing.TB, c *testenv.Client, every time.Duration, size int, seed bool) *testenv.Publisher {
	return c.Publish(t, every, seed, func(seq uint64) []byte { return testJPEG(t, int(seq), size) })
}
