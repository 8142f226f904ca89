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

	"github.com/framecast/framecast/internal/auth"
)

// EnvPrefix is the prefix of every gateway setting in the environment.
const EnvPrefix = "GATEWAY"

// Config is the gateway's configuration, read from GATEWAY_* environment
// variables. Each field's default and meaning is in its tags; `gateway -h`
// prints them. Validate checks it in one place.
type Config struct {
	Addr            string        `envconfig:"GATEWAY_ADDR" default:":8000" desc:"HTTP listen address"`
	RedisURL        string        `envconfig:"GATEWAY_REDIS_URL" desc:"Redis channel layer: redis://[user:password@]host:port/db, or rediss:// for TLS; empty runs alone on the in-process layer"`
	ChannelPrefix   string        `envconfig:"GATEWAY_CHANNEL_PREFIX" default:"video_" desc:"prefix of the Redis channel of each room (the seed's group name)"`
	MaxFrameBytes   int           `envconfig:"GATEWAY_MAX_FRAME_BYTES" default:"2097152" desc:"largest JPEG accepted from a publisher; larger frames close the publisher with 1009"`
	WriteTimeout    time.Duration `envconfig:"GATEWAY_WRITE_TIMEOUT" default:"10s" desc:"a viewer whose frame write stalls this long is cut off"`
	PingInterval    time.Duration `envconfig:"GATEWAY_PING_INTERVAL" default:"20s" desc:"WebSocket ping period on every connection; a pong must come within WRITE_TIMEOUT"`
	PublishTimeout  time.Duration `envconfig:"GATEWAY_PUBLISH_TIMEOUT" default:"2s" desc:"bound on one publish to the channel layer; frames that miss it are dropped"`
	ShutdownTimeout time.Duration `envconfig:"GATEWAY_SHUTDOWN_TIMEOUT" default:"10s" desc:"on SIGTERM, how long to wait for connections to close with 1001"`
	MaxRooms        int           `envconfig:"GATEWAY_MAX_ROOMS" default:"1000" desc:"most rooms with local viewers or publishers; 0 = no limit"`
	AllowedOrigins  []string      `envconfig:"GATEWAY_ALLOWED_ORIGINS" desc:"extra Origin host patterns allowed to open WebSockets (comma-separated, path.Match syntax, e.g. *.example.com); the page's own host is always allowed"`
	LogLevel        string        `envconfig:"GATEWAY_LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat       string        `envconfig:"GATEWAY_LOG_FORMAT" default:"text" desc:"text or json"`
	GCFloorMB       int           `envconfig:"GATEWAY_GC_FLOOR_MB" default:"32" desc:"heap size below which the garbage collector does not run (MB): GOGC is 50 above it; 0 = plain GOGC 50; a GOGC variable overrides both"`

	// Access control and limits (auth.go, limits.go, docs/security.md).
	Auth                string        `envconfig:"GATEWAY_AUTH" default:"off" desc:"who needs a token: off (anyone may publish and watch), publish (publishers need one; watching is open) or all"`
	JWTSecret           auth.Secret   `envconfig:"GATEWAY_JWT_SECRET" desc:"HS256 secret of access tokens, at least 32 bytes; the same on every replica and wherever tokens are minted"`
	JWTPublicKeyFile    string        `envconfig:"GATEWAY_JWT_PUBLIC_KEY_FILE" desc:"PEM public key of RS256 (RSA) or ES256 (P-256) access tokens, instead of JWT_SECRET"`
	PublishRate         float64       `envconfig:"GATEWAY_PUBLISH_RATE" default:"60" desc:"frames per second one publisher may send; frames over it are dropped; 0 = no limit"`
	PublishBurst        int           `envconfig:"GATEWAY_PUBLISH_BURST" default:"30" desc:"frames a publisher may send at once over PUBLISH_RATE; more than this many dropped within 2s closes it with 1008"`
	RoomRate            float64       `envconfig:"GATEWAY_ROOM_RATE" default:"120" desc:"frames per second one room accepts from all its publishers on this replica together; frames over it are dropped and counted; 0 = no limit"`
	RoomBurst           int           `envconfig:"GATEWAY_ROOM_BURST" default:"60" desc:"frames a room may take at once over ROOM_RATE"`
	LayerDownClose      time.Duration `envconfig:"GATEWAY_LAYER_DOWN_CLOSE" default:"2s" desc:"once the channel layer has been down this long, close every connection (1013) so clients reconnect to a replica that relays; new connections get 503 while it is down; 0 = never close"`
	MessageTimeout      time.Duration `envconfig:"GATEWAY_MESSAGE_TIMEOUT" default:"10s" desc:"a message a client started must end within this; slower ones close it with 1008; 0 = no deadline"`
	ReadBudgetMB        int           `envconfig:"GATEWAY_READ_BUDGET_MB" default:"256" desc:"most memory (MB) all connections together may hold in messages not yet complete; a message that would pass it closes its connection with 1013; 0 = no budget"`
	MaxConnections      int           `envconfig:"GATEWAY_MAX_CONNECTIONS" default:"10000" desc:"most WebSocket connections on this replica (keep it below the open-file limit); more get 429; 0 = no limit"`
	MaxConnectionsPerIP int           `envconfig:"GATEWAY_MAX_CONNECTIONS_PER_IP" default:"200" desc:"most WebSocket connections from one client address (IPv6: one /64); more get 429; 0 = no limit"`
	MaxIdleRoomsPerIP   int           `envconfig:"GATEWAY_MAX_IDLE_ROOMS_PER_IP" default:"128" desc:"most rooms without a live publisher one client address (IPv6: one /64) may hold open on this replica; more are refused (1013, or refused on multi-room connections; MJPEG 429); 0 = no limit"`
	TrustedProxies      []string      `envconfig:"GATEWAY_TRUSTED_PROXIES" desc:"proxies whose X-Forwarded-For names the client (comma-separated CIDRs or IPs, e.g. 10.0.0.0/8); empty = none"`

	// Layers and multi-room connections (control.go, adapt.go, multi.go,
	// docs/protocol.md "Layers"). Zero values of the numbers mean the
	// defaults; Adapt's zero value is off (tests built from a Config
	// literal set it).
	ControlRate     float64 `envconfig:"GATEWAY_CONTROL_RATE" default:"20" desc:"control messages per second a viewer may send (select, subscribe, unsubscribe), with a burst of as many; more close it with 1008; 0 = the default"`
	MaxRoomsPerConn int     `envconfig:"GATEWAY_MAX_ROOMS_PER_CONN" default:"64" desc:"most rooms one multi-room connection (/ws/multi/) carries; more subscriptions are refused; 0 = the default"`
	Adapt           bool    `envconfig:"GATEWAY_ADAPT" default:"true" desc:"move viewers that asked for a layer down a layer when they keep skipping frames, and back up when they keep up (false: never, for benchmarks)"`

	// Scale-out: Redis Cluster and Sentinel, presence, frame cache
	// (redisclient.go, docs/scaling.md). Zero values mean the defaults.
	RedisClusterAddrs     []string      `envconfig:"GATEWAY_REDIS_CLUSTER_ADDRS" desc:"Redis Cluster nodes to start from (comma-separated host:port): sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7+); instead of REDIS_URL"`
	RedisSentinelAddrs    []string      `envconfig:"GATEWAY_REDIS_SENTINEL_ADDRS" desc:"Redis Sentinel addresses (comma-separated host:port): follow the master they name across failovers; needs REDIS_SENTINEL_MASTER; instead of REDIS_URL"`
	RedisSentinelMaster   string        `envconfig:"GATEWAY_REDIS_SENTINEL_MASTER" desc:"name of the master the sentinels monitor (sentinel monitor <name> ...)"`
	RedisUsername         string        `envconfig:"GATEWAY_REDIS_USERNAME" desc:"Redis ACL user in cluster and sentinel modes (REDIS_URL carries its own)"`
	RedisPassword         auth.Secret   `envconfig:"GATEWAY_REDIS_PASSWORD" desc:"Redis password in cluster and sentinel modes (REDIS_URL carries its own)"`
	RedisSentinelPassword auth.Secret   `envconfig:"GATEWAY_REDIS_SENTINEL_PASSWORD" desc:"password of the sentinels themselves (requirepass in sentinel.conf), if any"`
	RedisKeyPrefix        string        `envconfig:"GATEWAY_REDIS_KEY_PREFIX" default:"framecast:" desc:"prefix of the presence and frame-cache keys"`
	ReplicaID             string        `envconfig:"GATEWAY_REPLICA_ID" desc:"this replica's name in the presence keys; empty = hostname (the pod name) plus a random suffix"`
	PresenceInterval      time.Duration `envconfig:"GATEWAY_PRESENCE_INTERVAL" default:"3s" desc:"how often a replica writes its rooms and viewer counts to Redis"`
	PresenceTTL           time.Duration `envconfig:"GATEWAY_PRESENCE_TTL" default:"10s" desc:"how long a replica's rooms stay listed after its last write: a dead replica drops out after this"`
	FrameCacheInterval    time.Duration `envconfig:"GATEWAY_FRAME_CACHE_INTERVAL" default:"500ms" desc:"shortest time between two writes of a room's newest frame to Redis (at most 1/this writes per second per room)"`
	FrameCacheTTL         time.Duration `envconfig:"GATEWAY_FRAME_CACHE_TTL" default:"10s" desc:"how long a room's cached frame outlives its publisher's replica"`

	// Recording and playback (recordconfig.go, docs/recording.md).
	Record         []string      `envconfig:"GATEWAY_RECORD" desc:"rooms this replica records (comma-separated patterns, path.Match syntax; * for all); each room is recorded by one recording replica at a time; empty = records nothing"`
	RecordStore    string        `envconfig:"GATEWAY_RECORD_STORE" desc:"where recordings are kept and played back from: a directory (a volume every replica that records or plays back shares), or s3://bucket/prefix (S3-compatible object storage; needs Redis, which holds the open segments; see the S3_ settings); empty = no recordings"`
	RecordSegment  time.Duration `envconfig:"GATEWAY_RECORD_SEGMENT" default:"10s" desc:"target length of a recorded segment file (2s..10m); parts of at most 1s inside it are what a crash may lose"`
	RecordKeep     Age           `envconfig:"GATEWAY_RECORD_KEEP" desc:"delete footage older than this (e.g. 7d, 36h); empty = keep by age forever"`
	RecordMaxBytes ByteSize      `envconfig:"GATEWAY_RECORD_MAX_BYTES" desc:"most bytes every room's recordings may take together (e.g. 50GB, 512MiB); past it the oldest footage goes; empty = no limit"`
	RecordMinFree  ByteSize      `envconfig:"GATEWAY_RECORD_MIN_FREE" default:"1GiB" desc:"free space the store's filesystem keeps: below it the oldest footage goes first, whatever KEEP and MAX_BYTES say, and recording stops when nothing is left to delete (e.g. 4MiB, 10GB)"`
	ClipMax        time.Duration `envconfig:"GATEWAY_CLIP_MAX" default:"1h" desc:"longest clip.mp4 export; a longer one is refused with 400"`

	// Recordings in S3 (recordconfig.go, docs/recording.md "S3"): read when
	// RECORD_STORE is s3://bucket/prefix. Credentials come from
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN),
	// or S3_CREDENTIALS_FILE. Zero values mean the defaults, except S3TLS
	// (false: plain http), which the environment sets to true.
	S3Endpoint        string        `envconfig:"GATEWAY_S3_ENDPOINT" default:"s3.amazonaws.com" desc:"S3 server of an s3:// RECORD_STORE: host or host:port, no scheme (e.g. minio:9000)"`
	S3Region          string        `envconfig:"GATEWAY_S3_REGION" default:"us-east-1" desc:"the bucket's region (MinIO, SeaweedFS and versitygw accept us-east-1)"`
	S3PathStyle       string        `envconfig:"GATEWAY_S3_PATH_STYLE" default:"auto" desc:"auto (bucket.endpoint on AWS and Google, endpoint/bucket elsewhere), true (always endpoint/bucket: MinIO, SeaweedFS, versitygw) or false (always bucket.endpoint)"`
	S3TLS             bool          `envconfig:"GATEWAY_S3_TLS" default:"true" desc:"speak https to S3_ENDPOINT; false: plain http, for a server on a private network"`
	S3CredentialsFile string        `envconfig:"GATEWAY_S3_CREDENTIALS_FILE" desc:"AWS shared-credentials file ([default] aws_access_key_id, aws_secret_access_key; AWS_PROFILE picks another section), e.g. a mounted secret, read again when it changes; instead of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"`
	S3Timeout         time.Duration `envconfig:"GATEWAY_S3_TIMEOUT" default:"10s" desc:"bound on one S3 request; a write that misses it is buffered in Redis and retried"`
	S3Buffer          ByteSize      `envconfig:"GATEWAY_S3_BUFFER" default:"512MiB" desc:"most bytes the store keeps in Redis: open segments and index logs, and segments S3 could not take yet; past it recording drops (counted) until S3 takes the backlog"`
	S3JournalMax      ByteSize      `envconfig:"GATEWAY_S3_JOURNAL_MAX" default:"64MiB" desc:"most bytes of one open segment in Redis (the sender's defaults make about 5 MB per 10 s segment); more is dropped"`
	S3JournalTTL      Age           `envconfig:"GATEWAY_S3_JOURNAL_TTL" default:"7d" desc:"an open segment, index log or buffered segment nobody writes stays in Redis this long (a recorder that died with no one to take its room over)"`
}

// LoadConfig reads the configuration from the environment and validates it.
func LoadConfig() (Config, error) {
	var c Config
	// Full names in the tags and no prefix here: with a prefix, envconfig
	// falls back to the bare tag name, so a stray REDIS_URL or ADDR in the
	// environment would configure the gateway.
	if err := envconfig.Process("", &c); err != nil {
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
			return bad("REDIS_URL", "%v", withoutURL(err))
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
	if c.GCFloorMB < 0 || c.GCFloorMB > 1<<20 {
		return bad("GC_FLOOR_MB", "%d is outside 0..1048576", c.GCFloorMB)
	}
	if c.RoomRate < 0 {
		return bad("ROOM_RATE", "%v must not be negative", c.RoomRate)
	}
	if c.RoomRate > 0 && (c.RoomBurst < 0 || c.RoomBurst > 100000) {
		return bad("ROOM_BURST", "%d is outside 0..100000", c.RoomBurst)
	}
	if c.LayerDownClose < 0 {
		return bad("LAYER_DOWN_CLOSE", "%v must not be negative", c.LayerDownClose)
	}
	if c.MessageTimeout < 0 {
		return bad("MESSAGE_TIMEOUT", "%v must not be negative", c.MessageTimeout)
	}
	if c.ReadBudgetMB < 0 || c.ReadBudgetMB > 1<<20 {
		return bad("READ_BUDGET_MB", "%d is outside 0..1048576", c.ReadBudgetMB)
	}
	if c.MaxRooms < 0 {
		return bad("MAX_ROOMS", "%d must not be negative", c.MaxRooms)
	}
	if c.ControlRate < 0 || c.ControlRate > 1000 {
		return bad("CONTROL_RATE", "%v is outside 0..1000", c.ControlRate)
	}
	if c.MaxRoomsPerConn < 0 || c.MaxRoomsPerConn > 1000 {
		return bad("MAX_ROOMS_PER_CONN", "%d is outside 0..1000", c.MaxRoomsPerConn)
	}
	if _, err := c.slogLevel(); err != nil {
		return bad("LOG_LEVEL", "%v", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return bad("LOG_FORMAT", "%q is not text or json", c.LogFormat)
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if err := c.validateLimits(); err != nil {
		return err
	}
	if err := c.validateScaleOut(); err != nil {
		return err
	}
	if err := c.validateRecording(); err != nil {
		return err
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

// Defaults of the layer settings whose zero value means the default.
const (
	defaultControlRate     = 20
	defaultMaxRoomsPerConn = 64
)

// controlRate is GATEWAY_CONTROL_RATE with its default applied.
func (c *Config) controlRate() float64 {
	if c.ControlRate <= 0 {
		return defaultControlRate
	}
	return c.ControlRate
}

// maxRoomsPerConn is GATEWAY_MAX_ROOMS_PER_CONN with its default applied.
func (c *Config) maxRoomsPerConn() int {
	if c.MaxRoomsPerConn <= 0 {
		return defaultMaxRoomsPerConn
	}
	return c.MaxRoomsPerConn
}

// PrintUsage writes every setting with its default and description.
func PrintUsage(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tDEFAULT\tDESCRIPTION")
	_ = envconfig.Usagef("", &Config{}, tw, `{{range .}}{{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`)
	tw.Flush()
}
