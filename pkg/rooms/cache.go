package rooms

import (
	"context"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// FrameCache supplies the newest frame of a room that this replica holds
// no frame of in memory: a viewer joining such a room sees an image at
// once instead of waiting for the publisher's next frame.
type FrameCache interface {
	// Latest returns room's newest cached frame, or nil and no error when
	// there is none. It must return within ctx's deadline.
	Latest(ctx context.Context, room string) (*frames.Frame, error)
}

// defaultCacheTimeout bounds the FrameCache lookup at Join when
// Options.CacheTimeout is zero.
const defaultCacheTimeout = 200 * time.Millisecond

// offerCached gives v the room's cached frame when the room has no live
// frame in memory. v is already among the room's viewers and the room is
// subscribed, so a frame the layer delivers meanwhile reaches v directly;
// the cached one is offered only if none did (it would be older): not if
// the room went live meanwhile, nor if v's slot is no longer empty.
func (h *Hub) offerCached(ctx context.Context, r *Room, v *Viewer) {
	timeout := h.opts.CacheTimeout
	if timeout <= 0 {
		timeout = defaultCacheTimeout
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	f, err := h.opts.Cache.Latest(ctx, r.name)
	if err != nil {
		h.log.Debug("no cached first frame", "room", r.name, "err", err)
		return
	}
	if f == nil || f.IsOffline() || r.live.Load() {
		return
	}
	v.offerFirst(f)
}
