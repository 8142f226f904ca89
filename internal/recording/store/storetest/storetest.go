// Package storetest is the conformance suite of store.Store: what the
// recorder, the index and playback rely on, checked the same way for every
// implementation (store.Dir, s3store.Bucket). An implementation's test
// calls Run with a function that makes a fresh, empty store; tests that
// only one implementation can run (a full disk, a killed appender, a
// stopped server) stay with it.
package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/store"
)

// Many is how many objects the batch tests write, list and delete: more
// than one page of an S3 listing and one multi-object delete (1000 each).
const Many = 1100

// Run runs the suite. newStore returns a new, empty store for one subtest;
// it registers its own cleanup with t.
func Run(t *testing.T, newStore func(t testing.TB) store.Store) {
	for _, c := range []struct {
		name string
		test func(*testing.T, store.Store)
	}{
		{"BadNames", testBadNames},
		{"JournalLifecycle", testJournalLifecycle},
		{"AppendIsWhole", testAppendIsWhole},
		{"ReadRanges", testReadRanges},
		{"PutReplaces", testPutReplaces},
		{"ListAndDelete", testListAndDelete},
		{"JournalPrefixes", testJournalPrefixes},
		{"ManyObjects", testManyObjects},
		{"ConcurrentReaders", testConcurrentReaders},
		{"Concurrent", testConcurrent},
		{"ContextCancelled", testContextCancelled},
	} {
		t.Run(c.name, func(t *testing.T) { c.test(t, newStore(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// testBadNames: every method refuses a bad name with ErrBadName, and
// nothing appears in the store.
func testBadNames(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	for _, name := range []string{"../escape", "/etc/passwd", "a/../../b", "", "x//y", "trailing/", "sp ace", "star*", "brace{x}"} {
		for op, err := range map[string]error{
			"Append":         st.Append(ctx, name, []byte("x")),
			"Seal":           st.Seal(ctx, name, "ok"),
			"Seal to object": st.Seal(ctx, "ok", name),
			"Discard":        st.Discard(ctx, name),
			"Put":            st.Put(ctx, name, []byte("x")),
			"Delete":         st.Delete(ctx, name),
		} {
			if !errors.Is(err, store.ErrBadName) {
				t.Errorf("%s(%q) = %v, want ErrBadName", op, name, err)
			}
		}
		if _, err := st.ReadJournal(ctx, name); !errors.Is(err, store.ErrBadName) {
			t.Errorf("ReadJournal(%q) = %v, want ErrBadName", name, err)
		}
		if _, err := st.Read(ctx, name, 0, -1); !errors.Is(err, store.ErrBadName) {
			t.Errorf("Read(%q) = %v, want ErrBadName", name, err)
		}
	}
	for _, p := range []string{"../", "a/../", "/abs", "a//b", "star*"} {
		if _, err := st.List(ctx, p); !errors.Is(err, store.ErrBadName) {
			t.Errorf("List(%q) = %v, want ErrBadName", p, err)
		}
		if _, err := st.Journals(ctx, p); !errors.Is(err, store.ErrBadName) {
			t.Errorf("Journals(%q) = %v, want ErrBadName", p, err)
		}
	}
	// A good name next to bad ones in one Delete is still deleted.
	if err := st.Put(ctx, "ok/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "ok/x", "../bad"); !errors.Is(err, store.ErrBadName) {
		t.Errorf("Delete(good, bad) = %v, want ErrBadName", err)
	}
	if _, err := st.Read(ctx, "ok/x", 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the good name of a Delete with a bad one: %v, want it deleted", err)
	}
	if objs, err := st.List(ctx, ""); err != nil || len(objs) != 0 {
		t.Errorf("bad names left objects: %v, %v", objs, err)
	}
	if names, err := st.Journals(ctx, ""); err != nil || len(names) != 0 {
		t.Errorf("bad names left journals: %v, %v", names, err)
	}
}

// testJournalLifecycle: append, read, list, seal into an object (the
// journal goes, the object holds every byte), seal again to replace,
// discard.
func testJournalLifecycle(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	const j, o = "seg/cam/h264/1000", "seg/cam/h264/2026/12/07/1000.mp4"
	if _, err := st.ReadJournal(ctx, j); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ReadJournal of a missing journal = %v, want ErrNotFound", err)
	}
	var want []byte
	for i := range 3 {
		rec := fmt.Appendf(nil, "record %d;", i)
		if err := st.Append(ctx, j, rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec...)
	}
	if err := st.Append(ctx, "idx/cam/h264/20261207", []byte("i")); err != nil {
		t.Fatal(err)
	}
	got, err := st.ReadJournal(ctx, j)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadJournal = %q, %v; want %q", got, err, want)
	}
	names, err := st.Journals(ctx, "seg/")
	if err != nil || !slices.Equal(names, []string{j}) {
		t.Fatalf("Journals(seg/) = %v, %v", names, err)
	}
	if objs, _ := st.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("a journal is listed as an object: %v", objs)
	}
	if _, err := st.Read(ctx, j, 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a journal reads as an object: %v", err)
	}
	if err := st.Seal(ctx, j, o); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReadJournal(ctx, j); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the sealed journal is still there: %v", err)
	}
	got, err = st.Read(ctx, o, 0, -1)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Read(object) = %q, %v", got, err)
	}
	objs, err := st.List(ctx, "seg/")
	if err != nil || len(objs) != 1 || objs[0] != (store.Object{Name: o, Size: int64(len(want))}) {
		t.Fatalf("List = %v, %v", objs, err)
	}
	if err := st.Seal(ctx, j, o); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("sealing a missing journal = %v, want ErrNotFound", err)
	}
	if got, _ := st.Read(ctx, o, 0, -1); !bytes.Equal(got, want) {
		t.Fatal("a failed Seal changed the object")
	}
	// Sealing again replaces the object whole.
	if err := st.Append(ctx, j, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := st.Seal(ctx, j, o); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Read(ctx, o, 0, -1); string(got) != "new" {
		t.Fatalf("after a second Seal: %q", got)
	}
	if err := st.Discard(ctx, "idx/cam/h264/20261207"); err != nil {
		t.Fatal(err)
	}
	if err := st.Discard(ctx, "idx/cam/h264/20261207"); err != nil {
		t.Fatalf("discarding a missing journal: %v", err)
	}
	if names, _ := st.Journals(ctx, ""); len(names) != 0 {
		t.Fatalf("journals left: %v", names)
	}
}

// Record is a self-checking test record of 512 bytes: its index, then a
// pattern of it.
func Record(i int) []byte {
	b := make([]byte, 512)
	binary.BigEndian.PutUint32(b, uint32(i))
	for k := 4; k < len(b); k++ {
		b[k] = byte(i + k)
	}
	return b
}

// CheckRecords fails t unless b is records 0, 1, ... whole, and returns
// how many.
func CheckRecords(t testing.TB, b []byte) int {
	t.Helper()
	if len(b)%512 != 0 {
		t.Fatalf("journal of %d bytes: a torn record", len(b))
	}
	for i := 0; i < len(b)/512; i++ {
		if !bytes.Equal(b[i*512:(i+1)*512], Record(i)) {
			t.Fatalf("record %d is not what was appended", i)
		}
	}
	return len(b) / 512
}

// testAppendIsWhole: a reader of a journal being appended to sees whole
// records, in order, never part of one; the sealed object holds them all.
func testAppendIsWhole(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	const j, n = "seg/cam/jpeg/1", 200
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				b, err := st.ReadJournal(ctx, j)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				got := CheckRecords(t, b)
				if got < last {
					t.Errorf("a journal shrank from %d to %d records", last, got)
				}
				last = got
			}
		}()
	}
	for i := range n {
		if err := st.Append(ctx, j, Record(i)); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if err := st.Seal(ctx, j, "seg/cam/jpeg/1.mp4"); err != nil {
		t.Fatal(err)
	}
	b, err := st.Read(ctx, "seg/cam/jpeg/1.mp4", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if got := CheckRecords(t, b); got != n {
		t.Fatalf("%d records sealed, want %d", got, n)
	}
}

// testReadRanges: byte ranges, short reads at the end, ErrBadRange, and
// ErrNotFound for a missing object.
func testReadRanges(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	if err := st.Put(ctx, "meta/x", []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "meta/empty", nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		off, n int64
		want   string
		err    error
	}{
		{"meta/x", 0, -1, "0123456789", nil},
		{"meta/x", 0, 10, "0123456789", nil},
		{"meta/x", 0, 1, "0", nil},
		{"meta/x", 3, 4, "3456", nil},
		{"meta/x", 8, 100, "89", nil},
		{"meta/x", 9, -1, "9", nil},
		{"meta/x", 10, 5, "", nil},
		{"meta/x", 10, -1, "", nil},
		{"meta/x", 0, 0, "", nil},
		{"meta/x", 4, 0, "", nil},
		{"meta/x", 11, 1, "", store.ErrBadRange},
		{"meta/x", 11, -1, "", store.ErrBadRange},
		{"meta/x", -1, 1, "", store.ErrBadRange},
		{"meta/empty", 0, -1, "", nil},
		{"meta/empty", 0, 10, "", nil},
		{"meta/empty", 1, 1, "", store.ErrBadRange},
		{"meta/missing", 0, -1, "", store.ErrNotFound},
		{"meta/missing", 5, 5, "", store.ErrNotFound},
		{"meta/missing", 0, 0, "", store.ErrNotFound},
	} {
		t.Run(fmt.Sprintf("%s@%d+%d", c.name, c.off, c.n), func(t *testing.T) {
			got, err := st.Read(ctx, c.name, c.off, c.n)
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("err %v, want %v", err, c.err)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("Read = %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// testPutReplaces: Put replaces an object whole, and Delete removes it;
// objects and journals of one name are apart.
func testPutReplaces(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	for _, v := range []string{"first", "second, longer", "3"} {
		if err := st.Put(ctx, "idx/cam/h264/cutoff", []byte(v)); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Read(ctx, "idx/cam/h264/cutoff", 0, -1); err != nil || string(got) != v {
			t.Fatalf("after Put(%q): %q, %v", v, got, err)
		}
	}
	// A day log is a journal and, once sealed, an object of the same name.
	const day = "idx/cam/h264/20261207"
	if err := st.Append(ctx, day, []byte("late")); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, day, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if got, err := st.ReadJournal(ctx, day); err != nil || string(got) != "late" {
		t.Fatalf("journal after a Put of its name: %q, %v", got, err)
	}
	if got, err := st.Read(ctx, day, 0, -1); err != nil || string(got) != "sealed" {
		t.Fatalf("object beside a journal of its name: %q, %v", got, err)
	}
	if err := st.Delete(ctx, "idx/cam/h264/cutoff"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Read(ctx, "idx/cam/h264/cutoff", 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
	if err := st.Delete(ctx, "idx/cam/h264/cutoff"); err != nil {
		t.Fatalf("deleting a missing object: %v", err)
	}
	if _, err := st.ReadJournal(ctx, day); err != nil {
		t.Fatalf("Delete of another name took the journal: %v", err)
	}
}

func names(objs []store.Object) []string {
	out := make([]string, len(objs))
	for i, o := range objs {
		out[i] = o.Name
	}
	return out
}

// testListAndDelete: List by prefix (a string prefix, not a folder: "seg/a"
// holds "seg/a-b/y"), sorted by name, with sizes; Delete of several,
// missing ones not an error.
func testListAndDelete(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	all := []string{"seg/a/x", "seg/a-b/y", "seg/a/2026/12/07/1.mp4", "seg/b/z", "idx/a/h264/20261207"}
	for _, n := range all {
		if err := st.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"idx/a/h264/20261207", "seg/a-b/y", "seg/a/2026/12/07/1.mp4", "seg/a/x", "seg/b/z"}},
		{"seg/a", []string{"seg/a-b/y", "seg/a/2026/12/07/1.mp4", "seg/a/x"}},
		{"seg/a/", []string{"seg/a/2026/12/07/1.mp4", "seg/a/x"}},
		{"seg/a/2026/12/0", []string{"seg/a/2026/12/07/1.mp4"}},
		{"seg/a/x", []string{"seg/a/x"}},
		{"nothing/", nil},
	} {
		objs, err := st.List(ctx, c.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(objs); !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %v, want %v", c.prefix, got, c.want)
		}
		for _, o := range objs {
			if o.Size != int64(len(o.Name)) {
				t.Errorf("%s: size %d, want %d", o.Name, o.Size, len(o.Name))
			}
		}
	}
	if err := st.Delete(ctx, "seg/a/2026/12/07/1.mp4", "seg/missing", "seg/b/z"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx); err != nil {
		t.Fatalf("Delete of nothing: %v", err)
	}
	objs, err := st.List(ctx, "seg/")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(objs); !slices.Equal(got, []string{"seg/a-b/y", "seg/a/x"}) {
		t.Fatalf("after Delete: %v", got)
	}
	// A write where a deletion emptied everything works.
	if err := st.Put(ctx, "seg/b/again", nil); err != nil {
		t.Fatal(err)
	}
	if objs, _ := st.List(ctx, "seg/b/"); len(objs) != 1 || objs[0] != (store.Object{Name: "seg/b/again"}) {
		t.Fatalf("List after a write into an emptied prefix: %v", objs)
	}
}

// testJournalPrefixes: Journals lists by string prefix, sorted, journals
// only.
func testJournalPrefixes(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	js := []string{"seg/a/h264/2", "seg/a/h264/1", "seg/a-b/jpeg/3", "idx/a/h264/20261207", "idx/a/jpeg/20261207"}
	for _, j := range js {
		if err := st.Append(ctx, j, []byte(j)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(ctx, "seg/a/h264/2026/12/07/9.mp4", []byte("object")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"idx/a/h264/20261207", "idx/a/jpeg/20261207", "seg/a-b/jpeg/3", "seg/a/h264/1", "seg/a/h264/2"}},
		{"seg/a", []string{"seg/a-b/jpeg/3", "seg/a/h264/1", "seg/a/h264/2"}},
		{"seg/a/h264/", []string{"seg/a/h264/1", "seg/a/h264/2"}},
		{"idx/a/jpeg/", []string{"idx/a/jpeg/20261207"}},
		{"seg/c/", nil},
	} {
		got, err := st.Journals(ctx, c.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("Journals(%q) = %v, want %v", c.prefix, got, c.want)
		}
	}
}

// testManyObjects: more objects than one listing page and one batch
// delete hold: List returns every one, sorted; one Delete removes them.
func testManyObjects(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	want := make([]string, Many)
	for i := range want {
		want[i] = fmt.Sprintf("seg/cam/h264/2026/12/%02d/%016d.mp4", 1+i%28, i)
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				if err := st.Put(ctx, n, []byte{1, 2, 3}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	for _, n := range want {
		work <- n
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := st.Put(ctx, "seg/other/x", nil); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	objs, err := st.List(ctx, "seg/cam/")
	if err != nil {
		t.Fatal(err)
	}
	if got := names(objs); !slices.Equal(got, want) {
		t.Fatalf("List: %d names, want %d (sorted)", len(got), len(want))
	}
	if err := st.Delete(ctx, want...); err != nil {
		t.Fatal(err)
	}
	if objs, err := st.List(ctx, "seg/"); err != nil || len(objs) != 1 || objs[0].Name != "seg/other/x" {
		t.Fatalf("after deleting %d: %d objects left (%v)", len(want), len(objs), err)
	}
}

// testConcurrentReaders: readers of an object being replaced (Seal, Put)
// see one version whole, never a mix, and ranges of it.
func testConcurrentReaders(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	const o, size = "seg/cam/h264/2026/12/07/5.mp4", 64 << 10
	version := func(v byte) []byte { return bytes.Repeat([]byte{v}, size) }
	if err := st.Put(ctx, o, version(1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				off, n := int64((r*7919+i*104729)%size), int64(-1)
				if i%2 == 0 {
					n = int64(1 + (i*31)%4096)
				}
				b, err := st.Read(ctx, o, off, n)
				if err != nil {
					t.Error(err)
					return
				}
				if n > 0 && int64(len(b)) != min(n, size-off) || n < 0 && int64(len(b)) != size-off {
					t.Errorf("Read(%d, %d) = %d bytes", off, n, len(b))
					return
				}
				if len(b) > 0 && !bytes.Equal(b, bytes.Repeat(b[:1], len(b))) {
					t.Errorf("Read(%d, %d) mixes versions", off, n)
					return
				}
			}
		}()
	}
	for v := byte(2); v < 12; v++ {
		if v%2 == 0 {
			if err := st.Put(ctx, o, version(v)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		j := "seg/cam/h264/5"
		if err := st.Append(ctx, j, version(v)[:size/2]); err != nil {
			t.Fatal(err)
		}
		if err := st.Append(ctx, j, version(v)[size/2:]); err != nil {
			t.Fatal(err)
		}
		if err := st.Seal(ctx, j, o); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
}

// testConcurrent runs appenders, sealers, readers, listers and deleters at
// once (go test -race); each appender's journal must hold exactly its
// records.
func testConcurrent(t *testing.T, st store.Store) {
	ctx := ctxFor(t)
	const writers, rounds = 4, 10
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				j := fmt.Sprintf("seg/room%d/h264/%d", w, round)
				var want []byte
				for i := range 10 {
					rec := fmt.Appendf(nil, "%d.%d.%d;", w, round, i)
					if err := st.Append(ctx, j, rec); err != nil {
						t.Error(err)
						return
					}
					want = append(want, rec...)
				}
				o := fmt.Sprintf("seg/room%d/h264/2026/12/07/%d.mp4", w, round)
				if err := st.Seal(ctx, j, o); err != nil {
					t.Error(err)
					return
				}
				if got, err := st.Read(ctx, o, 0, -1); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %q, %v", o, got, err)
				}
				if round%2 == 0 {
					if err := st.Delete(ctx, o); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if _, err := st.List(ctx, "seg/"); err != nil {
				t.Error(err)
			}
			if _, err := st.Journals(ctx, "seg/"); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	objs, _ := st.List(ctx, "seg/")
	if len(objs) != writers*rounds/2 {
		t.Fatalf("%d objects left, want %d", len(objs), writers*rounds/2)
	}
	if js, _ := st.Journals(ctx, ""); len(js) != 0 {
		t.Fatalf("journals left: %v", js)
	}
}

// testContextCancelled: a cancelled context fails every call with its
// error.
func testContextCancelled(t *testing.T, st store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for op, err := range map[string]error{
		"Append":  st.Append(ctx, "a", []byte("x")),
		"Put":     st.Put(ctx, "a", []byte("x")),
		"Seal":    st.Seal(ctx, "a", "b"),
		"Discard": st.Discard(ctx, "a"),
		"Delete":  st.Delete(ctx, "a"),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s = %v, want context.Canceled", op, err)
		}
	}
	if _, err := st.Read(ctx, "a", 0, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("Read = %v", err)
	}
	if _, err := st.ReadJournal(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadJournal = %v", err)
	}
	if _, err := st.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List = %v", err)
	}
	if _, err := st.Journals(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Journals = %v", err)
	}
	if names, _ := st.Journals(context.Background(), ""); len(names) != 0 {
		t.Errorf("a cancelled Append left a journal: %v", names)
	}
	if objs, _ := st.List(context.Background(), ""); len(objs) != 0 {
		t.Errorf("a cancelled Put left an object: %v", objs)
	}
}
