package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/auth"
	"github.com/framecast/framecast/internal/testenv"
	"github.com/framecast/framecast/pkg/frames"
)

const testSecret = "cmd-gateway-test-secret-0123456789abcdef"

// mintCLI runs `gateway token args...` with env and returns stdout, or the
// exit code and stderr.
func mintCLI(t *testing.T, env []string, args ...string) (token string, code int, stderr string) {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t, "gateway"), append([]string{"token"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "", ee.ExitCode(), errOut.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out.String()), 0, errOut.String()
}

// TestTokenCommand: a token minted by `gateway token` (secret from the
// environment or a file) lets a publisher into the rooms it names on a real
// gateway with GATEWAY_AUTH=publish, and its frames reach a viewer; other
// rooms are refused with 403.
func TestTokenCommand(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte(testSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fromEnv, code, stderr := mintCLI(t, []string{"GATEWAY_JWT_SECRET=" + testSecret}, "-room", "cam_*", "-role", "publish", "-ttl", "1h")
	if code != 0 {
		t.Fatalf("gateway token exited %d: %s", code, stderr)
	}
	fromFile, code, stderr := mintCLI(t, nil, "-secret-file", secretFile, "-room", "cam_*", "-role", "publish")
	if code != 0 {
		t.Fatalf("gateway token -secret-file exited %d: %s", code, stderr)
	}
	v, _ := auth.NewHMACVerifier([]byte(testSecret))
	for name, tok := range map[string]string{"env": fromEnv, "file": fromFile} {
		c, err := v.Verify(tok)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Room != "cam_*" || c.Role != "publish" {
			t.Fatalf("%s: claims %+v", name, c)
		}
	}
	c, _ := v.Verify(fromEnv)
	if d := time.Until(c.ExpiresAt.Time); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("-ttl 1h gave exp in %v", d)
	}
	c, _ = v.Verify(fromFile)
	if d := time.Until(c.ExpiresAt.Time); d < 23*time.Hour || d > 24*time.Hour {
		t.Fatalf("default ttl gave exp in %v, want 24h", d)
	}

	g := testenv.StartGateway(t, "GATEWAY_AUTH=publish", "GATEWAY_JWT_SECRET="+testSecret)
	publishAndWatch(t, g, "cam_front", fromEnv)
	if _, status, _, _ := testenv.TryDial(t, g.WSURL()+"/ws/video/lobby/?role=publish&token="+fromEnv, nil); status != 403 {
		t.Fatalf("token for cam_* publishing to lobby: status %d, want 403", status)
	}
}

// TestTokenCommandKeyFile: -key-file mints ES256 tokens that a gateway with
// the public key (GATEWAY_JWT_PUBLIC_KEY_FILE) accepts.
func TestTokenCommandKeyFile(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	privDER, _ := x509.MarshalPKCS8PrivateKey(key)
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	privFile, pubFile := filepath.Join(dir, "jwt.key"), filepath.Join(dir, "jwt.pub")
	_ = os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600)
	_ = os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)

	tok, code, stderr := mintCLI(t, nil, "-key-file", privFile, "-room", "demo", "-role", "*", "-ttl", "10m")
	if code != 0 {
		t.Fatalf("gateway token -key-file exited %d: %s", code, stderr)
	}
	g := testenv.StartGateway(t, "GATEWAY_AUTH=all", "GATEWAY_JWT_PUBLIC_KEY_FILE="+pubFile)
	publishAndWatch(t, g, "demo", tok)
}

// TestTokenCommandOut: -out writes the token (mode 0644, for a volume the
// sender's user reads) instead of printing it, replacing an older token; the
// token verifies with the same secret. A directory that does not exist is
// an error, and nothing is printed.
func TestTokenCommandOut(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "sender.token")
	if err := os.WriteFile(out, []byte("old-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"GATEWAY_JWT_SECRET=" + testSecret}
	printed, code, stderr := mintCLI(t, env, "-room", "demo", "-role", "publish", "-ttl", "87600h", "-out", out)
	if code != 0 {
		t.Fatalf("gateway token -out exited %d: %s", code, stderr)
	}
	if printed != "" {
		t.Fatalf("gateway token -out printed %q; the token belongs in the file only", printed)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("token file mode %v (err %v), want 0644", fi.Mode().Perm(), err)
	}
	v, _ := auth.NewHMACVerifier([]byte(testSecret))
	c, err := v.Verify(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("token written with -out does not verify: %v (file %q)", err, b)
	}
	if c.Room != "demo" || c.Role != auth.RolePublish {
		t.Fatalf("claims %+v, want room demo, role publish", c)
	}
	if d := time.Until(c.ExpiresAt.Time); d < 87599*time.Hour {
		t.Fatalf("-ttl 87600h gave exp in %v", d)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("-out left other files behind: %v", ents)
	}

	missing := filepath.Join(dir, "nope", "sender.token")
	printed, code, stderr = mintCLI(t, env, "-room", "demo", "-role", "publish", "-out", missing)
	if code == 0 || printed != "" || !strings.Contains(stderr, "failed to write token") {
		t.Fatalf("-out into a missing directory: exit %d, stdout %q, stderr %q; want a failure naming the write", code, printed, stderr)
	}
}

// TestDemoSecretWarns: a gateway running with docker-compose.yml's public
// demo secret says so loudly at start; one with its own secret does not.
func TestDemoSecretWarns(t *testing.T) {
	demo := testenv.StartGateway(t, "GATEWAY_AUTH=publish", "GATEWAY_JWT_SECRET="+auth.DemoSecret)
	testenv.WaitFor(t, 10*time.Second, "the demo-secret warning", func() error {
		out := demo.Proc.Output()
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "demo secret") && strings.Contains(line, "FRAMECAST_JWT_SECRET") {
				return nil
			}
		}
		return fmt.Errorf("no WARN about the demo secret in %q", out)
	})
	if out := demo.Proc.Output(); strings.Contains(out, auth.DemoSecret) {
		t.Fatalf("the warning prints the secret: %s", out)
	}

	own := testenv.StartGateway(t, "GATEWAY_AUTH=publish", "GATEWAY_JWT_SECRET="+testSecret)
	testenv.WaitFor(t, 10*time.Second, "the access-control line", func() error {
		if !strings.Contains(own.Proc.Output(), "access control on") {
			return errors.New("not logged yet")
		}
		return nil
	})
	if out := own.Proc.Output(); strings.Contains(out, "demo secret") {
		t.Fatalf("a gateway with its own secret warns about the demo secret:\n%s", out)
	}
}

// TestTokenCommandErrors: bad invocations exit 2 with a message and print
// no token.
func TestTokenCommandErrors(t *testing.T) {
	good := []string{"GATEWAY_JWT_SECRET=" + testSecret}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no room", good, []string{"-role", "publish"}, "-room and -role are required"},
		{"no role", good, []string{"-room", "demo"}, "-room and -role are required"},
		{"bad role", good, []string{"-room", "demo", "-role", "admin"}, "role"},
		{"bad pattern", good, []string{"-room", "cam_[", "-role", "view"}, "pattern"},
		{"no secret", nil, []string{"-room", "demo", "-role", "view"}, "GATEWAY_JWT_SECRET"},
		{"short secret", []string{"GATEWAY_JWT_SECRET=change-me-in-production"}, []string{"-room", "demo", "-role", "view"}, "too short"},
		{"negative ttl", good, []string{"-room", "demo", "-role", "view", "-ttl", "-1h"}, "ttl"},
		{"missing secret file", nil, []string{"-secret-file", "/nonexistent", "-room", "demo", "-role", "view"}, "failed to read secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, code, stderr := mintCLI(t, tc.env, tc.args...)
			if code != 2 || tok != "" || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, tok, stderr, tc.want)
			}
		})
	}
}

// publishAndWatch publishes to room on g with token (as the query parameter)
// and waits for a viewer, with the same token, to receive a frame.
func publishAndWatch(t *testing.T, g *testenv.Gateway, room, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	base := g.WSURL() + "/ws/video/" + room + "/?token=" + token
	viewer := testenv.Dial(t, base+"&role=view&format=binary", nil)
	defer viewer.CloseNow()
	pub := testenv.Dial(t, base+"&role=publish", nil)
	defer pub.CloseNow()
	jpg := []byte{0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0xFF, 0xD9}
	got := make(chan error, 1)
	go func() {
		for {
			_, msg, err := viewer.Read(ctx)
			if err != nil {
				got <- err
				return
			}
			if f, err := frames.ParseBinary(msg, 0, time.Time{}, 0); err == nil && !f.IsOffline() {
				got <- nil
				return
			}
		}
	}()
	for i := uint64(1); ; i++ {
		if err := pub.Write(ctx, websocket.MessageBinary, frames.AppendBinary(nil, i, time.Now(), jpg)); err != nil {
			t.Fatalf("publish: %v", err)
		}
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("viewer: %v", err)
			}
			return
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(fmt.Errorf("no frame reached the viewer: %w", ctx.Err()))
		}
	}
}
