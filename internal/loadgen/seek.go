package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
)

// Seek is one move of the seeking viewer (Config.Seeks) into the room's
// recording and back to live. Times are milliseconds from just before the
// control message was written.
type Seek struct {
	// AtMS is the time sought, Unix milliseconds.
	AtMS int64 `json:"at_ms"`
	// PlaybackMS is the arrival of the `playback` message.
	PlaybackMS float64 `json:"playback_ms"`
	// FirstPictureMS is the arrival of the first picture after it: the
	// keyframe at or before the time sought (H.264), the JPEG at or
	// before it. Configurations are not pictures.
	FirstPictureMS float64 `json:"first_picture_ms"`
	// ThroughMS is the arrival of the last picture captured at or before
	// the time sought: with it a decoder has what it needs to show that
	// time (for H.264, the group from the keyframe, which the gateway
	// hands over at once; for JPEG, the first picture).
	ThroughMS float64 `json:"through_ms"`
	// Handed counts the pictures captured at or before the time sought;
	// StartBeforeMS is how long before it the first one was captured.
	Handed        int     `json:"handed"`
	StartBeforeMS float64 `json:"start_before_ms"`
	// Codec is the `playback` message's codec.
	Codec string `json:"codec"`
	// LiveMS is, from the `live` control message, the arrival of the
	// first picture after the gateway's `live` answer; LiveCaughtUpMS of
	// the picture the publisher had last sent when it was asked (or a
	// later one).
	LiveMS         float64 `json:"live_ms"`
	LiveCaughtUpMS float64 `json:"live_caught_up_ms"`
}

// SeekReport gathers the seeking viewer's moves (Config.Seeks).
type SeekReport struct {
	To    string `json:"to"`
	Codec string `json:"codec"` // what the viewer asked: "h264" or "jpeg"
	// Seeks counts the moves that got their recorded picture and went
	// live again; Failed the others (their errors are in Report.Errors).
	Seeks  int `json:"seeks"`
	Failed int `json:"failed,omitempty"`
	// Spreads of the moves' figures (Seek), in milliseconds; Handed in
	// pictures.
	Playback     Spread `json:"playback_ms"`
	FirstPicture Spread `json:"first_picture_ms"`
	Through      Spread `json:"through_ms"`
	Handed       Spread `json:"handed_pictures"`
	StartBefore  Spread `json:"start_before_ms"`
	Live         Spread `json:"live_ms"`
	LiveCaughtUp Spread `json:"live_caught_up_ms"`
	// GatewaySeek and GatewayLive are what the gateway's own histogram
	// (SeekHistogram) gained over the seeks and over the returns to live,
	// scraped before and after each (nil when its /metrics did not
	// answer).
	GatewaySeek *HistogramDelta `json:"gateway_seek,omitempty"`
	GatewayLive *HistogramDelta `json:"gateway_live,omitempty"`
	Samples     []Seek          `json:"samples"`
}

// SeekHistogram is the gateway's histogram of the time from a `seek` or
// `live` control message to the first frame written for it.
const SeekHistogram = "framecast_seek_first_frame_seconds"

// HistogramDelta is what a Prometheus histogram gained between two
// scrapes.
type HistogramDelta struct {
	Count float64 `json:"count"`
	// MeanMS is the gained sum over the gained count, in milliseconds.
	MeanMS float64 `json:"mean_ms"`
	// Buckets are the cumulative counts gained per finite upper bound,
	// in order (Count is the +Inf bucket's).
	Buckets []Bucket `json:"buckets"`
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	LeMS  float64 `json:"le_ms"` // upper bound, milliseconds
	Count float64 `json:"count"`
}

// Quantile returns the upper bound (ms) of the bucket holding the q
// quantile: the histogram says the quantile is at most that. +Inf when it
// is past the last finite bound, 0 with no observation.
func (h *HistogramDelta) Quantile(q float64) float64 {
	if h == nil || h.Count <= 0 {
		return 0
	}
	want := q * h.Count
	for _, b := range h.Buckets {
		if b.Count >= want {
			return b.LeMS
		}
	}
	return math.Inf(1)
}

// add adds o's counts to h (both of one histogram, so the same buckets).
func (h *HistogramDelta) add(o HistogramDelta) {
	sum := h.MeanMS*h.Count + o.MeanMS*o.Count
	h.Count += o.Count
	if h.Count > 0 {
		h.MeanMS = sum / h.Count
	}
	if len(h.Buckets) == 0 {
		h.Buckets = slices.Clone(o.Buckets)
		return
	}
	for i := range min(len(h.Buckets), len(o.Buckets)) {
		h.Buckets[i].Count += o.Buckets[i].Count
	}
}

// histogramDelta returns what histogram name gained from before to after.
func histogramDelta(before, after Metrics, name string) HistogramDelta {
	var d HistogramDelta
	prefix := name + `_bucket{le="`
	for k, v := range after {
		le, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		bound, err := strconv.ParseFloat(strings.TrimSuffix(le, `"}`), 64)
		if err != nil || math.IsInf(bound, 0) {
			continue
		}
		d.Buckets = append(d.Buckets, Bucket{LeMS: bound * 1000, Count: v - before[k]})
	}
	slices.SortFunc(d.Buckets, func(a, b Bucket) int { return cmp.Compare(a.LeMS, b.LeMS) })
	d.Count = after[name+"_count"] - before[name+"_count"]
	if d.Count > 0 {
		d.MeanMS = (after[name+"_sum"] - before[name+"_sum"]) * 1000 / d.Count
	}
	return d
}

// seekTimeout bounds one move, from the control message to its pictures.
const seekTimeout = 10 * time.Second

// seekEvent is one message the seeking viewer read, with its arrival.
type seekEvent struct {
	at time.Time
	// A control message (text): its type, reason and codec.
	control            bool
	typ, reason, codec string
	kind               frames.Kind // a binary message
	seq                uint64
	capturedUS         int64
	readErr            error // the connection ended (last event)
}

// seekViewer is the seeking viewer's connection: a goroutine reads every
// message as it arrives (the viewer never falls behind, so a move's first
// picture is not queued behind live frames) and hands it over.
type seekViewer struct {
	conn   *websocket.Conn
	events chan seekEvent
}

func newSeekViewer(c *websocket.Conn) *seekViewer {
	v := &seekViewer{conn: c, events: make(chan seekEvent, 4096)}
	go v.read()
	return v
}

func (v *seekViewer) read() {
	defer close(v.events)
	var buf bytes.Buffer
	for {
		typ, r, err := v.conn.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			v.events <- seekEvent{at: time.Now(), readErr: err}
			return
		}
		ev := seekEvent{at: time.Now()}
		if typ == websocket.MessageText {
			var m struct{ Type, Reason, Codec string }
			if json.Unmarshal(buf.Bytes(), &m) == nil {
				ev.control, ev.typ, ev.reason, ev.codec = true, m.Type, m.Reason, m.Codec
			}
		} else if kind, seq, captured, _, ok := ParseMessage(buf.Bytes()); ok {
			ev.kind, ev.seq, ev.capturedUS = kind, seq, captured
		}
		v.events <- ev
	}
}

// next returns the next message, or an error when the connection ended
// or deadline passed.
func (v *seekViewer) next(deadline time.Time) (seekEvent, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case ev, ok := <-v.events:
		if !ok {
			return ev, errors.New("connection closed")
		}
		if ev.readErr != nil {
			return ev, fmt.Errorf("connection ended: %w", ev.readErr)
		}
		return ev, nil
	case <-t.C:
		return seekEvent{}, errors.New("timed out")
	}
}

// drain reads and discards messages until d has passed.
func (v *seekViewer) drain(d time.Duration) error {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if _, err := v.next(end); err != nil && time.Now().Before(end) {
			return err
		}
	}
	return nil
}

// send writes a control message and returns when it was written.
func (v *seekViewer) send(ctx context.Context, msg string) (time.Time, error) {
	t0 := time.Now()
	if err := v.conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		return t0, fmt.Errorf("failed to send %s: %w", msg, err)
	}
	return t0, nil
}

// seekQuery is the seeking viewer's query: a version-2 viewer, of the
// H.264 stream when the publisher plays one.
func seekQuery(h264 bool) string {
	q := "role=view&format=binary&v=2"
	if h264 {
		q += "&codec=h264"
	}
	return q
}

// runSeeks moves one viewer of room on cfg.Gateways[0] between the
// room's recording and live cfg.Seeks times, and returns the report. pub
// is the room's live publisher: its last sequence number says where live
// is. errf records each failed move.
func runSeeks(ctx context.Context, cfg *Config, d *dialer, room string, pub *publisher, errf func(string, ...any)) *SeekReport {
	h264 := pub.h264 != nil
	rep := &SeekReport{To: cfg.Gateways[0], Codec: "jpeg"}
	if h264 {
		rep.Codec = "h264"
	}
	c, err := d.dial(ctx, cfg.Gateways[0], room, seekQuery(h264))
	if err != nil {
		errf("seeks: %v", err)
		rep.Failed = cfg.Seeks
		return rep
	}
	defer c.CloseNow()
	v := newSeekViewer(c)
	metricsURL := httpURL(cfg.Gateways[0]) + "/metrics"
	scrape := func() Metrics {
		m, err := ScrapeMetrics(ctx, metricsURL)
		if err != nil {
			errf("seeks: %v", err)
			return nil
		}
		return m
	}
	var gwSeek, gwLive HistogramDelta
	gwOK := true
	// Live for a moment first: the first move leaves a live stream, as
	// the later ones do.
	if err := v.drain(cfg.SeekHold); err != nil {
		errf("seeks: %v", err)
		rep.Failed = cfg.Seeks
		return rep
	}
	// A fixed seed: the times sought are the same every run.
	rnd := rand.New(rand.NewPCG(14, 2))
	span := cfg.SeekTo.Sub(cfg.SeekFrom)
	var playback, first, through, handed, before, live, liveCaught []float64
	for i := range cfg.Seeks {
		if ctx.Err() != nil {
			break
		}
		at := cfg.SeekFrom.Add(time.Duration(rnd.Int64N(int64(span)))).Truncate(time.Millisecond)
		m0 := scrape()
		s, err := seekOnce(ctx, v, at, cfg.SeekHold)
		m1 := scrape()
		if err == nil {
			err = liveOnce(ctx, v, pub, &s, cfg.SeekHold)
		}
		m2 := scrape()
		if err != nil {
			rep.Failed++
			errf("seek %d (to %s): %v", i+1, at.UTC().Format(time.RFC3339Nano), err)
			if ctx.Err() != nil {
				break
			}
			// Back to a known state: live.
			_, _ = v.send(ctx, `{"type":"live"}`)
			_ = v.drain(cfg.SeekHold)
			gwOK = false // the failed move's observations would be mixed in
			continue
		}
		if m0 != nil && m1 != nil && m2 != nil {
			gwSeek.add(histogramDelta(m0, m1, SeekHistogram))
			gwLive.add(histogramDelta(m1, m2, SeekHistogram))
		} else {
			gwOK = false
		}
		rep.Seeks++
		rep.Samples = append(rep.Samples, s)
		playback = append(playback, s.PlaybackMS)
		first = append(first, s.FirstPictureMS)
		through = append(through, s.ThroughMS)
		handed = append(handed, float64(s.Handed))
		before = append(before, s.StartBeforeMS)
		live = append(live, s.LiveMS)
		liveCaught = append(liveCaught, s.LiveCaughtUpMS)
	}
	_ = c.Close(websocket.StatusNormalClosure, "")
	rep.Playback, rep.FirstPicture, rep.Through = SpreadOf(playback), SpreadOf(first), SpreadOf(through)
	rep.Handed, rep.StartBefore = SpreadOf(handed), SpreadOf(before)
	rep.Live, rep.LiveCaughtUp = SpreadOf(live), SpreadOf(liveCaught)
	if gwOK && gwSeek.Count > 0 {
		rep.GatewaySeek, rep.GatewayLive = &gwSeek, &gwLive
	}
	return rep
}

// seekOnce sends a seek to at and reads until the pictures through at
// have arrived, then for hold more.
func seekOnce(ctx context.Context, v *seekViewer, at time.Time, hold time.Duration) (Seek, error) {
	s := Seek{AtMS: at.UnixMilli()}
	t0, err := v.send(ctx, fmt.Sprintf(`{"type":"seek","at":"%d"}`, s.AtMS))
	if err != nil {
		return s, err
	}
	deadline := t0.Add(seekTimeout)
	atUS := at.UnixMicro()
	playing, started := false, false
	for {
		ev, err := v.next(deadline)
		switch {
		case err != nil:
			return s, fmt.Errorf("playback message %v, first picture %v: %w", playing, started, err)
		case ev.control && ev.typ == "error":
			return s, fmt.Errorf("the gateway refused the seek: %s", ev.reason)
		case ev.control && ev.typ == "playback":
			playing = true
			s.PlaybackMS, s.Codec = ms(ev.at.Sub(t0)), ev.codec
			continue
		case ev.control && ev.typ == "live" && playing:
			return s, fmt.Errorf("went live (%s) before the recording's pictures arrived", ev.reason)
		case ev.control, !playing, !isPicture(ev.kind):
			continue // live frames in flight before `playback`, layers, configurations
		}
		if !started {
			started = true
			s.FirstPictureMS, s.ThroughMS = ms(ev.at.Sub(t0)), ms(ev.at.Sub(t0))
			s.StartBeforeMS = float64(atUS-ev.capturedUS) / 1000
			if ev.capturedUS > atUS {
				// A pause in the recording at the time sought: the
				// gateway plays from the next footage.
				break
			}
		}
		if ev.capturedUS > atUS {
			break // paced: the pictures through at are all here
		}
		s.Handed++
		s.ThroughMS = ms(ev.at.Sub(t0))
	}
	return s, v.drain(hold)
}

// liveOnce sends a live message and reads until the publisher's last
// picture at that moment (or a later one) has arrived, then for hold more.
func liveOnce(ctx context.Context, v *seekViewer, pub *publisher, s *Seek, hold time.Duration) error {
	last := pub.lastSeq.Load()
	t0, err := v.send(ctx, `{"type":"live"}`)
	if err != nil {
		return err
	}
	deadline := t0.Add(seekTimeout)
	live := false
	for {
		ev, err := v.next(deadline)
		switch {
		case err != nil:
			return fmt.Errorf("back to live: live message %v, first live picture %v: %w", live, s.LiveMS > 0, err)
		case ev.control && ev.typ == "error":
			return fmt.Errorf("the gateway refused to go live: %s", ev.reason)
		case ev.control && ev.typ == "live":
			live = true
			continue
		case ev.control, !live, !isPicture(ev.kind):
			continue // recorded frames in flight before `live`, configurations
		}
		if s.LiveMS == 0 {
			s.LiveMS = ms(ev.at.Sub(t0))
		}
		if ev.seq >= last {
			s.LiveCaughtUpMS = ms(ev.at.Sub(t0))
			return v.drain(hold)
		}
	}
}
