package loadgen

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

func TestBucketRangeHoldsItsValues(t *testing.T) {
	check := func(v uint64) {
		t.Helper()
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if i == histBuckets-1 && v > hi {
			return // clamped into the last bucket
		}
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket %d = [%d, %d]", v, i, lo, hi)
		}
		if v >= 64 && float64(hi-lo+1)/float64(lo) > 1.0/32+1e-9 {
			t.Fatalf("bucket %d = [%d, %d] is wider than 1/32 of its values", i, lo, hi)
		}
	}
	for v := range uint64(5000) {
		check(v)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		check(r.Uint64N(1 << 40))
	}
	check(1<<63 + 12345)
	// Buckets are contiguous: each starts right after the previous ends.
	prevHi := uint64(0)
	for i := 1; i < histBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d = [%d, %d] does not follow %d", i, lo, hi, prevHi)
		}
		prevHi = hi
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	// 1..10000 µs, shuffled: the q-quantile is 10000·q µs.
	vals := make([]int64, 10000)
	for i := range vals {
		vals[i] = int64(i + 1)
	}
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	for _, v := range vals {
		h.Record(v)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5000 * time.Microsecond},
		{0.9, 9000 * time.Microsecond},
		{0.99, 9900 * time.Microsecond},
		{0.001, 10 * time.Microsecond},
	} {
		got := h.Quantile(tc.q)
		if diff := got - tc.want; diff < -tc.want/32 || diff > tc.want/32 {
			t.Errorf("q%.3f = %v, want %v ± 3%%", tc.q, got, tc.want)
		}
	}
	if h.Quantile(1) != 10*time.Millisecond || h.Max() != 10*time.Millisecond {
		t.Errorf("max = %v / q1 = %v, want exactly 10ms", h.Max(), h.Quantile(1))
	}
	if h.Count() != 10000 {
		t.Errorf("count = %d", h.Count())
	}
	if m := h.Mean(); m < 5000*time.Microsecond || m > 5001*time.Microsecond {
		t.Errorf("mean = %v, want 5000.5µs", m)
	}
}

func TestHistogramSmallExactAndNegative(t *testing.T) {
	var h Histogram
	for _, v := range []int64{-5, 3, 3, 7, 40} {
		h.Record(v)
	}
	// Below 64 µs every value has its own bucket: exact ranks.
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.2, 0}, {0.4, 3 * time.Microsecond}, {0.6, 3 * time.Microsecond}, {0.8, 7 * time.Microsecond}, {1, 40 * time.Microsecond}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("q%.1f = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, all Histogram
	for i := int64(1); i <= 2000; i++ {
		v := i * 37 % 5000
		all.Record(v)
		if i%3 == 0 {
			a.Record(v)
		} else {
			b.Record(v)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(&Histogram{})
	if m != all {
		t.Fatalf("merged histogram differs from the one that saw every sample")
	}
}

// rawPair returns a rawViewer and the server end of its TCP connection.
func rawPair(t *testing.T) (*rawViewer, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); srv.Close() })
	// A small buffer, so frames straddle reads and the buffer must grow.
	return &rawViewer{conn: c, buf: make([]byte, 64)}, srv
}

// serverFrame encodes an unmasked frame.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b := []byte{op, 0}
	if fin {
		b[0] |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b[1] = byte(n)
	case n < 1<<16:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// readClientFrame reads and unmasks one client frame from c.
func readClientFrame(t *testing.T, c net.Conn) (op byte, payload []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h := make([]byte, 6)
	if _, err := io.ReadFull(c, h); err != nil {
		t.Fatalf("reading the client's frame: %v", err)
	}
	if h[1]&0x80 == 0 {
		t.Fatal("client frame not masked")
	}
	n := int(h[1] & 0x7F)
	p := make([]byte, n)
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		p[i] ^= h[2+i%4]
	}
	return h[0] & 0x0F, p
}

func TestRawViewerFrames(t *testing.T) {
	r, srv := rawPair(t)
	big := bytes.Repeat([]byte("0123456789"), 7000) // 70,000 B: 8-byte length, buffer growth
	mid := bytes.Repeat([]byte("ab"), 300)          // 600 B: 2-byte length
	var script []byte
	script = append(script, serverFrame(true, 0x2, []byte("hello"))...)
	script = append(script, serverFrame(true, 0x9, []byte("ping!"))...)
	script = append(script, serverFrame(true, 0x2, mid)...)
	script = append(script, serverFrame(true, 0x1, big)...)
	script = append(script, serverFrame(false, 0x2, []byte("frag"))...)
	script = append(script, serverFrame(true, 0xA, nil)...) // a pong between fragments
	script = append(script, serverFrame(false, 0x0, []byte("ment"))...)
	script = append(script, serverFrame(true, 0x0, []byte("ed"))...)
	script = append(script, serverFrame(true, 0x8, []byte{0x03, 0xE8, 'b', 'y', 'e'})...)
	go func() {
		// Dribble the bytes so frames straddle reads.
		for len(script) > 0 {
			n := min(len(script), 777)
			if _, err := srv.Write(script[:n]); err != nil {
				return
			}
			script = script[n:]
		}
	}()
	for i, want := range [][]byte{[]byte("hello"), mid, big, []byte("fragmented")} {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("message %d: got %d bytes %.20q, want %d bytes %.20q", i, len(got), got, len(want), want)
		}
		if i == 1 {
			if op, p := readClientFrame(t, srv); op != 0xA || string(p) != "ping!" {
				t.Fatalf("answer to ping: opcode %#x payload %q, want a pong echoing it", op, p)
			}
		}
	}
	if _, err := r.Next(); !errors.Is(err, errRawClosed) {
		t.Fatalf("after the close frame: %v, want errRawClosed", err)
	}
	if op, p := readClientFrame(t, srv); op != 0x8 || !bytes.Equal(p, []byte{0x03, 0xE8}) {
		t.Fatalf("answer to close: opcode %#x payload %x, want close 1000", op, p)
	}
}

func TestRawViewerRejects(t *testing.T) {
	for name, frame := range map[string][]byte{
		"masked":       {0x82, 0x81, 1, 2, 3, 4, 'x'},
		"too large":    append([]byte{0x82, 127}, binary.BigEndian.AppendUint64(nil, readLimit+1)...),
		"bad opcode":   serverFrame(true, 0x3, nil),
		"continuation": serverFrame(true, 0x0, []byte("x")),
	} {
		r, srv := rawPair(t)
		go func() { _, _ = srv.Write(frame) }()
		if _, err := r.Next(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	r, srv := rawPair(t)
	srv.Close()
	if _, err := r.Next(); err == nil {
		t.Error("closed connection: no error")
	}
}
