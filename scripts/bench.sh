#!/usr/bin/env bash
# Runs framecast's benchmark scenarios (S1-S13) against real gateway processes
# and a real redis-server, and rewrites docs/benchmarks.md. `make bench` calls
# it. Flags go to the driver (internal/loadgen/benchdriver):
#   -only S1,S3   run some scenarios     -quick   short windows, to check the driver
#   -out FILE     write elsewhere         -raw FILE also keep every report as JSON
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./internal/loadgen/benchdriver "$@"
