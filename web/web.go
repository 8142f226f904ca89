// Package web holds the gateway's page assets, embedded into the binary:
// HTML templates (rendered with html/template, so everything from a URL is
// escaped) and static files. Pages load no script inline and nothing from a
// CDN, so a strict Content-Security-Policy applies.
package web

import "embed"

// Templates holds templates/*.html.
//
//go:embed templates/*.html
var Templates embed.FS

// Static holds static/*, served under /static/.
//
//go:embed static
var Static embed.FS
