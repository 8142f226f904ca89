package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/framecast/framecast/internal/recording/recorder"
	"github.com/framecast/framecast/internal/recording/retention"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/redislayer"
)

// recording is the recording side of a replica whose GATEWAY_RECORD is
// set: a recorder of the matching rooms (one replica per room, by lease)
// and the retention worker (one per deployment, by lease). See
// docs/recording.md.
type recording struct {
	rec    *recorder.Recorder
	ret    *retention.Worker
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startRecording starts the recorder and retention when GATEWAY_RECORD is
// set. Call it once the hub and the library (openLibrary) exist.
func (s *Server) startRecording() error {
	cfg := &s.cfg
	if len(cfg.Record) == 0 || s.lib == nil { // Validate: RECORD needs RECORD_STORE, which opens the library
		return nil
	}
	// Playback's store and catalog: the recorder's index writes drop the
	// day logs they change from the catalog's cache at once.
	st, cat := s.lib.Store, s.lib.Catalog
	var leases recorder.Leases
	if s.redis != nil {
		holder := ""
		if s.scale != nil && s.scale.presence != nil {
			holder = s.scale.presence.ReplicaID()
		}
		leases = redislayer.NewLeases(s.redis, redislayer.LeaseOptions{
			KeyPrefix: cfg.RedisKeyPrefix,
			Holder:    holder,
			OnError:   func(op string, _ error) { s.metrics.redisErrors.WithLabelValues(op).Inc() },
		})
	} else {
		leases = recorder.NewMemoryLeases().For("local") // the one replica
	}
	r := &recording{}
	r.rec = recorder.New(s.hub, st, cat, leases, liveRooms{s}, &recorder.Options{
		Match:   cfg.records,
		Segment: segment.Options{Target: cfg.recordSegment()},
		MinFree: int64(cfg.RecordMinFree),
		Logger:  s.log,
	})
	r.ret = retention.New(st, cat, leases, &retention.Options{
		Keep:     durationOf(cfg.RecordKeep),
		MaxBytes: int64(cfg.RecordMaxBytes),
		MinFree:  int64(cfg.RecordMinFree),
		Logger:   s.log,
	})
	s.metrics.reg.MustRegister(recordingCollector{r})
	r.rec.Start()
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.ret.Run(ctx)
	}()
	s.rec = r
	s.log.Info("recording", "rooms", cfg.Record, "store", cfg.RecordStore, "segment", cfg.recordSegment(),
		"keep", durationOf(cfg.RecordKeep), "max_bytes", int64(cfg.RecordMaxBytes), "min_free", int64(cfg.RecordMinFree))
	return nil
}

// stopRecording seals the open segments and releases the leases (so that
// another replica takes the rooms over at once). It takes a few
// milliseconds; it gets recordStopBudget even when the connections used up
// ctx. Call it before Redis closes.
func (s *Server) stopRecording(ctx context.Context) {
	if s.rec == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordStopBudget)
	defer cancel()
	if err := s.rec.rec.Stop(ctx); err != nil {
		s.log.Warn("recording did not stop cleanly; the next holder recovers its segments", "err", err)
	}
	s.rec.cancel()
	s.rec.wg.Wait()
}

// recordStopBudget bounds stopRecording: past it the open segments are
// left for the next holder to recover (losing at most their last part).
const recordStopBudget = 2 * time.Second

func durationOf(a Age) time.Duration { return time.Duration(a) }

// liveRooms is the recorder's RoomSource: with Redis, the rooms every
// replica lists (presence) whose layer list says a publisher sends them
// (the frame cache's layer catalog, kept by the publisher's replica);
// without, the hub's rooms with a local publisher.
type liveRooms struct{ s *Server }

func (l liveRooms) LiveRooms(ctx context.Context) ([]recorder.LiveRoom, error) {
	s := l.s
	if s.scale == nil || s.scale.presence == nil {
		return recorder.LocalRooms{Hub: s.hub}.LiveRooms(ctx)
	}
	list, err := s.scale.presence.Rooms(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range list {
		if s.cfg.records(r.Name) {
			names = append(names, r.Name)
		}
	}
	// One round trip for every room's layer list, however many rooms are
	// live (a GET per room made a pass over 1,000 rooms 1,000 round trips).
	all, err := s.hub.AllLayersOf(ctx, names)
	if err != nil {
		return nil, err // unknown: keep what the recorder knew
	}
	var out []recorder.LiveRoom
	for _, name := range names {
		layers := all[name]
		if len(layers) == 0 {
			continue // nobody publishes it
		}
		lr := recorder.LiveRoom{Name: name}
		for _, x := range layers {
			lr.H264 = lr.H264 || x.Codec == frames.CodecH264 && x.Index == 0
		}
		out = append(out, lr)
	}
	return out, nil
}

// recordingCollector exposes the recorder's and retention's counters,
// read once per scrape.
type recordingCollector struct{ r *recording }

var (
	recBytesDesc = prometheus.NewDesc("framecast_recording_bytes_total",
		"Bytes of recorded footage written to the store, by codec.", []string{"codec"}, nil)
	recSegmentsDesc = prometheus.NewDesc("framecast_recording_segments_total",
		"Recorded segments sealed.", nil, nil)
	recStoreErrorsDesc = prometheus.NewDesc("framecast_recording_store_errors_total",
		"Failed store and index operations of recording and retention, by operation.", []string{"op"}, nil)
	recDroppedDesc = prometheus.NewDesc("framecast_recording_dropped_frames_total",
		"Frames not recorded, by reason: queue (the store is slower than the stream), paused (store nearly full), store (a failed write; waiting to recover), lease (renewal late).",
		[]string{"reason"}, nil)
	recLeaseDesc = prometheus.NewDesc("framecast_recording_lease_changes_total",
		"Room lease changes on this replica: acquired, taken_over (sealed what a dead holder left), lost, released.", []string{"change"}, nil)
	recRoomsDesc = prometheus.NewDesc("framecast_recording_rooms",
		"Rooms this replica records now.", nil, nil)
	recPausedDesc = prometheus.NewDesc("framecast_recording_paused",
		"1 while recording is paused because the store has less than half of GATEWAY_RECORD_MIN_FREE left.", nil, nil)
	recPausesDesc = prometheus.NewDesc("framecast_recording_pauses_total",
		"Times recording paused for lack of space.", nil, nil)
	retDeletedDesc = prometheus.NewDesc("framecast_retention_deleted_segments_total",
		"Recorded segments deleted by retention on this replica, by cause (age, bytes, free_space).", []string{"cause"}, nil)
	retDeletedBytesDesc = prometheus.NewDesc("framecast_retention_deleted_bytes_total",
		"Bytes of recorded segments deleted by retention on this replica, by cause.", []string{"cause"}, nil)
	retShortDesc = prometheus.NewDesc("framecast_retention_short_total",
		"Retention passes that found too little footage to delete to get back above GATEWAY_RECORD_MIN_FREE.", nil, nil)
	retSealedDesc = prometheus.NewDesc("framecast_retention_sealed_days_total",
		"Day logs retention sealed for rooms that stopped recording (a recorder seals its own).", nil, nil)
)

func (recordingCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{recBytesDesc, recSegmentsDesc, recStoreErrorsDesc, recDroppedDesc, recLeaseDesc,
		recRoomsDesc, recPausedDesc, recPausesDesc, retDeletedDesc, retDeletedBytesDesc, retShortDesc, retSealedDesc} {
		ch <- d
	}
}

func (c recordingCollector) Collect(ch chan<- prometheus.Metric) {
	rs, ts := c.r.rec.Stats(), c.r.ret.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for k, v := range rs.Bytes {
		counter(recBytesDesc, v, k)
	}
	counter(recSegmentsDesc, rs.Segments)
	for k, v := range rs.StoreErrors {
		counter(recStoreErrorsDesc, v, k)
	}
	counter(recStoreErrorsDesc, ts.Errors, "retention")
	for k, v := range rs.Dropped {
		counter(recDroppedDesc, v, k)
	}
	for k, v := range rs.Leases {
		counter(recLeaseDesc, v, k)
	}
	ch <- prometheus.MustNewConstMetric(recRoomsDesc, prometheus.GaugeValue, float64(rs.Rooms))
	paused := 0.0
	if rs.Paused {
		paused = 1
	}
	ch <- prometheus.MustNewConstMetric(recPausedDesc, prometheus.GaugeValue, paused)
	counter(recPausesDesc, rs.Pauses)
	for k, v := range ts.Deleted {
		counter(retDeletedDesc, v, k)
	}
	for k, v := range ts.DeletedBytes {
		counter(retDeletedBytesDesc, v, k)
	}
	counter(retShortDesc, ts.Short)
	counter(retSealedDesc, ts.Sealed)
}
