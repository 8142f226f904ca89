package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// Dir is a Store in a directory, which several replicas on one machine (or
// sharing a volume) may use at once. Its layout:
//
//	<root>/objects/<name>    objects
//	<root>/journals/<name>   journals, apart so that a half-written one is
//	                         never mistaken for an object, nor listed as one
//	<root>/tmp/              Put's files until they are renamed into place
//
// Durability: Append is one write(2) with O_APPEND and no fsync. When it
// returns, the bytes are in the kernel's page cache: a kill -9 of the
// writer loses nothing it appended, but a power loss or kernel crash may
// lose the writeback window (about 30 s with Linux's defaults) of every
// open journal. Seal and Put fsync the file and its directory before they
// return, so sealed objects survive a power loss. A failed Append (a full
// disk) truncates the journal back to where it was, so a later Append
// never lands behind half a record.
//
// Dir holds no state besides its root: it is safe for concurrent use by
// any number of goroutines and processes, given one appender per journal.
type Dir struct {
	root string
}

var _ Store = (*Dir)(nil)

const (
	dirObjects  = "objects"
	dirJournals = "journals"
	dirTmp      = "tmp"
)

// NewDir returns the store in the directory root, creating root and its
// subdirectories if they are missing. On a read-only filesystem (a playback
// replica's read-only mount of the recorders' volume) a root that exists is
// opened as it is: until a recorder makes the subdirectories, reads find
// nothing. That is what lets the gateway image ship an empty /recordings:
// Docker fills a fresh named volume from the image's folder when a
// container first mounts it, and containers created at once raced making
// the same subfolders ("mkdir .../objects: file exists", a failed
// `docker-compose up`).
func NewDir(root string) (*Dir, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("failed to open store %q: %w", root, err)
	}
	for _, sub := range []string{dirObjects, dirJournals, dirTmp} {
		err := os.MkdirAll(filepath.Join(abs, sub), 0o755)
		if errors.Is(err, syscall.EROFS) {
			if fi, serr := os.Stat(abs); serr == nil && fi.IsDir() {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("failed to open store %q: %w", root, classify(err))
		}
	}
	return &Dir{root: abs}, nil
}

// Root returns the store's directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) object(name string) string {
	return filepath.Join(d.root, dirObjects, filepath.FromSlash(name))
}
func (d *Dir) journal(name string) string {
	return filepath.Join(d.root, dirJournals, filepath.FromSlash(name))
}

// classify wraps a system error with the sentinel it means.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w: %w", ErrFull, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// fail builds the error of a failed operation on name.
func fail(op, name string, err error) error {
	return fmt.Errorf("failed to %s %q: %w", op, name, err)
}

// start checks the context and a name before an operation.
func start(ctx context.Context, op, name string) error {
	if err := ctx.Err(); err != nil {
		return fail(op, name, err)
	}
	if err := ValidName(name); err != nil {
		return fail(op, name, err)
	}
	return nil
}

// Append implements Store.
func (d *Dir) Append(ctx context.Context, journal string, rec []byte) error {
	if err := start(ctx, "append to", journal); err != nil {
		return err
	}
	if err := appendFile(d.journal(journal), rec); err != nil {
		return fail("append to", journal, classify(err))
	}
	return nil
}

func appendFile(path string, rec []byte) (err error) {
	f, err := inDir(path, func() (*os.File, error) {
		return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	})
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	size := fi.Size()
	_, err = f.Write(rec)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// Take back a short write (ENOSPC part-way), so that the next
		// record does not land behind a torn one. An empty journal is no
		// journal.
		if size == 0 {
			os.Remove(path)
		} else {
			os.Truncate(path, size)
		}
	}
	return err
}

// inDir runs create, and when it fails because path's directory is
// missing, makes the directory and runs it again. It tries a few times: a
// concurrent Delete may prune the directory in between.
func inDir[T any](path string, create func() (T, error)) (T, error) {
	v, err := create()
	for i := 0; i < 3 && errors.Is(err, fs.ErrNotExist); i++ {
		if err = os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			break
		}
		v, err = create()
	}
	return v, err
}

// ReadJournal implements Store.
func (d *Dir) ReadJournal(ctx context.Context, journal string) ([]byte, error) {
	if err := start(ctx, "read journal", journal); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(d.journal(journal))
	if err != nil {
		return nil, fail("read journal", journal, classify(err))
	}
	return b, nil
}

// Seal implements Store: fsync the journal, rename it into place, fsync
// the object's directory.
func (d *Dir) Seal(ctx context.Context, journal, object string) error {
	if err := start(ctx, "seal", journal); err != nil {
		return err
	}
	if err := ValidName(object); err != nil {
		return fail("seal", journal, err)
	}
	src, dst := d.journal(journal), d.object(object)
	if err := syncFile(src); err != nil {
		return fail("seal", journal, classify(err))
	}
	if err := rename(src, dst); err != nil {
		return fail(fmt.Sprintf("seal %q into", journal), object, classify(err))
	}
	return nil
}

// rename moves src to dst, making dst's directory, and syncs dst's
// directory.
func rename(src, dst string) error {
	_, err := inDir(dst, func() (struct{}, error) { return struct{}{}, os.Rename(src, dst) })
	if err != nil {
		if _, serr := os.Stat(src); serr != nil {
			return serr // the source is missing: say that, not ENOENT of dst
		}
		return err
	}
	return syncFile(filepath.Dir(dst))
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Discard implements Store.
func (d *Dir) Discard(ctx context.Context, journal string) error {
	if err := start(ctx, "discard", journal); err != nil {
		return err
	}
	if err := os.Remove(d.journal(journal)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail("discard", journal, classify(err))
	}
	return nil
}

// Journals implements Store.
func (d *Dir) Journals(ctx context.Context, prefix string) ([]string, error) {
	objs, err := d.walk(ctx, dirJournals, prefix)
	if err != nil {
		return nil, fmt.Errorf("failed to list journals %q: %w", prefix, err)
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.Name
	}
	return names, nil
}

// Put implements Store: write a temporary file, fsync it, rename it into
// place, fsync the directory.
func (d *Dir) Put(ctx context.Context, object string, data []byte) error {
	if err := start(ctx, "put", object); err != nil {
		return err
	}
	if err := d.put(object, data); err != nil {
		return fail("put", object, classify(err))
	}
	return nil
}

func (d *Dir) put(object string, data []byte) error {
	f, err := os.CreateTemp(filepath.Join(d.root, dirTmp), "put-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rename(tmp, d.object(object))
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// Read implements Store.
func (d *Dir) Read(ctx context.Context, object string, off, n int64) ([]byte, error) {
	if err := start(ctx, "read", object); err != nil {
		return nil, err
	}
	b, err := readRange(d.object(object), off, n)
	if err != nil {
		return nil, fail("read", object, classify(err))
	}
	return b, nil
}

func readRange(path string, off, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if off < 0 || off > size {
		return nil, fmt.Errorf("%w: offset %d of %d bytes", ErrBadRange, off, size)
	}
	if n < 0 || n > size-off {
		n = size - off
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil && !(errors.Is(err, io.EOF) && n == 0) {
		return nil, err
	}
	return b, nil
}

// Delete implements Store. It removes the directories the deletions
// leave empty.
func (d *Dir) Delete(ctx context.Context, objects ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("failed to delete: %w", err)
	}
	var errs []error
	for _, o := range objects {
		if err := ValidName(o); err != nil {
			errs = append(errs, fail("delete", o, err))
			continue
		}
		path := d.object(o)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fail("delete", o, classify(err)))
			continue
		}
		d.prune(filepath.Dir(path))
	}
	return errors.Join(errs...)
}

// prune removes dir and its parents up to the objects folder while they
// are empty. A concurrent write into one of them makes rmdir fail, which
// ends the walk; the writer remakes what it needs (inDir).
func (d *Dir) prune(dir string) {
	top := filepath.Join(d.root, dirObjects)
	for dir != top && strings.HasPrefix(dir, top) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// List implements Store.
func (d *Dir) List(ctx context.Context, prefix string) ([]Object, error) {
	objs, err := d.walk(ctx, dirObjects, prefix)
	if err != nil {
		return nil, fmt.Errorf("failed to list %q: %w", prefix, err)
	}
	return objs, nil
}

// walk lists the files of the tree sub whose names start with prefix,
// walking only the folder the prefix names up to its last slash.
func (d *Dir) walk(ctx context.Context, sub, prefix string) ([]Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ValidPrefix(prefix); err != nil {
		return nil, err
	}
	top := filepath.Join(d.root, sub)
	from := top
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		from = filepath.Join(top, filepath.FromSlash(prefix[:i]))
	}
	var out []Object
	err := filepath.WalkDir(from, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // nothing under the prefix, or removed while walking
			}
			return err
		}
		if e.IsDir() {
			return ctx.Err()
		}
		rel, err := filepath.Rel(top, path)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, Object{Name: name, Size: fi.Size()})
		return nil
	})
	if err != nil {
		return nil, classify(err)
	}
	// WalkDir sorts per folder; "a-b/x" sorts before "a/x" as a name.
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Space implements Store: the bytes statfs says an unprivileged writer may
// still use.
func (d *Dir) Space(ctx context.Context) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("failed to read free space: %w", err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(d.root, &st); err != nil {
		return 0, false, fmt.Errorf("failed to read free space of %q: %w", d.root, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), true, nil
}
