package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// servePublisher reads frames from c and hands them to a publisher until
// the connection ends. Each message is one frame: a text data URL (the
// seed's sender) or a binary message, bare JPEG, header + JPEG, or a
// version-2 message of one of the room's layers (each layer is published
// as its own stream, see rooms.Stream). A message
// that is not a valid frame closes the connection with 1007 (1009 if too
// large) and a reason.
func (s *Server) servePublisher(ctx context.Context, k *wsConn) error {
	c, room, log := k.c, k.room, k.log
	// The room's publishers (one per layer it sends) are registered at
	// their first valid frame, not at connect: a seed-mode connection that
	// only watches is no publisher, and its leaving must not tell viewers
	// the room went offline.
	var pubs [frames.MaxLayers]*rooms.Publisher
	defer func() {
		for _, p := range pubs {
			if p != nil {
				p.Close()
			}
		}
	}()
	var pics pictures // the publish rate counts pictures, not layers
	var seq uint64    // for frames whose wire format carries none
	c.SetReadLimit(s.cfg.maxMessageBytes())
	msgs := &messageReader{budget: s.limits.readBudget}
	if !k.mayPublish {
		// A connection that may not publish reads no more than a viewer
		// would: its first data message closes it (1008, forbidden), and
		// a large one is never buffered.
		msgs.limit = viewerReadLimit
	}
	limit := newPublishLimiter(s.cfg.PublishRate, s.cfg.PublishBurst)
	// Reads use a background context: with a cancellable one coder/websocket
	// arms a context.AfterFunc for every chunk it reads (about 30 allocations
	// per 50 KB frame). Cancelling ctx closes the connection instead, which is
	// what a cancelled read does anyway.
	stopRead := context.AfterFunc(ctx, func() { _ = c.CloseNow() })
	defer stopRead()
	// A message a client started must end in time: one that trickles (or
	// never ends) would hold its buffer, and a budget share, for ever.
	slow := time.AfterFunc(time.Hour, func() {
		s.stop(k, ended(endMessageTimeout, fmt.Errorf("message not finished within %v", s.cfg.MessageTimeout)))
	})
	slow.Stop()
	defer slow.Stop()
	for {
		typ, r, err := c.Reader(context.Background())
		var data []byte
		if err == nil {
			if s.cfg.MessageTimeout > 0 {
				slow.Reset(s.cfg.MessageTimeout)
			}
			data, err = msgs.read(r)
			slow.Stop()
		}
		switch {
		case errors.Is(err, errMessageLimit):
			s.metrics.rejected.WithLabelValues("forbidden").Inc()
			return ended(endForbidden, err)
		case errors.Is(err, errReadBudget):
			s.metrics.rejected.WithLabelValues("read_budget").Inc()
			return ended(endReadBudget, err)
		case err != nil:
			if errors.Is(err, websocket.ErrMessageTooBig) {
				s.metrics.rejected.WithLabelValues("too_large").Inc()
			}
			return err
		case k.sock.ReadEnded():
			// The connection closed between two fragments of the message:
			// what was read is not a whole message, whatever it parses as.
			return ended(endGone, errors.New("connection closed before the message's final fragment"))
		}
		if !pics.free(typ, data) {
			if ok, err := s.admitFrame(limit); !ok {
				if err != nil {
					return err
				}
				continue // over the rate: dropped unparsed, and counted
			}
		}
		// A parsed binary frame aliases its message, which messageReader
		// allocated for it alone: the frame costs its size once. A data URL
		// is decoded into a new buffer, and the message becomes garbage.
		var f *frames.Frame
		now := time.Now()
		seq++
		if typ == websocket.MessageText {
			f, err = frames.ParseDataURL(data, seq, now, s.cfg.MaxFrameBytes)
		} else {
			f, err = frames.ParseBinary(data, seq, now, s.cfg.MaxFrameBytes)
			switch {
			case err != nil:
			case f.IsOffline():
				err = fmt.Errorf("%w: publishers send frames, not offline events", frames.ErrBadHeader)
			case f.Kind.IsH264():
				err = fmt.Errorf("%w: this gateway does not relay H.264 yet", frames.ErrBadHeader)
			case f.Room != "" && f.Room != room:
				err = fmt.Errorf("%w: the layer block names room %q, the URL room %q", frames.ErrBadHeader, f.Room, room)
			}
		}
		if err != nil {
			reason := endBadFrame
			if errors.Is(err, frames.ErrTooLarge) {
				reason = endTooLarge
			}
			s.metrics.rejected.WithLabelValues(closeTable[reason].label).Inc()
			return ended(reason, err)
		}
		pub := pubs[f.Layer]
		if pub == nil {
			if !k.mayPublish {
				s.metrics.rejected.WithLabelValues("forbidden").Inc()
				return ended(endForbidden, errors.New("publishing needs a publish token"))
			}
			if pub, err = s.hub.NewPublisher(rooms.Stream(room, f.Layer)); err != nil {
				s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
				return ended(endRoomLimit, err)
			}
			pubs[f.Layer] = pub
			log.Debug("publishing", "layer", f.Layer)
		}
		if !pub.Send(f) {
			s.metrics.rejected.WithLabelValues("room_rate").Inc() // the room is over GATEWAY_ROOM_RATE
			continue
		}
		s.metrics.framesIn.Inc()
	}
}

// pictures tells which messages of a layered publisher are further layers
// of a picture already counted against its publish rate: the rate
// (GATEWAY_PUBLISH_RATE) counts captured pictures, so a camera sending 3
// layers at 30 fps stays at 30. A message is free only if it is a
// version-2 message of layer i > 0 carrying the sequence number of the
// newest main-layer message, and layer i of that picture was not sent
// yet: at most MaxLayers messages per counted picture. Used by one read
// loop.
type pictures struct {
	seq  uint64 // sequence number of the newest main-layer message
	sent uint8  // bit i: layer i of that picture was sent
	any  bool   // a main-layer message was seen
}

// free reports whether msg costs nothing against the rate, and records it.
func (p *pictures) free(typ websocket.MessageType, msg []byte) bool {
	layer, seq, ok := peekLayer(typ, msg)
	if !ok {
		return false // not a version-2 message, or a malformed one: the parser decides
	}
	if layer == 0 {
		p.seq, p.sent, p.any = seq, 1, true
		return false
	}
	bit := uint8(1) << layer
	if !p.any || seq != p.seq || p.sent&bit != 0 {
		return false
	}
	p.sent |= bit
	return true
}

// peekLayer reads the layer and sequence number of a version-2 message
// without parsing it whole.
func peekLayer(typ websocket.MessageType, msg []byte) (layer int, seq uint64, ok bool) {
	if typ != websocket.MessageBinary || len(msg) == 0 || msg[0] != frames.VersionLayered {
		return 0, 0, false
	}
	lb, err := frames.ParseLayerBlock(msg)
	if err != nil {
		return 0, 0, false
	}
	h, err := frames.ParseHeader(msg[lb.Len:])
	if err != nil {
		return 0, 0, false
	}
	return lb.Layer, h.Seq, true
}
