package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/pkg/frames"
)

// LateJoin is one late joiner's figures (Config.LateJoins). Times are
// from just before the WebSocket dial, in milliseconds.
type LateJoin struct {
	// Cold reports that the replica had no subscription to the room's
	// stream when the viewer dialled (PUBSUB NUMSUB back to its count
	// before the first join; always true without a Redis address).
	Cold bool `json:"cold"`
	// HandshakeMS is the WebSocket handshake.
	HandshakeMS float64 `json:"handshake_ms"`
	// FirstPictureMS is the arrival of the first picture a decoder can
	// start from: the first keyframe (H.264), the first frame (JPEG).
	FirstPictureMS float64 `json:"first_picture_ms"`
	// CaughtUpMS is the arrival of the picture the publisher had last
	// sent when the viewer dialled (or a later one): from then on the
	// viewer is live.
	CaughtUpMS float64 `json:"caught_up_ms"`
	// Behind is how many pictures the first picture was older than the
	// publisher's last one at dialling (the group handed over, for H.264).
	Behind int64 `json:"behind"`
	// Pictures counts the pictures received until caught up; Configs the
	// H.264 configurations; Undecodable the deltas received before the
	// first keyframe (a decoder could not use them: should be 0).
	Pictures    int `json:"pictures"`
	Configs     int `json:"configs,omitempty"`
	Undecodable int `json:"undecodable,omitempty"`
	// UnsubscribedMS is how long after the viewer closed the replica's
	// subscription to the stream was gone (with a Redis address).
	UnsubscribedMS float64 `json:"unsubscribed_ms,omitempty"`
}

// LateJoinReport gathers the late joins of a run.
type LateJoinReport struct {
	To    string `json:"to"`
	Codec string `json:"codec"` // "h264" or "jpeg"
	// Joins counts the joins that got their first picture; Failed the
	// others (their errors are in Report.Errors); Warm the joins that
	// found the replica still subscribed.
	Joins  int `json:"joins"`
	Failed int `json:"failed,omitempty"`
	Warm   int `json:"warm,omitempty"`
	// FirstPicture, CaughtUp and Handshake summarize the joins'
	// figures in milliseconds.
	FirstPicture Spread `json:"first_picture_ms"`
	CaughtUp     Spread `json:"caught_up_ms"`
	Handshake    Spread `json:"handshake_ms"`
	// Behind is the joins' Behind, in pictures.
	Behind Spread `json:"behind_pictures"`
	// KeyframeRequests counts the keyframe requests the publisher
	// received from the first join's dial until the last join's replica
	// had unsubscribed (H.264).
	KeyframeRequests uint64     `json:"keyframe_requests"`
	Undecodable      int        `json:"undecodable,omitempty"`
	Samples          []LateJoin `json:"samples"`
}

// Spread is the p50, p95 and max of a few samples (nearest rank).
type Spread struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
}

// SpreadOf returns the Spread of xs (zero if there are none).
func SpreadOf(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := func(q float64) float64 {
		i := int(q*float64(len(s))+0.999999) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return Spread{P50: rank(0.50), P95: rank(0.95), Max: s[len(s)-1]}
}

// lateJoinChannel is the Redis channel of room's stream the late joiners
// receive, with the gateway's default prefix: H.264 layer 0 travels on
// video_<room>@h264, JPEG's main layer on video_<room>.
func lateJoinChannel(room string, h264 bool) string {
	if h264 {
		return "video_" + room + "@h264"
	}
	return "video_" + room
}

// unsubscribeWait bounds the wait for a replica to drop its subscription.
const unsubscribeWait = 5 * time.Second

// joinTimeout bounds one join, from dialling to catching up.
const joinTimeout = 10 * time.Second

// runLateJoins performs cfg.LateJoins joins of room against
// cfg.LateJoinTo, one after another, until done or ctx ends, and returns
// their report. pub is the room's publisher: its last sequence number
// says where live is, its keyframe requests are counted. errf records
// each failed join.
func runLateJoins(ctx context.Context, cfg *Config, d *dialer, room string, pub *publisher, errf func(string, ...any)) *LateJoinReport {
	h264 := pub.h264 != nil
	rep := &LateJoinReport{To: cfg.LateJoinTo, Codec: "jpeg"}
	query := "role=view&format=binary"
	if h264 {
		rep.Codec = "h264"
		query += "&v=2&codec=h264"
	}
	channel := lateJoinChannel(room, h264)
	// Replicas other than LateJoinTo may be subscribed for viewers of
	// their own (the run's viewers, on other gateways): the joiners'
	// replica counts as unsubscribed when the channel's subscriber count
	// is back to what it was before the first join.
	var base int64
	if cfg.RedisAddr != "" {
		n, err := RedisNumSub(ctx, cfg.RedisAddr, channel)
		if err != nil {
			errf("late joins: PUBSUB NUMSUB %s: %v", channel, err)
		}
		base = n
	}
	subscribed := func() (bool, error) {
		if cfg.RedisAddr == "" {
			return false, nil
		}
		n, err := RedisNumSub(ctx, cfg.RedisAddr, channel)
		return n > base, err
	}
	// waitUnsubscribed polls until the replica has no subscription, and
	// says how long it took and whether it happened.
	waitUnsubscribed := func() (time.Duration, bool) {
		t0 := time.Now()
		for {
			sub, err := subscribed()
			if err != nil {
				errf("late joins: PUBSUB NUMSUB %s: %v", channel, err)
				return time.Since(t0), false
			}
			if !sub {
				return time.Since(t0), true
			}
			if time.Since(t0) > unsubscribeWait || !sleepUntil(ctx, time.Now().Add(5*time.Millisecond)) {
				return time.Since(t0), false
			}
		}
	}
	requests := func() uint64 {
		if h264 {
			return pub.h264.requests.Load()
		}
		return 0
	}
	// A fixed seed: the pauses, hence the joins' places in the group of
	// pictures, are the same every run.
	rnd := rand.New(rand.NewPCG(14, 8))
	req0 := requests()
	var first, caught, hand, behind []float64
	for i := range cfg.LateJoins {
		_, cold := waitUnsubscribed()
		if cfg.LateJoinPause > 0 && !sleepUntil(ctx, time.Now().Add(time.Duration(rnd.Int64N(int64(cfg.LateJoinPause))))) {
			break
		}
		j, err := lateJoin(ctx, d, cfg.LateJoinTo, room, query, h264, pub)
		if err != nil {
			rep.Failed++
			errf("late join %d: %v", i+1, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		j.Cold = cold
		if !cold {
			rep.Warm++
		}
		if cfg.RedisAddr != "" {
			took, ok := waitUnsubscribed()
			if ok {
				j.UnsubscribedMS = ms(took)
			}
		}
		rep.Joins++
		rep.Undecodable += j.Undecodable
		rep.Samples = append(rep.Samples, j)
		first = append(first, j.FirstPictureMS)
		caught = append(caught, j.CaughtUpMS)
		hand = append(hand, j.HandshakeMS)
		behind = append(behind, float64(j.Behind))
	}
	rep.KeyframeRequests = requests() - req0
	rep.FirstPicture, rep.CaughtUp, rep.Handshake, rep.Behind = SpreadOf(first), SpreadOf(caught), SpreadOf(hand), SpreadOf(behind)
	return rep
}

// lateJoin is one join: dial, read until the first picture and caught up
// with the publisher's last picture at dialling, close.
func lateJoin(ctx context.Context, d *dialer, base, room, query string, h264 bool, pub *publisher) (LateJoin, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	var j LateJoin
	live := pub.lastSeq.Load()
	t0 := time.Now()
	c, err := d.dial(ctx, base, room, query)
	if err != nil {
		return j, err
	}
	defer c.CloseNow()
	j.HandshakeMS = ms(time.Since(t0))
	var buf bytes.Buffer
	started := false
	for {
		typ, r, err := c.Reader(ctx)
		if err != nil {
			return j, fmt.Errorf("after %d pictures (first picture %v): %w", j.Pictures, started, err)
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return j, fmt.Errorf("failed to read a message: %w", err)
		}
		at := time.Since(t0)
		if typ == websocket.MessageText {
			continue // layers, layer
		}
		kind, seq, _, _, ok := ParseMessage(buf.Bytes())
		if !ok {
			return j, fmt.Errorf("a message that is not a frame (%d bytes)", buf.Len())
		}
		switch {
		case kind == frames.KindH264Config:
			j.Configs++
			continue
		case !isPicture(kind):
			continue // an offline event
		case h264 && kind == frames.KindJPEG, !h264 && kind != frames.KindJPEG:
			return j, fmt.Errorf("a picture of kind %d on a %v stream", kind, map[bool]string{true: "H.264", false: "JPEG"}[h264])
		case !started && kind == frames.KindH264Delta:
			j.Undecodable++
			continue
		}
		if !started {
			started = true
			j.FirstPictureMS = ms(at)
			j.Behind = int64(live) - int64(seq)
		}
		j.Pictures++
		if seq >= live {
			j.CaughtUpMS = ms(at)
			_ = c.Close(websocket.StatusNormalClosure, "")
			return j, nil
		}
	}
}
