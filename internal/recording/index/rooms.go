package index

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// Rooms lists the rooms that have anything in st: segments (objects or
// journals) or logs. It lists the whole store: for maintenance commands
// (rebuilding every room's index), never for playback.
func Rooms(ctx context.Context, st store.Store) ([]string, error) {
	seen := map[string]bool{}
	add := func(name string) {
		if _, rest, ok := strings.Cut(name, "/"); ok {
			if room, _, ok := strings.Cut(rest, "/"); ok && frames.ValidRoom(room) {
				seen[room] = true
			}
		}
	}
	for _, prefix := range []string{"seg/", "idx/"} {
		objs, err := st.List(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("failed to list rooms: %w", err)
		}
		for _, o := range objs {
			add(o.Name)
		}
		journals, err := st.Journals(ctx, prefix)
		if err != nil {
			return nil, fmt.Errorf("failed to list rooms: %w", err)
		}
		for _, j := range journals {
			add(j)
		}
	}
	out := make([]string, 0, len(seen))
	for r := range seen {
		out = append(out, r)
	}
	slices.Sort(out)
	return out, nil
}
