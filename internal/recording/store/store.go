// Package store is where recorded bytes live: the plug-in point between the
// recorder, the index and playback above it, and a directory (Dir) or, next,
// S3-compatible object storage below it.
//
// A Store holds two kinds of things, named by slash-separated keys (see
// ValidName):
//
//   - journals: small or growing byte logs that are appended to while
//     something is being recorded (the open segment, today's index log).
//     When Append returns, the record survives the writing process being
//     killed. A journal ends by being sealed into an object, or discarded.
//   - objects: immutable blobs, written once (Seal, or Put for small
//     metadata) and read by byte range. Objects are never appended to in
//     place, so a store that cannot append (S3) can hold them; journals are
//     the only thing that needs an append, and are small.
//
// Listing (List, Journals) is for recovery, rebuilding and retention only:
// playback finds everything through the index (package index), so no
// listing is ever on the path of a seek.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Errors a Store's methods wrap. Callers match them with errors.Is.
var (
	// ErrNotFound: the object or journal does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrFull: the store has no room for the write (ENOSPC, a quota).
	// The failed write left nothing behind; freeing space makes the store
	// writable again.
	ErrFull = errors.New("store: no space left")
	// ErrBadName: the key is not a valid name (see ValidName).
	ErrBadName = errors.New("store: invalid name")
	// ErrBadRange: a read's offset is negative or past the object's end.
	ErrBadRange = errors.New("store: invalid byte range")
	// ErrUnavailable: the store cannot serve the call now (its server is
	// down, slow past the deadline, or refuses the credentials); the same
	// call may succeed later. Playback answers it with 503; a recorder
	// counts it and drops what it could not write.
	ErrUnavailable = errors.New("store: unavailable")
)

// Store is where recordings are kept. Implementations are safe for
// concurrent use by many goroutines and many processes, with one rule the
// callers keep: a journal has at most one appender at a time (the
// recorder holding the room's lease).
type Store interface {
	// Append appends rec to journal, creating the journal if it does not
	// exist. When it returns nil, rec survives the calling process being
	// killed; whether it survives a power loss depends on the
	// implementation (see Dir). When it returns an error, the journal is as
	// it was before the call: no part of rec is in it.
	Append(ctx context.Context, journal string, rec []byte) error
	// ReadJournal returns the whole journal.
	ReadJournal(ctx context.Context, journal string) ([]byte, error)
	// Seal makes the journal's bytes the object, atomically (readers see
	// either no object, or the old one, or the whole new one), and removes
	// the journal.
	Seal(ctx context.Context, journal, object string) error
	// Discard removes a journal. A missing journal is not an error.
	Discard(ctx context.Context, journal string) error
	// Journals returns the names of the journals whose names start with
	// prefix, sorted. For recovery only: never on the path of playback.
	Journals(ctx context.Context, prefix string) ([]string, error)

	// Put writes object whole, atomically replacing any object of that
	// name. For small metadata (index logs, retention cutoffs): footage is
	// written with Append and Seal.
	Put(ctx context.Context, object string, data []byte) error
	// Read returns n bytes of object from offset off, fewer when the object
	// ends first; n < 0 reads to the end. A missing object is ErrNotFound;
	// off < 0 or past the end is ErrBadRange.
	Read(ctx context.Context, object string, off, n int64) ([]byte, error)
	// Delete removes objects. Missing ones are not an error.
	Delete(ctx context.Context, objects ...string) error
	// List returns the objects whose names start with prefix, sorted by
	// name. For rebuilding and retention only: never on the path of
	// playback.
	List(ctx context.Context, prefix string) ([]Object, error)
	// Space reports the free space left to the store's writes. known is
	// false for stores that cannot tell (object storage).
	Space(ctx context.Context) (free int64, known bool, err error)
}

// Object is one object as List reports it.
type Object struct {
	Name string
	Size int64
}

// MaxNameLen is the longest valid name, S3's limit on keys.
const MaxNameLen = 1024

// ValidName reports whether name is a valid journal or object name: 1 to
// MaxNameLen bytes of A-Z a-z 0-9 . _ - and /, segments separated by single
// slashes, none empty, "." or "..", no leading or trailing slash. Keys of
// this shape mean the same thing as file paths and as S3 keys.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrBadName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrBadName, len(name), MaxNameLen)
	}
	if err := validChars(name); err != nil {
		return err
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch seg {
		case "":
			return fmt.Errorf("%w: %q has an empty segment (a leading, trailing or double slash)", ErrBadName, name)
		case ".", "..":
			return fmt.Errorf("%w: %q has a %q segment", ErrBadName, name, seg)
		}
	}
	return nil
}

// ValidPrefix reports whether prefix can start a valid name: empty, or
// the characters of ValidName with no "." or ".." segment and no empty
// segment before its last slash ("seg/cam/" and "seg/ca" are prefixes).
func ValidPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxNameLen {
		return fmt.Errorf("%w: prefix of %d bytes, limit %d", ErrBadName, len(prefix), MaxNameLen)
	}
	if err := validChars(prefix); err != nil {
		return err
	}
	segs := strings.Split(prefix, "/")
	for i, seg := range segs {
		last := i == len(segs)-1
		if seg == "" && !last || seg == ".." || seg == "." && !last {
			return fmt.Errorf("%w: prefix %q", ErrBadName, prefix)
		}
	}
	return nil
}

func validChars(name string) error {
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '/') {
			return fmt.Errorf("%w: %q has byte %q at %d (allowed: A-Z a-z 0-9 . _ - /)", ErrBadName, name, c, i)
		}
	}
	return nil
}
