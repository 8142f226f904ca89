package rooms

import (
	"bytes"
	"testing"
	"time"

	"github.com/framecast/framecast/pkg/frames"
)

func groupMsg(t testing.TB, k frames.Kind, seq uint64, size int) *frames.Frame {
	t.Helper()
	var payload []byte
	if k == frames.KindH264Config {
		payload = frames.AppendH264Config(nil, frames.H264Config{Codec: "avc1.42E01F", Width: 64, Height: 48,
			ParamSets: append([]byte{0, 0, 0, 1, 0x67}, bytes.Repeat([]byte{1}, max(0, size-20))...)})
	} else {
		payload = append([]byte{0, 0, 0, 1, 0x65}, bytes.Repeat([]byte{2}, max(0, size-5))...)
	}
	f, err := frames.New(k, seq, time.Unix(int64(seq), 0), payload, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestGroupOps: what group.add does, and the op it reports for the group
// a GroupLayer keeps, step by step.
func TestGroupOps(t *testing.T) {
	var g group
	steps := []struct {
		k    frames.Kind
		seq  uint64
		want GroupOp
		size int // messages in the snapshot after the step
	}{
		{frames.KindH264Delta, 1, GroupNone, 0},   // nothing to build on
		{frames.KindH264Config, 2, GroupStart, 1}, // a joiner between config and key gets the config
		{frames.KindH264Key, 2, GroupAppend, 2},
		{frames.KindH264Delta, 3, GroupAppend, 3},
		{frames.KindH264Delta, 3, GroupNone, 3}, // held already
		{frames.KindH264Delta, 4, GroupAppend, 4},
		{frames.KindH264Key, 5, GroupDrop, 0}, // no configuration in front
		{frames.KindH264Delta, 6, GroupNone, 0},
		{frames.KindH264Config, 7, GroupStart, 1},
		{frames.KindH264Key, 8, GroupDrop, 0}, // not its configuration's picture
		{frames.KindOffline, 9, GroupNone, 0},
	}
	for i, s := range steps {
		f := groupMsg(t, s.k, s.seq, 30)
		if s.k == frames.KindOffline {
			f = frames.Offline(s.seq, time.Unix(0, 0))
		}
		if got := g.add(f); got != s.want {
			t.Fatalf("step %d (kind %d seq %d): op %v, want %v", i, s.k, s.seq, got, s.want)
		}
		if n := len(g.snapshot()); n != s.size {
			t.Fatalf("step %d: snapshot of %d messages, want %d", i, n, s.size)
		}
	}
}

// TestGroupBoundCountsOneWay: the bound counts every message's payload,
// the configuration's too, and MaxGOPPictures pictures: one byte more, or
// one picture more, drops the group (GroupDrop, then GroupNone until the
// next configuration).
func TestGroupBoundCountsOneWay(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fill  func(t *testing.T, g *group) // fills the group right up to the bound
		extra *frames.Frame
	}{
		{"bytes", func(t *testing.T, g *group) {
			config := groupMsg(t, frames.KindH264Config, 1, 1000)
			g.add(config)
			key := groupMsg(t, frames.KindH264Key, 1, MaxGOPBytes-len(config.Payload))
			if op := g.add(key); op != GroupAppend {
				t.Fatalf("a keyframe that fills the group exactly: %v", op)
			}
		}, nil},
		{"pictures", func(t *testing.T, g *group) {
			g.add(groupMsg(t, frames.KindH264Config, 1, 30))
			g.add(groupMsg(t, frames.KindH264Key, 1, 30))
			for seq := uint64(2); seq <= MaxGOPPictures; seq++ {
				if op := g.add(groupMsg(t, frames.KindH264Delta, seq, 30)); op != GroupAppend {
					t.Fatalf("picture %d: %v", seq, op)
				}
			}
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g group
			tc.fill(t, &g)
			last := g.msgs[len(g.msgs)-1].Seq
			if op := g.add(groupMsg(t, frames.KindH264Delta, last+1, 10)); op != GroupDrop {
				t.Fatalf("past the bound: %v, want GroupDrop", op)
			}
			if g.snapshot() != nil {
				t.Fatal("a group past its bound is still handed to joiners")
			}
			if op := g.add(groupMsg(t, frames.KindH264Delta, last+2, 10)); op != GroupNone {
				t.Fatalf("after the drop: %v, want GroupNone", op)
			}
		})
	}
}
