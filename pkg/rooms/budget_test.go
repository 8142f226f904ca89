package rooms_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// idle returns the hub's count of rooms without a known publisher.
func idle(h *rooms.Hub) int { return h.Stats().IdleRooms }

// TestIdleRoomsHaveABudgetOfTheirOwn: with MaxRooms 4 and MaxIdleRooms 2,
// rooms nobody publishes take at most 2 places; a third is refused with
// ErrTooManyIdleRooms (also ErrTooManyRooms), while rooms with a
// publisher, a tap, or vouched for, take the other places; MaxRooms still
// bounds them all.
func TestIdleRoomsHaveABudgetOfTheirOwn(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{MaxRooms: 4, MaxIdleRooms: 2})
	a := join(t, hub, st("a"))
	join(t, hub, st("b"))
	join(t, hub, st("b@1")) // another stream of a held room: no new place
	if n := idle(hub); n != 2 {
		t.Fatalf("%d idle rooms, want 2", n)
	}
	_, err := hub.Join(context.Background(), st("c"))
	if !errors.Is(err, rooms.ErrTooManyIdleRooms) || !errors.Is(err, rooms.ErrTooManyRooms) {
		t.Fatalf("Join of a third room nobody publishes: %v, want ErrTooManyIdleRooms", err)
	}
	if hub.Stats().Rooms != 2 {
		t.Fatalf("a refused Join left a room: %v", roomNames(hub))
	}

	// A publisher's room is live: it takes one of the other places, and
	// its viewers join it.
	p, err := hub.NewPublisher(st("c"))
	if err != nil {
		t.Fatalf("NewPublisher of a third room: %v", err)
	}
	t.Cleanup(p.Close)
	join(t, hub, st("c"))
	// A caller that vouches for its room (the seed's camera connection).
	if _, err := hub.JoinNotifyLive(context.Background(), st("d"), func(*rooms.Viewer) {}, true); err != nil {
		t.Fatalf("JoinNotifyLive of a fourth room: %v", err)
	}
	if n := idle(hub); n != 2 {
		t.Fatalf("%d idle rooms, want 2", n)
	}
	// MaxRooms bounds live rooms too.
	if _, err := hub.NewPublisher(st("e")); !errors.Is(err, rooms.ErrTooManyRooms) || errors.Is(err, rooms.ErrTooManyIdleRooms) {
		t.Fatalf("NewPublisher of a fifth room: %v, want ErrTooManyRooms only", err)
	}

	// An idle room that goes frees an idle place.
	hub.Leave(a)
	if n := idle(hub); n != 1 {
		t.Fatalf("%d idle rooms after a's viewer left, want 1", n)
	}
	join(t, hub, st("f"))
}

// TestRoomTurnsLiveAtItsFirstPicture: an idle room whose camera publishes
// on another replica (a picture the layer delivers) stops counting
// against MaxIdleRooms; an offline event does not make a room live; a
// live room stays live until the hub lets it go, and is idle again when
// asked for anew.
func TestRoomTurnsLiveAtItsFirstPicture(t *testing.T) {
	hub, layer := newMemoryHub(t, rooms.Options{MaxIdleRooms: 1})
	v := join(t, hub, st("cam"))
	if !hub.RoomIdle("cam") || hub.RoomLive(context.Background(), "cam") {
		t.Fatal("a room nobody published into is not idle")
	}
	if err := layer.Publish(context.Background(), "cam", frames.Offline(1, epoch).Binary()); err != nil {
		t.Fatal(err)
	}
	if n := idle(hub); n != 1 {
		t.Fatalf("an offline event made the room live: %d idle rooms", n)
	}
	if _, err := hub.Join(context.Background(), st("other")); !errors.Is(err, rooms.ErrTooManyIdleRooms) {
		t.Fatalf("Join of a second idle room: %v, want ErrTooManyIdleRooms", err)
	}

	publish(t, layer, "cam", 1)
	next(t, v, time.Second)
	if n := idle(hub); n != 0 || hub.RoomIdle("cam") || !hub.RoomLive(context.Background(), "cam") {
		t.Fatalf("after a picture: %d idle rooms, cam idle %v", n, hub.RoomIdle("cam"))
	}
	o := join(t, hub, st("other")) // cam no longer takes the idle place

	// The camera stops: the room keeps its place while watched.
	if err := layer.Publish(context.Background(), "cam", frames.Offline(2, epoch).Binary()); err != nil {
		t.Fatal(err)
	}
	if hub.RoomIdle("cam") {
		t.Fatal("the room of a camera that stopped turned idle while watched")
	}
	// Once let go and asked for anew, with no publisher known, it is idle.
	hub.Leave(v)
	hub.Leave(o)
	join(t, hub, st("cam"))
	if !hub.RoomIdle("cam") || idle(hub) != 1 {
		t.Fatalf("cam asked for anew: idle %v, %d idle rooms", hub.RoomIdle("cam"), idle(hub))
	}
}

// TestPublisherAndTapRoomsAreLive: a local publisher makes its idle room
// live (whichever stream it publishes), and a tap's room is never idle.
func TestPublisherAndTapRoomsAreLive(t *testing.T) {
	hub, _ := newMemoryHub(t, rooms.Options{MaxIdleRooms: 1})
	join(t, hub, st("cam"))
	p, err := hub.NewPublisher(st("cam@2")) // a layer nobody here watches
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	if hub.RoomIdle("cam") || idle(hub) != 0 {
		t.Fatalf("a publisher's room is idle (%d idle rooms)", idle(hub))
	}
	tap, err := hub.Tap(context.Background(), st("rec"), func(*frames.Frame) {})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Untap(tap)
	join(t, hub, st("rec"))
	if hub.RoomIdle("rec") || idle(hub) != 0 {
		t.Fatalf("a tapped room is idle (%d idle rooms)", idle(hub))
	}
	join(t, hub, st("x"))
	if idle(hub) != 1 {
		t.Fatalf("%d idle rooms, want 1", idle(hub))
	}
}
