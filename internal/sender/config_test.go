package sender

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kelseyhightower/envconfig"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	want := Config{
		URL: "ws://127.0.0.1:8000", Room: "demo", Source: "0", FPS: 10, Quality: 80, Width: 640,
		Codec: CodecJPEG, KeyInterval: 2 * time.Second, JpegFPS: 2,
		Protocol: ProtocolBinary, WriteTimeout: 5 * time.Second, DialTimeout: 10 * time.Second,
		PingInterval: 15 * time.Second, StatusInterval: 10 * time.Second,
		ReconnectMin: 250 * time.Millisecond, ReconnectMax: 10 * time.Second, LogLevel: "info",
	}
	if c != want {
		t.Fatalf("DefaultConfig() = %+v\nwant %+v", c, want)
	}
}

// TestEnvTagsMatchEnvconfig keeps the env tags, which -h and error messages
// show, equal to the names envconfig really reads.
func TestEnvTagsMatchEnvconfig(t *testing.T) {
	var b bytes.Buffer
	if err := envconfig.Usagef(EnvPrefix, &Config{}, &b, "{{range .}}{{usage_key .}}\n{{end}}"); err != nil {
		t.Fatal(err)
	}
	got := strings.Fields(b.String())
	fields := configFields()
	if len(got) != len(fields) {
		t.Fatalf("envconfig reads %d variables, Config has %d fields", len(got), len(fields))
	}
	flags := map[string]bool{}
	for i, f := range fields {
		if got[i] != f.env {
			t.Errorf("field %s: env tag %q, envconfig reads %q", f.field.Name, f.env, got[i])
		}
		if f.flag == "" || flags[f.flag] {
			t.Errorf("field %s: missing or duplicate flag %q", f.field.Name, f.flag)
		}
		flags[f.flag] = true
		if f.desc == "" {
			t.Errorf("field %s has no desc", f.field.Name)
		}
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	video := filepath.Join(dir, "clip.mp4")
	if err := os.WriteFile(video, []byte("not checked by Validate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "sender.token")
	writeFile(t, tokenFile, "tok.en-1\n")
	emptyTokenFile := filepath.Join(dir, "empty.token")
	writeFile(t, emptyTokenFile, " \n")
	spacedTokenFile := filepath.Join(dir, "spaced.token")
	writeFile(t, spacedTokenFile, "tok en\n")
	bigTokenFile := filepath.Join(dir, "big.token")
	writeFile(t, bigTokenFile, strings.Repeat("a", maxTokenFileBytes+1))
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string // substring; "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"test source", func(c *Config) { c.Source = "test" }, ""},
		{"device path", func(c *Config) { c.Source = "/dev/video2" }, ""},
		{"rtsp", func(c *Config) { c.Source = "rtsp://user:pw@cam.local:554/stream1" }, ""},
		{"https source", func(c *Config) { c.Source = "https://cam.local/video.mjpg" }, ""},
		{"existing file", func(c *Config) { c.Source = video }, ""},
		{"seed protocol", func(c *Config) { c.Protocol = "seed" }, ""},
		{"width 0 keeps", func(c *Config) { c.Width = 0 }, ""},
		{"fractional fps", func(c *Config) { c.FPS = 0.5 }, ""},
		{"wss with path", func(c *Config) { c.URL = "wss://cams.example.com/framecast" }, ""},
		{"status off", func(c *Config) { c.StatusInterval = 0 }, ""},

		{"fps zero", func(c *Config) { c.FPS = 0 }, "SENDER_FPS (-fps)"},
		{"fps negative", func(c *Config) { c.FPS = -5 }, "SENDER_FPS"},
		{"fps too high", func(c *Config) { c.FPS = 500 }, "SENDER_FPS"},
		{"fps NaN", func(c *Config) { c.FPS = math.NaN() }, "SENDER_FPS"},
		{"quality zero", func(c *Config) { c.Quality = 0 }, "SENDER_QUALITY (-quality)"},
		{"quality 101", func(c *Config) { c.Quality = 101 }, "SENDER_QUALITY"},
		{"room empty", func(c *Config) { c.Room = "" }, "SENDER_ROOM (-room)"},
		{"room dash", func(c *Config) { c.Room = "cam-1" }, "SENDER_ROOM"},
		{"room traversal", func(c *Config) { c.Room = "../admin" }, "SENDER_ROOM"},
		{"room too long", func(c *Config) { c.Room = strings.Repeat("a", 65) }, "SENDER_ROOM"},
		{"protocol", func(c *Config) { c.Protocol = "json" }, "SENDER_PROTOCOL (-protocol)"},
		{"missing file", func(c *Config) { c.Source = filepath.Join(dir, "missing.mp4") }, "SENDER_SOURCE (-source)"},
		{"directory source", func(c *Config) { c.Source = dir }, "SENDER_SOURCE"},
		{"source scheme", func(c *Config) { c.Source = "ftp://cam.local/x" }, "SENDER_SOURCE"},
		{"source empty", func(c *Config) { c.Source = "" }, "SENDER_SOURCE"},
		{"url scheme", func(c *Config) { c.URL = "ftp://127.0.0.1:8000" }, "SENDER_URL (-url)"},
		{"url no host", func(c *Config) { c.URL = "ws://" }, "SENDER_URL"},
		{"url with query", func(c *Config) { c.URL = "ws://h:1/?role=view" }, "SENDER_URL"},
		{"width negative", func(c *Config) { c.Width = -1 }, "SENDER_WIDTH (-width)"},
		{"token space", func(c *Config) { c.Token = "a b" }, "SENDER_TOKEN"},
		{"token file", func(c *Config) { c.TokenFile = tokenFile }, ""},
		{"token and token file", func(c *Config) { c.Token, c.TokenFile = "tok", tokenFile }, "SENDER_TOKEN (-token) and SENDER_TOKEN_FILE (-token-file)"},
		{"missing token file", func(c *Config) { c.TokenFile = filepath.Join(dir, "missing.token") }, "SENDER_TOKEN_FILE (-token-file)"},
		{"token file is a directory", func(c *Config) { c.TokenFile = dir }, "SENDER_TOKEN_FILE"},
		{"empty token file", func(c *Config) { c.TokenFile = emptyTokenFile }, "SENDER_TOKEN_FILE"},
		{"token file with spaces", func(c *Config) { c.TokenFile = spacedTokenFile }, "SENDER_TOKEN_FILE"},
		{"token file too big", func(c *Config) { c.TokenFile = bigTokenFile }, "SENDER_TOKEN_FILE"},
		{"write timeout", func(c *Config) { c.WriteTimeout = 0 }, "SENDER_WRITE_TIMEOUT (-write-timeout)"},
		{"dial timeout", func(c *Config) { c.DialTimeout = -time.Second }, "SENDER_DIAL_TIMEOUT"},
		{"ping interval", func(c *Config) { c.PingInterval = 0 }, "SENDER_PING_INTERVAL"},
		{"status negative", func(c *Config) { c.StatusInterval = -1 }, "SENDER_STATUS_INTERVAL"},
		{"reconnect order", func(c *Config) { c.ReconnectMax = time.Millisecond }, "SENDER_RECONNECT_MAX"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "SENDER_LOG_LEVEL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.edit(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want one naming %s", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not name %s", err, tt.wantErr)
			}
		})
	}
}

// TestNewRejectsUnreadableFile: a file that exists but is no video fails at
// start, naming the setting.
func TestNewRejectsUnreadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Source = path
	_, err := New(c, nil)
	if err == nil || !strings.Contains(err.Error(), "SENDER_SOURCE") {
		t.Fatalf("New = %v, want an error naming SENDER_SOURCE", err)
	}
}

func TestLoadConfigFlagsOverrideEnv(t *testing.T) {
	t.Setenv("SENDER_FPS", "5")
	t.Setenv("SENDER_ROOM", "envroom")
	t.Setenv("SENDER_SOURCE", "test")
	t.Setenv("SENDER_WRITE_TIMEOUT", "2s")
	c, err := LoadConfig([]string{"-fps", "7.5", "-quality=55", "-width", "320", "-protocol", "seed", "-token", "tok", "-write-timeout", "750ms"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.FPS != 7.5 || c.Quality != 55 || c.Width != 320 || c.Protocol != "seed" || c.Token != "tok" || c.WriteTimeout != 750*time.Millisecond {
		t.Errorf("flags not applied: %+v", c)
	}
	if c.Room != "envroom" || c.Source != "test" {
		t.Errorf("environment not applied: %+v", c)
	}
	if c.URL != "ws://127.0.0.1:8000" || c.DialTimeout != 10*time.Second {
		t.Errorf("defaults not applied: %+v", c)
	}
}

// TestLoadConfigIgnoresBareNames guards against envconfig's fallback to the
// unprefixed name, which an envconfig:"..." tag would enable.
func TestLoadConfigIgnoresBareNames(t *testing.T) {
	t.Setenv("TOKEN", "leaked")
	t.Setenv("URL", "ftp://elsewhere")
	t.Setenv("SOURCE", "test")
	t.Setenv("WIDTH", "99")
	c, err := LoadConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token != "" || c.URL != "ws://127.0.0.1:8000" || c.Source != "0" || c.Width != 640 {
		t.Fatalf("unprefixed variables leaked into the config: %+v", c)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"bad env number", map[string]string{"SENDER_QUALITY": "high"}, nil, "SENDER_QUALITY"},
		{"bad env duration", map[string]string{"SENDER_WRITE_TIMEOUT": "5"}, nil, "SENDER_WRITE_TIMEOUT"},
		{"bad flag number", nil, []string{"-fps", "fast"}, "-fps"},
		{"bad flag duration", nil, []string{"-dial-timeout", "soon"}, "-dial-timeout"},
		{"unknown flag", nil, []string{"-camera", "1"}, "-camera"},
		{"positional", nil, []string{"test"}, "unexpected argument"},
		{"flag fails validation", nil, []string{"-room", "no way"}, "SENDER_ROOM (-room)"},
		{"env fails validation", map[string]string{"SENDER_PROTOCOL": "mjpeg"}, nil, "SENDER_PROTOCOL"},
		{"missing token file env", map[string]string{"SENDER_TOKEN_FILE": "/nonexistent/sender.token"}, nil, "SENDER_TOKEN_FILE (-token-file)"},
		{"missing token file flag", nil, []string{"-token-file", "/nonexistent/sender.token"}, "SENDER_TOKEN_FILE (-token-file)"},
		{"token and token file", map[string]string{"SENDER_TOKEN": "tok"}, []string{"-token-file", "/nonexistent/sender.token"}, "SENDER_TOKEN (-token) and SENDER_TOKEN_FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := LoadConfig(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("LoadConfig = %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadConfigHelpListsEverySetting(t *testing.T) {
	var b bytes.Buffer
	_, err := LoadConfig([]string{"-h"}, &b)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("LoadConfig(-h) = %v, want flag.ErrHelp", err)
	}
	out := b.String()
	for _, f := range configFields() {
		for _, want := range []string{"-" + f.flag + " ", f.env + " ", f.field.Tag.Get("default")} {
			if !strings.Contains(out, want) {
				t.Errorf("usage lacks %q for %s:\n%s", want, f.field.Name, out)
			}
		}
	}
}

func TestConfigLogValueRedactsToken(t *testing.T) {
	c := DefaultConfig()
	c.Token = "s3cret"
	if s := c.LogValue().String(); strings.Contains(s, "s3cret") {
		t.Fatalf("token in log value: %s", s)
	}
	c.Token, c.TokenFile = "", "/run/framecast/sender.token"
	if s := c.LogValue().String(); !strings.Contains(s, c.TokenFile) {
		t.Fatalf("token file not in log value: %s", s)
	}
}

func TestPublishURL(t *testing.T) {
	tests := []struct {
		base, protocol, token, want string
	}{
		{"ws://127.0.0.1:8000", ProtocolBinary, "", "ws://127.0.0.1:8000/ws/video/demo/?role=publish"},
		{"ws://127.0.0.1:8000/", ProtocolBinary, "", "ws://127.0.0.1:8000/ws/video/demo/?role=publish"},
		{"wss://cams.example.com/fc/", ProtocolBinary, "a.b+c", "wss://cams.example.com/fc/ws/video/demo/?role=publish"}, // the token goes in the header only,
		{"ws://127.0.0.1:81", ProtocolSeed, "", "ws://127.0.0.1:81/ws/video/demo/"},
		{"http://127.0.0.1:81", ProtocolSeed, "t", "http://127.0.0.1:81/ws/video/demo/"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		c.URL, c.Protocol, c.Token = tt.base, tt.protocol, tt.token
		got, err := publishURL(c)
		if err != nil || got != tt.want {
			t.Errorf("publishURL(%q, %s, %q) = %q, %v; want %q", tt.base, tt.protocol, tt.token, got, err, tt.want)
		}
	}
}
