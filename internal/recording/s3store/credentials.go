package s3store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Credentials of the S3 requests: static keys (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY), or a file in the AWS shared-credentials form,
// which is what container platforms mount as a secret and rotate in place.

// ErrCredentials says the credentials are missing, or the credentials
// file cannot be read or holds no keys.
var ErrCredentials = errors.New("s3store: no usable credentials")

// staticProvider gives keys that never change.
type staticProvider struct{ v credentials.Value }

func (p staticProvider) Retrieve() (credentials.Value, error) { return p.v, nil }
func (p staticProvider) RetrieveWithCredContext(*credentials.CredContext) (credentials.Value, error) {
	return p.v, nil
}
func (p staticProvider) IsExpired() bool { return false }

// fileProvider reads an AWS shared-credentials file and reads it again
// when it changes (its size or modification time), so that a rotated
// secret is used without a restart. A file that cannot be read or parsed
// after a change keeps the last good keys in use, and the error is
// returned by the next retrieval.
type fileProvider struct {
	path    string
	profile string

	mu   sync.Mutex
	seen fileStamp // of the file last read
}

type fileStamp struct {
	size int64
	mod  time.Time
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.Size(), fi.ModTime()}, nil
}

func (p *fileProvider) RetrieveWithCredContext(*credentials.CredContext) (credentials.Value, error) {
	return p.Retrieve()
}

func (p *fileProvider) Retrieve() (credentials.Value, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := stampOf(p.path)
	if err != nil {
		return credentials.Value{}, fmt.Errorf("%w: failed to read the credentials file: %w", ErrCredentials, err)
	}
	b, err := os.ReadFile(p.path)
	if err != nil {
		return credentials.Value{}, fmt.Errorf("%w: failed to read the credentials file: %w", ErrCredentials, err)
	}
	v, err := parseCredentials(b, p.profile)
	if err != nil {
		return credentials.Value{}, fmt.Errorf("the credentials file %s: %w", p.path, err)
	}
	p.seen = st
	return v, nil
}

// IsExpired reports whether the file changed since it was last read.
func (p *fileProvider) IsExpired() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := stampOf(p.path)
	return err == nil && st != p.seen
}

// parseCredentials reads the AWS shared-credentials form:
//
//	[default]
//	aws_access_key_id = AKIA...
//	aws_secret_access_key = ...
//	aws_session_token = ...      (optional)
//
// The profile's section is used; a file without sections holds the keys
// at its top. Lines starting with # or ; are comments.
func parseCredentials(b []byte, profile string) (credentials.Value, error) {
	var v credentials.Value
	section, found, sections := "", false, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			section, sections = strings.TrimSpace(line[1:len(line)-1]), true
			section = strings.TrimPrefix(section, "profile ")
			continue
		}
		if section != profile && (sections || profile != "default") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch strings.ToLower(strings.TrimSpace(key)) {
		case "aws_access_key_id":
			v.AccessKeyID, found = val, true
		case "aws_secret_access_key":
			v.SecretAccessKey, found = val, true
		case "aws_session_token":
			v.SessionToken = val
		}
	}
	switch {
	case !found:
		return v, fmt.Errorf("%w: no aws_access_key_id and aws_secret_access_key in profile %q", ErrCredentials, profile)
	case v.AccessKeyID == "" || v.SecretAccessKey == "":
		return v, fmt.Errorf("%w: profile %q needs both aws_access_key_id and aws_secret_access_key", ErrCredentials, profile)
	}
	v.SignerType = credentials.SignatureV4
	return v, nil
}

// newCredentials returns the credentials cfg asks for: the file when one
// is set, else the keys. The file is read once here, so that a missing or
// malformed one is an error at start.
func newCredentials(cfg *Config) (*credentials.Credentials, error) {
	if cfg.CredentialsFile != "" {
		profile := cfg.Profile
		if profile == "" {
			profile = "default"
		}
		p := &fileProvider{path: cfg.CredentialsFile, profile: profile}
		if _, err := p.Retrieve(); err != nil {
			return nil, err
		}
		return credentials.New(p), nil
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, fmt.Errorf("%w: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a credentials file", ErrCredentials)
	}
	return credentials.New(staticProvider{credentials.Value{
		AccessKeyID: cfg.AccessKey, SecretAccessKey: cfg.SecretKey, SessionToken: cfg.SessionToken,
		SignerType: credentials.SignatureV4,
	}}), nil
}
