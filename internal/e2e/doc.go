// Package e2e holds framecast's end-to-end test: the whole deployment, on
// loopback, as users run it. A real redis-server, three gateway processes,
// Debian's nginx with the repository's shared config (deploy/nginx/), the
// real sender publishing its test pattern, headless Chromium on the viewer
// page, and clients speaking the seed's protocol. One gateway is killed with
// SIGKILL and the page must recover through nginx by itself.
//
// The package has no code of its own; the test lives in e2e_test.go. It
// runs with `go test ./...` (so `make test`), and needs redis-server, nginx
// and chromium: they are skipped when missing, unless CI=true.
package e2e
