package loadgen

import (
	"slices"
	"testing"
)

func TestSkewedRooms(t *testing.T) {
	for _, tc := range []struct{ viewers, rooms int }{
		{40, 40}, {41, 40}, {400, 40}, {2000, 40}, {7, 4}, {5, 1}, {3, 2},
	} {
		got, err := SkewedRooms(tc.viewers, tc.rooms)
		if err != nil {
			t.Fatalf("SkewedRooms(%d, %d): %v", tc.viewers, tc.rooms, err)
		}
		sum := 0
		for _, n := range got {
			sum += n
			if n < 1 {
				t.Errorf("SkewedRooms(%d, %d) = %v: a room with no viewer", tc.viewers, tc.rooms, got)
			}
		}
		if len(got) != tc.rooms || sum != tc.viewers {
			t.Errorf("SkewedRooms(%d, %d) = %v: %d rooms, %d viewers", tc.viewers, tc.rooms, got, len(got), sum)
		}
		if !slices.IsSortedFunc(got, func(a, b int) int { return b - a }) {
			t.Errorf("SkewedRooms(%d, %d) = %v: not largest first", tc.viewers, tc.rooms, got)
		}
	}
	got, _ := SkewedRooms(2000, 40)
	if got[0] < 300 || got[39] != 1 || got[30] != 1 || got[29] < 2 {
		t.Errorf("SkewedRooms(2000, 40) = %v: want hundreds in the first room, one in each of the last ten", got)
	}
	if _, err := SkewedRooms(39, 40); err == nil {
		t.Error("39 viewers for 40 rooms: want an error")
	}
}

func TestViewerRooms(t *testing.T) {
	c := Config{Publishers: 3, RoomViewers: []int{2, 0, 1}}
	if got, want := c.viewerRooms(5), []int{0, 0, 2, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("with RoomViewers and 2 stalled: rooms %v, want %v", got, want)
	}
	c = Config{Publishers: 2}
	if got, want := c.viewerRooms(4), []int{0, 1, 0, 1}; !slices.Equal(got, want) {
		t.Errorf("round-robin: rooms %v, want %v", got, want)
	}
}

func TestRoomViewersConfig(t *testing.T) {
	c := Config{Gateways: []string{"ws://a:1", "ws://b:2"}, RoomViewers: []int{3, 1}, SpreadPublishers: true}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Viewers != 4 || c.Publishers != 2 {
		t.Errorf("viewers %d, publishers %d: want 4 and 2 from the room list", c.Viewers, c.Publishers)
	}
	if c.publishURL(0) != "ws://a:1" || c.publishURL(1) != "ws://b:2" || c.publishURL(2) != "ws://a:1" {
		t.Errorf("spread publishers go to %s, %s, %s", c.publishURL(0), c.publishURL(1), c.publishURL(2))
	}
	for name, bad := range map[string]Config{
		"sum":        {Gateways: []string{"ws://a:1"}, RoomViewers: []int{3, 1}, Viewers: 5},
		"publishers": {Gateways: []string{"ws://a:1"}, RoomViewers: []int{3, 1}, Publishers: 3},
		"negative":   {Gateways: []string{"ws://a:1"}, RoomViewers: []int{3, -1}},
	} {
		c := bad.WithDefaults()
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v validated", name, bad.RoomViewers)
		}
	}
	if l, err := ParseRoomViewers("3, 1,0"); err != nil || !slices.Equal(l, []int{3, 1, 0}) {
		t.Errorf("ParseRoomViewers: %v, %v", l, err)
	}
	if _, err := ParseRoomViewers("3,x"); err == nil {
		t.Error("ParseRoomViewers(\"3,x\"): want an error")
	}
}
