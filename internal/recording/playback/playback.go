// Package playback reads recorded footage back for viewers: a Reader walks
// one stream's segments from a time on, and Play paces what it reads into a
// viewer's queue at the speed it was captured, so that a gateway plays a
// recording through the same viewer paths as live video (see
// internal/gateway's session). It also finds the single picture at a time
// (snapshots) and cuts clips (MP4 export).
//
// Everything is found through the index (package index): playback never
// lists the store. A segment that cannot be read whole (a recorder killed
// mid-write left a torn part, or the bytes are damaged) is played up to the
// damage, the rest skipped with a log line; nothing in a recording can
// crash or stall a viewer.
package playback

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/pkg/frames"
)

// Library is where a gateway finds recorded footage: a store and its
// index. It is safe for concurrent use.
type Library struct {
	Store   store.Store
	Catalog *index.Catalog
	Log     *slog.Logger
}

// ErrNoFootage says there is no recording at or after the time asked.
var ErrNoFootage = index.ErrNoFootage

// Reader reads one recorded stream from a time on, segment after segment.
// It is used by one goroutine at a time.
type Reader struct {
	lib    *Library
	stream frames.Stream
	seg    index.Segment
	queue  []*frames.Frame // read, not yet returned
	last   uint64          // sequence number of the last frame returned
	lastAt time.Time       // its capture time
}

// Seek returns a reader of stream positioned so that its first frames are
// what a decoder needs to show the picture at t: for JPEG the last frame
// at or before t; for H.264 the configuration and keyframe at or before t
// and the pictures after it up to t. When t falls in a gap of the
// recording it starts at the first footage after t. ErrNoFootage when
// there is none at or after t.
func (l *Library) Seek(ctx context.Context, stream frames.Stream, t time.Time) (*Reader, error) {
	seg, err := l.Catalog.Find(ctx, stream, t)
	if err != nil {
		return nil, err
	}
	r := &Reader{lib: l, stream: stream, seg: seg}
	fs, config, err := r.read(ctx, seg, t)
	if err != nil {
		return nil, err
	}
	// Nothing in this segment a decoder can start from leaves the queue
	// empty: Next moves on to the next segment.
	r.queue = withConfig(config, fromStart(fs, t))
	return r, nil
}

// Stream returns the stream the reader reads.
func (r *Reader) Stream() frames.Stream { return r.stream }

// Next returns the next recorded frame, or ErrCaughtUp when the footage
// recorded so far is all read (the stream is still being recorded, or its
// recording stopped).
func (r *Reader) Next(ctx context.Context) (*frames.Frame, error) {
	for len(r.queue) == 0 {
		if err := r.advance(ctx); err != nil {
			return nil, err
		}
	}
	f := r.queue[0]
	r.queue[0] = nil
	r.queue = r.queue[1:]
	r.last, r.lastAt = f.Seq, f.Captured
	return f, nil
}

// ErrCaughtUp says a reader read everything recorded so far: what comes
// next is live, or nothing.
var ErrCaughtUp = errors.New("playback: caught up with the recording")

// advance reads what follows the frames returned so far: the rest of an
// open segment that grew, or the next segment.
func (r *Reader) advance(ctx context.Context) error {
	if r.seg.Open {
		// A segment being written: read it again for the parts added since.
		fs, _, err := r.read(ctx, r.seg, time.Time{})
		if err != nil {
			return err
		}
		if fresh := after(fs, r.last, r.lastAt); len(fresh) > 0 {
			r.queue = fresh
			return nil
		}
	}
	next, err := r.lib.Catalog.Next(ctx, r.seg)
	if errors.Is(err, index.ErrNoFootage) {
		if r.seg.Open {
			// Sealed meanwhile? The catalog says so with the segment's own
			// record: look once more before calling it caught up.
			if seg, ferr := r.lib.Catalog.Find(ctx, r.stream, r.seg.Start); ferr == nil && !seg.Open && seg.Start.Equal(r.seg.Start) {
				r.seg = seg
				return r.advance(ctx)
			}
		}
		return ErrCaughtUp
	}
	if err != nil {
		return err
	}
	fs, _, err := r.read(ctx, next, time.Time{})
	if err != nil {
		return err
	}
	r.seg = next
	r.queue = after(fs, r.last, r.lastAt)
	if len(r.queue) == 0 && !next.Open {
		return r.advance(ctx) // an empty or wholly damaged segment: on to the next
	}
	if len(r.queue) == 0 {
		return ErrCaughtUp
	}
	return nil
}

// after returns the frames of fs after the last one returned (by sequence
// number within a run, by capture time across a publisher's restart).
func after(fs []*frames.Frame, last uint64, lastAt time.Time) []*frames.Frame {
	for i, f := range fs {
		if f.Captured.After(lastAt) || f.Captured.Equal(lastAt) && f.Seq > last {
			return fs[i:]
		}
	}
	return nil
}

// read returns seg's frames from the part a decoder can start at for t (a
// zero t: from the start), and the H.264 configuration in effect at the
// segment's start. A sealed segment is read by byte range: its index box,
// its init, then the parts from there; an open one (a journal) whole.
// Damage stops the frames early, logged; a segment deleted meanwhile (by
// retention) has none.
func (r *Reader) read(ctx context.Context, seg index.Segment, t time.Time) ([]*frames.Frame, *frames.Frame, error) {
	l := r.lib
	if seg.Open {
		data, err := l.Store.ReadJournal(ctx, seg.Journal)
		if errors.Is(err, store.ErrNotFound) && seg.Bytes > 0 {
			// Sealed since the catalog said it was open.
			seg.Open = false
			return r.read(ctx, seg, t)
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, nil // sealed, its size not known yet: the catalog's next answer has it
		}
		if err != nil {
			return nil, nil, fmt.Errorf("failed to read %s: %w", seg.Journal, err)
		}
		fs, info, err := segment.Read(data)
		if err != nil && !errors.Is(err, segment.ErrTorn) { // a journal ends mid-part while it is written
			l.logDamage(seg.Journal, err)
		}
		return fs, configOf(info), nil
	}
	fs, info, err := l.readSealed(ctx, seg.Object, seg.Bytes, t)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			l.logDamage(seg.Object, err)
			return nil, nil, nil
		}
		var damaged *damageError
		if errors.As(err, &damaged) {
			l.logDamage(seg.Object, err)
			return damaged.frames, configOf(info), nil
		}
		return nil, nil, err
	}
	return fs, configOf(info), nil
}

func configOf(info *segment.Info) *frames.Frame {
	if info == nil {
		return nil
	}
	return info.Config
}

// damageError carries the frames read before a segment's damage.
type damageError struct {
	frames []*frames.Frame
	err    error
}

func (e *damageError) Error() string { return e.err.Error() }
func (e *damageError) Unwrap() error { return e.err }

// readSealed reads the frames of a sealed segment of size bytes from the
// part that starts at or before t (the first when t is zero or before it):
// its index box from the tail, its init, then the parts from there. A
// segment whose index box cannot be read (never ended, cut short, damaged)
// is read whole.
func (l *Library) readSealed(ctx context.Context, object string, size int64, t time.Time) ([]*frames.Frame, *segment.Info, error) {
	idx, err := l.readIndex(ctx, object, size)
	if err != nil && !errors.Is(err, errNoIndex) {
		return nil, nil, err
	}
	if errors.Is(err, errNoIndex) || len(idx.Parts) == 0 {
		data, err := l.Store.Read(ctx, object, 0, -1)
		if err != nil {
			return nil, nil, fmt.Errorf("failed to read %s: %w", object, err)
		}
		fs, info, err := segment.Read(data)
		if err != nil {
			return nil, info, &damageError{frames: fs, err: err}
		}
		return fs, info, nil
	}
	head, err := l.Store.Read(ctx, object, 0, idx.InitSize)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read %s: %w", object, err)
	}
	info, err := segment.ReadInit(head)
	if err != nil {
		return nil, nil, &damageError{err: err}
	}
	first := 0
	if !t.IsZero() {
		for i, p := range idx.Parts {
			if p.Key && !p.Start.After(t) {
				first = i
			}
		}
	}
	lastPart := idx.Parts[len(idx.Parts)-1]
	from := idx.Parts[first].Offset
	data, err := l.Store.Read(ctx, object, from, lastPart.Offset+lastPart.Size-from)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read %s: %w", object, err)
	}
	fs, _, err := segment.ReadParts(info, data, from)
	if err != nil {
		return nil, info, &damageError{frames: fs, err: err}
	}
	return fs, info, nil
}

// errNoIndex says a sealed segment's index box could not be read.
var errNoIndex = errors.New("playback: no index box")

// readIndex reads the index box at the end of a sealed segment of size
// bytes: the last IndexTail bytes, more when it says so.
func (l *Library) readIndex(ctx context.Context, object string, size int64) (*segment.Index, error) {
	need := int64(segment.IndexTail)
	for range 2 {
		tail, err := l.Store.Read(ctx, object, max(0, size-need), -1)
		if errors.Is(err, store.ErrBadRange) {
			return nil, errNoIndex // shorter than recorded: damaged
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", object, err)
		}
		idx, err := segment.ReadIndex(tail)
		var short *segment.ShortTailError
		if !errors.As(err, &short) {
			if err != nil {
				return nil, errNoIndex
			}
			return idx, nil
		}
		need = int64(short.Need)
	}
	return nil, errNoIndex
}

// withConfig puts config (a segment's H.264 configuration) in front of
// fs when they start at a keyframe without one: a part in the middle of a
// segment, or a segment that began at a bare keyframe.
func withConfig(config *frames.Frame, fs []*frames.Frame) []*frames.Frame {
	if config == nil || len(fs) == 0 || fs[0].Kind != frames.KindH264Key {
		return fs
	}
	return append([]*frames.Frame{config}, fs...)
}

func (l *Library) logDamage(name string, err error) {
	if l.Log != nil {
		l.Log.Warn("recording damaged or gone; skipping the rest of the segment", "segment", name, "err", err)
	}
}

// fromStart returns the frames of fs a decoder needs to show the picture
// at t and those after it: for JPEG from the last frame at or before t;
// for H.264 from the last configuration+keyframe at or before t. When
// every frame is after t (t falls before the segment), all of them.
func fromStart(fs []*frames.Frame, t time.Time) []*frames.Frame {
	start := -1
	for i, f := range fs {
		if f.Captured.After(t) {
			break
		}
		switch f.Kind {
		case frames.KindJPEG:
			start = i
		case frames.KindH264Key:
			start = i
			if i > 0 && fs[i-1].Kind == frames.KindH264Config {
				start = i - 1
			}
		}
	}
	if start < 0 {
		// t is before the first decodable picture: start at the first one.
		for i, f := range fs {
			if f.Kind == frames.KindJPEG || f.Kind == frames.KindH264Config || f.Kind == frames.KindH264Key {
				return fs[i:]
			}
		}
		return nil
	}
	return fs[start:]
}
