package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/rooms"
)

// Helpers of the scale-out tests (snapshots, MJPEG, presence, first frames,
// Cluster, Sentinel), prefixed "so".

// soJPEG returns a real w×h JPEG whose pixels depend on n, padded to size bytes.
func soJPEG(t testing.TB, w, h, n, size int) []byte { return testenv.JPEG(t, w, h, n, size) }

// soInProcess runs a gateway in this test process on the in-process layer,
// or on Redis if mutate sets it.
func soInProcess(t *testing.T, mutate func(*gateway.Config)) (*gateway.Server, *httptest.Server) {
	t.Helper()
	return startInProcess(t, mutate)
}

// soWS returns the WebSocket URL of room on the gateway at base (http://...).
func soWS(base, room, query string) string {
	return "ws" + strings.TrimPrefix(base, "http") + "/ws/video/" + room + "/?" + query
}

// soStartPublisher publishes jpg to room's publisher URL every period
// until the test ends, answering the gateway's close handshake (1001 on
// shutdown).
func soStartPublisher(t testing.TB, url string, every time.Duration, jpg []byte) *testenv.Publisher {
	t.Helper()
	c := testenv.Dial(t, url, nil)
	c.ReadUntilClosed()
	return c.Publish(t, every, false, func(uint64) []byte { return jpg })
}

// soRooms GETs /api/rooms.
func soRooms(base string) ([]rooms.RoomSummary, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/rooms", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Rooms []rooms.RoomSummary `json:"rooms"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, err
	}
	return out.Rooms, nil
}

// soRoom returns the named room of /api/rooms, or an error.
func soRoom(base, name string) (rooms.RoomSummary, error) {
	list, err := soRooms(base)
	if err != nil {
		return rooms.RoomSummary{}, err
	}
	for _, r := range list {
		if r.Name == name {
			return r, nil
		}
	}
	return rooms.RoomSummary{}, fmt.Errorf("room %s not listed in %+v", name, list)
}

// soGet GETs url and returns the response with its body read.
func soGet(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, b
}
