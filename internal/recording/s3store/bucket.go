// Package s3store is a store.Store in S3-compatible object storage (AWS
// S3, MinIO, Ceph RGW, SeaweedFS, versitygw, Cloudflare R2), with its
// journals in Redis: recorders and playback replicas that share nothing
// but Redis and a bucket.
//
// Objects (sealed segments, sealed day logs, retention cutoffs) are S3
// objects under the location's prefix, written once with one PUT, read by
// byte range, deleted in batches of up to 1000 per request. Journals (the
// open segment, today's index log) never reach S3 until sealed: each is a
// Redis string appended to atomically (a Lua script checks the bounds and
// appends, so a recorder killed mid-call leaves the record whole or
// absent), and Seal is one GET from Redis, one PUT to S3 and one delete
// from Redis. S3 thus sees one PUT per segment and never an append, and a
// recorder's kill -9 loses only the part it was filling (at most 1 s).
//
// When S3 fails a write (stopped, too slow, refusing the credentials, a
// full or read-only bucket), Seal and Put keep the bytes in Redis instead
// (a buffered object), return success, and a background uploader puts
// them in S3 once it answers again. Reads find buffered objects, so what
// was recorded during an outage plays back. Journals and buffered objects
// together are bounded (Config.BufferMax, and Config.JournalMax per
// journal): past the bound Append fails with store.ErrFull, and the
// recorder drops and counts. Reads that S3 cannot serve fail with
// store.ErrUnavailable (playback answers 503).
//
// Redis keys, under Config.KeyPrefix and a hash tag that keeps a store's
// keys in one Redis Cluster slot (so that one script sees them all):
//
//	<prefix>rec{<bucket>/<key prefix>}:j:<name>   a journal
//	<prefix>rec{<bucket>/<key prefix>}:p:<name>   a buffered object
//	<prefix>rec{<bucket>/<key prefix>}:bytes      bytes held by both kinds
//
// Listing journals and buffered objects is a SCAN with the key's prefix as
// its pattern (never KEYS), for recovery, retention and the uploader only.
package s3store

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/redis/go-redis/v9"

	"github.com/framecast/framecast/internal/recording/store"
)

// Defaults of Config.
const (
	DefaultEndpoint   = "s3.amazonaws.com"
	DefaultRegion     = "us-east-1"
	DefaultTimeout    = 10 * time.Second
	DefaultJournalMax = 64 << 20
	DefaultBufferMax  = 512 << 20
	DefaultJournalTTL = 7 * 24 * time.Hour
	DefaultKeyPrefix  = "framecast:"
	DefaultRetryEvery = 5 * time.Second
)

// Config configures a Bucket. Zero values mean the defaults.
type Config struct {
	// Location is s3://bucket/prefix (see ParseLocation).
	Location string
	// Endpoint is the S3 server, host or host:port. Default
	// s3.amazonaws.com.
	Endpoint string
	// Region is the bucket's region, sent with every request (so no
	// request asks the server for it). Default us-east-1, which MinIO,
	// SeaweedFS and versitygw accept.
	Region string
	// PathStyle chooses the addressing: "auto" (the default:
	// virtual-hosted bucket.endpoint on AWS and Google endpoints,
	// endpoint/bucket elsewhere), "true" (always endpoint/bucket: MinIO,
	// SeaweedFS, versitygw, most self-hosted servers) or "false" (always
	// virtual-hosted).
	PathStyle string
	// TLS speaks https to the endpoint; without it, plain http (a server
	// on the same host or a private network only).
	TLS bool
	// AccessKey, SecretKey and SessionToken are static credentials
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN).
	AccessKey, SecretKey, SessionToken string
	// CredentialsFile, when set, is used instead: an AWS shared-credentials
	// file (a container secret), read again whenever it changes. Profile
	// is its section; default "default".
	CredentialsFile, Profile string
	// Timeout bounds each S3 request (a call's own context may end it
	// sooner). Default 10 s.
	Timeout time.Duration
	// JournalMax bounds one journal (an open segment: at the sender's
	// defaults about 5 MB per 10 s segment). An append past it fails with
	// store.ErrFull. Default 64 MiB.
	JournalMax int64
	// BufferMax bounds what the store keeps in Redis, every journal and
	// buffered object together (approximately: journals that expired are
	// counted until the next recount). An append or a buffered write past
	// it fails with store.ErrFull. Default 512 MiB.
	BufferMax int64
	// JournalTTL is how long a journal or buffered object no one writes
	// stays in Redis: a forgotten one (its room no longer recorded) goes
	// after it. Every append renews it. Default 7 days.
	JournalTTL time.Duration
	// KeyPrefix starts every Redis key. Default "framecast:"; it must not
	// hold braces.
	KeyPrefix string
	// RetryEvery is the longest pause between the uploader's attempts
	// while S3 fails. Default 5 s.
	RetryEvery time.Duration
	// Transport carries the S3 requests. Default: a clone of
	// http.DefaultTransport. Tests wrap it to count requests.
	Transport http.RoundTripper
	// Log receives the store's warnings (S3 down, back, objects lost).
	// Default: discarded.
	Log *slog.Logger
}

// Bucket is a store.Store in an S3 bucket, its journals in Redis (see the
// package documentation). It is safe for concurrent use by any number of
// goroutines and processes, given one appender per journal. Close stops
// its uploader.
type Bucket struct {
	cfg    Config
	loc    Location
	client *minio.Core // reads, lists, deletes
	writer *minio.Core // PUTs, without retries
	rdb    redis.UniversalClient
	base   string // Redis key prefix of this store's keys, hash tag included
	total  string // key of the bytes held

	healthy atomic.Bool // the last write to S3 worked: Seal and Put try S3 first
	nudge   chan struct{}
	stop    context.CancelFunc
	done    chan struct{}

	recountMu   sync.Mutex
	lastRecount time.Time

	stats counters
}

var _ store.Store = (*Bucket)(nil)

// counters are Stats' atomics.
type counters struct {
	puts, putErrors, buffered, uploaded, lost, refused atomic.Uint64
	bufferBytes                                        atomic.Int64
}

// Stats are a Bucket's counts since it was opened, for metrics.
type Stats struct {
	// Puts are objects written to S3 (Seal, Put, uploads), PutErrors the
	// writes S3 failed.
	Puts, PutErrors uint64
	// Buffered are objects kept in Redis because S3 failed their write;
	// Uploaded, those written to S3 later; Lost, those S3 refused for good
	// (too large, a bad request) and that were dropped.
	Buffered, Uploaded, Lost uint64
	// Refused are appends and buffered writes refused at a bound
	// (store.ErrFull): recording dropped.
	Refused uint64
	// BufferBytes is what the store held in Redis (journals and buffered
	// objects) at the last append or seal.
	BufferBytes int64
	// Healthy reports whether the last write to S3 worked.
	Healthy bool
}

// Stats returns the bucket's counts.
func (b *Bucket) Stats() Stats {
	return Stats{
		Puts: b.stats.puts.Load(), PutErrors: b.stats.putErrors.Load(),
		Buffered: b.stats.buffered.Load(), Uploaded: b.stats.uploaded.Load(), Lost: b.stats.lost.Load(),
		Refused: b.stats.refused.Load(), BufferBytes: b.stats.bufferBytes.Load(), Healthy: b.healthy.Load(),
	}
}

// Location returns where the bucket keeps its objects.
func (b *Bucket) Location() Location { return b.loc }

// New opens the store cfg describes, its journals in rdb. It checks the
// settings and the credentials, and asks the server whether the bucket
// exists: a server that answers that it does not, or that refuses the
// credentials, is an error; one that does not answer is not (it may come
// up later: until then writes are buffered and reads fail). The uploader
// runs until Close.
func New(ctx context.Context, rdb redis.UniversalClient, cfg Config) (*Bucket, error) {
	if rdb == nil {
		return nil, errors.New("s3store: journals need Redis")
	}
	loc, err := ParseLocation(cfg.Location)
	if err != nil {
		return nil, err
	}
	setDefaults(&cfg)
	if err := ValidEndpoint(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("s3store: endpoint %w", err)
	}
	lookup, err := bucketLookup(cfg.PathStyle)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(cfg.KeyPrefix, "{}") {
		return nil, fmt.Errorf("s3store: the Redis key prefix %q must not hold braces", cfg.KeyPrefix)
	}
	if cfg.JournalMax > cfg.BufferMax {
		return nil, fmt.Errorf("s3store: a journal's bound (%d bytes) is over the buffer's (%d)", cfg.JournalMax, cfg.BufferMax)
	}
	creds, err := newCredentials(&cfg)
	if err != nil {
		return nil, err
	}
	opts := minio.Options{Creds: creds, Secure: cfg.TLS, Transport: cfg.Transport, Region: cfg.Region, BucketLookup: lookup}
	// Reads get one retry, so that a seek rides out a dropped connection
	// yet fails fast enough to answer 503; writes none, as the store
	// buffers what S3 fails.
	opts.MaxRetries = 2
	client, err := minio.NewCore(cfg.Endpoint, &opts)
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	opts.MaxRetries = 1
	writer, err := minio.NewCore(cfg.Endpoint, &opts)
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	b := &Bucket{
		cfg: cfg, loc: loc, client: client, writer: writer, rdb: rdb,
		base:  cfg.KeyPrefix + "rec{" + loc.Bucket + "/" + loc.Prefix + "}:",
		nudge: make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	b.total = b.base + "bytes"
	b.healthy.Store(true)
	if err := b.probe(ctx); err != nil {
		return nil, err
	}
	uctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	go b.upload(uctx)
	return b, nil
}

func setDefaults(cfg *Config) {
	if cfg.Endpoint == "" {
		cfg.Endpoint = DefaultEndpoint
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.JournalMax <= 0 {
		cfg.JournalMax = DefaultJournalMax
	}
	if cfg.BufferMax <= 0 {
		cfg.BufferMax = DefaultBufferMax
	}
	if cfg.JournalTTL <= 0 {
		cfg.JournalTTL = DefaultJournalTTL
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = DefaultKeyPrefix
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = DefaultRetryEvery
	}
	if cfg.Transport == nil {
		cfg.Transport = NewTransport()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
}

// NewTransport returns the default transport of S3 requests: Go's
// default, keeping up to 64 idle connections to the server instead of 2,
// so that concurrent reads (a timeline's day logs, many viewers' seeks)
// reuse connections instead of opening one per request.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	return t
}

// ValidPathStyle checks a PathStyle value.
func ValidPathStyle(s string) error {
	_, err := bucketLookup(s)
	return err
}

func bucketLookup(s string) (minio.BucketLookupType, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return minio.BucketLookupAuto, nil
	case "true", "path":
		return minio.BucketLookupPath, nil
	case "false", "virtual":
		return minio.BucketLookupDNS, nil
	}
	return 0, fmt.Errorf("s3store: path style %q is not auto, true or false", s)
}

// probe asks for one key under the location's prefix (one LIST request,
// whose error answer names the problem, where a HEAD's has no body).
func (b *Bucket) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(b.cfg.Timeout, 5*time.Second))
	defer cancel()
	var err error
	for info := range b.client.Client.ListObjects(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: b.loc.Prefix, MaxKeys: 1}) {
		err = info.Err
		break
	}
	if err == nil {
		return nil
	}
	cerr := classify(err)
	switch {
	case minio.ToErrorResponse(err).Code == "NoSuchBucket":
		return fmt.Errorf("s3store: the bucket %q does not exist on %s: create it first", b.loc.Bucket, b.cfg.Endpoint)
	case denied(err):
		return fmt.Errorf("s3store: %s refuses the credentials for bucket %q: %w", b.cfg.Endpoint, b.loc.Bucket, cerr)
	case !errors.Is(cerr, store.ErrUnavailable):
		return fmt.Errorf("s3store: %s answers a listing of bucket %q with an error: %w", b.cfg.Endpoint, b.loc.Bucket, cerr)
	}
	b.cfg.Log.Warn("S3 does not answer; starting anyway: recordings are buffered in Redis and playback answers 503 until it does",
		"endpoint", b.cfg.Endpoint, "bucket", b.loc.Bucket, "err", cerr)
	return nil
}

// Close stops the uploader. Buffered objects stay in Redis for the next
// Bucket of this location, on any replica.
func (b *Bucket) Close() error {
	b.stop()
	<-b.done
	return nil
}

func (b *Bucket) key(name string) string { return b.loc.Prefix + name }

// fail builds the error of a failed operation on name.
func fail(op, name string, err error) error {
	return fmt.Errorf("failed to %s %q: %w", op, name, err)
}

// start checks the context and a name before an operation.
func start(ctx context.Context, op, name string) error {
	if err := ctx.Err(); err != nil {
		return fail(op, name, err)
	}
	if err := store.ValidName(name); err != nil {
		return fail(op, name, err)
	}
	return nil
}

// s3ctx bounds one S3 request by the configured timeout.
func (b *Bucket) s3ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.cfg.Timeout)
}

// put writes data as object in one PUT request.
func (b *Bucket) put(ctx context.Context, object string, data []byte) error {
	ctx, cancel := b.s3ctx(ctx)
	defer cancel()
	// Signed with the payload's hash in one header, never minio-go's
	// default over plain http, a streaming (aws-chunked) signature: some
	// servers leave a chunked body's tail unread on a kept-alive
	// connection, and the next request on it fails to parse (versitygw
	// 1.8 under load: "An error occurred when parsing the HTTP request").
	// Over TLS the payload goes unsigned; TLS protects it.
	sum := ""
	if !b.cfg.TLS {
		h := sha256.Sum256(data)
		sum = hex.EncodeToString(h[:])
	}
	_, err := b.writer.PutObject(ctx, b.loc.Bucket, b.key(object), bytes.NewReader(data), int64(len(data)), "", sum,
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true})
	if err != nil {
		b.stats.putErrors.Add(1)
		return classify(err)
	}
	b.stats.puts.Add(1)
	return nil
}

// Append implements store.Store: one script appends rec to the journal's
// Redis string and renews its TTL, unless a bound would be passed.
func (b *Bucket) Append(ctx context.Context, journal string, rec []byte) error {
	if err := start(ctx, "append to", journal); err != nil {
		return err
	}
	if err := b.appendJournal(ctx, journal, rec); err != nil {
		return fail("append to", journal, err)
	}
	return nil
}

// ReadJournal implements store.Store.
func (b *Bucket) ReadJournal(ctx context.Context, journal string) ([]byte, error) {
	if err := start(ctx, "read journal", journal); err != nil {
		return nil, err
	}
	data, err := b.rdb.Get(ctx, b.journalKey(journal)).Bytes()
	if err != nil {
		return nil, fail("read journal", journal, redisError(err))
	}
	return data, nil
}

// Seal implements store.Store: read the journal from Redis, PUT it as the
// object, delete the journal. When S3 fails the PUT, the journal becomes
// a buffered object in Redis (one RENAME, no bytes copied) for the
// uploader, and Seal succeeds: readers find it there.
func (b *Bucket) Seal(ctx context.Context, journal, object string) error {
	if err := start(ctx, "seal", journal); err != nil {
		return err
	}
	if err := store.ValidName(object); err != nil {
		return fail("seal", journal, err)
	}
	data, err := b.rdb.Get(ctx, b.journalKey(journal)).Bytes()
	if err != nil {
		return fail("seal", journal, redisError(err))
	}
	if b.healthy.Load() {
		err := b.put(ctx, object, data)
		if err == nil {
			if err := b.drop(ctx, b.journalKey(journal), b.pendingKey(object)); err != nil {
				return fail(fmt.Sprintf("seal %q into", journal), object, err)
			}
			return nil
		}
		if !transient(err) {
			return fail(fmt.Sprintf("seal %q into", journal), object, err)
		}
		b.down(err)
	}
	// Buffer it, even when the caller's context ended with the PUT: the
	// journal is whole and the rename is quick.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.stash(rctx, journal, object); err != nil {
		return fail(fmt.Sprintf("seal %q into", journal), object, err)
	}
	return nil
}

// Discard implements store.Store.
func (b *Bucket) Discard(ctx context.Context, journal string) error {
	if err := start(ctx, "discard", journal); err != nil {
		return err
	}
	if err := b.drop(ctx, b.journalKey(journal)); err != nil {
		return fail("discard", journal, err)
	}
	return nil
}

// Journals implements store.Store: a SCAN of the journals' keys.
func (b *Bucket) Journals(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to list journals %q: %w", prefix, err)
	}
	if err := store.ValidPrefix(prefix); err != nil {
		return nil, fmt.Errorf("failed to list journals %q: %w", prefix, err)
	}
	names, err := b.scan(ctx, "j:", prefix)
	if err != nil {
		return nil, fmt.Errorf("failed to list journals %q: %w", prefix, err)
	}
	return names, nil
}

// Put implements store.Store: one PUT. When S3 fails it, the object is
// buffered in Redis for the uploader (within BufferMax) and Put succeeds.
func (b *Bucket) Put(ctx context.Context, object string, data []byte) error {
	if err := start(ctx, "put", object); err != nil {
		return err
	}
	if b.healthy.Load() {
		err := b.put(ctx, object, data)
		if err == nil {
			if err := b.drop(ctx, b.pendingKey(object)); err != nil {
				return fail("put", object, err)
			}
			return nil
		}
		if !transient(err) {
			return fail("put", object, err)
		}
		b.down(err)
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := b.stashData(rctx, object, data); err != nil {
		return fail("put", object, err)
	}
	return nil
}

// Read implements store.Store: one ranged GET (a HEAD more when the range
// starts at the object's end, or n is 0). An object S3 does not have, or
// cannot serve now, is looked for among the buffered ones; while writes
// fail, those are looked at first.
func (b *Bucket) Read(ctx context.Context, object string, off, n int64) ([]byte, error) {
	if err := start(ctx, "read", object); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fail("read", object, fmt.Errorf("%w: offset %d", store.ErrBadRange, off))
	}
	if !b.healthy.Load() {
		if data, ok, err := b.readPending(ctx, object, off, n); ok || err != nil {
			return data, err
		}
	}
	data, err := b.read(ctx, object, off, n)
	if err == nil {
		return data, nil
	}
	if (errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable)) && ctx.Err() == nil {
		if data, ok, perr := b.readPending(ctx, object, off, n); ok || perr != nil {
			return data, perr
		}
	}
	return nil, fail("read", object, err)
}

// read reads a byte range of object from S3.
func (b *Bucket) read(ctx context.Context, object string, off, n int64) ([]byte, error) {
	ctx, cancel := b.s3ctx(ctx)
	defer cancel()
	if n == 0 {
		return b.emptyAt(ctx, object, off)
	}
	var opts minio.GetObjectOptions
	switch {
	case n > 0:
		_ = opts.SetRange(off, off+n-1) // valid: 0 <= off <= off+n-1
	case off > 0:
		_ = opts.SetRange(off, 0) // bytes=off-
	}
	body, info, _, err := b.client.GetObject(ctx, b.loc.Bucket, b.key(object), opts)
	if err != nil {
		err = classify(err)
		if errors.Is(err, store.ErrBadRange) {
			// The range starts at or past the end: at it, it is empty.
			return b.emptyAt(ctx, object, off)
		}
		return nil, err
	}
	defer body.Close()
	var buf bytes.Buffer
	if info.Size > 0 {
		buf.Grow(int(info.Size))
	}
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, classify(err)
	}
	return buf.Bytes(), nil
}

// emptyAt answers a read of nothing at off: empty when off is within the
// object or at its end, ErrBadRange past it.
func (b *Bucket) emptyAt(ctx context.Context, object string, off int64) ([]byte, error) {
	info, err := b.client.StatObject(ctx, b.loc.Bucket, b.key(object), minio.StatObjectOptions{})
	if err != nil {
		return nil, classify(err)
	}
	if off > info.Size {
		return nil, fmt.Errorf("%w: offset %d of %d bytes", store.ErrBadRange, off, info.Size)
	}
	return []byte{}, nil
}

// Delete implements store.Store: the objects' buffered copies go from
// Redis, then the objects from S3 in batches of up to 1000 per request
// (DeleteObjects). Missing ones are not an error.
func (b *Bucket) Delete(ctx context.Context, objects ...string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("failed to delete: %w", err)
	}
	var errs []error
	valid := make([]string, 0, len(objects))
	for _, o := range objects {
		if err := store.ValidName(o); err != nil {
			errs = append(errs, fail("delete", o, err))
			continue
		}
		valid = append(valid, o)
	}
	if len(valid) == 0 {
		return errors.Join(errs...)
	}
	for batch := range slices.Chunk(valid, 500) {
		keys := make([]string, len(batch))
		for i, o := range batch {
			keys[i] = b.pendingKey(o)
		}
		if err := b.drop(ctx, keys...); err != nil {
			return errors.Join(append(errs, fmt.Errorf("failed to delete %d objects: %w", len(valid), err))...)
		}
	}
	ch := make(chan minio.ObjectInfo)
	go func() {
		defer close(ch)
		for _, o := range valid {
			select {
			case ch <- minio.ObjectInfo{Key: b.key(o)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	failed := 0
	var first error
	for e := range b.client.RemoveObjects(ctx, b.loc.Bucket, ch, minio.RemoveObjectsOptions{}) {
		if e.Err == nil || minio.ToErrorResponse(e.Err).Code == "NoSuchKey" {
			continue
		}
		if failed++; first == nil {
			first = fail("delete", strings.TrimPrefix(e.ObjectName, b.loc.Prefix), classify(e.Err))
		}
	}
	if first == nil && ctx.Err() != nil {
		first = fmt.Errorf("failed to delete: %w", ctx.Err())
	}
	if first != nil {
		errs = append(errs, fmt.Errorf("%d of %d objects not deleted; the first: %w", max(failed, 1), len(valid), first))
	}
	return errors.Join(errs...)
}

// List implements store.Store: ListObjectsV2 pages of 1000, and the
// buffered objects (a SCAN), merged and sorted by name.
func (b *Bucket) List(ctx context.Context, prefix string) ([]store.Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to list %q: %w", prefix, err)
	}
	if err := store.ValidPrefix(prefix); err != nil {
		return nil, fmt.Errorf("failed to list %q: %w", prefix, err)
	}
	var out []store.Object
	for info := range b.client.Client.ListObjects(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: b.key(prefix), Recursive: true}) {
		if info.Err != nil {
			return nil, fmt.Errorf("failed to list %q: %w", prefix, classify(info.Err))
		}
		name := strings.TrimPrefix(info.Key, b.loc.Prefix)
		if store.ValidName(name) != nil {
			continue // not one of ours: a folder marker, a foreign key
		}
		out = append(out, store.Object{Name: name, Size: info.Size})
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to list %q: %w", prefix, err)
	}
	pending, err := b.pendingObjects(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("failed to list %q: %w", prefix, err)
	}
	if len(pending) > 0 {
		// A buffered object is newer than S3's of its name.
		seen := make(map[string]int, len(out))
		for i, o := range out {
			seen[o.Name] = i
		}
		for _, p := range pending {
			if i, ok := seen[p.Name]; ok {
				out[i] = p
			} else {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, func(a, b store.Object) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Space implements store.Store: object storage cannot tell.
func (b *Bucket) Space(ctx context.Context) (int64, bool, error) {
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("failed to read free space: %w", err)
	}
	return 0, false, nil
}

// down marks S3 as failing writes: Seal and Put buffer without trying it
// until the uploader gets a write through. (The buffered write wakes the
// uploader.)
func (b *Bucket) down(err error) {
	if b.healthy.Swap(false) {
		b.cfg.Log.Warn("S3 fails writes: sealing into the Redis buffer until it answers again",
			"bucket", b.loc.String(), "err", err)
	}
}

// up marks S3 as taking writes again.
func (b *Bucket) up() {
	if !b.healthy.Swap(true) {
		b.cfg.Log.Info("S3 takes writes again", "bucket", b.loc.String())
	}
}

func (b *Bucket) wake() {
	select {
	case b.nudge <- struct{}{}:
	default:
	}
}

func sha1Hex(b []byte) string {
	h := sha1.Sum(b)
	return hex.EncodeToString(h[:])
}
