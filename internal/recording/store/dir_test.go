package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/recording/store/storetest"
	"github.com/framecast/framecast/internal/testenv"
)

func newDir(t testing.TB) *store.Dir {
	t.Helper()
	d, err := store.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestValidName(t *testing.T) {
	long := string(bytes.Repeat([]byte("a"), store.MaxNameLen+1))
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
			err := store.ValidName(c.name)
			if (err == nil) != c.ok {
				t.Fatalf("ValidName(%q) = %v, want ok=%v", c.name, err, c.ok)
			}
			if err != nil && !errors.Is(err, store.ErrBadName) {
				t.Fatalf("error %v does not wrap ErrBadName", err)
			}
		})
	}
}

// TestDir runs the store conformance suite (storetest) on a directory.
func TestDir(t *testing.T) {
	storetest.Run(t, func(t testing.TB) store.Store { return newDir(t) })
}

// TestBadNamesLeaveNoFiles: a bad name never makes a file, inside the
// root or outside it.
func TestBadNamesLeaveNoFiles(t *testing.T) {
	d := newDir(t)
	ctx := context.Background()
	for _, name := range []string{"../escape", "/etc/passwd", "a/../../b", "", "x//y"} {
		d.Append(ctx, name, []byte("x"))
		d.Seal(ctx, name, "ok")
		d.Put(ctx, name, []byte("x"))
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

// TestPutLeavesNoTemporaryFiles: Put's temporary file is renamed into place.
func TestPutLeavesNoTemporaryFiles(t *testing.T) {
	d := newDir(t)
	ctx := context.Background()
	for _, v := range []string{"a", "bb"} {
		if err := d.Put(ctx, "meta/x", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root(), "tmp")); len(ents) != 0 {
		t.Fatalf("Put left temporary files: %v", ents)
	}
}

// TestDeletePrunes: Delete removes the folders it empties, not one that
// still holds an object; a write into a pruned folder makes it again.
func TestDeletePrunes(t *testing.T) {
	d := newDir(t)
	ctx := context.Background()
	for _, n := range []string{"seg/a/x", "seg/a/2026/12/07/1.mp4", "seg/b/z"} {
		if err := d.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Delete(ctx, "seg/a/2026/12/07/1.mp4", "seg/b/z"); err != nil {
		t.Fatal(err)
	}
	objects := filepath.Join(d.Root(), "objects")
	if _, err := os.Stat(filepath.Join(objects, "seg/a/2026")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("emptied folders were not pruned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(objects, "seg/b")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("emptied folders were not pruned: %v", err)
	}
	if _, err := os.Stat(filepath.Join(objects, "seg/a")); err != nil {
		t.Fatalf("a folder still holding seg/a/x was pruned: %v", err)
	}
	if err := d.Put(ctx, "seg/b/again", nil); err != nil {
		t.Fatal(err)
	}
}

// TestAppenderProcess is the child of TestKill9LosesNothing.
func TestAppenderProcess(t *testing.T) {
	root := os.Getenv("STORE_TEST_APPENDER_ROOT")
	if root == "" {
		t.Skip("the child process of TestKill9LosesNothing")
	}
	d, err := store.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	storetest.AppendForever(t, d)
}

// TestKill9LosesNothing kills a process appending to a journal and checks
// that every record it had appended is there, whole, and nothing torn.
func TestKill9LosesNothing(t *testing.T) {
	root := t.TempDir()
	storetest.KillAppender(t, "TestAppenderProcess", []string{"STORE_TEST_APPENDER_ROOT=" + root}, 2000, func() ([]byte, error) {
		d, err := store.NewDir(root)
		if err != nil {
			return nil, err
		}
		return d.ReadJournal(context.Background(), storetest.KillJournal)
	})
}

// TestFullDisk fills a 1 MiB tmpfs: the write that does not fit fails with
// ErrFull and leaves nothing behind, what was stored before is intact, and
// once space is freed the store works again.
func TestFullDisk(t *testing.T) {
	d, err := store.NewDir(testenv.MountTmpfs(t, 1<<20))
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
		err := d.Append(ctx, j, storetest.Record(n))
		if err == nil {
			continue
		}
		if !errors.Is(err, store.ErrFull) {
			t.Fatalf("append %d: %v, want ErrFull", n, err)
		}
		t.Logf("append %d: %v", n, err)
		break
	}
	// A record bigger than one page fails part-way: the journal must not keep
	// the part that fit.
	big := bytes.Repeat([]byte{7}, 64<<10)
	if err := d.Append(ctx, j, big); !errors.Is(err, store.ErrFull) {
		t.Fatalf("big append: %v", err)
	}
	b, err := d.ReadJournal(ctx, j)
	if err != nil {
		t.Fatal(err)
	}
	if got := storetest.CheckRecords(t, b); got != n {
		t.Fatalf("%d records in the journal after ENOSPC, want %d", got, n)
	}
	if err := d.Append(ctx, "seg/other/h264/1", big); !errors.Is(err, store.ErrFull) {
		t.Fatalf("append to a new journal: %v", err)
	}
	if _, err := d.ReadJournal(ctx, "seg/other/h264/1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed first append left a journal: %v", err)
	}
	if err := d.Put(ctx, "meta/cutoff", big); !errors.Is(err, store.ErrFull) {
		t.Fatalf("Put on a full disk: %v", err)
	}
	if got, _ := d.Read(ctx, "meta/cutoff", 0, -1); string(got) != "keep me" {
		t.Fatalf("a failed Put damaged the object: %q", got)
	}
	if ents, _ := os.ReadDir(filepath.Join(d.Root(), "tmp")); len(ents) != 0 {
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

// TestReadOnlyEmptyRoot: a playback replica's read-only mount of a volume
// no recorder has written yet opens (reads find nothing, writes fail), and
// finds what a recorder writes later; a root that does not exist on a
// read-only filesystem is still an error.
func TestReadOnlyEmptyRoot(t *testing.T) {
	dir := testenv.MountTmpfs(t, 1<<20)
	remount := func(mode string) {
		t.Helper()
		if out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput(); err != nil {
			t.Fatalf("remount %s: %v: %s", mode, err, out)
		}
	}
	remount("ro")
	if _, err := store.NewDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("NewDir of a root missing on a read-only filesystem: no error")
	}
	reader, err := store.NewDir(dir)
	if err != nil {
		t.Fatalf("NewDir of an empty read-only root: %v", err)
	}
	ctx := context.Background()
	if _, err := reader.Read(ctx, "seg/cam/jpeg/1.mp4", 0, -1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Read: %v, want ErrNotFound", err)
	}
	if _, err := reader.ReadJournal(ctx, "idx/cam/jpeg/20261208"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ReadJournal: %v, want ErrNotFound", err)
	}
	if objs, err := reader.List(ctx, "seg/"); err != nil || len(objs) != 0 {
		t.Errorf("List: %v, %v; want nothing", objs, err)
	}
	if err := reader.Put(ctx, "seg/cam/jpeg/1.mp4", []byte("x")); err == nil {
		t.Error("Put on a read-only store: no error")
	}

	remount("rw")
	writer, err := store.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.Put(ctx, "seg/cam/jpeg/1.mp4", []byte("footage")); err != nil {
		t.Fatal(err)
	}
	remount("ro")
	if b, err := reader.Read(ctx, "seg/cam/jpeg/1.mp4", 0, -1); err != nil || string(b) != "footage" {
		t.Errorf("Read after the recorder wrote: %q, %v", b, err)
	}
}
