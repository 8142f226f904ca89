// Package e2e holds framecast's end-to-end tests: the whole deployment, on
// loopback, as users run it. A real redis-server, three gateway processes,
// Debian's nginx with the repository's shared config (deploy/nginx/), the
// real sender publishing its test pattern, headless Chromium on the viewer
// page, and clients speaking the seed's protocol. One gateway is killed with
// SIGKILL and the page must recover through nginx by itself. And the seed's
// own deployment: its nginx block and video.html in front of two replicas
// (seed_test.go).
//
// The package has no code of its own; the tests live in *_test.go. They
// run with `go test ./...` (so `make test`), and need redis-server, nginx
// and chromium: they are skipped when missing, unless CI=true.
package e2e
