package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
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

func soDial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(8 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

// soReadFrame reads one binary frame message.
func soReadFrame(c *websocket.Conn, timeout time.Duration) (*frames.Frame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ != websocket.MessageBinary {
			return nil, fmt.Errorf("got a %v message, want binary", typ)
		}
		f, err := frames.ParseBinary(b, 0, time.Time{}, 0)
		if err != nil {
			return nil, err
		}
		if !f.IsOffline() {
			return f, nil
		}
	}
}

// soPublisher sends frames of jpeg to a publisher connection at a fixed
// period, numbered 1, 2, 3...
type soPublisher struct {
	seq    atomic.Uint64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func soStartPublisher(t testing.TB, url string, every time.Duration, jpg []byte) *soPublisher {
	t.Helper()
	c := soDial(t, url)
	// CloseRead answers the gateway's close handshake (1001 on shutdown).
	ctx, cancel := context.WithCancel(c.CloseRead(context.Background()))
	p := &soPublisher{cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer c.Close(websocket.StatusNormalClosure, "")
		t := time.NewTicker(every)
		defer t.Stop()
		var buf []byte
		for {
			seq := p.seq.Load() + 1
			buf = frames.AppendBinary(buf[:0], seq, time.Now(), jpg)
			if err := c.Write(ctx, websocket.MessageBinary, buf); err != nil {
				return
			}
			p.seq.Store(seq)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	t.Cleanup(p.Stop)
	return p
}

// Stop stops sending and closes the connection. It is idempotent.
func (p *soPublisher) Stop() {
	p.cancel()
	p.wg.Wait()
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

// soMetric returns the value of one series on the gateway's /metrics
// (e.g. `framecast_viewers_cut_off_total{reason="slow"}`), 0 if absent.
func soMetric(t testing.TB, base, series string) float64 {
	t.Helper()
	_, b := soGet(t, base+"/metrics")
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			fmt.Sscan(rest, &v)
			return v
		}
	}
	return 0
}
