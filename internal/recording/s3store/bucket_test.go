package s3store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/recording/store"
	"github.com/framecast/framecast/internal/recording/store/storetest"
)

// TestConformance runs the store conformance suite on a real S3 server
// (versitygw) with the journals in a real Redis.
func TestConformance(t *testing.T) {
	e := newEnv(t)
	storetest.Run(t, func(t testing.TB) store.Store { return e.open(t) })
}

func TestParseLocation(t *testing.T) {
	for _, c := range []struct {
		in           string
		bucket, pref string
		ok           bool
	}{
		{"s3://recordings", "recordings", "", true},
		{"s3://recordings/", "recordings", "", true},
		{"s3://recordings/site-a/cams", "recordings", "site-a/cams/", true},
		{"s3://recordings/site-a/", "recordings", "site-a/", true},
		{"s3://my.bucket-1/x", "my.bucket-1", "x/", true},
		{"/var/recordings", "", "", false},
		{"s3://", "", "", false},
		{"s3://ab", "", "", false},
		{"s3://Upper", "", "", false},
		{"s3://-dash", "", "", false},
		{"s3://a..b", "", "", false},
		{"s3://192.168.1.1", "", "", false},
		{"s3://bucket/../x", "", "", false},
		{"s3://bucket/a//b", "", "", false},
		{"s3://bucket/sp ace", "", "", false},
		{"s3://bucket/" + strings.Repeat("a", 300), "", "", false},
	} {
		l, err := s3store.ParseLocation(c.in)
		if (err == nil) != c.ok || c.ok && (l.Bucket != c.bucket || l.Prefix != c.pref) {
			t.Errorf("ParseLocation(%q) = %+v, %v; want %q %q ok=%v", c.in, l, err, c.bucket, c.pref, c.ok)
		}
	}
}

func TestValidEndpoint(t *testing.T) {
	for e, ok := range map[string]bool{
		"s3.amazonaws.com": true, "minio:9000": true, "127.0.0.1:7070": true, "[::1]:9000": true,
		"": false, "http://minio:9000": false, "minio:9000/path": false, "minio:0": false, "minio:http": false, ":9000": false,
	} {
		if err := s3store.ValidEndpoint(e); (err == nil) != ok {
			t.Errorf("ValidEndpoint(%q) = %v, want ok=%v", e, err, ok)
		}
	}
}

// TestNewRefuses: settings that cannot work are errors at start, naming
// what is wrong; a server that does not answer is not (it may come up).
func TestNewRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for name, c := range map[string]struct {
		mutate func(*s3store.Config)
		want   string
	}{
		"no bucket":        {func(c *s3store.Config) { c.Location = "s3://missing-bucket/x" }, "does not exist"},
		"bad secret":       {func(c *s3store.Config) { c.SecretKey = "wrong" }, "refuses the credentials"},
		"unknown keys":     {func(c *s3store.Config) { c.AccessKey, c.SecretKey = "nobody", "nothing" }, "refuses the credentials"},
		"no credentials":   {func(c *s3store.Config) { c.AccessKey, c.SecretKey = "", "" }, "AWS_ACCESS_KEY_ID"},
		"bad path style":   {func(c *s3store.Config) { c.PathStyle = "maybe" }, "path style"},
		"scheme endpoint":  {func(c *s3store.Config) { c.Endpoint = "http://" + c.Endpoint }, "without a scheme"},
		"missing file":     {func(c *s3store.Config) { c.CredentialsFile = "/nonexistent/credentials" }, "credentials file"},
		"braces":           {func(c *s3store.Config) { c.KeyPrefix = "a{b}:" }, "braces"},
		"journal > buffer": {func(c *s3store.Config) { c.JournalMax, c.BufferMax = 2<<20, 1<<20 }, "over the buffer"},
	} {
		cfg := e.config(t)
		c.mutate(&cfg)
		b, err := s3store.New(ctx, e.rdb, cfg)
		if err == nil {
			b.Close()
			t.Errorf("%s: New succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want it to say %q", name, err, c.want)
		}
	}
	cfg := e.config(t)
	cfg.Endpoint = "127.0.0.1:1" // nothing listens
	b, err := s3store.New(ctx, e.rdb, cfg)
	if err != nil {
		t.Fatalf("New with a server that does not answer: %v", err)
	}
	b.Close()
}

// TestCredentialsFile: keys from an AWS shared-credentials file; a
// rotated file is used without reopening the store, and writes refused
// meanwhile (bad keys) are buffered and uploaded once the keys work.
func TestCredentialsFile(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "credentials")
	write := func(secret string) {
		t.Helper()
		body := "# mounted secret\n[other]\naws_access_key_id = x\naws_secret_access_key = y\n\n[default]\n" +
			"aws_access_key_id = " + e.s3.AccessKey + "\naws_secret_access_key = " + secret + "\n"
		// A new file renamed into place, as a platform rotates a secret.
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(e.s3.SecretKey)
	b := e.open(t, func(c *s3store.Config) { c.AccessKey, c.SecretKey, c.CredentialsFile = "", "", path })
	if err := b.Put(ctx, "meta/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if st := b.Stats(); st.Puts != 1 || st.Buffered != 0 {
		t.Fatalf("stats %+v", st)
	}
	write("revoked-secret")
	time.Sleep(10 * time.Millisecond) // a later modification time than the first write
	if err := b.Put(ctx, "meta/b", []byte("b")); err != nil {
		t.Fatalf("a Put S3 refuses is buffered, not an error: %v", err)
	}
	if st := b.Stats(); st.Buffered != 1 || st.Healthy {
		t.Fatalf("after a refused write: %+v", st)
	}
	if got, err := b.Read(ctx, "meta/b", 0, -1); err != nil || string(got) != "b" {
		t.Fatalf("reading the buffered object: %q, %v", got, err)
	}
	if _, err := b.Read(ctx, "meta/a", 0, -1); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("reading with refused keys: %v, want ErrUnavailable", err)
	}
	write(e.s3.SecretKey)
	waitUploaded(t, b, 1)
	if got, err := e.s3.Client(t).GetObject(ctx, e.bucket, b.Location().Prefix+"meta/b", minioGet); err != nil || readAll(t, got) != "b" {
		t.Fatalf("the buffered object is not in S3: %v", err)
	}
}
