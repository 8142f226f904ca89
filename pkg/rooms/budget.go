package rooms

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// Room budgets.
//
// The hub holds a room while it has local viewers, taps or publishers, and
// Options.MaxRooms bounds how many rooms it holds. Where watching is open,
// anyone may bring a room into existence by asking for it, and a room that
// nobody publishes costs a subscription and some memory like any other:
// unchecked, such rooms fill MaxRooms and lock out the rooms cameras
// publish. So every room the hub holds is live or idle:
//
//   - live: a publisher of it is known: a local publisher (from its first
//     frame), a picture the channel layer delivered for one of its streams
//     (a publisher elsewhere), a tap (the operator records it), a caller
//     that vouches for it (JoinNotifyLive), or Options.Liveness saying
//     that another replica has a live publisher of it (asked at each join
//     of a room not held live, and afresh by RecheckLive before a refusal);
//   - idle: none is known.
//
// Idle rooms are held within Options.MaxIdleRooms as well as MaxRooms, so
// live rooms always find MaxRooms - MaxIdleRooms places however many rooms
// nobody publishes are asked for: a live room is refused only when the hub
// holds MaxRooms rooms, more than MaxRooms - MaxIdleRooms of them live.
//
// A room turns live at most once while the hub holds it, and stays live
// until the hub lets it go (its last viewer, tap and publisher gone): the
// wall of a camera that stopped keeps its place, and a room is idle again
// only when someone asks for it anew and no publisher is known then. What
// a room costs does not change when its camera stops; what matters is
// that nobody can make a room live without publishing into it, which a
// publish token guards where publishing needs one.
//
// roomState.idle and Hub.idleRooms change under Hub.mu; idle is read
// without it (the delivering goroutine looks at it per picture).

// ErrTooManyIdleRooms is returned by Join and JoinNotify when the room
// asked for is not held, no publisher of it is known, and the hub holds
// Options.MaxIdleRooms idle rooms. errors.Is(err, ErrTooManyRooms) holds
// for it too.
var ErrTooManyIdleRooms = errors.New("rooms: too many rooms without a publisher")

// idleRoomsError is the error of a room refused for MaxIdleRooms.
type idleRoomsError struct{ limit int }

func (e idleRoomsError) Error() string {
	return fmt.Sprintf("%v: limit %d", ErrTooManyIdleRooms, e.limit)
}

func (e idleRoomsError) Is(target error) bool {
	return target == ErrTooManyIdleRooms || target == ErrTooManyRooms
}

// RoomLiveness is what the hub asks of the replicas' shared presence
// (Options.Liveness; redislayer.Presence implements it) to know whether
// another replica publishes a room. Its methods must be safe for
// concurrent use.
type RoomLiveness interface {
	// LiveElsewhere reports whether a replica other than this one has a
	// live publisher of any stream of room. It is asked at joins, so it
	// should answer from what it read recently (within a second, say)
	// rather than make a round trip each time; fresh asks for what it
	// read within a fraction of that, before a room is refused. It must
	// return within ctx's deadline.
	LiveElsewhere(ctx context.Context, room string, fresh bool) (bool, error)
}

// idleRecheckInterval is the shortest time between two looks of
// RecheckLive at every idle room.
const idleRecheckInterval = time.Second

// roomState is one room the hub holds: how many of its streams, and
// whether a publisher of it is known.
type roomState struct {
	name    string
	streams int         // the room's streams in Hub.streams; guarded by Hub.mu
	idle    atomic.Bool // no publisher known; changed under Hub.mu
}

// roomLocked returns room's state, making it if the budgets allow; live
// says a publisher of the room is known (an idle room it finds turns
// live). Call with h.mu held.
func (h *Hub) roomLocked(room string, live bool) (*roomState, error) {
	if r := h.rooms[room]; r != nil {
		if live {
			h.markLiveLocked(r)
		}
		return r, nil
	}
	if limit := h.opts.MaxRooms; limit > 0 && len(h.rooms) >= limit {
		return nil, fmt.Errorf("%w: limit %d", ErrTooManyRooms, limit)
	}
	if limit := h.opts.MaxIdleRooms; !live && limit > 0 && h.idleRooms >= limit {
		return nil, idleRoomsError{limit}
	}
	r := &roomState{name: room}
	if !live {
		r.idle.Store(true)
		h.idleRooms++
	}
	h.rooms[room] = r
	return r, nil
}

// releaseRoomLocked forgets one stream of r, and r with its last. Call
// with h.mu held.
func (h *Hub) releaseRoomLocked(r *roomState) {
	if r.streams--; r.streams > 0 || h.rooms[r.name] != r {
		return
	}
	delete(h.rooms, r.name)
	if r.idle.Load() {
		h.idleRooms--
	}
}

// markLiveLocked makes r live if it is an idle room the hub holds. Call
// with h.mu held.
func (h *Hub) markLiveLocked(r *roomState) {
	if r.idle.Load() && h.rooms[r.name] == r {
		r.idle.Store(false)
		h.idleRooms--
	}
}

// markLive is markLiveLocked for a caller without h.mu; it costs an
// atomic load when r is live already.
func (h *Hub) markLive(r *roomState) {
	if !r.idle.Load() {
		return
	}
	h.mu.Lock()
	h.markLiveLocked(r)
	h.mu.Unlock()
}

// RoomLive reports whether a publisher of room is known: the hub holds
// the room live, or Options.Liveness says another replica has a live
// publisher of it (an idle room the hub holds then turns live). Asking
// Liveness is bounded by Options.CacheTimeout; an error or a timeout
// answers false: a room is taken for live only on evidence. No lock is
// held meanwhile.
func (h *Hub) RoomLive(ctx context.Context, room string) bool {
	return !h.RoomIdle(room) || h.liveElsewhere(ctx, room, false)
}

// liveElsewhere asks Options.Liveness about room, within CacheTimeout,
// and makes room live if the hub holds it idle and the answer is yes.
func (h *Hub) liveElsewhere(ctx context.Context, room string, fresh bool) bool {
	if h.opts.Liveness == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, h.opts.CacheTimeout)
	defer cancel()
	live, err := h.opts.Liveness.LiveElsewhere(ctx, room, fresh)
	if err != nil {
		h.log.Debug("cannot tell whether another replica publishes the room; taking it for one without a publisher",
			"room", room, "err", err)
	}
	if live {
		h.mu.RLock()
		r := h.rooms[room]
		h.mu.RUnlock()
		if r != nil {
			h.markLive(r)
		}
	}
	return live
}

// RoomIdle reports whether the hub knows no publisher of room: it holds
// the room idle, or does not hold it (a room being joined counts as idle
// until the hub holds it live). Unlike RoomLive it asks nobody, so it
// never blocks.
func (h *Hub) RoomIdle(room string) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.rooms[room]
	return r == nil || r.idle.Load()
}

// RecheckLive is RoomLive asking Options.Liveness afresh (see
// RoomLiveness), for a caller about to refuse room as one without a
// publisher: RoomLive's answer may be a second old, and a camera that
// started on another replica since must not be refused. At most once a
// second it also asks about every idle room the hub holds, and makes live
// those another replica publishes now: a room whose camera started
// elsewhere, in a stream no local viewer receives (so no picture of it
// came here), stops counting as idle. The hub calls it itself before
// refusing a room for MaxIdleRooms.
func (h *Hub) RecheckLive(ctx context.Context, room string) bool {
	if !h.RoomIdle(room) {
		return true
	}
	if h.opts.Liveness == nil {
		return false
	}
	live := h.liveElsewhere(ctx, room, true)
	now := time.Now().UnixNano()
	last := h.idleRecheck.Load()
	if now-last < int64(idleRecheckInterval) || !h.idleRecheck.CompareAndSwap(last, now) {
		return live
	}
	h.mu.RLock()
	idle := make([]*roomState, 0, h.idleRooms)
	for _, r := range h.rooms {
		if r.idle.Load() {
			idle = append(idle, r)
		}
	}
	h.mu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, h.opts.CacheTimeout)
	defer cancel()
	for _, r := range idle {
		// The read just made for room answers these: no round trip each.
		yes, err := h.opts.Liveness.LiveElsewhere(ctx, r.name, false)
		if err != nil {
			break
		}
		if yes {
			h.markLive(r)
		}
	}
	return live
}

// JoinNotifyLive is JoinNotify where the caller has decided whether a
// publisher of the room is known: it asked RoomLive, or its own connection
// is to publish the room (the seed's camera connection, which receives
// too, with a token that lets it publish). With live false the room is
// held as idle unless the hub holds it live already, and Liveness is not
// asked again.
func (h *Hub) JoinNotifyLive(ctx context.Context, id frames.Stream, notify func(*Viewer), live bool) (*Viewer, error) {
	return h.join(ctx, id, notify, live)
}

// sawPicture records that the layer delivered a picture of s's room: a
// publisher of it is live somewhere.
func (h *Hub) sawPicture(s *stream, f *frames.Frame) {
	if !f.IsOffline() {
		h.markLive(s.room)
	}
}
