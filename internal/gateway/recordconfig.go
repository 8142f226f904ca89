package gateway

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
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
	return nil
}
