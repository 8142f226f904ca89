package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// servePublisher reads frames from k and hands them to the room's streams
// until the connection ends. Each message is one frame: a text data URL
// (the seed's sender) or a binary message, bare JPEG, header + JPEG, or a
// version-2 message of one of the room's layers (each layer, and each
// codec, is published as its own stream). Each message is read (bounded
// in size, time and the replica's read budget), admitted (the publish
// rate), parsed (a message that is not a valid frame closes the
// connection with 1007, 1009 if too large, and a reason) and routed to its
// stream's publisher.
func (s *Server) servePublisher(ctx context.Context, k *conn) error {
	p := s.newPublishing(k)
	defer p.close()
	// Reads use a background context: with a cancellable one coder/websocket
	// arms a context.AfterFunc for every chunk it reads (about 30 allocations
	// per 50 KB frame). Cancelling ctx closes the connection instead, which is
	// what a cancelled read does anyway.
	stopRead := context.AfterFunc(ctx, func() { _ = k.ws.CloseNow() })
	defer stopRead()
	for {
		typ, data, err := p.read()
		if err != nil {
			return err
		}
		if ok, err := p.admit(typ, data); !ok {
			if err != nil {
				return err
			}
			continue // over the rate: dropped unparsed, and counted
		}
		f, err := p.parse(typ, data)
		if err != nil {
			reason := endBadFrame
			if errors.Is(err, frames.ErrTooLarge) {
				reason = endTooLarge
			}
			s.metrics.rejected.WithLabelValues(closeTable[reason].label).Inc()
			return ended(reason, err)
		}
		if err := p.route(f); err != nil {
			return err
		}
	}
}

// publishing is one publishing connection's state, used by its read loop
// only.
type publishing struct {
	s     *Server
	k     *conn
	msgs  *messageReader
	slow  *time.Timer // ends a message that takes longer than GATEWAY_MESSAGE_TIMEOUT
	limit *publishLimiter
	pics  pictures  // the publish rate counts pictures, not layers
	order h264Order // H.264 messages come in an order viewers can decode
	seq   uint64    // for frames whose wire format carries none
	// The room's publishers, one per stream it sends, registered at their
	// first valid frame, not at connect: a seed-mode connection that only
	// watches is no publisher, and its leaving must not tell viewers the
	// room went offline.
	pubs map[frames.Stream]*rooms.Publisher
	log  *slog.Logger
}

func (s *Server) newPublishing(k *conn) *publishing {
	k.ws.SetReadLimit(s.cfg.maxMessageBytes())
	p := &publishing{s: s, k: k, msgs: &messageReader{budget: s.limits.readBudget},
		limit: newPublishLimiter(s.cfg.PublishRate, s.cfg.PublishBurst),
		pubs:  make(map[frames.Stream]*rooms.Publisher, 1), log: k.log}
	if !k.mayPublish {
		// A connection that may not publish reads no more than a viewer
		// would: its first data message closes it (1008, forbidden), and
		// a large one is never buffered.
		p.msgs.limit = viewerReadLimit
	}
	// A message a client started must end in time: one that trickles (or
	// never ends) would hold its buffer, and a budget share, for ever.
	p.slow = time.AfterFunc(time.Hour, func() {
		s.stop(k, ended(endMessageTimeout, fmt.Errorf("message not finished within %v", s.cfg.MessageTimeout)))
	})
	p.slow.Stop()
	return p
}

// close stops the publishers and the message timer.
func (p *publishing) close() {
	p.slow.Stop()
	for _, pub := range p.pubs {
		pub.Close()
	}
}

// read reads the next message whole, within the message timeout, the
// connection's limit and the replica's read budget.
func (p *publishing) read() (websocket.MessageType, []byte, error) {
	typ, r, err := p.k.ws.Reader(context.Background())
	var data []byte
	if err == nil {
		data, err = p.readTimed(r)
	}
	switch {
	case errors.Is(err, errMessageLimit):
		p.s.metrics.rejected.WithLabelValues("forbidden").Inc()
		return 0, nil, ended(endForbidden, err)
	case errors.Is(err, errReadBudget):
		p.s.metrics.rejected.WithLabelValues("read_budget").Inc()
		return 0, nil, ended(endReadBudget, err)
	case err != nil:
		if errors.Is(err, websocket.ErrMessageTooBig) {
			p.s.metrics.rejected.WithLabelValues("too_large").Inc()
		}
		return 0, nil, err
	case p.k.sock.ReadEnded():
		// The connection closed between two fragments of the message:
		// what was read is not a whole message, whatever it parses as
		// (package socket's doc).
		return 0, nil, ended(endGone, errors.New("connection closed before the message's final fragment"))
	}
	return typ, data, nil
}

func (p *publishing) readTimed(r io.Reader) ([]byte, error) {
	if p.s.cfg.MessageTimeout > 0 {
		p.slow.Reset(p.s.cfg.MessageTimeout)
		defer p.slow.Stop()
	}
	return p.msgs.read(r)
}

// admit applies the publish rate to a message read: further messages of a
// picture already counted are free (pictures), the rest take a token. It
// reports false for a message to drop, with an error when the excess ends
// the connection.
func (p *publishing) admit(typ websocket.MessageType, data []byte) (bool, error) {
	if typ == websocket.MessageBinary && p.pics.free(data) {
		return true, nil
	}
	return p.s.admitFrame(p.limit)
}

// parse turns a message into a frame, and checks what a publisher's
// message must be: no offline event, H.264 only in version-2 messages and
// in an order viewers can decode, no other room named.
func (p *publishing) parse(typ websocket.MessageType, data []byte) (*frames.Frame, error) {
	// A parsed binary frame aliases its message, which messageReader
	// allocated for it alone: the frame costs its size once. A data URL
	// is decoded into a new buffer, and the message becomes garbage.
	now := time.Now()
	p.seq++
	if typ == websocket.MessageText {
		return frames.ParseDataURL(data, p.seq, now, p.s.cfg.MaxFrameBytes)
	}
	f, err := frames.ParseBinary(data, p.seq, now, p.s.cfg.MaxFrameBytes)
	switch {
	case err != nil:
		return nil, err
	case f.IsOffline():
		return nil, fmt.Errorf("%w: publishers send frames, not offline events", frames.ErrBadHeader)
	case f.Kind.IsH264() && data[0] != frames.VersionLayered:
		return nil, fmt.Errorf("%w: H.264 messages come with a layer block (version 2)", frames.ErrBadHeader)
	case f.Kind.IsH264():
		return f, p.order.check(f)
	case f.Room != "" && f.Room != p.k.room:
		return nil, fmt.Errorf("%w: the layer block names room %q, the URL room %q", frames.ErrBadHeader, f.Room, p.k.room)
	}
	return f, nil
}

// route hands f to its stream's publisher, registering it at the stream's
// first frame.
func (p *publishing) route(f *frames.Frame) error {
	codec, _ := f.Kind.Codec()
	id := frames.Stream{Room: p.k.room, Layer: f.Layer, Codec: codec}
	pub := p.pubs[id]
	if pub == nil {
		if !p.k.mayPublish {
			p.s.metrics.rejected.WithLabelValues("forbidden").Inc()
			return ended(endForbidden, errors.New("publishing needs a publish token"))
		}
		var err error
		if pub, err = p.s.hub.NewPublisher(id); err != nil {
			p.s.metrics.rejected.WithLabelValues("too_many_rooms").Inc()
			return ended(endRoomLimit, err)
		}
		p.pubs[id] = pub
		pub.OnKeyframe(func() { p.s.askKeyframe(p.k) })
		p.log.Debug("publishing", "stream", id)
	}
	if !pub.Send(f) {
		p.s.metrics.rejected.WithLabelValues("room_rate").Inc() // the stream is over GATEWAY_ROOM_RATE
		return nil
	}
	p.s.metrics.framesIn.Inc()
	return nil
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

// free reports whether msg, a binary message, costs nothing against the
// rate, and records it. A message that is not version 2, or is malformed,
// is not free: the parser decides what it is.
func (p *pictures) free(msg []byte) bool {
	m, err := frames.PeekMessage(msg)
	if err != nil || !m.Layered {
		return false
	}
	class := m.Layer // a JPEG layer's picture
	switch m.Kind {
	case frames.KindH264Config:
		class += 2 * frames.MaxLayers
	case frames.KindH264Key, frames.KindH264Delta:
		class += frames.MaxLayers
	}
	bit := uint16(1) << class
	if p.any && m.Seq == p.seq && p.sent&bit == 0 {
		p.sent |= bit
		return true
	}
	p.seq, p.sent, p.any = m.Seq, bit, true
	return false
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
// like any peer. Publishers of JPEG streams are never asked.
func (s *Server) askKeyframe(k *conn) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
	defer cancel()
	if err := k.ws.Write(ctx, websocket.MessageText, keyframeRequest); err != nil {
		k.log.Debug("keyframe request not delivered", "err", err)
		return
	}
	s.metrics.keyframeRequests.Inc()
}
