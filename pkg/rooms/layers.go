package rooms

import (
	"context"
	"slices"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// A room's layers travel as streams: layer 0, the main layer, under the
// room's own name, and layer i > 0 under "<room>@<i>". The channel layer
// sees streams as rooms (so Redis carries them on video_<room>@<i>, and a
// replica subscribes to a layer only while a local viewer receives it);
// ValidName refuses "@", so no client names a stream by accident.

// Stream returns the name of room's layer: room itself for layer 0.
func Stream(room string, layer int) string { return frames.Stream{Room: room, Layer: layer}.String() }

// SplitStream is Stream's inverse: the room and layer a stream carries.
func SplitStream(stream string) (room string, layer int) {
	room, layer, _ = ParseStream(stream)
	return room, layer
}

// wire is f's message on the channel layer for this stream: version 1 on
// the main JPEG layer (what older replicas read), version 2, naming the
// room and the layer, on the others and on every H.264 stream.
func (r *Room) wire(f *frames.Frame) []byte {
	if r.layer == 0 && r.codec == frames.CodecJPEG {
		return f.Binary()
	}
	return f.BinaryV2()
}

// LayerCatalog is where a replica learns the layers of rooms published on
// other replicas (Options.Catalog; redislayer.RedisFrameCache implements
// it). Its methods must be safe for concurrent use.
type LayerCatalog interface {
	// Layers returns room's layers, ordered by index, or none when no
	// replica publishes it. It must return within ctx's deadline.
	Layers(ctx context.Context, room string) ([]frames.LayerInfo, error)
}

// LocalLayers returns the layers of room that this replica's publishers
// send, ordered by index, with each layer's size as its newest frame
// gives it; none if the room has no local publisher.
func (h *Hub) LocalLayers(room string) []frames.LayerInfo {
	var out []frames.LayerInfo
	for c := range 2 {
		for i := range frames.MaxLayers {
			stream := Stream(room, i)
			if c == 1 {
				stream = H264Stream(room, i)
			}
			if info, ok := h.localLayer(stream, i); ok {
				out = append(out, info)
			}
		}
	}
	return out
}

// localLayer describes stream, layer i of its room, if a local publisher
// sends it.
func (h *Hub) localLayer(stream string, i int) (frames.LayerInfo, bool) {
	{
		h.mu.RLock()
		r := h.rooms[stream]
		live := r != nil && r.publishers > 0
		h.mu.RUnlock()
		if !live {
			return frames.LayerInfo{}, false
		}
		f := r.last.Load()
		if f == nil || !r.live.Load() {
			return frames.LayerInfo{}, false
		}
		info := frames.LayerInfo{Index: i, Width: f.Width, Height: f.Height, Codec: r.codec}
		if info.Width == 0 && r.codec == frames.CodecJPEG {
			info.Width, info.Height, _ = frames.JPEGSize(f.Payload)
		}
		return info, true
	}
}

// defaultCatalogTimeout bounds a catalog lookup when Options.CacheTimeout
// is zero.
const defaultCatalogTimeout = 200 * time.Millisecond

// Layers returns room's JPEG layers, ordered by index: what this
// replica's publishers send if it has any, else what Options.Catalog
// says, else the main layer alone (its size from the newest frame seen
// here, if any). The answer always holds at least the main layer.
func (h *Hub) Layers(ctx context.Context, room string) []frames.LayerInfo {
	return h.CodecLayers(ctx, room, frames.CodecJPEG)
}

// CodecLayers is Layers for the layers of one codec ("" for JPEG,
// CodecH264). For H.264 the answer may be empty: the room sends none.
func (h *Hub) CodecLayers(ctx context.Context, room string, codec frames.Codec) []frames.LayerInfo {
	l := ofCodec(h.AllLayers(ctx, room), codec)
	if len(l) > 0 || codec != frames.CodecJPEG {
		return l
	}
	main := frames.LayerInfo{}
	if f := h.Latest(room); f != nil {
		main.Width, main.Height, _ = frames.JPEGSize(f.Payload)
	}
	return []frames.LayerInfo{main}
}

// ofCodec returns the layers of l of one codec.
func ofCodec(l []frames.LayerInfo, codec frames.Codec) []frames.LayerInfo {
	var out []frames.LayerInfo
	for _, x := range l {
		if x.Codec == codec {
			out = append(out, x)
		}
	}
	return out
}

// AllLayers returns room's layers of every codec, JPEG first, each codec's
// ordered by index, as LocalLayers or else Options.Catalog knows them; nil
// if neither knows the room.
func (h *Hub) AllLayers(ctx context.Context, room string) []frames.LayerInfo {
	if l := h.LocalLayers(room); len(l) > 0 {
		return l
	}
	if h.opts.Catalog != nil {
		timeout := h.opts.CacheTimeout
		if timeout <= 0 {
			timeout = defaultCatalogTimeout
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		l, err := h.opts.Catalog.Layers(cctx, room)
		cancel()
		if err != nil {
			h.log.Debug("no layer list", "room", room, "err", err)
		}
		return l
	}
	return nil
}

// PickLayer returns the index of the layer a viewer asking for width
// pixels gets: the smallest layer at least width wide, or the widest if
// none is. Layers of unknown width (0) are never picked over known ones.
// width <= 0 asks for the main layer.
func PickLayer(layers []frames.LayerInfo, width int) int {
	if width <= 0 || len(layers) == 0 {
		return 0
	}
	best, widest := -1, -1
	for i, l := range layers {
		if l.Width >= width && (best < 0 || l.Width < layers[best].Width) {
			best = i
		}
		if widest < 0 || l.Width > layers[widest].Width {
			widest = i
		}
	}
	if best < 0 {
		best = widest
	}
	return layers[best].Index
}

// BySize returns layers ordered from the widest to the narrowest: the
// order adaptation moves a viewer down in.
func BySize(layers []frames.LayerInfo) []frames.LayerInfo {
	out := slices.Clone(layers)
	slices.SortStableFunc(out, func(a, b frames.LayerInfo) int { return b.Width - a.Width })
	return out
}
