package frames_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// tinyJPEG returns a real 8×8 JPEG encoded by the standard library.
func tinyJPEG(t testing.TB) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for y := range 8 {
		for x := range 8 {
			img.Set(x, y, color.RGBA{R: uint8(x * 32), G: uint8(y * 32), B: 128, A: 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 50}); err != nil {
		t.Fatalf("failed to encode test JPEG: %v", err)
	}
	if err := frames.CheckJPEG(buf.Bytes(), 0); err != nil {
		t.Fatalf("stdlib JPEG fails CheckJPEG: %v", err)
	}
	return buf.Bytes()
}

// jpegLike returns n bytes that pass CheckJPEG (SOI, filler, EOI) without
// being a decodable image: enough for size and throughput tests.
func jpegLike(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	copy(b, []byte{0xFF, 0xD8, 0xFF, 0xE0})
	b[n-2], b[n-1] = 0xFF, 0xD9
	return b
}

// header builds a raw 20-byte header with every field chosen by the caller,
// so tests can write headers that PutHeader refuses to.
func header(version, kind byte, hlen uint16, seq uint64, micros int64) []byte {
	h := make([]byte, frames.HeaderSize)
	h[0], h[1] = version, kind
	binary.BigEndian.PutUint16(h[2:4], hlen)
	binary.BigEndian.PutUint64(h[4:12], seq)
	binary.BigEndian.PutUint64(h[12:20], uint64(micros))
	return h
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// ts is a capture time with microsecond precision, the wire's resolution.
var ts = time.Date(2024, 5, 17, 12, 30, 45, 123456000, time.UTC)

func TestParseBinary(t *testing.T) {
	jpg := tinyJPEG(t)
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	micros := ts.UnixMicro()

	tests := []struct {
		name     string
		msg      []byte
		maxBytes int
		wantErr  error
		wantKind frames.Kind
		wantSeq  uint64
		wantTime time.Time
		wantJPEG []byte
	}{
		{
			name:     "header frame",
			msg:      frames.AppendBinary(nil, 7, ts, jpg),
			wantKind: frames.KindJPEG, wantSeq: 7, wantTime: ts, wantJPEG: jpg,
		},
		{
			name:     "header frame at size limit",
			msg:      frames.AppendBinary(nil, 8, ts, jpg),
			maxBytes: len(jpg),
			wantKind: frames.KindJPEG, wantSeq: 8, wantTime: ts, wantJPEG: jpg,
		},
		{
			name:     "header frame with max seq",
			msg:      cat(header(1, 1, 20, ^uint64(0), micros), jpg),
			wantKind: frames.KindJPEG, wantSeq: ^uint64(0), wantTime: ts, wantJPEG: jpg,
		},
		{
			name:     "bare JPEG takes seq and now",
			msg:      jpg,
			wantKind: frames.KindJPEG, wantSeq: 42, wantTime: now, wantJPEG: jpg,
		},
		{
			name:     "offline kind",
			msg:      frames.Offline(9, ts).Binary(),
			wantKind: frames.KindOffline, wantSeq: 9, wantTime: ts, wantJPEG: []byte{},
		},
		{name: "empty", msg: nil, wantErr: frames.ErrEmpty},
		{name: "offline with payload", msg: cat(header(1, 2, 20, 1, micros), jpg), wantErr: frames.ErrBadHeader},
		{name: "wrong version", msg: cat(header(2, 1, 20, 1, micros), jpg), wantErr: frames.ErrBadHeader},
		{name: "version zero", msg: cat(header(0, 1, 20, 1, micros), jpg), wantErr: frames.ErrBadHeader},
		{name: "unknown kind", msg: cat(header(1, 6, 20, 1, micros), jpg), wantErr: frames.ErrBadHeader},
		{name: "kind zero", msg: cat(header(1, 0, 20, 1, micros), jpg), wantErr: frames.ErrBadHeader},
		{name: "short header", msg: header(1, 1, 20, 1, micros)[:10], wantErr: frames.ErrBadHeader},
		{name: "one byte", msg: []byte{1}, wantErr: frames.ErrBadHeader},
		{name: "wrong header length", msg: cat(header(1, 1, 24, 1, micros), jpg), wantErr: frames.ErrBadHeader},
		{name: "header without payload", msg: header(1, 1, 20, 1, micros), wantErr: frames.ErrEmpty},
		{name: "non-JPEG payload", msg: cat(header(1, 1, 20, 1, micros), []byte("hello, world")), wantErr: frames.ErrNotJPEG},
		{name: "PNG payload", msg: cat(header(1, 1, 20, 1, micros), []byte("\x89PNG\r\n\x1a\n....")), wantErr: frames.ErrNotJPEG},
		{name: "missing EOI", msg: frames.AppendBinary(nil, 1, ts, jpg[:len(jpg)-2]), wantErr: frames.ErrNotJPEG},
		{name: "bare JPEG missing EOI", msg: jpg[:len(jpg)-1], wantErr: frames.ErrNotJPEG},
		{name: "bare non-JPEG starting with FF", msg: []byte{0xFF, 0x00, 0x01, 0x02}, wantErr: frames.ErrNotJPEG},
		{name: "too large", msg: frames.AppendBinary(nil, 1, ts, jpg), maxBytes: len(jpg) - 1, wantErr: frames.ErrTooLarge},
		{name: "bare JPEG too large", msg: jpg, maxBytes: len(jpg) - 1, wantErr: frames.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := frames.ParseBinary(tt.msg, 42, now, tt.maxBytes)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseBinary error = %v, want %v", err, tt.wantErr)
				}
				if f != nil {
					t.Fatalf("ParseBinary returned a frame with error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseBinary: %v", err)
			}
			if f.Kind != tt.wantKind || f.Seq != tt.wantSeq || !f.Captured.Equal(tt.wantTime) {
				t.Errorf("got kind %d seq %d captured %v, want kind %d seq %d captured %v",
					f.Kind, f.Seq, f.Captured, tt.wantKind, tt.wantSeq, tt.wantTime)
			}
			if !bytes.Equal(f.Payload, tt.wantJPEG) {
				t.Errorf("JPEG is %d bytes, want %d", len(f.Payload), len(tt.wantJPEG))
			}
			if f.IsOffline() != (tt.wantKind == frames.KindOffline) {
				t.Errorf("IsOffline() = %v for kind %d", f.IsOffline(), f.Kind)
			}
			// Whatever came in, Binary is the canonical header+JPEG form.
			if want := cat(header(1, byte(tt.wantKind), 20, tt.wantSeq, tt.wantTime.UnixMicro()), tt.wantJPEG); !bytes.Equal(f.Binary(), want) {
				t.Errorf("Binary() = % x..., want % x...", f.Binary()[:frames.HeaderSize], want[:frames.HeaderSize])
			}
		})
	}
}

func TestParseBinaryBareJPEGIsCopied(t *testing.T) {
	jpg := tinyJPEG(t)
	msg := bytes.Clone(jpg)
	f, err := frames.ParseBinary(msg, 1, ts, 0)
	if err != nil {
		t.Fatal(err)
	}
	clear(msg)
	if !bytes.Equal(f.Payload, jpg) {
		t.Fatal("frame parsed from a bare JPEG aliases the caller's buffer")
	}
}

func dataURL(mime string, payload []byte) []byte {
	return []byte("data:" + mime + "," + base64.StdEncoding.EncodeToString(payload))
}

func TestParseDataURL(t *testing.T) {
	jpg := tinyJPEG(t)
	now := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	// Sizes 300..302 cover every base64 padding case at the limit.
	like300, like301, like302 := jpegLike(300), jpegLike(301), jpegLike(302)

	tests := []struct {
		name     string
		msg      []byte
		maxBytes int
		wantErr  error
		wantJPEG []byte
	}{
		{name: "seed form image/jpg", msg: []byte("data:image/jpg;base64," + base64.StdEncoding.EncodeToString(jpg)), wantJPEG: jpg},
		{name: "image/jpeg", msg: frames.AppendDataURL(nil, jpg), wantJPEG: jpg},
		{name: "uppercase mime", msg: dataURL("IMAGE/JPEG;BASE64", jpg), wantJPEG: jpg},
		{name: "mixed case jpg", msg: dataURL("Image/Jpg;Base64", jpg), wantJPEG: jpg},
		{name: "at limit, no padding", msg: frames.AppendDataURL(nil, like300), maxBytes: 300, wantJPEG: like300},
		{name: "at limit, two padding", msg: frames.AppendDataURL(nil, like301), maxBytes: 301, wantJPEG: like301},
		{name: "at limit, one padding", msg: frames.AppendDataURL(nil, like302), maxBytes: 302, wantJPEG: like302},
		{name: "empty", msg: nil, wantErr: frames.ErrEmpty},
		{name: "empty payload", msg: []byte("data:image/jpeg;base64,"), wantErr: frames.ErrEmpty},
		{name: "wrong mime image/png", msg: dataURL("image/png;base64", jpg), wantErr: frames.ErrBadMimeType},
		{name: "no mime", msg: dataURL(";base64", jpg), wantErr: frames.ErrBadMimeType},
		{name: "no base64 param", msg: []byte("data:image/jpeg," + base64.StdEncoding.EncodeToString(jpg)), wantErr: frames.ErrBadDataURL},
		{name: "other param", msg: dataURL("image/jpeg;charset=utf-8", jpg), wantErr: frames.ErrBadDataURL},
		{name: "no data prefix", msg: []byte("image/jpeg;base64," + base64.StdEncoding.EncodeToString(jpg)), wantErr: frames.ErrBadDataURL},
		{name: "no comma", msg: []byte("data:image/jpeg;base64"), wantErr: frames.ErrBadDataURL},
		{name: "bad base64", msg: []byte("data:image/jpeg;base64,/9j/!!!!"), wantErr: frames.ErrBadDataURL},
		{name: "truncated base64", msg: []byte("data:image/jpeg;base64,/9j/4A"), wantErr: frames.ErrBadDataURL},
		{name: "JSON envelope is not a data URL", msg: []byte(`{"message":"data:image/jpeg;base64,/9j/"}`), wantErr: frames.ErrBadDataURL},
		{name: "too large", msg: frames.AppendDataURL(nil, jpg), maxBytes: len(jpg) - 1, wantErr: frames.ErrTooLarge},
		{name: "too large by one, no padding", msg: frames.AppendDataURL(nil, like300), maxBytes: 299, wantErr: frames.ErrTooLarge},
		{name: "too large by one, two padding", msg: frames.AppendDataURL(nil, like301), maxBytes: 300, wantErr: frames.ErrTooLarge},
		{name: "too large by one, one padding", msg: frames.AppendDataURL(nil, like302), maxBytes: 301, wantErr: frames.ErrTooLarge},
		{
			// Invalid base64 that is also too large: ErrTooLarge proves the
			// size is checked before anything is decoded.
			name:     "too large checked before decoding",
			msg:      []byte("data:image/jpeg;base64," + strings.Repeat("!", 4000)),
			maxBytes: 1000, wantErr: frames.ErrTooLarge,
		},
		{name: "non-JPEG content", msg: dataURL("image/jpeg;base64", []byte("hello, world")), wantErr: frames.ErrNotJPEG},
		{name: "missing EOI", msg: dataURL("image/jpeg;base64", jpg[:len(jpg)-2]), wantErr: frames.ErrNotJPEG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := frames.ParseDataURL(tt.msg, 42, now, tt.maxBytes)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseDataURL error = %v, want %v", err, tt.wantErr)
				}
				if f != nil {
					t.Fatalf("ParseDataURL returned a frame with error %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDataURL: %v", err)
			}
			if f.Kind != frames.KindJPEG || f.Seq != 42 || !f.Captured.Equal(now) {
				t.Errorf("got kind %d seq %d captured %v, want kind 1 seq 42 captured %v", f.Kind, f.Seq, f.Captured, now)
			}
			if !bytes.Equal(f.Payload, tt.wantJPEG) {
				t.Errorf("JPEG is %d bytes, want %d", len(f.Payload), len(tt.wantJPEG))
			}
			if want := frames.AppendBinary(nil, 42, now, tt.wantJPEG); !bytes.Equal(f.Binary(), want) {
				t.Errorf("Binary() differs from AppendBinary of the same frame")
			}
		})
	}
}

// TestParseDataURLTooLargeDoesNotDecode checks the size limit through
// memory: a 16 MB data URL over a 1 KB limit must be refused without
// allocating a decode buffer for it.
func TestParseDataURLTooLargeDoesNotDecode(t *testing.T) {
	msg := frames.AppendDataURL(nil, jpegLike(12<<20))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := frames.ParseDataURL(msg, 1, ts, 1024)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, frames.ErrTooLarge) {
		t.Fatalf("ParseDataURL error = %v, want ErrTooLarge", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("refusing a too-large data URL allocated %d bytes", n)
	}
}

func TestCheckJPEG(t *testing.T) {
	jpg := tinyJPEG(t)
	tests := []struct {
		name     string
		b        []byte
		maxBytes int
		wantErr  error
	}{
		{name: "stdlib JPEG", b: jpg},
		{name: "stdlib JPEG at limit", b: jpg, maxBytes: len(jpg)},
		{name: "negative limit means none", b: jpg, maxBytes: -1},
		{name: "smallest accepted", b: []byte{0xFF, 0xD8, 0xFF, 0xD9}},
		{name: "nil", b: nil, wantErr: frames.ErrEmpty},
		{name: "empty", b: []byte{}, wantErr: frames.ErrEmpty},
		{name: "too short", b: []byte{0xFF, 0xD8, 0xFF}, wantErr: frames.ErrNotJPEG},
		{name: "SOI without marker byte", b: []byte{0xFF, 0xD8, 0x00, 0x00, 0xFF, 0xD9}, wantErr: frames.ErrNotJPEG},
		{name: "no SOI", b: append([]byte{0x00}, jpg[1:]...), wantErr: frames.ErrNotJPEG},
		{name: "no EOI", b: jpg[:len(jpg)-2], wantErr: frames.ErrNotJPEG},
		{name: "half EOI", b: jpg[:len(jpg)-1], wantErr: frames.ErrNotJPEG},
		{name: "PNG", b: []byte("\x89PNG\r\n\x1a\n\x00\x00"), wantErr: frames.ErrNotJPEG},
		{name: "too large", b: jpg, maxBytes: len(jpg) - 1, wantErr: frames.ErrTooLarge},
		{name: "too large beats not JPEG", b: []byte("0123456789"), maxBytes: 4, wantErr: frames.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := frames.CheckJPEG(tt.b, tt.maxBytes)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("CheckJPEG: %v", err)
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckJPEG error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestNew(t *testing.T) {
	jpg := tinyJPEG(t)
	t.Run("copies its input", func(t *testing.T) {
		in := bytes.Clone(jpg)
		f, err := frames.New(frames.KindJPEG, 3, ts, in, 0)
		if err != nil {
			t.Fatal(err)
		}
		clear(in)
		if !bytes.Equal(f.Payload, jpg) {
			t.Fatal("New aliases its input")
		}
	})
	t.Run("checks the JPEG", func(t *testing.T) {
		if _, err := frames.New(frames.KindJPEG, 1, ts, []byte("nope"), 0); !errors.Is(err, frames.ErrNotJPEG) {
			t.Fatalf("error = %v, want ErrNotJPEG", err)
		}
		if _, err := frames.New(frames.KindJPEG, 1, ts, jpg, 10); !errors.Is(err, frames.ErrTooLarge) {
			t.Fatalf("error = %v, want ErrTooLarge", err)
		}
	})
	t.Run("offline", func(t *testing.T) {
		f := frames.Offline(77, ts)
		if !f.IsOffline() || f.Seq != 77 || !f.Captured.Equal(ts) || len(f.Payload) != 0 {
			t.Fatalf("Offline(77, ts) = kind %d seq %d captured %v, %d JPEG bytes", f.Kind, f.Seq, f.Captured, len(f.Payload))
		}
		if len(f.Binary()) != frames.HeaderSize {
			t.Fatalf("offline message is %d bytes, want %d", len(f.Binary()), frames.HeaderSize)
		}
		if f.JSON() != nil {
			t.Fatalf("offline event has a JSON form: %s", f.JSON())
		}
	})
}

func TestRoundTripBinary(t *testing.T) {
	jpg := tinyJPEG(t)
	for _, captured := range []time.Time{ts, time.UnixMicro(0), time.UnixMicro(-1), ts.Add(100 * 365 * 24 * time.Hour)} {
		f, err := frames.New(frames.KindJPEG, 12345, captured, jpg, len(jpg))
		if err != nil {
			t.Fatal(err)
		}
		g, err := frames.ParseBinary(f.Binary(), 0, time.Time{}, len(jpg))
		if err != nil {
			t.Fatalf("ParseBinary(New(...).Binary()): %v", err)
		}
		if g.Kind != f.Kind || g.Seq != f.Seq || !g.Captured.Equal(f.Captured) || !bytes.Equal(g.Payload, jpg) {
			t.Errorf("round trip of %v: got kind %d seq %d captured %v", captured, g.Kind, g.Seq, g.Captured)
		}
		if !bytes.Equal(frames.AppendBinary(nil, f.Seq, captured, jpg), f.Binary()) {
			t.Errorf("AppendBinary and New disagree")
		}
	}
}

func TestRoundTripDataURL(t *testing.T) {
	jpg := tinyJPEG(t)
	prefix := []byte("prefix-kept:")
	msg := frames.AppendDataURL(bytes.Clone(prefix), jpg)
	if !bytes.HasPrefix(msg, prefix) {
		t.Fatalf("AppendDataURL dropped dst")
	}
	f, err := frames.ParseDataURL(msg[len(prefix):], 5, ts, len(jpg))
	if err != nil {
		t.Fatalf("ParseDataURL(AppendDataURL(jpg)): %v", err)
	}
	if !bytes.Equal(f.Payload, jpg) || f.Seq != 5 || !f.Captured.Equal(ts) {
		t.Fatalf("round trip: got seq %d captured %v, JPEG equal %v", f.Seq, f.Captured, bytes.Equal(f.Payload, jpg))
	}
}

// envelope is the seed's JSON message plus framecast's fields.
type envelope struct {
	Message string `json:"message"`
	Seq     uint64 `json:"seq"`
	TS      int64  `json:"ts"`
}

func TestJSON(t *testing.T) {
	jpg := tinyJPEG(t)
	f, err := frames.New(frames.KindJPEG, 99, ts, jpg, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := f.JSON()
	if !json.Valid(b) {
		t.Fatalf("JSON() is not valid JSON: %.80s", b)
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("failed to decode JSON(): %v", err)
	}
	if env.Seq != 99 || env.TS != ts.UnixMicro() {
		t.Errorf("seq %d ts %d, want 99 %d", env.Seq, env.TS, ts.UnixMicro())
	}
	if !strings.HasPrefix(env.Message, "data:image/jpeg;base64,") {
		t.Errorf("message starts %.30q, want the seed's data URL", env.Message)
	}
	g, err := frames.ParseDataURL([]byte(env.Message), 0, time.Time{}, 0)
	if err != nil {
		t.Fatalf("message does not parse back: %v", err)
	}
	if !bytes.Equal(g.Payload, jpg) {
		t.Errorf("message decodes to a different JPEG")
	}
}

func TestJSONComputedOnce(t *testing.T) {
	f, err := frames.New(frames.KindJPEG, 1, ts, tinyJPEG(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	first := f.JSON()
	if second := f.JSON(); &first[0] != &second[0] {
		t.Fatal("JSON() built a new slice on the second call")
	}
	if allocs := testing.AllocsPerRun(10, func() { _ = f.JSON() }); allocs != 0 {
		t.Errorf("JSON() after the first call allocates %v times", allocs)
	}
}

func TestJSONConcurrent(t *testing.T) {
	f, err := frames.New(frames.KindJPEG, 1, ts, tinyJPEG(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	got := make([][]byte, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i] = f.JSON()
			_ = f.Binary()
		}()
	}
	close(start)
	wg.Wait()
	for i := range got {
		if &got[i][0] != &got[0][0] {
			t.Fatalf("goroutine %d got its own JSON slice", i)
		}
	}
}
