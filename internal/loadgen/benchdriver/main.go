// Command benchdriver runs framecast's published benchmark scenarios
// against real gateway processes and a real redis-server, and writes the
// results to docs/benchmarks.md. `make bench` runs it:
//
//	go run ./internal/loadgen/benchdriver [-out docs/benchmarks.md] [-only S1,S3] [-quick] [-raw FILE] [-gateway BIN]
//	go run ./internal/loadgen/benchdriver -paired DIR
//
// It builds cmd/gateway (unless -gateway names one) and cmd/loadgen
// (without -race) into a temporary folder, starts redis-server and fresh
// gateways on free loopback ports for each scenario, runs cmd/loadgen with
// -json, and renders one table per scenario with the machine, the date and
// every command it ran. A whole run takes about ten minutes on two cores.
// -paired prints the table of scripts/paired.sh's runs (paired.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	out := flag.String("out", "docs/benchmarks.md", "where to write the results (relative to the module root)")
	raw := flag.String("raw", "", "also write every loadgen report as JSON to this file")
	only := flag.String("only", "", "comma-separated scenarios to run (S1..S14); default all")
	quick := flag.Bool("quick", false, "short windows and smaller ramps, to check the driver itself (figures are not worth publishing)")
	gatewayBin := flag.String("gateway", "", "run this gateway binary instead of building ./cmd/gateway (paired runs of another revision under this driver and load generator)")
	paired := flag.String("paired", "", "print the table of a scripts/paired.sh output folder and exit: each summary measure's old and new values and their ratio per round")
	flag.Parse()

	if *paired != "" {
		if err := printPaired(os.Stdout, *paired); err != nil {
			fmt.Fprintf(os.Stderr, "benchdriver: %v\n", err)
			return 1
		}
		return 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchdriver: %v\n", err)
		return 1
	}
	b, err := newBench(ctx, root, *quick, *gatewayBin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchdriver: %v\n", err)
		return 1
	}
	defer b.close()

	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(strings.ToUpper(s)); s != "" {
			want[s] = true
		}
	}
	// Scenarios register from several files (S8 in nginx.go, S9 and S10
	// in scenarios_layers.go, S11 in h264.go, S12 in h264_delivery.go, S13 in
	// scenarios_rooms.go, S14 in scenarios_recording.go): run them in the
	// order of their numbers.
	slices.SortStableFunc(scenarios, func(a, b scenario) int { return scenarioNumber(a.id) - scenarioNumber(b.id) })
	start := time.Now()
	for _, sc := range scenarios {
		if len(want) > 0 && !want[sc.id] {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		b.logf("=== %s: %s", sc.id, sc.title)
		t := time.Now()
		sec := &section{id: sc.id, title: sc.title}
		if err := sc.run(b, sec); err != nil {
			sec.failed = err.Error()
			b.logf("%s failed: %v", sc.id, err)
		}
		sec.took = time.Since(t)
		b.sections = append(b.sections, sec)
	}
	b.total = time.Since(start)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "benchdriver: interrupted; nothing written")
		return 1
	}
	path := *out
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	if b.optimizations, err = optimizationTable(filepath.Join(root, "docs", "performance-log.md")); err != nil {
		fmt.Fprintf(os.Stderr, "benchdriver: %v\n", err)
		return 1
	}
	if err := os.WriteFile(path, []byte(b.markdown()), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "benchdriver: failed to write %s: %v\n", path, err)
		return 1
	}
	b.logf("wrote %s in %v", path, b.total.Round(time.Second))
	if *raw != "" {
		if err := b.writeRaw(*raw); err != nil {
			fmt.Fprintf(os.Stderr, "benchdriver: %v\n", err)
			return 1
		}
	}
	for _, s := range b.sections {
		if s.failed != "" {
			return 1
		}
	}
	return 0
}

// scenarioNumber is the number of a scenario id ("S10" → 10).
func scenarioNumber(id string) int {
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "S"))
	return n
}

// moduleRoot finds the folder holding go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory: run from the framecast module")
		}
		dir = parent
	}
}
