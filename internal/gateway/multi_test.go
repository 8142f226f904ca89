package gateway_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
)

// mrSecret signs the multi-room tests' tokens.
const mrSecret = "framecast-multi-room-secret-0123456789ab"

func mrToken(t testing.TB, room, role string) string {
	t.Helper()
	s, err := auth.NewHMACSigner([]byte(mrSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Mint(auth.Grant{Room: room, Role: role, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// mrGateway runs an in-process gateway where watching needs a token, with
// publishers on rooms ma and mb (3 layers each).
func mrGateway(t *testing.T, mutate func(*gateway.Config)) string {
	t.Helper()
	_, ts := startInProcess(t, func(c *gateway.Config) {
		c.Auth, c.JWTSecret = gateway.AuthAll, auth.Secret(mrSecret)
		if mutate != nil {
			mutate(c)
		}
	})
	pics := lyPictures(t, 2, nil)
	hdr := http.Header{"Authorization": {"Bearer " + mrToken(t, "*", auth.RolePublish)}}
	for _, room := range []string{"ma", "mb"} {
		lyPublishWith(t, wsURL(ts.URL, room, "role=publish"), hdr, room, 40*time.Millisecond, pics)
	}
	return ts.URL
}

func mrURL(base, query string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/ws/multi/?" + query
}

// mrCount reads n frames and counts them by room, failing on a frame of a
// room not in allowed.
func mrCount(t testing.TB, c *testenv.Client, n int, allowed ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	deadline := time.Now().Add(15 * time.Second)
	for seen := 0; seen < n; {
		m, err := lyRead(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if m.Frame == nil || m.Frame.IsOffline() {
			continue
		}
		ok := false
		for _, r := range allowed {
			ok = ok || m.Block.Room == r
		}
		if !ok {
			t.Fatalf("a frame of room %q; this connection carries %v", m.Block.Room, allowed)
		}
		got[m.Block.Room]++
		seen++
	}
	return got
}

// TestMultiRoomConnection: one connection carries two rooms, each frame
// named by its layer block, on the layer width picks; unsubscribe stops a
// room; a connection with no room stays open and subscribes later.
func TestMultiRoomConnection(t *testing.T) {
	base := mrGateway(t, nil)
	tok := mrToken(t, "m*", auth.RoleView)
	c := testenv.Dial(t, mrURL(base, "rooms=ma,mb&width=320&token="+tok), nil)
	deadline := time.Now().Add(15 * time.Second)
	counts := map[string]int{}
	for counts["ma"] < 3 || counts["mb"] < 3 {
		m, err := lyRead(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("frames so far %v: %v", counts, err)
		}
		if m.Frame == nil || m.Frame.IsOffline() {
			continue
		}
		if m.Block.Layer == 2 {
			if w := lyImageWidth(t, m.Frame.Payload); w != 320 {
				t.Fatalf("room %s: %d-pixel JPEG on layer 2", m.Block.Room, w)
			}
			counts[m.Block.Room]++
		}
	}
	// After unsubscribe, the answer to a later select comes after the
	// removal: no frame of mb may follow it.
	lySend(t, c, `{"type":"unsubscribe","room":"mb"}`)
	lySend(t, c, `{"type":"select","room":"ma","width":640}`)
	lyUntil(t, c, 10*time.Second, "the select's answer", func(m lyMsg) bool { return m.Type == "layer" && m.Room == "ma" && m.Layer == 1 })
	if got := mrCount(t, c, 20, "ma"); got["ma"] != 20 {
		t.Fatalf("frames %v", got)
	}

	empty := testenv.Dial(t, mrURL(base, "token="+tok), nil)
	time.Sleep(1500 * time.Millisecond) // an idle connection with no room is kept open: a negative, watched for a while
	lySend(t, empty, `{"type":"subscribe","room":"mb","layer":1}`)
	l := lyUntil(t, empty, 10*time.Second, "mb's layer", func(m lyMsg) bool { return m.Type == "layer" })
	if l.Room != "mb" || l.Layer != 1 || l.Width != 640 {
		t.Fatalf("layer message %+v", l)
	}
	mrCount(t, empty, 5, "mb")
}

// TestMultiRoomAuthorization: a view token for room ma on a connection
// asking for ma and mb gets ma, and mb refused, not the connection.
func TestMultiRoomAuthorization(t *testing.T) {
	base := mrGateway(t, nil)
	c := testenv.Dial(t, mrURL(base, "rooms=ma,mb&token="+mrToken(t, "ma", auth.RoleView)), nil)
	r := lyUntil(t, c, 10*time.Second, "mb refused", func(m lyMsg) bool { return m.Type == "refused" })
	if r.Room != "mb" || !strings.Contains(r.Reason, "does not grant") {
		t.Fatalf("refused message %+v", r)
	}
	mrCount(t, c, 20, "ma")
	lySend(t, c, `{"type":"subscribe","room":"mb"}`)
	r = lyUntil(t, c, 10*time.Second, "mb refused again", func(m lyMsg) bool { return m.Type == "refused" })
	if r.Room != "mb" {
		t.Fatalf("refused message %+v", r)
	}
	mrCount(t, c, 10, "ma")

	// No token, or a bad one: refused before the upgrade.
	for _, q := range []string{"rooms=ma", "rooms=ma&token=garbage"} {
		if _, status, body, _ := testenv.TryDial(t, mrURL(base, q), nil); status != http.StatusUnauthorized {
			t.Fatalf("%s: status %d (%s), want 401", q, status, body)
		}
	}
}

// TestControlMessageErrors: every control message the gateway does not
// understand is answered with an error that says why, and the connection
// carries on; a flood, a binary message and an oversized one close it.
func TestControlMessageErrors(t *testing.T) {
	base := mrGateway(t, func(c *gateway.Config) { c.MaxRoomsPerConn = 2 })
	tok := mrToken(t, "*", auth.RoleView)
	c := testenv.Dial(t, mrURL(base, "rooms=ma&token="+tok), nil)
	for _, tc := range []struct{ msg, want string }{
		{`not json`, "not a JSON control message"},
		{`{"type":"dance"}`, `unknown control message type "dance"`},
		{`{"type":"subscribe","room":"no-such/room"}`, "is not a room name"},
		{`{"type":"subscribe"}`, "subscribe needs a room"},
		{`{"type":"select","room":"zz","width":320}`, `room "zz" is not on this connection`},
		{`{"type":"select","width":320}`, "select needs a room"},
		{`{"type":"select","room":"ma","width":0}`, "width must be a whole number of pixels from 1 to 65535"},
		{`{"type":"select","room":"ma","layer":9}`, "layer must be a layer index from 0 to 3"},
		{`{"type":"select","room":"ma","layer":1,"width":3}`, "not both"},
		{`{"type":"unsubscribe","room":"zz"}`, `room "zz" is not on this connection`},
	} {
		lySend(t, c, tc.msg)
		m := lyUntil(t, c, 10*time.Second, "the error for "+tc.msg, func(m lyMsg) bool { return m.Type == "error" || m.Type == "refused" })
		if m.Type != "error" || !strings.Contains(m.Reason, tc.want) {
			t.Fatalf("%s: got %+v, want an error with %q", tc.msg, m, tc.want)
		}
	}
	mrCount(t, c, 5, "ma") // nothing else changed
	lySend(t, c, `{"type":"subscribe","room":"mb"}`)
	lySend(t, c, `{"type":"subscribe","room":"mc"}`)
	m := lyUntil(t, c, 10*time.Second, "mc refused", func(m lyMsg) bool { return m.Type == "refused" })
	if m.Room != "mc" || !strings.Contains(m.Reason, "too many rooms on this connection (limit 2)") {
		t.Fatalf("refused %+v", m)
	}

	// On a single-room v=2 connection, subscribing is an error too.
	one := testenv.Dial(t, wsURL(base, "ma", lyV2("token="+tok)), nil)
	lySend(t, one, `{"type":"subscribe","room":"mb"}`)
	m = lyUntil(t, one, 10*time.Second, "the error", func(m lyMsg) bool { return m.Type == "error" })
	if !strings.Contains(m.Reason, "needs a multi-room connection") {
		t.Fatalf("error %+v", m)
	}

	for _, tc := range []struct {
		name string
		send func(*testenv.Client) error
		code websocket.StatusCode
		want string
	}{
		{"flood", func(c *testenv.Client) error {
			for range 60 {
				if err := c.SendText(`{"type":"select","room":"ma","width":320}`); err != nil {
					return err
				}
			}
			return nil
		}, websocket.StatusPolicyViolation, "control message rate exceeded"},
		{"binary", func(c *testenv.Client) error { return c.SendBinary([]byte{1, 2, 3}) }, websocket.StatusPolicyViolation, "unexpected data message"},
		{"oversized", func(c *testenv.Client) error {
			return c.SendText(`{"type":"select","room":"` + strings.Repeat("a", 2000) + `"}`)
		}, websocket.StatusMessageTooBig, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, u := range []string{mrURL(base, "rooms=ma&token="+tok), wsURL(base, "ma", lyV2("token="+tok))} {
				c := testenv.Dial(t, u, nil)
				_ = tc.send(c)
				var err error
				for err == nil {
					_, err = lyRead(c, 10*time.Second)
				}
				var ce websocket.CloseError
				if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(ce.Reason, tc.want) {
					t.Fatalf("%s: ended with %v, want close %d %q", u, err, tc.code, tc.want)
				}
			}
		})
	}
	if v := testenv.Metric(t, base, `framecast_connections_closed_total{reason="control_rate_exceeded"}`); v != 2 {
		t.Fatalf("control_rate_exceeded closes %v, want 2", v)
	}
}
