package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/testenv"
)

// TestAuthPublishMode runs a real gateway with GATEWAY_AUTH=publish: every
// way a publisher can fail to be entitled is refused before the upgrade
// with 401 or 403, a short reason and a counter; entitled publishers and
// token-less viewers get in, and frames flow between them.
func TestAuthPublishMode(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_AUTH=publish", "GATEWAY_JWT_SECRET="+secSecret)
	other, err := auth.NewHMACSigner([]byte(strings.Repeat("o", 40)))
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := other.Mint(auth.Grant{Room: "demo", Role: auth.RolePublish, TTL: time.Hour}, time.Now())
	expired, _ := auth.NewHMACSigner([]byte(secSecret))
	old, _ := expired.Mint(auth.Grant{Room: "demo", Role: auth.RolePublish, TTL: time.Minute}, time.Now().Add(-time.Hour))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, &auth.Claims{Room: "demo", Role: "publish",
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	pub := secToken(t, "demo", auth.RolePublish, time.Hour)
	view := secToken(t, "demo", auth.RoleView, time.Hour)
	cams := secToken(t, "cam_*", auth.RolePublish, time.Hour)
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	var unauthorized, forbidden float64
	for _, tc := range []struct {
		name   string
		room   string
		query  string
		hdr    http.Header
		status int
		body   string
	}{
		{"publisher without token", "demo", "role=publish", nil, 401, "missing token"},
		{"basic auth is no token", "demo", "role=publish", http.Header{"Authorization": {"Basic Zm9vOmJhcg=="}}, 401, "missing token"},
		{"garbage token", "demo", "role=publish&token=abc", nil, 401, "malformed"},
		{"token signed with another secret", "demo", "role=publish&token=" + forged, nil, 401, "bad signature"},
		{"expired token", "demo", "role=publish&token=" + old, nil, 401, "token expired"},
		{"alg none", "demo", "role=publish&token=" + none, nil, 401, "wrong signing algorithm"},
		{"bad bearer header", "demo", "role=publish", bearer("abc"), 401, "malformed"},
		{"view token publishing", "demo", "role=publish&token=" + view, nil, 403, "role"},
		{"token for another room", "lobby", "role=publish&token=" + pub, nil, 403, "room"},
		{"pattern that does not match", "dog_1", "role=publish&token=" + cams, nil, 403, "room"},

		{"publish token in the query", "demo", "role=publish&token=" + pub, nil, 101, ""},
		{"publish token in the header", "demo", "role=publish", bearer(pub), 101, ""},
		{"publish token on the seed's connection", "demo", "token=" + pub, nil, 101, ""},
		{"pattern that matches", "cam_7", "role=publish&token=" + cams, nil, 101, ""},
		{"viewer without token", "demo", "role=view", nil, 101, ""},
		{"viewer with a bad token it does not need", "demo", "role=view&token=abc", nil, 101, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, status, body, _ := testenv.TryDial(t, secURL(g, tc.room, tc.query), tc.hdr)
			if status != tc.status || !strings.Contains(body, tc.body) {
				t.Fatalf("status %d %q, want %d with %q", status, body, tc.status, tc.body)
			}
			if len(body) > 120 {
				t.Fatalf("reason is not short: %q", body)
			}
			switch status {
			case 401:
				unauthorized++
			case 403:
				forbidden++
			}
		})
	}
	resp, _ := secGet(t, strings.Replace(secURL(g, "demo", "role=publish"), "ws:", "http:", 1),
		http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-WebSocket-Version": {"13"}, "Sec-WebSocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}})
	unauthorized++
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("401 without a Bearer challenge: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="unauthorized"}`, unauthorized)
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="forbidden"}`, forbidden)

	// An entitled publisher's frames reach a viewer that needed no token.
	viewer := testenv.Dial(t, secURL(g, "flow", "role=view&format=binary"), nil)
	p := secStartPublisher(t, testenv.Dial(t, secURL(g, "flow", "role=publish"), bearer(secToken(t, "flow", auth.RolePublish, time.Hour))), 20*time.Millisecond)
	secWaitFrameAfter(t, viewer, 0)
	p.secAlive(t)
}

// TestAuthAllMode: with GATEWAY_AUTH=all, viewers need a token for their
// room too, and the seed's connection (publish and receive) works with a
// publish token.
func TestAuthAllMode(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_AUTH=all", "GATEWAY_JWT_SECRET="+secSecret)
	for _, tc := range []struct {
		name, query string
		status      int
	}{
		{"viewer without token", "role=view", 401},
		{"viewer with a token for another room", "role=view&token=" + secToken(t, "other", auth.RoleView, time.Hour), 403},
		{"viewer with a view token", "role=view&token=" + secToken(t, "demo", auth.RoleView, time.Hour), 101},
		{"viewer with a publish token", "role=view&token=" + secToken(t, "demo", auth.RolePublish, time.Hour), 101},
		{"viewer with a * token", "role=view&token=" + secToken(t, "*", auth.RoleAll, time.Hour), 101},
		{"seed's connection without a token", "", 401},
		{"seed's connection with a view token (it may watch)", "token=" + secToken(t, "demo", auth.RoleView, time.Hour), 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, status, body, _ := testenv.TryDial(t, secURL(g, "demo", tc.query), nil); status != tc.status {
				t.Fatalf("status %d %q, want %d", status, body, tc.status)
			}
		})
	}
	// The seed's protocol: one connection sends data URLs and receives the
	// room's frames as JSON.
	seed := testenv.Dial(t, secURL(g, "demo", "token="+secToken(t, "demo", auth.RolePublish, time.Hour)), nil)
	ctx := t.Context()
	jpg := secJPEG(t, 2, 1000)
	testenv.WaitFor(t, secWait, "the seed's connection to receive its own frame", func() error {
		if err := seed.Write(ctx, websocket.MessageText, []byte("data:image/jpeg;base64,"+base64.StdEncoding.EncodeToString(jpg))); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, msg, err := seed.Read(rctx)
		if err != nil {
			return err
		}
		if !strings.Contains(string(msg), `"message":"data:image/jpeg;base64,`) {
			t.Fatalf("seed got %.80s", msg)
		}
		return nil
	})
}

// TestTokenExpiresMidStream: a publisher (and, under AUTH=all, a viewer)
// admitted with a token is closed with 1008 "token expired" when the token
// expires (exp + auth.Leeway), not before; the same token is then refused
// with 401; viewers with longer tokens stay and see the room go offline.
func TestTokenExpiresMidStream(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_AUTH=all", "GATEWAY_JWT_SECRET="+secSecret)
	short := secToken(t, "demo", auth.RolePublish, time.Second)
	v, _ := auth.NewHMACVerifier([]byte(secSecret))
	claims, err := v.Verify(short)
	if err != nil {
		t.Fatal(err)
	}
	viewer := testenv.Dial(t, secURL(g, "demo", "role=view&format=binary&token="+secToken(t, "demo", auth.RoleView, time.Hour)), nil)
	shortViewer := testenv.Dial(t, secURL(g, "demo", "role=view&format=binary&token="+secToken(t, "demo", auth.RoleView, time.Second)), nil)
	p := secStartPublisher(t, testenv.Dial(t, secURL(g, "demo", "role=publish&token="+short), nil), 50*time.Millisecond)
	secWaitFrameAfter(t, viewer, 0)

	var closeErr error
	select {
	case closeErr = <-p.closed:
	case <-time.After(time.Until(claims.Deadline()) + secWait):
		t.Fatalf("publisher still open %v after its token's deadline", secWait)
	}
	closedAt := time.Now()
	secExpectClose(t, closeErr, websocket.StatusPolicyViolation, "token expired")
	if early := claims.Deadline().Sub(closedAt); early > 50*time.Millisecond {
		t.Fatalf("closed %v before the token's deadline", early)
	}
	secExpectClose(t, secCloseOf(shortViewer, secWait), websocket.StatusPolicyViolation, "token expired")

	if _, status, body, _ := testenv.TryDial(t, secURL(g, "demo", "role=publish&token="+short), nil); status != 401 || !strings.Contains(body, "expired") {
		t.Fatalf("reconnect with the expired token: %d %q", status, body)
	}
	// The long-lived viewer is still connected and hears the room go offline.
	ctx, cancel := context.WithTimeout(t.Context(), secWait)
	defer cancel()
	for {
		_, msg, err := viewer.Read(ctx)
		if err != nil {
			t.Fatalf("long-lived viewer: %v", err)
		}
		if len(msg) >= 2 && msg[1] == 2 { // frames.KindOffline
			break
		}
	}
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="token_expired"}`, 2)
}

// TestMJPEGTokenExpires: under GATEWAY_AUTH=all an MJPEG stream opened with
// a 1 s view token sends images until the token's deadline (exp + leeway)
// and then ends, counted like a WebSocket closed for expiry; a stream opened
// with a long-lived token goes on.
func TestMJPEGTokenExpires(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_AUTH=all", "GATEWAY_JWT_SECRET="+secSecret)
	short := secToken(t, "demo", auth.RoleView, time.Second)
	v, _ := auth.NewHMACVerifier([]byte(secSecret))
	claims, err := v.Verify(short)
	if err != nil {
		t.Fatal(err)
	}
	secStartPublisher(t, testenv.Dial(t, secURL(g, "demo", "role=publish&token="+secToken(t, "demo", auth.RolePublish, time.Hour)), nil), 50*time.Millisecond)
	type stream struct {
		parts   atomic.Int64
		last    atomic.Int64 // UnixNano of the newest part
		endedAt chan time.Time
	}
	open := func(token string) *stream {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.URL()+"/video/demo/stream.mjpg?token="+token, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET stream.mjpg: %s", resp.Status)
		}
		s := &stream{endedAt: make(chan time.Time, 1)}
		go func() {
			defer resp.Body.Close()
			mr := multipart.NewReader(resp.Body, "frame")
			for {
				part, err := mr.NextPart()
				if err == nil {
					_, err = io.Copy(io.Discard, part)
				}
				if err != nil {
					s.endedAt <- time.Now()
					return
				}
				s.last.Store(time.Now().UnixNano())
				s.parts.Add(1)
			}
		}()
		return s
	}
	long, expiring := open(secToken(t, "demo", auth.RoleView, time.Hour)), open(short)

	var ended time.Time
	select {
	case ended = <-expiring.endedAt:
	case <-time.After(time.Until(claims.Deadline()) + secWait):
		t.Fatalf("MJPEG stream still open %v after its token's deadline (%d images)", secWait, expiring.parts.Load())
	}
	if early := claims.Deadline().Sub(ended); early > 50*time.Millisecond {
		t.Fatalf("stream ended %v before the token's deadline", early)
	}
	if expiring.parts.Load() == 0 {
		t.Fatal("the stream sent no image before its token expired")
	}
	// Allow for an image written just before the deadline and read after it.
	if late := time.Unix(0, expiring.last.Load()).Sub(claims.Deadline()); late > 100*time.Millisecond {
		t.Fatalf("an image came %v after the token's deadline", late)
	}
	testenv.WaitMetric(t, secWait, g.URL(), `framecast_rejected_total{reason="token_expired"}`, 1)
	// The long-lived stream goes on.
	n := long.parts.Load()
	testenv.WaitFor(t, secWait, "the long-lived stream to send more images", func() error {
		select {
		case <-long.endedAt:
			t.Fatal("the long-lived stream ended")
		default:
		}
		if long.parts.Load() <= n {
			return fmt.Errorf("%d images, no new one", n)
		}
		return nil
	})
}

// TestAuthPublicKey: with GATEWAY_JWT_PUBLIC_KEY_FILE the gateway accepts
// ES256 tokens from the matching private key, and nothing signed another
// way: not HS256 with the public key's bytes as the secret (the classic
// algorithm confusion), not HS256 with some secret.
func TestAuthPublicKey(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	file := filepath.Join(t.TempDir(), "jwt.pub")
	if err := os.WriteFile(file, pubPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	g := testenv.StartGateway(t, "GATEWAY_AUTH=publish", "GATEWAY_JWT_PUBLIC_KEY_FILE="+file)

	claims := &auth.Claims{Room: "demo", Role: "publish",
		RegisteredClaims: jwt.RegisteredClaims{ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}}
	good, _ := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(key)
	confused, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pubPEM)
	for _, tc := range []struct {
		name, token string
		status      int
	}{
		{"ES256", good, 101},
		{"HS256 signed with the public key", confused, 401},
		{"HS256 signed with a secret", secToken(t, "demo", auth.RolePublish, time.Hour), 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, status, body, _ := testenv.TryDial(t, secURL(g, "demo", "role=publish&token="+tc.token), nil); status != tc.status {
				t.Fatalf("status %d %q, want %d", status, body, tc.status)
			}
		})
	}
}

// TestAuthOffWarns: the default mode is off, and the gateway says at start
// that anyone may publish.
func TestAuthOffWarns(t *testing.T) {
	g := testenv.StartGateway(t)
	testenv.WaitFor(t, secWait, "the auth=off warning", func() error {
		out := g.Proc.Output()
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "GATEWAY_AUTH=off: anyone") {
			return fmt.Errorf("no warning in %q", out)
		}
		return nil
	})
	// and anyone may indeed publish
	testenv.Dial(t, secURL(g, "demo", "role=publish"), nil)
}

// TestSecurityConfigValidation: every bad security setting is refused at
// start by a message naming it.
func TestSecurityConfigValidation(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o644)
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string // "" = valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"publish with a secret", func(c *Config) { c.Auth, c.JWTSecret = AuthPublish, secSecret }, ""},
		{"unknown mode", func(c *Config) { c.Auth = "yes" }, "GATEWAY_AUTH"},
		{"publish without key", func(c *Config) { c.Auth = AuthPublish }, "GATEWAY_AUTH"},
		{"all without key", func(c *Config) { c.Auth = AuthAll }, "GATEWAY_JWT_SECRET or GATEWAY_JWT_PUBLIC_KEY_FILE"},
		{"short secret", func(c *Config) { c.Auth, c.JWTSecret = AuthPublish, "change-me-in-production" }, "GATEWAY_JWT_SECRET"},
		{"secret and key file", func(c *Config) { c.JWTSecret, c.JWTPublicKeyFile = secSecret, notPEM }, "GATEWAY_JWT_PUBLIC_KEY_FILE"},
		{"missing key file", func(c *Config) { c.Auth, c.JWTPublicKeyFile = AuthAll, filepath.Join(dir, "nope") }, "GATEWAY_JWT_PUBLIC_KEY_FILE"},
		{"key file without a key", func(c *Config) { c.Auth, c.JWTPublicKeyFile = AuthAll, notPEM }, "GATEWAY_JWT_PUBLIC_KEY_FILE"},
		{"negative rate", func(c *Config) { c.PublishRate = -1 }, "GATEWAY_PUBLISH_RATE"},
		{"zero burst", func(c *Config) { c.PublishBurst = 0 }, "GATEWAY_PUBLISH_BURST"},
		{"no rate, no burst", func(c *Config) { c.PublishRate, c.PublishBurst = 0, 0 }, ""},
		{"negative max connections", func(c *Config) { c.MaxConnections = -1 }, "GATEWAY_MAX_CONNECTIONS"},
		{"negative per-IP", func(c *Config) { c.MaxConnectionsPerIP = -1 }, "GATEWAY_MAX_CONNECTIONS_PER_IP"},
		{"negative idle rooms per IP", func(c *Config) { c.MaxIdleRoomsPerIP = -1 }, "GATEWAY_MAX_IDLE_ROOMS_PER_IP"},
		{"bad proxy", func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "nginx"} }, "GATEWAY_TRUSTED_PROXIES"},
		{"proxies as IPs and CIDRs", func(c *Config) { c.TrustedProxies = []string{"10.0.0.1", "fd00::/8", " 192.168.0.0/16"} }, ""},
		{"bad origin pattern", func(c *Config) { c.AllowedOrigins = []string{"[cams.example.com"} }, "GATEWAY_ALLOWED_ORIGINS"},
		{"redis password not echoed", func(c *Config) { c.RedisURL = "redis://u:hunter2%zz@h:1/0" }, "GATEWAY_REDIS_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := secDefaultConfig(t)
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want an error naming %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), secSecret) {
				t.Fatalf("error prints a secret: %v", err)
			}
		})
	}
}

// secDefaultConfig is the configuration the environment's defaults give.
func secDefaultConfig(t *testing.T) Config {
	t.Helper()
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, EnvPrefix+"_") {
			k, _, _ := strings.Cut(kv, "=")
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	c, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSeedPageWatchesWithoutToken: with GATEWAY_AUTH=publish (what
// docker-compose runs), the seed's page, which connects with no role and no
// token, is admitted as a viewer and receives the room's frames. The same
// kind of connection is closed with 1008 when it tries to publish without a
// publish token, and publishes with one.
func TestSeedPageWatchesWithoutToken(t *testing.T) {
	g := testenv.StartGateway(t, "GATEWAY_AUTH=publish", "GATEWAY_JWT_SECRET="+secSecret)
	page := testenv.Dial(t, secURL(g, "demo", ""), nil)
	p := secStartPublisher(t, testenv.Dial(t, secURL(g, "demo", "role=publish&token="+secToken(t, "demo", auth.RolePublish, time.Hour)), nil), 20*time.Millisecond)
	pageGetsFrame := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), secWait)
		defer cancel()
		typ, msg, err := page.Read(ctx)
		if err != nil || typ != websocket.MessageText || !strings.HasPrefix(string(msg), `{"message":"data:image/jpeg;base64,`) {
			t.Fatalf("the seed's page got %v %.60q %v, want its JSON envelope", typ, msg, err)
		}
	}
	pageGetsFrame()
	p.secAlive(t)

	jpg := "data:image/jpg;base64," + base64.StdEncoding.EncodeToString(secJPEG(t, 1, 0))
	for _, query := range []string{"", "token=" + secToken(t, "demo", auth.RoleView, time.Hour)} {
		c := testenv.Dial(t, secURL(g, "demo", query), nil)
		ctx, cancel := context.WithTimeout(context.Background(), secWait)
		err := c.Write(ctx, websocket.MessageText, []byte(jpg))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		secExpectClose(t, secCloseOf(c, secWait), websocket.StatusPolicyViolation, "publish token")
	}
	// The page kept receiving throughout.
	pageGetsFrame()

	seed := testenv.Dial(t, secURL(g, "demo", "format=binary&token="+secToken(t, "demo", auth.RolePublish, time.Hour)), nil)
	ctx, cancel := context.WithTimeout(context.Background(), secWait)
	defer cancel()
	if err := seed.Write(ctx, websocket.MessageText, []byte(jpg)); err != nil {
		t.Fatal(err)
	}
	if _, err := seed.ReadFrame(secWait); err != nil {
		t.Fatalf("a seed connection with a publish token: %v", err)
	}
}
