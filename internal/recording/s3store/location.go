package s3store

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/framecast/framecast/internal/recording/store"
)

// Location is where a Bucket keeps its objects: an S3 bucket and a key
// prefix in it, written s3://bucket/prefix.
type Location struct {
	Bucket string
	// Prefix starts every object's key ("" or "a/b/", ending in a slash).
	Prefix string
}

// String returns the location as s3://bucket/prefix.
func (l Location) String() string { return "s3://" + l.Bucket + "/" + l.Prefix }

// IsLocation reports whether s names an S3 location (starts with s3://),
// as opposed to a directory.
func IsLocation(s string) bool { return strings.HasPrefix(s, "s3://") }

// ParseLocation reads s3://bucket or s3://bucket/prefix. The bucket
// follows S3's naming rules (3 to 63 characters of a-z 0-9 . -, starting
// and ending with a letter or digit, not an IP address); the prefix is
// made of store names' characters (A-Z a-z 0-9 . _ - /), and a slash is
// added at its end if missing.
func ParseLocation(s string) (Location, error) {
	rest, ok := strings.CutPrefix(s, "s3://")
	if !ok {
		return Location{}, fmt.Errorf("%q is not an S3 location: write s3://bucket/prefix", s)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if err := validBucket(bucket); err != nil {
		return Location{}, fmt.Errorf("%q: %w", s, err)
	}
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" {
		if err := store.ValidName(prefix); err != nil {
			return Location{}, fmt.Errorf("%q: the key prefix %q must be made of A-Z a-z 0-9 . _ - and single slashes, with no . or .. segment", s, prefix)
		}
		prefix += "/"
	}
	if len(prefix) > maxPrefix {
		// S3 keys are at most 1024 bytes: leave the store's names room.
		return Location{}, fmt.Errorf("%q: the key prefix is %d bytes, at most %d", s, len(prefix), maxPrefix)
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

// maxPrefix is the longest key prefix: S3 keys are at most 1024 bytes, and
// the store's names (about 60 bytes for a segment) follow the prefix.
const maxPrefix = 256

func validBucket(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("the bucket name %q must be 3 to 63 characters long", b)
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("the bucket name %q may hold only a-z, 0-9, . and - (byte %q at %d)", b, c, i)
		}
	}
	if !alnum(b[0]) || !alnum(b[len(b)-1]) {
		return fmt.Errorf("the bucket name %q must start and end with a letter or digit", b)
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("the bucket name %q must not hold two dots in a row", b)
	}
	if net.ParseIP(b) != nil {
		return fmt.Errorf("the bucket name %q must not be an IP address", b)
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// ValidEndpoint checks an S3 endpoint: host or host:port, without a scheme
// (TLS is its own setting) or a path.
func ValidEndpoint(e string) error {
	if e == "" {
		return fmt.Errorf("the endpoint is empty")
	}
	if strings.Contains(e, "://") {
		return fmt.Errorf("%q: give host or host:port without a scheme (TLS is chosen by its own setting)", e)
	}
	if strings.ContainsAny(e, "/?# \t") {
		return fmt.Errorf("%q: give host or host:port, with no path", e)
	}
	host := e
	if h, port, err := net.SplitHostPort(e); err == nil {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%q: %q is not a port", e, port)
		}
		host = h
	}
	if host == "" {
		return fmt.Errorf("%q has no host", e)
	}
	return nil
}
