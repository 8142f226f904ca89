package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// pbRecorded is a store with footage of rooms, and a gateway on it.
type pbRecorded struct {
	dir    string
	base   string // the gateway's http:// URL
	t0     time.Time
	frames map[string][]*frames.Frame // by room: the JPEG frames recorded
}

// pbStart records 20 s of JPEG footage of each room, ending 5 s ago, at
// 10 fps (sealed segments), then starts an in-process gateway that plays
// back from the store.
func pbStart(t *testing.T, rooms ...string) *pbRecorded {
	t.Helper()
	dir := t.TempDir()
	st, err := store.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	cat := index.New(st, nil)
	p := &pbRecorded{dir: dir, t0: time.Now().Add(-25 * time.Second).Truncate(time.Millisecond), frames: map[string][]*frames.Frame{}}
	for _, room := range rooms {
		fs := recordtest.JPEG(t, room, p.t0, 200, 100*time.Millisecond, 1)
		recordtest.Record(t, st, cat, frames.Stream{Room: room}, fs, false)
		p.frames[room] = fs
	}
	_, ts := startInProcess(t, func(c *gateway.Config) { c.RecordStore = dir })
	p.base = ts.URL
	return p
}

func pbWS(base, path, query string) string {
	return "ws" + strings.TrimPrefix(base, "http") + path + "?" + query
}

// TestPlaybackFromAt: /ws/video/{room}/?at=T plays the recording from T
// in the format asked, capture times and sequence numbers exactly as
// recorded, at the pace they were captured; then, the recording run out
// and the room not live, the connection stays open, told `live`.
func TestPlaybackFromAt(t *testing.T) {
	p := pbStart(t, "cam")
	at := p.t0.Add(17 * time.Second)
	fs := p.frames["cam"]
	for _, format := range []string{"binary&v=2", "binary", "json"} {
		t.Run(format, func(t *testing.T) {
			q := "role=view&format=" + format + "&at=" + strconv.FormatInt(at.UnixMilli(), 10)
			c := testenv.Dial(t, pbWS(p.base, "/ws/video/cam/", q), nil)
			start := time.Now()
			want := fs[170:] // the frame at 17.0 s and after
			sawPlayback := format != "binary&v=2"
			for i := 0; i < len(want); {
				if !strings.Contains(format, "v=2") {
					f, err := c.ReadFrame(5 * time.Second)
					if err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					pbSame(t, f, want[i])
					i++
					continue
				}
				m, err := lyRead(c, 5*time.Second)
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				switch {
				case m.Type == "playback":
					sawPlayback = true
				case m.Frame != nil:
					if !sawPlayback {
						t.Fatal("a frame before the playback message")
					}
					pbSame(t, m.Frame, want[i])
					i++
				}
			}
			// 30 frames 100 ms apart: about 2.9 s, not at once.
			if d := time.Since(start); d < 2500*time.Millisecond {
				t.Fatalf("30 recorded frames came in %v: not at the recorded pace", d)
			}
			if strings.Contains(format, "v=2") {
				lyUntil(t, c, 5*time.Second, "the live message", func(m lyMsg) bool { return m.Type == "live" && m.Reason == "caught_up" })
			}
		})
	}
}

func pbSame(t *testing.T, got, want *frames.Frame) {
	t.Helper()
	if got.Seq != want.Seq || got.Captured.UnixMicro() != want.Captured.UnixMicro() || string(got.Payload) != string(want.Payload) {
		t.Fatalf("got frame %d@%v (%d bytes), want %d@%v (%d bytes)", got.Seq, got.Captured, len(got.Payload), want.Seq, want.Captured, len(want.Payload))
	}
}

// TestSeekAndLive: a live v=2 viewer seeks back, gets the recording, and
// goes live again, on one connection.
func TestSeekAndLive(t *testing.T) {
	p := pbStart(t, "cam")
	pub := testenv.Dial(t, pbWS(p.base, "/ws/video/cam/", "role=publish"), nil)
	pub.Publish(t, 50*time.Millisecond, false, func(seq uint64) []byte { return testJPEG(t, int(seq%8), 0) })
	c := testenv.Dial(t, pbWS(p.base, "/ws/video/cam/", "role=view&format=binary&v=2"), nil)
	lyUntil(t, c, 5*time.Second, "a live frame", func(m lyMsg) bool { return m.Frame != nil && time.Since(m.Frame.Captured) < time.Second })
	at := p.t0.Add(5 * time.Second)
	if err := c.SendText(fmt.Sprintf(`{"type":"seek","at":%q}`, at.Format(time.RFC3339Nano))); err != nil {
		t.Fatal(err)
	}
	m := lyUntil(t, c, 5*time.Second, "the playback message", func(m lyMsg) bool { return m.Type == "playback" })
	if m.Room != "cam" {
		t.Fatalf("playback message %+v", m)
	}
	f := lyUntil(t, c, 5*time.Second, "a recorded frame", func(m lyMsg) bool { return m.Frame != nil })
	pbSame(t, f.Frame, p.frames["cam"][50])
	if err := c.SendText(`{"type":"live"}`); err != nil {
		t.Fatal(err)
	}
	lyUntil(t, c, 5*time.Second, "the live message", func(m lyMsg) bool { return m.Type == "live" && m.Reason == "asked" })
	lyUntil(t, c, 5*time.Second, "a live frame again", func(m lyMsg) bool { return m.Frame != nil && time.Since(m.Frame.Captured) < time.Second })
	// A relative seek, and one with no footage: an error, nothing moves.
	if err := c.SendText(`{"type":"seek","at":"-12s"}`); err != nil {
		t.Fatal(err)
	}
	lyUntil(t, c, 5*time.Second, "the playback message of -12s", func(m lyMsg) bool { return m.Type == "playback" })
	if err := c.SendText(`{"type":"seek","at":"-1h"}`); err != nil {
		t.Fatal(err)
	}
	lyUntil(t, c, 5*time.Second, "an error", func(m lyMsg) bool {
		if m.Type == "playback" {
			t.Fatalf("a seek to where nothing is recorded played: %+v", m)
		}
		return m.Type == "error" && m.Room == "cam" && strings.Contains(m.Reason, "recording starts at")
	})
	if n := testenv.Metric(t, p.base, "framecast_seek_first_frame_seconds_count"); n < 2 {
		t.Fatalf("seek latency observed %v times", n)
	}
}

// TestWallSeeksInStep: a seek with no room on a multi-room connection
// moves every room to the same time, playing in step.
func TestWallSeeksInStep(t *testing.T) {
	p := pbStart(t, "a", "b")
	c := testenv.Dial(t, pbWS(p.base, "/ws/multi/", "rooms=a,b"), nil)
	at := p.t0.Add(8 * time.Second)
	if err := c.SendText(fmt.Sprintf(`{"type":"seek","at":"%d"}`, at.UnixMilli())); err != nil {
		t.Fatal(err)
	}
	last := map[string]time.Time{}
	deadline := time.Now().Add(10 * time.Second)
	checked := 0
	for checked < 20 {
		m, err := lyRead(c, time.Until(deadline))
		if err != nil {
			t.Fatal(err)
		}
		if m.Frame == nil || m.Frame.Captured.Before(at.Add(-time.Second)) {
			continue
		}
		last[m.Block.Room] = m.Frame.Captured
		if len(last) == 2 {
			// The two rooms' newest frames are at most ~2 frame intervals
			// apart in recorded time: they play in step.
			if d := last["a"].Sub(last["b"]); d > 250*time.Millisecond || d < -250*time.Millisecond {
				t.Fatalf("rooms %v apart in recorded time", d)
			}
			checked++
		}
	}
}

// TestRecordingsClipSnapshotAndMJPEG: the span list, a clip (ffprobe reads
// it; byte ranges work), a snapshot and an MJPEG stream at a time.
func TestRecordingsClipSnapshotAndMJPEG(t *testing.T) {
	p := pbStart(t, "cam")
	var list struct {
		Room  string
		Spans []struct {
			Start, End time.Time
			Codecs     []string
		}
	}
	getJSON(t, p.base+"/video/cam/recordings", &list)
	if list.Room != "cam" || len(list.Spans) != 1 || !list.Spans[0].Start.Equal(p.t0) || list.Spans[0].Codecs[0] != "jpeg" {
		t.Fatalf("recordings: %+v", list)
	}
	// Relative ends count from now: the last 10 s hold the recording's end.
	getJSON(t, p.base+"/video/cam/recordings?from=-10s&to=-1s", &list)
	if len(list.Spans) != 1 || list.Spans[0].Start.Before(time.Now().Add(-11*time.Second)) || !list.Spans[0].End.Equal(p.t0.Add(20*time.Second)) {
		t.Fatalf("recordings of the last 10 s: %+v", list)
	}
	start, end := p.t0.Add(2*time.Second), p.t0.Add(6*time.Second)
	clipURL := fmt.Sprintf("%s/video/cam/clip.mp4?start=%s&end=%s", p.base, start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano))
	resp, err := http.Get(clipURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" || resp.Header.Get("Accept-Ranges") != "bytes" ||
		resp.ContentLength != int64(len(body)) {
		t.Fatalf("clip: %s %v, %d bytes", resp.Status, resp.Header, len(body))
	}
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.RequireTool(t, "ffprobe")
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-show_entries", "stream=codec_name,nb_read_frames", "-of", "csv=p=0", path).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "mjpeg,41" {
		t.Fatalf("ffprobe: %q, %v; want mjpeg,41", out, err)
	}
	req, _ := http.NewRequest(http.MethodGet, clipURL, nil)
	req.Header.Set("Range", "bytes=100-199")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(part) != string(body[100:200]) {
		t.Fatalf("range: %s, %d bytes", resp.Status, len(part))
	}

	at := p.t0.Add(7*time.Second + 50*time.Millisecond)
	resp, err = http.Get(p.base + "/video/cam/snapshot.jpg?at=" + at.Format(time.RFC3339Nano))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Frame-Seq") != "71" || string(img) != string(p.frames["cam"][70].Payload) {
		t.Fatalf("snapshot at 7.05 s: %s seq %s", resp.Status, resp.Header.Get("X-Frame-Seq"))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, p.base+"/video/cam/stream.mjpg?at=-10s", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for i := range 5 {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		b, _ := io.ReadAll(part)
		ts, _ := strconv.ParseFloat(part.Header.Get("X-Timestamp"), 64)
		captured := time.UnixMicro(int64(ts * 1e6))
		if d := time.Since(captured); d < 9*time.Second || d > 12*time.Second || len(b) == 0 {
			t.Fatalf("part %d captured %v ago (%d bytes), want ~10 s ago", i, d, len(b))
		}
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

// TestPlaybackBadInput: each bad ask is a clear 4xx before any upgrade,
// with the reason in the body.
func TestPlaybackBadInput(t *testing.T) {
	p := pbStart(t, "cam")
	future := time.Now().Add(time.Hour).Format(time.RFC3339)
	before := p.t0.Add(-10 * time.Minute).Format(time.RFC3339)
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/video/cam/snapshot.jpg?at=yesterday", 400, "is not an RFC 3339 time"},
		{"/video/cam/snapshot.jpg?at=" + future, 400, "is in the future"},
		{"/video/cam/snapshot.jpg?at=" + before, 404, "no JPEG recording"},
		{"/video/nobody/snapshot.jpg?at=-10s", 404, "no JPEG recording"},
		{"/video/cam/recordings?from=-1m&to=-2m", 400, "to is before from"},
		{"/video/cam/recordings?from=x", 400, "from \"x\""},
		{"/video/cam/clip.mp4?start=-10s&end=-20s", 400, "end must be after start"},
		{"/video/cam/clip.mp4?start=-3h", 400, "GATEWAY_CLIP_MAX"},
		{"/video/cam/clip.mp4", 400, "start is empty"},
		{"/video/nobody/clip.mp4?start=-20s", 404, "no recording of room"},
		{"/video/cam/stream.mjpg?at=" + future, 400, "is in the future"},
		{"/video/cam/stream.mjpg?at=" + before, 404, "recording starts at"},
	} {
		resp, err := http.Get(p.base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("GET %s: %s %q, want %d with %q", tc.path, resp.Status, b, tc.status, tc.want)
		}
	}
	for _, tc := range []struct {
		query  string
		status int
		want   string
	}{
		{"role=view&format=binary&at=-10x", 400, "is not a relative time"},
		{"role=view&format=binary&at=" + before, 404, "recording starts at"},
		{"role=publish&at=-10s", 400, "not publishers"},
	} {
		_, status, body, err := testenv.TryDial(t, pbWS(p.base, "/ws/video/cam/", tc.query), nil)
		if err == nil || status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("dial ?%s: %d %q %v, want %d with %q", tc.query, status, body, err, tc.status, tc.want)
		}
	}
	_, status, body, err := testenv.TryDial(t, pbWS(p.base, "/ws/video/nobody/", "role=view&at=-10s"), nil)
	if err == nil || status != 404 || !strings.Contains(body, "no recording of room") {
		t.Errorf("an unknown room: %d %q", status, body)
	}
	// A gateway without a store says so.
	_, ts := startInProcess(t, nil)
	resp, err := http.Get(ts.URL + "/video/cam/recordings")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), "keeps no recordings") {
		t.Errorf("no store: %s %q", resp.Status, b)
	}
}
