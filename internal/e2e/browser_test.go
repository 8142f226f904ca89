package e2e_test

import (
	"testing"

	"github.com/framecast/framecast/internal/testenv/chromium"
)

// browser is the tests' headless Chromium (internal/testenv/chromium).
type browser = chromium.Browser

func startBrowser(t *testing.T) *browser { return chromium.Start(t) }

// evaluate evaluates a JavaScript expression in the page and decodes its
// value.
func evaluate[T any](b *browser, js string) (T, error) { return chromium.Evaluate[T](b, js) }
