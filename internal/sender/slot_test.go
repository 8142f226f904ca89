package sender

import (
	"testing"
	"time"

	"gocv.io/x/gocv"
)

func TestFrameSlotLatestWins(t *testing.T) {
	s := newFrameSlot()
	defer s.Close()
	back, front := gocv.NewMatWithSize(1, 1, gocv.MatTypeCV8U), gocv.NewMat()
	defer func() { back.Close(); front.Close() }()

	if _, ok := s.take(&front); ok {
		t.Fatal("take from an empty slot returned a frame")
	}
	back.SetUCharAt(0, 0, 1)
	if s.put(&back, frameInfo{seq: 1}) {
		t.Fatal("first put reported an overwrite")
	}
	back.Close() // back was swapped for the slot's empty Mat; a camera read would refill it
	back = gocv.NewMatWithSize(1, 1, gocv.MatTypeCV8U)
	back.SetUCharAt(0, 0, 2)
	if !s.put(&back, frameInfo{seq: 2, captured: time.Now()}) {
		t.Fatal("second put did not report overwriting the untaken frame")
	}
	info, ok := s.take(&front)
	if !ok || info.seq != 2 || front.GetUCharAt(0, 0) != 2 {
		t.Fatalf("take = seq %d ok %v value %d, want the newest frame 2", info.seq, ok, front.GetUCharAt(0, 0))
	}
	if _, ok := s.take(&front); ok {
		t.Fatal("a frame was taken twice")
	}
	// The Mats rotate: nothing is lost or duplicated among back, slot, front.
	if back.Ptr() == front.Ptr() || back.Ptr() == s.pending.Ptr() || front.Ptr() == s.pending.Ptr() {
		t.Fatal("two owners share one Mat")
	}
}

func TestMessageSlotLatestWinsAndRecycles(t *testing.T) {
	s := newMessageSlot()
	a := s.get()
	a.seq = 1
	if s.put(a) {
		t.Fatal("first put reported a replacement")
	}
	b := s.get()
	if b == a {
		t.Fatal("get returned the pending message")
	}
	b.seq = 2
	if !s.put(b) {
		t.Fatal("put over an untaken message did not report it")
	}
	m := s.take()
	if m != b {
		t.Fatalf("take returned seq %d, want the newest (2)", m.seq)
	}
	if s.take() != nil {
		t.Fatal("slot not empty after take")
	}
	s.release(m)
	// a (replaced) and b (released) are both reused; no third buffer appears.
	seen := map[*message]bool{s.get(): true, s.get(): true}
	if !seen[a] || !seen[b] {
		t.Fatal("buffers were not recycled")
	}
	c := s.get()
	s.put(c)
	if !s.drop() || s.take() != nil {
		t.Fatal("drop did not empty the slot")
	}
}
