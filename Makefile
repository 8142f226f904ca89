# framecast: the two commands a newcomer needs are `make demo` and `make test`.
# Each installs the Debian/Ubuntu packages it needs when they are missing.

SHELL   := /bin/bash
GO      ?= go
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BIN     := bin
# Go >= 1.21 fetches the toolchain go.mod asks for through the module proxy.
export GOTOOLCHAIN ?= auto

TEST_PACKAGES := redis-server redis-tools nginx chromium ffmpeg libopencv-dev libopenh264-dev pkg-config docker-compose debootstrap openssl
DEMO_PACKAGES := libopencv-dev libopenh264-dev pkg-config
# Go-built test parts, installed into bin/tools where internal/testenv finds
# them: versitygw is the real S3 server the recording store's tests run
# against (an S3 gateway over a folder; building it takes ~3 min once).
TOOLS      := $(CURDIR)/$(BIN)/tools
VERSITYGW  := v1.8.0

.PHONY: help deps deps-demo build demo test test-go stress fuzz matleak soak bench paired clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# apt-install the given packages that are not installed yet.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! command -v $(GO) >/dev/null 2>&1; then missing="$$missing golang-go"; fi; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps: ## install everything the tests need (apt, and go install into bin/tools)
	$(call apt_install,$(TEST_PACKAGES))
	@if [ "$$(cat $(TOOLS)/versitygw.version 2>/dev/null)" != "$(VERSITYGW)" ]; then \
		echo "installing versitygw $(VERSITYGW) into $(TOOLS)"; \
		GOBIN=$(TOOLS) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW) && \
		echo $(VERSITYGW) > $(TOOLS)/versitygw.version; \
	fi

deps-demo: ## install what the demo needs (apt)
	$(call apt_install,$(DEMO_PACKAGES))

build: deps-demo ## build bin/gateway, bin/sender, bin/loadgen
	$(GO) build -o $(BIN)/gateway ./cmd/gateway
	$(GO) build -o $(BIN)/sender ./cmd/sender
	$(GO) build -o $(BIN)/loadgen ./cmd/loadgen

demo: build ## gateway (in-process layer) + a demo sender, recorded into ./recordings: open http://localhost:8000/video/demo/
	@echo; echo "framecast demo: open http://localhost:8000/video/demo/ (Ctrl-C stops; footage goes to ./recordings, kept 1 day)"; echo
	@GATEWAY_ADDR=$${GATEWAY_ADDR:-:8000} GATEWAY_RECORD=$${GATEWAY_RECORD-demo} GATEWAY_RECORD_STORE=$${GATEWAY_RECORD_STORE:-./recordings} \
	GATEWAY_RECORD_KEEP=$${GATEWAY_RECORD_KEEP:-1d} GATEWAY_RECORD_MIN_FREE=$${GATEWAY_RECORD_MIN_FREE:-1GiB} $(BIN)/gateway & gw=$$!; \
	trap 'kill $$gw $$snd 2>/dev/null; wait; exit 0' INT TERM; \
	for i in $$(seq 50); do $(BIN)/gateway healthcheck -timeout 1s 2>/dev/null && break; sleep 0.1; done; \
	SENDER_URL=ws://127.0.0.1:8000 SENDER_ROOM=demo SENDER_SOURCE=test SENDER_FPS=$${SENDER_FPS:-15} $(BIN)/sender & snd=$$!; \
	wait

test: deps ## vet, then every test with -race, short fuzz runs, the Mat leak check
	$(GO) vet ./...
	$(MAKE) test-go fuzz matleak

# The soak runs alone after the rest: it measures latency gaps and memory,
# and other packages' tests sharing the 2 cores would only add noise. So does
# the compose test (docker-compose.yml on the Docker engine, skipped where
# none answers): it builds images, and it times reconnects. From nothing it
# takes about 18 minutes, most of it building images (the base images, the
# project's, and deploy/compose-s3.yml's S3 server); when only the source
# changed, about 8 (cached layers; the go builds rerun); else about 2.
test-go:
	$(GO) test -race -count=1 -timeout 20m -skip '^(TestSoak|TestComposeUp)$$' ./...
	$(GO) test -race -count=1 -timeout 5m -run '^TestSoak$$' -v ./internal/soak/
	$(GO) test -race -count=1 -timeout 32m -run '^TestComposeUp$$' -v ./deploy/

# stress reruns, many times under -race, the tests that need no external
# service, to find flakes. The guard is -short: in short mode testenv's
# RequireTool and Binary skip every test that would start redis-server,
# nginx, Chromium, ffmpeg, Docker or one of the project's binaries, so
# internal/gateway, internal/sender and internal/loadgen run their
# in-process tests only (a new test that needs a service is left out by
# going through testenv, with no list to update). The packages below are
# those with such tests; the others would skip everything. At the default
# count it takes a while (internal/gateway alone is about 45 s a round on
# 2 cores): STRESS_COUNT=3 is a smoke run.
STRESS_COUNT    ?= 50
STRESS_PACKAGES := ./pkg/frames/ ./pkg/rooms/ ./internal/avc/ ./internal/auth/ ./internal/promtext/ \
	./internal/gctune/ ./internal/fdlimit/ ./internal/linkproxy/ ./internal/socket/ ./internal/testenv/gatewaytest/ \
	./internal/gateway/ ./internal/sender/ ./internal/loadgen/ ./internal/recording/...
stress: deps-demo ## rerun the tests that need no external service: -race -short, STRESS_COUNT times (50)
	$(GO) test -race -short -count=$(STRESS_COUNT) -timeout 4h $(STRESS_PACKAGES)

# Each target runs a count of executions, not a time: a -fuzztime duration
# races the fuzzing engine's own deadline and now and then fails a loaded
# run with a bare "context deadline exceeded" and no failing input
# (golang/go#75804, fixed in Go 1.27; a CI run here hit it). The counts take
# about 10 s each on 2 cores; raise them for longer runs, e.g.
# `make fuzz FUZZ_EXECS=2000000`.
FUZZ_EXECS ?= 150000
fuzz: ## run each fuzz target for FUZZ_EXECS executions (about 10 s each)
	$(GO) test -run='^$$' -fuzz='^FuzzParseBinary$$' -fuzztime=$(FUZZ_EXECS)x ./pkg/frames/
	$(GO) test -run='^$$' -fuzz='^FuzzParseDataURL$$' -fuzztime=$(FUZZ_EXECS)x ./pkg/frames/
	$(GO) test -run='^$$' -fuzz='^FuzzParseLayered$$' -fuzztime=$(FUZZ_EXECS)x ./pkg/frames/
	$(GO) test -run='^$$' -fuzz='^FuzzSPS$$' -fuzztime=$(FUZZ_EXECS)x ./internal/avc/
	$(GO) test -run='^$$' -fuzz='^FuzzSplit$$' -fuzztime=$(FUZZ_EXECS)x ./internal/avc/
	$(GO) test -run='^$$' -fuzz='^FuzzParseLog$$' -fuzztime=$(FUZZ_EXECS)x ./internal/recording/index/
	$(GO) test -run='^$$' -fuzz='^FuzzParseCutoff$$' -fuzztime=$(FUZZ_EXECS)x ./internal/recording/index/
	$(GO) test -run='^$$' -fuzz='^FuzzParseRollup$$' -fuzztime=$(FUZZ_EXECS)x ./internal/recording/index/
	$(GO) test -run='^$$' -fuzz='^FuzzRead$$' -fuzztime=$(FUZZ_EXECS)x ./internal/recording/segment/

matleak: ## count gocv Mats across thousands of frames (matprofile build tag)
	$(GO) test -tags matprofile -count=1 -run MatLeak ./internal/sender/

soak: deps ## 10-minute soak: 1 publisher at 30 fps, 200 viewers over 3 replicas
	FRAMECAST_SOAK=10m $(GO) test -count=1 -timeout 20m -run TestSoak -v ./internal/soak/

bench: deps ## run the fan-out benchmark scenarios and rewrite docs/benchmarks.md; then playback from S3
	scripts/bench.sh
	$(GO) test -run '^$$' -bench '^BenchmarkPlayback$$' -benchtime 200x ./internal/recording/s3store/

# Paired before/after runs of two revisions, alternated (scripts/paired.sh
# says what runs and where the output goes; PAIRED_FLAGS passes options,
# e.g. PAIRED_FLAGS='-o out -same-driver').
ROUNDS ?= 3
paired: deps ## BenchmarkFanout + S1-S4/S9/S12 of OLD vs NEW: make paired OLD=1b691e6 NEW=HEAD [ROUNDS=3]
	@[ -n "$(OLD)" ] && [ -n "$(NEW)" ] || { echo "usage: make paired OLD=rev NEW=rev [ROUNDS=3] [PAIRED_FLAGS=...]"; exit 2; }
	scripts/paired.sh $(PAIRED_FLAGS) $(OLD) $(NEW) $(ROUNDS)

clean:
	rm -rf $(BIN)
