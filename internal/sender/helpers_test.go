package sender

import (
	"bytes"
	"image"
	"image/jpeg"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
)

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func itoa(n int) string     { return strconv.Itoa(n) }
func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// decodeJPEG decodes b with the standard library and returns its size.
func decodeJPEG(t testing.TB, b []byte) image.Point {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("frame does not decode as JPEG: %v", err)
	}
	return img.Bounds().Size()
}

// testLogger returns a logger writing to the test's log at debug level, so
// a failing test shows the sender's state changes.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu sync.Mutex
	t  testing.TB
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
