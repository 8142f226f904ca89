package loadgen

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
)

// publisher sends one room's frames: the same payload every time, its
// 20-byte header rewritten in place with the sequence number and the send
// time as the capture time, one binary message per frame; with layers, one
// version-2 message per layer per picture, in layer order; with an H.264
// clip, its pictures as version-2 H.264 messages (a configuration in front
// of every keyframe).
type publisher struct {
	conn *websocket.Conn
	room *roomState
	msgs [][]byte // per layer: [layer block +] header + payload, built once
	head []int    // per layer: where the version-1 header starts in msgs[i]
	fps  float64
	h264 *h264Source // nil: msgs

	seq       uint64        // last sequence number sent
	lastSeq   atomic.Uint64 // seq, for other goroutines (late joiners)
	sentTotal uint64        // including warmup
	err       error         // a failed write, which ends the publisher
}

func newPublisher(conn *websocket.Conn, room *roomState, payload []byte, fps float64) *publisher {
	return &publisher{
		conn: conn,
		room: room,
		msgs: [][]byte{frames.AppendBinary(make([]byte, 0, frames.HeaderSize+len(payload)), 0, time.Now(), payload)},
		head: []int{0},
		fps:  fps,
	}
}

// newLayeredPublisher returns a publisher of layers, payloads[i] being
// layer i's.
func newLayeredPublisher(conn *websocket.Conn, room *roomState, layers []Layer, payloads [][]byte, fps float64) *publisher {
	p := &publisher{conn: conn, room: room, fps: fps}
	for i, l := range layers {
		p.msgs = append(p.msgs, frames.AppendLayered(nil, room.name, i, l.Width, l.Height, 0, time.Now(), payloads[i]))
		p.head = append(p.head, frames.LayerBlockFixed+len(room.name))
	}
	return p
}

// newH264Publisher returns a publisher that plays clip as room's H.264
// layer 0. The caller starts src.readRequests on conn.
func newH264Publisher(conn *websocket.Conn, room *roomState, src *h264Source, fps float64) *publisher {
	return &publisher{conn: conn, room: room, h264: src, fps: fps}
}

// run sends frames from now until end, at p.fps or, if it is 0, as fast as
// the connection takes them. Frames sent from windowStart on are counted in
// the room's window. A time.Ticker paces the frames: if a write takes longer
// than a frame interval the ticks it missed are dropped, as a camera whose
// encoder falls behind would drop them.
func (p *publisher) run(ctx context.Context, windowStart, end time.Time) {
	var tick <-chan time.Time
	if p.fps > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / p.fps))
		defer t.Stop()
		tick = t.C
	}
	inWindow := false
	for {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
				return
			}
		} else if ctx.Err() != nil {
			return
		}
		now := time.Now()
		if !now.Before(end) {
			return
		}
		p.seq++
		if !inWindow && !now.Before(windowStart) {
			inWindow = true
			p.room.from.Store(p.seq)
		}
		msgs := p.msgs
		if p.h264 != nil {
			msgs = p.h264.picture(p.seq, now)
		} else {
			for i, msg := range msgs {
				frames.PutHeader(msg[p.head[i]:], frames.KindJPEG, p.seq, now)
			}
		}
		for _, msg := range msgs {
			// A background context: the run ends by closing the connection,
			// and a cancellable context would cost an AfterFunc per write.
			if err := p.conn.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
				p.err = err
				return
			}
		}
		p.lastSeq.Store(p.seq)
		p.sentTotal++
		if inWindow {
			p.room.sent.Add(1)
		}
	}
}
