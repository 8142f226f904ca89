// Package recordtest writes recordings for tests: frames of a stream
// through segment.Writer into a store, journalled, sealed and indexed the
// way a recorder does, so that readers of recordings are tested on real
// segments.
package recordtest

import (
	"context"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

// Record writes fs, frames of stream in order, into st and c; with open
// the last segment is left open (its journal being written), else sealed.
func Record(t testing.TB, st store.Store, c *index.Catalog, stream frames.Stream, fs []*frames.Frame, open bool) {
	t.Helper()
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	w := segment.NewWriter(stream.Room, stream.Codec, nil)
	var start time.Time
	end := func() {
		b, sum, err := w.End()
		must(err)
		j := index.SegmentJournal(stream, start)
		must(st.Append(ctx, j, b))
		must(st.Seal(ctx, j, index.SegmentObject(stream, start)))
		must(c.Sealed(ctx, stream, sum))
	}
	for _, f := range fs {
		switch w.Step(f) {
		case segment.StepSegment:
			if w.Open() {
				end()
			}
			b, err := w.Begin(f)
			must(err)
			start = f.Captured
			must(st.Append(ctx, index.SegmentJournal(stream, start), b))
			must(c.Opened(ctx, stream, start))
		case segment.StepPart:
			b, err := w.Flush()
			must(err)
			must(st.Append(ctx, index.SegmentJournal(stream, start), b))
			must(w.Add(f))
		case segment.StepAdd:
			must(w.Add(f))
		}
	}
	if !w.Open() {
		return
	}
	if open {
		b, err := w.Flush()
		must(err)
		must(st.Append(ctx, index.SegmentJournal(stream, start), b))
		return
	}
	end()
}

// JPEG returns n JPEG frames of room (w×h pictures, each a little
// different), one every interval from start, numbered from seq.
func JPEG(t testing.TB, room string, start time.Time, n int, interval time.Duration, seq uint64) []*frames.Frame {
	t.Helper()
	out := make([]*frames.Frame, n)
	for i := range out {
		f, err := frames.New(frames.KindJPEG, seq+uint64(i), start.Add(time.Duration(i)*interval), testenv.JPEG(t, 32, 24, i%8, 0), 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Room = room
		out[i] = f
	}
	return out
}

// H264 returns the messages a publisher sends for clip's pictures, one
// every interval from start, numbered from seq: a configuration in front
// of every keyframe, with the keyframe's number and capture time.
func H264(t testing.TB, room string, clip *testclip.H264Clip, start time.Time, interval time.Duration, seq uint64) []*frames.Frame {
	t.Helper()
	cfg := frames.AppendH264Config(nil, clip.Config)
	var out []*frames.Frame
	add := func(k frames.Kind, n uint64, at time.Time, payload []byte) {
		f, err := frames.New(k, n, at, payload, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Room = room
		out = append(out, f)
	}
	for i, au := range clip.AUs {
		at := start.Add(time.Duration(i) * interval)
		n := seq + uint64(i)
		if clip.Key[i] {
			add(frames.KindH264Config, n, at, cfg)
			add(frames.KindH264Key, n, at, au)
			continue
		}
		add(frames.KindH264Delta, n, at, au)
	}
	return out
}
