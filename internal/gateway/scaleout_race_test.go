//go:build race

package gateway_test

// soRace reports whether the tests (and the gateways they build) run with
// the race detector, which slows everything several times.
const soRace = true
