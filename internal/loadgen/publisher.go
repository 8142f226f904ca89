package loadgen

import (
	"context"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
)

// publisher sends one room's frames: the same payload every time, its
// 20-byte header rewritten in place with the sequence number and the send
// time as the capture time, one binary message per frame.
type publisher struct {
	conn *websocket.Conn
	room *roomState
	msg  []byte // header + payload, built once
	fps  float64

	seq       uint64 // last sequence number sent
	sentTotal uint64 // including warmup
	err       error  // a failed write, which ends the publisher
}

func newPublisher(conn *websocket.Conn, room *roomState, payload []byte, fps float64) *publisher {
	return &publisher{
		conn: conn,
		room: room,
		msg:  frames.AppendBinary(make([]byte, 0, frames.HeaderSize+len(payload)), 0, time.Now(), payload),
		fps:  fps,
	}
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
		frames.PutHeader(p.msg, frames.KindJPEG, p.seq, now)
		// A background context: the run ends by closing the connection,
		// and a cancellable context would cost an AfterFunc per write.
		if err := p.conn.Write(context.Background(), websocket.MessageBinary, p.msg); err != nil {
			p.err = err
			return
		}
		p.sentTotal++
		if inWindow {
			p.room.sent.Add(1)
		}
	}
}
