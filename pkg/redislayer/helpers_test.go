package redislayer_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/framecast/framecast/pkg/rooms"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func join(t testing.TB, h *rooms.Hub, room string) *rooms.Viewer {
	t.Helper()
	v, err := h.Join(context.Background(), room)
	if err != nil {
		t.Fatalf("Join(%q): %v", room, err)
	}
	return v
}

func roomNames(h *rooms.Hub) []string {
	var names []string
	for _, r := range h.Rooms() {
		names = append(names, r.Name)
	}
	return names
}
