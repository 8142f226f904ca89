package gateway

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// What a viewer asks for, read in one place: the query of every route that
// serves a room's frames (/ws/video/{room}/, /ws/multi/, stream.mjpg,
// snapshot.jpg) and the control messages of v=2 and multi-room
// connections go through the parsers of this file (docs/protocol.md,
// "Choosing a layer").

// Wire formats of WebSocket viewers, from the format query parameter.
const (
	formatJSON   = "json"   // the seed's {"message": data URL}, the default
	formatBinary = "binary" // header + JPEG, see docs/protocol.md
	formatV2     = "v2"     // version-2 binary messages: labels framecast_frames_out_total
)

// layerAsk is a viewer's layer choice for one room: a largest width, or a
// layer index, or neither (the main layer, never moved); in a codec.
type layerAsk struct {
	width int // > 0: the smallest layer at least this wide
	layer int // with set and width == 0: this layer, or the last one
	set   bool
	codec frames.Codec
}

// newLayerAsk validates a layer choice, whether it came from a query or a
// control message: width or layer (at most one), a codec name.
func newLayerAsk(width, layer *int, codec string) (layerAsk, error) {
	var a layerAsk
	switch {
	case width != nil && layer != nil:
		return a, fmt.Errorf("give width or layer, not both")
	case width != nil:
		if *width < 1 || *width > maxRequestWidth {
			return a, fmt.Errorf("width must be a whole number of pixels from 1 to %d, not %d", maxRequestWidth, *width)
		}
		a.width, a.set = *width, true
	case layer != nil:
		if *layer < 0 || *layer >= frames.MaxLayers {
			return a, fmt.Errorf("layer must be a layer index from 0 to %d, not %d", frames.MaxLayers-1, *layer)
		}
		a.layer, a.set = *layer, true
	}
	var err error
	a.codec, err = frames.ParseCodec(codec)
	return a, err
}

// maxRequestWidth is the largest width a viewer may ask for: layer sizes
// are 16-bit on the wire.
const maxRequestWidth = 65535

// stream is the stream of layer of room in ask's codec.
func (a layerAsk) stream(room string, layer int) frames.Stream {
	return frames.Stream{Room: room, Layer: layer, Codec: a.codec}
}

// resolve returns the index of the layer ask picks among layers (ordered
// by index).
func (a layerAsk) resolve(layers []frames.LayerInfo) int {
	switch {
	case !a.set || len(layers) == 0:
		return 0
	case a.width > 0:
		return rooms.PickLayer(layers, a.width)
	}
	last := layers[0].Index
	for _, l := range layers {
		if l.Index == a.layer {
			return a.layer
		}
		last = max(last, l.Index)
	}
	return last
}

// viewKind is the route a view query came to.
type viewKind int

const (
	viewSocket   viewKind = iota // /ws/video/{room}/: any role
	viewMulti                    // /ws/multi/: a multi-room viewer
	viewMJPEG                    // /video/{room}/stream.mjpg
	viewSnapshot                 // /video/{room}/snapshot.jpg
)

// viewOpts is what a connection asked for in its query.
type viewOpts struct {
	role   string    // rolePublish, roleView, roleSeed (WebSockets), roleMJPEG
	format string    // formatJSON or formatBinary (WebSockets)
	ask    layerAsk  // the layer choice for its room, or for every room of a multi-room connection
	at     time.Time // ?at=: play the recording from then instead of live (zero: live)
	v2     bool      // frames as version-2 messages; control messages both ways
	adapt  bool      // adaptation may move it (adapt=0 clears it)
	multi  bool      // a multi-room connection (/ws/multi/)
	rooms  []string  // multi: the rooms of the rooms parameter
}

// control reports whether the connection reads control messages.
func (o viewOpts) control() bool { return o.v2 || o.multi }

// parseView reads the query of a request of kind. maxRooms bounds the
// rooms parameter of a multi-room connection. An error is worth a 400.
func parseView(q url.Values, kind viewKind, maxRooms int) (viewOpts, error) {
	o := viewOpts{role: roleView, format: formatBinary, adapt: true}
	str := map[string]string{}
	for _, name := range []string{"role", "format", "v", "width", "layer", "adapt", "codec", "at"} {
		switch vals := q[name]; {
		case len(vals) > 1:
			return o, fmt.Errorf("%s is given %d times; give it once", name, len(vals))
		case len(vals) == 1:
			str[name] = vals[0]
		}
	}
	ask, err := askFromQuery(q.Has("width"), str["width"], q.Has("layer"), str["layer"], str["codec"])
	if err != nil {
		return o, err
	}
	o.ask = ask
	switch str["adapt"] {
	case "", "1":
	case "0":
		o.adapt = false
	default:
		return o, fmt.Errorf("adapt must be 0 or 1, not %q", str["adapt"])
	}
	if q.Has("at") {
		if o.at, err = parseTime("at", str["at"], time.Now()); err != nil {
			return o, err
		}
	}
	switch kind {
	case viewMJPEG:
		o.role = roleMJPEG
		fallthrough
	case viewSnapshot:
		if o.ask.codec != frames.CodecJPEG {
			return o, fmt.Errorf("codec must be jpeg: %s serves JPEG", map[viewKind]string{viewMJPEG: "an MJPEG stream", viewSnapshot: "a snapshot"}[kind])
		}
		return o, nil
	case viewMulti:
		return o, parseMulti(q, str, &o, maxRooms)
	}
	switch str["role"] {
	case "":
		o.role = roleSeed
	case rolePublish, roleView:
		o.role = str["role"]
	default:
		return o, fmt.Errorf("role must be %q or %q (or absent)", rolePublish, roleView)
	}
	switch str["format"] {
	case "", formatJSON:
		o.format = formatJSON
	case formatBinary:
	default:
		return o, fmt.Errorf("format must be %q or %q", formatJSON, formatBinary)
	}
	switch str["v"] {
	case "", "1":
	case "2":
		if o.role != roleView || o.format != formatBinary {
			return o, fmt.Errorf("v=2 needs role=view and format=binary")
		}
		o.v2 = true
	default:
		return o, fmt.Errorf("v must be 1 or 2, not %q", str["v"])
	}
	if o.ask.codec != frames.CodecJPEG && !o.v2 {
		return o, fmt.Errorf("codec=h264 needs v=2 (role=view&format=binary&v=2): only version-2 clients can decode it")
	}
	if o.role == rolePublish && (o.ask.set || q.Has("adapt")) {
		return o, fmt.Errorf("width, layer and adapt are for viewers; publishers send layers as version-2 messages")
	}
	return o, nil
}

// parseMulti reads what only a multi-room connection's query has.
func parseMulti(q url.Values, str map[string]string, o *viewOpts, maxRooms int) error {
	if r := str["role"]; r != "" && r != roleView {
		return fmt.Errorf("a multi-room connection is a viewer: role must be view (or absent)")
	}
	if f := str["format"]; f != "" && f != formatBinary {
		return fmt.Errorf("a multi-room connection receives version-2 binary messages: format must be binary (or absent)")
	}
	if v := str["v"]; v != "" && v != "2" {
		return fmt.Errorf("a multi-room connection is v=2: v must be 2 (or absent)")
	}
	o.v2, o.multi = true, true
	var err error
	o.rooms, err = parseRooms(q, maxRooms, "GATEWAY_MAX_ROOMS_PER_CONN lets a connection carry")
	return err
}

// askFromQuery is newLayerAsk for query strings: a width or layer given,
// even empty, must be a number.
func askFromQuery(hasWidth bool, width string, hasLayer bool, layer, codec string) (layerAsk, error) {
	var w, l *int
	if hasWidth {
		n, err := strconv.Atoi(width)
		if err != nil {
			return layerAsk{}, fmt.Errorf("width must be a whole number of pixels from 1 to %d, not %q", maxRequestWidth, width)
		}
		w = &n
	}
	if hasLayer {
		n, err := strconv.Atoi(layer)
		if err != nil {
			return layerAsk{}, fmt.Errorf("layer must be a layer index from 0 to %d, not %q", frames.MaxLayers-1, layer)
		}
		l = &n
	}
	return newLayerAsk(w, l, codec)
}

// parseRooms reads the rooms query parameter (of /ws/multi/ and /grid/):
// the rooms named, comma-separated, in order, without duplicates or empty
// items; nil when it is absent. A bad name or more than limit rooms is an
// error (what names the limit in its text); the name is not echoed, so an
// answer stays inert whatever was sent.
func parseRooms(q url.Values, limit int, what string) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	item := 0
	for _, v := range q["rooms"] {
		for _, name := range strings.Split(v, ",") {
			item++
			name = strings.TrimSpace(name)
			switch {
			case name == "" || seen[name]:
				continue
			case !frames.ValidRoom(name):
				return nil, fmt.Errorf("rooms: item %d is not a room name: names are 1 to 64 characters from A-Z, a-z, 0-9 and _", item)
			}
			seen[name] = true
			out = append(out, name)
		}
	}
	if len(out) > limit {
		return nil, fmt.Errorf("rooms names %d rooms; %s at most %d", len(out), what, limit)
	}
	return out, nil
}

// parseTime reads a time of a query or control message named name: RFC
// 3339 ("2026-12-07T14:03:00Z", fractions allowed), Unix milliseconds
// ("1796652180000"), or relative to now ("-30s", "-2h15m"). A time in the
// future is an error: there is no recording of it yet (see parseRange for
// the ends of a range, which may be).
func parseTime(name, s string, now time.Time) (time.Time, error) {
	t, err := parseAnyTime(name, s, now)
	if err == nil && t.After(now.Add(time.Second)) {
		return t, fmt.Errorf("%s %s is in the future: nothing is recorded yet", name, t.UTC().Format(time.RFC3339Nano))
	}
	return t, err
}

// parseAnyTime is parseTime allowing the future: the end of a range of the
// span list may be later than now.
func parseAnyTime(name, s string, now time.Time) (time.Time, error) {
	var t time.Time
	switch {
	case s == "":
		return t, fmt.Errorf("%s is empty: give an RFC 3339 time, Unix milliseconds or a relative time such as -30s", name)
	case s[0] == '-':
		d, err := time.ParseDuration(s)
		if err != nil {
			return t, fmt.Errorf("%s %q is not a relative time such as -30s or -1h30m", name, s)
		}
		t = now.Add(d)
	case strings.Trim(s, "0123456789") == "":
		ms, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return t, fmt.Errorf("%s %q is not Unix milliseconds", name, s)
		}
		t = time.UnixMilli(ms)
	default:
		var err error
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return t, fmt.Errorf("%s %q is not an RFC 3339 time (2026-12-07T14:03:00Z), Unix milliseconds or a relative time (-30s)", name, s)
		}
	}
	return t, nil
}
