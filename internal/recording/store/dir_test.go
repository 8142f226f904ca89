package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

func newDir(t testing.TB) *Dir {
	t.Helper()
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestValidName(t *testing.T) {
	long := string(bytes.Repeat([]byte("a"), MaxNameLen+1))
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"seg/cam/h264/2026/12/07/1796400000000000.mp4", true},
		{"idx/cam_1/jpeg/20261207", true},
		{"a", true},
		{"a.b-c_d", true},
		{"", false},
		{"/abs", false},
		{"trailing/", false},
		{"double//slash", false},
		{"..", false},
		{"a/../b", false},
		{"a/./b", false},
		{".", false},
		{"back\\slash", false},
		{"space here", false},
		{"nul\x00", false},
		{"é", false},
		{long, false},
	} {
		t.Run(strconv.Quote(c.name[:min(len(c.name), 40)]), func(t *testing.T) {
			err := ValidName(c.name)
			if (err == nil) != c.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", c.name, err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrBadName) {
				t.Fatalf("error %v does not wrap ErrBadName", err)
			}
		})
	}
}

// TestBadNamesTouchNothing: every method refuses a bad name with
// ErrBadName, and nothing appears in the store.
func TestBadNamesTouchNothing(t *testing.T) {
	d := newDir(t)
	ctx := context.Background()
	for _, name := range []string{"../escape", "/etc/passwd", "a/../../b", "", "x//y"} {
		t.Run(name, func(t *testing.T) {
			for op, err := range map[string]error{
				"Append":      d.Append(ctx, name, []byte("x")),
				"Seal":        d.Seal(ctx, name, "ok"),
				"Seal object": d.Seal(ctx, "ok", name),
				"Discard":     d.Discard(ctx, name),
				"Put":         d.Put(ctx, name, []byte("x")),
				"Delete":      d.Delete(ctx, name),
			} {
				if !errors.Is(err, ErrBadName) {
					t.Errorf("%s(%q) = %v, want ErrBadName", op, name, err)
				}
			}
			if _, err := d.ReadJournal(ctx, name); !errors.Is(err, ErrBadName) {
				t.Errorf("ReadJournal = %v", err)
			}
			if _, err := d.Read(ctx, name, 0, -1); !errors.Is(err, ErrBadName) {
				t.Errorf("Read = %v", err)
			}
		})
	}
	for _, p := range []string{"../", "a/../", "/abs"} {
		if _, err := d.List(ctx, p); !errors.Is(err, ErrBadName) {
			t.Errorf("List(%q) = %v, want ErrBadName", p, err)
		}
		if _, err := d.Journals(ctx, p); !errors.Is(err, ErrBadName) {
			t.Errorf("Journals(%q) = %v, want ErrBadName", p, err)
		}
	}
	var files []string
	filepath.Walk(filepath.Dir(d.Root()), func(path string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if len(files) != 0 {
		t.Fatalf("bad names left files: %v", files)
	}
}

func TestJournalLifecycle(t *testing.T) {
	d := newDir(t)
	ctx := context.Background()
	const j, o = "seg/cam/h264/1000", "seg/cam/h264/2026/12/07/1000.mp4"
	if _, err := d.ReadJournal(ctx, j); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadJournal of a missing journal = %v, want ErrNotFound", err)
	}
	var want []byte
	for i := range 3 {
		rec := []byte(fmt.Sprintf("record %d;", i))
		if err := d.Append(ctx, j, rec); err != nil {
			t.Fatal(err)
		}
		want = append(want, rec...)
	}
	if err := d.Append(ctx, "idx/cam/h264/20261207", []byte("i")); err != nil {
		t.Fatal(err)
	}
	got, err := d.ReadJournal(ctx, j)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadJournal = %q, %v; want %q", got, err, want)
	}
	names, err := d.Journals(ctx, "seg/")
	if err != nil || !slices.Equal(names, []string{j}) {
		t.Fatalf("Journals(seg/) = %v, %v", names, err)
	}
	if objs, _ := d.List(ctx, ""); len(objs) != 0 {
		t.Fatalf("a journal is listed as an object: %v", objs)
	}
	if err := d.Seal(ctx, j, o); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadJournal(ctx, j); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the sealed journal is still there: %v", err)
	}
	got, err = d.Read(ctx, o, 0, -1)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Read(object) = %q, %v", got, err)
	}
	objs, err := d.List(ctx, "seg/")
	if err != nil || len(objs) != 1 || objs[0] != (Object{o, int64(len(want))}) {
		t.Fatalf("List = %v, %v", objs, err)
	}
	if err := d.Seal(ctx, j, o); !errors.Is(err, ErrNotFound) {
		t.Fatalf("sealing a missing journal = %v, want ErrNotFound", err)
	}
	if got, _ := d.Read(ctx, o, 0, -1); !bytes.Equal(got, want) {
		t.Fatal("a failed Seal changed the object")
	}
	// Sealing again replaces the object whole.
	d.Append(ctx, j, []byte("new"))
	if err := d.Seal(ctx, j, o); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Read(ctx, o, 0, -1); string(got) != "new" {
		t.Fatalf("after a second Seal: %q", got)
	}
	if err := d.Discard(ctx, "idx/cam/h264/20261207"); err != nil {
		t.Fatal(err)
	}
	if err := d.Discard(ctx, "idx/cam/h264/20261207"); err != nil {
		t.Fatalf("discarding a missing journal: %v", err)
	}
	if names, _ := d.Journals(ctx, ""); len(names) != 0 {
		t.Fatalf("journals left: %v", names)
	}
}

func TestReadRanges(t *testing.T) {
	d := newDir(t)
	ctx := context.Background()
	data := []byte("0123456789")
	if err := d.Put(ctx, "meta/x", data); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off, n int64
		want   string
		err    error
	}{
		{0, -1, "0123456789", nil},
		{0, 10, "0123456789", nil},
		{3, 4, "3456", nil},
		{8, 100, "89", nil},
		{10, 5, "", nil},
		{10, -1, "", nil},
		{0, 0, "", nil},
		{11, 1, "", ErrBadRange},
		{-1, 1, "", ErrBadRange},
	} {
		t.Run(fmt.Sprintf("%d+%d", c.off, c.n), func(t *testing.T) {
			got, err := d.Read(ctx, "meta/x", c.off, c.n)
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
	if _, err := d.Read(ctx, "meta/missing", 0, -1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing object: %v", err)
	}
	if err := d.Put(ctx, "meta/x", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Read(ctx, "meta/x", 0, -1); string(got) != "replaced" {
		t.Fatalf("Put did not replace: %q", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root(), dirTmp)); len(ents) != 0 {
		t.Fatalf("Put left temporary files: %v", ents)
	}
}

func TestListDeletePrune(t *testing.T) {
	d := newDir(t)
	ctx := context.Background()
	names := []string{"seg/a/x", "seg/a-b/y", "seg/a/2026/12/07/1.mp4", "seg/b/z", "idx/a/h264/20261207"}
	for _, n := range names {
		if err := d.Put(ctx, n, []byte(n)); err != nil {
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
		{"nothing/", nil},
	} {
		t.Run(c.prefix, func(t *testing.T) {
			objs, err := d.List(ctx, c.prefix)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, o.Name)
				if o.Size != int64(len(o.Name)) {
					t.Errorf("%s: size %d", o.Name, o.Size)
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("List(%q) = %v, want %v", c.prefix, got, c.want)
			}
		})
	}
	if err := d.Delete(ctx, "seg/a/2026/12/07/1.mp4", "seg/missing", "seg/b/z"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), dirObjects, "seg/a/2026")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("emptied folders were not pruned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.Root(), dirObjects, "seg/a")); err != nil {
		t.Fatalf("a folder still holding seg/a/x was pruned: %v", err)
	}
	// A write into a pruned folder makes it again.
	if err := d.Put(ctx, "seg/b/again", nil); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent runs appenders, sealers, readers and deleters at once
// (go test -race); each appender's journal must hold exactly its records.
func TestConcurrent(t *testing.T) {
	d := newDir(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 20 {
				j := fmt.Sprintf("seg/room%d/h264/%d", w, round)
				var want []byte
				for i := range 10 {
					rec := []byte(fmt.Sprintf("%d.%d.%d;", w, round, i))
					if err := d.Append(ctx, j, rec); err != nil {
						t.Error(err)
						return
					}
					want = append(want, rec...)
				}
				o := fmt.Sprintf("seg/room%d/h264/2026/12/07/%d.mp4", w, round)
				if err := d.Seal(ctx, j, o); err != nil {
					t.Error(err)
					return
				}
				if got, err := d.Read(ctx, o, 0, -1); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: %q, %v", o, got, err)
				}
				if round%2 == 0 {
					if err := d.Delete(ctx, o); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if _, err := d.List(ctx, "seg/"); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	objs, _ := d.List(ctx, "seg/")
	if len(objs) != 4*10 {
		t.Fatalf("%d objects left, want 40", len(objs))
	}
}

// record is a self-checking test record: index, length and a pattern.
func record(i int) []byte {
	b := make([]byte, 512)
	binary.BigEndian.PutUint32(b, uint32(i))
	for k := 4; k < len(b); k++ {
		b[k] = byte(i + k)
	}
	return b
}

func checkRecords(t *testing.T, b []byte) int {
	t.Helper()
	if len(b)%512 != 0 {
		t.Fatalf("journal of %d bytes: a torn record", len(b))
	}
	for i := 0; i < len(b)/512; i++ {
		if !bytes.Equal(b[i*512:(i+1)*512], record(i)) {
			t.Fatalf("record %d is not what was appended", i)
		}
	}
	return len(b) / 512
}

// TestAppenderProcess is the child of TestKill9LosesNothing: it appends
// records to a journal as fast as it can and reports each one done.
func TestAppenderProcess(t *testing.T) {
	root := os.Getenv("STORE_TEST_APPENDER_ROOT")
	if root == "" {
		t.Skip("the child process of TestKill9LosesNothing")
	}
	d, err := NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := d.Append(context.Background(), "seg/cam/h264/1", record(i)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(out, i)
		out.Flush()
	}
}

// TestKill9LosesNothing kills a process appending to a journal and checks
// that every record it had appended is there, whole, and nothing torn.
func TestKill9LosesNothing(t *testing.T) {
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAppenderProcess$")
	cmd.Env = append(os.Environ(), "STORE_TEST_APPENDER_ROOT="+root)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	last := -1
	for sc.Scan() {
		if last, _ = strconv.Atoi(sc.Text()); last >= 2000 {
			break
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	for sc.Scan() {
		last, _ = strconv.Atoi(sc.Text())
	}
	cmd.Wait()
	d, _ := NewDir(root)
	b, err := d.ReadJournal(context.Background(), "seg/cam/h264/1")
	if err != nil {
		t.Fatal(err)
	}
	n := checkRecords(t, b)
	if n < last+1 {
		t.Fatalf("%d records in the journal, the killed process had appended %d", n, last+1)
	}
	t.Logf("killed after %d reported appends; %d records in the journal", last+1, n)
}

// mountTmpfs mounts a tmpfs of size bytes on a fresh folder, or skips.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// TestFullDisk fills a 1 MiB tmpfs: the write that does not fit fails with
// ErrFull and leaves nothing behind, what was stored before is intact, and
// once space is freed the store works again.
func TestFullDisk(t *testing.T) {
	d, err := NewDir(mountTmpfs(t, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Put(ctx, "meta/cutoff", []byte("keep me")); err != nil {
		t.Fatal(err)
	}
	if err := d.Put(ctx, "seg/old.mp4", bytes.Repeat([]byte{1}, 256<<10)); err != nil {
		t.Fatal(err)
	}
	free0, known, err := d.Space(ctx)
	if err != nil || !known || free0 <= 0 || free0 > 1<<20 {
		t.Fatalf("Space = %d, %v, %v", free0, known, err)
	}
	const j = "seg/cam/h264/1"
	n := 0
	for ; ; n++ {
		err := d.Append(ctx, j, record(n))
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrFull) {
			t.Fatalf("append %d: %v, want ErrFull", n, err)
		}
		t.Logf("append %d: %v", n, err)
		break
	}
	// A record bigger than one page fails part-way: the journal must not keep
	// the part that fit.
	big := bytes.Repeat([]byte{7}, 64<<10)
	if err := d.Append(ctx, j, big); !errors.Is(err, ErrFull) {
		t.Fatalf("big append: %v", err)
	}
	b, err := d.ReadJournal(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if got := checkRecords(t, b); got != n {
		t.Fatalf("%d records in the journal after ENOSPC, want %d", got, n)
	}
	if err := d.Append(ctx, "seg/other/h264/1", big); !errors.Is(err, ErrFull) {
		t.Fatalf("append to a new journal: %v", err)
	}
	if _, err := d.ReadJournal(ctx, "seg/other/h264/1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed first append left a journal: %v", err)
	}
	if err := d.Put(ctx, "meta/cutoff", big); !errors.Is(err, ErrFull) {
		t.Fatalf("Put on a full disk: %v", err)
	}
	if got, _ := d.Read(ctx, "meta/cutoff", 0, -1); string(got) != "keep me" {
		t.Fatalf("a failed Put damaged the object: %q", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root(), dirTmp)); len(ents) != 0 {
		t.Fatalf("a failed Put left %d temporary files", len(ents))
	}
	// Sealing needs no new data blocks: it works on a full disk.
	if err := d.Seal(ctx, j, "seg/cam/h264/2026/12/07/1.mp4"); err != nil {
		t.Fatalf("Seal on a full disk: %v", err)
	}
	if free, _, _ := d.Space(ctx); free > 64<<10 {
		t.Fatalf("Space says %d bytes free on a full disk", free)
	}
	// Retention frees space; the store works again.
	if err := d.Delete(ctx, "seg/old.mp4"); err != nil {
		t.Fatal(err)
	}
	if err := d.Append(ctx, "seg/cam/h264/2", big); err != nil {
		t.Fatalf("append after freeing space: %v", err)
	}
	if err := d.Put(ctx, "meta/cutoff", []byte("new")); err != nil {
		t.Fatalf("Put after freeing space: %v", err)
	}
	if free, _, _ := d.Space(ctx); free < 64<<10 {
		t.Fatalf("Space = %d after freeing 256 KiB", free)
	}
}

func TestContextCancelled(t *testing.T) {
	d := newDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Append(ctx, "a", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append = %v", err)
	}
	if _, err := d.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Fatalf("List = %v", err)
	}
}
