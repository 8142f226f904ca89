package loadgen

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseRoomViewers parses a per-room viewer count list, "N1,N2,...", as
// cmd/loadgen's -room-viewers takes it. It checks the syntax only;
// Validate checks the values.
func ParseRoomViewers(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for i, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("loadgen: room %d's viewer count %q is not a number", i+1, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// SkewedRooms splits viewers over rooms the way cameras draw viewers: the
// last quarter of the rooms (at least one) have one viewer each, and the
// others share the rest in proportion to 1/rank (Zipf's law: the first
// room gets about a quarter of them, the next half as many, ...), each at
// least one, rounded so that the counts add up to viewers. Viewers must
// be at least rooms.
func SkewedRooms(viewers, rooms int) ([]int, error) {
	if rooms < 1 || viewers < rooms {
		return nil, fmt.Errorf("loadgen: %d viewers cannot give each of %d rooms one", viewers, rooms)
	}
	out := make([]int, rooms)
	singles := max(rooms/4, 1)
	if rooms == 1 {
		singles = 0
	}
	ranked := rooms - singles
	for i := ranked; i < rooms; i++ {
		out[i] = 1
	}
	if ranked == 0 {
		return out, nil
	}
	// Every ranked room gets one, then the rest goes by weight 1/rank,
	// largest remainders first.
	rest := viewers - singles - ranked
	var sum float64
	for k := 1; k <= ranked; k++ {
		sum += 1 / float64(k)
	}
	given := 0
	frac := make([]float64, ranked)
	for k := range ranked {
		share := float64(rest) / float64(k+1) / sum
		out[k] = 1 + int(share)
		given += int(share)
		frac[k] = share - float64(int(share))
	}
	for ; given < rest; given++ {
		best := 0
		for k := range frac {
			if frac[k] > frac[best] {
				best = k
			}
		}
		out[best]++
		frac[best] = -1
	}
	return out, nil
}

// viewerRooms returns the room (publisher index) of each of the run's
// viewers, reading and stalled: with RoomViewers, the reading viewers fill
// the rooms in order (room 1's first); otherwise, and for stalled viewers
// always, viewer i is in room i mod Publishers.
func (c *Config) viewerRooms(total int) []int {
	out := make([]int, total)
	i := 0
	for r, n := range c.RoomViewers {
		for range n {
			out[i] = r
			i++
		}
	}
	for ; i < total; i++ {
		out[i] = i % c.Publishers
	}
	return out
}

// publishURL is the base URL publisher i connects to.
func (c *Config) publishURL(i int) string {
	if c.SpreadPublishers {
		return c.Gateways[i%len(c.Gateways)]
	}
	return c.PublishTo
}

// validateRooms checks RoomViewers against Viewers and Publishers.
func (c *Config) validateRooms() error {
	if len(c.RoomViewers) == 0 {
		return nil
	}
	sum := 0
	for i, n := range c.RoomViewers {
		if n < 0 {
			return fmt.Errorf("loadgen: room %d: %d viewers must not be negative", i+1, n)
		}
		sum += n
	}
	switch {
	case c.Publishers != len(c.RoomViewers):
		return fmt.Errorf("loadgen: %d publishers for %d rooms' viewer counts: want one per room", c.Publishers, len(c.RoomViewers))
	case c.Viewers != sum:
		return fmt.Errorf("loadgen: %d reading viewers, but the rooms' viewer counts add up to %d", c.Viewers, sum)
	}
	return nil
}
