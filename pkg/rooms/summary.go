package rooms

import "time"

// RoomSummary describes one room across every replica: the sums of the
// replicas' local viewers and publishers.
type RoomSummary struct {
	Name       string    `json:"name"`
	Viewers    int       `json:"viewers"`
	Publishers int       `json:"publishers"`
	Live       bool      `json:"live"`
	LastFrame  time.Time `json:"last_frame,omitzero"`
	Replicas   int       `json:"replicas"` // replicas with local viewers or publishers of the room
}

// Summarize turns one replica's local rooms into summaries, for a gateway
// that runs alone.
func Summarize(local []RoomInfo) []RoomSummary {
	out := make([]RoomSummary, 0, len(local))
	for _, r := range local {
		out = append(out, RoomSummary{Name: r.Name, Viewers: r.Viewers, Publishers: r.Publishers,
			Live: r.Live, LastFrame: r.LastFrame, Replicas: 1})
	}
	return out
}
