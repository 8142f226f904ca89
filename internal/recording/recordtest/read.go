package recordtest

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
