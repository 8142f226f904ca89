package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// Room budgets (docs/security.md, "Rooms nobody publishes").
//
// Where watching is open, anyone may bring a room into existence by asking
// for it. Two budgets keep such rooms from locking out the rooms cameras
// publish:
//
//   - per replica, the hub holds rooms without a known publisher ("idle",
//     pkg/rooms/budget.go) within half of GATEWAY_MAX_ROOMS
//     (idleRoomShare), so live rooms always find the other half;
//   - per client address (IPv6: per /64, as the connection limit counts:
//     limitKey), the idle rooms one address holds open on this replica are
//     bounded by GATEWAY_MAX_IDLE_ROOMS_PER_IP (addrRooms), so one client
//     cannot take the whole share from everybody else's offline walls.
//
// "Live" is decided at each join of a room not held live, without a Redis
// round trip per join: the hub knows its own publishers and the pictures
// its layer delivers, and other replicas' publishers come from presence
// (redislayer.Presence.LiveElsewhere), read at most once a second for all
// rooms. A room that gains a publisher later stops counting against both
// budgets: the hub marks it live at its first picture or publisher, and an
// address at its limit counts only the rooms of its that are still idle.
//
// Refusals: `refused` on multi-room connections, 1013 on single-room
// ones, 503 (the replica's share) or 429 (the address's) on MJPEG streams,
// each counted in framecast_rejected_total (refusalOf).

// errIdleRoomsPerAddr says the client's address holds
// GATEWAY_MAX_IDLE_ROOMS_PER_IP rooms without a publisher on this replica.
var errIdleRoomsPerAddr = errors.New("too many rooms without a publisher from your address")

// idleRoomShare is the hub's budget of idle rooms within maxRooms (0: no
// limit): half, so that live rooms always find the other half.
func idleRoomShare(maxRooms int) int {
	if maxRooms <= 0 {
		return 0
	}
	return max(1, maxRooms/2)
}

// addrRooms counts, per client address, the rooms each holds open on this
// replica that had no known publisher when it joined them. It is safe for
// concurrent use.
type addrRooms struct {
	max int // 0: no limit

	mu     sync.Mutex
	byAddr map[netip.Addr]map[string]int // limitKey -> room -> the address's joins of it; empty maps are deleted
}

func newAddrRooms(max int) *addrRooms {
	return &addrRooms{max: max, byAddr: make(map[netip.Addr]map[string]int)}
}

// hold counts one more join of room, idle, from addr (a limitKey), unless
// the address holds max idle rooms already: rooms it joined idle that
// idle says are still idle (a room that gained a publisher since no
// longer counts). idle is called with a.mu held: it must not call back.
// It returns the func that uncounts the join (idempotent).
func (a *addrRooms) hold(addr netip.Addr, room string, idle func(room string) bool) (release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	held := a.byAddr[addr]
	if held[room] == 0 && a.max > 0 && len(held) >= a.max {
		n := 0
		for r := range held {
			if idle(r) {
				n++
			}
		}
		if n >= a.max {
			return nil, fmt.Errorf("%w (limit %d)", errIdleRoomsPerAddr, a.max)
		}
	}
	if held == nil {
		held = make(map[string]int)
		a.byAddr[addr] = held
	}
	held[room]++
	var once sync.Once
	return func() { once.Do(func() { a.release(addr, room) }) }, nil
}

func (a *addrRooms) release(addr netip.Addr, room string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	held := a.byAddr[addr]
	if held[room]--; held[room] <= 0 {
		delete(held, room)
	}
	if len(held) == 0 {
		delete(a.byAddr, addr)
	}
}

// joinRoom joins stream id for k's session within the room budgets: a
// room with no known publisher is held only within the address's and the
// replica's budgets of idle rooms. It returns the viewer and the func that
// gives the room's place back, which the caller calls once it leaves the
// room (idempotent; the viewer is left separately). It may block on the
// hub's Join.
func (s *Server) joinRoom(ctx context.Context, k *conn, id frames.Stream, notify func(*rooms.Viewer)) (*rooms.Viewer, func(), error) {
	live := k.publishesRoom() || s.hub.RoomLive(ctx, id.Room)
	release := func() {}
	if !live {
		var err error
		if release, err = s.limits.idleRooms.hold(k.client, id.Room, s.hub.RoomIdle); err != nil {
			// Before refusing: is the room published elsewhere after all
			// (RoomLive's answer may be a second old), and do the
			// address's rooms published since still count?
			if live = s.hub.RecheckLive(ctx, id.Room); live {
				release = func() {}
			} else if release, err = s.limits.idleRooms.hold(k.client, id.Room, s.hub.RoomIdle); err != nil {
				return nil, nil, err
			}
		}
	}
	v, err := s.hub.JoinNotifyLive(ctx, id, notify, live)
	if err != nil {
		release()
		return nil, nil, err
	}
	return v, release, nil
}

// joinLiveLocked joins sub's room live, on the layer it chose: within the
// room budgets the first time (a subscription that began by playing a
// recording, ?at=, holds no place yet), like a layer switch after. Call
// with sub.mu held.
func (sub *subscription) joinLiveLocked(ctx context.Context) (*rooms.Viewer, error) {
	w := sub.w
	id := sub.ask.stream(sub.room, sub.layer)
	if sub.release != nil {
		return w.s.hub.JoinNotify(ctx, id, w.notify)
	}
	v, release, err := w.s.joinRoom(ctx, w.k, id, w.notify)
	if err != nil {
		return nil, err
	}
	sub.release = release
	return v, nil
}

// publishesRoom reports whether k is the seed's two-way connection of a
// camera admitted with a token that lets it publish: its room is live from
// its join, before its first frame (a camera is never refused as a room
// nobody publishes). Where publishing is open, a connection is trusted
// with nothing before it publishes.
func (k *conn) publishesRoom() bool {
	return k.role == roleSeed && k.mayPublish && k.s.access.required(auth.Publish)
}

// Reasons of refusals by the idle-room budgets.
const refusedIdleRoomLimit = "too many rooms without a publisher on this gateway"

// roomRefusal is how a join refused by a room budget is answered.
type roomRefusal struct {
	label  string    // framecast_rejected_total{reason}
	end    endReason // a single-room WebSocket's close
	reason string    // a multi-room connection's `refused` message; an MJPEG stream's body
	status int       // an MJPEG stream's HTTP status
}

// refusalOf returns how a join that failed with err is answered: the
// address's budget is the client's to free (429), the replica's are the
// replica's state (503); any other error of a join is answered as the
// replica's room limit, as it always was.
func refusalOf(err error) roomRefusal {
	switch {
	case errors.Is(err, errIdleRoomsPerAddr):
		return roomRefusal{label: "idle_rooms_per_ip", end: endAddrIdleRooms, reason: err.Error(), status: http.StatusTooManyRequests}
	case errors.Is(err, rooms.ErrTooManyIdleRooms):
		return roomRefusal{label: "too_many_idle_rooms", end: endIdleRooms, reason: refusedIdleRoomLimit, status: http.StatusServiceUnavailable}
	}
	return roomRefusal{label: "too_many_rooms", end: endRoomLimit, reason: refusedRoomLimit, status: http.StatusServiceUnavailable}
}

// refuseRoom counts a refused join and ends k, a single-room WebSocket,
// with the refusal's close (1013 and a reason).
func (s *Server) refuseRoom(k *conn, err error) {
	r := refusalOf(err)
	s.metrics.rejected.WithLabelValues(r.label).Inc()
	s.end(k, ended(r.end, err))
}

// refuseRoomHTTP counts a refused join and answers it before any upgrade
// or stream (MJPEG).
func (s *Server) refuseRoomHTTP(w http.ResponseWriter, err error) {
	r := refusalOf(err)
	s.metrics.rejected.WithLabelValues(r.label).Inc()
	if r.status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "5")
	}
	http.Error(w, r.reason, r.status)
}

// refuseRoom counts a refused subscription of a multi-room connection and
// answers it with `refused`; the connection and its other rooms carry on.
func (w *session) refuseRoom(room string, err error) {
	r := refusalOf(err)
	w.s.metrics.rejected.WithLabelValues(r.label).Inc()
	w.send(refusedMessage(room, r.reason))
}

// roomLiveness returns where the hub learns which rooms other replicas
// publish, or nil without Redis.
func (s *Server) roomLiveness() rooms.RoomLiveness {
	if s.scale == nil {
		return nil
	}
	return s.scale.presence
}
