package testenv

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a real S3 server started for one test: versitygw
// (github.com/versity/versitygw, an S3 gateway over a folder: each
// subfolder is a bucket), on a free loopback port, plain http, with one
// root account.
type S3 struct {
	// Endpoint is host:port, as s3store.Config wants it.
	Endpoint string
	// AccessKey and SecretKey are the root account's.
	AccessKey, SecretKey string
	// Dir is the folder served; Dir/<bucket> holds a bucket's objects.
	Dir  string
	Proc *Process

	t    testing.TB
	bin  string
	port int
}

// versitygwVersion is the version `make deps` installs.
const versitygwVersion = "v1.8.0"

// VersityGW returns the path of the versitygw binary: bin/tools/versitygw
// (where `make deps` installs it), else one on PATH. When there is none it
// skips the test, or fails it under CI; in short mode it skips.
func VersityGW(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the test needs an S3 server (versitygw)")
	}
	if p := filepath.Join(RepoRoot(t), "bin", "tools", "versitygw"); isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	msg := "versitygw (the tests' S3 server) is not installed: `make deps` installs it into bin/tools " +
		"(go install github.com/versity/versitygw/cmd/versitygw@" + versitygwVersion + ")"
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// StartS3 starts versitygw on a free port over a new temporary folder and
// waits until it answers. It is killed when the test ends.
func StartS3(t testing.TB) *S3 {
	t.Helper()
	return StartS3In(t, t.TempDir())
}

func (s *S3) start() {
	s.t.Helper()
	s.Proc = Start(s.t, "versitygw:"+strconv.Itoa(s.port), s.bin, nil,
		"--port", s.Endpoint, "--access", s.AccessKey, "--secret", s.SecretKey, "--quiet",
		"--keep-alive", // as S3 servers do; versitygw closes each connection by default
		"posix", s.Dir)
	WaitFor(s.t, 20*time.Second, "versitygw to answer", func() error {
		if s.Proc.Exited() {
			return fmt.Errorf("versitygw exited: %s", s.Proc.Output())
		}
		resp, err := http.Get("http://" + s.Endpoint + "/")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil // any answer (403 to an unsigned request) means it serves
	})
}

// Stop kills the server (SIGKILL).
func (s *S3) Stop() { s.Proc.Kill() }

// Restart starts the server again on the same port and folder after Stop.
func (s *S3) Restart() { s.start() }

// Client returns a minio-go client of the server, as the root account.
func (s *S3) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: "us-east-1",
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// CreateBucket makes a bucket.
func (s *S3) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("failed to create bucket %q: %v", name, err)
	}
}

// StartS3In is StartS3 serving dir (a filesystem the test made: a small
// tmpfs to fill, one to remount read-only).
func StartS3In(t testing.TB, dir string) *S3 {
	t.Helper()
	s := &S3{
		AccessKey: "framecast-test", SecretKey: "framecast-test-secret",
		Dir: dir, t: t, bin: VersityGW(t), port: FreePort(t),
	}
	s.Endpoint = "127.0.0.1:" + strconv.Itoa(s.port)
	s.start()
	return s
}
