package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"

	"github.com/coder/websocket"
	"github.com/framecast/framecast/internal/socket"
)

// Close codes the gateway sends beyond the standard ones.
const (
	// StatusViewerTooSlow is the code of a viewer cut off because it stopped
	// reading: its writes stalled past the write timeout, or it let the
	// gateway's write queue fill. The connection is dropped at once (a
	// stalled peer cannot read a close frame either), so the code is seen
	// in the log and metrics, not by the peer.
	StatusViewerTooSlow websocket.StatusCode = 4008
)

// endReason is why a WebSocket connection ended. Every end has exactly one,
// and closeTable says what it means on the wire, in the metrics and in the
// log. docs/protocol.md lists the same table.
type endReason int

const (
	endNormal         endReason = iota // the peer closed: 1000, 1001 or no status
	endGone                            // the peer vanished: EOF or reset without a close frame
	endShutdown                        // the gateway is shutting down
	endTooSlow                         // a viewer stopped reading
	endPingTimeout                     // no pong within the write timeout
	endBadFrame                        // a publisher's message is not a valid frame
	endTooLarge                        // a message over the size limit
	endRate                            // a publisher stayed over its rate limit
	endForbidden                       // a frame from a connection that may not publish
	endTokenExpired                    // the token the connection was admitted with expired
	endViewerData                      // a view-only connection sent a data message
	endRoomLimit                       // the replica holds its maximum number of rooms
	endIdleRooms                       // the replica holds its share of rooms without a publisher (roombudget.go)
	endAddrIdleRooms                   // the client's address holds GATEWAY_MAX_IDLE_ROOMS_PER_IP rooms without a publisher
	endMessageTimeout                  // a message did not end within GATEWAY_MESSAGE_TIMEOUT
	endReadBudget                      // the replica's unfinished messages are at GATEWAY_READ_BUDGET_MB
	endControlFlood                    // the peer made the gateway write too many control frames
	endLayerDown                       // the replica's channel layer stayed down: reconnect elsewhere
	endControlRate                     // a viewer sent control messages faster than GATEWAY_CONTROL_RATE
	endProtocol                        // the peer broke the WebSocket protocol
	endInternal                        // an error of the gateway's own (a write that failed)
	numEndReasons
)

// closeSpec is one row of closeTable.
type closeSpec struct {
	label  string               // framecast_connections_closed_total{reason}; also the log's "reason"
	code   websocket.StatusCode // sent in a close frame; 0: none (the peer closed first, or cannot read one)
	text   string               // the close frame's reason; "" means the error's own text
	level  slog.Level           // level of the "connection closed" log line
	cutOff string               // if set, framecast_viewers_cut_off_total{reason} counts it too
}

// closeTable is every reason a connection ends, in one place.
var closeTable = [numEndReasons]closeSpec{
	endNormal:         {label: "normal", level: slog.LevelDebug},
	endGone:           {label: "gone", level: slog.LevelDebug},
	endShutdown:       {label: "shutdown", code: websocket.StatusGoingAway, text: "gateway shutting down", level: slog.LevelDebug},
	endTooSlow:        {label: "too_slow", code: StatusViewerTooSlow, text: "viewer too slow", level: slog.LevelInfo, cutOff: "slow"},
	endPingTimeout:    {label: "ping_timeout", level: slog.LevelInfo, cutOff: "ping_timeout"},
	endBadFrame:       {label: "bad_frame", code: websocket.StatusInvalidFramePayloadData, level: slog.LevelInfo},
	endTooLarge:       {label: "too_large", code: websocket.StatusMessageTooBig, level: slog.LevelInfo},
	endRate:           {label: "rate_exceeded", code: websocket.StatusPolicyViolation, text: "publish rate exceeded", level: slog.LevelInfo},
	endForbidden:      {label: "forbidden", code: websocket.StatusPolicyViolation, text: "publishing to this room needs a publish token", level: slog.LevelInfo},
	endTokenExpired:   {label: "token_expired", code: websocket.StatusPolicyViolation, text: "token expired", level: slog.LevelInfo},
	endViewerData:     {label: "viewer_sent_data", code: websocket.StatusPolicyViolation, text: "unexpected data message", level: slog.LevelInfo},
	endRoomLimit:      {label: "too_many_rooms", code: websocket.StatusTryAgainLater, text: "too many rooms on this gateway", level: slog.LevelWarn},
	endIdleRooms:      {label: "too_many_idle_rooms", code: websocket.StatusTryAgainLater, text: refusedIdleRoomLimit, level: slog.LevelInfo},
	endAddrIdleRooms:  {label: "idle_rooms_per_ip", code: websocket.StatusTryAgainLater, text: "too many rooms without a publisher from your address", level: slog.LevelInfo},
	endMessageTimeout: {label: "message_timeout", code: websocket.StatusPolicyViolation, text: "message not finished in time", level: slog.LevelInfo},
	endReadBudget:     {label: "read_budget", code: websocket.StatusTryAgainLater, text: "gateway busy: too many unfinished messages", level: slog.LevelWarn},
	endControlFlood:   {label: "control_flood", level: slog.LevelInfo},
	endLayerDown:      {label: "layer_down", code: websocket.StatusTryAgainLater, text: "channel layer down: reconnect", level: slog.LevelInfo},
	endControlRate:    {label: "control_rate_exceeded", code: websocket.StatusPolicyViolation, text: "control message rate exceeded", level: slog.LevelInfo},
	endProtocol:       {label: "protocol_error", level: slog.LevelInfo},
	endInternal:       {label: "internal", code: websocket.StatusInternalError, text: "internal error", level: slog.LevelWarn},
}

// CloseLabels returns the labels of every reason a connection ends, as
// framecast_connections_closed_total and the log name them.
func CloseLabels() []string {
	out := make([]string, 0, len(closeTable))
	for _, spec := range closeTable {
		out = append(out, spec.label)
	}
	return out
}

// handshake reports whether the gateway sends a close frame for r and waits
// for the peer's answer, rather than dropping the connection.
func (r endReason) handshake() bool {
	return closeTable[r].code != 0 && r != endTooSlow
}

// connEnd is an error that carries its end reason.
type connEnd struct {
	reason endReason
	err    error // detail; may be nil
}

func (e *connEnd) Error() string {
	if e.err == nil {
		return closeTable[e.reason].label
	}
	return closeTable[e.reason].label + ": " + e.err.Error()
}

func (e *connEnd) Unwrap() error { return e.err }

// ended returns an error that ends a connection for reason.
func ended(reason endReason, err error) error { return &connEnd{reason: reason, err: err} }

// closeText is the reason text of the close frame for e: the table's, or
// the error's own, cut to the 123 bytes a close frame holds.
func (e *connEnd) closeText() string {
	if t := closeTable[e.reason].text; t != "" {
		return t
	}
	msg := "closed"
	if e.err != nil {
		msg = e.err.Error()
	}
	if len(msg) > 123 {
		msg = msg[:120] + "..."
	}
	return msg
}

// classify returns why a connection whose reads ended with err ended, when
// nothing on the gateway's side recorded a reason first.
func classify(err error) *connEnd {
	var e *connEnd
	switch {
	case errors.As(err, &e):
		return e
	case err == nil:
		return &connEnd{reason: endNormal}
	case errors.Is(err, websocket.ErrMessageTooBig):
		return &connEnd{reason: endTooLarge, err: err}
	case errors.Is(err, socket.ErrControlFlood):
		return &connEnd{reason: endControlFlood, err: err}
	}
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusGoingAway, websocket.StatusNoStatusRcvd:
		return &connEnd{reason: endNormal, err: err}
	case -1:
	default:
		// The peer closed with another code: its business, not an error here.
		return &connEnd{reason: endNormal, err: err}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, context.Canceled) {
		return &connEnd{reason: endGone, err: err}
	}
	return &connEnd{reason: endProtocol, err: err}
}

// writeEnd returns why a write to a viewer failed with err, or nil when the
// connection was closed on the gateway's side (whoever closed it recorded
// its reason).
func writeEnd(err error) error {
	switch {
	case socket.Stalled(err):
		return ended(endTooSlow, err)
	case errors.Is(err, socket.ErrControlFlood):
		return ended(endControlFlood, err)
	case errors.Is(err, net.ErrClosed):
		return nil
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET):
		return ended(endGone, err)
	}
	return ended(endInternal, fmt.Errorf("failed to write: %w", err))
}
