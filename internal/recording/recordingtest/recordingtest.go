// Package recordingtest holds what tests of the recording side share:
// writing whole segments as a recorder would, and reading a stream's
// recording back through the index as playback finds it.
package recordingtest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// Encode writes fs, frames of one stream in order that fit one segment
// (segment.Writer's Step never says StepSegment after the first), as one
// whole segment, and returns its bytes and summary.
func Encode(t testing.TB, s frames.Stream, fs []*frames.Frame) ([]byte, segment.Summary) {
	t.Helper()
	w := segment.NewWriter(s.Room, s.Codec, nil)
	var data []byte
	for _, f := range fs {
		var b []byte
		var err error
		switch step := w.Step(f); {
		case step == segment.StepSegment && !w.Open():
			b, err = w.Begin(f)
		case step == segment.StepSegment:
			t.Fatalf("frame %d would start a second segment", f.Seq)
		case step == segment.StepPart:
			if b, err = w.Flush(); err == nil {
				err = w.Add(f)
			}
		case step == segment.StepAdd:
			err = w.Add(f)
		}
		if err != nil {
			t.Fatalf("frame %d: %v", f.Seq, err)
		}
		data = append(data, b...)
	}
	b, sum, err := w.End()
	if err != nil {
		t.Fatal(err)
	}
	return append(data, b...), sum
}

// Read returns every frame of s in st from segments that began yesterday
// or today (UTC), in order, found through the index (open segments from
// their journals), and those segments. A damaged segment is logged, its
// frames before the damage kept.
func Read(t testing.TB, st store.Store, s frames.Stream) ([]*frames.Frame, []index.Segment) {
	t.Helper()
	cat := index.New(st, nil)
	ctx := context.Background()
	var out []*frames.Frame
	var segs []index.Segment
	for _, day := range []time.Time{time.Now().Add(-24 * time.Hour), time.Now()} {
		list, err := cat.Day(ctx, s, day)
		if err != nil {
			t.Fatal(err)
		}
		for _, sg := range list {
			var data []byte
			if sg.Open {
				data, err = st.ReadJournal(ctx, sg.Journal)
			}
			if !sg.Open || errors.Is(err, store.ErrNotFound) {
				data, err = st.Read(ctx, sg.Object, 0, -1)
			}
			if err != nil {
				t.Fatalf("segment %v: %v", sg.Start, err)
			}
			fs, _, err := segment.Read(data)
			if err != nil {
				t.Logf("segment %v: %v (the frames before it kept)", sg.Start, err)
			}
			out = append(out, fs...)
			segs = append(segs, sg)
		}
	}
	return out, segs
}
