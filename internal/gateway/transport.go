package gateway

import (
	"context"
	"strconv"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/socket"
	"github.com/framecast/framecast/pkg/frames"
)

// transport is how a session's messages reach its peer: the wire form of a
// frame, and whether control messages exist. Its writes go through the
// connection's socket.Writer and do not block; only the session's writer
// calls them, one at a time.
type transport interface {
	// writeFrame writes f, a frame of sub, in the peer's form, and
	// reports whether it wrote anything (a frame this peer has no form
	// for is skipped).
	writeFrame(sub *subscription, f *frames.Frame) (written bool, err error)
	// writeControl writes a control message (text JSON). Transports
	// without control messages are never handed one.
	writeControl(msg []byte) error
	// label names the form in framecast_frames_out_total.
	label() string
}

// wsTransport writes a WebSocket viewer's messages: each frame's message
// is built once per frame and format and shared by every viewer.
type wsTransport struct {
	c    *websocket.Conn
	sock *socket.Writer
	typ  websocket.MessageType
	v2   bool
}

func newWSTransport(k *conn, opts viewOpts) *wsTransport {
	t := &wsTransport{c: k.ws, sock: k.sock, typ: websocket.MessageBinary, v2: opts.v2}
	if opts.format == formatJSON {
		t.typ = websocket.MessageText
	}
	return t
}

func (t *wsTransport) label() string {
	switch {
	case t.v2:
		return formatV2
	case t.typ == websocket.MessageText:
		return formatJSON
	}
	return formatBinary
}

// message is f's payload for this viewer's format, or nil when f is not
// written: offline events are not sent to JSON viewers (the seed's page
// has no use for them), nor to anyone a frame whose room is not the
// subscription's (never expected; it would mislead a multi-room client).
func (t *wsTransport) message(sub *subscription, f *frames.Frame) []byte {
	switch {
	case t.v2:
		if f.Room != sub.room {
			return nil
		}
		return f.BinaryV2()
	case t.typ == websocket.MessageText:
		return f.JSON()
	}
	return f.Binary()
}

func (t *wsTransport) writeFrame(sub *subscription, f *frames.Frame) (bool, error) {
	msg := t.message(sub, f)
	if msg == nil {
		return false, nil
	}
	return true, t.write(t.typ, msg)
}

func (t *wsTransport) writeControl(msg []byte) error { return t.write(websocket.MessageText, msg) }

// write hands one message to coder/websocket, corked so that its header
// and payload leave in one write, the payload by reference (see package
// socket).
func (t *wsTransport) write(typ websocket.MessageType, msg []byte) error {
	t.sock.Cork(msg)
	err := t.c.Write(context.Background(), typ, msg)
	if uerr := t.sock.Uncork(); err == nil {
		err = uerr
	}
	return err
}

// mjpegBoundary separates the parts of an MJPEG stream.
const mjpegBoundary = "frame"

// mjpegTransport writes an MJPEG stream's parts: each JPEG, with its
// length and capture time in the part's headers, followed at once by the
// next boundary (a browser shows a part once it sees the boundary after
// it, so a closing boundary puts every frame on screen at once instead of
// one frame late). Offline events and H.264 have no MJPEG form.
type mjpegTransport struct {
	sock *socket.Writer
	head []byte // the part's headers, rebuilt per frame
}

var mjpegPartEnd = []byte("\r\n--" + mjpegBoundary + "\r\n")

func (*mjpegTransport) label() string { return roleMJPEG }

func (t *mjpegTransport) writeFrame(_ *subscription, f *frames.Frame) (bool, error) {
	if f.Kind != frames.KindJPEG {
		return false, nil
	}
	h := append(t.head[:0], "Content-Type: image/jpeg\r\nContent-Length: "...)
	h = strconv.AppendInt(h, int64(len(f.Payload)), 10)
	h = append(h, "\r\nX-Timestamp: "...)
	h = strconv.AppendFloat(h, float64(f.Captured.UnixMicro())/1e6, 'f', 6, 64)
	h = append(h, "\r\n\r\n"...)
	t.head = h
	t.sock.Cork(f.Payload)
	var err error
	for _, b := range [][]byte{h, f.Payload, mjpegPartEnd} {
		if _, err = t.sock.Write(b); err != nil {
			break
		}
	}
	if uerr := t.sock.Uncork(); err == nil {
		err = uerr
	}
	return err == nil, err
}

func (*mjpegTransport) writeControl([]byte) error { return nil }
