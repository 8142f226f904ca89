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
	var h264 [frames.MaxLayers]*rooms.Publisher // H.264 streams, one per layer
	defer func() {
		for _, p := range append(pubs[:], h264[:]...) {
			if p != nil {
				p.Close()
			}
		}
	}()
	var pics pictures // the publish rate counts pictures, not layers
	var order h264Order
	var seq uint64 // for frames whose wire format carries none
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
			case f.Kind.IsH264() && data[0] != frames.VersionLayered:
				err = fmt.Errorf("%w: H.264 messages come with a layer block (version 2)", frames.ErrBadHeader)
			case f.Kind.IsH264():
				err = order.check(f)
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
		slot, stream := &pubs[f.Layer], frames.Stream{Room: room, Layer: f.Layer}
		if f.Kind.IsH264() {
			slot, stream = &h264[f.Layer], frames.Stream{Room: room, Layer: f.Layer, Codec: frames.CodecH264}
		}
		pub := *slot
		if pub == nil {
			if !k.mayPublish {
				s.metrics.rejected.WithLabelValues("forbidden").Inc()
				return ended(endForbidden, errors.New("publishing needs a publish token"))
			}
			if pub, err = s.hub.NewPublisher(stream); err != nil {
				s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
				return ended(endRoomLimit, err)
			}
			*slot = pub
			if f.Kind.IsH264() {
				pub.OnKeyframe(func() { s.askKeyframe(k) })
			}
			log.Debug("publishing", "stream", stream)
		}
		if !pub.Send(f) {
			s.metrics.rejected.WithLabelValues("room_rate").Inc() // the room is over GATEWAY_ROOM_RATE
			continue
		}
		s.metrics.framesIn.Inc()
	}
}

// pictures tells which messages of a layered publisher are further
// messages of a picture already counted against its publish rate: the
// rate (GATEWAY_PUBLISH_RATE) counts captured pictures, so a camera
// sending 3 JPEG layers and H.264 at 30 fps stays at 30. A version-2
// message carrying the sequence number of the picture counted last is
// free if no message of its kind of stream (a JPEG layer, an H.264
// layer's picture, an H.264 layer's configuration) was sent for that
// picture yet; any other message is counted and becomes the picture. So
// at most 12 messages ride on one counted picture. Used by one read loop.
type pictures struct {
	seq  uint64 // sequence number of the picture counted last
	sent uint16 // bit i: a message of class i of that picture was sent
	any  bool   // a picture was counted
}

// free reports whether msg costs nothing against the rate, and records it.
func (p *pictures) free(typ websocket.MessageType, msg []byte) bool {
	class, seq, ok := peekClass(typ, msg)
	if !ok {
		return false // not a version-2 message, or a malformed one: the parser decides
	}
	bit := uint16(1) << class
	if p.any && seq == p.seq && p.sent&bit == 0 {
		p.sent |= bit
		return true
	}
	p.seq, p.sent, p.any = seq, bit, true
	return false
}

// peekClass reads the stream class (see pictures) and sequence number of
// a version-2 message without parsing it whole.
func peekClass(typ websocket.MessageType, msg []byte) (class int, seq uint64, ok bool) {
	if typ != websocket.MessageBinary || len(msg) < frames.LayerBlockFixed || msg[0] != frames.VersionLayered {
		return 0, 0, false
	}
	e := int(msg[2])<<8 | int(msg[3])
	layer := int(msg[4])
	if layer >= frames.MaxLayers || e > len(msg) {
		return 0, 0, false
	}
	h, err := frames.ParseHeader(msg[e:])
	if err != nil {
		return 0, 0, false
	}
	switch h.Kind {
	case frames.KindH264Config:
		return 2*frames.MaxLayers + layer, h.Seq, true
	case frames.KindH264Key, frames.KindH264Delta:
		return frames.MaxLayers + layer, h.Seq, true
	}
	return layer, h.Seq, true
}

// h264Order checks that a publisher's H.264 messages can be decoded from
// where a viewer starts: every keyframe comes right after a configuration
// of the same picture, and no delta of a layer comes before that layer's
// first keyframe. Used by one read loop.
type h264Order struct {
	config [frames.MaxLayers]uint64 // seq of the last configuration, per layer (0: none yet)
	keyed  [frames.MaxLayers]bool
	last   [frames.MaxLayers]frames.Kind
}

func (o *h264Order) check(f *frames.Frame) error {
	l := f.Layer
	defer func() { o.last[l] = f.Kind }()
	switch f.Kind {
	case frames.KindH264Config:
		o.config[l] = f.Seq
	case frames.KindH264Key:
		if o.last[l] != frames.KindH264Config || o.config[l] != f.Seq {
			return fmt.Errorf("%w: keyframe %d of layer %d does not follow its configuration", frames.ErrBadH264, f.Seq, l)
		}
		o.keyed[l] = true
	case frames.KindH264Delta:
		if !o.keyed[l] {
			return fmt.Errorf("%w: delta %d of layer %d before the layer's first keyframe", frames.ErrBadH264, f.Seq, l)
		}
	}
	return nil
}

// keyframeRequest is the control message that asks a publisher for a
// keyframe (docs/protocol.md, "Compressed video").
var keyframeRequest = []byte(`{"type":"keyframe"}`)

// askKeyframe sends a publisher the keyframe request, for a viewer on any
// replica. Requests reach here at most once a second per room from each
// replica (rooms.KeyframeRequestInterval); the write goes through the
// connection's one writer and never blocks the caller for long: a
// publisher that does not read its socket is cut off by the write timeout
// like any peer.
func (s *Server) askKeyframe(k *wsConn) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	if err := k.c.Write(ctx, websocket.MessageText, keyframeRequest); err != nil {
		k.log.Debug("keyframe request not delivered", "err", err)
		return
	}
	s.metrics.keyframeRequests.Inc()
}
