package gateway

import (
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/framecast/framecast/internal/recording/s3store"
)

// Settings of recording and playback (docs/recording.md). Validate calls
// validateRecording.

// ByteSize is a size setting: a number of bytes with an optional unit,
// decimal (kB, MB, GB, TB) or binary (KiB, MiB, GiB, TiB); "" is zero.
type ByteSize int64

// Decode implements envconfig.Decoder.
func (b *ByteSize) Decode(s string) error {
	n, err := ParseByteSize(s)
	*b = ByteSize(n)
	return err
}

// ParseByteSize reads a size such as "4MiB", "10GB", "512kB" or "1000".
func ParseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
	}
	mult, ok := byteUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB)", s, unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 || v*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	return int64(v * float64(mult)), nil
}

var byteUnits = map[string]int64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// Age is a duration setting that also takes days: "7d", "36h", "90m",
// "1d12h"; "" is zero.
type Age time.Duration

// Decode implements envconfig.Decoder.
func (a *Age) Decode(s string) error {
	d, err := ParseAge(s)
	*a = Age(d)
	return err
}

// ParseAge reads a duration in time.ParseDuration's form with days ("d",
// 24 hours) allowed in front: "7d", "1d12h", "36h".
func ParseAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	var days int64
	if i := strings.IndexByte(s, 'd'); i >= 0 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q: days must be a whole number from 0 to 36500", s)
		}
		days, s = n, s[i+1:]
	}
	var rest time.Duration
	if s != "" {
		var err error
		if rest, err = time.ParseDuration(s); err != nil || rest < 0 {
			return 0, fmt.Errorf("%q is not a duration such as 7d, 36h or 1d12h", s)
		}
	}
	return time.Duration(days)*24*time.Hour + rest, nil
}

// Defaults of the recording settings whose zero value means the default.
const (
	defaultRecordSegment = 10 * time.Second
	defaultClipMax       = time.Hour
)

// recordSegment is GATEWAY_RECORD_SEGMENT with its default applied.
func (c *Config) recordSegment() time.Duration {
	if c.RecordSegment <= 0 {
		return defaultRecordSegment
	}
	return c.RecordSegment
}

// clipMax is GATEWAY_CLIP_MAX with its default applied.
func (c *Config) clipMax() time.Duration {
	if c.ClipMax <= 0 {
		return defaultClipMax
	}
	return c.ClipMax
}

// records reports whether this replica records room (GATEWAY_RECORD).
func (c *Config) records(room string) bool {
	for _, p := range c.Record {
		if ok, _ := path.Match(p, room); ok {
			return true
		}
	}
	return false
}

// validateRecording checks the recording settings; Validate calls it.
func (c *Config) validateRecording() error {
	for _, p := range c.Record {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			return settingError("RECORD", "%q is not a room pattern (path.Match syntax, * for all)", p)
		}
	}
	if len(c.Record) > 0 && c.RecordStore == "" {
		return settingError("RECORD_STORE", "must be set when RECORD is: where should recordings go?")
	}
	if c.RecordSegment < 0 || c.RecordSegment > 0 && (c.RecordSegment < 2*time.Second || c.RecordSegment > 10*time.Minute) {
		return settingError("RECORD_SEGMENT", "%v is outside 2s..10m", c.RecordSegment)
	}
	if c.RecordKeep < 0 || c.RecordKeep > 0 && time.Duration(c.RecordKeep) < time.Minute {
		return settingError("RECORD_KEEP", "%v is less than a minute", time.Duration(c.RecordKeep))
	}
	if c.RecordMaxBytes < 0 || c.RecordMaxBytes > 0 && c.RecordMaxBytes < 1<<20 {
		return settingError("RECORD_MAX_BYTES", "%d bytes is less than 1MiB", c.RecordMaxBytes)
	}
	if c.RecordMinFree < 0 {
		return settingError("RECORD_MIN_FREE", "%d must not be negative", c.RecordMinFree)
	}
	if c.ClipMax < 0 || c.ClipMax > 24*time.Hour {
		return settingError("CLIP_MAX", "%v is outside 0..24h", c.ClipMax)
	}
	return c.validateS3()
}

// validateS3 checks the S3 settings when RECORD_STORE is an s3:// location.
// The credentials are checked when the store opens (openLibrary).
func (c *Config) validateS3() error {
	if !s3store.IsLocation(c.RecordStore) {
		return nil
	}
	if _, err := s3store.ParseLocation(c.RecordStore); err != nil {
		return settingError("RECORD_STORE", "%v", err)
	}
	if c.redisMode() == redisNone {
		return settingError("RECORD_STORE", "an s3:// store keeps the segments being written in Redis, so that a recorder's "+
			"crash loses at most 1 s: set %[1]s_REDIS_URL (or %[1]s_REDIS_CLUSTER_ADDRS, %[1]s_REDIS_SENTINEL_ADDRS); "+
			"a gateway alone records to a directory", EnvPrefix)
	}
	if strings.ContainsAny(c.RedisKeyPrefix, "{}") {
		return settingError("REDIS_KEY_PREFIX", "%q must hold no braces with an s3:// store (they make Redis Cluster hash tags)", c.RedisKeyPrefix)
	}
	if c.S3Endpoint != "" {
		if err := s3store.ValidEndpoint(c.S3Endpoint); err != nil {
			return settingError("S3_ENDPOINT", "%v", err)
		}
	}
	if strings.TrimSpace(c.S3Region) != c.S3Region || strings.ContainsAny(c.S3Region, "/ ") {
		return settingError("S3_REGION", "%q is not a region name (e.g. us-east-1)", c.S3Region)
	}
	if err := s3store.ValidPathStyle(c.S3PathStyle); err != nil {
		return settingError("S3_PATH_STYLE", "%q is not auto, true or false", c.S3PathStyle)
	}
	if c.S3Timeout < 0 || c.S3Timeout > 5*time.Minute {
		return settingError("S3_TIMEOUT", "%v is outside 0..5m", c.S3Timeout)
	}
	buffer, journal := c.s3Buffer(), c.s3JournalMax()
	if buffer < 16<<20 {
		return settingError("S3_BUFFER", "%d bytes is less than 16MiB", buffer)
	}
	if journal < 1<<20 || journal > 4<<30 {
		return settingError("S3_JOURNAL_MAX", "%d bytes is outside 1MiB..4GiB", journal)
	}
	if journal > buffer {
		return settingError("S3_JOURNAL_MAX", "%d bytes is more than %s_S3_BUFFER (%d): one segment could not be buffered", journal, EnvPrefix, buffer)
	}
	if c.S3JournalTTL < 0 || c.S3JournalTTL > 0 && time.Duration(c.S3JournalTTL) < time.Hour {
		return settingError("S3_JOURNAL_TTL", "%v is less than an hour", time.Duration(c.S3JournalTTL))
	}
	if c.S3CredentialsFile == "" && (os.Getenv("AWS_ACCESS_KEY_ID") == "" || os.Getenv("AWS_SECRET_ACCESS_KEY") == "") {
		return settingError("S3_CREDENTIALS_FILE", "an s3:// store needs credentials: set AWS_ACCESS_KEY_ID and "+
			"AWS_SECRET_ACCESS_KEY, or %s_S3_CREDENTIALS_FILE", EnvPrefix)
	}
	return nil
}

// s3Buffer and s3JournalMax are S3_BUFFER and S3_JOURNAL_MAX with their
// defaults applied.
func (c *Config) s3Buffer() int64 {
	if c.S3Buffer <= 0 {
		return s3store.DefaultBufferMax
	}
	return int64(c.S3Buffer)
}

func (c *Config) s3JournalMax() int64 {
	if c.S3JournalMax <= 0 {
		return s3store.DefaultJournalMax
	}
	return int64(c.S3JournalMax)
}

// s3Config is the S3 store's configuration, credentials from the
// environment.
func (c *Config) s3Config() s3store.Config {
	return s3store.Config{
		Location: c.RecordStore, Endpoint: c.S3Endpoint, Region: c.S3Region, PathStyle: c.S3PathStyle, TLS: c.S3TLS,
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		SessionToken: os.Getenv("AWS_SESSION_TOKEN"), CredentialsFile: c.S3CredentialsFile, Profile: os.Getenv("AWS_PROFILE"),
		Timeout: c.S3Timeout, BufferMax: c.s3Buffer(), JournalMax: c.s3JournalMax(), JournalTTL: time.Duration(c.S3JournalTTL),
		KeyPrefix: c.RedisKeyPrefix,
	}
}
