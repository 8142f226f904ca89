package rooms

import (
	"slices"
	"strings"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// RoomSummary describes one room across every replica: the sums of the
// replicas' local viewers and publishers.
type RoomSummary struct {
	Name       string    `json:"name"`
	Viewers    int       `json:"viewers"`
	Publishers int       `json:"publishers"` // of the main stream (JPEG layer 0), the room's camera connections
	Live       bool      `json:"live"`
	LastFrame  time.Time `json:"last_frame,omitzero"`
	Replicas   int       `json:"replicas"` // replicas with local viewers or publishers of the room
	// Layers are the room's layers (see Hub.AllLayers); the gateway fills
	// them in.
	Layers []frames.LayerInfo `json:"layers,omitempty"`
}

// Summarize turns the local streams of each replica (one slice per
// replica, as Hub.Streams lists them) into room summaries, sorted by name:
// a room's streams count as the room (viewers summed, the publishers of
// its main stream), and each replica once per room.
func Summarize(replicas ...[]StreamInfo) []RoomSummary {
	byRoom := map[string]*RoomSummary{}
	for _, local := range replicas {
		counted := map[string]bool{}
		for _, st := range local {
			name := st.Stream.Room
			s := byRoom[name]
			if s == nil {
				s = &RoomSummary{Name: name}
				byRoom[name] = s
			}
			s.Viewers += st.Viewers
			if st.Stream == (frames.Stream{Room: name}) {
				s.Publishers += st.Publishers
			}
			s.Live = s.Live || st.Live
			if st.LastFrame.After(s.LastFrame) {
				s.LastFrame = st.LastFrame
			}
			if !counted[name] {
				counted[name] = true
				s.Replicas++
			}
		}
	}
	out := make([]RoomSummary, 0, len(byRoom))
	for _, s := range byRoom {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b RoomSummary) int { return strings.Compare(a.Name, b.Name) })
	return out
}
