package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/framecast/framecast/internal/testenv"
)

func TestHelpListsSettings(t *testing.T) {
	bin := testenv.Binary(t, "sender")
	out, err := exec.Command(bin, "-h").Output()
	if err != nil {
		t.Fatalf("sender -h: %v", err)
	}
	for _, want := range []string{
		"-url", "SENDER_URL", "ws://127.0.0.1:8000", "-room", "SENDER_ROOM", "demo",
		"-source", "SENDER_SOURCE", "-fps", "SENDER_FPS", "-quality", "SENDER_QUALITY", "80",
		"-width", "SENDER_WIDTH", "640", "-protocol", "SENDER_PROTOCOL", "binary", "-token", "SENDER_TOKEN",
		"-write-timeout", "SENDER_WRITE_TIMEOUT", "5s", "SENDER_STATUS_INTERVAL", "10s",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("sender -h lacks %q:\n%s", want, out)
		}
	}
}

func TestBadSettingExitsWith2(t *testing.T) {
	bin := testenv.Binary(t, "sender")
	notVideo := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notVideo, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"fps flag", nil, []string{"-fps", "0"}, "SENDER_FPS (-fps)"},
		{"quality env", []string{"SENDER_QUALITY=101"}, nil, "SENDER_QUALITY"},
		{"room", nil, []string{"-room", "a/b"}, "SENDER_ROOM"},
		{"protocol", []string{"SENDER_PROTOCOL=json"}, nil, "SENDER_PROTOCOL"},
		{"missing file", nil, []string{"-source", "/nonexistent/clip.mp4"}, "does not exist"},
		{"not a video", nil, []string{"-source", notVideo}, "OpenCV cannot read it"},
		{"source scheme", nil, []string{"-source", "ftp://cam/x"}, "SENDER_SOURCE"},
		{"url scheme", nil, []string{"-url", "tcp://127.0.0.1:8000"}, "SENDER_URL"},
		{"unparsable flag", nil, []string{"-width", "wide"}, "-width"},
		{"unparsable env", []string{"SENDER_DIAL_TIMEOUT=10"}, nil, "SENDER_DIAL_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Env = append(cmd.Environ(), tt.env...)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit %v, want status 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Fatalf("output does not name %q:\n%s", tt.want, out)
			}
		})
	}
}

// TestSIGTERMClosesNormally: on SIGTERM the sender closes its WebSocket
// with 1000 "sender stopping" and exits 0.
func TestSIGTERMClosesNormally(t *testing.T) {
	var (
		mu       sync.Mutex
		received int
		closeErr error
		ended    = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(-1)
		for {
			_, _, err := c.Read(context.Background())
			mu.Lock()
			if err != nil {
				closeErr = err
				mu.Unlock()
				close(ended)
				return
			}
			received++
			mu.Unlock()
		}
	}))
	defer srv.Close()

	bin := testenv.Binary(t, "sender")
	p := testenv.Start(t, "sender", bin, []string{"SENDER_SOURCE=test", "SENDER_WIDTH=160", "SENDER_FPS=20"},
		"-url", "ws"+strings.TrimPrefix(srv.URL, "http"), "-room", "cam1")
	testenv.WaitFor(t, 20*time.Second, "frames at the server", func() error {
		mu.Lock()
		defer mu.Unlock()
		if received < 3 {
			return fmt.Errorf("%d frames", received)
		}
		return nil
	})
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited, err := p.Wait(10 * time.Second)
	if !exited || err != nil {
		t.Fatalf("after SIGTERM: exited %v, err %v; output:\n%s", exited, err, p.Output())
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("server connection still open after the sender exited")
	}
	mu.Lock()
	defer mu.Unlock()
	var ce websocket.CloseError
	if !errors.As(closeErr, &ce) || ce.Code != websocket.StatusNormalClosure || ce.Reason != "sender stopping" {
		t.Fatalf("connection ended with %v, want 1000 \"sender stopping\"", closeErr)
	}
	for _, want := range []string{"connected to gateway", "closed connection to gateway", "sender stopped"} {
		if !strings.Contains(p.Output(), want) {
			t.Errorf("log lacks %q:\n%s", want, p.Output())
		}
	}
}
