package rooms

import (
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// RoomSummary describes one room across every replica: the sums of the
// replicas' local viewers and publishers.
type RoomSummary struct {
	Name       string    `json:"name"`
	Viewers    int       `json:"viewers"`
	Publishers int       `json:"publishers"`
	Live       bool      `json:"live"`
	LastFrame  time.Time `json:"last_frame,omitzero"`
	Replicas   int       `json:"replicas"` // replicas with local viewers or publishers of the room
	// Layers are the room's layers (see Hub.Layers); the gateway fills
	// them in.
	Layers []frames.LayerInfo `json:"layers,omitempty"`
}

// Summarize turns one replica's local rooms into summaries, for a gateway
// that runs alone: a room's layers count as the room (viewers summed, the
// publishers of its main layer). local is sorted by name, as Hub.Rooms
// returns it, and so is the result.
func Summarize(local []RoomInfo) []RoomSummary {
	out := make([]RoomSummary, 0, len(local))
	at := map[string]int{}
	for _, r := range local {
		i, ok := at[r.Room]
		if !ok {
			i = len(out)
			at[r.Room] = i
			out = append(out, RoomSummary{Name: r.Room, Replicas: 1})
		}
		s := &out[i]
		s.Viewers += r.Viewers
		if r.Layer == 0 && r.Codec == frames.CodecJPEG {
			s.Publishers = r.Publishers
		}
		s.Live = s.Live || r.Live
		if r.LastFrame.After(s.LastFrame) {
			s.LastFrame = r.LastFrame
		}
	}
	return out
}
