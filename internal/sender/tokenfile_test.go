package sender

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestTokenFileReadBeforeEachConnection: with SENDER_TOKEN_FILE the sender
// sends the file's token (as Authorization: Bearer only), reads the
// file again before every reconnect so that a rotated token is used, keeps
// the last token when the file is gone, and never logs a token.
func TestTokenFileReadBeforeEachConnection(t *testing.T) {
	const first, second = "tok.first-1", "tok.second-2"
	file := filepath.Join(t.TempDir(), "sender.token")
	writeFile(t, file, first+"\n") // as `gateway token -out` writes it

	g := newFakeGateway(t)
	// Each of the first two connections takes a few frames, changes the
	// file, then closes with 1001 like a gateway restarting.
	change := map[int]func(){
		0: func() { writeFile(t, file, second+"\n") }, // rotated
		1: func() { os.Remove(file) },                 // gone: keep the last token
	}
	g.onConn = func(ctx context.Context, n int, c *websocket.Conn, rec *connRecord) {
		if n >= len(change) {
			readAll(ctx, c, rec)
			return
		}
		for range 3 {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			rec.add(recvMsg{typ, b})
		}
		change[n]()
		c.Close(websocket.StatusGoingAway, "server restarting")
	}

	cfg := testConfig(g.url())
	cfg.TokenFile = file
	var logs lockedBuffer
	s, err := New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Run did not return within 15s of cancel")
		}
	})
	defer stop()

	g.waitMessages(t, 2, 3, 20*time.Second)
	for i, want := range []string{first, second, second} {
		rec := g.conn(i)
		if rec.auth != "Bearer "+want {
			t.Errorf("connection %d: Authorization %q, want %q", i, rec.auth, "Bearer "+want)
		}
		if rec.query != "role=publish" {
			t.Errorf("connection %d: query %q, want role=publish (no token in the URL)", i, rec.query)
		}
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "failed to read token file") {
		t.Errorf("no warning about the missing token file in the log:\n%s", out)
	}
	for _, tok := range []string{first, second} {
		if strings.Contains(out, tok) {
			t.Fatalf("log shows a token (%q):\n%s", tok, out)
		}
	}
}
