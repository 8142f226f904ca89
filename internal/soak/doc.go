// Package soak holds framecast's soak test, TestSoak: one publisher at
// 30 fps, 200 binary viewers spread over three gateway replicas, Redis
// between them, for FRAMECAST_SOAK (default 60s; `make soak` runs 10m).
//
// It asserts what a long run must show: no viewer waits more than 1 s for a
// frame, at least 99% of the frames are delivered, no connection drops, and
// each gateway's resident memory and goroutine count stay flat once warmed
// up. The rules and the figures of a 60 s and a 10-minute run are in
// docs/reliability.md.
//
// The gateways and the load generator run as separate processes built
// without -race, whatever flags the test runs with: the soak measures the
// gateway as deployed, not the race detector (see soak_test.go).
//
// The package has no code of its own; the test is in soak_test.go. It is
// skipped with -short, and without redis-server unless CI=true.
package soak
