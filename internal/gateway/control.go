package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/framecast/framecast/pkg/frames"
)

// Control messages (docs/protocol.md, "Control messages"): text JSON both
// ways on v=2 and multi-room connections. The viewer's come in on the
// connection's control reader (controlRead), one at a time; the gateway's
// go out through the connection's one writer (session.send), in
// order with the frames.

// Types of control messages.
const (
	ctlSelect      = "select"
	ctlSubscribe   = "subscribe"
	ctlUnsubscribe = "unsubscribe"
	ctlSeek        = "seek"     // both ways: play the recording from at
	ctlLive        = "live"     // both ways: back to live
	ctlPlayback    = "playback" // the gateway's answer to a seek
	ctlLayers      = "layers"
	ctlLayer       = "layer"
	ctlRefused     = "refused"
	ctlError       = "error"
)

// controlMsg is a control message from a viewer.
type controlMsg struct {
	Type  string `json:"type"`
	Room  string `json:"room,omitempty"`
	Width *int   `json:"width,omitempty"`
	Layer *int   `json:"layer,omitempty"`
	Codec string `json:"codec,omitempty"` // "jpeg" (or absent) or "h264"
	At    string `json:"at,omitempty"`    // seek: an RFC 3339 time, Unix milliseconds ("1796652180000") or relative ("-30s")
}

// ask is the layer choice m carries: width or layer, or neither (the main
// layer, not adapted), in a codec; validated as a query's is.
func (m *controlMsg) ask() (layerAsk, error) { return newLayerAsk(m.Width, m.Layer, m.Codec) }

// layersMessage is the gateway's `layers` message.
func layersMessage(room string, layers []frames.LayerInfo) []byte {
	if layers == nil {
		layers = []frames.LayerInfo{} // an H.264 choice in a room that sends none yet
	}
	return mustJSON(struct {
		Type   string             `json:"type"`
		Room   string             `json:"room"`
		Layers []frames.LayerInfo `json:"layers"`
	}{ctlLayers, room, layers})
}

// layerMessage is the gateway's `layer` message: room's viewer now
// receives layer, for reason.
func layerMessage(room string, layers []frames.LayerInfo, layer int, codec frames.Codec, reason string) []byte {
	info := frames.LayerInfo{Index: layer, Codec: codec}
	for _, l := range layers {
		if l.Index == layer {
			info = l
		}
	}
	return mustJSON(struct {
		Type   string       `json:"type"`
		Room   string       `json:"room"`
		Layer  int          `json:"layer"`
		Width  int          `json:"width"`
		Height int          `json:"height"`
		Codec  frames.Codec `json:"codec,omitempty"`
		Reason string       `json:"reason"`
	}{ctlLayer, room, info.Index, info.Width, info.Height, info.Codec, reason})
}

// refusedMessage is the gateway's `refused` message.
func refusedMessage(room, reason string) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Room   string `json:"room"`
		Reason string `json:"reason"`
	}{ctlRefused, room, reason})
}

// errorMessage is the gateway's `error` message.
func errorMessage(reason string) []byte {
	return mustJSON(struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	}{ctlError, reason})
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("gateway: failed to encode a control message: %v", err))
	}
	return b
}

// controlRead reads a v=2 or multi-room viewer's control messages until
// the connection ends, and acts on each on this goroutine (a layer switch
// or a subscription may block on Join). Like viewerCloseRead, it closes the
// connection with 1008 on a binary message (viewers send no frames), and
// with 1008 control_rate_exceeded past GATEWAY_CONTROL_RATE; a message
// over viewerReadLimit closes it with 1009. The returned context is
// cancelled with the reason as its cause. Call c.SetReadLimit first.
func (s *Server) controlRead(ctx context.Context, k *conn) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	r := s.cfg.controlRate()
	lim := rate.NewLimiter(rate.Limit(r), max(1, int(r)))
	go func() {
		buf := make([]byte, 0, 256)
		for {
			typ, rd, err := k.ws.Reader(ctx)
			if err == nil && typ == websocket.MessageBinary {
				s.metrics.rejected.WithLabelValues("viewer_sent_data").Inc()
				err = ended(endViewerData, errors.New("viewers send text control messages only"))
			}
			if err == nil && !lim.Allow() {
				s.metrics.rejected.WithLabelValues("control_rate").Inc()
				err = ended(endControlRate, fmt.Errorf("more than %v control messages a second", r))
			}
			if err == nil {
				buf, err = readAll(buf[:0], rd)
			}
			if err != nil {
				cancel(err)
				return
			}
			k.session.Load().control(ctx, buf)
		}
	}()
	return ctx
}

// readAll appends r to buf until EOF.
func readAll(buf []byte, r io.Reader) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// control acts on one control message from the viewer. Anything it does
// not understand is answered with an `error` message and changes nothing.
// Control reader only.
func (w *session) control(ctx context.Context, data []byte) {
	var m controlMsg
	if err := json.Unmarshal(data, &m); err != nil {
		w.refuse("", fmt.Sprintf("not a JSON control message: %v", err))
		return
	}
	ask, err := m.ask()
	if err != nil {
		w.refuse(m.Type, err.Error())
		return
	}
	if m.Room != "" && !frames.ValidRoom(m.Room) {
		w.refuse(m.Type, fmt.Sprintf("%q is not a room name (1 to 64 characters from A-Z, a-z, 0-9 and _)", m.Room))
		return
	}
	switch m.Type {
	case ctlSelect:
		w.s.metrics.control.WithLabelValues(ctlSelect).Inc()
		w.selectLayer(ctx, m.Room, ask)
	case ctlSubscribe, ctlUnsubscribe:
		w.s.metrics.control.WithLabelValues(m.Type).Inc()
		switch {
		case !w.opts.multi:
			w.send(errorMessage(m.Type + " needs a multi-room connection (/ws/multi/)"))
		case m.Room == "":
			w.send(errorMessage(m.Type + " needs a room"))
		case m.Type == ctlSubscribe:
			w.subscribeOrRefuse(ctx, m.Room, ask)
		default:
			w.unsubscribe(m.Room)
		}
	case ctlSeek:
		w.s.metrics.control.WithLabelValues(m.Type).Inc()
		at, err := parseTime("at", m.At, time.Now())
		if err != nil {
			w.refuse(m.Type, err.Error())
			return
		}
		if w.s.lib == nil {
			w.send(errorMessage(errNoLibrary.Error()))
			return
		}
		w.seek(ctx, m.Room, at)
	case ctlLive:
		w.s.metrics.control.WithLabelValues(m.Type).Inc()
		w.live(ctx, m.Room)
	default:
		w.refuse(m.Type, fmt.Sprintf("unknown control message type %q (select, subscribe, unsubscribe, seek or live)", m.Type))
	}
}

// refuse answers a control message that is not understood.
func (w *session) refuse(typ, reason string) {
	w.s.metrics.control.WithLabelValues("invalid").Inc()
	w.k.log.Debug("bad control message", "type", typ, "reason", reason)
	w.send(errorMessage(reason))
}

// Reasons of `refused` messages.
const (
	refusedNotGranted = "the token does not grant this room"
	refusedRoomLimit  = "too many rooms on this gateway"
)

// subscribeOrRefuse subscribes room on a multi-room connection (see
// session.subscribe); a room the token does not grant, one past
// GATEWAY_MAX_ROOMS_PER_CONN or past the replica's room limit is answered
// with `refused`, and the connection and its other rooms carry on.
func (w *session) subscribeOrRefuse(ctx context.Context, room string, ask layerAsk) {
	err := w.subscribe(ctx, room, ask)
	switch {
	case err == nil, errors.Is(err, errConnEnding):
	case errors.Is(err, errNotGranted):
		w.s.metrics.rejected.WithLabelValues("forbidden").Inc()
		w.send(refusedMessage(room, refusedNotGranted))
	case errors.Is(err, errRoomsPerConn):
		w.s.metrics.rejected.WithLabelValues("rooms_per_conn").Inc()
		w.send(refusedMessage(room, err.Error()))
	default:
		w.refuseRoom(room, err) // a room budget: roombudget.go
	}
}
