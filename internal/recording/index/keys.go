// Package index finds recorded footage without opening segments: per
// stream and UTC day, a log of fixed-size checksummed records (a segment
// began; a segment was sealed, with its time range, size and sequence
// numbers) from which Catalog answers a room's recorded spans, the
// segment holding a time, and the next one.
//
// Key layout in the store (package store), per recorded stream (a room's
// layer 0 in one codec, "h264" or "jpeg"):
//
//	seg/<room>/<codec>/<startµs>                       the open segment's journal
//	seg/<room>/<codec>/<YYYY>/<MM>/<DD>/<startµs>.mp4  sealed segments
//	idx/<room>/<codec>/<YYYYMMDD>                      the day's log: a journal
//	                                                   while records arrive, an
//	                                                   object once sealed
//	idx/<room>/<codec>/cutoff                          the retention cutoff
//	idx/<room>/<codec>/days                            the rollup: the sealed
//	                                                   days' spans in one object
//
// Times are Unix microseconds (the segment's first frame's capture time)
// and UTC dates. A day's log holds the records of the segments that began
// that day.
package index

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

// Codecs are the codecs a room is recorded in, in the order Spans lists
// them.
var Codecs = []frames.Codec{frames.CodecH264, frames.CodecJPEG}

// checkStream reports whether s can be recorded: a valid room's layer 0.
func checkStream(s frames.Stream) error {
	if err := s.Valid(); err != nil {
		return err
	}
	if s.Layer != 0 {
		return fmt.Errorf("index: only layer 0 is recorded, not %v", s)
	}
	return nil
}

func streamPrefix(kind string, s frames.Stream) string {
	return kind + "/" + s.Room + "/" + s.Codec.String() + "/"
}

// SegmentJournal is the journal of s's segment that began at start, while
// it is being written.
func SegmentJournal(s frames.Stream, start time.Time) string {
	return streamPrefix("seg", s) + strconv.FormatInt(start.UnixMicro(), 10)
}

// SegmentObject is the object of s's segment that began at start, once
// sealed.
func SegmentObject(s frames.Stream, start time.Time) string {
	return streamPrefix("seg", s) + start.UTC().Format("2006/01/02/") + strconv.FormatInt(start.UnixMicro(), 10) + ".mp4"
}

// DayLog is the log of the segments of s that began on day (its UTC date).
func DayLog(s frames.Stream, day time.Time) string {
	return streamPrefix("idx", s) + day.UTC().Format("20060102")
}

// CutoffObject holds s's retention cutoff.
func CutoffObject(s frames.Stream) string {
	return streamPrefix("idx", s) + "cutoff"
}

// RollupObject holds s's rollup: the spans of its sealed day logs, in one
// object (see rollup.go).
func RollupObject(s frames.Stream) string {
	return streamPrefix("idx", s) + "days"
}

// ParseLogName reads the name of an object or journal under idx/: its
// stream, and for a day log (DayLog) its day; the day is the zero time for
// the stream's cutoff and rollup. ok is false for any other name.
func ParseLogName(name string) (s frames.Stream, day time.Time, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 || parts[0] != "idx" || parts[2] == "" {
		return s, day, false
	}
	c, err := frames.ParseCodec(parts[2])
	if err != nil {
		return s, day, false
	}
	s = frames.Stream{Room: parts[1], Codec: c}
	if checkStream(s) != nil {
		return frames.Stream{}, day, false
	}
	switch name {
	case CutoffObject(s), RollupObject(s):
		return s, day, true
	}
	if day, err = time.Parse("20060102", parts[3]); err != nil || DayLog(s, day) != name {
		return frames.Stream{}, time.Time{}, false
	}
	return s, day, true
}

// RoomSegments is the prefix of every segment object and journal of room.
func RoomSegments(room string) string { return "seg/" + room + "/" }

// RoomLogs is the prefix of every day log and cutoff of room.
func RoomLogs(room string) string { return "idx/" + room + "/" }

// parseSegmentName reads a segment object's or journal's name: its stream
// and start (Unix µs), and whether it is a journal.
func parseSegmentName(name string) (s frames.Stream, start int64, journal bool, err error) {
	bad := fmt.Errorf("index: %q is not a segment name", name)
	parts := strings.Split(name, "/")
	var last string
	switch {
	case len(parts) == 4 && parts[0] == "seg": // seg/room/codec/start
		journal, last = true, parts[3]
	case len(parts) == 7 && parts[0] == "seg": // seg/room/codec/YYYY/MM/DD/start.mp4
		var ok bool
		if last, ok = strings.CutSuffix(parts[6], ".mp4"); !ok {
			return s, 0, false, bad
		}
	default:
		return s, 0, false, bad
	}
	c, err := frames.ParseCodec(parts[2])
	if err != nil || parts[2] == "" {
		return s, 0, false, bad
	}
	s = frames.Stream{Room: parts[1], Codec: c}
	if start, err = strconv.ParseInt(last, 10, 64); err != nil || checkStream(s) != nil {
		return s, 0, false, bad
	}
	if !journal && SegmentObject(s, time.UnixMicro(start)) != name || journal && SegmentJournal(s, time.UnixMicro(start)) != name {
		return s, 0, false, bad
	}
	return s, start, journal, nil
}
