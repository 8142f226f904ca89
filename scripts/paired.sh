#!/usr/bin/env bash
# Paired before/after runs of two revisions on this machine, alternated so
# that drift in the machine's load lands on both alike:
#
#   scripts/paired.sh [options] OLD NEW [ROUNDS]      (make paired OLD=... NEW=...)
#
# OLD and NEW are git revisions (1b691e6, main, HEAD, a branch); ROUNDS
# defaults to 3. Both are checked out in temporary git worktrees and built
# there. Each round runs, old then new:
#   1. BenchmarkFanout (internal/loadgen, in-process gateways), -count N;
#      all rounds together are compared with benchstat at the end;
#   2. the benchmark driver with -only S1,S2,S3,S4,S9,S12 (-raw kept).
#      By default each revision's own driver runs in its own worktree, so
#      it builds and drives that revision's gateway with that revision's
#      load generator. With -same-driver, NEW's driver and load generator
#      drive both gateways (-gateway BIN): only the gateway differs, and
#      S2's ceiling is measured the same way for both; NEW's driver must
#      have -gateway, and OLD's gateway must take the same settings.
# Then it prints, for every measure of the drivers' summaries (plus S2's
# MB/s and S1's CPU per delivery from the raw reports), the old and new
# value and new ÷ old per round, and benchstat's table.
#
# Options:
#   -o DIR          output folder (default: a new paired-* folder in $TMPDIR or /tmp)
#   -only LIST      scenarios (default S1,S2,S3,S4,S9,S12)
#   -quick          the driver's -quick mode (a check of the tooling, not figures)
#   -count N        BenchmarkFanout -count per round per revision (default 5)
#   -benchtime D    BenchmarkFanout -benchtime (default 1s)
#   -same-driver    NEW's driver for both revisions (see above)
#   -no-fanout, -no-bench   skip one of the two parts
#
# Output in DIR: fanout/{old,new}.txt and benchstat.txt; bench/roundN-{old,new}.{md,json,log}
# (each run's docs/benchmarks.md, raw reports and log); paired.md (the table); revisions.
# A full run (3 rounds) takes about an hour on two cores; a check:
#   scripts/paired.sh -quick -count 1 -benchtime 200ms main main 1
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

out="" only="S1,S2,S3,S4,S9,S12" quick="" count=5 benchtime=1s same=0 fanout=1 bench=1
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	-o) out=$2; shift 2 ;;
	-only) only=$2; shift 2 ;;
	-quick) quick=-quick; shift ;;
	-count) count=$2; shift 2 ;;
	-benchtime) benchtime=$2; shift 2 ;;
	-same-driver) same=1; shift ;;
	-no-fanout) fanout=0; shift ;;
	-no-bench) bench=0; shift ;;
	-h | -help | --help) usage ;;
	-*) echo "paired.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
[ $# -ge 2 ] && [ $# -le 3 ] || usage
rounds=${3:-3}
old=$(git rev-parse --verify "$1^{commit}")
new=$(git rev-parse --verify "$2^{commit}")
[ -n "$out" ] || out=${TMPDIR:-/tmp}/paired-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out/fanout" "$out/bench" "$out/bin/old" "$out/bin/new"
out=$(cd "$out" && pwd)
log() { echo "$(date +%H:%M:%S) paired: $*" >&2; }

src=$(mktemp -d "${TMPDIR:-/tmp}/paired-src-XXXXXX")
cleanup() {
	for side in old new; do
		[ -d "$src/$side" ] && git -C "$root" worktree remove --force "$src/$side" >/dev/null 2>&1 || true
	done
	rm -rf "$src"
	git -C "$root" worktree prune
}
trap cleanup EXIT
printf 'old %s (%s)\nnew %s (%s)\nrounds %s, BenchmarkFanout -count %s -benchtime %s, driver: %s %s%s\n' \
	"$old" "$1" "$new" "$2" "$rounds" "$count" "$benchtime" "$only" "$quick" \
	"$([ $same = 1 ] && echo ', same driver (NEW) for both' || echo ', each revision its own')" >"$out/revisions"
log "old $1 = ${old:0:12}, new $2 = ${new:0:12}, $rounds rounds; output in $out"

# Build everything first, so that no round pays for a build.
for side in old new; do
	rev=$old; [ $side = new ] && rev=$new
	git worktree add --detach "$src/$side" "$rev" >/dev/null 2>&1
	log "building $side in $src/$side"
	(
		cd "$src/$side"
		go build -o "$out/bin/$side/gateway" ./cmd/gateway
		go build -o "$out/bin/$side/benchdriver" ./internal/loadgen/benchdriver
		go test -c -o "$out/bin/$side/loadgen.test" ./internal/loadgen/
	)
done
if [ $same = 1 ] && ! "$out/bin/new/benchdriver" -h 2>&1 | grep -q -- '-gateway'; then
	echo "paired.sh: -same-driver needs NEW's benchdriver to have -gateway" >&2
	exit 1
fi
if [ $fanout = 1 ] && ! command -v benchstat >/dev/null; then
	export PATH=$PATH:$(go env GOPATH)/bin
	if ! command -v benchstat >/dev/null; then
		log "installing benchstat (go install golang.org/x/perf/cmd/benchstat@latest)"
		go install golang.org/x/perf/cmd/benchstat@latest
	fi
fi
rm -f "$out/fanout/old.txt" "$out/fanout/new.txt"

# runFanout SIDE: one round of BenchmarkFanout, appended to fanout/SIDE.txt.
runFanout() {
	log "round $r: BenchmarkFanout, $1"
	(cd "$src/$1/internal/loadgen" && "$out/bin/$1/loadgen.test" -test.run '^$' -test.bench '^BenchmarkFanout$' \
		-test.benchtime "$benchtime" -test.count "$count") >>"$out/fanout/$1.txt"
}

# runBench SIDE: one round of the driver's scenarios.
runBench() {
	local side=$1 dir=$src/$1 driver=$out/bin/$1/benchdriver extra=()
	if [ $same = 1 ]; then
		dir=$src/new driver=$out/bin/new/benchdriver extra=(-gateway "$out/bin/$side/gateway")
	fi
	log "round $r: driver -only $only $quick, $side"
	local f=$out/bench/round$r-$side
	if ! (cd "$dir" && "$driver" -only "$only" $quick -out "$f.md" -raw "$f.json" "${extra[@]}") 2>"$f.log"; then
		log "round $r, $side: the driver reported a failure (see $f.log)"
	fi
}

for r in $(seq 1 "$rounds"); do
	if [ $fanout = 1 ]; then runFanout old; runFanout new; fi
	if [ $bench = 1 ]; then runBench old; runBench new; fi
done

if [ $bench = 1 ]; then
	go run ./internal/loadgen/benchdriver -paired "$out" >"$out/paired.md"
	cat "$out/paired.md"
fi
if [ $fanout = 1 ]; then
	(cd "$out/fanout" && benchstat old.txt new.txt) >"$out/fanout/benchstat.txt"
	echo
	cat "$out/fanout/benchstat.txt"
fi
log "done: $out"
