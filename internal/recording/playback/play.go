package playback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/segment"
	"github.com/framecast/framecast/pkg/frames"
	"github.com/framecast/framecast/pkg/rooms"
)

// MaxGap is the longest pause in a recording that playback waits through:
// across a longer one (the camera was off, the recording stopped) it jumps
// to the next footage, as the index's spans split there.
const MaxGap = index.SpanGap

// Play plays r into v, a standalone viewer (rooms.NewViewer), from at,
// anchored at wall: what a decoder needs to show the picture at at (the
// JPEG at or before it; the H.264 configuration, keyframe and pictures up
// to it) is handed over at once as what v starts from (rooms.Viewer.Start,
// so an H.264 group reaches the decoder whole); every frame after is
// offered when wall + (its capture time − at) comes, so players given the
// same at and wall play in step (a camera wall rewinding together). With
// skipGaps a pause longer than MaxGap (and an at that falls in one) is
// skipped: the next footage plays at once, as one room's viewer wants;
// without, players wait through pauses and stay in step. It returns
// ErrCaughtUp when the recording runs out (the caller goes live), or
// ctx's error, or the store's.
func Play(ctx context.Context, r *Reader, at, wall time.Time, v *rooms.Viewer, skipGaps bool) error {
	var group []*frames.Frame
	var f *frames.Frame
	var err error
	for {
		if f, err = r.Next(ctx); err != nil {
			v.Start(group)
			return err
		}
		if f.Captured.After(at) {
			break
		}
		group = append(group, f)
	}
	v.Start(group)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	prev := at
	for {
		if gap := f.Captured.Sub(prev); skipGaps && gap > MaxGap {
			// Skip the pause: f is due when the frame before it was.
			at = at.Add(gap)
		}
		if wait := time.Until(wall.Add(f.Captured.Sub(at))); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return ctx.Err()
			}
		} else if err := ctx.Err(); err != nil {
			return err
		}
		v.Offer(f)
		prev = f.Captured
		if f, err = r.Next(ctx); err != nil {
			return err
		}
	}
}

// FrameAt returns the JPEG picture of room shown at t: the last frame of
// its JPEG recording at or before t, if the recording was running then
// (within MaxGap of it). ErrNoFootage otherwise.
func (l *Library) FrameAt(ctx context.Context, room string, t time.Time) (*frames.Frame, error) {
	r, err := l.Seek(ctx, frames.Stream{Room: room}, t)
	if err != nil {
		return nil, err
	}
	f, err := r.Next(ctx)
	if errors.Is(err, ErrCaughtUp) {
		return nil, ErrNoFootage
	}
	if err != nil {
		return nil, err
	}
	if d := f.Captured.Sub(t); d > MaxGap || -d > MaxGap {
		return nil, fmt.Errorf("%w at %s", ErrNoFootage, t.UTC().Format(time.RFC3339))
	}
	return f, nil
}

// Clip cuts room's recording from start to end into an MP4 clip, without
// transcoding: its H.264 recording when it has one then, else its JPEG one
// (M-JPEG in MP4). An H.264 clip starts at the keyframe at or before start.
// ErrNoFootage when neither stream was recorded then.
func (l *Library) Clip(ctx context.Context, room string, start, end time.Time) (*segment.Clip, error) {
	var lastErr error = ErrNoFootage
	for _, codec := range []frames.Codec{frames.CodecH264, frames.CodecJPEG} {
		fs, err := l.cut(ctx, frames.Stream{Room: room, Codec: codec}, start, end)
		if errors.Is(err, ErrNoFootage) {
			continue
		}
		if err != nil {
			return nil, err
		}
		c, err := segment.NewClip(fs)
		if errors.Is(err, segment.ErrNothingToExport) {
			lastErr = err
			continue
		}
		return c, err
	}
	return nil, lastErr
}

// cut reads stream's frames from start (as Seek positions) up to end.
func (l *Library) cut(ctx context.Context, stream frames.Stream, start, end time.Time) ([]*frames.Frame, error) {
	r, err := l.Seek(ctx, stream, start)
	if err != nil {
		return nil, err
	}
	var out []*frames.Frame
	for {
		f, err := r.Next(ctx)
		if errors.Is(err, ErrCaughtUp) {
			break
		}
		if err != nil {
			return nil, err
		}
		if f.Captured.After(end) {
			break
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, ErrNoFootage
	}
	return out, nil
}
