// Package faults holds framecast's fault tests: real redis-server and
// gateway processes, real sockets, and one fault injected per test.
//
//   - TestRedisKilledAndRestarted: Redis dies twice mid-stream; frames resume
//     within 2 s of each restart without a gateway restart, and once the
//     clients leave, each gateway's goroutine count is back at its baseline.
//   - TestRedisFrozen: Redis is stopped with SIGSTOP for 5 s; the gateways
//     stay healthy, report not-ready, keep reading their publisher (whose
//     writes never wait on Redis), and relay again after SIGCONT.
//   - TestPublisherReconnects: viewers on the publisher's replica and on
//     another one see the offline event when the publisher leaves (cleanly
//     or by a dropped connection), and frames again when it comes back.
//   - TestStalledViewerNetwork: a viewer behind a TCP proxy that stops
//     reading is cut off after the write timeout, and the other viewers'
//     latency does not move.
//
// A killed gateway is covered end to end in internal/e2e. What each test
// proves, and its figures, are in docs/reliability.md.
//
// The package has no code of its own; everything is in its _test.go files.
// The tests need redis-server: they skip without it, unless CI=true.
package faults
