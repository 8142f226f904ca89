package s3store_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/framecast/framecast/internal/gateway"
	"github.com/framecast/framecast/internal/recording/index"
	"github.com/framecast/framecast/internal/recording/recordtest"
	"github.com/framecast/framecast/internal/recording/s3store"
	"github.com/framecast/framecast/internal/testenv/gatewaytest"
	"github.com/framecast/framecast/pkg/frames"
)

// TestGatewaySettings: the gateway refuses S3 settings that cannot work at
// start, naming the setting.
func TestGatewaySettings(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	base := func() gateway.Config {
		c := gatewaytest.Config()
		c.RedisURL, c.RecordStore, c.S3PathStyle = "redis://127.0.0.1:6379/0", "s3://recordings/site-a", "auto"
		return c
	}
	if c := base(); c.Validate() != nil {
		t.Fatalf("a good configuration: %v", c.Validate())
	}
	for _, tc := range []struct {
		setting string
		change  func(*gateway.Config)
	}{
		{"RECORD_STORE", func(c *gateway.Config) { c.RedisURL = "" }},
		{"RECORD_STORE", func(c *gateway.Config) { c.RecordStore = "s3://No_Such" }},
		{"RECORD_STORE", func(c *gateway.Config) { c.RecordStore = "s3://recordings/../x" }},
		{"S3_ENDPOINT", func(c *gateway.Config) { c.S3Endpoint = "https://minio:9000" }},
		{"S3_ENDPOINT", func(c *gateway.Config) { c.S3Endpoint = "minio:99999" }},
		{"S3_REGION", func(c *gateway.Config) { c.S3Region = "us east" }},
		{"S3_PATH_STYLE", func(c *gateway.Config) { c.S3PathStyle = "yes" }},
		{"S3_TIMEOUT", func(c *gateway.Config) { c.S3Timeout = -time.Second }},
		{"S3_BUFFER", func(c *gateway.Config) { c.S3Buffer = 1 << 20 }},
		{"S3_JOURNAL_MAX", func(c *gateway.Config) { c.S3JournalMax = 1 << 10 }},
		{"S3_JOURNAL_MAX", func(c *gateway.Config) { c.S3Buffer, c.S3JournalMax = 32<<20, 64<<20 }},
		{"S3_JOURNAL_TTL", func(c *gateway.Config) { c.S3JournalTTL = gateway.Age(time.Minute) }},
		{"REDIS_KEY_PREFIX", func(c *gateway.Config) { c.RedisKeyPrefix = "fc{x}:" }},
		{"S3_CREDENTIALS_FILE", func(c *gateway.Config) { t.Setenv("AWS_SECRET_ACCESS_KEY", "") }},
	} {
		c := base()
		tc.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "GATEWAY_"+tc.setting+":") {
			t.Errorf("want an error naming GATEWAY_%s, got %v", tc.setting, err)
		}
		t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	}
}

// TestGatewayPlaysBackFromS3: a gateway with an s3:// store lists and
// exports what was recorded into the bucket; with the S3 server stopped,
// it answers 503 "the recordings cannot be read now"; once S3 is back it
// serves again, without a restart.
func TestGatewayPlaysBackFromS3(t *testing.T) {
	e := newEnv(t)
	loc := "s3://" + e.bucket + "/site-a"
	// Footage of room cam, recorded the way a recorder writes it, a minute
	// ending two minutes ago.
	st := e.open(t, func(c *s3store.Config) { c.Location, c.KeyPrefix = loc, "framecast:" })
	cat := index.New(st, nil)
	start := time.Now().Add(-3 * time.Minute).Truncate(time.Second)
	cam := frames.Stream{Room: "cam", Codec: frames.CodecJPEG}
	recordtest.Record(t, st, cat, cam, recordtest.JPEG(t, "cam", start, 600, 100*time.Millisecond, 1), false)

	t.Setenv("AWS_ACCESS_KEY_ID", e.s3.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", e.s3.SecretKey)
	g := gatewaytest.Start(t, gatewaytest.Options{Config: func(c *gateway.Config) {
		c.RedisURL, c.RedisKeyPrefix = e.redis.URL(), "framecast:"
		c.RecordStore, c.S3Endpoint, c.S3PathStyle, c.S3TLS, c.S3Timeout = loc, e.s3.Endpoint, "true", false, 2*time.Second
	}})
	get := func(path string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.URL()+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	at := url.QueryEscape(start.Add(30 * time.Second).Format(time.RFC3339))
	clip := "/video/cam/clip.mp4?start=" + at + "&end=" + url.QueryEscape(start.Add(50*time.Second).Format(time.RFC3339))

	code, body := get("/video/cam/recordings")
	var list struct {
		Spans []index.Span `json:"spans"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list.Spans) != 1 {
		t.Fatalf("recordings: %d %s", code, body)
	}
	if d := list.Spans[0].End.Sub(list.Spans[0].Start); d < 59*time.Second || d > 61*time.Second {
		t.Fatalf("a span of %v, want 1 minute: %s", d, body)
	}
	if code, body := get(clip); code != http.StatusOK || len(body) < 1000 {
		t.Fatalf("clip: %d, %d bytes", code, len(body))
	}
	if code, _ := get("/video/cam/snapshot.jpg?at=" + at); code != http.StatusOK {
		t.Fatalf("snapshot at %s: %d", at, code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "framecast_record_s3_puts_total") {
		t.Fatalf("/metrics has no S3 store series")
	}

	e.s3.Stop()
	for _, path := range []string{"/video/cam/recordings", clip, "/video/cam/snapshot.jpg?at=" + at, "/video/cam/stream.mjpg?at=" + at} {
		if code, body := get(path); code != http.StatusServiceUnavailable || !strings.Contains(body, "cannot be read now") {
			t.Errorf("%s with S3 stopped: %d %q, want 503", path, code, strings.TrimSpace(body))
		}
	}

	e.s3.Restart()
	if code, body := get(clip); code != http.StatusOK {
		t.Fatalf("clip once S3 is back: %d %s", code, body)
	}
	if code, _ := get("/video/cam/recordings"); code != http.StatusOK {
		t.Fatalf("recordings once S3 is back: %d", code)
	}
}
