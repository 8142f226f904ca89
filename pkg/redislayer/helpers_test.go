package redislayer_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func join(t testing.TB, h *rooms.Hub, room string) *rooms.Viewer {
	t.Helper()
	v, err := h.Join(context.Background(), frames.Stream{Room: room})
	if err != nil {
		t.Fatalf("Join(%q): %v", room, err)
	}
	return v
}

func roomNames(h *rooms.Hub) []string {
	var names []string
	for _, r := range h.Streams() {
		names = append(names, r.Stream.String())
	}
	return names
}
