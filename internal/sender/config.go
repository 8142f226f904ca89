package sender

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/framecast/framecast/internal/h264enc"
	"github.com/framecast/framecast/pkg/frames"
)

// EnvPrefix is the prefix of every environment variable the sender reads.
const EnvPrefix = "SENDER"

// Protocols the sender speaks to the gateway.
const (
	// ProtocolBinary sends each frame as one binary message, the 20-byte
	// header of pkg/frames followed by the JPEG, as role=publish.
	ProtocolBinary = "binary"
	// ProtocolSeed sends each frame as one text message holding the seed's
	// data URL to /ws/video/{room}/, the original Django Channels route.
	ProtocolSeed = "seed"
)

// Config is the sender's configuration. Each field is read from the
// environment variable named in its env tag (SENDER_ + the field name split
// into words) and can be overridden by the command-line flag in its flag
// tag. Defaults are in the default tags; Validate checks every field.
//
// The fields carry no envconfig:"..." tag on purpose: with such a tag,
// envconfig falls back to the bare name (TOKEN, URL, WIDTH) when the
// prefixed variable is unset, so an unrelated variable of the environment
// would configure the sender. split_words derives the same names without
// that fallback; a test checks the env tags against envconfig.
type Config struct {
	URL          string        `split_words:"true" env:"SENDER_URL" flag:"url" default:"ws://127.0.0.1:8000" desc:"gateway base URL (ws, wss, http or https); the sender appends /ws/video/{room}/"`
	Room         string        `split_words:"true" env:"SENDER_ROOM" flag:"room" default:"demo" desc:"room to publish to: 1-64 characters of [A-Za-z0-9_]"`
	Source       string        `split_words:"true" env:"SENDER_SOURCE" flag:"source" default:"0" desc:"camera index (0) or /dev/videoN, a video file (loops), an rtsp:// or http(s):// URL, or test (a generated pattern)"`
	FPS          float64       `split_words:"true" env:"SENDER_FPS" flag:"fps" default:"10" desc:"most frames sent per second, above 0 and at most 120"`
	Quality      int           `split_words:"true" env:"SENDER_QUALITY" flag:"quality" default:"80" desc:"JPEG quality, 1-100"`
	Width        int           `split_words:"true" env:"SENDER_WIDTH" flag:"width" default:"640" desc:"largest frame width in pixels (aspect kept, never upscaled); 0 keeps the source's width; the test pattern's width (0: 640); ignored when LAYERS is set"`
	Layers       string        `split_words:"true" env:"SENDER_LAYERS" flag:"layers" desc:"layer widths, e.g. 1280,640,320: 1-4 widths of 16-7680 pixels, no duplicates, descending recommended; each picture is sent once per layer as version-2 messages, the first width being the main layer (aspect kept, never upscaled); replaces WIDTH (and sizes the test pattern by the widest); empty: one version-1 frame per picture at WIDTH"`
	LayerQuality string        `split_words:"true" env:"SENDER_LAYER_QUALITY" flag:"layer-quality" desc:"JPEG quality per layer, e.g. 85,75,60: one value per LAYERS width, or one for all; empty: QUALITY for every layer"`
	Codec        string        `split_words:"true" env:"SENDER_CODEC" flag:"codec" default:"jpeg" desc:"jpeg (a JPEG per picture and layer) or h264 (H.264 per layer width with OpenH264, plus a JPEG layer at JPEG_FPS; needs the binary protocol and FPS 1-60; see docs/h264.md)"`
	H264Bitrate  string        `split_words:"true" env:"SENDER_H264_BITRATE" flag:"h264-bitrate" desc:"H.264 bitrate in kbit/s per layer, e.g. 2500,800,250, or one value for every layer: 0 or 50-100000, 0 being OpenH264's default for the layer's size and FPS (2500 at 1280x720 and 30 fps, scaled by area); empty: the default for every layer"`
	KeyInterval  time.Duration `split_words:"true" env:"SENDER_KEY_INTERVAL" flag:"key-interval" default:"2s" desc:"with CODEC=h264: longest time between H.264 keyframes, above 0 and at most 1m; keyframes also start every connection, follow every picture the socket dropped, and answer the gateway's requests (at most 2 a second)"`
	JpegFPS      float64       `split_words:"true" env:"SENDER_JPEG_FPS" flag:"jpeg-fps" default:"2" desc:"with CODEC=h264: rate of the JPEG layer sent alongside (layer 0, at the smallest layer width, at QUALITY or that layer's LAYER_QUALITY) for snapshots, MJPEG, thumbnails and viewers without WebCodecs; 0 turns it off; at most FPS"`
	Protocol     string        `split_words:"true" env:"SENDER_PROTOCOL" flag:"protocol" default:"binary" desc:"binary (role=publish, header + JPEG) or seed (data URL text messages, the Django Channels route)"`
	Token        string        `split_words:"true" env:"SENDER_TOKEN" flag:"token" desc:"publish token for a gateway that requires one; sent only as Authorization: Bearer, never in the URL (prefer the env var: flags show in ps)"`
	TokenFile    string        `split_words:"true" env:"SENDER_TOKEN_FILE" flag:"token-file" desc:"file holding the publish token, instead of TOKEN; read at start and again before every reconnect, so a rotated token is picked up"`

	WriteTimeout   time.Duration `split_words:"true" env:"SENDER_WRITE_TIMEOUT" flag:"write-timeout" default:"5s" desc:"a frame write that stalls this long drops the connection, which is then redialled"`
	DialTimeout    time.Duration `split_words:"true" env:"SENDER_DIAL_TIMEOUT" flag:"dial-timeout" default:"10s" desc:"bound on one WebSocket connection attempt (TCP, TLS and handshake)"`
	PingInterval   time.Duration `split_words:"true" env:"SENDER_PING_INTERVAL" flag:"ping-interval" default:"15s" desc:"WebSocket ping period; a pong must come within WRITE_TIMEOUT"`
	StatusInterval time.Duration `split_words:"true" env:"SENDER_STATUS_INTERVAL" flag:"status-interval" default:"10s" desc:"period of the status log line (fps, skipped, kB/s, reconnects); 0 turns it off"`
	ReconnectMin   time.Duration `split_words:"true" env:"SENDER_RECONNECT_MIN" flag:"reconnect-min" default:"250ms" desc:"first pause before redialling the gateway or reopening the source; doubles per failure, with jitter"`
	ReconnectMax   time.Duration `split_words:"true" env:"SENDER_RECONNECT_MAX" flag:"reconnect-max" default:"10s" desc:"longest pause between reconnection attempts"`
	LogLevel       string        `split_words:"true" env:"SENDER_LOG_LEVEL" flag:"log-level" default:"info" desc:"debug, info, warn or error"`
}

var roomPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// DefaultConfig returns the configuration with every default applied, as if
// the environment were empty.
func DefaultConfig() Config {
	var c Config
	for _, f := range configFields() {
		if def := f.field.Tag.Get("default"); def != "" {
			// Defaults are constants checked by TestDefaultConfigIsValid.
			_ = setField(reflect.ValueOf(&c).Elem().FieldByIndex(f.field.Index), def)
		}
	}
	return c
}

// LoadConfig reads the configuration from the SENDER_* environment, then
// applies the command-line flags in args, which override the environment,
// and validates the result. On -h or -help it writes the settings table to
// usage and returns flag.ErrHelp. Errors name the setting at fault.
func LoadConfig(args []string, usage io.Writer) (Config, error) {
	var c Config
	if err := envconfig.Process(EnvPrefix, &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return Config{}, fmt.Errorf("invalid %s=%q: %v", pe.KeyName, pe.Value, pe.Err)
		}
		return Config{}, fmt.Errorf("failed to read the environment: %w", err)
	}

	fs := flag.NewFlagSet("sender", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; usage is printed below
	v := reflect.ValueOf(&c).Elem()
	for _, f := range configFields() {
		fv := v.FieldByIndex(f.field.Index)
		fs.Func(f.flag, f.desc, func(s string) error { return setField(fv, s) })
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			PrintUsage(usage)
		}
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q: every setting is a -flag or a SENDER_* variable (see -h)", fs.Arg(0))
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every setting and returns an error naming the first one
// at fault. For a file source it checks that the file exists; whether
// OpenCV can decode it is checked by New.
func (c Config) Validate() error {
	bad := badSetting
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		return bad("SENDER_URL", "%v", err)
	case u.Scheme != "ws" && u.Scheme != "wss" && u.Scheme != "http" && u.Scheme != "https":
		return bad("SENDER_URL", "%q: scheme must be ws, wss, http or https", c.URL)
	case u.Host == "":
		return bad("SENDER_URL", "%q has no host", c.URL)
	case u.RawQuery != "" || u.Fragment != "":
		return bad("SENDER_URL", "%q: give the base URL only, without query or fragment", c.URL)
	}
	if !roomPattern.MatchString(c.Room) {
		return bad("SENDER_ROOM", "%q must be 1-64 characters of A-Z, a-z, 0-9 and _", c.Room)
	}
	if _, err := parseSource(c.Source); err != nil {
		return bad("SENDER_SOURCE", "%v", err)
	}
	if !(c.FPS > 0 && c.FPS <= 120) { // also rejects NaN
		return bad("SENDER_FPS", "%v must be above 0 and at most 120", c.FPS)
	}
	if c.Quality < 1 || c.Quality > 100 {
		return bad("SENDER_QUALITY", "%d must be 1-100", c.Quality)
	}
	if c.Width < 0 || c.Width > 7680 {
		return bad("SENDER_WIDTH", "%d must be 0 (keep) or 1-7680", c.Width)
	}
	if c.Protocol != ProtocolBinary && c.Protocol != ProtocolSeed {
		return bad("SENDER_PROTOCOL", "%q must be %q or %q", c.Protocol, ProtocolBinary, ProtocolSeed)
	}
	if _, err := c.layerSpecs(); err != nil {
		return err
	}
	if err := c.validateCodec(); err != nil {
		return err
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		return bad("SENDER_TOKEN", "must not contain white space")
	}
	if c.TokenFile != "" {
		if c.Token != "" {
			return fmt.Errorf("invalid SENDER_TOKEN (-token) and SENDER_TOKEN_FILE (-token-file): set one or the other, not both")
		}
		if _, err := readTokenFile(c.TokenFile); err != nil {
			return bad("SENDER_TOKEN_FILE", "%v", err)
		}
	}
	for _, d := range []struct {
		env string
		v   time.Duration
	}{
		{"SENDER_WRITE_TIMEOUT", c.WriteTimeout},
		{"SENDER_DIAL_TIMEOUT", c.DialTimeout},
		{"SENDER_PING_INTERVAL", c.PingInterval},
		{"SENDER_RECONNECT_MIN", c.ReconnectMin},
		{"SENDER_RECONNECT_MAX", c.ReconnectMax},
	} {
		if d.v <= 0 {
			return bad(d.env, "%v must be positive", d.v)
		}
	}
	if c.StatusInterval < 0 {
		return bad("SENDER_STATUS_INTERVAL", "%v must be 0 (off) or positive", c.StatusInterval)
	}
	if c.ReconnectMax < c.ReconnectMin {
		return bad("SENDER_RECONNECT_MAX", "%v is below SENDER_RECONNECT_MIN %v", c.ReconnectMax, c.ReconnectMin)
	}
	if _, err := c.SlogLevel(); err != nil {
		return bad("SENDER_LOG_LEVEL", "%v", err)
	}
	return nil
}

// badSetting returns the error of a setting at fault, naming its variable
// and flag.
func badSetting(env, format string, args ...any) error {
	return fmt.Errorf("invalid %s (-%s): %s", env, flagOf(env), fmt.Sprintf(format, args...))
}

// SlogLevel returns LogLevel as a slog.Level.
func (c Config) SlogLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return 0, fmt.Errorf("%q must be debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// LogValue implements slog.LogValuer: the settings for the start line, with
// the token redacted.
func (c Config) LogValue() slog.Value {
	token := ""
	switch {
	case c.Token != "":
		token = "[set]"
	case c.TokenFile != "":
		token = "[file " + c.TokenFile + "]"
	}
	return slog.GroupValue(
		slog.String("url", c.URL), slog.String("room", c.Room), slog.String("source", c.Source),
		slog.Float64("fps", c.FPS), slog.Int("quality", c.Quality), slog.Int("width", c.Width),
		slog.String("layers", c.Layers), slog.String("layer_quality", c.LayerQuality),
		slog.String("protocol", c.Protocol), slog.String("token", token),
		slog.String("codec", c.Codec), slog.String("h264_bitrate", c.H264Bitrate),
		slog.Duration("key_interval", c.KeyInterval), slog.Float64("jpeg_fps", c.JpegFPS),
	)
}

// Layer width bounds of SENDER_LAYERS. The upper one is SENDER_WIDTH's; a
// layer block carries widths in 16 bits.
const (
	minLayerWidth = 16
	maxLayerWidth = 7680
)

// layerSpec is one layer the encoder makes of each picture.
type layerSpec struct {
	width   int // largest width, aspect kept, never upscaled; 0 keeps the source's
	quality int // JPEG quality 1-100
}

// layered reports whether the sender publishes layers (version-2 messages):
// whether SENDER_LAYERS is set.
func (c Config) layered() bool { return c.Layers != "" }

// layerSpecs returns the layers each picture is encoded as: those of
// SENDER_LAYERS and SENDER_LAYER_QUALITY, or, when SENDER_LAYERS is empty,
// the single unlayered one of SENDER_WIDTH and SENDER_QUALITY. Errors name
// the setting at fault.
func (c Config) layerSpecs() ([]layerSpec, error) {
	bad := badSetting
	if !c.layered() {
		if c.LayerQuality != "" {
			return nil, bad("SENDER_LAYER_QUALITY", "%q is set without SENDER_LAYERS: use SENDER_QUALITY for the single layer", c.LayerQuality)
		}
		return []layerSpec{{width: c.Width, quality: c.Quality}}, nil
	}
	if c.Protocol == ProtocolSeed {
		return nil, bad("SENDER_LAYERS", "%q: the seed protocol's data URLs carry no layer; unset SENDER_LAYERS or use SENDER_PROTOCOL=%s", c.Layers, ProtocolBinary)
	}
	widths, err := parseIntList(c.Layers)
	if err != nil {
		return nil, bad("SENDER_LAYERS", "%q: %v: want 1-%d comma-separated widths, e.g. 1280,640,320", c.Layers, err, frames.MaxLayers)
	}
	if len(widths) > frames.MaxLayers {
		return nil, bad("SENDER_LAYERS", "%q has %d widths: a room has at most %d layers", c.Layers, len(widths), frames.MaxLayers)
	}
	specs := make([]layerSpec, len(widths))
	for i, w := range widths {
		if w < minLayerWidth || w > maxLayerWidth {
			return nil, bad("SENDER_LAYERS", "%q: width %d must be %d-%d pixels", c.Layers, w, minLayerWidth, maxLayerWidth)
		}
		for j := range i {
			if widths[j] == w {
				return nil, bad("SENDER_LAYERS", "%q: width %d is given twice: each layer needs its own width", c.Layers, w)
			}
		}
		specs[i] = layerSpec{width: w, quality: c.Quality}
	}
	if c.LayerQuality == "" {
		return specs, nil
	}
	qs, err := parseIntList(c.LayerQuality)
	switch {
	case err != nil:
		return nil, bad("SENDER_LAYER_QUALITY", "%q: %v: want one JPEG quality 1-100 per layer, or one for all", c.LayerQuality, err)
	case len(qs) != 1 && len(qs) != len(specs):
		return nil, bad("SENDER_LAYER_QUALITY", "%q has %d values for %d layers (SENDER_LAYERS=%s): give one per layer, or one for all", c.LayerQuality, len(qs), len(specs), c.Layers)
	}
	for i := range specs {
		q := qs[min(i, len(qs)-1)]
		if q < 1 || q > 100 {
			return nil, bad("SENDER_LAYER_QUALITY", "%q: quality %d must be 1-100", c.LayerQuality, q)
		}
		specs[i].quality = q
	}
	return specs, nil
}

// Codecs of SENDER_CODEC.
const (
	// CodecJPEG sends a JPEG per picture and layer: the sender's original
	// behaviour, and the default.
	CodecJPEG = "jpeg"
	// CodecH264 sends H.264 per layer width, and a JPEG layer at JpegFPS.
	CodecH264 = "h264"
)

// Bounds of SENDER_H264_BITRATE's values other than 0 (the default). The
// upper one is h264enc's.
const (
	minH264BitrateKbps = 50
	maxH264BitrateKbps = h264enc.MaxBitrateKbps
)

// h264Spec is one H.264 layer the encoder makes of each picture.
type h264Spec struct {
	width   int // largest width, aspect kept, never upscaled, made even; 0 keeps the source's
	bitrate int // kbit/s; 0: h264enc.DefaultBitrate for the layer's size
}

// h264 reports whether the sender encodes H.264 (SENDER_CODEC=h264).
func (c Config) h264() bool { return c.Codec == CodecH264 }

// validateCodec checks SENDER_CODEC and the settings that go with it.
func (c Config) validateCodec() error {
	bad := badSetting
	switch c.Codec {
	case CodecJPEG:
		if c.H264Bitrate != "" {
			return bad("SENDER_H264_BITRATE", "%q is set without SENDER_CODEC=%s", c.H264Bitrate, CodecH264)
		}
		return nil
	case CodecH264:
	default:
		return bad("SENDER_CODEC", "%q must be %q or %q", c.Codec, CodecJPEG, CodecH264)
	}
	if c.Protocol != ProtocolBinary {
		return bad("SENDER_CODEC", "%q needs SENDER_PROTOCOL=%s: the seed protocol carries only JPEG data URLs", c.Codec, ProtocolBinary)
	}
	if c.FPS < h264enc.MinFPS || c.FPS > h264enc.MaxFPS {
		return bad("SENDER_FPS", "%v must be %d-%d with SENDER_CODEC=%s (OpenH264's range)", c.FPS, h264enc.MinFPS, h264enc.MaxFPS, CodecH264)
	}
	if c.KeyInterval <= 0 || c.KeyInterval > h264enc.MaxKeyInterval {
		return bad("SENDER_KEY_INTERVAL", "%v must be above 0 and at most %v", c.KeyInterval, h264enc.MaxKeyInterval)
	}
	if !(c.JpegFPS >= 0 && c.JpegFPS <= c.FPS) { // also rejects NaN
		return bad("SENDER_JPEG_FPS", "%v must be 0 (no JPEG layer) or above 0 and at most SENDER_FPS %v", c.JpegFPS, c.FPS)
	}
	_, err := c.h264Specs()
	return err
}

// h264Specs returns the H.264 layers of a SENDER_CODEC=h264 configuration:
// one per layer of layerSpecs, with SENDER_H264_BITRATE's bitrates. Errors
// name the setting at fault.
func (c Config) h264Specs() ([]h264Spec, error) {
	layers, err := c.layerSpecs()
	if err != nil {
		return nil, err
	}
	specs := make([]h264Spec, len(layers))
	for i, l := range layers {
		specs[i].width = l.width
	}
	if c.H264Bitrate == "" {
		return specs, nil
	}
	bad := badSetting
	rates, err := parseIntList(c.H264Bitrate)
	switch {
	case err != nil:
		return nil, bad("SENDER_H264_BITRATE", "%q: %v: want one bitrate in kbit/s per layer, or one for all", c.H264Bitrate, err)
	case len(rates) != 1 && len(rates) != len(specs):
		return nil, bad("SENDER_H264_BITRATE", "%q has %d values for %d layers: give one per layer (SENDER_LAYERS), or one for all", c.H264Bitrate, len(rates), len(specs))
	}
	for i := range specs {
		r := rates[min(i, len(rates)-1)]
		if r != 0 && (r < minH264BitrateKbps || r > maxH264BitrateKbps) {
			return nil, bad("SENDER_H264_BITRATE", "%q: %d kbit/s must be 0 (the default for the size) or %d-%d", c.H264Bitrate, r, minH264BitrateKbps, maxH264BitrateKbps)
		}
		specs[i].bitrate = r
	}
	return specs, nil
}

// jpegSideLayer is the JPEG layer a SENDER_CODEC=h264 sender sends
// alongside its H.264 layers: the smallest layer width, at that layer's
// JPEG quality.
func (c Config) jpegSideLayer() layerSpec {
	layers, _ := c.layerSpecs() // validated
	small := layers[0]
	for _, l := range layers[1:] {
		if l.width < small.width {
			small = l
		}
	}
	return small
}

// parseIntList parses comma-separated decimal integers; white space around
// each is allowed, empty items are not.
func parseIntList(s string) ([]int, error) {
	parts := strings.Split(s, ",")
	out := make([]int, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("item %d is empty", i+1)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", p)
		}
		out[i] = n
	}
	return out, nil
}

// testPatternWidth is the width of the test source: SENDER_WIDTH, or the
// widest layer when SENDER_LAYERS is set.
func (c Config) testPatternWidth() int {
	specs, err := c.layerSpecs()
	if err != nil || !c.layered() {
		return c.Width
	}
	w := 0
	for _, l := range specs {
		w = max(w, l.width)
	}
	return w
}

// maxTokenFileBytes bounds a token file: a JWT is a few hundred bytes.
const maxTokenFileBytes = 16 << 10

// readTokenFile returns the token in the file name, without surrounding
// white space (`gateway token -out` ends it with a newline). Its errors never
// quote the file's content.
func readTokenFile(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("failed to read %s: %w", name, err)
	}
	if len(b) > maxTokenFileBytes {
		return "", fmt.Errorf("%s is larger than %d bytes: not a token", name, maxTokenFileBytes)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("%s is empty", name)
	case strings.ContainsAny(tok, " \t\r\n"):
		return "", fmt.Errorf("%s holds white space inside the token: want the token alone", name)
	}
	return tok, nil
}

// PrintUsage writes the settings table: flag, environment variable, default
// and description of each setting.
func PrintUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: sender [-flag value ...]

sender captures a camera, video file, stream or test pattern, encodes JPEG
frames and publishes them to a framecast gateway room, reconnecting forever.
Every setting is read from its environment variable; a flag overrides it.

`)
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FLAG\tENVIRONMENT\tDEFAULT\tDESCRIPTION")
	for _, f := range configFields() {
		def := f.field.Tag.Get("default")
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "-%s\t%s\t%s\t%s\n", f.flag, f.env, def, f.desc)
	}
	tw.Flush()
	fmt.Fprint(w, `
Exit status: 0 after SIGTERM or SIGINT (the WebSocket is closed with 1000),
2 for a bad setting or a source that cannot be opened at start.
`)
}

type configField struct {
	field reflect.StructField
	env   string
	flag  string
	desc  string
}

func configFields() []configField {
	t := reflect.TypeFor[Config]()
	out := make([]configField, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		out = append(out, configField{field: f, env: f.Tag.Get("env"), flag: f.Tag.Get("flag"), desc: f.Tag.Get("desc")})
	}
	return out
}

// flagOf returns the flag name of the setting read from env.
func flagOf(env string) string {
	for _, f := range configFields() {
		if f.env == env {
			return f.flag
		}
	}
	return strings.ToLower(strings.TrimPrefix(env, EnvPrefix+"_"))
}

// setField parses s into v the way envconfig does for the kinds Config uses.
func setField(v reflect.Value, s string) error {
	switch {
	case v.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (e.g. 500ms, 5s, 1m): %q", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("not a number: %q", s)
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported setting type %v", v.Type())
	}
	return nil
}
