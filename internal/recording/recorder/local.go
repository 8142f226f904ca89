package recorder

import (
	"context"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// StreamLister lists a replica's local streams (*rooms.Hub satisfies it).
type StreamLister interface {
	Streams() []rooms.StreamInfo
}

// LocalRooms is the RoomSource of a replica alone (no Redis): the rooms
// with a publisher on this replica, in the order the hub lists them.
type LocalRooms struct{ Hub StreamLister }

var _ RoomSource = LocalRooms{}

// LiveRooms implements RoomSource.
func (l LocalRooms) LiveRooms(context.Context) ([]LiveRoom, error) {
	index := map[string]int{}
	var out []LiveRoom
	for _, st := range l.Hub.Streams() {
		if st.Publishers == 0 || st.Stream.Layer != 0 {
			continue
		}
		i, ok := index[st.Stream.Room]
		if !ok {
			i = len(out)
			index[st.Stream.Room] = i
			out = append(out, LiveRoom{Name: st.Stream.Room})
		}
		out[i].H264 = out[i].H264 || st.Stream.Codec == frames.CodecH264
	}
	return out, nil
}
