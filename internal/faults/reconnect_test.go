package faults_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestPublisherReconnects: a room's publisher leaves and comes back four
// times, each time differently; binary viewers on replica A and replica B
// must see the offline event (kind 2, the 20-byte header alone, carrying
// the last sequence number the gateway got) after each departure, and
// frames again after each return. The publisher's replica alternates, so
// the offline event and the new frames reach one viewer on the same replica
// and the other across Redis, both ways round.
func TestPublisherReconnects(t *testing.T) {
	const room = "cam"
	// A short ping interval and write timeout let the gateway notice a
	// publisher whose network died silently within about 2 s.
	_, a, b := startReplicas(t, "GATEWAY_PING_INTERVAL=1s", "GATEWAY_WRITE_TIMEOUT=1s")
	viewers := []*viewer{startViewer(t, "A", a.WSURL(), room), startViewer(t, "B", b.WSURL(), room)}

	// leave is how a publisher goes.
	type leave int
	const (
		closes leave = iota // close handshake, 1000
		drops               // TCP connection closed without a close frame
		silent              // network gone: no close, no FIN; found by the gateway's ping
	)
	seq := uint64(1)
	for _, step := range []struct {
		name string
		on   *testenv.Gateway
		how  leave
	}{
		{"on A, closes", a, closes},
		{"on A, drops its connection", a, drops},
		{"on B, closes", b, closes},
		{"on B, network dies silently", b, silent},
	} {
		t.Run(step.name, func(t *testing.T) {
			base := step.on.WSURL()
			var proxy *stallProxy
			if step.how == silent {
				proxy = startStallProxy(t, fmt.Sprintf("127.0.0.1:%d", step.on.Port))
				base = "ws://" + proxy.Addr()
			}
			joined := time.Now()
			pub := startPublisher(t, "pub", base, room, 30, 20_000, seq)
			var highest uint64 // newest frame any viewer got before the publisher left
			for _, v := range viewers {
				m := v.await(t, 10*time.Second, "frames from the (re)connected publisher", func(m message) bool {
					return m.kind == frames.KindJPEG && m.seq >= seq && m.captured.After(joined)
				})
				// Then a few more: a stream, not one frame, before it leaves.
				v.await(t, 10*time.Second, "a few frames more", func(m message) bool {
					return m.kind == frames.KindJPEG && m.seq >= seq+5 && m.captured.After(joined)
				})
				t.Logf("viewer %s: live again %v after the publisher connected", v.name, m.at.Sub(joined).Round(time.Millisecond))
			}

			left := time.Now()
			if proxy != nil {
				proxy.Freeze()
			}
			pub.stop(step.how == closes)
			last := pub.seq.Load()
			for _, v := range viewers {
				for _, m := range v.framesIn(joined, left.Add(time.Second)) {
					highest = max(highest, m.seq)
				}
			}
			for _, v := range viewers {
				off := v.await(t, 10*time.Second, "the offline event", func(m message) bool {
					return m.kind == frames.KindOffline && m.at.After(joined)
				})
				t.Logf("viewer %s: offline event %v after the publisher began to leave (seq %d; last sent %d)",
					v.name, off.at.Sub(left).Round(100*time.Microsecond), off.seq, last)
				if off.size != frames.HeaderSize {
					t.Errorf("viewer %s: offline event of %d bytes, want the %d-byte header alone", v.name, off.size, frames.HeaderSize)
				}
				// After a close handshake the gateway has read every frame
				// sent; otherwise frames may be lost with the connection.
				if step.how == closes && off.seq != last {
					t.Errorf("viewer %s: offline event carries seq %d, want %d, the last frame sent", v.name, off.seq, last)
				}
				if off.seq > last || off.seq < min(highest, last) {
					t.Errorf("viewer %s: offline event carries seq %d, outside [%d, %d] (seen by viewers, sent)", v.name, off.seq, highest, last)
				}
				if later, ok := v.find(func(m message) bool { return m.kind == frames.KindJPEG && m.at.After(off.at) }); ok {
					t.Errorf("viewer %s: frame %d arrived after the offline event, with no publisher", v.name, later.seq)
				}
				if err := v.ended(); err != nil {
					t.Fatalf("viewer %s lost its connection: %v", v.name, err)
				}
			}
			seq = last + 1
		})
		if t.Failed() {
			return
		}
	}

	// And back once more: the room goes live again after the silent death.
	joined := time.Now()
	startPublisher(t, "pub", a.WSURL(), room, 30, 20_000, seq)
	for _, v := range viewers {
		v.await(t, 10*time.Second, "frames after the last return", func(m message) bool {
			return m.kind == frames.KindJPEG && m.captured.After(joined)
		})
	}
}
