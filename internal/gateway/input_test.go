package gateway

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// TestHostileFramesThroughRealGateway sends every kind of bad publisher
// message to a real gateway process (GATEWAY_MAX_FRAME_BYTES=65536). Each
// closes its sender with 1007 (bad data) or 1009 (too big) and a reason
// that says what was wrong; after each, the room's viewer gets frames sent
// after the bad message, and the room's other publisher is still
// connected.
func TestHostileFramesThroughRealGateway(t *testing.T) {
	const maxFrame = 65536
	g := testenv.StartGateway(t, "GATEWAY_MAX_FRAME_BYTES=65536")
	viewer := testenv.Dial(t, secURL(g, "cam", "role=view&format=binary"), nil)
	good := secStartPublisher(t, testenv.Dial(t, secURL(g, "cam", "role=publish"), nil), 20*time.Millisecond)
	secWaitFrameAfter(t, viewer, 0)

	withHeader := func(kind byte, payload []byte) []byte {
		msg := frames.AppendBinary(nil, 7, time.Now(), payload)
		msg[1] = kind
		return msg
	}
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	dataURL := func(mime string, b []byte) []byte {
		return []byte("data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(b))
	}
	for _, tc := range []struct {
		name   string
		typ    websocket.MessageType
		msg    []byte
		code   websocket.StatusCode
		reason string
	}{
		{"PNG after a header", websocket.MessageBinary, withHeader(1, png), 1007, "not a JPEG"},
		{"bare PNG", websocket.MessageBinary, png, 1007, "malformed binary header"},
		{"JPEG without end marker", websocket.MessageBinary, []byte{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3}, 1007, "end-of-image"},
		{"JPEG without start marker", websocket.MessageBinary, withHeader(1, []byte{0, 0, 0, 0xFF, 0xD9}), 1007, "start-of-image"},
		{"empty binary message", websocket.MessageBinary, nil, 1007, "empty"},
		{"header version 9", websocket.MessageBinary, func() []byte { m := withHeader(1, secJPEG(t, 1, 0)); m[0] = 9; return m }(), 1007, "malformed binary header"},
		{"header length 99", websocket.MessageBinary, func() []byte { m := withHeader(1, secJPEG(t, 1, 0)); m[3] = 99; return m }(), 1007, "header length"},
		{"unknown kind", websocket.MessageBinary, withHeader(7, secJPEG(t, 1, 0)), 1007, "unknown kind"},
		{"truncated header", websocket.MessageBinary, []byte{1, 1, 0}, 1007, "malformed binary header"},
		{"offline event from a publisher", websocket.MessageBinary, withHeader(2, nil), 1007, "offline"},
		{"PNG data URL", websocket.MessageText, dataURL("image/png", png), 1007, "not image/jpeg"},
		{"SVG data URL", websocket.MessageText, dataURL("image/svg+xml", []byte("<svg onload=alert(1)>")), 1007, "not image/jpeg"},
		{"data URL of a non-JPEG", websocket.MessageText, dataURL("image/jpeg", png), 1007, "not a JPEG"},
		{"text that is not a data URL", websocket.MessageText, []byte("hello"), 1007, "malformed data URL"},
		{"data URL without base64", websocket.MessageText, []byte("data:image/jpeg,xyz"), 1007, "base64"},
		{"bad base64", websocket.MessageText, []byte("data:image/jpeg;base64,@@@@"), 1007, "base64"},
		{"JPEG over MAX_FRAME_BYTES", websocket.MessageBinary, withHeader(1, secJPEG(t, 1, maxFrame+5000)), 1009, "too large"},
		{"data URL over MAX_FRAME_BYTES", websocket.MessageText, dataURL("image/jpeg", secJPEG(t, 1, maxFrame+24)), 1009, "too large"},
		{"message over the read limit", websocket.MessageBinary, withHeader(1, secJPEG(t, 1, 2*maxFrame)), 1009, "read limited"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := testenv.Dial(t, secURL(g, "cam", "role=publish"), nil)
			testenv.WaitMetric(t, secWait, g.URL(), `framecast_connections{role="publish"}`, 2)
			werr := bad.Write(t.Context(), tc.typ, tc.msg)
			err := secCloseOf(bad, secWait)
			sent := good.Seq()
			if werr == nil || len(tc.msg) < 64<<10 {
				secExpectClose(t, err, tc.code, tc.reason)
			} // else the gateway closed while the message was still on its way: the client may see a reset
			testenv.WaitMetric(t, secWait, g.URL(), `framecast_connections{role="publish"}`, 1)
			// Frames sent after the bad message still reach the viewer, and
			// the good publisher is still connected.
			secWaitFrameAfter(t, viewer, sent)
			good.secAlive(t)
		})
	}
	if n := testenv.Metric(t, g.URL(), `framecast_rejected_total{reason="bad_frame"}`); n != 16 {
		t.Errorf("bad_frame rejections = %v, want 16", n)
	}
	if n := testenv.Metric(t, g.URL(), `framecast_rejected_total{reason="too_large"}`); n != 3 {
		t.Errorf("too_large rejections = %v, want 3", n)
	}
	if strings.Contains(g.Proc.Output(), "panic") {
		t.Fatalf("gateway panicked:\n%s", g.Proc.Output())
	}
}
