package gateway

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/redis/go-redis/v9"
)

// EnvPrefix is the prefix of every gateway setting in the environment.
const EnvPrefix = "GATEWAY"

// Config is the gateway's configuration, read from GATEWAY_* environment
// variables. Each field's default and meaning is in its tags; `gateway -h`
// prints them. Validate checks it in one place.
type Config struct {
	Addr            string        `envconfig:"ADDR" default:":8000" desc:"HTTP listen address"`
	RedisURL        string        `envconfig:"REDIS_URL" desc:"Redis channel layer: redis://[user:password@]host:port/db, or rediss:// for TLS; empty runs alone on the in-process layer"`
	ChannelPrefix   string        `envconfig:"CHANNEL_PREFIX" default:"video_" desc:"prefix of the Redis channel of each room (the seed's group name)"`
	MaxFrameBytes   int           `envconfig:"MAX_FRAME_BYTES" default:"2097152" desc:"largest JPEG accepted from a publisher; larger frames close the publisher with 1009"`
	WriteTimeout    time.Duration `envconfig:"WRITE_TIMEOUT" default:"10s" desc:"a viewer whose frame write stalls this long is cut off"`
	PingInterval    time.Duration `envconfig:"PING_INTERVAL" default:"20s" desc:"WebSocket ping period on every connection; a pong must come within WRITE_TIMEOUT"`
	PublishTimeout  time.Duration `envconfig:"PUBLISH_TIMEOUT" default:"2s" desc:"bound on one publish to the channel layer; frames that miss it are dropped"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"10s" desc:"on SIGTERM, how long to wait for connections to close with 1001"`
	MaxRooms        int           `envconfig:"MAX_ROOMS" default:"1000" desc:"most rooms with local viewers or publishers; 0 = no limit"`
	AllowedOrigins  []string      `envconfig:"ALLOWED_ORIGINS" desc:"extra Origin host patterns allowed to open WebSockets (comma-separated, path.Match syntax, e.g. *.example.com); the page's own host is always allowed"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
}

// LoadConfig reads the configuration from the environment and validates it.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process(EnvPrefix, &c); err != nil {
		return c, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, c.Validate()
}

// Validate checks every setting and names the first bad one.
func (c *Config) Validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("invalid %s_%s: %s", EnvPrefix, name, fmt.Sprintf(format, args...))
	}
	if c.Addr == "" {
		return bad("ADDR", "must not be empty")
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			return bad("REDIS_URL", "%v", err)
		}
	}
	if c.ChannelPrefix == "" || strings.ContainsAny(c.ChannelPrefix, " \t\r\n*?[]") {
		return bad("CHANNEL_PREFIX", "%q must be non-empty and hold no spaces or glob characters", c.ChannelPrefix)
	}
	if c.MaxFrameBytes < 1024 || c.MaxFrameBytes > 64<<20 {
		return bad("MAX_FRAME_BYTES", "%d is outside 1024..67108864", c.MaxFrameBytes)
	}
	for name, d := range map[string]time.Duration{
		"WRITE_TIMEOUT": c.WriteTimeout, "PING_INTERVAL": c.PingInterval,
		"PUBLISH_TIMEOUT": c.PublishTimeout, "SHUTDOWN_TIMEOUT": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return bad(name, "%v must be positive", d)
		}
	}
	if c.MaxRooms < 0 {
		return bad("MAX_ROOMS", "%d must not be negative", c.MaxRooms)
	}
	if _, err := c.slogLevel(); err != nil {
		return bad("LOG_LEVEL", "%v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("LOG_FORMAT", "%q is not text or json", c.LogFormat)
	}
	return nil
}

func (c *Config) slogLevel() (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(c.LogLevel))
	return l, err
}

// NewLogger returns the structured logger the configuration asks for.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	lvl, _ := c.slogLevel()
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// maxMessageBytes is the read limit of publisher connections: a frame plus
// its header, or a data URL of a frame (base64 is 4/3 of the bytes).
func (c *Config) maxMessageBytes() int64 {
	return int64(c.MaxFrameBytes)*4/3 + 64
}

// PrintUsage writes every setting with its default and description.
func PrintUsage(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tDEFAULT\tDESCRIPTION")
	_ = envconfig.Usagef(EnvPrefix, &Config{}, tw, `{{range .}}{{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`)
	tw.Flush()
}
