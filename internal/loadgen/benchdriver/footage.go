package main

// S14's store: hours of a room's footage and weeks of another room's
// index, made in seconds rather than recorded in real time (#20 item 13).
// The footage goes through the recorder's own parts (segment.Writer,
// store.Dir, index.Catalog) in the order a recorder calls them, so what
// playback reads is what a recorder writes; only the capture times are
// made up, advancing by the frame interval while the pictures of one clip
// repeat.

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/testclip"
	"github.com/framecast/framecast/pkg/frames"
)

// streamRecorder writes one stream's frames into a store as a recorder
// does: each segment's init, then each part appended to the segment's
// journal as it ends; a segment sealed into its object when the next
// begins; the index told of each opening and sealing. Frames are handed
// over one by one, so hours of footage never sit in memory.
type streamRecorder struct {
	st     store.Store
	cat    *index.Catalog
	stream frames.Stream
	w      *segment.Writer
	start  time.Time // the open segment's first capture time

	segments int
	bytes    int64 // sealed segments' bytes
}

func newStreamRecorder(st store.Store, cat *index.Catalog, s frames.Stream) *streamRecorder {
	return &streamRecorder{st: st, cat: cat, stream: s, w: segment.NewWriter(s.Room, s.Codec, nil)}
}

// add records f, the stream's next frame.
func (r *streamRecorder) add(ctx context.Context, f *frames.Frame) error {
	switch r.w.Step(f) {
	case segment.StepSegment:
		if r.w.Open() {
			if err := r.seal(ctx); err != nil {
				return err
			}
		}
		b, err := r.w.Begin(f)
		if err != nil {
			return err
		}
		r.start = f.Captured
		if err := r.st.Append(ctx, index.SegmentJournal(r.stream, r.start), b); err != nil {
			return err
		}
		return r.cat.Opened(ctx, r.stream, r.start)
	case segment.StepPart:
		b, err := r.w.Flush()
		if err != nil {
			return err
		}
		if err := r.st.Append(ctx, index.SegmentJournal(r.stream, r.start), b); err != nil {
			return err
		}
		return r.w.Add(f)
	case segment.StepAdd:
		return r.w.Add(f)
	}
	return nil
}

// seal ends the open segment: its last part and index box appended, the
// journal sealed into the segment's object, the index told.
func (r *streamRecorder) seal(ctx context.Context) error {
	b, sum, err := r.w.End()
	if err != nil {
		return err
	}
	j := index.SegmentJournal(r.stream, r.start)
	if err := r.st.Append(ctx, j, b); err != nil {
		return err
	}
	if err := r.st.Seal(ctx, j, index.SegmentObject(r.stream, r.start)); err != nil {
		return err
	}
	r.segments++
	r.bytes += sum.Bytes
	return r.cat.Sealed(ctx, r.stream, sum)
}

// close seals the last segment.
func (r *streamRecorder) close(ctx context.Context) error {
	if !r.w.Open() {
		return nil
	}
	return r.seal(ctx)
}

// footage is a room's recorded H.264 stream and its JPEG stream, as S14
// made them.
type footage struct {
	room       string
	start, end time.Time
	h264, jpeg *streamRecorder
}

// recordFootage records d of room from start: clip's pictures over and
// over at fps (a configuration before every keyframe, as senders send
// it), and every step-th picture as one of jpegs (jpegs[i] is the JPEG of
// clip picture i×step: a sender's JPEG layer beside H.264), each stream
// by its own goroutine as two recorders would. Sequence numbers count
// pictures from 1; a JPEG carries the number of the picture it shows.
func recordFootage(ctx context.Context, st store.Store, cat *index.Catalog, room string, clip *testclip.H264Clip, jpegs [][]byte,
	step int, fps int, start time.Time, d time.Duration) (*footage, error) {
	n := int(d.Seconds() * float64(fps))
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Second / time.Duration(fps)) }
	ft := &footage{room: room, start: start, end: at(n),
		h264: newStreamRecorder(st, cat, frames.Stream{Room: room, Codec: frames.CodecH264}),
		jpeg: newStreamRecorder(st, cat, frames.Stream{Room: room, Codec: frames.CodecJPEG})}
	cfg := frames.AppendH264Config(nil, clip.Config)
	frame := func(k frames.Kind, i int, payload []byte) (*frames.Frame, error) {
		f, err := frames.New(k, uint64(i+1), at(i), payload, 0)
		if err != nil {
			return nil, fmt.Errorf("picture %d: %w", i, err)
		}
		f.Room = room
		return f, nil
	}
	writeH264 := func() error {
		for i := range n {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c := i % len(clip.AUs)
			kind := frames.KindH264Delta
			if clip.Key[c] {
				kind = frames.KindH264Key
				f, err := frame(frames.KindH264Config, i, cfg)
				if err == nil {
					err = ft.h264.add(ctx, f)
				}
				if err != nil {
					return err
				}
			}
			f, err := frame(kind, i, clip.AUs[c])
			if err == nil {
				err = ft.h264.add(ctx, f)
			}
			if err != nil {
				return err
			}
		}
		return ft.h264.close(ctx)
	}
	writeJPEG := func() error {
		for i := 0; i < n; i += step {
			f, err := frame(frames.KindJPEG, i, jpegs[(i%len(clip.AUs))/step])
			if err == nil {
				err = ft.jpeg.add(ctx, f)
			}
			if err != nil {
				return err
			}
		}
		return ft.jpeg.close(ctx)
	}
	errs := make(chan error, 1)
	go func() { errs <- writeJPEG() }()
	err := writeH264()
	if jerr := <-errs; err == nil {
		err = jerr
	}
	if err != nil {
		return nil, fmt.Errorf("failed to record %s's footage: %w", room, err)
	}
	return ft, nil
}

// clipJPEGs encodes every step-th picture of c as a JPEG at quality: the
// JPEG layer a sender sends beside H.264.
func clipJPEGs(ctx context.Context, c testclip.Clip, step, quality int) ([][]byte, error) {
	r, err := testclip.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out [][]byte
	for i := range c.Frames {
		pic, err := r.Next()
		if err != nil {
			return nil, err
		}
		if i%step != 0 {
			continue
		}
		ySize, cSize := c.Width*c.Height, c.Width*c.Height/4
		img := &image.YCbCr{
			Y: pic[:ySize], Cb: pic[ySize : ySize+cSize], Cr: pic[ySize+cSize : ySize+2*cSize],
			YStride: c.Width, CStride: c.Width / 2, SubsampleRatio: image.YCbCrSubsampleRatio420,
			Rect: image.Rect(0, 0, c.Width, c.Height),
		}
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: quality}); err != nil {
			return nil, fmt.Errorf("failed to encode picture %d as JPEG: %w", i, err)
		}
		out = append(out, b.Bytes())
	}
	return out, nil
}

// logBuffer is a store whose appends (the index's day logs) are kept in
// memory until flushed; everything else passes through. Indexing weeks
// of segments one 56-byte append at a time would take minutes of system
// calls; gathered, each day's log is one append.
type logBuffer struct {
	store.Store
	logs  map[string][]byte
	order []string
}

func (l *logBuffer) Append(_ context.Context, journal string, rec []byte) error {
	if _, ok := l.logs[journal]; !ok {
		l.order = append(l.order, journal)
	}
	l.logs[journal] = append(l.logs[journal], rec...)
	return nil
}

// flush appends what was gathered to the store beneath.
func (l *logBuffer) flush(ctx context.Context) error {
	for _, name := range l.order {
		if err := l.Store.Append(ctx, name, l.logs[name]); err != nil {
			return err
		}
	}
	l.logs, l.order = map[string][]byte{}, nil
	return nil
}

// indexDays writes the index of room's footage from start to end, both
// streams, segments of segLen back to back (records only: no segment is
// written, as BenchmarkSpans30Days in internal/recording/index does),
// each segment's size and frame count as given, and seals the logs of the
// days before today as the recorder does at midnight. It returns the
// number of segments indexed.
func indexDays(ctx context.Context, st store.Store, room string, start, end time.Time, segLen time.Duration, bytesPer map[frames.Codec]int64, framesPer map[frames.Codec]int) (int, error) {
	buf := &logBuffer{Store: st, logs: map[string][]byte{}}
	cat := index.New(buf, nil)
	n := 0
	for _, codec := range index.Codecs {
		s := frames.Stream{Room: room, Codec: codec}
		var seq uint64 = 1
		for t := start; t.Before(end); t = t.Add(segLen) {
			sum := segment.Summary{Start: t, End: t.Add(segLen), Bytes: bytesPer[codec], Frames: framesPer[codec],
				FirstSeq: seq, LastSeq: seq + uint64(framesPer[codec]) - 1}
			if err := cat.Opened(ctx, s, t); err != nil {
				return n, err
			}
			if err := cat.Sealed(ctx, s, sum); err != nil {
				return n, err
			}
			seq += uint64(framesPer[codec])
			n++
		}
	}
	if err := buf.flush(ctx); err != nil {
		return n, err
	}
	sealer := index.New(st, nil)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, codec := range index.Codecs {
		for day := start.UTC().Truncate(24 * time.Hour); day.Before(today); day = day.AddDate(0, 0, 1) {
			if err := sealer.SealDay(ctx, frames.Stream{Room: room, Codec: codec}, day); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// dirBytes sums the sizes of the files under dir/sub.
func dirBytes(dir, sub string) int64 {
	var n int64
	_ = filepath.WalkDir(filepath.Join(dir, sub), func(_ string, e fs.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			if info, err := e.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
