package rooms

import (
	"context"
	"fmt"
	"slices"

	"github.com/framecast/framecast/pkg/frames"
)

// LayerCatalog is where a replica learns the layers of rooms published on
// other replicas (Options.Catalog; redislayer.RedisFrameCache implements
// it). Its methods must be safe for concurrent use.
type LayerCatalog interface {
	// Layers returns room's layers, each codec's ordered by index, JPEG
	// first, or none when no replica publishes it. It must return within
	// ctx's deadline.
	Layers(ctx context.Context, room string) ([]frames.LayerInfo, error)
	// LayersOf returns the layers of each of rooms as Layers does, in one
	// round trip however many rooms it names (the recorder asks for every
	// live room each second); rooms nobody publishes are left out.
	LayersOf(ctx context.Context, rooms []string) (map[string][]frames.LayerInfo, error)
}

// LocalLayers returns the layers of room that this replica's publishers
// send, JPEG first, each codec's ordered by index, with each layer's size
// as its newest picture gives it; none if the room has no local publisher.
func (h *Hub) LocalLayers(room string) []frames.LayerInfo {
	var out []frames.LayerInfo
	for _, codec := range frames.Codecs() {
		for i := range frames.MaxLayers {
			id := frames.Stream{Room: room, Layer: i, Codec: codec}
			s := h.lookup(id)
			if s == nil || !s.hasPublisher() {
				continue
			}
			f := s.latest()
			if f == nil {
				continue
			}
			info := frames.LayerInfo{Index: i, Codec: codec}
			info.Width, info.Height = f.Size()
			out = append(out, info)
		}
	}
	return out
}

// Layers returns room's layers of one codec, ordered by index: what this
// replica's publishers send if it has any, else what Options.Catalog says.
// The JPEG answer always holds at least the main layer (its size from the
// newest frame seen here, if any): every room has one, the seed's. An
// H.264 answer may be empty: the room sends none. The error is the
// catalog's when it could not be read: the answer is then only what this
// replica knows, and a caller that knew the list before should keep it.
func (h *Hub) Layers(ctx context.Context, room string, codec frames.Codec) ([]frames.LayerInfo, error) {
	all, err := h.AllLayers(ctx, room)
	var l []frames.LayerInfo
	for _, x := range all {
		if x.Codec == codec {
			l = append(l, x)
		}
	}
	main := frames.Stream{Room: room}
	if len(l) > 0 || codec != main.Codec {
		return l, err
	}
	info := frames.LayerInfo{}
	if f := h.Latest(main); f != nil {
		info.Width, info.Height = f.Size()
	}
	return []frames.LayerInfo{info}, err
}

// AllLayers returns room's layers of every codec, JPEG first, each codec's
// ordered by index, as LocalLayers or else Options.Catalog knows them; nil
// if neither knows the room. The error is the catalog's (see Layers).
func (h *Hub) AllLayers(ctx context.Context, room string) ([]frames.LayerInfo, error) {
	if l := h.LocalLayers(room); len(l) > 0 {
		return l, nil
	}
	if h.opts.Catalog == nil {
		return nil, nil
	}
	cctx, cancel := context.WithTimeout(ctx, h.opts.CacheTimeout)
	defer cancel()
	l, err := h.opts.Catalog.Layers(cctx, room)
	if err != nil {
		return nil, fmt.Errorf("failed to read the layers of %q: %w", room, err)
	}
	return l, nil
}

// AllLayersOf is AllLayers for many rooms at once: the rooms with a local
// publisher from the hub, the rest in one call to Options.Catalog, bounded
// by CacheTimeout. Rooms nobody publishes are left out of the map.
func (h *Hub) AllLayersOf(ctx context.Context, rooms []string) (map[string][]frames.LayerInfo, error) {
	out := make(map[string][]frames.LayerInfo, len(rooms))
	var rest []string
	for _, room := range rooms {
		if l := h.LocalLayers(room); len(l) > 0 {
			out[room] = l
		} else {
			rest = append(rest, room)
		}
	}
	if len(rest) == 0 || h.opts.Catalog == nil {
		return out, nil
	}
	cctx, cancel := context.WithTimeout(ctx, h.opts.CacheTimeout)
	defer cancel()
	remote, err := h.opts.Catalog.LayersOf(cctx, rest)
	if err != nil {
		return nil, fmt.Errorf("failed to read the layers of %d rooms: %w", len(rest), err)
	}
	for room, l := range remote {
		if len(l) > 0 {
			out[room] = l
		}
	}
	return out, nil
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
