// Package chromium drives a headless Chromium (/usr/bin/chromium) for
// tests, through chromedp: one browser with one tab per test, its console
// recorded.
package chromium

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/framecast/framecast/internal/testenv"
)

// Browser is one headless Chromium with one tab, driven over the DevTools
// protocol. It records everything the page writes to its console.
type Browser struct {
	Ctx    context.Context     // the tab's chromedp context; actions derive timeouts from it
	output *testenv.SyncBuffer // Chromium's stdout and stderr

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// Start starts /usr/bin/chromium headless with a fresh profile (and the
// flags FIELD-NOTES.md lists for a closed network, plus extra) and opens a
// blank tab. The browser is stopped when the test ends; its output and
// console are logged if the test failed.
func Start(t testing.TB, extra ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	exe := testenv.RequireTool(t, "chromium")
	b := &Browser{output: &testenv.SyncBuffer{}}
	// Without a user-data-dir flag chromedp makes a fresh profile folder per
	// browser and removes it after killing Chromium's leftover children,
	// which a t.TempDir could not do.
	opts := append([]chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // the tests run as root in containers
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		// Without these, Chromium floods the closed network with requests.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(800, 600),
		chromedp.CombinedOutput(b.output),
	}, extra...)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	// chromedp logs protocol errors with the log package: a t.Logf here
	// could run after the test ended, which panics.
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- browser console ---\n%s", b.consoleText())
			t.Logf("--- chromium output ---\n%s", testenv.Tail(b.output.String(), 8000))
		}
	})
	// The first action starts the browser; it must run without a timeout,
	// which would stop the whole browser when it expires.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("failed to start chromium: %v\n%s", err, b.output.String())
	}
	b.Ctx = ctx
	// Console subscribes when it returns, so nothing the page writes from now
	// on is lost; the range ends when the tab's context is cancelled.
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.console = append(b.console, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// Navigate opens url in the tab and waits for its load event.
func (b *Browser) Navigate(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("failed to open %s: %v", url, err)
	}
}

// Evaluate evaluates a JavaScript expression in the page and decodes its
// value, within 5 s (a method cannot have a type parameter).
func Evaluate[T any](b *Browser, js string) (T, error) {
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

// Screenshot saves a PNG of the tab to dir and returns its path.
func (b *Browser) Screenshot(dir, name string) (string, error) {
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		return "", fmt.Errorf("failed to capture a screenshot: %w", err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		return "", fmt.Errorf("failed to save the screenshot: %w", err)
	}
	return path, nil
}

// ConsoleErrors returns the console messages of type error or exception so
// far: failed loads, CSP violations, uncaught exceptions.
func (b *Browser) ConsoleErrors() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []chromedp.ConsoleMessage
	for _, m := range b.console {
		if m.Type == chromedp.ConsoleError || m.IsException() {
			out = append(out, m)
		}
	}
	return out
}

// RequireCleanConsole fails the test if the page logged an error.
func (b *Browser) RequireCleanConsole(t *testing.T) {
	t.Helper()
	if errs := b.ConsoleErrors(); len(errs) > 0 {
		var lines []string
		for _, m := range errs {
			lines = append(lines, fmt.Sprintf("%s (source %q, %s:%d)", m, m.Source, m.URL, m.Line))
		}
		t.Fatalf("the page logged %d console error(s):\n%s", len(errs), strings.Join(lines, "\n"))
	}
}

func (b *Browser) consoleText() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s strings.Builder
	for _, m := range b.console {
		fmt.Fprintf(&s, "%s %s\n", m.Time.Format("15:04:05.000"), m)
	}
	return s.String()
}
