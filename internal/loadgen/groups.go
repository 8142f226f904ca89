package loadgen

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ViewerGroup is a subset of a run's reading viewers that connect
// differently from the rest: with an extra query string (a layer choice,
// say "width=320&v=2"), and optionally through a throttling proxy (a slow
// link). The run reports each group's figures apart (Report.Groups).
type ViewerGroup struct {
	// Name labels the group in the report. Default "g1", "g2", ... by
	// position. "rest" is taken: it names the viewers in no group.
	Name string `json:"name"`
	// Viewers is how many of Config.Viewers belong to the group. Groups
	// take the first viewers in order (group 1 viewers 0 to n1−1, group 2
	// the next n2, ...), so they are spread over the gateways and rooms
	// round-robin like the others; the viewers left over form "rest".
	Viewers int `json:"viewers"`
	// Query is appended to the viewers' role=view&format=... query, e.g.
	// "width=320&v=2". It must not set role or format.
	Query string `json:"query,omitempty"`
	// ThrottleKBps, when positive, connects each of the group's viewers
	// through a link proxy (internal/linkproxy) that limits gateway →
	// viewer to this many kB/s (1000 bytes) per connection. ws:// gateways
	// only.
	ThrottleKBps float64 `json:"throttle_kbps,omitempty"`
}

// restGroup names the viewers in no group.
const restGroup = "rest"

// ParseGroup parses a viewer group as cmd/loadgen's -group takes it:
//
//	NAME=N[@KBPS][:QUERY]
//
// for example tile=50:width=320&v=2 (50 viewers asking for a 320-pixel
// layer) or slow=5@600:width=1280&v=2 (5 viewers on links of 600 kB/s).
// It checks the syntax only; Config.Validate checks the values.
func ParseGroup(s string) (ViewerGroup, error) {
	bad := func(why string) (ViewerGroup, error) {
		return ViewerGroup{}, fmt.Errorf("loadgen: group %q: %s; want NAME=N[@KBPS][:QUERY], e.g. tile=50:width=320&v=2 or slow=5@600:width=1280&v=2", s, why)
	}
	name, rest, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return bad("no NAME=")
	}
	if strings.ContainsAny(name, ":@&") {
		return bad(fmt.Sprintf("name %q holds one of : @ &", name))
	}
	head, query, _ := strings.Cut(rest, ":")
	count, kbps, throttled := strings.Cut(head, "@")
	g := ViewerGroup{Name: name, Query: query}
	var err error
	if g.Viewers, err = strconv.Atoi(count); err != nil {
		return bad(fmt.Sprintf("viewer count %q is not a number", count))
	}
	if throttled {
		if g.ThrottleKBps, err = strconv.ParseFloat(kbps, 64); err != nil {
			return bad(fmt.Sprintf("throttle %q is not a number of kB/s", kbps))
		}
		if g.ThrottleKBps <= 0 {
			return bad("the throttle must be positive")
		}
	}
	return g, nil
}

// String formats g as ParseGroup reads it.
func (g ViewerGroup) String() string {
	s := g.Name + "=" + strconv.Itoa(g.Viewers)
	if g.ThrottleKBps > 0 {
		s += "@" + strconv.FormatFloat(g.ThrottleKBps, 'f', -1, 64)
	}
	if g.Query != "" {
		s += ":" + g.Query
	}
	return s
}

// validateGroups checks c.Groups (names defaulted by WithDefaults).
func (c *Config) validateGroups() error {
	if len(c.Groups) > 0 && c.Idle > 0 {
		return errors.New("loadgen: viewer groups apply to load runs, not idle mode")
	}
	total := 0
	seen := map[string]bool{}
	for i, g := range c.Groups {
		switch {
		case g.Viewers < 1:
			return fmt.Errorf("loadgen: group %d (%s): %d viewers, want at least 1", i+1, g.Name, g.Viewers)
		case g.Name == restGroup:
			return fmt.Errorf("loadgen: group %d: the name %q is kept for the viewers in no group", i+1, restGroup)
		case seen[g.Name]:
			return fmt.Errorf("loadgen: group %d: the name %q is used twice", i+1, g.Name)
		case g.ThrottleKBps < 0:
			return fmt.Errorf("loadgen: group %s: throttle %v kB/s must not be negative", g.Name, g.ThrottleKBps)
		case g.ThrottleKBps > 0 && hasTLS(c.Gateways):
			return fmt.Errorf("loadgen: group %s: the throttling proxy relays ws:// only", g.Name)
		}
		seen[g.Name] = true
		q, err := url.ParseQuery(g.Query)
		if err != nil {
			return fmt.Errorf("loadgen: group %s: query %q: %w", g.Name, g.Query, err)
		}
		for _, k := range []string{"role", "format"} {
			if q.Has(k) {
				return fmt.Errorf("loadgen: group %s: query %q sets %s, which the load generator sets (-format)", g.Name, g.Query, k)
			}
		}
		total += g.Viewers
	}
	if total > c.Viewers {
		return fmt.Errorf("loadgen: the groups hold %d viewers, more than the %d reading viewers", total, c.Viewers)
	}
	return nil
}

// groupOf returns, for each reading viewer, the index of its group in
// c.Groups, or len(c.Groups) for the rest.
func (c *Config) groupOf() []int {
	out := make([]int, c.Viewers)
	i := 0
	for gi, g := range c.Groups {
		for range g.Viewers {
			out[i] = gi
			i++
		}
	}
	for ; i < len(out); i++ {
		out[i] = len(c.Groups)
	}
	return out
}

// GroupReport is one viewer group's figures over the window (see
// Report.Groups). Per-viewer rates divide by the viewers that connected.
type GroupReport struct {
	Name         string  `json:"name"`
	Query        string  `json:"query,omitempty"`
	ThrottleKBps float64 `json:"throttle_kbps,omitempty"`
	// Viewers is the group's reading viewers that connected.
	Viewers       int     `json:"viewers"`
	Received      uint64  `json:"received"`
	Expected      uint64  `json:"expected"`
	DeliveryRatio float64 `json:"delivery_ratio"`
	// FPSPerViewer is window frames received per second per viewer.
	FPSPerViewer float64 `json:"fps_per_viewer"`
	// BytesPerViewerSec is the bytes of those frames' messages (layer
	// block included) per second per viewer.
	BytesPerViewerSec float64       `json:"bytes_per_viewer_per_s"`
	Latency           LatencyReport `json:"latency_ms"`
	MaxGapMS          float64       `json:"max_gap_ms"`
	// EndedOn counts the viewers by the layer of the last frame they
	// received: "0" to "3" from version-2 messages, "v1" for version-1
	// messages (which do not name their layer: the main one unless the
	// query chose another), "none" for a viewer that got no frame at all.
	EndedOn map[string]int `json:"ended_on"`
	// LayerChanges counts, over the group's viewers, consecutive frames
	// whose version-2 layer bytes differ (version-2 viewers only; frames
	// of the warmup included, so a move during it counts).
	LayerChanges uint64 `json:"layer_changes,omitempty"`
	// ControlMessages counts text control messages received on v=2
	// connections (layers, layer, error), and LayerMessages those of
	// them that announce a layer change ("type":"layer").
	ControlMessages uint64 `json:"control_messages,omitempty"`
	LayerMessages   uint64 `json:"layer_messages,omitempty"`
	ViewersLost     int    `json:"viewers_lost,omitempty"`
	BadMessages     uint64 `json:"bad_messages,omitempty"`
}

// groupReports gathers the viewers' figures by group. groups are the
// configured groups; gi[i] is viewers[i]'s group index (len(groups) for
// the rest); win is the window in seconds.
func groupReports(groups []ViewerGroup, viewers []*viewer, gi []int, win float64) []GroupReport {
	out := make([]GroupReport, len(groups)+1)
	hists := make([]Histogram, len(out))
	gaps := make([]time.Duration, len(out))
	var bytes = make([]uint64, len(out))
	for i, g := range groups {
		out[i] = GroupReport{Name: g.Name, Query: g.Query, ThrottleKBps: g.ThrottleKBps}
	}
	out[len(groups)].Name = restGroup
	for i := range out {
		out[i].EndedOn = map[string]int{}
	}
	for i, v := range viewers {
		g := &out[gi[i]]
		g.Viewers++
		g.Received += v.received.Load()
		g.Expected += v.room.sent.Load()
		hists[gi[i]].Merge(&v.hist)
		gaps[gi[i]] = max(gaps[gi[i]], v.maxGap)
		bytes[gi[i]] += v.bytes
		g.EndedOn[v.endedOn()]++
		g.LayerChanges += v.layerChanges
		g.ControlMessages += v.control
		g.LayerMessages += v.layerMsgs
		g.BadMessages += v.bad
		if v.lost {
			g.ViewersLost++
		}
	}
	var kept []GroupReport
	for i := range out {
		g := &out[i]
		if g.Viewers == 0 && i == len(groups) {
			continue // no rest
		}
		if g.Expected > 0 {
			g.DeliveryRatio = float64(g.Received) / float64(g.Expected)
		}
		if g.Viewers > 0 && win > 0 {
			g.FPSPerViewer = float64(g.Received) / win / float64(g.Viewers)
			g.BytesPerViewerSec = float64(bytes[i]) / win / float64(g.Viewers)
		}
		h := &hists[i]
		g.Latency = LatencyReport{
			P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)), P99: ms(h.Quantile(0.99)),
			Max: ms(h.Max()), Mean: ms(h.Mean()),
		}
		g.MaxGapMS = ms(gaps[i])
		kept = append(kept, *g)
	}
	return kept
}
