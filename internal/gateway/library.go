package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/playback"
	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// Recorded footage, for playback from any replica (docs/recording.md):
// the store GATEWAY_RECORD_STORE names and its index. Every replica that
// has the store set plays back, whether or not it records.

// openLibrary opens the recordings' store, if one is set.
func (s *Server) openLibrary() error {
	if s.cfg.RecordStore == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	st, err := openRecordStore(ctx, &s.cfg, s.redis, s.log) // s3://: journals in Redis (Validate refused it without)
	cancel()
	if err != nil {
		return err
	}
	if b, ok := st.(*s3store.Bucket); ok {
		go func() { // the uploader of buffered segments stops with the gateway
			<-s.ctx.Done()
			b.Close()
		}()
		s.registerS3Metrics(b)
	}
	s.lib = &playback.Library{Store: st, Catalog: index.New(st, &index.Options{Logger: s.log.With("component", "index")}),
		Log: s.log.With("component", "playback")}
	return nil
}

// openRecordStore opens the store GATEWAY_RECORD_STORE names: a directory,
// or an S3 bucket whose journals live in client's Redis.
func openRecordStore(ctx context.Context, cfg *Config, client redis.UniversalClient, log *slog.Logger) (store.Store, error) {
	if !s3store.IsLocation(cfg.RecordStore) {
		d, err := store.NewDir(cfg.RecordStore)
		if err != nil {
			return nil, settingError("RECORD_STORE", "%v", err)
		}
		return d, nil
	}
	c := cfg.s3Config()
	c.Log = log.With("component", "s3store")
	b, err := s3store.New(ctx, client, c)
	switch {
	case errors.Is(err, s3store.ErrCredentials) && cfg.S3CredentialsFile != "":
		return nil, settingError("S3_CREDENTIALS_FILE", "%v", err)
	case err != nil:
		return nil, settingError("RECORD_STORE", "%v", err)
	}
	return b, nil
}

// OpenRecordStore opens the recordings' store cfg names, for maintenance
// commands (gateway recordings rebuild): a directory, or an S3 bucket with
// its journals in cfg's Redis. close releases what it opened.
func OpenRecordStore(ctx context.Context, cfg Config, log *slog.Logger) (st store.Store, close func(), err error) {
	client, err := newRedisClient(&cfg)
	if err != nil {
		return nil, nil, err
	}
	st, err = openRecordStore(ctx, &cfg, client, log)
	if err != nil {
		if client != nil {
			client.Close()
		}
		return nil, nil, err
	}
	return st, func() {
		if b, ok := st.(*s3store.Bucket); ok {
			b.Close()
		}
		if client != nil {
			client.Close()
		}
	}, nil
}

// registerS3Metrics registers the S3 store's own counts: what S3 took,
// what waits in Redis, what was dropped at the bound (docs/recording.md
// "S3").
func (s *Server) registerS3Metrics(b *s3store.Bucket) {
	for _, m := range []struct {
		name, help string
		value      func(s3store.Stats) float64
	}{
		{"puts_total", "Objects (segments, index logs) written to S3.",
			func(st s3store.Stats) float64 { return float64(st.Puts) }},
		{"put_errors_total", "Writes S3 failed (down, too slow, refusing the credentials, full); their bytes went to the Redis buffer.",
			func(st s3store.Stats) float64 { return float64(st.PutErrors) }},
		{"buffered_total", "Objects kept in Redis because S3 failed their write, for the uploader.",
			func(st s3store.Stats) float64 { return float64(st.Buffered) }},
		{"uploaded_total", "Buffered objects written to S3 once it took writes again.",
			func(st s3store.Stats) float64 { return float64(st.Uploaded) }},
		{"lost_total", "Buffered objects S3 refused for good (too large, a bad request), dropped.",
			func(st s3store.Stats) float64 { return float64(st.Lost) }},
		{"refused_total", "Appends refused at GATEWAY_S3_BUFFER or GATEWAY_S3_JOURNAL_MAX: recording dropped.",
			func(st s3store.Stats) float64 { return float64(st.Refused) }},
		{"redis_bytes", "Bytes of open segments, index logs and buffered objects in Redis, as of the last write.",
			func(st s3store.Stats) float64 { return float64(st.BufferBytes) }},
		{"writes_healthy", "1 while S3 takes writes, 0 while they are buffered in Redis.",
			func(st s3store.Stats) float64 { return map[bool]float64{true: 1}[st.Healthy] }},
	} {
		f := func() float64 { return m.value(b.Stats()) }
		if strings.HasSuffix(m.name, "_total") {
			s.metrics.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "framecast_record_s3_" + m.name, Help: m.help}, f))
		} else {
			s.metrics.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "framecast_record_s3_" + m.name, Help: m.help}, f))
		}
	}
}

// Errors of playback requests.
var (
	// errNoLibrary answers a playback request on a gateway without
	// recordings (404).
	errNoLibrary = errors.New("this gateway keeps no recordings (GATEWAY_RECORD_STORE is not set)")
	// errUnreadable says the store or the index could not be read now:
	// S3 down, say (503: try again).
	errUnreadable = errors.New("the recordings cannot be read now")
)

// playbackStatus is the HTTP status of a playback request refused with
// err: 503 when the recordings could not be read, else 404.
func playbackStatus(err error) int {
	if errors.Is(err, errUnreadable) {
		return http.StatusServiceUnavailable
	}
	return http.StatusNotFound
}

// libraryTimeout bounds the index and store reads of one request.
const libraryTimeout = 5 * time.Second

// checkAt says whether room can be played from at, before any upgrade: its
// error is worth a 404 with the reason (no recordings here; none of the
// room at or after at; at before the room's recording began).
func (s *Server) checkAt(ctx context.Context, room string, at time.Time) error {
	if s.lib == nil {
		return errNoLibrary
	}
	ctx, cancel := context.WithTimeout(ctx, libraryTimeout)
	defer cancel()
	var first *index.Segment
	for _, codec := range index.Codecs {
		seg, err := s.lib.Catalog.Find(ctx, frames.Stream{Room: room, Codec: codec}, at)
		if errors.Is(err, index.ErrNoFootage) {
			continue
		}
		if err != nil {
			s.log.Warn("playback: index unreadable", "room", room, "err", err)
			return errUnreadable
		}
		if first == nil || seg.Start.Before(first.Start) {
			first = &seg
		}
	}
	if first == nil {
		return fmt.Errorf("no recording of room %q at or after %s", room, at.UTC().Format(time.RFC3339Nano))
	}
	if first.Start.Sub(at) > playback.MaxGap {
		// A gap, or before the recording began: which?
		spans, err := s.lib.Catalog.Spans(ctx, room, at.Add(-30*24*time.Hour), at)
		if err == nil && len(spans) == 0 {
			return fmt.Errorf("room %q's recording starts at %s, after %s", room,
				first.Start.UTC().Format(time.RFC3339Nano), at.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

// admitPlayback checks, for an admitted connection that asked ?at=, that
// its room's recording can be played from then (checkAt), answering 400
// (a publisher; a multi-room connection asks per room) or 404 with the
// reason and giving up the admission otherwise.
func (s *Server) admitPlayback(w http.ResponseWriter, r *http.Request, k *conn, room string, view viewOpts) bool {
	var err error
	status := http.StatusBadRequest
	switch {
	case view.role == rolePublish:
		err = errors.New("at is for viewers, not publishers")
	case room != "":
		err = s.checkAt(r.Context(), room, view.at)
		status = playbackStatus(err)
	}
	if err == nil {
		return true
	}
	k.abort()
	s.metrics.rejected.WithLabelValues("no_recording").Inc()
	http.Error(w, err.Error(), status)
	return false
}

// handleRecordings serves GET /video/{room}/recordings?from=&to=: the
// room's recorded spans as JSON (docs/recording.md), from the index alone.
// from defaults to 30 days before to, to to now.
func (s *Server) handleRecordings(w http.ResponseWriter, r *http.Request) {
	room, ok := s.playbackRoom(w, r)
	if !ok {
		return
	}
	now := time.Now()
	q := r.URL.Query()
	to, from := now, time.Time{}
	var err error
	if q.Has("to") {
		if to, err = parseAnyTime("to", q.Get("to"), now); err != nil {
			s.badRequest(w, err.Error())
			return
		}
	}
	if q.Has("from") {
		if from, err = parseAnyTime("from", q.Get("from"), now); err != nil {
			s.badRequest(w, err.Error())
			return
		}
	} else {
		from = to.Add(-30 * 24 * time.Hour)
	}
	if to.Before(from) {
		s.badRequest(w, "to is before from")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), libraryTimeout)
	defer cancel()
	spans, err := s.lib.Catalog.Spans(ctx, room, from, to)
	if err != nil {
		s.log.Warn("recordings: index unreadable", "room", room, "err", err)
		http.Error(w, errUnreadable.Error(), http.StatusServiceUnavailable)
		return
	}
	if spans == nil {
		spans = []index.Span{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(struct {
		Room  string       `json:"room"`
		Spans []index.Span `json:"spans"`
	}{room, spans})
}

// playbackRoom validates the room of a playback request and its access
// (the room's view permission), answering the error itself.
func (s *Server) playbackRoom(w http.ResponseWriter, r *http.Request) (string, bool) {
	room := r.PathValue("room")
	if !frames.ValidRoom(room) {
		http.Error(w, "room names are 1 to 64 characters from A-Z, a-z, 0-9 and _", http.StatusNotFound)
		return "", false
	}
	if _, ok := s.authorize(w, r, room, auth.View); !ok {
		return "", false
	}
	if s.lib == nil {
		http.Error(w, errNoLibrary.Error(), http.StatusNotFound)
		return "", false
	}
	return room, true
}

// maxClipExports bounds the clips being cut at once on a replica: a clip
// is held in memory while it is served.
const maxClipExports = 2

// handleClip serves GET /video/{room}/clip.mp4?start=&end=: the recording
// from start to end as a progressive MP4 (index first, Content-Length,
// byte ranges), without transcoding: H.264 when the room recorded it
// (Chromium's <video> plays and seeks it), else M-JPEG in MP4 (VLC, ffmpeg,
// QuickTime play it). A clip longer than GATEWAY_CLIP_MAX is refused.
func (s *Server) handleClip(w http.ResponseWriter, r *http.Request) {
	room, ok := s.playbackRoom(w, r)
	if !ok {
		return
	}
	now := time.Now()
	q := r.URL.Query()
	start, err := parseTime("start", q.Get("start"), now)
	if err != nil {
		s.badRequest(w, err.Error())
		return
	}
	end := now
	if q.Has("end") {
		if end, err = parseTime("end", q.Get("end"), now); err != nil {
			s.badRequest(w, err.Error())
			return
		}
	}
	switch {
	case !end.After(start):
		s.badRequest(w, "end must be after start")
		return
	case end.Sub(start) > s.cfg.clipMax():
		s.badRequest(w, fmt.Sprintf("the clip is %v long; clips are at most %v (GATEWAY_CLIP_MAX)", end.Sub(start).Round(time.Second), s.cfg.clipMax()))
		return
	}
	if n := s.clipExports.Add(1); n > maxClipExports {
		s.clipExports.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many clips being cut on this gateway; try again", http.StatusServiceUnavailable)
		return
	}
	defer s.clipExports.Add(-1)
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	clip, err := s.lib.Clip(ctx, room, start, end)
	switch {
	case errors.Is(err, playback.ErrNoFootage):
		http.Error(w, fmt.Sprintf("no recording of room %q between %s and %s", room,
			start.UTC().Format(time.RFC3339Nano), end.UTC().Format(time.RFC3339Nano)), http.StatusNotFound)
		return
	case err != nil:
		s.log.Warn("clip: cannot cut", "room", room, "err", err)
		http.Error(w, errUnreadable.Error(), http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	buf.Grow(int(clip.Size()))
	if _, err := clip.WriteTo(&buf); err != nil {
		http.Error(w, "failed to write the clip", http.StatusInternalServerError)
		return
	}
	name := fmt.Sprintf("%s-%s.mp4", room, clip.Start.UTC().Format("20060102T150405Z"))
	w.Header().Set("Content-Type", "video/mp4")
	w.Header().Set("Content-Disposition", `inline; filename="`+name+`"`)
	w.Header().Set("X-Clip-Start", clip.Start.UTC().Format(time.RFC3339Nano))
	w.Header().Set("X-Clip-Frames", strconv.Itoa(clip.Frames))
	s.metrics.clips.Inc()
	http.ServeContent(w, r, name, clip.Start, bytes.NewReader(buf.Bytes()))
}
