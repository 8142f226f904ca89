// Package loadgen is framecast's load generator: viewers spread over a list
// of gateways, publishers at a given rate and frame size, either viewer wire
// format, stalled viewers on demand, idle connections for memory
// measurements, and the loopback ceiling (a plain TCP fan-out between two
// processes) to compare delivered throughput with.
//
// The generator shares the machine with the gateways and Redis it measures,
// so its own hot path is kept cheap: viewers read with conn.Reader into a
// reused buffer, parse only the frame header (or the tail of a JSON
// message), and record latencies in fixed-size histograms; publishers send
// one prebuilt payload whose header is rewritten in place.
//
// cmd/loadgen is the command-line front end; internal/loadgen/benchdriver
// runs the published scenarios and writes docs/benchmarks.md.
package loadgen

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// Viewer wire formats, as the gateway's format query parameter names them.
const (
	FormatBinary = "binary"
	FormatJSON   = "json"
)

// Config describes one load-generator run. Zero fields take the defaults
// documented on each; Validate checks the result.
type Config struct {
	// Gateways are the base WebSocket URLs of the gateways
	// (ws://host:port; http:// is accepted too). Viewers are spread over
	// them round-robin. Required.
	Gateways []string
	// PublishTo is the base URL publishers connect to. Default Gateways[0].
	PublishTo string
	// Room is the room name; with several publishers, publisher i (from 1)
	// uses Room_i. Default "bench".
	Room string
	// Viewers is the number of reading viewers, spread over the rooms
	// round-robin.
	Viewers int
	// Stalled is the number of extra viewers that connect and never read:
	// they test that a stuck viewer costs the others nothing.
	Stalled int
	// FPS is each publisher's frame rate; 0 or less sends as fast as the
	// connection takes frames. Default 30 (set by the command line; the zero
	// value here means unthrottled).
	FPS float64
	// Size is the JPEG payload size in bytes. Default 50000. With Layers
	// it is Layers[0].Size.
	Size int
	// Layers, when set, makes each publisher send every picture as one
	// version-2 message per layer (docs/protocol.md, "Layers"), as a sender
	// with SENDER_LAYERS does: layer i with its own advertised size and
	// payload bytes, all with the picture's sequence number and capture
	// time. Viewers receive the main layer (Layers[0]). At most
	// frames.MaxLayers. Default none: one version-1 message per picture.
	Layers []Layer
	// H264, when set, is an Annex-B H.264 file (as testclip.MakeH264Clip writes
	// it: an access unit delimiter before every picture, SPS and PPS
	// before every keyframe) that each publisher plays, looping, as its
	// room's H.264 layer 0: version-2 messages, a configuration before
	// every keyframe, a keyframe request from the gateway answered by
	// jumping to the clip's next keyframe (docs/protocol.md, "Compressed
	// video"). Viewers get it only if they ask (a group's
	// "v=2&codec=h264"). Replaces Size and Layers. Default none.
	H264 string
	// LateJoins, when positive, measures joining a live room on a replica
	// with no viewer of it, this many times, one after another, during
	// the window: a viewer dials LateJoinTo (with "v=2&codec=h264" when
	// H264 is set), reads until it has its first picture (a keyframe for
	// H.264) and has caught up with the picture the publisher had sent
	// when it dialled, then leaves; the next join waits until the
	// replica has unsubscribed (with RedisAddr: PUBSUB NUMSUB of the
	// room's channel is back to its count before the first join, which
	// the run's viewers on other replicas make) and a pseudo-random pause
	// below LateJoinPause,
	// so joins fall at every point of a group of pictures. The window
	// ends when the joins are done (Duration is then a cap). Publishers
	// must be 1. Default 0: none.
	LateJoins int
	// LateJoinTo is the replica late joiners dial. Default the last of
	// Gateways. It need not be one of Gateways: with Viewers on other
	// replicas, the joins happen under their load, the joiners' replica
	// still having no viewer of the room.
	LateJoinTo string
	// LateJoinPause bounds the pause before each join. Default 2s.
	LateJoinPause time.Duration
	// Seeks, when positive, measures playback on the same connection
	// (docs/protocol.md, "Playback"), this many times, one after another,
	// during the window: one version-2 viewer of the room on Gateways[0]
	// (with codec=h264 when H264 is set) sends {"type":"seek"} to a
	// pseudo-random time between SeekFrom and SeekTo (a fixed seed) and
	// reads until the recording's pictures through that time have
	// arrived, plays on for SeekHold, sends {"type":"live"} and reads
	// until it has the picture the publisher had last sent, and plays on
	// for SeekHold. The gateway's framecast_seek_first_frame_seconds is
	// scraped around each move. The gateway must play back from a store
	// holding the room's footage over that range (GATEWAY_RECORD_STORE).
	// The window ends when the moves are done (Duration is then a cap).
	// Publishers must be 1. Default 0: none.
	Seeks int
	// SeekFrom and SeekTo bound the times sought. Required with Seeks.
	SeekFrom, SeekTo time.Time
	// SeekHold is how long the viewer plays after each move before the
	// next. Default 300ms.
	SeekHold time.Duration
	// Groups give subsets of the reading viewers an extra query string
	// and, optionally, a throttled link (see ViewerGroup); the report has
	// figures per group. Default none: every viewer connects alike and the
	// viewers' hot path is as without groups.
	Groups []ViewerGroup
	// Format is the viewers' wire format, FormatBinary or FormatJSON.
	// Default binary.
	Format string
	// Warmup is how long publishers send before measuring starts; frames
	// sent during it are not counted anywhere. Default 2s; negative means
	// none.
	Warmup time.Duration
	// Duration is the measured window. Default 10s. In idle mode it is how
	// long the connections are held after the last one connected.
	Duration time.Duration
	// Drain bounds the wait for frames still in flight when the window
	// ends. Default 2s.
	Drain time.Duration
	// Publishers is the number of publishers, one room each. Default 1,
	// or one per RoomViewers entry.
	Publishers int
	// RoomViewers, when set, gives each room's reading viewers (room i,
	// from 0, being publisher i's): the viewers fill the rooms in order,
	// room 0's first, so Groups then take whole rooms from the first on.
	// Viewers must be their sum (default: it is). Default none: viewer i
	// is in room i mod Publishers.
	RoomViewers []int
	// SpreadPublishers connects publisher i to Gateways[i mod
	// len(Gateways)] instead of PublishTo, as cameras spread over
	// replicas by a load balancer would.
	SpreadPublishers bool
	// ConnectRate caps new viewer connections per second; 0 means as fast
	// as ConnectConcurrency dialers go.
	ConnectRate float64
	// ConnectConcurrency is the number of concurrent dialers. Default 32.
	ConnectConcurrency int
	// Idle, when positive, switches to idle mode: connect Idle viewers that
	// hold their connections (answering pings) with no publisher, report
	// the connect rate and, with WatchPIDs, the gateways' memory per viewer.
	Idle int
	// Ceiling also measures the loopback ceiling after the load (see
	// MeasureCeiling): a child process writes frames of the viewers'
	// message size to as many TCP connections as there are reading
	// viewers, from one thread per core, and this process reads them.
	Ceiling bool
	// CeilingDuration is the ceiling's measured window. Default 3s.
	CeilingDuration time.Duration
	// CeilingWriter is the command that runs the ceiling's writing side;
	// it gets its parameters from the environment (see
	// ServeCeilingWriter). Default: this executable with -ceiling-writer.
	CeilingWriter []string
	// WatchPIDs are gateway process IDs whose CPU time and resident memory
	// are read from /proc around the measured window.
	WatchPIDs []int
	// RedisAddr (host:port), if set, is the Redis whose INFO stats
	// total_net_output_bytes is read around the measured window.
	RedisAddr string
	// Log receives progress lines. Default: discarded.
	Log io.Writer
}

// Layer is one layer a publisher sends: its advertised width and height
// and the size of its JPEG-shaped payload in bytes.
type Layer struct {
	Width  int `json:"width"`
	Height int `json:"height"`
	Size   int `json:"size"`
}

// ParseLayers parses a layer list of the form WxH:BYTES,... (for example
// 1280x720:60000,640x360:20000,320x180:6000), as cmd/loadgen's -layers
// takes it. It checks the syntax only; Validate checks the values.
func ParseLayers(s string) ([]Layer, error) {
	if s == "" {
		return nil, nil
	}
	var out []Layer
	for i, item := range strings.Split(s, ",") {
		var l Layer
		var rest string
		if n, err := fmt.Sscanf(strings.TrimSpace(item), "%dx%d:%d%s", &l.Width, &l.Height, &l.Size, &rest); n != 3 || (err != nil && err != io.EOF && err != io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("loadgen: layer %d %q: want WIDTHxHEIGHT:BYTES, e.g. 640x360:20000", i, item)
		}
		out = append(out, l)
	}
	return out, nil
}

// WithDefaults returns c with the documented defaults filled in.
func (c Config) WithDefaults() Config {
	if c.PublishTo == "" && len(c.Gateways) > 0 {
		c.PublishTo = c.Gateways[0]
	}
	if c.Room == "" {
		c.Room = "bench"
	}
	if len(c.Layers) > 0 {
		c.Size = c.Layers[0].Size
	}
	if c.Size == 0 {
		c.Size = 50000
	}
	if c.LateJoins > 0 && c.LateJoinTo == "" && len(c.Gateways) > 0 {
		c.LateJoinTo = c.Gateways[len(c.Gateways)-1]
	}
	if c.LateJoinPause == 0 {
		c.LateJoinPause = 2 * time.Second
	}
	if c.SeekHold == 0 {
		c.SeekHold = 300 * time.Millisecond
	}
	if c.Format == "" {
		c.Format = FormatBinary
	}
	if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Drain == 0 {
		c.Drain = 2 * time.Second
	}
	if c.Publishers == 0 {
		c.Publishers = max(len(c.RoomViewers), 1)
	}
	if len(c.RoomViewers) > 0 && c.Viewers == 0 {
		for _, n := range c.RoomViewers {
			c.Viewers += n
		}
	}
	if c.ConnectConcurrency == 0 {
		c.ConnectConcurrency = 32
	}
	if c.CeilingDuration == 0 {
		c.CeilingDuration = 3 * time.Second
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if len(c.Groups) > 0 {
		c.Groups = append([]ViewerGroup(nil), c.Groups...)
		for i := range c.Groups {
			if c.Groups[i].Name == "" {
				c.Groups[i].Name = fmt.Sprintf("g%d", i+1)
			}
		}
	}
	return c
}

// Validate checks c (after WithDefaults) and names the first bad setting.
func (c *Config) Validate() error {
	if len(c.Gateways) == 0 {
		return errors.New("loadgen: no gateways given")
	}
	for i, g := range c.Gateways {
		u, err := baseURL(g)
		if err != nil {
			return fmt.Errorf("loadgen: gateway %q: %w", g, err)
		}
		c.Gateways[i] = u
	}
	u, err := baseURL(c.PublishTo)
	if err != nil {
		return fmt.Errorf("loadgen: publish-to %q: %w", c.PublishTo, err)
	}
	c.PublishTo = u
	switch {
	case c.Format != FormatBinary && c.Format != FormatJSON:
		return fmt.Errorf("loadgen: format %q is not %q or %q", c.Format, FormatBinary, FormatJSON)
	case c.Size < MinPayloadSize:
		return fmt.Errorf("loadgen: size %d is below %d bytes", c.Size, MinPayloadSize)
	case c.Viewers < 0 || c.Stalled < 0 || c.Idle < 0:
		return errors.New("loadgen: viewer counts must not be negative")
	case c.Idle == 0 && c.Publishers < 1:
		return errors.New("loadgen: at least one publisher is needed")
	case c.Duration <= 0 || c.Drain < 0 || c.CeilingDuration <= 0:
		return errors.New("loadgen: durations must be positive")
	case c.ConnectRate < 0 || c.ConnectConcurrency < 1:
		return errors.New("loadgen: connect rate must not be negative and concurrency at least 1")
	case c.Ceiling && c.Viewers == 0:
		return errors.New("loadgen: the ceiling needs at least one reading viewer to match")
	case len(c.Layers) > frames.MaxLayers:
		return fmt.Errorf("loadgen: %d layers: a room has at most %d", len(c.Layers), frames.MaxLayers)
	}
	switch {
	case c.H264 != "" && len(c.Layers) > 0:
		return errors.New("loadgen: an H.264 clip and JPEG layers together are not supported: give -h264 or -layers")
	case c.H264 != "" && c.Format != FormatBinary:
		return fmt.Errorf("loadgen: H.264 viewers need format %q, not %q", FormatBinary, c.Format)
	case c.LateJoins < 0 || c.LateJoinPause < 0:
		return errors.New("loadgen: late joins and their pause must not be negative")
	case c.LateJoins > 0 && c.Publishers != 1:
		return fmt.Errorf("loadgen: late joins need exactly one publisher, not %d", c.Publishers)
	case c.LateJoins > 0 && c.Idle > 0:
		return errors.New("loadgen: late joins apply to load runs, not idle mode")
	case c.Seeks < 0 || c.SeekHold < 0:
		return errors.New("loadgen: seeks and their hold must not be negative")
	case c.Seeks > 0 && (c.Publishers != 1 || c.Idle > 0 || c.LateJoins > 0):
		return errors.New("loadgen: seeks need exactly one publisher, a load run and no late joins")
	case c.Seeks > 0 && (c.SeekFrom.IsZero() || !c.SeekTo.After(c.SeekFrom)):
		return fmt.Errorf("loadgen: seeks need a range of recorded times, from %v to %v", c.SeekFrom, c.SeekTo)
	}
	if c.LateJoins > 0 {
		u, err := baseURL(c.LateJoinTo)
		if err != nil {
			return fmt.Errorf("loadgen: late-join-to %q: %w", c.LateJoinTo, err)
		}
		c.LateJoinTo = u
	}
	if err := c.validateRooms(); err != nil {
		return err
	}
	if err := c.validateGroups(); err != nil {
		return err
	}
	for i, l := range c.Layers {
		switch {
		case l.Width < 1 || l.Width > 65535 || l.Height < 1 || l.Height > 65535:
			return fmt.Errorf("loadgen: layer %d: size %dx%d must be 1-65535 each way", i, l.Width, l.Height)
		case l.Size < MinSizedPayload:
			return fmt.Errorf("loadgen: layer %d: payload of %d bytes is below %d", i, l.Size, MinSizedPayload)
		}
	}
	return nil
}

// baseURL normalizes a gateway address to ws://host:port with no trailing
// slash.
func baseURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "ws://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	switch u.Scheme {
	case "ws", "wss":
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("scheme %q is not ws, wss, http or https", u.Scheme)
	}
	if u.Host == "" {
		return "", errors.New("no host")
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

func hasTLS(gateways []string) bool {
	for _, g := range gateways {
		if strings.HasPrefix(g, "wss://") {
			return true
		}
	}
	return false
}

// httpURL turns a ws base URL into the matching http one.
func httpURL(base string) string {
	if s, ok := strings.CutPrefix(base, "wss://"); ok {
		return "https://" + s
	}
	return "http://" + strings.TrimPrefix(base, "ws://")
}

// roomName returns the room of publisher i (0-based).
func (c *Config) roomName(i int) string {
	if c.Publishers <= 1 {
		return c.Room
	}
	return fmt.Sprintf("%s_%d", c.Room, i+1)
}
